"""The run tracker: one actor that batches writes on runs and tasks (group commit).

Per-row commits are capped by the disk (a few hundred a second); a thousand rows in one
transaction go two orders of magnitude faster. So actors hand their write operations to
the tracker, which appends them to a pending batch and commits the whole batch with ONE
``Store.apply`` as soon as its mailbox is empty (or the batch is full). The commit runs in
a task linked to the tracker, so operations that arrive while it is in flight are accepted
at once and form the next batch (the next batch is built while the current one commits):
batches grow with load, with no timer per operation. Once a full batch waits behind the
one in flight, the tracker stops reading its mailbox until that commit ends, so a slow or
unavailable store pushes back on the callers instead of piling operations up in memory.

Nothing accepted is dropped while the process lives: an unavailable store
(``StoreUnavailable``: unreachable, restarting, busy) is retried with exponential backoff
and jitter until it answers. A store that refuses every write for a reason no retry can fix
(``SchemaError``, ``StoreNotWritable``: read-only, disk full) fails the waiters of the whole
batch at once with that error, which names the cause. An operation the store refuses
(``StoreConflict``, an unknown run or task) is isolated by bisecting its batch, the rest
is committed, and only that operation's waiter hears about it. Operations whose fencing
token is stale need no bisection: the store lists every one of them (``StaleFence``), so
they are refused to their own waiters and the rest of the batch is committed again at once.

Nothing accepted is lost to a crash of the tracker either: the pending operations and
their waiters live in a :class:`RunTrackerHome` that every incarnation shares (see
``_run_tracker_home``); the next incarnation commits them, the crashed batch included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from .._exceptions import (
    AskTimeout,
    InvalidInput,
    NotFound,
    SchemaError,
    SendTimeout,
    StaleFence,
    StoreError,
    StoreNotWritable,
    StoreUnavailable,
)
from ..kernel import Actor
from ..kernel._entropy import jitter_rng
from ..messages._tracker import (
    FlushOps,
    GetTrackerStats,
    PersistOps,
    SubmitOps,
    TrackerCommand,
    TrackerStats,
)
from ..store._records import check_id
from ._run_tracker_home import Group, RunTrackerHome

if TYPE_CHECKING:
    import random

    from ..kernel import ActorRef, DeferredReply
    from ..messages._tracker import CommitWaiter
    from ..store import Store, WriteOp
    from ._run_tracker_home import Item

__all__ = [
    "DEFAULT_HEARTBEAT_INTERVAL",
    "DEFAULT_MAX_BATCH",
    "CommitBackoff",
    "RunTracker",
    "RunTrackerClient",
    "RunTrackerHome",
    "run_tracker_actor",
]

DEFAULT_MAX_BATCH = 1000
DEFAULT_HEARTBEAT_INTERVAL = 10.0
DEFAULT_PERSIST_TIMEOUT = 30.0

_log = structlog.get_logger("promptactors.run_tracker")


@dataclass(frozen=True, slots=True)
class CommitBackoff:
    """How the tracker waits between commit attempts while the store is unavailable.

    Attempt ``n`` (1-based) waits ``min(maximum, initial * multiplier**(n-1))`` seconds,
    spread by ±``jitter`` (a fraction). The tracker retries for as long as the process
    lives: the policy bounds the wait, never the number of attempts. ``rng`` makes the
    jitter reproducible. Raises ``InvalidInput`` for inconsistent numbers.
    """

    initial: float = 0.05
    maximum: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.2
    rng: random.Random = field(default_factory=jitter_rng, compare=False)

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < self.initial or self.multiplier < 1:
            raise InvalidInput("CommitBackoff needs 0 <= initial <= maximum and multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise InvalidInput("CommitBackoff.jitter is a fraction between 0 and 1")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        exponent = max(0, attempt - 1)
        # Past this many doublings the cap wins anyway; avoids overflow in long outages.
        if self.multiplier > 1 and exponent > 64:
            base = self.maximum
        else:
            base = min(self.maximum, self.initial * self.multiplier**exponent)
        if self.jitter:
            base *= 1 + self.rng.uniform(-self.jitter, self.jitter)
        return max(0.0, base)


def _stale_indexes(error: StaleFence, count: int) -> set[int]:
    """The positions of the stale operations ``error`` lists (empty if the list does not
    fit the batch: then bisection finds them)."""
    stale = {index for index, _ in error.stale}
    return stale if stale <= set(range(count)) else set()


def _op_key(op: WriteOp) -> str:
    key = getattr(op, "task_id", None) or getattr(op, "run_id", None)
    return f"{type(op).__name__}({key!r})"


class RunTracker(Actor[TrackerCommand]):
    """The group-commit actor. Talk to it through :class:`RunTrackerClient`.

    ``max_batch`` caps the operations committed in one transaction; ``retry`` paces the
    attempts while the store is unavailable; with an ``executor_id``, a linked task calls
    ``store.heartbeat(executor_id)`` every ``heartbeat_interval`` seconds so other
    processes see this one's runs as alive. ``home`` keeps the accepted operations and
    their waiters across incarnations (a supervisor's factory hands the same one to each):
    after a crash the next incarnation commits them and answers their waiters. Without a
    home (a bare ``spawn``) a crash fails those waiters with ``StoreUnavailable``. Raises
    ``InvalidInput`` for a ``max_batch`` below 1, a heartbeat interval that is not
    positive or a bad executor id.
    """

    def __init__(
        self,
        store: Store,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        retry: CommitBackoff | None = None,
        executor_id: str | None = None,
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
        home: RunTrackerHome | None = None,
    ) -> None:
        if max_batch < 1:
            raise InvalidInput(f"max_batch must be at least 1, got {max_batch}")
        if not heartbeat_interval > 0 or math.isinf(heartbeat_interval):
            raise InvalidInput(
                f"heartbeat_interval must be a positive number of seconds, got {heartbeat_interval}"
            )
        if executor_id is not None:
            check_id(executor_id, "executor id")
        self._store = store
        self._max_batch = max_batch
        self._retry = retry or CommitBackoff()
        self._executor_id = executor_id
        self._heartbeat_interval = heartbeat_interval
        # A shared home outlives this incarnation: a crash leaves its operations there.
        self._survives = home is not None
        self._home = home if home is not None else RunTrackerHome()
        # Set when the running commit task ends (None: no commit task), and on each commit.
        self._committer_done: anyio.Event | None = None
        self._committed: anyio.Event | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def on_start(self) -> None:
        """Starts the heartbeat task when an executor id was given, and resumes committing
        what a crashed incarnation left pending. Does not raise."""
        if self._executor_id is not None:
            self.start_soon(self._heartbeat_loop, self._executor_id)
        home = self._home
        if home.pending:
            _log.warning("run_tracker_resumes", pending=len(home.pending))
            self._start_committer()
        elif home.flushes:
            home.release_flushes(home.seq)

    async def on_stop(self) -> None:
        """Commits everything still pending (the shutdown timeout bounds it).

        Does not raise: if the actor is killed first, the operations left uncommitted are
        logged and their waiters fail with ``StoreUnavailable``.
        """
        try:
            while self._committer_done is not None:
                await self._committer_done.wait()
            while self._home.pending:
                await self._commit_next()
        finally:
            self._home.abandon("the run tracker stopped before committing them")

    async def on_crash(self, error: BaseException) -> None:
        """With a home, leaves what is pending to the next incarnation; without one, fails
        its waiters (``StoreUnavailable``). Does not raise."""
        if not self._survives:
            self._home.abandon(f"the run tracker crashed ({error!r})")

    def _killed(self) -> None:
        # Killed (shutdown timeout), crashed from a linked task, or cancelled from outside:
        # this incarnation ends without on_stop. A home keeps the operations for the next
        # incarnation (and its owner fails them if none comes); otherwise settle them now
        # rather than leave their waiters hanging.
        if not self._survives:
            self._home.abandon("the run tracker was killed before committing them")

    # -- messages --------------------------------------------------------------------------

    def _waiter(self, message: PersistOps | FlushOps) -> CommitWaiter:
        if message.waiter is not None:
            return message.waiter
        reply = self.defer_reply()
        if self._survives:
            reply.detach()  # the home answers it, whichever incarnation commits
        return _ReplyWaiter(reply, message.notes)

    async def receive(self, message: TrackerCommand) -> Any:
        """Accept a command; commit the pending batch once nothing more is queued.

        Answers ``GetTrackerStats`` with :class:`TrackerStats`; other commands answer None
        (their waiters say when the commit happened). Raises ``TypeError`` for anything else.
        """
        reply: Any = None
        home = self._home
        if isinstance(message, SubmitOps):
            home.accept(message.ops, None)
        elif isinstance(message, PersistOps):
            waiter = self._waiter(message)
            if message.ops:
                home.accept(message.ops, Group(waiter, len(message.ops)))
            else:
                waiter.committed()
        elif isinstance(message, FlushOps):
            waiter = self._waiter(message)
            if home.pending:
                home.flushes.append((home.seq, waiter))
            else:
                waiter.committed()
        elif isinstance(message, GetTrackerStats):
            reply = self.stats()
        else:
            raise TypeError(f"RunTracker has no handler for {type(message).__name__}")
        # Group commit: keep accepting while more is queued, then commit in one go, in a
        # linked task so that the next batch is accepted while this one commits.
        pending = home.pending
        idle = pending and self._committer_done is None
        if idle and (len(pending) >= self._max_batch or self.ref.queued == 0):
            self._start_committer()
        try:
            # Backpressure: a full batch waits behind the commit in flight.
            while self._committer_done is not None and len(pending) >= 2 * self._max_batch:
                if self._committed is None:
                    self._committed = anyio.Event()
                await self._committed.wait()
        except anyio.get_cancelled_exc_class():
            self._killed()
            raise
        return reply

    def stats(self) -> TrackerStats:
        """The counters so far, across incarnations (read in the tracker's own task)."""
        home = self._home
        return TrackerStats(
            ops_committed=home.ops_committed,
            batches=home.batches,
            largest_batch=home.largest_batch,
            pending=len(home.pending),
            retries=home.retries,
            conflicts=home.conflicts,
            failed=home.failed,
            heartbeats=home.heartbeats,
        )

    # -- committing ------------------------------------------------------------------------

    def _start_committer(self) -> None:
        self._committer_done = anyio.Event()
        self.start_soon(self._committer)

    async def _committer(self) -> None:
        """Commit batch after batch until nothing is pending (a task linked to the tracker)."""
        try:
            while self._home.pending:
                await self._commit_next()
                committed, self._committed = self._committed, None
                if committed is not None:
                    committed.set()
        except anyio.get_cancelled_exc_class():
            self._killed()
            raise
        finally:
            done, self._committer_done = self._committer_done, None
            if done is not None:
                done.set()

    async def _commit_next(self) -> None:
        pending = self._home.pending
        batch = pending[: self._max_batch]
        await self._commit(batch)
        # Only now leave the pending list: a crash or kill mid-commit still sees them as
        # uncommitted (the next incarnation commits them again: a replay is a no-op).
        del pending[: len(batch)]
        self._home.release_flushes(batch[-1].seq)

    async def _commit(self, items: list[Item]) -> None:
        """Commit ``items`` in one transaction, retrying while the store is unavailable and
        bisecting around operations the store refuses."""
        ops = [item.op for item in items]
        attempt = 0
        while True:
            try:
                await self._store.apply(ops)
            except StoreUnavailable as exc:
                # Safe to replay even if the lost answer hid a commit: every op is keyed
                # by its run or task id, and a replay of the same op is a no-op.
                attempt += 1
                self._home.retries += 1
                for item in items:
                    if item.group is not None:
                        item.group.waiter.note(exc)
                delay = self._retry.delay(attempt)
                _log.warning(
                    "run_tracker_store_unavailable",
                    ops=len(ops),
                    attempt=attempt,
                    retry_in=round(delay, 3),
                    error=str(exc),
                )
                await anyio.sleep(delay)
            except (SchemaError, StoreNotWritable) as exc:
                # The store refuses every write (missing schema, read-only, disk full):
                # bisecting or retrying cannot help, so the whole batch fails at once.
                self._fail_all(items, exc)
                return
            except (StoreError, NotFound) as exc:
                if isinstance(exc, StaleFence) and (stale := _stale_indexes(exc, len(items))):
                    # The store named every stale operation: refuse exactly those.
                    for index in sorted(stale):
                        self._refuse(items[index], exc.only(index))
                    rest = [item for index, item in enumerate(items) if index not in stale]
                    if rest:
                        await self._commit(rest)
                    return
                # All or nothing: find the operation(s) refused and commit the others.
                if len(items) == 1:
                    self._refuse(items[0], exc)
                    return
                middle = len(items) // 2
                await self._commit(items[:middle])
                await self._commit(items[middle:])
                return
            else:
                home = self._home
                home.ops_committed += len(items)
                home.batches += 1
                home.largest_batch = max(home.largest_batch, len(items))
                for item in items:
                    item.settle()
                return

    def _fail_all(self, items: list[Item], error: StoreError) -> None:
        self._home.failed += len(items)
        _log.error(
            "run_tracker_store_refuses_writes",
            ops=len(items),
            error_type=type(error).__name__,
            error=str(error),
        )
        for item in items:
            item.settle(error)

    def _refuse(self, item: Item, error: Exception) -> None:
        self._home.conflicts += 1
        has_waiter = item.group is not None
        item.settle(error)
        if not has_waiter:
            # Nobody waits for a submitted operation: a refusal is an upstream bug to see.
            _log.error(
                "run_tracker_op_refused",
                op=_op_key(item.op),
                error_type=type(error).__name__,
                error=str(error),
            )

    # -- heartbeat -------------------------------------------------------------------------

    async def _heartbeat_loop(self, executor_id: str) -> None:
        while True:
            await anyio.sleep(self._heartbeat_interval)
            try:
                await self._store.heartbeat(executor_id)
            except (StoreError, NotFound) as exc:
                _log.warning(
                    "run_tracker_heartbeat_failed", executor_id=executor_id, error=str(exc)
                )
            else:
                self._home.heartbeats += 1


def run_tracker_actor(
    store: Store,
    *,
    max_batch: int = DEFAULT_MAX_BATCH,
    retry: CommitBackoff | None = None,
    executor_id: str | None = None,
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
    home: RunTrackerHome | None = None,
) -> RunTracker:
    """A new :class:`RunTracker` (a factory for ``spawn`` or a supervisor's child spec:
    give every incarnation the same ``home`` so that a crash loses nothing accepted).

    Raises ``InvalidInput`` for a ``max_batch`` below 1 or a non-positive heartbeat interval.
    """
    return RunTracker(
        store,
        max_batch=max_batch,
        retry=retry,
        executor_id=executor_id,
        heartbeat_interval=heartbeat_interval,
        home=home,
    )


# -- the caller's side -------------------------------------------------------------------


class _ReplyWaiter:
    """A waiter that answers the asker's deferred reply (if the tracker stops first, the
    kernel fails it with ``ActorDead``: no watcher task per caller is needed)."""

    __slots__ = ("_notes", "_reply")

    def __init__(self, reply: DeferredReply, notes: list[BaseException] | None) -> None:
        self._reply = reply
        self._notes = notes

    def committed(self) -> None:
        self._reply.resolve(None)

    def failed(self, error: BaseException) -> None:
        self._reply.fail(error)

    def note(self, error: BaseException) -> None:
        # The asker times out on its own deadline (the tracker keeps retrying); it reads
        # the last error from here to say why.
        if self._notes is not None:
            self._notes[:] = [error]


class RunTrackerClient:
    """What actors use to write runs and tasks through a :class:`RunTracker`."""

    __slots__ = ("_ref",)

    def __init__(self, ref: ActorRef[Any]) -> None:
        self._ref = ref

    @property
    def ref(self) -> ActorRef[Any]:
        return self._ref

    async def submit(self, *ops: WriteOp) -> None:
        """Hand ``ops`` to the tracker for a later group commit, without waiting for it.

        Waits only while the tracker's mailbox is full (backpressure). Once this returns
        the operations are in the tracker's memory and are committed in submission order,
        retried while the store is unavailable. Raises ``ActorDead`` if the tracker is
        stopped (nothing was accepted).
        """
        if ops:
            await self._ref.tell(SubmitOps(ops))

    async def persist(self, *ops: WriteOp, timeout: float | None = DEFAULT_PERSIST_TIMEOUT) -> None:
        """Hand ``ops`` to the tracker and return once they are committed.

        Raises ``StoreConflict`` (or ``RunNotFound``/``NotFound``) when the store refuses
        one of these operations — the others are committed; ``StaleFence`` (a
        ``StoreConflict``) names the run when an operation's fencing token is stale;
        ``StoreUnavailable`` when they are not committed within ``timeout`` seconds (if
        they were accepted they stay queued and are still retried: the message says
        which); ``ActorDead`` if the tracker is stopped, or stops before committing them.
        ``timeout=None`` waits without limit.
        """
        if ops:
            notes: list[BaseException] = []
            await self._ask(PersistOps(ops, None, notes), notes, timeout, f"{len(ops)} operations")

    async def flush(self, timeout: float | None = DEFAULT_PERSIST_TIMEOUT) -> None:
        """Return once everything accepted so far is committed (or refused for good).

        Raises ``StoreUnavailable`` if that does not happen within ``timeout`` seconds
        (nothing is dropped: the tracker keeps retrying), ``ActorDead`` if the tracker is
        stopped or stops first.
        """
        notes: list[BaseException] = []
        await self._ask(FlushOps(None, notes), notes, timeout, "flush")

    async def _ask(
        self,
        message: TrackerCommand,
        notes: list[BaseException],
        timeout: float | None,
        what: str,
    ) -> None:
        # One ask with a deferred reply: the kernel's shared deadline bounds the wait and
        # fails it with ActorDead if the tracker stops first — no task or scope per call.
        try:
            await self._ref.ask(message, timeout=timeout)
        except SendTimeout as exc:
            raise StoreUnavailable(
                f"{what} not accepted within {timeout:g}s: the run tracker's mailbox "
                "stayed full (the store is slow or unavailable); nothing was queued"
            ) from exc
        except AskTimeout as exc:
            last = notes[-1] if notes else None
            raise StoreUnavailable(
                f"{what} not committed within {timeout:g}s; still queued and retried in the "
                f"background (last error: {last})"
            ) from (last or exc)

    async def stats(self, timeout: float | None = DEFAULT_PERSIST_TIMEOUT) -> TrackerStats:
        """The tracker's counters. Raises ``AskTimeout`` or ``ActorDead`` like ``ask``.

        The tracker answers between messages, a commit in flight does not delay it; but
        while a full batch waits behind that commit (a slow or unavailable store) it reads
        no messages, so this waits (up to ``timeout``) like any other command.
        """
        stats: TrackerStats = await self._ref.ask(GetTrackerStats(), timeout=timeout)
        return stats

"""The run tracker: one actor that batches writes on runs and tasks (group commit).

Per-row commits are capped by the disk (a few hundred a second); a thousand rows in one
transaction go two orders of magnitude faster. So actors hand their write operations to
the tracker, which appends them to a pending batch and commits the whole batch with ONE
``Store.apply`` as soon as its mailbox is empty (or the batch is full). The commit runs in
a task linked to the tracker, so operations that arrive while it is in flight are accepted
at once and form the next batch (the next batch is built while the current one commits):
batches grow with load, with no timer per operation. Once a full batch waits behind the
commits in flight, the tracker stops reading its mailbox until one of them ends, so a slow
or unavailable store pushes back on the callers instead of piling operations up in memory.

Up to ``commit_concurrency`` batches commit at once (two on PostgreSQL, one elsewhere).
With a single commit in flight, the callers of a batch all wait for it, and then all
answer at once: the process and the database server take turns, each idle while the other
works. A second batch overlaps them. It only takes operations whose runs no batch in
flight touches (a task's run is known from its ``CreateTask``; an operation on a task the
tracker has not seen waits until nothing is in flight), so the operations of each run are
still committed in the order they were accepted.

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
    InvalidInput,
    NotFound,
    SchemaError,
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
from ..store._records import (
    CreateTask,
    FailTask,
    FinishTurn,
    InterruptTask,
    check_id,
)
from ._run_tracker_client import DEFAULT_PERSIST_TIMEOUT, ReplyWaiter, RunTrackerClient
from ._run_tracker_home import Group, RunTrackerHome

if TYPE_CHECKING:
    import random

    from ..messages._tracker import CommitWaiter
    from ..store import Store, WriteOp
    from ._run_tracker_home import Item

__all__ = [
    "COMMIT_CONCURRENCY",
    "DEFAULT_HEARTBEAT_INTERVAL",
    "DEFAULT_MAX_BATCH",
    "DEFAULT_PERSIST_TIMEOUT",
    "CommitBackoff",
    "RunTracker",
    "RunTrackerClient",
    "RunTrackerHome",
    "run_tracker_actor",
]

DEFAULT_MAX_BATCH = 1000
#: Batches committing at once, by store dialect (others: 1). PostgreSQL serves concurrent
#: transactions on separate connections of the pool; SQLite has one writer.
COMMIT_CONCURRENCY = {"postgresql": 2}
DEFAULT_HEARTBEAT_INTERVAL = 10.0

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


class _Batch:
    """Operations committing together, and the runs they write (None: unknown runs, so
    nothing else may commit beside it)."""

    __slots__ = ("items", "runs")

    def __init__(self, items: list[Item], runs: set[str] | None) -> None:
        self.items = items
        self.runs = runs


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
    home (a bare ``spawn``) a crash fails those waiters with ``StoreUnavailable``.
    ``commit_concurrency`` is how many batches may commit at once (default: by the
    store's dialect, :data:`COMMIT_CONCURRENCY`; see the module doc). Raises
    ``InvalidInput`` for a ``max_batch`` or ``commit_concurrency`` below 1, a heartbeat
    interval that is not positive or a bad executor id.
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
        commit_concurrency: int | None = None,
    ) -> None:
        if max_batch < 1:
            raise InvalidInput(f"max_batch must be at least 1, got {max_batch}")
        if commit_concurrency is None:
            # (a partial store, such as a test double, may not say its dialect)
            commit_concurrency = COMMIT_CONCURRENCY.get(getattr(store, "dialect", ""), 1)
        if commit_concurrency < 1:
            raise InvalidInput(f"commit_concurrency must be at least 1, got {commit_concurrency}")
        if not heartbeat_interval > 0 or math.isinf(heartbeat_interval):
            raise InvalidInput(
                f"heartbeat_interval must be a positive number of seconds, got {heartbeat_interval}"
            )
        if executor_id is not None:
            check_id(executor_id, "executor id")
        self._store = store
        self._max_batch = max_batch
        self._concurrency = commit_concurrency
        self._retry = retry or CommitBackoff()
        self._executor_id = executor_id
        self._heartbeat_interval = heartbeat_interval
        # A shared home outlives this incarnation: a crash leaves its operations there.
        self._survives = home is not None
        self._home = home if home is not None else RunTrackerHome()
        # The batches committing now: they hold the first ``_claimed`` pending operations.
        self._in_flight: list[_Batch] = []
        # Set when a commit ends (created by whoever waits for one).
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
            self._fill(eager=True)
        elif home.flushes:
            home.release_flushes(home.seq)

    async def on_stop(self) -> None:
        """Commits everything still pending (the shutdown timeout bounds it).

        Does not raise: if the actor is killed first, the operations left uncommitted are
        logged and their waiters fail with ``StoreUnavailable``.
        """
        try:
            while self._in_flight or self._home.pending:
                if not self._in_flight:
                    self._fill(eager=True)
                await self._commit_ended()
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
        return ReplyWaiter(reply, message.notes)

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
        self._fill(eager=False)
        try:
            # Backpressure: a full batch waits behind the commits in flight.
            while self._in_flight and len(home.pending) - self._claimed >= self._max_batch:
                await self._commit_ended()
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

    async def _commit_ended(self) -> None:
        if self._committed is None:
            self._committed = anyio.Event()
        await self._committed.wait()

    @property
    def _claimed(self) -> int:
        """How many pending operations (the first ones) the batches in flight hold."""
        return sum(len(batch.items) for batch in self._in_flight)

    def _fill(self, *, eager: bool) -> None:
        """Start committing while a commit slot is free and a batch can be formed. Not
        ``eager`` (a message just arrived): only a full batch, or once the mailbox is
        empty, so that a batch takes in everything already queued."""
        pending = self._home.pending
        while len(self._in_flight) < self._concurrency:
            unclaimed = len(pending) - self._claimed
            if not unclaimed:
                return
            if not eager and unclaimed < self._max_batch and self.ref.queued:
                return
            batch = self._next_batch()
            if batch is None:
                return
            self._in_flight.append(batch)
            self.start_soon(self._committer, batch)

    def _next_batch(self) -> _Batch | None:
        """The next operations to commit, first accepted first: up to ``max_batch``; while
        other batches are in flight, only up to the first one on a run they write."""
        home = self._home
        start = self._claimed
        candidates = home.pending[start : start + self._max_batch]
        runs: set[str] = set()
        if not self._in_flight:
            for item in candidates:
                key = home.run_of(item.op)
                if key is None:
                    return _Batch(candidates, None)
                runs.add(key)
            return _Batch(candidates, runs)
        busy: set[str] = set()
        for batch in self._in_flight:
            if batch.runs is None:
                return None
            busy |= batch.runs
        items: list[Item] = []
        for item in candidates:
            key = home.run_of(item.op)
            if key is None or key in busy:
                break
            runs.add(key)
            items.append(item)
        return _Batch(items, runs) if items else None

    async def _committer(self, batch: _Batch) -> None:
        """Commit one batch (a task linked to the tracker), then start what can follow."""
        try:
            await self._commit(batch.items)
        except anyio.get_cancelled_exc_class():
            self._killed()
            raise
        # Only now leave the pending list: a crash or kill mid-commit still sees them as
        # uncommitted (the next incarnation commits them again: a replay is a no-op).
        home = self._home
        mine = {id(item) for item in batch.items}
        home.pending[:] = [item for item in home.pending if id(item) not in mine]
        self._in_flight.remove(batch)
        task_runs = home.task_runs
        for item in batch.items:
            op = item.op
            if isinstance(op, (FinishTurn, FailTask, InterruptTask)):
                task_runs.pop(op.task_id, None)  # the task's last write (a later one waits)
        home.release_flushes(home.pending[0].seq - 1 if home.pending else home.seq)
        committed, self._committed = self._committed, None
        if committed is not None:
            committed.set()
        self._fill(eager=True)

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
        if isinstance(item.op, CreateTask):
            self._home.task_runs.pop(item.op.task_id, None)  # its run may not be that one
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
    commit_concurrency: int | None = None,
) -> RunTracker:
    """A new :class:`RunTracker` (a factory for ``spawn`` or a supervisor's child spec:
    give every incarnation the same ``home`` so that a crash loses nothing accepted).

    Raises ``InvalidInput`` for a ``max_batch`` or ``commit_concurrency`` below 1 or a
    non-positive heartbeat interval.
    """
    return RunTracker(
        store,
        max_batch=max_batch,
        retry=retry,
        executor_id=executor_id,
        heartbeat_interval=heartbeat_interval,
        home=home,
        commit_concurrency=commit_concurrency,
    )

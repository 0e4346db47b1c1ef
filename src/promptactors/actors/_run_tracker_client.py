"""The caller's side of the run tracker: :class:`RunTrackerClient` (see ``_run_tracker``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._exceptions import AskTimeout, SendTimeout, StoreUnavailable
from ..messages._tracker import FlushOps, GetTrackerStats, PersistOps, SubmitOps, TrackerStats

if TYPE_CHECKING:
    from ..kernel import ActorRef, DeferredReply
    from ..messages._tracker import TrackerCommand
    from ..store import WriteOp

__all__ = ["DEFAULT_PERSIST_TIMEOUT", "RunTrackerClient"]

DEFAULT_PERSIST_TIMEOUT = 30.0


class ReplyWaiter:
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
        the operations are in the tracker's memory and are committed in submission order
        (for each run: batches of other runs may commit beside them), retried while the
        store is unavailable. Raises ``ActorDead`` if the tracker is
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

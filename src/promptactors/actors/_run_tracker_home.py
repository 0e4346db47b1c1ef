"""What the run tracker keeps outside its incarnations: accepted writes and their waiters.

The tracker accepts write operations into a pending list and commits them later (group
commit). Those operations, the callers waiting for them and the tracker's counters live in
a :class:`RunTrackerHome`, not in the actor: the supervisor's child spec hands the same
home to every incarnation (as ``InstanceHome`` does for instances), so a crash of the
tracker loses nothing it accepted. The next incarnation commits what is still pending —
the batch that was committing when the crash struck included: every operation is keyed
by its run or task id, so a replay is a no-op — and settles each waiter exactly once.

Whoever creates a home owns it: once the last incarnation is gone (the runtime's tree
has stopped), :meth:`RunTrackerHome.abandon` fails what is left, so no caller waits for a
commit that will never come.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from .._exceptions import StoreUnavailable
from ..store._records import CreateRun, CreateTask, UpdateRun

if TYPE_CHECKING:
    from ..messages._tracker import CommitWaiter
    from ..store import WriteOp

__all__ = ["RunTrackerHome"]

_log = structlog.get_logger("promptactors.run_tracker")

#: Task-to-run entries kept for ordering; past this many the map starts over (an
#: operation on a task not in it commits with no other batch in flight: slower, as safe).
_MAX_TASK_RUNS = 200_000


def _task_key(op: CreateTask) -> str:
    return op.run_id if op.run_id is not None else "\0" + op.task_id


class Group:
    """The operations one waiter covers; settles the waiter when the last one is done."""

    __slots__ = ("error", "remaining", "waiter")

    def __init__(self, waiter: CommitWaiter, remaining: int) -> None:
        self.waiter = waiter
        self.remaining = remaining
        self.error: BaseException | None = None

    def done(self, error: BaseException | None = None) -> None:
        if error is not None and self.error is None:
            self.error = error
        self.remaining -= 1
        if self.remaining == 0:
            if self.error is None:
                self.waiter.committed()
            else:
                self.waiter.failed(self.error)


class Item:
    """One accepted operation; ``settle`` reaches its group at most once (a batch
    committed again after a crash does not settle it twice)."""

    __slots__ = ("group", "op", "seq", "settled")

    def __init__(self, op: WriteOp, group: Group | None, seq: int) -> None:
        self.op = op
        self.group = group
        self.seq = seq
        self.settled = False

    def settle(self, error: BaseException | None = None) -> None:
        if not self.settled:
            self.settled = True
            if self.group is not None:
                self.group.done(error)


class RunTrackerHome:
    """A run tracker's memory across incarnations (see the module doc).

    ``pending``: the accepted operations not committed yet, in acceptance order (a batch
    leaves it only once committed); ``flushes``: flush waiters with the sequence number
    they wait for; the rest are the counters of :class:`TrackerStats`.
    """

    __slots__ = (
        "batches",
        "conflicts",
        "failed",
        "flushes",
        "heartbeats",
        "largest_batch",
        "ops_committed",
        "pending",
        "retries",
        "seq",
        "task_runs",
    )

    def __init__(self) -> None:
        self.pending: list[Item] = []
        # The run of each task created through the tracker and not finished yet: which
        # batches may commit side by side (see ``RunTracker``).
        self.task_runs: dict[str, str] = {}
        self.flushes: list[tuple[int, CommitWaiter]] = []
        self.seq = 0
        self.ops_committed = 0
        self.batches = 0
        self.largest_batch = 0
        self.retries = 0
        self.conflicts = 0
        self.failed = 0
        self.heartbeats = 0

    def accept(self, ops: tuple[WriteOp, ...], group: Group | None) -> None:
        for op in ops:
            self.seq += 1
            self.pending.append(Item(op, group, self.seq))
            if isinstance(op, CreateTask):
                if len(self.task_runs) >= _MAX_TASK_RUNS:
                    self.task_runs.clear()  # forgotten tasks only commit alone: still safe
                self.task_runs.setdefault(op.task_id, _task_key(op))

    def run_of(self, op: WriteOp) -> str | None:
        """The run ``op`` writes (a task without a run: the task, set apart by a NUL that
        no id contains), or None when unknown (a task not created through the tracker)."""
        if isinstance(op, CreateTask):
            return _task_key(op)
        if isinstance(op, CreateRun | UpdateRun):
            return op.run_id
        return self.task_runs.get(op.task_id)

    def release_flushes(self, done: int) -> None:
        """Answer the flush waiters whose operations up to ``done`` are all settled."""
        if self.flushes:
            ready = [waiter for seq, waiter in self.flushes if seq <= done]
            self.flushes = [(seq, waiter) for seq, waiter in self.flushes if seq > done]
            for waiter in ready:
                waiter.committed()

    def abandon(self, why: str) -> None:
        """Fail every waiter still pending with ``StoreUnavailable`` saying ``why`` (no
        incarnation will commit them). Idempotent; does not raise."""
        if not self.pending and not self.flushes:
            return
        pending = self.pending[:]
        self.pending.clear()
        left = [item for item in pending if not item.settled]
        if left:
            _log.error("run_tracker_ops_uncommitted", count=len(left), reason=why)
        error = StoreUnavailable(f"{len(left)} operations not committed: {why}")
        for item in left:
            item.settle(error)
        flushes, self.flushes = self.flushes, []
        for _, waiter in flushes:
            waiter.failed(error)

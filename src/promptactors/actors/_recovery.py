"""Crash recovery: what a runtime does with the runs a dead process left ``running``.

At start, before any instance runs, a runtime looks for two kinds of leftovers:

- runs its own executor id still owns — a previous process with the same id crashed;
- runs of other executors whose heartbeat is older than ``stale_after`` — their process
  died or hangs. These are claimed with ``Store.claim_stale_runs``, which on PostgreSQL
  is atomic: two surviving processes never take the same run.

Their running tasks are marked ``interrupted`` (the partial output stored so far is kept);
the runs are marked ``interrupted`` too, or, with ``resume=True``, left ``running`` under
this executor so the runtime can retry their turns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from .._exceptions import InvalidInput
from ..store._records import check_id

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["ReclaimReport", "RecoveryReport", "reclaim_expired", "recover"]

#: Runs claimed per ``claim_stale_runs`` call (the loop goes on until none is left).
CLAIM_CHUNK = 100

_log = structlog.get_logger("promptactors.recovery")


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What :func:`recover` found and did.

    ``interrupted_tasks``: tasks marked ``interrupted`` (their partial output kept).
    ``interrupted_runs``: runs marked ``interrupted`` (empty with ``resume=True``).
    ``claimed_runs``: with ``resume=True``, every run now owned by this executor and left
    ``running`` for it to resume (its own leftovers and those taken over); empty otherwise.
    ``taken_over``: runs claimed from other executors whose heartbeat was stale (whether
    resumed or interrupted).
    """

    interrupted_tasks: tuple[str, ...] = ()
    interrupted_runs: tuple[str, ...] = ()
    claimed_runs: tuple[str, ...] = ()
    taken_over: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """True when there was nothing to recover."""
        return not (self.interrupted_tasks or self.interrupted_runs or self.claimed_runs)


async def recover(
    store: Store, executor_id: str, *, stale_after: float = 60.0, resume: bool = False
) -> RecoveryReport:
    """Recover the runs and tasks a crashed process left ``running``.

    Call it once at runtime start, before this executor starts any run: every run it
    owns that is still ``running`` counts as a leftover. Runs of other executors whose
    heartbeat is older than ``stale_after`` seconds are claimed; live executors' runs are
    untouched. Idempotent: nothing is marked twice, so a second call reports no new
    interrupted tasks or runs (with ``resume=True`` the runs kept for resumption are
    reported again until the runtime ends them — a crash before resuming must not lose
    them).

    Raises ``InvalidInput`` for a bad executor id or a negative ``stale_after``;
    ``StoreUnavailable`` or ``StoreError`` from the store (recovery may simply be run
    again: every step is idempotent).
    """
    check_id(executor_id, "executor id")
    if not stale_after >= 0:
        raise InvalidInput(
            f"stale_after must be a non-negative number of seconds, got {stale_after!r}"
        )

    own = await store.find_unfinished(executor_id=executor_id)
    own_ids = [run.id for run in own.runs]
    taken: list[str] = []
    while True:
        claimed = await store.claim_stale_runs(executor_id, stale_after, limit=CLAIM_CHUNK)
        # A stale run of our own can come back here too: it is a leftover, not a takeover.
        taken.extend(run.id for run in claimed if run.id not in own_ids and run.id not in taken)
        if len(claimed) < CLAIM_CHUNK:
            break
    run_ids = [*own_ids, *taken]
    if not run_ids:
        return RecoveryReport()

    # Every leftover now names this executor: one read lists their running tasks.
    now_mine = await store.find_unfinished(executor_id=executor_id)
    wanted = set(run_ids)
    task_ids = tuple(task.id for task in now_mine.tasks if task.run_id in wanted)
    await store.mark_interrupted(
        run_ids, error="interrupted: the process running it stopped", keep_runs=resume
    )
    report = RecoveryReport(
        interrupted_tasks=task_ids,
        interrupted_runs=() if resume else tuple(run_ids),
        claimed_runs=tuple(run_ids) if resume else (),
        taken_over=tuple(taken),
    )
    _log.info(
        "recovered",
        executor_id=executor_id,
        tasks=len(report.interrupted_tasks),
        runs=len(run_ids),
        taken_over=len(taken),
        resume=resume,
    )
    return report


@dataclass(frozen=True, slots=True)
class ReclaimReport:
    """What one :func:`reclaim_expired` pass took over and did with it.

    ``interrupted_runs``: runs marked ``interrupted`` (the default policy, or past
    ``recovery_attempts`` takeovers). ``resumable_runs``: with ``recovery="resume"``, runs
    left ``running`` and released, for their application to continue by run id.
    ``interrupted_tasks``: how many running tasks of those runs were marked ``interrupted``.
    """

    interrupted_runs: tuple[str, ...] = ()
    resumable_runs: tuple[str, ...] = ()
    interrupted_tasks: int = 0

    @property
    def empty(self) -> bool:
        """True when no lease had expired."""
        return not (self.interrupted_runs or self.resumable_runs)


async def reclaim_expired(
    store: Store,
    executor_id: str,
    *,
    lease_seconds: float,
    recovery: str = "interrupt",
    recovery_attempts: int = 3,
) -> ReclaimReport:
    """Take over the running runs of executors whose lease expired, and settle them.

    A turn is attempted for a caller (a request, a load driver) that lived in the dead
    process: re-running it here would spend tokens on an answer nobody receives. So the
    turn is never re-run: its running task is marked ``interrupted`` (partial output kept)
    and counts as one recovery attempt (``RunRecord.takeovers``). With ``recovery=
    "interrupt"`` the run is marked ``interrupted``; with ``"resume"`` it stays
    ``running`` and is released, so the application continues it by run id — until it has
    been taken over more than ``recovery_attempts`` times, then it is interrupted too.

    Raises the store's errors (every step is idempotent: a later pass finishes the work).
    """
    runs = []
    while True:
        batch = await store.reclaim_expired(executor_id, lease_seconds, limit=CLAIM_CHUNK)
        runs.extend(batch)
        if len(batch) < CLAIM_CHUNK:
            break
    if not runs:
        return ReclaimReport()
    keep = [r for r in runs if recovery == "resume" and r.takeovers <= recovery_attempts]
    kept = {r.id for r in keep}
    stop = [r.id for r in runs if r.id not in kept]
    why = f"interrupted: its executor's lease expired; taken over by {executor_id}"
    tasks = 0
    if stop:
        tasks += await store.mark_interrupted(stop, error=why)
    if keep:
        tasks += await store.mark_interrupted(kept, error=why, keep_runs=True)
        for run in keep:
            await store.release_run(run.id, executor_id, run.fence)
    report = ReclaimReport(tuple(stop), tuple(r.id for r in keep), tasks)
    _log.warning(
        "leases_reclaimed",
        executor_id=executor_id,
        interrupted=len(stop),
        resumable=len(keep),
        tasks=tasks,
    )
    return report

"""The executor: this runtime process as seen by the others sharing its database.

:class:`ExecutorActor` keeps the executor's heartbeat row and, with the same beat, renews the
leases of every run it holds in one statement (``Store.renew_leases``); a second linked
task reclaims, every ``reclaim_interval`` seconds, the runs of executors whose lease
expired (:func:`reclaim_expired`). Both run under the runtime's supervision.

:class:`FencedPersistence` is what the engine context hands instances as their
persistence: it stamps each run write with the fencing token the executor holds for that
run, so once another executor took the run over (the fence grew) the store refuses the
write with ``StaleFence`` — a paused process never writes over its successor.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from .._exceptions import NotFound, StoreError
from ..kernel import Actor
from ..store import CreateRun, CreateTask, FailTask, FinishTurn, InterruptTask, UpdateRun
from ._recovery import reclaim_expired
from ._run_tracker import DEFAULT_PERSIST_TIMEOUT

if TYPE_CHECKING:
    from ..store import Store, WriteOp
    from ._instance_home import Persistence

__all__ = ["ExecutorActor", "ExecutorLeases", "FencedPersistence"]

#: Executors silent this long, holding no running run, are deleted by reclaimers.
PRUNE_AFTER = 3600.0

_log = structlog.get_logger("promptactors.executor")


class ExecutorLeases:
    """How an executor holds its runs: the lease length, how often it beats (at most a
    third of the lease, so two beats can be lost before a lease expires), how often it
    reclaims expired leases, and what it does with the runs it takes over."""

    __slots__ = ("group", "heartbeat", "lease", "reclaim", "recovery", "recovery_attempts")

    def __init__(
        self,
        *,
        lease_seconds: float,
        heartbeat_interval: float,
        reclaim_interval: float,
        recovery: str = "interrupt",
        recovery_attempts: int = 3,
        group: str | None = None,
    ) -> None:
        self.lease = lease_seconds
        self.heartbeat = min(heartbeat_interval, lease_seconds / 3)
        self.reclaim = reclaim_interval
        self.recovery = recovery
        self.recovery_attempts = recovery_attempts
        self.group = group


class ExecutorActor(Actor[Any]):
    """Beats the executor's heartbeat (renewing its leases) and reclaims expired leases.

    Store errors are logged and retried at the next beat: a database that is down for
    less than a lease costs nothing. On a clean stop the executor's row is deleted.
    """

    def __init__(self, store: Store, executor_id: str, leases: ExecutorLeases) -> None:
        self._store = store
        self._id = executor_id
        self._leases = leases
        self.beats = 0
        self.reclaimed = 0

    async def on_start(self) -> None:
        """Starts the heartbeat and reclaim tasks. Does not raise."""
        self.start_soon(self._beat_loop)
        self.start_soon(self._reclaim_loop)

    async def on_stop(self) -> None:
        """Deletes the executor's row. Does not raise (a failure is logged)."""
        try:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await self._store.remove_executor(self._id)
        except (StoreError, NotFound) as exc:
            _log.warning("executor_remove_failed", executor_id=self._id, error=str(exc))

    async def receive(self, message: Any) -> Any:
        """The executor takes no commands. Raises ``TypeError``."""
        raise TypeError(f"ExecutorActor has no handler for {type(message).__name__}")

    async def _register(self) -> None:
        leases = self._leases
        await self._store.register_executor(
            self._id, lease_seconds=leases.lease, pid=os.getpid(), group=leases.group
        )

    async def _beat_loop(self) -> None:
        registered = False
        while True:
            try:
                if not registered:
                    await self._register()
                    registered = True
                found, _ = await self._store.renew_leases(self._id, self._leases.lease)
                registered = found  # pruned or deleted meanwhile: register again
                self.beats += 1
            except (StoreError, NotFound) as exc:
                _log.warning("executor_heartbeat_failed", executor_id=self._id, error=str(exc))
            await anyio.sleep(self._leases.heartbeat)

    async def _reclaim_loop(self) -> None:
        leases = self._leases
        while True:
            await anyio.sleep(leases.reclaim)
            try:
                report = await reclaim_expired(
                    self._store,
                    self._id,
                    lease_seconds=leases.lease,
                    recovery=leases.recovery,
                    recovery_attempts=leases.recovery_attempts,
                )
                self.reclaimed += len(report.interrupted_runs) + len(report.resumable_runs)
                await self._store.prune_executors(max(PRUNE_AFTER, 10 * leases.lease))
            except (StoreError, NotFound) as exc:
                _log.warning("executor_reclaim_failed", executor_id=self._id, error=str(exc))


_SLOTS: dict[type, tuple[str, ...]] = {}


def _with(op: Any, **changes: Any) -> Any:
    # The ops are validated frozen records; these fields are ours to fill and already
    # valid, so skip a second validation of the whole payload (the hot path). Copying
    # the slots directly: copy.copy goes through __reduce_ex__ and fields() twice.
    cls = type(op)
    names = _SLOTS.get(cls)
    if names is None:
        names = _SLOTS[cls] = tuple(f.name for f in dataclasses.fields(op))
    new = object.__new__(cls)
    for name in names:
        object.__setattr__(new, name, changes[name] if name in changes else getattr(op, name))
    return new


class FencedPersistence:
    """An instance's persistence that fences every write of the runs this executor holds.

    A run created through it is created held by the executor (fence 1, under a lease) and
    freed when it ends; ``adopt`` adds a run claimed elsewhere with its fence. Writes of
    other runs pass as they are. ``persist`` raises what the wrapped persistence raises —
    ``StaleFence`` when another executor has taken the run over.

    An instance whose write is refused with ``StaleFence`` is fenced out (see
    ``TurnRunner._fence_out``): its turn ends with that error, it writes nothing more and
    stops. Its run keeps its stale fence here, so a straggling write is refused too.
    """

    __slots__ = ("_created", "_executor_id", "_inner", "_lease", "_runs", "_tasks")

    def __init__(self, inner: Persistence, executor_id: str, lease_seconds: float) -> None:
        self._inner = inner
        self._executor_id = executor_id
        self._lease = lease_seconds
        self._runs: dict[str, int] = {}
        self._created: set[str] = set()  # held by the executor itself: freed as they end
        self._tasks: dict[str, str] = {}

    @property
    def inner(self) -> Persistence:
        return self._inner

    def adopt(self, run_id: str, fence: int) -> None:
        """Fence the writes of ``run_id`` with ``fence`` from now on."""
        self._runs[run_id] = fence

    def fence_of(self, run_id: str) -> int | None:
        """The fence this executor writes ``run_id`` with, if it holds it."""
        return self._runs.get(run_id)

    async def persist(self, *ops: WriteOp, timeout: float | None = DEFAULT_PERSIST_TIMEOUT) -> None:
        """Stamp ``ops`` with their runs' fences and persist them (see ``Persistence``)."""
        await self._inner.persist(*[self._stamp(op) for op in ops], timeout=timeout)

    def _stamp(self, op: WriteOp) -> WriteOp:
        runs = self._runs
        if isinstance(op, CreateRun):
            if op.owner_id is None and op.executor_id in (None, self._executor_id):
                runs[op.run_id] = 1
                self._created.add(op.run_id)
                return _with(  # type: ignore[no-any-return]
                    op,
                    owner_id=self._executor_id,
                    executor_id=self._executor_id,
                    lease_seconds=self._lease,
                )
            return op
        if isinstance(op, CreateTask):
            if op.run_id is not None and op.fence is None and op.run_id in runs:
                self._tasks[op.task_id] = op.run_id
                return _with(op, fence=runs[op.run_id])  # type: ignore[no-any-return]
            return op
        if isinstance(op, FinishTurn | FailTask | InterruptTask):
            run_id = self._tasks.pop(op.task_id, None)
            if run_id is not None and op.fence is None and run_id in runs:
                return _with(op, fence=runs[run_id])  # type: ignore[no-any-return]
            return op
        if isinstance(op, UpdateRun) and op.run_id in runs:
            changes: dict[str, Any] = {}
            if op.fence is None:
                changes["fence"] = runs[op.run_id]
            if op.status is not None and op.status != "running":
                # The run has ended: free it, so it can be continued by run id anywhere.
                del runs[op.run_id]
                if op.run_id in self._created:
                    self._created.discard(op.run_id)
                    changes["release"] = True
            return _with(op, **changes) if changes else op
        return op

"""What a supervisor keeps per child, and the small records around it."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import anyio
import structlog

if TYPE_CHECKING:
    from collections import deque

    from anyio.abc import TaskStatus

    from ..kernel import Cell, Starter
    from ._spec import ChildSpec, Termination
    from ._supervisor import Supervisor

__all__ = ["ChildInfo", "ChildState", "PendingRestart", "StartReporter"]

_log = structlog.get_logger("promptactors.supervisors")


class ChildState:
    """A supervisor's bookkeeping for one child spec, across its incarnations.

    ``generation`` numbers the incarnations: an exit reported with an older number is
    stale (the supervisor stopped that incarnation, or already restarted past it).
    """

    __slots__ = (
        "cell",
        "done",
        "ended",
        "finished",
        "generation",
        "pending",
        "restart_times",
        "restarting",
        "running",
        "scope",
        "spec",
        "starting",
        "subtree",
        "terminated",
    )

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.starting = False  # between the start and the end of on_start
        self.cell: Cell[Any] | None = None
        self.subtree: Supervisor | None = None
        self.scope: anyio.CancelScope | None = None
        self.generation = 0
        self.running = False
        self.finished = False  # exited, and its restart type says it stays stopped
        self.restarting = False  # waiting (backoff, or its turn in a group) to start again
        self.pending: PendingRestart | None = None  # the scheduled restart it waits for
        self.terminated = False
        self.ended = False  # on_terminated was called since its last start
        self.done: anyio.Event | None = None
        # Created on the first restart: most children never restart (a deque is ~600 bytes).
        self.restart_times: deque[float] | None = None

    async def report_terminated(self, supervisor: str, why: Termination) -> None:
        """Call the spec's ``on_terminated`` (once since the last start), shielded from
        cancellation and bounded by the shutdown timeout; its errors are logged."""
        hook = self.spec.on_terminated
        if hook is None or self.ended:
            return
        self.ended = True
        bound = self.spec.shutdown
        with anyio.move_on_after(math.inf if bound is None else bound, shield=True) as scope:
            try:
                await hook(why)
            except Exception as exc:
                _log.error(
                    "on_terminated_failed",
                    supervisor=supervisor,
                    child=self.spec.id,
                    error=repr(exc),
                )
        if scope.cancelled_caught:
            _log.error(
                "on_terminated_timed_out", supervisor=supervisor, child=self.spec.id, timeout=bound
            )

    def renew(self) -> None:
        """Make a child stopped for good startable again, with a fresh cell (new ref)."""
        self.terminated = False
        self.finished = False
        self.cell = None


class PendingRestart:
    """A group restart scheduled for ``due`` (after a backoff). Members leave it when a
    later group restart takes them over, or when they are stopped for good."""

    __slots__ = ("due", "group")

    def __init__(self, due: float, group: list[ChildState]) -> None:
        self.due = due
        self.group = group


class ChildInfo:
    """A row of :meth:`Supervisor.which_children`."""

    __slots__ = ("id", "kind", "restart", "running")

    def __init__(self, id: str, kind: str, restart: str, running: bool) -> None:
        self.id = id
        self.kind = kind
        self.restart = restart
        self.running = running

    def __repr__(self) -> str:
        return f"ChildInfo(id={self.id!r}, kind={self.kind!r}, running={self.running})"


class StartReporter:
    """Forwards a child's ``started()`` to its task status, remembering it (and clearing
    the child's ``starting`` flag)."""

    __slots__ = ("_child", "_status", "has_started")

    def __init__(self, status: TaskStatus[None] | Starter, child: ChildState | None = None) -> None:
        self._status = status
        self._child = child
        self.has_started = False

    def started(self, value: object = None) -> None:
        self.has_started = True
        if self._child is not None:
            self._child.starting = False
        self._status.started()

"""Supervisors with OTP semantics, built on task groups.

A supervisor owns a task group; each child incarnation is one task in it, started in
order (each after the previous one's ``on_start`` completed). A child's exit is caught in
its own task and reported to the supervisor's control loop — a crash never tears the task
group down (trio's default) — which applies the restart type, the strategy and the
restart intensity:

* ``one_for_one``: restart only the child that exited;
* ``one_for_all``: stop all other children (reverse start order), restart all in order;
* ``rest_for_one``: stop the children started after it, restart it and them in order.

Children that stopped for good (a transient child's normal exit, a terminated child)
are not brought back by a sibling's group restart; temporary siblings are stopped and
forgotten. The control loop handles one exit at a time and starts restarts itself, so a
child never runs two incarnations at once; a sibling that exited while the first exit was
handled is restarted with the group, and its own exit is then ignored, as in OTP. A
restart delayed by a backoff is scheduled, not waited for: other exits are handled
meanwhile, and a later group restart that includes a waiting child takes it over.

More than ``max_restarts`` restarts within ``period`` seconds: the supervisor stops all
its children in reverse start order and raises :class:`RestartIntensityExceeded` to its
parent (escalation). While a child restarts, messages to it wait in its mailbox (bounded)
and reach the new incarnation; its ``ActorRef`` stays valid. Cancelling the task that
runs a supervisor kills its children at once; :meth:`Supervisor.shutdown` stops them
gracefully (each within its ``shutdown`` timeout, then killed wherever it is) and
cancels a pending restart.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from .._exceptions import ActorDead, InvalidInput, RestartIntensityExceeded
from ..kernel import Actor, ActorRef, Cell, Exit, Starter, run_incarnation, start_and_wait
from ._child import ChildInfo, ChildState, PendingRestart, StartReporter

if TYPE_CHECKING:
    from anyio.abc import TaskGroup, TaskStatus
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from ._spec import Backoff, ChildSpec, Strategy

__all__ = ["Supervisor"]

_log = structlog.get_logger("promptactors.supervisors")
_SHUTDOWN = object()


class Supervisor:
    """Start children from specs, watch them, restart them per the strategy.

    Run it with ``await supervisor.run()`` in a task group (``task_group.start`` returns
    once every child has started), or with :func:`open_supervisor`. A supervisor object
    runs once. Raises ``InvalidInput`` for bad settings or duplicate child ids.
    """

    #: Whether the spec of a child stopped for good stays (for :meth:`restart_child`).
    _keeps_specs = True

    def __init__(
        self,
        children: list[ChildSpec] | tuple[ChildSpec, ...] = (),
        *,
        strategy: Strategy = "one_for_one",
        max_restarts: int = 3,
        period: float = 5.0,
        backoff: Backoff | None = None,
        name: str = "supervisor",
    ) -> None:
        if strategy not in ("one_for_one", "one_for_all", "rest_for_one"):
            raise InvalidInput(f"unknown supervision strategy {strategy!r}")
        if max_restarts < 0 or period <= 0:
            raise InvalidInput("max_restarts must be >= 0 and period > 0")
        self.name = name
        self.strategy: Strategy = strategy
        self.max_restarts = max_restarts
        self.period = period
        self.backoff = backoff
        self._children: dict[str, ChildState] = {}
        for spec in children:
            self._add(spec)
        self._restart_times: deque[float] = deque()
        self._tg: TaskGroup | None = None
        self._send: MemoryObjectSendStream[Any] | None = None
        self._recv: MemoryObjectReceiveStream[Any] | None = None
        self._state = "new"
        self._stopping = False
        self._restart_scope: anyio.CancelScope | None = None
        self._pending: list[tuple[float, int, PendingRestart]] = []  # a heap, by due time
        self._pending_seq = itertools.count()
        self._finished: anyio.Event | None = None
        self._giving_up = False  # escalating: children not running will not run again

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self._state} children={len(self._children)}>"

    # -- queries ---------------------------------------------------------------------------

    def child(self, child_id: str) -> ActorRef[Any] | Supervisor:
        """The reference of child ``child_id`` (an ``ActorRef``, or the subtree's current
        supervisor). Raises ``LookupError`` for an unknown id, ``ActorDead`` if the child
        has not started yet."""
        child = self._children.get(child_id)
        if child is None:
            raise LookupError(f"supervisor {self.name!r} has no child {child_id!r}")
        if child.cell is not None:
            return ActorRef(child.cell)
        if child.subtree is not None:
            return child.subtree
        raise ActorDead(f"child {child_id!r} of supervisor {self.name!r} has not started")

    def which_children(self) -> list[ChildInfo]:
        """One row per child, in start order. A child being restarted counts as running."""
        return [
            ChildInfo(
                c.spec.id,
                "supervisor" if c.subtree else "actor",
                c.spec.restart,
                c.running or c.restarting,
            )
            for c in self._children.values()
        ]

    def count_children(self) -> int:
        """How many children the supervisor knows (running, restarting, or kept specs)."""
        return len(self._children)

    @property
    def running(self) -> bool:
        return self._state == "running"

    # -- running ---------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[Supervisor] = anyio.TASK_STATUS_IGNORED) -> None:
        """Start the children in order, then supervise until :meth:`shutdown`.

        Reports itself through ``task_status`` once all children started. Raises the
        error of a child that fails to start (after stopping those already started), or
        ``RestartIntensityExceeded`` on escalation.
        """
        if self._state != "new":
            raise RuntimeError(f"supervisor {self.name!r} has already run")
        self._state = "starting"
        self._finished = anyio.Event()
        self._send, self._recv = anyio.create_memory_object_stream[Any](math.inf)
        failure: BaseException | None = None
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                try:
                    for child in list(self._children.values()):
                        await self._start(child, initial=True)
                    self._state = "running"
                    task_status.started(self)
                    await self._control_loop()
                except Exception as exc:
                    failure = exc
                finally:
                    self._state = "stopping"
                    self._giving_up = failure is not None
                    with anyio.CancelScope(shield=True):
                        await self._stop_all()
                    tg.cancel_scope.cancel()
        finally:
            self._state = "stopped"
            self._send.close()
            self._recv.close()
            self._finished.set()
        if failure is not None:
            raise failure

    async def shutdown(self) -> None:
        """Stop every child gracefully (reverse start order) and end :meth:`run`.

        Waits until it has ended. Idempotent; a no-op on a supervisor that never ran.
        """
        if self._state in ("new", "stopped") or self._send is None:
            return
        self._stopping = True
        if self._restart_scope is not None:
            self._restart_scope.cancel()  # no restart outlives a shutdown
        self._send.send_nowait(_SHUTDOWN)
        assert self._finished is not None
        await self._finished.wait()

    async def start_child(self, spec: ChildSpec) -> ActorRef[Any] | Supervisor:
        """Add a child while running and start it; returns its reference once started.

        Raises ``InvalidInput`` for a duplicate id, ``ActorDead`` if the supervisor is not
        running, and what the child's start raised (the child is then not kept).
        """
        if self._state != "running" or self._stopping:
            raise ActorDead(f"supervisor {self.name!r} is not running")
        child = self._add(spec)
        try:
            await self._start(child, initial=True)
        except BaseException:
            self._children.pop(spec.id, None)
            if child.cell is not None:
                child.cell.terminate()
            raise
        return self.child(spec.id)

    async def terminate_child(self, child_id: str) -> None:
        """Stop child ``child_id`` for good (gracefully, within its shutdown timeout).

        Its spec stays (see :meth:`restart_child`) unless it is temporary or belongs to a
        dynamic supervisor. Raises ``LookupError`` for an unknown id.
        """
        child = self._children.get(child_id)
        if child is None:
            raise LookupError(f"supervisor {self.name!r} has no child {child_id!r}")
        child.terminated = True
        await self._stop(child, terminal=True)
        self._retire(child)

    async def restart_child(self, child_id: str) -> ActorRef[Any] | Supervisor:
        """Start again a child stopped for good: by :meth:`terminate_child` or
        ``ActorRef.stop``, or a transient child after a normal exit (a fresh reference).

        Raises ``LookupError`` for an unknown id, ``InvalidInput`` if it is running or
        being restarted, ``ActorDead`` if the supervisor is not running, and what the
        child's start raised (the child then stays stopped).
        """
        child = self._children.get(child_id)
        if child is None:
            raise LookupError(f"supervisor {self.name!r} has no child {child_id!r}")
        if self._state != "running" or self._stopping:
            raise ActorDead(f"supervisor {self.name!r} is not running")
        if child.running or not (child.terminated or child.finished):
            raise InvalidInput(f"child {child_id!r} of {self.name!r} is running or restarting")
        child.renew()
        try:
            await self._start(child, initial=True)
        except BaseException:
            child.terminated = True
            if child.cell is not None:
                child.cell.terminate()
            raise
        return self.child(child_id)

    # -- internals -------------------------------------------------------------------------

    def _add(self, spec: ChildSpec) -> ChildState:
        if spec.id in self._children:
            raise InvalidInput(f"supervisor {self.name!r} already has a child {spec.id!r}")
        child = ChildState(spec)
        self._children[spec.id] = child
        return child

    def _retire(self, child: ChildState) -> None:
        """A child that will not run again: forget it if its spec is not kept."""
        if child.spec.restart == "temporary" or not self._keeps_specs:
            self._children.pop(child.spec.id, None)

    async def _start(self, child: ChildState, *, initial: bool) -> None:
        assert self._tg is not None
        child.generation += 1
        child.running = True
        child.finished = False
        child.ended = False
        child.done = done = anyio.Event()
        # start_soon + a reply slot: TaskGroup.start costs ~4x as much per child.
        child.starting = True  # until the child task reports started, or ends
        await start_and_wait(self._tg, self._child_task, child, child.generation, done, initial)

    async def _child_task(
        self,
        child: ChildState,
        generation: int,
        done: anyio.Event,
        initial: bool,
        *,
        task_status: Starter,
    ) -> None:
        exit: Exit | None = None
        reporter = StartReporter(task_status, child)
        try:
            exit = await self._run_child(child, reporter)
        finally:
            if generation == child.generation:
                child.starting = False
            if generation == child.generation:
                child.running = False
            done.set()
            if exit is None and child.cell is not None and generation == child.generation:
                # Cancelled from outside: the tree is going down; settle the mailbox.
                child.cell.terminate()
            if exit is None:
                task_status.abandon()
        if not reporter.has_started:
            if initial:
                task_status.fail(
                    exit.error
                    or ActorDead(
                        f"child {child.spec.id!r} of {self.name!r} was stopped while starting"
                    )
                )
                return
            task_status.started()
        assert self._send is not None
        self._send.send_nowait((child, generation, exit))

    def _cell_for(self, child: ChildState, actor: Actor[Any]) -> Cell[Any]:
        cell = child.cell
        if cell is None:
            assert self._tg is not None
            cell = child.cell = Cell(
                type(actor),
                name=child.spec.id,
                mailbox_size=child.spec.mailbox_size,
                owner=self,
                task_group=self._tg,
                shutdown_timeout=child.spec.shutdown,
            )
        elif type(actor) is not cell.actor_class:
            cell.actor_class = type(actor)
            cell.table = None if type(actor)._custom_receive else type(actor)._handler_table
        return cell

    async def _run_child(self, child: ChildState, reporter: StartReporter) -> Exit:
        """Build one incarnation from the spec and run it until it exits."""
        try:
            incarnation: object = child.spec.start()
        except Exception as exc:
            return Exit("crash", exc, started=False)
        if isinstance(incarnation, Supervisor):
            child.subtree = incarnation
            # A subtree has no cell: this scope is how it is killed.
            with anyio.CancelScope() as scope:
                child.scope = scope
                try:
                    await incarnation.run(task_status=reporter)
                except Exception as exc:
                    return Exit("crash", exc, reporter.has_started)
                finally:
                    child.scope = None
                return Exit("shutdown")
            return Exit("killed", None, reporter.has_started)
        if isinstance(incarnation, Actor):
            cell = self._cell_for(child, incarnation)
            return await run_incarnation(cell, incarnation, reporter)
        error = TypeError(
            f"ChildSpec {child.spec.id!r}: start() returned {incarnation!r}, "
            f"not an Actor or a Supervisor"
        )
        return Exit("crash", error, started=False)

    async def _stop(
        self, child: ChildState, *, terminal: bool, timeout: float | None = None
    ) -> None:
        """Stop a running child and wait for it; its exit is not treated as a failure.

        ``timeout`` overrides the spec's shutdown timeout for this stop only.
        """
        if terminal:
            self._unschedule(child)
            if child.cell is not None:
                child.cell.closed = True
        if not child.running:
            if terminal and child.cell is not None:
                child.cell.terminate()
            if terminal:
                await child.report_terminated(
                    self.name, "gave_up" if self._giving_up else "stopped"
                )
            return
        child.generation += 1  # the exit event of this incarnation is now stale
        done = child.done
        assert done is not None
        if timeout is None:
            timeout = child.spec.shutdown
        if timeout == 0 or child.starting:
            # Nothing graceful reaches a child still in on_start: cancel it, as an
            # interrupted TaskGroup.start would.
            self._kill(child)
        elif child.cell is not None:
            child.cell.request_stop("drain" if terminal else "now", reason="shutdown")
        elif child.subtree is not None:
            self._tg_start_soon(child.subtree.shutdown)
        with anyio.move_on_after(math.inf if timeout is None else timeout):
            await done.wait()
        killed = not done.is_set()
        if killed:
            _log.warning("child_killed", supervisor=self.name, child=child.spec.id, timeout=timeout)
            self._kill(child)
            await done.wait()
        child.running = False
        if terminal and child.cell is not None:
            child.cell.terminate()
        if terminal:
            await child.report_terminated(self.name, "killed" if killed else "stopped")

    def _kill(self, child: ChildState) -> None:
        """Cancel the child's incarnation wherever it is, without a graceful stop."""
        cell = child.cell
        if cell is not None and (cell.scope is not None or cell.hook_scope is not None):
            # The kernel's kill: fails the in-flight ask and joins the linked tasks (it
            # also reaches an on_crash hook that hangs).
            cell.kill()
        elif child.scope is not None:
            child.scope.cancel()  # a subtree

    def _tg_start_soon(self, fn: Any) -> None:
        assert self._tg is not None
        self._tg.start_soon(fn)

    async def _stop_all(self) -> None:
        for child in reversed(list(self._children.values())):
            await self._stop(child, terminal=True)

    async def stop_child(self, cell: Cell[Any], timeout: float | None) -> None:
        """The ``Owner`` hook behind ``ActorRef.stop`` for a supervised actor."""
        child = self._children.get(cell.name)
        if child is None or child.cell is not cell:
            return
        child.terminated = True
        await self._stop(child, terminal=True, timeout=timeout)
        self._retire(child)

    async def _control_loop(self) -> None:
        """Handle exits one at a time, and start the restarts whose backoff is over."""
        recv = self._recv
        assert recv is not None
        while not self._stopping:
            try:
                event = recv.receive_nowait()
            except anyio.WouldBlock:
                wait = self._until_next_restart()
                if wait <= 0:
                    await self._start_due_restarts()
                    continue
                event = None
                with anyio.move_on_after(wait):
                    event = await recv.receive()
                if event is None:
                    continue
            if event is _SHUTDOWN or self._stopping:
                return
            child: ChildState = event[0]
            generation: int = event[1]
            exit: Exit = event[2]
            if generation != child.generation or self._children.get(child.spec.id) is not child:
                continue  # a stopped incarnation, or a child that was removed
            await self._handle_exit(child, exit)

    async def _handle_exit(self, child: ChildState, exit: Exit) -> None:
        restart = child.spec.restart
        wanted = not child.terminated and (
            restart == "permanent" or (restart == "transient" and exit.abnormal)
        )
        if not wanted:
            child.finished = True
            if child.cell is not None:
                child.cell.terminate()
            self._retire(child)
            await child.report_terminated(self.name, "stopped" if child.terminated else "exited")
            return
        now = anyio.current_time()
        self._restart_times.append(now)
        while self._restart_times and self._restart_times[0] <= now - self.period:
            self._restart_times.popleft()
        if len(self._restart_times) > self.max_restarts:
            _log.error(
                "restart_intensity_exceeded",
                supervisor=self.name,
                child=child.spec.id,
                max_restarts=self.max_restarts,
                period=self.period,
            )
            raise RestartIntensityExceeded(
                self.name, self.max_restarts, self.period
            ) from exit.error
        times = child.restart_times
        if times is None:
            times = child.restart_times = deque()
        times.append(now)
        while times and times[0] <= now - self.period:
            times.popleft()
        delay = self.backoff.delay(len(times)) if self.backoff else 0.0

        group = [child]
        if self.strategy != "one_for_one":
            order = list(self._children.values())
            affected = order if self.strategy == "one_for_all" else order[order.index(child) :]
            # Siblings that stopped for good (a transient child's normal exit, a terminated
            # child) stay stopped. A sibling whose own exit is still queued is treated as
            # running: restarted with the group (its exit then is stale, as in OTP), or
            # dropped if it is temporary.
            siblings = [c for c in affected if c is not child and not (c.finished or c.terminated)]
            restartable = set(siblings)
            for sibling in reversed(siblings):
                temporary = sibling.spec.restart == "temporary"
                if sibling.running or temporary:
                    await self._stop(sibling, terminal=temporary)
                if temporary:
                    self._retire(sibling)
            group = [
                c
                for c in affected
                if (c is child or c in restartable)
                and self._children.get(c.spec.id) is c
                and not c.terminated
            ]
        _log.warning(
            "child_restarting",
            supervisor=self.name,
            child=child.spec.id,
            exit=exit.kind,
            error=repr(exit.error) if exit.error else None,
            delay=round(delay, 4),
        )
        for c in group:
            self._unschedule(c)  # this restart takes over any pending one
            c.generation += 1  # an exit of a member still queued is now stale (as in OTP)
        if delay > 0:
            self._schedule(now + delay, group)
        else:
            await self._start_group(group)

    def _schedule(self, due: float, group: list[ChildState]) -> None:
        pending = PendingRestart(due, group)
        for c in group:
            c.pending = pending
            c.restarting = True
        heapq.heappush(self._pending, (due, next(self._pending_seq), pending))

    def _unschedule(self, child: ChildState) -> None:
        pending = child.pending
        if pending is not None:
            pending.group.remove(child)
            child.pending = None
            child.restarting = False

    def _until_next_restart(self) -> float:
        """Seconds until the next scheduled restart is due (``inf`` if there is none)."""
        heap = self._pending
        while heap and not heap[0][2].group:
            heapq.heappop(heap)  # every member was taken over or stopped
        return heap[0][0] - anyio.current_time() if heap else math.inf

    async def _start_due_restarts(self) -> None:
        now = anyio.current_time()
        while self._pending and self._pending[0][0] <= now and not self._stopping:
            _, _, pending = heapq.heappop(self._pending)
            group = list(pending.group)
            for c in group:
                self._unschedule(c)
            await self._start_group(group)

    async def _start_group(self, group: list[ChildState]) -> None:
        """Start ``group`` in order, in the control loop.

        Starting inline (not in a task of its own) means the next exit is handled only once
        this group is up, so no child is ever started twice. :meth:`shutdown` cancels a
        start in progress. Meanwhile messages wait in the mailboxes.
        """
        for c in group:
            c.restarting = True
        try:
            with anyio.CancelScope() as scope:
                self._restart_scope = scope
                if self._stopping:
                    scope.cancel()
                for c in group:
                    c.restarting = False
                    # Skip a child stopped for good (or removed) meanwhile, or restarted
                    # by restart_child.
                    if self._children.get(c.spec.id) is c and not c.terminated and not c.running:
                        await self._start(c, initial=False)
        finally:
            self._restart_scope = None
            for c in group:
                c.restarting = False

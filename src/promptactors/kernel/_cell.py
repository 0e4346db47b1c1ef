"""The cell: what an ``ActorRef`` points at, and the receive loop.

A cell outlives the actor incarnations it hosts: it keeps the mailbox, so messages sent
while a supervisor restarts the actor wait there (the bounded stash) and reach the next
incarnation. A cell is *closed* when its actor stops for good: new messages are refused
with ``ActorDead``, pending asks fail with ``ActorDead``, queued tells are reported as
dead letters — never dropped silently.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

import anyio
import structlog

from .._backend import Backend, Mailbox, Reply, get_backend
from .._exceptions import ActorDead, InvalidInput
from ._gc import note_actor_started

if TYPE_CHECKING:
    from collections import deque
    from collections.abc import Awaitable, Callable

    from anyio.abc import TaskGroup, TaskStatus

    from ._actor import Actor, HandlerFn
    from ._start import Starter

M = TypeVar("M")

__all__ = ["Cell", "DeferredReply", "Exit", "ExitKind", "Owner", "run_incarnation"]

ExitKind = Literal["normal", "shutdown", "crash", "killed"]
StopMode = Literal["now", "drain"]
Envelope = tuple[Any, Reply | None]

#: Messages handled back to back before the loop yields to the scheduler.
MESSAGE_BUDGET = 128

_log = structlog.get_logger("promptactors.actors")
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Exit:
    """How an incarnation ended.

    ``normal``: the actor stopped itself or was stopped for good; ``shutdown``: its
    supervisor stopped it; ``crash``: an exception escaped (``error``); ``killed``: it was
    cancelled after its shutdown timeout (or by its owner) without running ``on_stop``.
    ``started`` is False when ``on_start`` never completed.
    """

    kind: ExitKind
    error: BaseException | None = None
    started: bool = True

    @property
    def abnormal(self) -> bool:
        return self.kind in ("crash", "killed")


class Owner(Protocol):
    """Whoever runs a cell's incarnations: a supervisor, or the standalone spawner."""

    async def stop_child(self, cell: Cell[Any], timeout: float | None) -> None: ...


class Cell(Generic[M]):
    """The stable home of an actor: name, mailbox, current incarnation, owner."""

    __slots__ = (
        "_linked_idle",
        "_terminated",
        "actor",
        "actor_class",
        "backend",
        "closed",
        "current",
        "deferred",
        "hook_scope",
        "incarnation",
        "linked",
        "linked_crash",
        "mailbox",
        "name",
        "owner",
        "scope",
        "shutdown_timeout",
        "stop_mode",
        "stop_reason",
        "table",
        "task_group",
    )

    def __init__(
        self,
        actor_class: type[Actor[M]],
        *,
        name: str | None,
        mailbox_size: int | None,
        owner: Owner,
        task_group: TaskGroup,
        shutdown_timeout: float | None = 5.0,
    ) -> None:
        size = actor_class.mailbox_size if mailbox_size is None else mailbox_size
        if size < 1:
            raise InvalidInput(f"mailbox_size must be at least 1, got {size}")
        self.backend: Backend = get_backend()
        note_actor_started()
        self.actor_class = actor_class
        self.name = name or f"{actor_class.__name__}-{next(_ids)}"
        self.mailbox: Mailbox[Envelope] = self.backend.mailbox(size)
        # None: the actor takes any message (it overrides receive).
        self.table: dict[type, HandlerFn] | None = (
            None if actor_class._custom_receive else actor_class._handler_table
        )
        self.owner = owner
        self.task_group = task_group
        self.shutdown_timeout = shutdown_timeout
        self.actor: Actor[M] | None = None
        self.closed = False
        self.incarnation = 0
        self.current: Envelope | None = None
        # Replies a handler took to settle later (defer_reply); failed if the incarnation ends.
        self.deferred: set[DeferredReply] | None = None
        self.scope: Any = None  # the incarnation's cancel scope (the backend's own type)
        self.hook_scope: Any = None  # on_crash's scope: a kill must reach a hanging hook too
        self.stop_mode: StopMode | None = None
        self.stop_reason: ExitKind = "normal"
        self.linked: set[Any] = set()
        self.linked_crash: BaseException | None = None
        self._linked_idle: anyio.Event | None = None
        self._terminated: anyio.Event | None = None

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("running" if self.scope else "waiting")
        return f"<Cell {self.name!r} {state} queued={len(self.mailbox)}>"

    # -- message types ---------------------------------------------------------------------

    def resolve(self, message_type: type) -> HandlerFn | None:
        """The handler for ``message_type`` (walking its bases), cached in the class table."""
        table = self.actor_class._handler_table
        fn = table.get(message_type)
        if fn is None:
            for base in message_type.__mro__[1:]:
                fn = table.get(base)
                if fn is not None:
                    table[message_type] = fn
                    break
        return fn

    def check_message(self, message: object) -> None:
        """Raise ``InvalidInput`` when the actor has no handler for ``message``'s type."""
        if self.resolve(type(message)) is None:
            known = ", ".join(sorted(t.__name__ for t in self.actor_class._handler_table))
            raise InvalidInput(
                f"actor {self.name!r} has no handler for {type(message).__name__} "
                f"(it handles: {known or 'nothing'})"
            )

    # -- stopping --------------------------------------------------------------------------

    def request_stop(self, mode: StopMode, *, reason: ExitKind) -> None:
        """Ask the current incarnation to leave its loop (``now``: after the current
        message; ``drain``: once the mailbox is empty)."""
        if self.stop_mode != "now":
            self.stop_mode = mode
        self.stop_reason = reason
        self.mailbox.interrupt()

    def leaves_after_this(self, items: deque[Any]) -> bool:
        """After a message, with a stop requested: leave now, or once drained."""
        return self.stop_mode == "now" or not items

    def kill(self) -> None:
        """Cancel the current incarnation wherever it is (no ``on_stop``), or its
        ``on_crash`` hook if that is what runs."""
        if self.scope is not None:
            self.scope.cancel()
        if self.hook_scope is not None:
            self.hook_scope.cancel()

    def inject_crash(self, error: BaseException) -> bool:
        """Crash the current incarnation with ``error``, as if a linked task had raised it
        (the supervisor restarts it per its spec). Returns False when no incarnation runs
        (stopped, or between a crash and its restart): nothing happens then."""
        if self.closed or self.scope is None:
            return False
        if self.linked_crash is None:
            self.linked_crash = error
        self.kill()
        return True

    def terminate(self) -> None:
        """Close the cell for good and settle everything still queued (idempotent)."""
        self.closed = True
        error = ActorDead(f"actor {self.name!r} is stopped")
        self.mailbox.fail_senders(error)
        dead_letters = 0
        for _message, reply in self.mailbox.drain():
            if reply is not None:
                reply.set_exception(ActorDead(f"actor {self.name!r} stopped before answering"))
            else:
                dead_letters += 1
        if dead_letters:
            _log.warning("dead_letters", actor=self.name, count=dead_letters)
        self.actor = None  # break the actor <-> cell cycle so refcounting frees them
        if self._terminated is not None:
            self._terminated.set()
        else:
            self._terminated = _SET

    async def wait_terminated(self) -> None:
        if self._terminated is None:
            self._terminated = anyio.Event()
        await self._terminated.wait()

    def defer_current(self) -> DeferredReply:
        """Take the reply of the ask being handled, to be settled later by the actor."""
        envelope = self.current
        if envelope is None or envelope[1] is None:
            raise RuntimeError("defer_reply() is for a handler answering an ask")
        deferred = DeferredReply(self, envelope[1])
        self.current = (envelope[0], None)  # the loop no longer answers it
        if self.deferred is None:
            self.deferred = set()
        self.deferred.add(deferred)
        return deferred

    def fail_deferred(self) -> None:
        """The incarnation ended: fail every reply it deferred and never settled."""
        deferred, self.deferred = self.deferred, None
        for item in deferred or ():
            item.fail(ActorDead(f"actor {self.name!r} stopped before answering"))

    def fail_current(self) -> None:
        envelope = self.current
        if envelope is not None:
            self.current = None
            reply = envelope[1]
            if reply is not None:
                reply.set_exception(
                    ActorDead(f"actor {self.name!r} stopped while handling the message")
                )

    # -- linked tasks ----------------------------------------------------------------------

    def start_linked(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        if self.scope is None:
            raise ActorDead(f"actor {self.name!r} is not running: cannot start a linked task")
        self.backend.start_soon(self.task_group, self._run_linked, fn, args, self.incarnation)

    async def _run_linked(
        self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], incarnation: int
    ) -> None:
        if incarnation != self.incarnation or self.scope is None:
            return  # the incarnation ended before this task got to run
        with self.backend.cancel_scope() as scope:
            self.linked.add(scope)
            try:
                await fn(*args)
            except Exception as exc:
                if incarnation == self.incarnation and self.linked_crash is None:
                    self.linked_crash = exc
                    self.kill()
            finally:
                self.linked.discard(scope)
                if not self.linked and self._linked_idle is not None:
                    self._linked_idle.set()

    async def join_linked(self) -> None:
        """Cancel this incarnation's linked tasks and wait until they have all ended."""
        if not self.linked:
            return
        for scope in list(self.linked):
            scope.cancel()
        self._linked_idle = anyio.Event()
        with anyio.CancelScope(shield=True):
            await self._linked_idle.wait()
        self._linked_idle = None


class DeferredReply:
    """The reply of an ask that its handler answers later (``Actor.defer_reply``).

    Settle it once with :meth:`resolve` or :meth:`fail`; if the actor's incarnation ends
    first, the asker gets ``ActorDead``. Settling twice is a no-op.
    """

    __slots__ = ("_cell", "_reply")

    def __init__(self, cell: Cell[Any], reply: Reply) -> None:
        self._cell = cell
        self._reply = reply

    def resolve(self, value: Any = None) -> None:
        self._forget()
        self._reply.set_result(value)

    def fail(self, error: BaseException) -> None:
        self._forget()
        self._reply.set_exception(error)

    def detach(self) -> None:
        """Keep this reply past the end of the incarnation that deferred it: it is then
        not failed with ``ActorDead`` when that incarnation ends. For state kept outside
        the incarnations (a home), which a later incarnation settles; whoever keeps it
        must settle it."""
        self._forget()

    def _forget(self) -> None:
        deferred = self._cell.deferred
        if deferred is not None:
            deferred.discard(self)


def _fail_deferred_of(cell: Cell[Any], reply: Reply, error: BaseException) -> None:
    for item in list(cell.deferred or ()):
        if item._reply is reply:
            item.fail(error)


class _SetEvent:
    """Stands for an ``anyio.Event`` that is already set (saves one per terminated cell)."""

    async def wait(self) -> None:
        await anyio.lowlevel.checkpoint()

    def set(self) -> None:
        pass


_SET: Any = _SetEvent()


async def run_incarnation(
    cell: Cell[M], actor: Actor[M], task_status: TaskStatus[None] | Starter | None = None
) -> Exit:
    """Run one incarnation of ``actor`` in ``cell`` until it stops, crashes or is killed.

    Returns how it ended; exceptions are captured in the ``Exit``. Cancellation from
    outside is never a crash: it propagates (after failing the in-flight ask).
    """
    cell.incarnation += 1
    cell.actor = actor
    cell.linked_crash = None
    if not cell.closed:
        cell.stop_mode = None
        cell.stop_reason = "normal"
    actor._cell = cell
    exit: Exit | None = None
    started = False
    with cell.backend.cancel_scope() as scope:
        cell.scope = scope
        try:
            await actor.on_start()
            started = True
            if task_status is not None:
                task_status.started()
            await _receive_loop(cell, actor)
        except Exception as exc:
            exit = Exit("crash", exc, started)
        else:
            try:
                await actor.on_stop()
            except Exception as exc:
                _log.error("on_stop_failed", actor=cell.name, error=repr(exc))
                exit = Exit("crash", exc)
            else:
                exit = Exit(cell.stop_reason)
        finally:
            cell.scope = None
            cell.fail_current()
    cell.fail_deferred()
    if exit is None:
        crash = cell.linked_crash
        exit = Exit("crash", crash, started) if crash is not None else Exit("killed", None, started)
    await cell.join_linked()
    if exit.kind == "crash":
        _log.error(
            "actor_crashed", actor=cell.name, incarnation=cell.incarnation, error=repr(exit.error)
        )
        assert exit.error is not None
        with cell.backend.cancel_scope() as hook_scope:
            cell.hook_scope = hook_scope
            try:
                await actor.on_crash(exit.error)
            except Exception as exc:
                _log.error("on_crash_failed", actor=cell.name, error=repr(exc))
            finally:
                cell.hook_scope = None
    return exit


async def _receive_loop(cell: Cell[M], actor: Actor[M]) -> None:
    mailbox = cell.mailbox
    table = cell.table
    receive = actor.receive
    checkpoint = cell.backend.checkpoint
    budget = MESSAGE_BUDGET
    coro: Awaitable[Any]
    while True:
        # Re-read after each park: the mailbox swaps in its own deque on the first message.
        items = mailbox._items
        if cell.stop_mode == "now":
            return  # woken for a stop: leave what is queued to the next incarnation
        while items:
            envelope = items.popleft()
            if mailbox._senders:
                mailbox.admit_sender()
            message, reply = envelope
            if table is None:
                coro = receive(message)
            else:
                fn = table.get(type(message)) or cell.resolve(type(message))
                coro = fn(actor, message) if fn is not None else receive(message)
            if reply is None:
                await coro  # a tell: an exception escapes and crashes the actor
            else:
                cell.current = envelope  # so a kill, a crash or defer_reply can settle it
                try:
                    result = await coro
                except Exception as exc:
                    if cell.current is envelope:
                        reply.set_exception(exc)
                    elif cell.deferred:  # deferred, then failed: the deferred reply says so
                        _fail_deferred_of(cell, reply, exc)
                else:
                    if cell.current is envelope:
                        reply.set_result(result)
                cell.current = None
            if cell.stop_mode is not None and cell.leaves_after_this(items):
                return
            budget -= 1
            if not budget:
                budget = MESSAGE_BUDGET
                await checkpoint()
        if cell.stop_mode is not None:
            return
        await mailbox.park_consumer()

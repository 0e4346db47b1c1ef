"""The ``Actor`` base class and the ``@handler`` decorator."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, Union

from .._exceptions import ActorDead

if TYPE_CHECKING:
    from ._cell import Cell, DeferredReply
    from ._ref import ActorRef

M = TypeVar("M")
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

__all__ = ["Actor", "handler"]

_HANDLES = "__promptactors_handles__"
HandlerFn = Callable[[Any, Any], Awaitable[Any]]

DEFAULT_MAILBOX_SIZE = 1024


def handler(*types_or_fn: Any) -> Any:
    """Mark an async method as the handler of one or more message types.

    Use it bare — the message type is read from the annotation of the method's message
    parameter (a union means each member) — or name the types::

        class Counter(Actor[Inc | Get]):
            @handler
            async def inc(self, message: Inc) -> None: ...

            @handler(Get)
            async def get(self, message: Get) -> int: ...

    A handler's return value is the reply to ``ask``; for ``tell`` it is discarded.
    Raises ``TypeError`` (at class creation) for a non-async method or an unresolvable
    annotation.
    """
    if len(types_or_fn) == 1 and inspect.isfunction(types_or_fn[0]):
        fn = types_or_fn[0]
        setattr(fn, _HANDLES, None)  # resolved from annotations in __init_subclass__
        return fn
    if not types_or_fn or not all(isinstance(t, type) for t in types_or_fn):
        raise TypeError("@handler takes message types, e.g. @handler(Ping, Pong), or no arguments")

    def mark(fn: F) -> F:
        setattr(fn, _HANDLES, tuple(types_or_fn))
        return fn

    return mark


def _annotated_types(cls: type, name: str, fn: Callable[..., Any]) -> tuple[type, ...]:
    params = list(inspect.signature(fn).parameters.values())
    if len(params) != 2:
        raise TypeError(f"{cls.__name__}.{name}: a handler takes (self, message)")
    hint: Any = params[1].annotation
    if hint is inspect.Parameter.empty:
        raise TypeError(f"{cls.__name__}.{name}: annotate the message parameter or use @handler(T)")
    if isinstance(hint, str):
        # Resolve only the message annotation (the return type may exist only for checkers).
        try:
            hint = eval(hint, fn.__globals__, dict(vars(cls)))
        except NameError as exc:
            raise TypeError(
                f"{cls.__name__}.{name}: cannot resolve the message annotation ({exc}); "
                f"name the type explicitly with @handler(MessageType)"
            ) from exc
    origin = typing.get_origin(hint)
    members = typing.get_args(hint) if origin in (Union, types.UnionType) else (hint,)
    out = tuple(typing.get_origin(m) or m for m in members)
    if not all(isinstance(t, type) for t in out):
        raise TypeError(f"{cls.__name__}.{name}: message annotation {hint!r} is not a class")
    return out


class Actor(Generic[M]):
    """Base class of actors: state owned by one task, reached only through messages.

    Subclasses declare handlers with :func:`handler` (or override :meth:`receive` to take
    every message themselves). An actor instance is one *incarnation*: a supervisor builds
    a fresh one from its factory on every restart, while the :class:`ActorRef` that
    callers hold stays valid.

    Every hook and handler runs in the actor's own task, one at a time.
    """

    #: Capacity of the bounded mailbox, unless the spawner gives one.
    mailbox_size: ClassVar[int] = DEFAULT_MAILBOX_SIZE

    _handler_table: ClassVar[dict[type, HandlerFn]] = {}
    _custom_receive: ClassVar[bool] = False
    _cell: Cell[M] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table: dict[type, HandlerFn] = {}
        for klass in reversed(cls.__mro__):
            for name, fn in vars(klass).items():
                if not hasattr(fn, _HANDLES):
                    continue
                if not inspect.iscoroutinefunction(fn):
                    raise TypeError(f"{klass.__name__}.{name}: a handler must be `async def`")
                declared = getattr(fn, _HANDLES)
                for message_type in declared or _annotated_types(klass, name, fn):
                    table[message_type] = fn
        cls._handler_table = table
        cls._custom_receive = cls.receive is not Actor.receive

    # -- identity and self-service ---------------------------------------------------------

    @property
    def ref(self) -> ActorRef[M]:
        """This actor's reference (stable across restarts). Raises ``ActorDead`` before start."""
        from ._ref import ActorRef  # the ref module imports this one

        if self._cell is None:
            raise ActorDead("actor is not started: no reference yet")
        return ActorRef(self._cell)

    @property
    def name(self) -> str:
        return self._cell.name if self._cell is not None else type(self).__name__

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``fn(*args)`` as a task linked to this incarnation.

        If it raises, the actor crashes (its supervisor decides what follows). When the
        incarnation ends, for whatever reason, the task is cancelled and awaited first.
        Raises ``ActorDead`` if called before the actor started.
        """
        if self._cell is None:
            raise ActorDead("actor is not started: cannot start a linked task")
        self._cell.start_linked(fn, args)

    def cancel_linked(self) -> None:
        """Cancel every task this incarnation started with :meth:`start_soon` (they end at
        their next checkpoint; the kernel awaits them when the incarnation ends)."""
        if self._cell is not None:
            for scope in list(self._cell.linked):
                scope.cancel()

    def defer_reply(self) -> DeferredReply:
        """Answer the ask being handled later: returns its :class:`DeferredReply`.

        The handler's return value is then ignored; call ``resolve(value)`` or
        ``fail(error)`` on the deferred reply when the answer is ready (from a later
        message or a linked task). If this incarnation ends first, the asker gets
        ``ActorDead``. Raises ``RuntimeError`` outside a handler answering an ask.
        """
        if self._cell is None:
            raise RuntimeError("defer_reply() is for a handler answering an ask")
        return self._cell.defer_current()

    def stop_self(self) -> None:
        """Ask to stop after the current message: a *normal* exit.

        Messages still queued stay in the mailbox: a supervisor that restarts the actor
        (a permanent child) delivers them to the next incarnation; otherwise pending asks
        among them fail with ``ActorDead``.
        """
        if self._cell is not None:
            self._cell.request_stop("now", reason="normal")

    # -- messages --------------------------------------------------------------------------

    async def receive(self, message: M) -> Any:
        """Handle one message (the default dispatches to the ``@handler`` for its type).

        Override to take every message yourself. An exception raised while answering an
        ``ask`` goes to the caller and the actor carries on; one raised while handling a
        ``tell`` crashes the actor.
        """
        fn = self._cell.resolve(type(message)) if self._cell is not None else None
        if fn is None:
            raise TypeError(f"{type(self).__name__} has no handler for {type(message).__name__}")
        return await fn(self, message)

    # -- lifecycle hooks -------------------------------------------------------------------

    async def on_start(self) -> None:
        """Runs in the actor's task before the first message.

        If it raises, this incarnation crashes before it ever started: under a supervisor
        that is a restart (or, at the supervisor's own start, the supervisor fails); for a
        bare ``spawn`` the error is raised out of ``spawn``.
        """

    async def on_stop(self) -> None:
        """Runs in the actor's task after a normal stop or a shutdown, within the shutdown
        timeout. Not run after a crash or a forced kill.

        If it raises, the error is logged and the exit counts as a crash.
        """

    async def on_crash(self, error: BaseException) -> None:
        """Runs in the actor's task after a crash, before the supervisor decides, with the
        error that crashed it. Keep it short. If it raises, the new error is logged and the
        original crash stands.
        """

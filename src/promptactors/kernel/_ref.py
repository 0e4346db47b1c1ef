"""``ActorRef``: the handle callers hold. It stays valid across restarts of the actor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._backend import NO_ITEMS, Reply
from .._exceptions import ActorDead, MailboxFull, SendTimeout

if TYPE_CHECKING:
    from ._cell import Cell

M = TypeVar("M")

__all__ = ["DEFAULT_ASK_TIMEOUT", "ActorRef", "PendingReply", "crash_actor"]

#: Seconds ``ask`` waits for a reply unless told otherwise.
DEFAULT_ASK_TIMEOUT = 30.0


class PendingReply:
    """The answer of an ask sent with :meth:`ActorRef.ask_soon`, awaited later."""

    __slots__ = ("_actor", "_kind", "_reply")

    def __init__(self, reply: Reply, actor: str, kind: str) -> None:
        self._reply = reply
        self._actor = actor
        self._kind = kind

    async def result(self, *, timeout: float | None = DEFAULT_ASK_TIMEOUT) -> Any:
        """The handler's return value (or its exception, raised here).

        Raises ``AskTimeout`` after ``timeout`` seconds of waiting here, ``ActorDead`` if
        the actor stopped before answering.
        """
        if timeout is None:
            return await self._reply.wait()
        return await self._reply.wait_for(
            timeout,
            lambda: f"actor {self._actor!r} did not answer {self._kind} within {timeout:g}s",
        )


class ActorRef(Generic[M]):
    """A reference to an actor: the only way to reach it.

    Refs are cheap, hashable and compare equal when they point at the same actor. Sending
    never blocks unless the bounded mailbox is full (then ``tell`` waits: backpressure).
    """

    __slots__ = ("_cell",)

    def __init__(self, cell: Cell[M]) -> None:
        self._cell = cell

    def __repr__(self) -> str:
        return f"<ActorRef {self._cell.name!r}{'' if self.is_alive else ' dead'}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorRef) and other._cell is self._cell

    def __hash__(self) -> int:
        return id(self._cell)

    @property
    def name(self) -> str:
        return self._cell.name

    @property
    def is_alive(self) -> bool:
        """False once the actor has stopped for good (a restarting actor is alive)."""
        return not self._cell.closed

    @property
    def queued(self) -> int:
        """How many messages wait in the mailbox."""
        return len(self._cell.mailbox)

    def _open_cell(self, message: object) -> Cell[M]:
        """The cell, if it accepts ``message``; raises ``ActorDead`` / ``InvalidInput``."""
        cell = self._cell
        if cell.closed:
            raise ActorDead(f"actor {cell.name!r} is stopped")
        table = cell.table
        if table is not None and type(message) not in table:
            cell.check_message(message)
        return cell

    async def tell(self, message: M) -> None:
        """Send ``message`` without waiting for it to be handled.

        Waits only while the mailbox is full. Raises ``ActorDead`` if the actor is
        stopped, ``InvalidInput`` if it has no handler for the message's type.
        """
        # _open_cell inlined: tell is the hot path (one call less per message).
        cell = self._cell
        if cell.closed:
            raise ActorDead(f"actor {cell.name!r} is stopped")
        table = cell.table
        if table is not None and type(message) not in table:
            cell.check_message(message)
        envelope = (message, None)
        mailbox = cell.mailbox
        items = mailbox._items
        # The common case inlined (one call less per message): room in an existing queue.
        if items is not NO_ITEMS and len(items) < mailbox.capacity:
            items.append(envelope)
            consumer = mailbox._consumer
            if consumer is not None:
                mailbox._consumer = None
                mailbox._wake(consumer)
        elif not mailbox.put_nowait(envelope):
            await mailbox.put(envelope)

    def try_tell(self, message: M) -> None:
        """Send ``message`` if the mailbox has room right now.

        Raises ``MailboxFull`` (nothing was sent) when it has none, ``ActorDead`` if the
        actor is stopped, ``InvalidInput`` for a message type it does not handle.
        """
        cell = self._open_cell(message)
        if not cell.mailbox.put_nowait((message, None)):
            raise MailboxFull(
                f"mailbox of actor {cell.name!r} is full ({cell.mailbox.capacity} messages)"
            )

    async def ask(self, message: M, *, timeout: float | None = DEFAULT_ASK_TIMEOUT) -> Any:
        """Send ``message`` and wait for the handler's return value.

        The handler's exception is raised here (the actor keeps running). Raises
        ``AskTimeout`` when no reply arrives within ``timeout`` seconds (the time spent
        waiting for mailbox room counts), ``ActorDead`` if the actor is stopped or stops
        before answering, ``InvalidInput`` for a message type it does not handle.
        ``timeout=None`` waits without limit.
        """
        cell = self._open_cell(message)
        reply = cell.backend.reply()
        envelope = (message, reply)
        if not cell.mailbox.put_nowait(envelope):
            await self._put_waiting(envelope, timeout)
        if timeout is None:
            return await reply.wait()
        return await reply.wait_for(
            timeout,
            lambda: (
                f"actor {cell.name!r} did not answer {type(message).__name__} within {timeout:g}s"
            ),
        )

    def ask_soon(self, message: M) -> PendingReply:
        """Send an ask now and return a :class:`PendingReply` to await its answer later.

        Pipelining: a caller can have many asks in flight without a task for each (what
        pykka's ``ask(block=False)`` futures do). Raises ``MailboxFull`` when the mailbox
        has no room right now (nothing was sent), ``ActorDead`` if the actor is stopped,
        ``InvalidInput`` for a message type it does not handle.
        """
        cell = self._open_cell(message)
        reply = cell.backend.reply()
        if not cell.mailbox.put_nowait((message, reply)):
            raise MailboxFull(
                f"mailbox of actor {cell.name!r} is full ({cell.mailbox.capacity} messages)"
            )
        return PendingReply(reply, cell.name, type(message).__name__)

    async def _put_waiting(self, envelope: tuple[Any, Any], timeout: float | None) -> None:
        """The slow path of ``ask``: the mailbox is full, wait for room (within timeout)."""
        cell = self._cell
        if timeout is None:
            await cell.mailbox.put(envelope)
            return
        with cell.backend.move_on_after(timeout):
            await cell.mailbox.put(envelope)
            return
        raise SendTimeout(
            f"actor {cell.name!r} mailbox stayed full for {timeout:g}s "
            f"({type(envelope[0]).__name__} not sent)"
        )

    async def stop(self, *, timeout: float | None = None) -> None:
        """Stop the actor for good and wait until it has stopped.

        New messages are refused at once; those already queued are handled; then
        ``on_stop`` runs. After ``timeout`` seconds (default: the actor's shutdown timeout)
        the actor is killed instead, and pending asks fail with ``ActorDead``. A supervised
        actor is removed from its supervisor (it is not restarted). Idempotent.
        """
        await self._cell.owner.stop_child(self._cell, timeout)

    async def wait_stopped(self) -> None:
        """Wait until the actor has stopped for good."""
        await self._cell.wait_terminated()


def crash_actor(ref: ActorRef[Any], error: BaseException | None = None) -> bool:
    """Crash the actor behind ``ref`` now, with ``error`` (default: a ``RuntimeError``),
    as if a task linked to it had raised: a fault-injection hook for chaos tests.

    The current incarnation is cancelled wherever it is (no ``on_stop``; ``on_crash`` runs)
    and its supervisor decides what follows, as for any crash. Returns False, doing
    nothing, when no incarnation runs (the actor is stopped or between a crash and its
    restart).
    """
    if error is None:
        error = RuntimeError(f"crash of actor {ref.name!r} injected by crash_actor()")
    return ref._cell.inject_crash(error)

"""The backend seam: the only kernel module that calls trio or asyncio directly.

Everything else in the kernel is written against anyio. The hot path (parking a mailbox
consumer, waking it, one-shot ask replies, yielding after a message budget) is done here
with each backend's cheapest primitive, chosen once per event loop:

* trio: ``trio.lowlevel`` park (``wait_task_rescheduled``) and ``reschedule`` — no Event,
  no channel, no cancel scope per wait;
* asyncio: one future per park, completed by the waker.

A parked task stays cancellable on both backends: on trio the abort callback forgets the
parked task, on asyncio the cancelled future is skipped by the waker.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import outcome
import sniffio
import trio

from .._exceptions import AskTimeout

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from ._ticker import Ticker, _Slot

T = TypeVar("T")

__all__ = [
    "NO_ITEMS",
    "TIMEOUT_RESOLUTION",
    "Backend",
    "Mailbox",
    "Reply",
    "Timer",
    "context_without_async_library",
    "get_backend",
]

#: Ask timeouts fire within this many seconds after their deadline.
TIMEOUT_RESOLUTION = 0.01

_Abort = trio.lowlevel.Abort
_current_task = trio.lowlevel.current_task
_reschedule = trio.lowlevel.reschedule
_wait_task_rescheduled = trio.lowlevel.wait_task_rescheduled


class CancelScopeLike(Protocol):
    """What the kernel needs of a backend's cancel scope."""

    deadline: float

    def cancel(self) -> None: ...

    def __enter__(self) -> Any: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> bool: ...


class Timer:
    """An entry of a :class:`~promptactors._backend.Ticker`, fired once at its tick.

    ``Ticker.schedule(timer, deadline)`` files it under the first tick at or after the
    deadline; the ticker task then calls ``expire(time)`` (``time``: the clock when the tick
    fired). ``Ticker.discard(timer)`` takes it back before that; both are O(1), since the
    timer remembers the slot it sits in. If the ticker stops first, it calls
    ``abandon(error)`` instead. Both hooks run in the ticker task: they must not block or
    raise.
    """

    __slots__ = ("_timer_slot",)

    def __init__(self) -> None:
        self._timer_slot: _Slot | None = None

    @property
    def scheduled(self) -> bool:
        """Whether the timer sits in a ticker, waiting for its tick."""
        return self._timer_slot is not None

    def expire(self, time: float) -> None:
        """Its tick fired (``time``: the ticker's clock then)."""
        raise NotImplementedError

    def abandon(self, error: BaseException) -> None:
        """The ticker stopped before the tick; ``error`` says so. By default: nothing."""


class Reply(Timer):
    """A one-shot reply slot: one waiter, one value or exception. Setting twice is a no-op.

    It is also a :class:`Timer`, so a deadline service settles it without a cancel scope or
    an object of its own: ``expire`` fails a :meth:`wait_for` with ``AskTimeout`` and
    settles any other wait with the tick's time (a ticker's sleep); ``abandon`` settles it
    with the ticker's error. A waiter cancelled while its reply is scheduled takes it out
    of the ticker.
    """

    __slots__ = ()

    def set_result(self, value: Any) -> None:
        raise NotImplementedError

    def set_exception(self, error: BaseException) -> None:
        raise NotImplementedError

    async def wait(self) -> Any:
        raise NotImplementedError

    async def wait_for(self, timeout: float, describe: Callable[[], str]) -> Any:
        """Wait at most ``timeout`` seconds; then raise ``AskTimeout(describe())``.

        The deadline is kept by one shared service per event loop (no cancel scope per
        wait); it fires within ``TIMEOUT_RESOLUTION`` seconds of the deadline.
        """
        raise NotImplementedError

    def abandon(self, error: BaseException) -> None:
        self.set_exception(error)


NO_ITEMS: deque[Any] = deque()


class Mailbox(Generic[T]):
    """A bounded FIFO with one consumer and any number of producers.

    ``put_nowait`` never blocks; ``put`` parks the producer while the mailbox is full and
    hands its item over (in arrival order) as soon as the consumer takes one. Only the
    consumer calls ``get_nowait`` and ``wait``. Subclasses supply the park/wake primitives.
    """

    __slots__ = ("_consumer", "_items", "_senders", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        # The shared empty queue until the first message: an idle actor needs no deque of
        # its own (~600 bytes). It is replaced, never appended to.
        self._items: deque[T] = NO_ITEMS
        self._consumer: Any = None
        # Created on first use: most mailboxes never fill up, and a deque costs ~600 bytes.
        self._senders: deque[list[Any]] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    @property
    def blocked_senders(self) -> int:
        return len(self._senders) if self._senders else 0

    def put_nowait(self, item: T) -> bool:
        """Enqueue ``item`` and return True, or return False when the mailbox is full."""
        items = self._items
        if len(items) >= self.capacity:
            return False
        if items is NO_ITEMS:
            items = self._items = deque()
        items.append(item)
        consumer = self._consumer
        if consumer is not None:
            self._consumer = None
            self._wake(consumer)
        return True

    async def put(self, item: T) -> None:
        """Enqueue ``item``, waiting for room. Raises what ``fail_senders`` was given."""
        if not self.put_nowait(item):
            await self._park_sender(item)

    def get_nowait(self) -> T:
        """Dequeue the oldest item (the caller checked that there is one)."""
        item = self._items.popleft()
        if self._senders:
            self.admit_sender()
        return item

    def admit_sender(self) -> None:
        """Move the oldest parked sender's item into the queue and wake the sender."""
        assert self._senders
        entry = self._senders.popleft()
        if self._items is NO_ITEMS:
            self._items = deque()
        self._items.append(entry[1])
        self._wake(entry[0])

    def interrupt(self) -> None:
        """Wake a parked consumer even though nothing arrived (a stop request)."""
        consumer = self._consumer
        if consumer is not None:
            self._consumer = None
            self._wake(consumer)

    def drain(self) -> list[T]:
        """Remove and return everything queued, including the items of parked senders."""
        items = list(self._items)
        self._items = NO_ITEMS
        while self._senders:
            token, item = self._senders.popleft()
            items.append(item)
            self._wake(token)
        return items

    def _sender_queue(self) -> deque[list[Any]]:
        if self._senders is None:
            self._senders = deque()
        return self._senders

    def fail_senders(self, error: BaseException) -> None:
        """Wake every parked sender with ``error``; their items were never accepted."""
        while self._senders:
            token, _ = self._senders.popleft()
            self._throw(token, error)

    # -- per-backend primitives ----------------------------------------------------------

    def _wake(self, token: Any) -> None:
        raise NotImplementedError

    def _throw(self, token: Any, error: BaseException) -> None:
        raise NotImplementedError

    async def park_consumer(self) -> None:
        raise NotImplementedError

    async def _park_sender(self, item: T) -> None:
        raise NotImplementedError


# -- trio --------------------------------------------------------------------------------


class _TrioReply(Reply):
    __slots__ = ("_describe", "_outcome", "_task")

    def __init__(self) -> None:
        self._timer_slot = None
        self._task: Any = None
        self._outcome: outcome.Outcome[Any] | None = None
        self._describe: Callable[[], str] | None = None

    def set_result(self, value: Any) -> None:
        if self._outcome is None:
            self._settle(outcome.Value(value))

    def set_exception(self, error: BaseException) -> None:
        if self._outcome is None:
            self._settle(outcome.Error(error))

    def _settle(self, result: outcome.Outcome[Any]) -> None:
        self._outcome = result
        slot = self._timer_slot
        if slot is not None:
            slot.remove(self)
        task = self._task
        if task is not None:
            self._task = None
            _reschedule(task, result)

    def expire(self, time: float) -> None:
        describe = self._describe
        if describe is None:
            self.set_result(time)
        else:
            self.set_exception(AskTimeout(describe()))

    def _abort(self, _: Any) -> trio.lowlevel.Abort:
        self._task = None
        slot = self._timer_slot
        if slot is not None:
            slot.remove(self)
        return _Abort.SUCCEEDED

    async def wait(self) -> Any:
        if self._outcome is not None:
            return self._outcome.unwrap()
        self._task = _current_task()
        return await _wait_task_rescheduled(self._abort)

    async def wait_for(self, timeout: float, describe: Callable[[], str]) -> Any:
        if self._outcome is None:
            self._describe = describe
            _ask_deadlines().schedule(self, trio.current_time() + timeout)
        return await self.wait()


_ASK_DEADLINES: trio.lowlevel.RunVar[Ticker] = trio.lowlevel.RunVar("promptactors_ask_deadlines")


def _ask_deadlines() -> Ticker:
    """The ask deadlines of this trio run: a ticker in a system task, started on first use.

    Its ticks are ``TIMEOUT_RESOLUTION`` apart, so the asks of one 10 ms window share one
    slot and the service wakes once per window that still holds a waiting ask.
    """
    try:
        return _ASK_DEADLINES.get()
    except LookupError:
        # The ticker is built on this module's primitives, hence imported here.
        from ._ticker import Ticker

        service = Ticker(TIMEOUT_RESOLUTION)
        _ASK_DEADLINES.set(service)
        trio.lowlevel.spawn_system_task(service.run, name="promptactors-ask-deadlines")
        return service


class _TrioMailbox(Mailbox[T]):
    __slots__ = ()

    def _wake(self, token: Any) -> None:
        _reschedule(token)

    def _throw(self, token: Any, error: BaseException) -> None:
        _reschedule(token, outcome.Error(error))

    async def park_consumer(self) -> None:
        task = _current_task()
        self._consumer = task

        def abort(_: Any) -> trio.lowlevel.Abort:
            if self._consumer is task:
                self._consumer = None
            return _Abort.SUCCEEDED

        await _wait_task_rescheduled(abort)

    async def _park_sender(self, item: T) -> None:
        entry = [_current_task(), item]
        senders = self._sender_queue()
        senders.append(entry)

        def abort(_: Any) -> trio.lowlevel.Abort:
            senders.remove(entry)
            return _Abort.SUCCEEDED

        await _wait_task_rescheduled(abort)


# -- asyncio -----------------------------------------------------------------------------


class _AsyncioReply(Reply):
    __slots__ = ("_describe", "_future")

    def __init__(self) -> None:
        self._timer_slot = None
        self._future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._describe: Callable[[], str] | None = None

    def set_result(self, value: Any) -> None:
        if not self._future.done():
            self._future.set_result(value)
            if self._timer_slot is not None:
                self._timer_slot.remove(self)

    def set_exception(self, error: BaseException) -> None:
        if not self._future.done():
            self._future.set_exception(error)
            if self._timer_slot is not None:
                self._timer_slot.remove(self)

    def expire(self, time: float) -> None:
        describe = self._describe
        if describe is None:
            self.set_result(time)
        else:
            self.set_exception(AskTimeout(describe()))

    async def wait(self) -> Any:
        try:
            return await self._future
        except BaseException:
            if self._timer_slot is not None:  # cancelled while a ticker holds it
                self._timer_slot.remove(self)
            raise

    async def wait_for(self, timeout: float, describe: Callable[[], str]) -> Any:
        # Ask deadlines are the loop's own timers here: asyncio keeps them in a heap
        # already, at a few µs each (trio's cost a cancel scope per wait).
        future = self._future
        if future.done():
            return future.result()
        self._describe = describe
        loop = future.get_loop()
        when = loop.time() + timeout
        handle = loop.call_at(when, self.expire, when)
        try:
            return await future
        finally:
            handle.cancel()


class _AsyncioMailbox(Mailbox[T]):
    __slots__ = ("_loop",)

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self._loop = asyncio.get_running_loop()

    def _wake(self, token: Any) -> None:
        if not token.done():
            token.set_result(None)

    def _throw(self, token: Any, error: BaseException) -> None:
        if not token.done():
            token.set_exception(error)

    async def park_consumer(self) -> None:
        future = self._loop.create_future()
        self._consumer = future
        try:
            await future
        finally:
            if self._consumer is future:
                self._consumer = None

    async def _park_sender(self, item: T) -> None:
        future = self._loop.create_future()
        entry = [future, item]
        senders = self._sender_queue()
        senders.append(entry)
        try:
            await future
        except BaseException:
            # Cancelled before the hand-over: withdraw the item (it was never accepted).
            if entry in senders:
                senders.remove(entry)
            raise


# -- selection ---------------------------------------------------------------------------


class Backend:
    """The primitives of one async library, resolved once per event loop.

    * ``mailbox`` and ``reply``: the park/wake primitives (a :class:`Reply` is also how a
      ticker parks a sleeper and wakes it with the time);
    * ``clock()``: the running loop's clock function (seconds, as deadlines use);
    * ``checkpoint()``: yield to the scheduler once;
    * ``cancel_scope()`` and ``move_on_after(seconds)``: cancel scopes (their ``deadline``
      can be moved while a task waits in them);
    * ``start_soon(task_group, fn, *args)``: start a task in an anyio task group (or a
      trio nursery) without waiting for it.
    """

    __slots__ = (
        "cancel_scope",
        "checkpoint",
        "clock",
        "mailbox",
        "move_on_after",
        "name",
        "reply",
        "start_soon",
    )

    def __init__(
        self,
        name: str,
        mailbox: type[Mailbox[Any]],
        reply: Callable[[], Reply],
        checkpoint: Callable[[], Any],
        move_on_after: Callable[[float], Any],
        cancel_scope: Callable[[], CancelScopeLike],
        start_soon: Callable[..., None],
        clock: Callable[[], Callable[[], float]],
    ) -> None:
        self.cancel_scope = cancel_scope
        self.start_soon = start_soon
        self.name = name
        self.mailbox = mailbox
        self.reply = reply
        self.checkpoint = checkpoint
        self.move_on_after = move_on_after
        self.clock = clock


def _asyncio_move_on_after(seconds: float) -> Any:
    import anyio

    return anyio.move_on_after(seconds)


async def _asyncio_checkpoint() -> None:
    await asyncio.sleep(0)


def _asyncio_clock() -> Callable[[], float]:
    return asyncio.get_running_loop().time


def _trio_clock() -> Callable[[], float]:
    return trio.current_time


def _trio_move_on_after(seconds: float) -> Any:
    return trio.move_on_after(seconds if seconds >= 0 else 0)


def _anyio_cancel_scope() -> CancelScopeLike:
    import anyio

    return anyio.CancelScope()


def trio_nursery_of(task_group: Any) -> trio.Nursery | None:
    """The trio nursery an anyio task group runs its tasks in, or None if it has none.

    anyio (4.x) keeps it in the private ``_nursery``: tests/backend/test_seam.py
    fails loudly the day that changes, rather than spawning quietly getting slower.
    """
    nursery = getattr(task_group, "_nursery", None)
    return nursery if isinstance(nursery, trio.Nursery) else None


def _trio_start_soon(task_group: Any, fn: Callable[..., Any], *args: Any) -> None:
    """Start ``fn`` in the trio nursery behind an anyio task group.

    anyio (4.16) wraps every task it starts in a handle with its own cancel scope and
    event; an actor needs neither, and they cost time and ~1 KB per actor. The task
    still belongs to the same nursery (structured as before). A trio nursery, or any
    other task group, is used as it is.
    """
    nursery = trio_nursery_of(task_group)
    if nursery is not None:
        nursery.start_soon(fn, *args)
    else:
        task_group.start_soon(fn, *args)


def _anyio_start_soon(task_group: Any, fn: Callable[..., Any], *args: Any) -> None:
    task_group.start_soon(fn, *args)


# trio's own CancelScope: anyio's wrapper adds an object and a layer per actor.
_TRIO = Backend(
    "trio",
    _TrioMailbox,
    _TrioReply,
    trio.lowlevel.checkpoint,
    _trio_move_on_after,
    trio.CancelScope,
    _trio_start_soon,
    _trio_clock,
)
_ASYNCIO = Backend(
    "asyncio",
    _AsyncioMailbox,
    _AsyncioReply,
    _asyncio_checkpoint,
    _asyncio_move_on_after,
    _anyio_cancel_scope,
    _anyio_start_soon,
    _asyncio_clock,
)


def context_without_async_library() -> contextvars.Context:
    """A copy of the current context in which no async library is marked as running.

    For a task started on another event loop (a worker thread's asyncio loop serving a trio
    caller): it keeps the caller's context variables, but must see its own library.
    """
    context = contextvars.copy_context()
    context.run(sniffio.current_async_library_cvar.set, None)
    return context


def get_backend() -> Backend:
    """Return the primitives of the async library running the current task.

    Raises ``RuntimeError`` outside an event loop or on an unsupported library.
    """
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError as exc:
        raise RuntimeError("promptactors needs a running trio or asyncio event loop") from exc
    if library == "trio":
        return _TRIO
    if library == "asyncio":
        return _ASYNCIO
    raise RuntimeError(f"unsupported async library {library!r}: use trio or asyncio")

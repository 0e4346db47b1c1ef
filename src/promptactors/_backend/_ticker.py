"""One shared clock that paces many waiters with one background task.

At 10,000 concurrent streams, one ``trio.sleep`` per token costs ~70 µs of CPU (a deadline
and a cancel scope per call); one task that sleeps until the next due tick and wakes every
waiter due then costs a few µs per waiter. Waiters whose deadlines round up to the same tick
share one slot, so a tick costs one wake-up of the ticker plus one reschedule per waiter.

Waiters park with the backend's cheapest primitive, chosen once when the ticker starts: on
trio a raw ``wait_task_rescheduled`` (no ParkingLot, no Event layers), on asyncio one future
per waiter (what ``asyncio.Event`` does, without its wrappers).
"""

from __future__ import annotations

import asyncio
import heapq
import math
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import anyio
import anyio.lowlevel
import sniffio

from .._exceptions import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from anyio.abc import TaskStatus

__all__ = ["Ticker"]

# A deadline within this fraction of a tick of a boundary belongs to that boundary: float
# sums such as 0.02 * 3 must not spill into the next tick.
_TICK_SLACK = 1e-6


class _Slot:
    """The waiters of one tick: trio tasks or asyncio futures, in wake-up order."""

    __slots__ = ("waiters",)

    def __init__(self) -> None:
        self.waiters: dict[Any, None] = {}


def _not_running() -> NoReturn:
    raise RuntimeError("the ticker is not running")


class _TrioAbort:
    """The abort function of one trio waiter: it leaves its slot when cancelled."""

    __slots__ = ("slot", "task", "tick", "ticker")

    def __init__(self, ticker: Ticker, slot: _Slot, tick: int, task: object) -> None:
        self.ticker = ticker
        self.slot = slot
        self.tick = tick
        self.task = task

    def __call__(self, _raise_cancel: object) -> Any:
        self.ticker._forget(self.slot, self.tick, self.task)
        return self.ticker._trio_lowlevel.Abort.SUCCEEDED


class _Stopped(RuntimeError):
    def __init__(self) -> None:
        super().__init__("the ticker stopped while tasks were waiting on it")


class Ticker:
    """Wakes waiters at their deadlines, rounded up to ``resolution`` seconds, from one task.

    Run it in a task group you own, either with ``async with Ticker.open() as ticker:`` or
    ``await task_group.start(ticker.run)``; it stops when that task group is cancelled.
    While nobody waits the ticker task is parked on an event: it never polls.

    Every wait is cancellable; a cancelled waiter leaves nothing behind. Waiting on a ticker
    that is not running, or that stops while you wait, raises ``RuntimeError``.
    """

    def __init__(self, resolution: float = 0.001) -> None:
        """Raises ``ConfigurationError`` unless ``resolution`` is a positive number."""
        if (
            isinstance(resolution, bool)
            or not isinstance(resolution, int | float)
            or not 0 < resolution < math.inf
        ):
            raise ConfigurationError(
                f"ticker resolution must be a positive number (seconds), got {resolution!r}"
            )
        self._resolution = float(resolution)
        self._per_second = 1.0 / self._resolution
        self._slots: dict[int, _Slot] = {}
        self._due: list[int] = []  # heap of ticks with a slot (or a stale entry, skipped)
        self._fired = -1  # every tick up to this one has been woken
        self._target = math.inf  # the tick the ticker sleeps until; inf while idle
        self._kick: anyio.Event | None = None
        self._clock: Callable[[], float] | None = None
        self._on_trio = False
        self._checkpoint: Callable[[], Awaitable[None]] = anyio.lowlevel.checkpoint
        self._trio_lowlevel: Any = None  # trio.lowlevel, once running on trio
        self._create_future: Callable[[], asyncio.Future[float]] = _not_running
        self._wakeups = 0

    @classmethod
    @asynccontextmanager
    async def open(cls, resolution: float = 0.001) -> AsyncIterator[Ticker]:
        """Run a new ticker in a task group for the duration of the block."""
        ticker = cls(resolution)
        async with anyio.create_task_group() as tg:
            await tg.start(ticker.run)
            try:
                yield ticker
            finally:
                tg.cancel_scope.cancel()

    @property
    def resolution(self) -> float:
        """The tick length in seconds: deadlines are rounded up to a multiple of it."""
        return self._resolution

    @property
    def running(self) -> bool:
        """Whether the ticker task is running (waits are possible)."""
        return self._clock is not None

    @property
    def wakeups(self) -> int:
        """How many times the ticker task has woken up so far (for tests and metrics)."""
        return self._wakeups

    @property
    def pending(self) -> int:
        """How many tasks are waiting right now."""
        return sum(len(slot.waiters) for slot in self._slots.values())

    def current_time(self) -> float:
        """The event loop's clock. Raises ``RuntimeError`` if the ticker is not running."""
        if self._clock is None:
            raise RuntimeError("the ticker is not running")
        return self._clock()

    async def sleep(self, delay: float) -> float:
        """Wait ``delay`` seconds (rounded up to the next tick). Works like ``sleep_until``."""
        return await self.sleep_until(self.current_time() + delay)

    async def sleep_until(self, deadline: float) -> float:
        """Wait until the first tick at or after ``deadline`` (event-loop clock seconds).

        Returns the clock time when the wait ended (the time the ticker fired that tick),
        so that a caller needs no clock read of its own. A deadline already passed returns
        after a checkpoint. Raises ``RuntimeError`` if the ticker is not running or stops
        during the wait.
        """
        clock = self._clock
        if clock is None:
            raise RuntimeError("the ticker is not running: start it with Ticker.open() or run()")
        tick = math.ceil(deadline * self._per_second - _TICK_SLACK)
        if tick <= self._fired:
            # The backend's own checkpoint: anyio's looks the async library up each call,
            # and a late reader (a loaded engine) comes here once per token.
            await self._checkpoint()
            return clock()
        slots = self._slots
        slot = slots.get(tick)
        if slot is None:
            # A new tick (once per tick, not per waiter): a deadline the ticker has not
            # fired yet may still be past, and then waits for nothing.
            now = clock()
            if deadline <= now:
                await self._checkpoint()
                return now
            slot = slots[tick] = _Slot()
            heapq.heappush(self._due, tick)
            if tick < self._target and self._kick is not None:
                self._kick.set()  # the ticker sleeps past this tick, or is idle
        waiters = slot.waiters
        if self._on_trio:
            task = self._trio_lowlevel.current_task()
            waiters[task] = None
            # One small object per wait (not a closure and its cells): at 10,000 waiters
            # whatever lives across a wait is promoted by the GC and rescanned.
            time: float = await self._trio_lowlevel.wait_task_rescheduled(
                _TrioAbort(self, slot, tick, task)
            )
            return time
        future = self._create_future()
        waiters[future] = None
        try:
            time = await future
        except BaseException:
            if future in waiters:  # cancelled before the ticker fired
                self._forget(slot, tick, future)
            raise
        return time

    def _forget(self, slot: _Slot, tick: int, waiter: object) -> None:
        # A cancelled waiter leaves, and takes its tick along if it was the last one there
        # (the tick's heap entry goes stale and is skipped).
        waiters = slot.waiters
        del waiters[waiter]
        if not waiters and self._slots.get(tick) is slot:
            del self._slots[tick]

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> NoReturn:
        """The ticker task: runs until cancelled. Raises ``RuntimeError`` if already running."""
        if self._clock is not None:
            raise RuntimeError("this ticker is already running")
        if sniffio.current_async_library() == "trio":
            import outcome
            import trio

            clock: Callable[[], float] = trio.current_time
            reschedule = trio.lowlevel.reschedule
            self._on_trio = True
            self._trio_lowlevel = trio.lowlevel
            self._checkpoint = trio.lowlevel.checkpoint

            def wake(slot: _Slot, time: float) -> None:
                for task in slot.waiters:
                    reschedule(task, outcome.Value(time))

            def fail(slot: _Slot) -> None:
                for task in slot.waiters:
                    reschedule(task, outcome.Error(_Stopped()))

        else:
            loop = asyncio.get_running_loop()
            clock = loop.time
            self._on_trio = False
            self._create_future = loop.create_future
            self._checkpoint = _asyncio_checkpoint

            def wake(slot: _Slot, time: float) -> None:
                for future in slot.waiters:
                    if not future.done():  # cancelled, not yet removed by its task
                        future.set_result(time)

            def fail(slot: _Slot) -> None:
                for future in slot.waiters:
                    if not future.done():
                        future.set_exception(_Stopped())

        self._clock = clock
        self._fired = math.floor(clock() * self._per_second + _TICK_SLACK)
        task_status.started()
        slots = self._slots
        due = self._due
        try:
            while True:
                self._kick = kick = anyio.Event()
                while due and due[0] not in slots:
                    heapq.heappop(due)  # every waiter of that tick was cancelled
                if not due:
                    self._target = math.inf
                    await kick.wait()
                    continue
                self._target = due[0]
                with anyio.CancelScope(deadline=due[0] * self._resolution):
                    await kick.wait()
                self._wakeups += 1
                time = clock()
                now = math.floor(time * self._per_second + _TICK_SLACK)
                if now > self._fired:
                    self._fired = now
                while due and due[0] <= now:
                    slot = slots.pop(heapq.heappop(due), None)
                    if slot is not None:
                        wake(slot, time)
        finally:
            self._clock = None
            self._kick = None
            self._target = math.inf
            for slot in slots.values():
                fail(slot)
            slots.clear()
            due.clear()


async def _asyncio_checkpoint() -> None:
    await asyncio.sleep(0)

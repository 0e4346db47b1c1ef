"""The one deadline service: a heap of ticks, each with a slot of timers, run by one task.

At 10,000 concurrent streams, one ``trio.sleep`` per token costs ~70 µs of CPU (a deadline
and a cancel scope per call); one task that sleeps until the next due tick and fires every
timer due then costs a few µs per timer. Deadlines that round up to the same tick share one
slot, so a tick costs one wake-up of the ticker plus one call per timer.

It serves two kinds of entries, through the same slots:

* :class:`Timer` objects (``schedule`` / ``discard``, both O(1)): the ask deadlines of a
  trio run are one ticker with ``TIMEOUT_RESOLUTION`` ticks in a system task, whose timers
  are the asks' reply slots themselves;
* sleeping tasks (``sleep`` / ``sleep_until``), which pace simulated LLM streams: a sleeper
  parks on a backend :class:`Reply` (a timer settled with the tick's time), so it costs one
  small object per wait on either backend.

The ticker task sleeps in a cancel scope whose deadline is the earliest tick; a new earlier
tick moves that deadline (no extra wake-up). Every per-backend primitive (clock, reply,
checkpoint, cancel scope) comes from :func:`get_backend` once, when the ticker starts.
"""

from __future__ import annotations

import heapq
import math
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import anyio
import anyio.lowlevel

from .._exceptions import ConfigurationError
from ._primitives import Timer, get_backend

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from anyio.abc import TaskStatus

    from ._primitives import CancelScopeLike, Reply

__all__ = ["Ticker", "Timer"]

# A deadline within this fraction of a tick of a boundary belongs to that boundary: float
# sums such as 0.02 * 3 must not spill into the next tick.
_TICK_SLACK = 1e-6


class _Slot:
    """The timers of one tick, in the order they were scheduled.

    A slot stays in its ticker until its tick fires, even when emptied (so that a tick
    used by many short-lived timers is pushed on the heap once); from then on ``firing``
    is set and removing a timer only unlinks it.
    """

    __slots__ = ("firing", "timers")

    def __init__(self) -> None:
        self.timers: dict[Timer, None] = {}
        self.firing = False

    def remove(self, timer: Timer) -> None:
        timer._timer_slot = None
        if not self.firing:
            del self.timers[timer]


class _Stopped(RuntimeError):
    def __init__(self) -> None:
        super().__init__("the ticker stopped while tasks were waiting on it")


class Ticker:
    """Fires timers and wakes sleepers at their deadlines, rounded up to ``resolution``.

    Run it in a task group you own, either with ``async with Ticker.open() as ticker:`` or
    ``await task_group.start(ticker.run)``; it stops when that task group is cancelled.
    While nothing is due the ticker task is parked: it never polls.

    Every sleep is cancellable; a cancelled sleeper leaves nothing behind. Sleeping on a
    ticker that is not running, or that stops during the sleep, raises ``RuntimeError``.
    Timers may be scheduled before the ticker runs; they fire once it does.
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
        self._due: list[int] = []  # heap of the ticks in _slots, each once
        self._fired = -1  # every tick up to this one has fired
        # The tick the parked ticker task wakes at (inf: none); -inf while it is not parked
        # (it will look at the heap before it parks again).
        self._target = -math.inf
        self._scope: CancelScopeLike | None = None
        self._clock: Callable[[], float] | None = None
        self._reply: Callable[[], Reply] = _not_running
        self._checkpoint: Callable[[], Awaitable[Any]] = anyio.lowlevel.checkpoint
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
        """Whether the ticker task is running (sleeps are possible)."""
        return self._clock is not None

    @property
    def wakeups(self) -> int:
        """How many times the ticker task has woken up so far (for tests and metrics)."""
        return self._wakeups

    @property
    def pending(self) -> int:
        """How many timers and sleepers are waiting right now."""
        return sum(len(slot.timers) for slot in self._slots.values())

    def current_time(self) -> float:
        """The event loop's clock. Raises ``RuntimeError`` if the ticker is not running."""
        if self._clock is None:
            raise RuntimeError("the ticker is not running")
        return self._clock()

    def schedule(self, timer: Timer, deadline: float) -> None:
        """Fire ``timer`` at the first tick at or after ``deadline`` (event-loop seconds).

        A timer already scheduled (here or on another ticker) is moved. A deadline already
        passed fires at the ticker's next turn, never synchronously.
        """
        if timer._timer_slot is not None:
            timer._timer_slot.remove(timer)
        tick = math.ceil(deadline * self._per_second - _TICK_SLACK)
        slot = self._slots.get(tick)
        if slot is None:
            slot = self._add_slot(tick)
        slot.timers[timer] = None
        timer._timer_slot = slot

    @staticmethod
    def discard(timer: Timer) -> None:
        """Take ``timer`` back before it fires (O(1)); a timer not scheduled is left as is."""
        if timer._timer_slot is not None:
            timer._timer_slot.remove(timer)

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
        slot = self._slots.get(tick)
        if slot is None:
            # A new tick (once per tick, not per sleeper): a deadline the ticker has not
            # fired yet may still be past, and then waits for nothing.
            now = clock()
            if deadline <= now:
                await self._checkpoint()
                return now
            slot = self._add_slot(tick)
        # One small object per wait (no closure, no cancel scope): at 10,000 sleepers
        # whatever lives across a wait is promoted by the GC and rescanned. A cancelled
        # sleeper's reply takes itself out of the slot.
        reply = self._reply()
        slot.timers[reply] = None
        reply._timer_slot = slot
        time: float = await reply.wait()
        return time

    def _add_slot(self, tick: int) -> _Slot:
        slot = self._slots[tick] = _Slot()
        heapq.heappush(self._due, tick)
        if tick < self._target:
            # The parked ticker task would wake too late (or never): move its deadline.
            self._target = tick
            assert self._scope is not None
            self._scope.deadline = tick * self._resolution
        return slot

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> NoReturn:
        """The ticker task: runs until cancelled. Raises ``RuntimeError`` if already running.

        When it stops, every timer still scheduled is abandoned (a sleeper raises
        ``RuntimeError``).
        """
        if self._clock is not None:
            raise RuntimeError("this ticker is already running")
        backend = get_backend()
        clock = backend.clock()
        new_scope = backend.cancel_scope
        new_reply = self._reply = backend.reply
        self._checkpoint = backend.checkpoint
        self._clock = clock
        self._fired = math.floor(clock() * self._per_second + _TICK_SLACK)
        task_status.started()
        slots = self._slots
        due = self._due
        resolution = self._resolution
        try:
            while True:
                while due and not slots[due[0]].timers:
                    del slots[heapq.heappop(due)]  # emptied by discards: no need to wake
                scope = new_scope()
                if due:
                    self._target = due[0]
                    scope.deadline = due[0] * resolution
                else:
                    self._target = math.inf
                self._scope = scope
                with scope:
                    # A reply nobody settles: the scope's deadline ends the wait.
                    await new_reply().wait()
                self._scope = None
                self._target = -math.inf
                self._wakeups += 1
                time = clock()
                # Compare ticks with the very expression the deadline was set from (plus
                # the slack): the clock at the deadline must not round below the tick.
                now = math.floor(time * self._per_second + _TICK_SLACK)
                if now > self._fired:
                    self._fired = now
                while due and due[0] <= now:
                    slot = slots.pop(heapq.heappop(due))
                    slot.firing = True
                    for timer in slot.timers:
                        if timer._timer_slot is slot:  # not discarded by an earlier expire
                            timer._timer_slot = None
                            timer.expire(time)
        finally:
            self._clock = None
            self._scope = None
            self._target = -math.inf
            self._reply = _not_running
            for slot in slots.values():
                slot.firing = True
                for timer in slot.timers:
                    if timer._timer_slot is slot:
                        timer._timer_slot = None
                        timer.abandon(_Stopped())
            slots.clear()
            due.clear()


def _not_running() -> NoReturn:
    raise RuntimeError("the ticker is not running")

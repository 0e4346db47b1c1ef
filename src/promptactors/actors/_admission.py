"""Admission control: at most ``limit`` turn attempts stream or commit at once.

Under overload the runtime queues turns instead of timing them out: a turn beyond the
limit is accepted (its ticket handed out, its phase ``starting``) and waits here, first
come first served, until a running attempt ends. The wait is one parked reply slot
(:func:`~promptactors.kernel.reply_slot`): no task, cancel scope or timer per waiter, and
it is cancellable like any wait (a ``stop()`` of the instance, a crash, a shutdown).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from .._exceptions import InvalidInput
from ..kernel import reply_slot

if TYPE_CHECKING:
    from ..kernel import Reply

__all__ = ["Admission"]

_WAITING, _GRANTED, _GONE = 0, 1, 2


class _Waiter:
    __slots__ = ("reply", "state")

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.state = _WAITING


class Admission:
    """A FIFO semaphore shared by every instance of a runtime (see the module docstring).

    ``try_acquire`` takes a slot if one is free and nobody waits; ``acquire`` waits for
    one in arrival order; ``release`` hands the slot straight to the oldest waiter. Every
    successful acquire must be followed by exactly one ``release``. All calls happen in
    the runtime's event loop. Raises ``InvalidInput`` for a limit below 1.
    """

    __slots__ = ("_free", "_waiters", "admitted", "limit", "waiting")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise InvalidInput(f"max_active_turns must be at least 1, got {limit}")
        self.limit = limit
        self._free = limit
        self._waiters: deque[_Waiter] = deque()
        self.waiting = 0
        """Attempts waiting for a slot now."""
        self.admitted = 0
        """Attempts admitted so far (a counter for reports and tests)."""

    @property
    def active(self) -> int:
        """Slots held now."""
        return self.limit - self._free

    def try_acquire(self) -> bool:
        """Take a slot now if one is free and nobody is waiting for one."""
        if self._free and not self.waiting:
            self._free -= 1
            self.admitted += 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a slot, waiting behind the earlier callers while none is free.

        Cancellable: a waiter cancelled before its turn leaves the queue (in O(1): the
        entry is skipped later); one cancelled just as it was granted passes the slot on.
        """
        if self.try_acquire():
            return
        waiter = _Waiter(reply_slot())
        self._waiters.append(waiter)
        self.waiting += 1
        try:
            await waiter.reply.wait()
        except BaseException:
            if waiter.state == _GRANTED:
                self.release()
            else:
                waiter.state = _GONE
                self.waiting -= 1
            raise

    def release(self) -> None:
        """Give a slot back: to the oldest live waiter, else to the free pool."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if waiter.state == _WAITING:
                waiter.state = _GRANTED
                self.waiting -= 1
                self.admitted += 1
                waiter.reply.set_result(None)
                return
        if self._free >= self.limit:
            raise RuntimeError("Admission.release() without a matching acquire")
        self._free += 1

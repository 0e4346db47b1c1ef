"""A turn's outcome, its waiters and the readers of its streamed text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from ..kernel import Reply, reply_slot

if TYPE_CHECKING:
    from ..state import InstanceState, TurnLife
    from ..store import FinishTurn
    from ._instance_home import InstanceHome

__all__ = ["ActiveTurn", "Subscription", "TurnChunk", "TurnResult", "TurnTicket"]


@dataclass(frozen=True, slots=True)
class TurnResult:
    """The outcome of a completed turn."""

    task_id: str
    run_id: str | None
    text: str
    input_tokens: int
    output_tokens: int
    usage_source: str
    cost: float | None
    time_to_first_token: float | None
    total_time: float | None
    finish_reason: str | None
    attempts: int


class TurnTicket:
    """The awaitable outcome of one user turn, kept across restarts of the instance.

    Any number of tasks may wait on it; each waits on a one-shot reply whose timeout is
    kept by the kernel's shared deadline service (no cancel scope per wait).
    ``admitted`` turns True when the turn's first attempt gets past admission control
    (``max_active_turns``); until then the turn is queued.
    """

    __slots__ = (
        "_admission_waiters",
        "_done",
        "_readers",
        "_waiters",
        "admitted",
        "attempts",
        "error",
        "first_task_id",
        "pieces",
        "result",
        "user_message",
    )

    def __init__(self, first_task_id: str, user_message: str | None) -> None:
        self.first_task_id = first_task_id
        self.user_message = user_message
        self.attempts = 1
        self.result: TurnResult | None = None
        self.error: BaseException | None = None
        self._done = False
        self._waiters: list[Reply] = []
        self.admitted = False
        self._admission_waiters: list[Reply] | None = None
        self._readers: list[Subscription] | None = None
        self.pieces: list[str] | None = None
        """The list the turn's current attempt streams its text into (None until the
        turn begins): where its readers find the rest of it once a later turn began."""

    @property
    def done(self) -> bool:
        return self._done

    def resolve(self, result: TurnResult) -> None:
        if not self._done:
            self.result = result
            self._settle()

    def fail(self, error: BaseException) -> None:
        if not self._done:
            self.error = error
            self._settle()

    def admit(self) -> None:
        """The turn got past admission control: wake :meth:`wait_admitted` (idempotent)."""
        if not self.admitted:
            self.admitted = True
            self._wake_admission()

    def _wake_admission(self) -> None:
        waiters, self._admission_waiters = self._admission_waiters, None
        for waiter in waiters or ():
            waiter.set_result(None)

    def follow(self, reader: Subscription) -> None:
        """Wake ``reader`` when the turn ends (whoever ends it); an ended turn's readers
        see it before they wait."""
        if self._done:
            return
        if self._readers is None:
            self._readers = []
        self._readers.append(reader)

    def _settle(self) -> None:
        self._done = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.set_result(None)
        self._wake_admission()
        readers, self._readers = self._readers, None
        for reader in readers or ():
            reader.notify()

    async def wait_admitted(self) -> None:
        """Wait (without limit; cancellable) until the turn is admitted or has ended."""
        if self.admitted or self._done:
            return
        reply = reply_slot()
        if self._admission_waiters is None:
            self._admission_waiters = []
        self._admission_waiters.append(reply)
        try:
            await reply.wait()
        finally:
            if self._admission_waiters is not None and reply in self._admission_waiters:
                self._admission_waiters.remove(reply)

    async def wait(self, timeout: float | None = None) -> TurnResult:
        """The result; raises the turn's error, or ``AskTimeout`` (a ``TimeoutError``)
        after ``timeout`` seconds."""
        if not self._done:
            reply = reply_slot()
            self._waiters.append(reply)
            try:
                if timeout is None:
                    await reply.wait()
                else:
                    await reply.wait_for(
                        timeout,
                        lambda: f"turn {self.first_task_id!r} did not end within {timeout:g}s",
                    )
            finally:
                if reply in self._waiters:
                    self._waiters.remove(reply)
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class ActiveTurn:
    """The instance's bookkeeping for its running turn (kept in the home across restarts).

    ``life`` is the pure :class:`~promptactors.state.TurnLife`; ``gen`` names the current
    attempt task: a task whose ``gen`` is no longer current (cancelled, superseded) changes
    nothing. ``rows`` says whether the current attempt's task row was handed to the
    tracker; ``commit`` holds the answer being committed (replayed after a crash), and
    ``reduced`` the state the answer was reduced from and the result (reused when nothing
    changed the state meanwhile: the answer is reduced once, not twice).
    """

    __slots__ = (
        "commit",
        "gen",
        "life",
        "reduced",
        "rows",
        "scope",
        "settled",
        "task_id",
        "ticket",
    )

    def __init__(self, ticket: TurnTicket, life: TurnLife, task_id: str) -> None:
        self.ticket = ticket
        self.life = life
        self.task_id = task_id
        self.gen = 0
        self.rows = False
        self.scope: anyio.CancelScope | None = None
        self.commit: tuple[Any, FinishTurn | None] | None = None
        self.reduced: tuple[InstanceState, InstanceState] | None = None
        self.settled = anyio.Event()


@dataclass(frozen=True, slots=True)
class TurnChunk:
    """Streamed text: ``text`` is new since the last chunk of the same ``attempt``; a new
    attempt (after a failure) starts its text again."""

    text: str
    attempt: int


class Subscription:
    """One reader of a turn's streamed text, as an async iterator of :class:`TurnChunk`.

    It never blocks the instance: each read takes everything appended since the last one
    (coalesced), however slowly it reads. It follows one turn: a queued turn's reader
    reads nothing before its turn begins, and a reader still reading after the next turn
    began gets the rest of its own turn's text. Iteration ends when the turn ends, raising
    the turn's error if it failed.

    A reader with nothing to read parks on a one-shot reply slot (no Event, no task);
    :meth:`notify` (the instance, after each batch of text) and the end of the followed
    turn wake it. The wait is cancellable: a cancelled reader leaves nothing behind.
    """

    __slots__ = ("_home", "_pieces", "_pos", "_wakeup", "ticket")

    def __init__(self, home: InstanceHome, ticket: TurnTicket | None) -> None:
        self._home = home
        self.ticket = ticket
        self._pieces: list[str] | None = None
        self._pos = 0
        self._wakeup: Reply | None = None
        if ticket is not None:
            ticket.follow(self)

    def notify(self) -> None:
        """Wake the reader if it waits (no-op otherwise; never blocks)."""
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            wakeup.set_result(None)

    def attach(self, ticket: TurnTicket) -> None:
        """Follow ``ticket``'s turn from now on (its text, its end)."""
        self.ticket = ticket
        ticket.follow(self)
        self.notify()

    def close(self) -> None:
        """Stop following the instance (idempotent)."""
        self._home.subscribers.discard(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> TurnChunk:
        while True:
            chunk = self._read()
            if chunk is not None:
                return chunk
            ticket = self.ticket
            if ticket is not None and ticket.done:
                self.close()
                if ticket.error is not None:
                    raise ticket.error
                raise StopAsyncIteration
            wakeup = self._wakeup = reply_slot()
            try:
                await wakeup.wait()
            finally:
                if self._wakeup is wakeup:  # cancelled: nothing left to wake
                    self._wakeup = None

    def _read(self) -> TurnChunk | None:
        ticket = self.ticket
        home = self._home
        state = home.state
        if ticket is None or state is None:
            return None
        if home.ticket is ticket:  # the state's streamed text is this turn's
            stream = state.stream
            pieces, length = stream.pieces, stream.length
        else:
            # Queued (not begun: nothing to read yet), or a later turn began: the rest
            # of this turn's text is in its last attempt's list, complete by now.
            last = ticket.pieces
            if last is None:
                return None
            pieces, length = last, len(last)
        if pieces is not self._pieces:  # a new attempt starts its text again
            self._pieces, self._pos = pieces, 0
        pos = self._pos
        if pos >= length:
            return None
        self._pos = length
        text = pieces[pos] if length - pos == 1 else "".join(pieces[pos:length])
        return TurnChunk(text, ticket.attempts)

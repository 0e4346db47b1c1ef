"""Timer entries of the ticker: fired once at their tick, discardable, never left behind."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
import trio
import trio.testing

from promptactors._backend import Ticker, Timer, get_backend


class Recorder(Timer):
    """A timer that notes when it fired, or why it was abandoned."""

    __slots__ = ("abandoned", "fired", "then")

    def __init__(self, then: list[Recorder] | None = None) -> None:
        super().__init__()
        self.fired: list[float] = []
        self.abandoned: list[BaseException] = []
        self.then = then if then is not None else []

    def expire(self, time: float) -> None:
        self.fired.append(time)
        for other in self.then:
            Ticker.discard(other)

    def abandon(self, error: BaseException) -> None:
        self.abandoned.append(error)


@pytest.mark.trio
async def test_a_timer_fires_once_at_its_tick_with_the_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """expire() runs once, at the deadline rounded up to the next tick, and gets that time."""
    async with Ticker.open(resolution=0.01) as ticker:
        start = trio.current_time()
        timer = Recorder()
        ticker.schedule(timer, start + 2.503)
        assert timer.scheduled
        assert ticker.pending == 1
        await trio.sleep(10)
        assert timer.fired == [pytest.approx(start + 2.51)]
        assert not timer.scheduled
        assert ticker.pending == 0


@pytest.mark.trio
async def test_timers_of_one_tick_fire_together_in_the_order_they_were_scheduled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Timers due at the same tick cost one wake-up and fire first-scheduled first."""
    order: list[int] = []

    class Numbered(Timer):
        __slots__ = ("number",)

        def __init__(self, number: int) -> None:
            super().__init__()
            self.number = number

        def expire(self, time: float) -> None:
            order.append(self.number)

    async with Ticker.open(resolution=0.01) as ticker:
        deadline = trio.current_time() + 1.0
        for number in range(100):
            ticker.schedule(Numbered(number), deadline)
        before = ticker.wakeups
        await trio.sleep(2)
        assert order == list(range(100))
        assert ticker.wakeups - before == 1


@pytest.mark.trio
async def test_a_discarded_timer_never_fires_and_the_ticker_goes_idle(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """discard() takes a timer back; its emptied tick costs at most one wake-up."""
    async with Ticker.open(resolution=0.01) as ticker:
        timer = Recorder()
        ticker.schedule(timer, trio.current_time() + 1.0)
        before = ticker.wakeups
        Ticker.discard(timer)
        Ticker.discard(timer)  # a timer not scheduled is left as is
        assert not timer.scheduled
        assert ticker.pending == 0
        await trio.sleep(100)
        assert timer.fired == []
        assert ticker.wakeups - before <= 1
        before = ticker.wakeups
        await trio.sleep(1000)
        assert ticker.wakeups == before


@pytest.mark.trio
async def test_scheduling_a_scheduled_timer_moves_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A timer sits in one tick at a time: scheduling it again replaces its deadline."""
    async with Ticker.open(resolution=0.01) as ticker:
        start = trio.current_time()
        timer = Recorder()
        ticker.schedule(timer, start + 5.0)
        ticker.schedule(timer, start + 1.0)
        assert ticker.pending == 1
        await trio.sleep(10)
        assert timer.fired == [pytest.approx(start + 1.0)]


@pytest.mark.trio
async def test_an_earlier_timer_moves_the_sleeping_tickers_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A timer due before the tick the ticker sleeps towards fires on time, in one wake-up."""
    async with Ticker.open(resolution=0.01) as ticker:
        start = trio.current_time()
        late, early = Recorder(), Recorder()
        ticker.schedule(late, start + 100.0)
        await trio.testing.wait_all_tasks_blocked()
        before = ticker.wakeups
        ticker.schedule(early, start + 1.0)
        await trio.sleep(2)
        assert early.fired == [pytest.approx(start + 1.0)]
        assert late.fired == []
        assert ticker.wakeups - before == 1
        Ticker.discard(late)


@pytest.mark.trio
async def test_a_timer_discarded_by_another_of_its_tick_does_not_fire(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An expire() that discards a timer of the same tick, not yet fired, wins."""
    async with Ticker.open(resolution=0.01) as ticker:
        deadline = trio.current_time() + 1.0
        victim = Recorder()
        killer = Recorder(then=[victim])
        ticker.schedule(killer, deadline)
        ticker.schedule(victim, deadline)
        await trio.sleep(2)
        assert len(killer.fired) == 1
        assert victim.fired == []
        assert not victim.scheduled


@pytest.mark.trio
async def test_a_timer_scheduled_before_the_ticker_runs_fires_once_it_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Scheduling needs no running ticker; a deadline passed meanwhile fires at once."""
    ticker = Ticker(resolution=0.01)
    timer = Recorder()
    ticker.schedule(timer, trio.current_time() + 1.0)
    await trio.sleep(5)
    async with trio.open_nursery() as nursery:
        await nursery.start(ticker.run)
        await trio.testing.wait_all_tasks_blocked()
        assert timer.fired == [pytest.approx(5.0)]
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_past_deadline_fires_at_the_tickers_next_turn_not_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """schedule() never calls expire() itself: the ticker task does, without time passing."""
    async with Ticker.open(resolution=0.01) as ticker:
        start = trio.current_time()
        timer = Recorder()
        ticker.schedule(timer, start - 3.0)
        assert timer.fired == []
        await trio.testing.wait_all_tasks_blocked()
        assert timer.fired == [start]


@pytest.mark.trio
async def test_timers_are_abandoned_with_an_error_when_the_ticker_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A ticker that stops calls abandon() on what it still holds and keeps nothing."""
    timer = Recorder()
    async with Ticker.open(resolution=0.01) as ticker:
        ticker.schedule(timer, trio.current_time() + 60.0)
    assert timer.fired == []
    assert len(timer.abandoned) == 1
    assert "stopped" in str(timer.abandoned[0])
    assert not timer.scheduled
    assert ticker.pending == 0


@pytest.mark.trio
async def test_a_cancelled_wait_on_a_scheduled_reply_leaves_nothing_behind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A backend reply is a timer: cancelling its waiter takes it out of the ticker."""
    async with Ticker.open(resolution=0.01) as ticker:
        reply = get_backend().reply()
        ticker.schedule(reply, trio.current_time() + 30.0)
        with trio.move_on_after(1):
            await reply.wait()
        assert not reply.scheduled
        assert ticker.pending == 0
        before = ticker.wakeups
        await trio.sleep(100)
        assert ticker.wakeups - before <= 1


@pytest.mark.trio
async def test_a_reply_settled_before_its_tick_leaves_the_ticker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Settling a scheduled reply discards its timer: the tick later fires nothing."""
    async with Ticker.open(resolution=0.01) as ticker:
        reply = get_backend().reply()
        ticker.schedule(reply, trio.current_time() + 30.0)
        reply.set_result("early")
        assert not reply.scheduled
        assert ticker.pending == 0
        await trio.sleep(100)  # past the tick: it fires nothing into the settled reply
        assert await reply.wait() == "early"


@pytest.mark.anyio
async def test_timers_fire_and_discard_on_every_backend() -> None:
    """The same timer entries work on trio and asyncio (past deadlines: no real waiting)."""
    async with Ticker.open(resolution=0.01) as ticker:
        now = ticker.current_time()
        fired, discarded = Recorder(), Recorder()
        ticker.schedule(fired, now - 1.0)
        ticker.schedule(discarded, now - 1.0)
        Ticker.discard(discarded)
        with anyio.fail_after(5):
            while not fired.fired:
                await anyio.lowlevel.checkpoint()
        assert discarded.fired == []
        assert ticker.pending == 0

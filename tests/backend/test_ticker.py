"""The shared ticker that paces simulated streams."""

from __future__ import annotations

import anyio
import pytest
import trio
import trio.testing

from promptactors import ConfigurationError
from promptactors._backend import Ticker


@pytest.mark.anyio
async def test_waiters_wake_at_their_deadline_rounded_up_to_the_resolution() -> None:
    """A waiter wakes no earlier than its deadline and reports the time it woke."""
    async with Ticker.open(resolution=0.001) as ticker:
        start = ticker.current_time()
        woke = await ticker.sleep_until(start + 0.003)
        # asyncio may run a timer up to its clock resolution (1 ns) early.
        assert woke >= start + 0.003 - 1e-6
        assert anyio.current_time() >= start + 0.003 - 1e-6


@pytest.mark.anyio
async def test_waiters_of_one_tick_share_one_wakeup() -> None:
    """Many waiters due at the same tick cost the ticker one wake-up."""
    async with Ticker.open(resolution=0.005) as ticker:
        deadline = ticker.current_time() + 0.004
        before = ticker.wakeups
        async with anyio.create_task_group() as tg:
            for _ in range(200):
                tg.start_soon(ticker.sleep_until, deadline)
        assert ticker.wakeups - before <= 2  # one, plus one if the deadline straddled a tick


@pytest.mark.anyio
async def test_a_past_deadline_returns_without_waiting_for_a_tick() -> None:
    """A deadline already passed returns after a checkpoint, without a ticker wake-up."""
    async with Ticker.open() as ticker:
        await ticker.sleep(0.002)
        before = ticker.wakeups
        await ticker.sleep_until(ticker.current_time() - 1.0)
        assert ticker.wakeups == before


@pytest.mark.anyio
async def test_cancelled_waiter_is_removed_and_others_still_wake() -> None:
    """Cancelling one waiter removes it; a waiter of the same tick still wakes."""
    async with Ticker.open() as ticker:
        deadline = ticker.current_time() + 0.05
        woke: list[str] = []
        doomed = anyio.CancelScope()

        async def wait(name: str, scope: anyio.CancelScope) -> None:
            with scope:
                await ticker.sleep_until(deadline)
                woke.append(name)

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait, "kept", anyio.CancelScope())
            tg.start_soon(wait, "cancelled", doomed)
            with anyio.fail_after(1):
                while ticker.pending < 2:
                    await anyio.lowlevel.checkpoint()
                doomed.cancel()
                while ticker.pending > 1:
                    await anyio.lowlevel.checkpoint()
        assert woke == ["kept"]
        assert ticker.pending == 0


@pytest.mark.trio
async def test_ticker_idles_while_nobody_waits(autojump_clock: trio.testing.MockClock) -> None:
    """With no waiters the ticker does not wake up, however much time passes."""
    async with Ticker.open() as ticker:
        await ticker.sleep(0.01)
        before = ticker.wakeups
        await trio.sleep(1000.0)
        assert ticker.wakeups == before
        assert ticker.pending == 0


@pytest.mark.trio
async def test_ticker_idles_after_its_only_waiter_is_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Once its only waiter is cancelled the ticker goes idle (after at most one stale timer)."""
    async with Ticker.open() as ticker:
        with trio.move_on_after(1.0):
            await ticker.sleep(10.0)
        assert ticker.pending == 0
        before = ticker.wakeups
        await trio.sleep(100.0)
        assert ticker.wakeups - before <= 1
        before = ticker.wakeups
        await trio.sleep(1000.0)
        assert ticker.wakeups == before


@pytest.mark.trio
async def test_an_earlier_deadline_wakes_a_ticker_sleeping_longer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A new waiter due before the ticker's current target is woken on time."""
    async with Ticker.open() as ticker, trio.open_nursery() as nursery:
        start = trio.current_time()
        nursery.start_soon(ticker.sleep, 100.0)
        await trio.testing.wait_all_tasks_blocked()
        await ticker.sleep(1.0)
        assert trio.current_time() - start == pytest.approx(1.0)
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_deadlines_on_a_tick_boundary_are_not_rounded_to_the_next(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Float sums such as 0.02 * 3 wake at that tick, not one tick later."""
    async with Ticker.open(resolution=0.001) as ticker:
        start = trio.current_time()
        for step in range(1, 8):
            await ticker.sleep_until(start + 0.02 * step)
        assert trio.current_time() - start == pytest.approx(0.14, abs=1e-9)


@pytest.mark.anyio
async def test_waiting_on_a_ticker_that_is_not_running_raises() -> None:
    """A ticker that was never started refuses waits instead of hanging."""
    ticker = Ticker()
    with pytest.raises(RuntimeError, match="not running"):
        await ticker.sleep(0.01)


@pytest.mark.anyio
async def test_waiters_get_an_error_when_the_ticker_stops() -> None:
    """Stopping the ticker wakes its waiters with an error rather than leaving them hanging."""
    errors: list[BaseException] = []
    async with anyio.create_task_group() as outer:
        async with Ticker.open() as ticker:

            async def waiter(*, task_status: anyio.abc.TaskStatus[None]) -> None:
                task_status.started()
                try:
                    await ticker.sleep(60.0)
                except RuntimeError as exc:
                    errors.append(exc)

            await outer.start(waiter)
            await anyio.lowlevel.checkpoint()
        await anyio.lowlevel.checkpoint()
    assert len(errors) == 1
    assert "stopped" in str(errors[0])


@pytest.mark.anyio
async def test_a_running_ticker_cannot_be_started_twice() -> None:
    """Running one ticker in two tasks is refused."""
    async with Ticker.open() as ticker:
        with pytest.raises(RuntimeError, match="already running"):
            await ticker.run()


@pytest.mark.parametrize("resolution", [0, -0.001, float("inf"), "1ms"])
def test_resolution_must_be_a_positive_number(resolution: object) -> None:
    """An invalid resolution is a configuration error."""
    with pytest.raises(ConfigurationError, match="resolution"):
        Ticker(resolution)  # type: ignore[arg-type]

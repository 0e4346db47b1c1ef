"""Ask timeouts: one ticker per trio run (a system task), virtual time via MockClock."""

from __future__ import annotations

from dataclasses import dataclass

import anyio
import pytest
import trio
import trio.testing

from promptactors import Actor, AskTimeout, handler, spawn
from promptactors._backend._primitives import TIMEOUT_RESOLUTION


@dataclass(frozen=True)
class Sleep:
    seconds: float


class Sleeper(Actor[Sleep]):
    @handler
    async def sleep(self, message: Sleep) -> float:
        await trio.sleep(message.seconds)
        return message.seconds


@pytest.mark.trio
async def test_ask_timeout_fires_at_its_deadline(autojump_clock: trio.testing.MockClock) -> None:
    """An unanswered ask raises AskTimeout within the service's resolution of its deadline."""
    async with trio.open_nursery() as nursery:
        ref = await spawn(nursery, Sleeper())
        start = trio.current_time()
        with pytest.raises(AskTimeout):
            await ref.ask(Sleep(100), timeout=7.5)
        waited = trio.current_time() - start
        assert 7.5 <= waited <= 7.5 + 2 * TIMEOUT_RESOLUTION
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_many_concurrent_timeouts_each_fire_once_at_their_own_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Hundreds of asks with different timeouts time out in deadline order, none early."""
    fired: list[tuple[float, float]] = []
    async with trio.open_nursery() as nursery:
        ref = await spawn(nursery, Sleeper(), mailbox_size=1000)
        start = trio.current_time()

        async def ask(timeout: float) -> None:
            try:
                await ref.ask(Sleep(1000), timeout=timeout)
            except AskTimeout:
                fired.append((timeout, trio.current_time() - start))

        async with trio.open_nursery() as askers:
            for i in range(300):
                askers.start_soon(ask, 1 + (i * 7919 % 300) / 10)
        nursery.cancel_scope.cancel()
    assert len(fired) == 300
    for timeout, waited in fired:
        assert timeout <= waited <= timeout + 2 * TIMEOUT_RESOLUTION
    assert [t for t, _ in fired] == sorted(t for t, _ in fired)


@pytest.mark.trio
async def test_a_reply_in_time_cancels_the_deadline(autojump_clock: trio.testing.MockClock) -> None:
    """A reply before the deadline wins; later, nothing fires for that ask."""
    async with trio.open_nursery() as nursery:
        ref = await spawn(nursery, Sleeper())
        assert await ref.ask(Sleep(1), timeout=5) == 1
        await trio.sleep(10)  # past the old deadline: no stray AskTimeout anywhere
        assert await ref.ask(Sleep(0), timeout=5) == 0
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_cancelled_asker_leaves_no_deadline_behind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Cancelling the waiting caller withdraws its deadline from the shared service."""
    from promptactors._backend._primitives import _ASK_DEADLINES

    async with trio.open_nursery() as nursery:
        ref = await spawn(nursery, Sleeper())
        with trio.move_on_after(1):
            await ref.ask(Sleep(50), timeout=30)
        service = _ASK_DEADLINES.get()
        assert service.pending == 0
        before = service.wakeups
        await trio.sleep(100)  # past the withdrawn deadline: at most one empty tick
        assert service.wakeups - before <= 1
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_the_queueing_time_of_a_full_mailbox_counts_toward_the_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An ask that cannot even be queued in time raises AskTimeout saying the mailbox was full."""
    async with trio.open_nursery() as nursery:
        ref = await spawn(nursery, Sleeper(), mailbox_size=1)
        nursery.start_soon(ref.ask, Sleep(100))  # being handled
        await trio.testing.wait_all_tasks_blocked()
        await ref.tell(Sleep(100))  # fills the mailbox
        with pytest.raises(AskTimeout, match="mailbox stayed full"):
            await ref.ask(Sleep(0), timeout=2)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_ask_timeout_on_asyncio_uses_the_loop_timer(anyio_backend: str) -> None:
    """On asyncio the deadline is a loop timer; the error is the same AskTimeout."""

    class Waiter(Actor[anyio.Event]):
        @handler(anyio.Event)
        async def wait(self, message: anyio.Event) -> None:
            await message.wait()

    async with anyio.create_task_group() as tg:
        ref = await spawn(tg, Waiter(), name="waiter")
        gate = anyio.Event()
        with pytest.raises(AskTimeout, match="'waiter' did not answer Event"):
            await ref.ask(gate, timeout=0.02)
        gate.set()
        await ref.stop()

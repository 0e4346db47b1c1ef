"""The admission object: a FIFO semaphore whose waits are cancellable and never leak a slot."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from promptactors import InvalidInput
from promptactors.actors import Admission


async def _settle() -> None:
    for _ in range(5):
        await anyio.lowlevel.checkpoint()


@pytest.mark.anyio
async def test_waiters_are_admitted_in_arrival_order() -> None:
    """With every slot held, waiters get the slots released later first come first served."""
    admission = Admission(2)
    assert admission.try_acquire()
    assert admission.try_acquire()
    order: list[int] = []

    async def wait(i: int) -> None:
        await admission.acquire()
        order.append(i)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for i in range(5):
                tg.start_soon(wait, i)
                await _settle()  # arrival order is start order
            assert admission.waiting == 5
            assert admission.active == 2
            for _ in range(5):
                admission.release()
                await _settle()
    assert order == [0, 1, 2, 3, 4]
    assert admission.active == 2
    assert admission.waiting == 0
    admission.release()
    admission.release()
    assert admission.active == 0
    assert admission.admitted == 7


@pytest.mark.anyio
async def test_a_newcomer_does_not_overtake_a_waiter() -> None:
    """A free slot with someone waiting goes to the waiter, not to ``try_acquire``."""
    admission = Admission(1)
    assert admission.try_acquire()
    got = anyio.Event()

    async def wait() -> None:
        await admission.acquire()
        got.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await _settle()
            admission.release()
            assert not admission.try_acquire()  # the slot is the waiter's already
            await got.wait()
    admission.release()
    assert admission.active == 0


@pytest.mark.anyio
async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    """Cancelling a waiter frees its place: the next one gets the slot, nothing leaks."""
    admission = Admission(1)
    assert admission.try_acquire()
    admitted: list[str] = []

    async def wait(name: str, scope: anyio.CancelScope) -> None:
        with scope:
            await admission.acquire()
            admitted.append(name)

    first, second = anyio.CancelScope(), anyio.CancelScope()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait, "first", first)
            await _settle()
            tg.start_soon(wait, "second", second)
            await _settle()
            first.cancel()
            await _settle()
            assert admission.waiting == 1
            admission.release()
    assert admitted == ["second"]
    admission.release()
    assert admission.active == 0
    assert admission.waiting == 0


@pytest.mark.anyio
async def test_a_waiter_cancelled_as_it_is_granted_passes_the_slot_on() -> None:
    """A grant and a cancel of the same waiter in one step: the slot goes to the next."""
    admission = Admission(1)
    assert admission.try_acquire()
    admitted: list[str] = []

    async def wait(name: str, scope: anyio.CancelScope) -> None:
        with scope:
            await admission.acquire()
            admitted.append(name)
            admission.release()

    first, second = anyio.CancelScope(), anyio.CancelScope()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait, "first", first)
            await _settle()
            tg.start_soon(wait, "second", second)
            await _settle()
            admission.release()  # granted to "first"...
            first.cancel()  # ...which is cancelled before it runs again
            await _settle()
    # trio delivers the grant before the cancel; asyncio the cancel, and the slot moves on
    assert admitted[-1] == "second"
    assert admission.active == 0
    assert admission.waiting == 0


def test_release_without_acquire_and_a_zero_limit_are_refused() -> None:
    """Misuse is loud: a release too many, or a limit below 1."""
    with pytest.raises(RuntimeError):
        Admission(1).release()
    with pytest.raises(InvalidInput):
        Admission(0)

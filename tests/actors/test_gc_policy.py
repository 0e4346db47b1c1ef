"""The collector policy for mass spawns."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import anyio
import pytest

from promptactors import Actor, InvalidInput, spawn
from promptactors.actors import set_gc_freeze_interval
from promptactors.actors._gc import DEFAULT_GC_FREEZE_INTERVAL


class Idle(Actor[object]):
    async def receive(self, message: object) -> None:
        return None


@pytest.fixture
def restore_interval() -> Iterator[None]:
    yield
    set_gc_freeze_interval(DEFAULT_GC_FREEZE_INTERVAL)
    gc.unfreeze()


@pytest.mark.anyio
@pytest.mark.usefixtures("restore_interval")
async def test_the_collector_is_frozen_after_every_interval_of_spawns() -> None:
    """After `interval` new actors the kernel moves the tracked objects to the frozen set."""
    gc.unfreeze()
    set_gc_freeze_interval(10)
    async with anyio.create_task_group() as tg:
        for _ in range(9):
            await spawn(tg, Idle())
        assert gc.get_freeze_count() == 0
        await spawn(tg, Idle())
        assert gc.get_freeze_count() > 0
        tg.cancel_scope.cancel()


@pytest.mark.anyio
@pytest.mark.usefixtures("restore_interval")
async def test_the_freeze_can_be_turned_off() -> None:
    """With the interval set to None the kernel never freezes the collector."""
    gc.unfreeze()
    set_gc_freeze_interval(None)
    async with anyio.create_task_group() as tg:
        for _ in range(30):
            await spawn(tg, Idle())
        assert gc.get_freeze_count() == 0
        tg.cancel_scope.cancel()


def test_an_interval_below_one_is_invalid() -> None:
    """The interval is a positive count or None."""
    with pytest.raises(InvalidInput, match="interval"):
        set_gc_freeze_interval(0)

"""The collector policy for mass spawns."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import anyio
import pytest

from promptactors import Actor, InvalidInput, spawn
from promptactors.kernel import set_gc_freeze_interval
from promptactors.kernel._gc import DEFAULT_GC_FREEZE_INTERVAL


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


@pytest.mark.usefixtures("restore_interval")
def test_young_collections_freeze_their_survivors_and_a_rare_unfreeze_releases_them() -> None:
    """After a generation-1 collection the survivors are frozen; every so often they are
    all unfrozen, so cyclic garbage frozen by mistake is reclaimed at last."""
    import promptactors.kernel._gc as policy

    gc.unfreeze()
    set_gc_freeze_interval(1000)
    policy.note_actor_started()  # installs the collector callback
    keep = [[i] for i in range(2000)]
    gc.collect(1)
    assert gc.get_freeze_count() > 0
    saved = policy.FREEZES_PER_UNFREEZE
    policy.FREEZES_PER_UNFREEZE = 1
    try:
        gc.collect(1)
        assert gc.get_freeze_count() == 0
    finally:
        policy.FREEZES_PER_UNFREEZE = saved
    del keep


@pytest.fixture
def fresh_policy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The kernel's collector policy as in a new process (no actor started yet); the
    interpreter's thresholds put back afterwards."""
    from promptactors.kernel import _gc

    saved = gc.get_threshold()
    callbacks = list(gc.callbacks)
    monkeypatch.setattr(_gc, "_watching", False)
    monkeypatch.setattr(_gc, "_raised_from", None)
    yield
    gc.callbacks[:] = callbacks
    gc.set_threshold(*saved)
    set_gc_freeze_interval(DEFAULT_GC_FREEZE_INTERVAL)


@pytest.mark.anyio
@pytest.mark.usefixtures("fresh_policy")
async def test_the_first_actor_raises_the_young_threshold_and_none_puts_it_back() -> None:
    from promptactors.kernel._gc import YOUNG_THRESHOLD

    older = gc.get_threshold()[1:]
    gc.set_threshold(700, *older)  # CPython's default
    async with anyio.create_task_group() as tg:
        await spawn(tg, Idle())
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *older)
        tg.cancel_scope.cancel()
    set_gc_freeze_interval(None)
    assert gc.get_threshold() == (700, *older)


@pytest.mark.anyio
@pytest.mark.usefixtures("fresh_policy")
async def test_an_applications_own_young_threshold_is_left_alone() -> None:
    older = gc.get_threshold()[1:]
    gc.set_threshold(1234, *older)
    async with anyio.create_task_group() as tg:
        await spawn(tg, Idle())
        assert gc.get_threshold() == (1234, *older)
        tg.cancel_scope.cancel()
    set_gc_freeze_interval(None)
    assert gc.get_threshold() == (1234, *older)

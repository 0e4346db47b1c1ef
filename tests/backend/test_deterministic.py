"""Seeded scheduling: the trio-private switch it relies on, and that a seed fixes the order."""

from __future__ import annotations

import trio
import trio.lowlevel
from trio._core import _run as trio_run

from promptactors._backend import deterministic_scheduling, run_virtual


def test_trio_still_has_the_deterministic_scheduling_switch() -> None:
    """``_backend._deterministic`` flips trio's private flag and seeds its shuffle."""
    assert hasattr(trio_run, "_ALLOW_DETERMINISTIC_SCHEDULING"), (
        f"trio {trio.__version__} no longer has trio._core._run._ALLOW_DETERMINISTIC_SCHEDULING:"
        " seeded chaos sweeps (promptactors chaos --simulate) are not reproducible any more."
        " See how pytest-trio / trio's hypothesis plugin make scheduling deterministic now and"
        " update promptactors/_backend/_deterministic.py."
    )
    assert hasattr(trio_run._r, "getstate"), (
        f"trio {trio.__version__}: trio._core._run._r is no longer a random.Random"
    )


async def _interleaving() -> list[int]:
    order: list[int] = []

    async def worker(n: int) -> None:
        for _ in range(5):
            order.append(n)
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        for n in range(8):
            nursery.start_soon(worker, n)
    await trio.sleep(3600)  # virtual: no real time passes
    return order


def test_one_seed_gives_one_interleaving_and_seeds_differ() -> None:
    """The same seed replays the same task order; another seed gives another."""
    first = run_virtual(_interleaving, seed=5)
    assert run_virtual(_interleaving, seed=5) == first
    assert any(run_virtual(_interleaving, seed=s) != first for s in (6, 7, 8))


def test_the_switch_is_restored_after_the_block() -> None:
    flag = trio_run._ALLOW_DETERMINISTIC_SCHEDULING
    with deterministic_scheduling(1):
        assert trio_run._ALLOW_DETERMINISTIC_SCHEDULING is True
    assert flag == trio_run._ALLOW_DETERMINISTIC_SCHEDULING

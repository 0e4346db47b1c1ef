"""Virtual time with trio's scheduler made deterministic: for seed sweeps.

trio shuffles each batch of runnable tasks with a module-level ``random.Random``
(``trio._core._run._r``); under Hypothesis it first sorts the batch by task creation
order and draws the shuffle from that generator once seeded, when
``_ALLOW_DETERMINISTIC_SCHEDULING`` is set (see trio's ``_hypothesis_plugin_setup`` and
pytest-trio's plugin). We do the same, for the duration of one ``trio.run``, so that a
seed gives one interleaving. This is trio-private: ``tests/backend/test_deterministic.py``
fails loudly if trio moves it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import trio
import trio.testing
from trio._core import _run as trio_run  # private: the scheduler's shuffle

from ._entropy import seeded_entropy

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

__all__ = ["deterministic_scheduling", "run_virtual"]

T = TypeVar("T")


@contextmanager
def deterministic_scheduling(seed: int) -> Iterator[None]:
    """Within the block, trio orders each batch of runnable tasks by a shuffle drawn from
    ``seed`` (the previous state is restored after). Not thread-safe: one at a time."""
    flag = trio_run._ALLOW_DETERMINISTIC_SCHEDULING
    state = trio_run._r.getstate()
    trio_run._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
    trio_run._r.seed(seed)
    try:
        yield
    finally:
        trio_run._ALLOW_DETERMINISTIC_SCHEDULING = flag  # type: ignore[misc]
        trio_run._r.setstate(state)


def run_virtual(fn: Callable[..., Awaitable[T]], *args: Any, seed: int) -> T:
    """``trio.run(fn, *args)`` in virtual time (``MockClock(autojump_threshold=0)``: the
    clock jumps to the next deadline whenever every task waits) with the scheduler's
    shuffle seeded by ``seed``, and the runtime's ids and backoff jitter drawn from
    ``seed`` (``_entropy``): the run is a function of ``seed`` alone. Raises what ``fn``
    raises."""
    with deterministic_scheduling(seed), seeded_entropy(seed):
        return trio.run(fn, *args, clock=trio.testing.MockClock(autojump_threshold=0))

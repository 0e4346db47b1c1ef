"""Seeded entropy: ids and backoff jitter are a function of the seed in a virtual run."""

from __future__ import annotations

import random
import uuid

import trio

from promptactors._backend import jitter_rng, new_id, run_virtual, seeded_entropy
from promptactors.actors import CommitBackoff


async def _draws() -> tuple[list[str], list[float]]:
    ids: list[str] = []

    async def worker() -> None:
        ids.append(new_id())  # a task of the run sees the run's generator
        await trio.lowlevel.checkpoint()
        ids.append(new_id())

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(worker)
    delays = [CommitBackoff().delay(n) for n in (1, 2, 3)]
    return ids, delays


def test_a_virtual_run_draws_the_same_ids_and_jitter_for_a_seed() -> None:
    first = run_virtual(_draws, seed=11)
    assert run_virtual(_draws, seed=11) == first
    assert run_virtual(_draws, seed=12) != first
    assert all(uuid.UUID(i).version == 4 for i in first[0])


def test_outside_a_virtual_run_ids_and_jitter_are_random() -> None:
    assert new_id() != new_id()
    assert uuid.UUID(new_id()).version == 4
    assert jitter_rng().random() != jitter_rng().random()
    with seeded_entropy(3):
        seeded = (new_id(), jitter_rng().random())
    with seeded_entropy(3):
        assert (new_id(), jitter_rng().random()) == seeded
    assert new_id() != seeded[0]  # the block restored the unseeded source


def test_the_seeded_source_is_not_trios_shuffle() -> None:
    """Ids draw from their own stream: seeding trio's shuffle with the same int does not
    make the id generator replay the scheduler's draws."""
    with seeded_entropy(5):
        drawn = new_id()
    assert drawn != str(uuid.UUID(int=random.Random(5).getrandbits(128), version=4))

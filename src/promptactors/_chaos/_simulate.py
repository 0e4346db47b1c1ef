"""``chaos --simulate``: the chaos run in virtual time, one seed per ``trio.run``.

Each seed runs under ``MockClock(autojump_threshold=0)`` with trio's scheduler shuffle
seeded (``_backend.run_virtual``), the simulated provider and a fresh store from the store
factory (by default ``memory://``: no thread, so virtual time never waits on real I/O).
The trace hash of a seed is the hash of its ordered event log; rerunning a seed must give
the same hash.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .._backend import VIRTUAL_EPOCH, run_virtual
from .._settings import RuntimeSettings
from ..store import MemoryStore
from ._report import ChaosReport, SweepReport, reproduce_command
from ._run import run_chaos

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from ..store import Store

__all__ = ["StoreFactory", "simulate_seed", "sweep"]

StoreFactory = Callable[[int], "Awaitable[AbstractAsyncContextManager[Store]]"]
"""Given a seed, an awaitable of a fresh store to use as an async context manager."""

if TYPE_CHECKING:
    from collections.abc import Awaitable


async def memory_store(seed: int) -> AbstractAsyncContextManager[Store]:
    """The default store factory: a fresh in-memory store (``memory://``) whose row times
    count from ``VIRTUAL_EPOCH``, not from the wall clock."""
    return MemoryStore(epoch=VIRTUAL_EPOCH)


def simulate_seed(
    seed: int,
    *,
    instances: int,
    faults: str | Iterable[str] | None = None,
    store_factory: StoreFactory = memory_store,
    **options: Any,
) -> ChaosReport:
    """One chaos run in virtual time with the scheduler seeded by ``seed``."""

    async def main() -> ChaosReport:
        settings = RuntimeSettings(
            database_url="memory://", executor_id=f"simulate-{seed}", recover_on_start=False
        )
        async with await store_factory(seed) as store:
            return await run_chaos(
                settings,
                seed=seed,
                instances=instances,
                faults=faults,
                store=store,
                virtual=True,
                reproduce=reproduce_command(
                    ["--simulate", "--seeds", str(seed), "--instances", str(instances)]
                    + (["--faults", faults] if isinstance(faults, str) else [])
                ),
                **options,
            )

    return run_virtual(main, seed=seed)


def sweep(
    seeds: Iterable[int],
    *,
    instances: int,
    faults: str | Iterable[str] | None = None,
    store_factory: StoreFactory = memory_store,
    rerun: bool = True,
    **options: Any,
) -> SweepReport:
    """Run every seed, then rerun one (the first failing seed, else the first seed) and
    compare trace hashes: ``reproducible`` says whether they matched."""
    began = time.perf_counter()
    seeds = list(seeds)
    hashes: dict[int, str] = {}
    violations: dict[int, list[str]] = {}
    faults_by_kind: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    lost = hung = 0
    first_failure: dict[str, Any] | None = None
    for seed in seeds:
        report = simulate_seed(
            seed, instances=instances, faults=faults, store_factory=store_factory, **options
        )
        hashes[seed] = report.trace_hash
        faults_by_kind.update(report.faults_by_kind)
        outcomes.update(report.outcomes)
        lost += report.invariants.turns_lost
        hung += report.invariants.hung_callers
        if not report.ok:
            violations[seed] = report.invariants.violated
            if first_failure is None:
                first_failure = report.to_dict()
    failing = sorted(violations)
    rerun_seed: int | None = None
    reproducible: bool | None = None
    if rerun and seeds:
        rerun_seed = failing[0] if failing else seeds[0]
        again = simulate_seed(
            rerun_seed, instances=instances, faults=faults, store_factory=store_factory, **options
        )
        reproducible = again.trace_hash == hashes[rerun_seed]
    spec = f"{seeds[0]}-{seeds[-1]}" if seeds else ""
    arguments = ["--simulate", "--seeds", spec, "--instances", str(instances)]
    if isinstance(faults, str):
        arguments += ["--faults", faults]
    return SweepReport(
        seeds_run=len(seeds),
        failing_seeds=failing,
        reproducible=reproducible,
        rerun_seed=rerun_seed,
        hashes=hashes,
        violations=violations,
        faults_by_kind=dict(sorted(faults_by_kind.items())),
        outcomes=dict(outcomes),
        turns_lost=lost,
        hung_callers=hung,
        wall_s=round(time.perf_counter() - began, 3),
        reproduce=reproduce_command(arguments),
        first_failure=first_failure,
        parameters={"instances": instances, "faults": faults, **options},
    )

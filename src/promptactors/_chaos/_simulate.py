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
from ._replay import cli_arguments, replay_in_new_process
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
    faults = _listed(faults)
    reproduce = reproduce_command(_arguments(f"{seed}-{seed}", instances, faults, options))

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
                reproduce=reproduce,
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
    compare trace hashes: ``reproducible`` says whether they matched.

    The seed is rerun twice: in this process after every other seed (a run must not
    depend on the runs before it), and — with the default store and options the command
    line takes — in a new Python process with another ``PYTHONHASHSEED``, as its
    ``reproduce`` line would (``rerun_hashes`` has both). If the new process cannot run,
    ``rerun_error`` says why and ``reproducible`` covers the in-process rerun only."""
    began = time.perf_counter()
    seeds = list(seeds)
    faults = _listed(faults)
    hashes: dict[int, str] = {}
    violations: dict[int, list[str]] = {}
    faults_by_kind: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    lost = hung = 0
    first_failure: dict[str, Any] | None = None
    slowest = 0.0
    for seed in seeds:
        report = simulate_seed(
            seed, instances=instances, faults=faults, store_factory=store_factory, **options
        )
        hashes[seed] = report.trace_hash
        slowest = max(slowest, report.wall_s)
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
    rerun_hashes: dict[str, str] = {}
    rerun_error: str | None = None
    if rerun and seeds:
        rerun_seed = failing[0] if failing else seeds[0]
        again = simulate_seed(
            rerun_seed, instances=instances, faults=faults, store_factory=store_factory, **options
        )
        rerun_hashes["this_process"] = again.trace_hash
        if store_factory is memory_store and cli_arguments(options) is not None:
            try:
                rerun_hashes["new_process"] = replay_in_new_process(
                    rerun_seed,
                    instances=instances,
                    faults=faults,
                    options=options,
                    timeout=60.0 + 20.0 * slowest,
                )
            except (RuntimeError, TypeError) as exc:
                rerun_error = str(exc)
        reproducible = all(h == hashes[rerun_seed] for h in rerun_hashes.values())
    spec = f"{seeds[0]}-{seeds[-1]}" if seeds else ""
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
        reproduce=reproduce_command(_arguments(spec, instances, faults, options)),
        first_failure=first_failure,
        rerun_hashes=rerun_hashes,
        rerun_error=rerun_error,
        parameters={"instances": instances, "faults": faults, **options},
    )


def _listed(faults: str | Iterable[str] | None) -> str | list[str] | None:
    """``faults`` with an iterable made a list (it is read more than once)."""
    return faults if faults is None or isinstance(faults, str) else list(faults)


def _arguments(
    seeds: str, instances: int, faults: str | list[str] | None, options: dict[str, Any]
) -> list[str]:
    """The ``chaos`` arguments that simulate ``seeds`` again with these parameters."""
    arguments = ["--simulate", "--seeds", seeds, "--instances", str(instances)]
    if faults is not None:
        arguments += ["--faults", faults if isinstance(faults, str) else ",".join(faults)]
    return arguments + (cli_arguments(options) or [])

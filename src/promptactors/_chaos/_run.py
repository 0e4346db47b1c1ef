"""``run_chaos``: one chaos run on a store, reported."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._exceptions import InvalidInput
from ..store import open_store
from ._driver import ChaosRun, drive
from ._report import ChaosReport, reproduce_command
from ._schedule import draw_schedule, parse_kinds

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .._settings import RuntimeSettings
    from ..store import Store

__all__ = ["run_chaos"]


async def run_chaos(
    settings: RuntimeSettings,
    *,
    seed: int,
    instances: int,
    faults: str | Iterable[str] | None = None,
    fault_rate: float = 0.5,
    tokens: int = 20,
    latency: float = 0.01,
    bound: float = 20.0,
    stall_seconds: float = 1.0,
    window: float = 2.0,
    outage_seconds: float = 0.5,
    store: Store | None = None,
    virtual: bool = False,
    reproduce: str | None = None,
) -> ChaosReport:
    """Run ``instances`` instances with one streamed turn each under the fault schedule
    drawn from ``seed`` (``faults``: the kinds to draw from, default all; each instance
    gets a fault with probability ``fault_rate``), then check the invariants.

    ``store`` is used as is (the caller closes it); by default the store of
    ``settings.database_url`` is opened and closed. Every caller wait is bounded by
    ``bound`` seconds. ``virtual`` records event times in the trace (for runs under a
    mock clock). Raises ``InvalidInput`` for bad counts or kinds; never raises for a
    fault or a violation (read the report).
    """
    if instances < 1:
        raise InvalidInput(f"instances must be at least 1, got {instances}")
    if not 0.0 <= fault_rate <= 1.0:
        raise InvalidInput(f"fault_rate must be in [0, 1], got {fault_rate}")
    kinds = parse_kinds(faults)
    schedule = draw_schedule(
        seed,
        instances,
        kinds,
        fault_rate=fault_rate,
        tokens=tokens,
        window=window,
        outage_seconds=outage_seconds,
    )

    async def go(store: Store) -> ChaosRun:
        return await drive(
            settings,
            schedule,
            store=store,
            tokens=tokens,
            latency=latency,
            bound=bound,
            stall_seconds=stall_seconds,
            virtual=virtual,
        )

    if store is not None:
        run = await go(store)
    else:
        async with await open_store(settings.database_url, migrate=True) as opened:
            run = await go(opened)
    arguments = ["--instances", str(instances), "--seed", str(seed)]
    if faults is not None and set(kinds) != set(parse_kinds(None)):
        arguments += ["--faults", ",".join(kinds)]
    return ChaosReport.from_run(
        run,
        instances=instances,
        kinds=kinds,
        reproduce=reproduce or reproduce_command(arguments),
        fault_rate=fault_rate,
        tokens=tokens,
        latency=latency,
        bound=bound,
        database=settings.database_url,
    )

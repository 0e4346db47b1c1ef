"""``promptactors chaos``: a load with seeded faults, then the invariant checker."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .. import FAULT_KINDS, ChaosReport, SweepReport, run_chaos, simulate_sweep
from ._common import DatabaseOption, run_async, settings_from

_out = Console()


def chaos(
    instances: Annotated[
        int, typer.Option("--instances", "-n", help="Instances, one turn each (per seed).")
    ] = 200,
    seed: Annotated[int, typer.Option("--seed", help="The seed of the fault schedule.")] = 0,
    faults: Annotated[
        str | None,
        typer.Option(
            "--faults",
            metavar="KIND,...",
            help=f"Fault kinds to draw from (default all): {', '.join(FAULT_KINDS)}.",
        ),
    ] = None,
    fault_rate: Annotated[
        float, typer.Option("--fault-rate", help="Share of instances that get a fault.")
    ] = 0.5,
    simulate: Annotated[
        bool,
        typer.Option(
            "--simulate", help="Virtual time, seeded scheduling, in-memory store: sweep --seeds."
        ),
    ] = False,
    seeds: Annotated[
        str, typer.Option("--seeds", metavar="A-B", help="Seeds of a --simulate sweep: 1-300.")
    ] = "1-20",
    bound: Annotated[
        float, typer.Option("--bound", help="Seconds any caller may wait (else: hung).")
    ] = 20.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    database: DatabaseOption = None,
) -> None:
    """Run a load with a fault schedule drawn from --seed (crashes, provider faults, stops,
    busy turns, edits mid-turn, store outages, engine actor crashes, run claims), then check
    the turn contract's invariants. Exits 1 if any invariant is violated."""
    report: ChaosReport | SweepReport
    if simulate:
        seed_list = _parse_seeds(seeds)
        report = simulate_sweep(
            seed_list, instances=instances, faults=faults, fault_rate=fault_rate, bound=bound
        )
    else:
        settings = settings_from(database_url=database)

        async def main() -> ChaosReport:
            return await run_chaos(
                settings,
                seed=seed,
                instances=instances,
                faults=faults,
                fault_rate=fault_rate,
                bound=bound,
            )

        report = run_async(main)
    data = report.to_dict()
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        _print(data, simulate)
    if not report.ok:
        raise typer.Exit(1)


def _parse_seeds(value: str) -> list[int]:
    """``1-300``, ``7`` or ``1,5,9-12`` as a list of seeds."""
    seeds: list[int] = []
    try:
        for part in value.split(","):
            first, dash, last = part.strip().partition("-")
            seeds.extend(range(int(first), (int(last) if dash else int(first)) + 1))
    except ValueError:
        raise typer.BadParameter("write seeds as A-B, A or A,B-C", param_hint="--seeds") from None
    if not seeds:
        raise typer.BadParameter("no seed in the range", param_hint="--seeds")
    return seeds


def _print(data: dict[str, Any], simulate: bool) -> None:
    head = Table(title="promptactors chaos", show_header=False)
    keys = (
        ("seeds_run", "failing_seeds", "reproducible")
        if simulate
        else ("seed", "instances", "restarts", "retries")
    )
    for key in (*keys, "faults_injected", "turns_lost", "hung_callers", "wall_s"):
        head.add_row(key.replace("_", " "), str(data[key]))
    head.add_row("outcomes", ", ".join(f"{k} {v}" for k, v in data["outcomes"].items()))
    _out.print(head)
    faults = Table("fault", "injected", title="faults by kind")
    for kind, count in data["faults_by_kind"].items():
        faults.add_row(kind, str(count))
    _out.print(faults)
    if simulate:
        for seed, names in data["violations_by_seed"].items():
            _out.print(f"seed {seed}: violated {', '.join(names)}", highlight=False)
        if data["first_failure"]:
            _invariants(data["first_failure"]["invariants"])
    else:
        _invariants(data["invariants"])
    _out.print(f"reproduce: {data['reproduce']}", highlight=False, soft_wrap=True)


def _invariants(results: list[dict[str, Any]]) -> None:
    table = Table("invariant", "held", "violations", "examples", title="invariants")
    for result in results:
        table.add_row(
            result["name"],
            "yes" if result["held"] else "[bold red]NO[/]",
            str(result["violations"]),
            "\n".join(result["examples"][:3]),
        )
    _out.print(table)

"""``promptactors load``: many instances, one turn each, with a live progress bar."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import load_prompt_file, open_runtime, run_load
from ._common import (
    DatabaseOption,
    LatencyOption,
    ModelOption,
    ProviderOption,
    TokensOption,
    parse_vars,
    run_async,
    settings_from,
)

_out = Console()


def load(
    instances: Annotated[int, typer.Option("--instances", "-n", help="How many instances.")] = 1000,
    rate: Annotated[
        float | None,
        typer.Option("--rate", help="Instances started per second (default: all at once)."),
    ] = None,
    prompt: Annotated[
        str | None,
        typer.Option(
            "--prompt", "-p", help="A prompt file or stored prompt id (default: a demo prompt)."
        ),
    ] = None,
    var: Annotated[
        list[str] | None, typer.Option("--var", "-v", help="name=value (repeatable).")
    ] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not record runs.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="Also write the report as CSV.")
    ] = None,
    database: DatabaseOption = None,
    provider: ProviderOption = None,
    model: ModelOption = None,
    tokens: TokensOption = None,
    latency: LatencyOption = None,
) -> None:
    """Start N instances, run one turn on each, report throughput and latency percentiles."""
    settings = settings_from(
        database_url=database,
        provider=provider,
        model=model,
        simulated_tokens=tokens,
        simulated_latency=latency,
    )
    variables = parse_vars(var)
    definition = None
    prompt_id = None
    if prompt is not None:
        if Path(prompt).suffix in (".yaml", ".yml", ".json"):
            definition = load_prompt_file(prompt)
        else:
            prompt_id = prompt

    async def main() -> dict[str, Any]:
        async with open_runtime(settings) as rt:
            if as_json:
                report = await run_load(
                    rt,
                    instances=instances,
                    rate=rate,
                    prompt_id=prompt_id,
                    prompt=definition,
                    variables=variables,
                    track=not no_track,
                )
            else:
                with Progress(
                    TextColumn("[bold]load"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[failed]} failed"),
                    TimeElapsedColumn(),
                    console=_out,
                    transient=True,
                ) as bar:
                    task = bar.add_task("turns", total=instances, failed=0)

                    def progress(started: int, done: int, failed: int) -> None:
                        bar.update(task, completed=done + failed, failed=failed)

                    report = await run_load(
                        rt,
                        instances=instances,
                        rate=rate,
                        prompt_id=prompt_id,
                        prompt=definition,
                        variables=variables,
                        track=not no_track,
                        progress=progress,
                    )
            figures = report.to_dict()
            figures["database"] = settings.database_url
            return figures

    figures = run_async(main)
    if csv_path is not None:
        with csv_path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["figure", "value"])
            for key, value in figures.items():
                writer.writerow([key, json.dumps(value) if isinstance(value, dict) else value])
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
        if figures["errors"]:
            raise typer.Exit(1)
        return
    table = Table(title=f"promptactors load: {instances} instances")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        if isinstance(value, float):
            shown = f"{value:.4f}" if value < 100 else f"{value:,.1f}"
        else:
            shown = str(value)
        table.add_row(key, shown)
    _out.print(table)
    if figures["errors"]:
        raise typer.Exit(1)

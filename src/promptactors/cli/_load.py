"""``promptactors load``: many instances, one streamed turn each, a live view, a report."""

from __future__ import annotations

import importlib
import json
import signal
from pathlib import Path
from typing import Annotated

import anyio
import typer
from rich.console import Console

from .. import (
    ConfigurationError,
    InvalidInput,
    LoadMonitor,
    LoadReport,
    load_prompt_file,
    open_runtime,
    run_load,
)
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
from ._load_view import print_report, show_progress

_out = Console()
_err = Console(stderr=True)

#: Exit status of a load stopped by Ctrl-C (after its partial report), as shells count it.
INTERRUPTED = 130


def parse_slo(values: list[str] | None) -> dict[str, float]:
    """``ttft=0.5,tpot=0.05`` (seconds; repeatable) as a mapping; names are checked by
    ``run_load``."""
    slo: dict[str, float] = {}
    for value in values or []:
        for pair in value.split(","):
            name, sep, bound = pair.partition("=")
            try:
                slo[name.strip()] = float(bound)
            except ValueError:
                sep = ""
            if not sep or not name.strip():
                raise InvalidInput(f"--slo {value!r}: write it as name=seconds[,name=seconds]")
    return slo


def _need_matplotlib() -> None:
    try:
        importlib.import_module("matplotlib")
    except ImportError as exc:
        raise ConfigurationError(
            "--html needs matplotlib: pip install 'prompt-actors[report]'"
        ) from exc


async def _stop_on_sigint(monitor: LoadMonitor) -> None:
    """The first Ctrl-C stops the load (its partial report follows); a second one stops
    everything at once."""
    with anyio.open_signal_receiver(signal.SIGINT) as signals:
        async for _ in signals:
            if monitor.stopped:
                raise KeyboardInterrupt
            _err.print("stopping the load (Ctrl-C again to quit at once)", highlight=False)
            monitor.stop()


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
    slo: Annotated[
        list[str] | None,
        typer.Option(
            "--slo",
            help="Goodput SLOs in seconds: ttft=0.5,tpot=0.05 (also itl=, e2e=).",
        ),
    ] = None,
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not record runs.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="Write one CSV row per turn to this file.")
    ] = None,
    html_path: Annotated[
        Path | None,
        typer.Option("--html", help="Write a self-contained HTML report with plots."),
    ] = None,
    database: DatabaseOption = None,
    provider: ProviderOption = None,
    model: ModelOption = None,
    tokens: TokensOption = None,
    latency: LatencyOption = None,
) -> None:
    """Start N instances, stream one turn on each, and report TTFT, TPOT, ITL and end-to-end
    percentiles, throughput, goodput, failures and a time series. Ctrl-C stops the load and
    prints a partial report."""
    settings = settings_from(
        database_url=database,
        provider=provider,
        model=model,
        simulated_tokens=tokens,
        simulated_latency=latency,
    )
    variables = parse_vars(var)
    slos = parse_slo(slo)
    if html_path is not None:
        _need_matplotlib()
    definition = None
    prompt_id = None
    if prompt is not None:
        if Path(prompt).suffix in (".yaml", ".yml", ".json"):
            definition = load_prompt_file(prompt)
        else:
            prompt_id = prompt

    async def main() -> LoadReport:
        monitor = LoadMonitor()
        async with anyio.create_task_group() as tg:
            tg.start_soon(_stop_on_sigint, monitor)
            async with open_runtime(settings) as rt:
                tg.start_soon(show_progress, monitor, _err, rate)
                report = await run_load(
                    rt,
                    instances=instances,
                    rate=rate,
                    prompt_id=prompt_id,
                    prompt=definition,
                    variables=variables,
                    track=not no_track,
                    slo=slos,
                    monitor=monitor,
                )
            # Only once the runtime has shut down gracefully (turns ended, rows closed):
            # cancelling inside its block would cut that shutdown short.
            tg.cancel_scope.cancel()  # the live view and the Ctrl-C watcher
        return report

    report = run_async(main)
    if csv_path is not None:
        report.write_csv(csv_path)
    if html_path is not None:
        report.write_html(html_path, title=f"promptactors load: {instances:,} instances")
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        print_report(report, _out)
    for path in (csv_path, html_path):
        if path is not None:
            _err.print(f"wrote {path}", highlight=False, soft_wrap=True)
    if report.partial:
        raise typer.Exit(INTERRUPTED)
    if report.errors:
        raise typer.Exit(1)

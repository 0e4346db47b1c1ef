"""``promptactors bench NAME``: run a benchmark from ``benchmarks/`` and print its figures."""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

import promptactors

from .. import InvalidInput
from ._help import Command, Group

if TYPE_CHECKING:
    from types import ModuleType

bench_app = typer.Typer(
    cls=Group, help="Benchmarks, each measured side by side with its peer in one run."
)

BENCHMARKS = {
    "kernel": "actor kernel vs pykka: tell, ask, spawn, memory (and asyncio)",
    "engine": "10,000 instances streaming on the simulated provider, tracked in SQLite",
    "providers": "our OpenAI-compatible client vs the official openai SDK",
    "store": "tracked executions per second: group commit vs one transaction a write",
    "e2e": "1,000 streamed turns tracked in PostgreSQL: us vs openai SDK + SQLAlchemy",
    "scale": "one load at 1 and 2 processes on PostgreSQL, then a kill test (needs -d)",
}
# Benchmarks that measure a database: ``-d/--database`` names it (default: a temporary
# PostgreSQL database on the local server, created and dropped by the benchmark).


def load_benchmark(name: str) -> ModuleType:
    """Import benchmark module ``name`` from the wheel's copy or the source checkout.

    Raises ``InvalidInput`` for an unknown name or a benchmark that is not there.
    """
    if name not in BENCHMARKS:
        raise InvalidInput(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")
    # A wheel ships the checkout's benchmarks/ as promptactors/_benchmarks (pyproject.toml):
    # data that comes with the package, not part of its API.
    try:
        return importlib.import_module(f"promptactors._benchmarks.{name}")
    except ModuleNotFoundError as exc:
        missing = exc
    package = Path(promptactors.__file__).resolve().parent
    packaged, checkout = package / "_benchmarks", package.parents[1] / "benchmarks"
    if packaged.is_dir():
        raise InvalidInput(
            f"benchmark {name!r} is not available in this version ({missing})"
        ) from missing
    if not checkout.is_dir():
        raise InvalidInput(
            "benchmarks are not installed: promptactors data folder '_benchmarks' "
            f"not found at {packaged} or {checkout}"
        )
    root = str(checkout.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        return importlib.import_module(f"{checkout.name}.{name}")
    except ModuleNotFoundError as exc:
        raise InvalidInput(f"benchmark {name!r} is not available in this version ({exc})") from exc


def _print_table(name: str, figures: dict[str, Any]) -> None:
    table = Table(title=f"promptactors bench {name}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                table.add_row(f"{key}.{sub}", _fmt(subvalue))
        else:
            table.add_row(key, _fmt(value))
    Console().print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _command(name: str) -> None:
    def command(
        quick: Annotated[
            bool, typer.Option("--quick", help="A shorter run (under a minute or two).")
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
        output: Annotated[
            Path | None,
            typer.Option("--output", "-o", metavar="FILE", help="Also write the JSON here."),
        ] = None,
        database: Annotated[
            list[str] | None,
            typer.Option(
                "--database",
                "-d",
                help="Database URL (repeatable where supported; default: a temporary "
                "PostgreSQL database on 127.0.0.1:5432, created and dropped).",
            ),
        ] = None,
    ) -> None:
        module = load_benchmark(name)
        parameters = inspect.signature(module.run).parameters
        figures: dict[str, Any]
        if "databases" in parameters:
            figures = module.run(quick=quick, databases=tuple(database or ()))
        elif "database" in parameters:
            if database and len(database) > 1:
                raise InvalidInput(f"bench {name} takes one --database")
            figures = module.run(quick=quick, database=database[0] if database else None)
        elif database:
            raise InvalidInput(f"bench {name} takes no --database")
        else:
            figures = module.run(quick=quick)
        text = json.dumps(figures, indent=2, sort_keys=False)
        if output is not None:
            output.write_text(text + "\n", encoding="utf-8")
        if as_json:
            typer.echo(text)
        else:
            _print_table(name, figures)

    summary = BENCHMARKS[name]
    command.__doc__ = summary[0].upper() + summary[1:] + "."
    bench_app.command(name=name, cls=Command)(command)


for _name in BENCHMARKS:
    _command(_name)

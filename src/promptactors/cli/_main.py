"""Entry point: builds the typer app and turns errors into messages, never tracebacks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from .. import PromptActorsError, __version__
from ._bench import bench_app
from ._chaos import chaos
from ._chat import chat
from ._common import use_config_file
from ._db import db_app
from ._help import Command, Group
from ._init import init
from ._inspect import instances, prompts_app, recover, runs_app, tasks_app
from ._load import load
from ._load_procs import WORKER, load_worker
from ._logging import LEVELS, configure_logging
from ._run import run

PROVIDERS_HELP = (
    "Providers: simulated (the default: no network, no key), openai-compatible (OpenAI, "
    "vLLM, Ollama, llama.cpp, LM Studio...) and anthropic. Configure one by naming it and "
    "describing its endpoint, e.g. PROMPTACTORS_PROVIDER=openai "
    """PROMPTACTORS_ENDPOINTS='{"openai": {"kind": "openai", "default_model": "gpt-4o-mini"}}' """
    "(kind: openai or anthropic; optional base_url, api_key_env); the key is read from "
    "OPENAI_API_KEY or ANTHROPIC_API_KEY. Also: PROMPTACTORS_MODEL, "
    "PROMPTACTORS_DATABASE_URL (sqlite:///file.db or postgresql://user@host/db)."
)

app = typer.Typer(
    name="promptactors",
    cls=Group,
    help="An actor-model runtime that executes LLM prompts.",
    epilog=PROVIDERS_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(bench_app, name="bench")
app.command(cls=Command)(init)
app.command(cls=Command, epilog=PROVIDERS_HELP)(run)
app.command(cls=Command, epilog=PROVIDERS_HELP)(chat)
app.command(cls=Command)(load)
app.command(cls=Command)(chaos)
app.command(WORKER, cls=Command, hidden=True)(load_worker)
app.add_typer(runs_app, name="runs")
app.add_typer(tasks_app, name="tasks")
app.add_typer(prompts_app, name="prompts")
app.command(cls=Command)(recover)
app.command(cls=Command)(instances)
app.add_typer(db_app, name="db")

_err = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level", metavar="LEVEL", help=f"Log level on stderr: {', '.join(LEVELS)}."
        ),
    ] = "warning",
    log_json: Annotated[
        bool, typer.Option("--log-json", help="Log JSON lines instead of text.")
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            metavar="FILE",
            help="A TOML config file (default: PROMPTACTORS_CONFIG, else ./promptactors.toml).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    use_config_file(config)
    if log_level.lower() not in LEVELS:
        raise typer.BadParameter(f"choose one of {', '.join(LEVELS)}", param_hint="--log-level")
    configure_logging(log_level.lower(), json=log_json)


@app.command(cls=Command)
def version() -> None:
    """Print the installed version."""
    typer.echo(__version__)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (1: an error we explain, 2: a bug).

    Set ``PROMPTACTORS_DEBUG=1`` to see the traceback of an unexpected error.
    """
    try:
        app(args=argv, prog_name="promptactors", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except PromptActorsError as exc:
        _err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 1
    except BaseExceptionGroup as group:
        ours, rest = group.split(PromptActorsError)
        if ours is None or rest is not None:
            if os.environ.get("PROMPTACTORS_DEBUG") == "1":
                raise
            _err.print(f"[bold red]internal error:[/] {group!r}", highlight=False)
            return 2
        for error in _leaves(ours):
            _err.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        _err.print("interrupted")
        return 130
    except Exception as exc:
        if os.environ.get("PROMPTACTORS_DEBUG") == "1":
            raise
        _err.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc}\n"
            "(set PROMPTACTORS_DEBUG=1 to see the traceback, and please report it)",
            highlight=False,
        )
        return 2
    return 0


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            leaves.extend(_leaves(exc))
        else:
            leaves.append(exc)
    return leaves

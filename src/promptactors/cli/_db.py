"""``promptactors db``: create and migrate the schema, say its status, store prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from .. import load_prompt_file
from ..store import (
    ExecutorRecord,
    PromptMessageRow,
    PromptRecord,
    VariableDefaultRow,
    open_store,
)
from ._common import DatabaseOption, run_async, settings_from
from ._help import Command, Group
from ._output import JsonOption, existing_database, print_json, redact_url

db_app = typer.Typer(
    cls=Group, help="The database: schema, status and stored prompts.", no_args_is_help=True
)
_out = Console()


def _migrate(database: str | None) -> None:
    settings = settings_from(database_url=database)

    async def main() -> tuple[int, int]:
        async with await open_store(settings.database_url) as store:
            applied = await store.migrate()
            return applied, await store.schema_version()

    applied, version = run_async(main)
    _out.print(
        f"schema at version {version} ({applied} migration{'s' if applied != 1 else ''} applied) "
        f"in {settings.database_url}",
        highlight=False,
    )


@db_app.command("init", cls=Command)
def init(database: DatabaseOption = None) -> None:
    """Create the schema (idempotent)."""
    _migrate(database)


@db_app.command("migrate", cls=Command)
def migrate(database: DatabaseOption = None) -> None:
    """Apply pending migrations (idempotent)."""
    _migrate(database)


@db_app.command("status", cls=Command)
def status(as_json: JsonOption = False, database: DatabaseOption = None) -> None:
    """The schema version, the database URL (password hidden), runs and tasks by status,
    and the executors sharing the database: alive or expired, with the leases they hold."""
    settings = settings_from(database_url=database)

    url = existing_database(settings.database_url)

    async def main() -> tuple[int, dict[str, dict[str, int]], list[ExecutorRecord]]:
        async with await open_store(url) as store:
            version = await store.schema_version()
            # An empty database has no tables to count in yet.
            counts = await store.count_by_status() if version else {"runs": {}, "tasks": {}}
            executors = await store.list_executors() if version >= 3 else []
            return version, counts, executors

    version, counts, executors = run_async(main)
    data: dict[str, Any] = {
        "database": redact_url(settings.database_url),
        "schema_version": version,
        "runs": counts["runs"],
        "tasks": counts["tasks"],
        "executors": [_executor_data(e) for e in executors],
        "leases": {
            "held": sum(e.runs for e in executors),
            "expired": sum(e.expired_leases for e in executors),
        },
    }
    if as_json:
        print_json(data)
        return
    _out.print(f"database  {data['database']}", highlight=False, soft_wrap=True)
    _out.print(
        f"schema    version {version}"
        + ("" if version else " (empty: run `promptactors db init`)"),
        highlight=False,
    )
    for table in ("runs", "tasks"):
        shown = ", ".join(f"{n} {s}" for s, n in sorted(counts[table].items())) or "none"
        _out.print(f"{table:<9} {sum(counts[table].values())} ({shown})", highlight=False)
    alive = sum(e.alive for e in executors)
    leases = data["leases"]
    _out.print(
        f"executors {len(executors)} ({alive} alive, {len(executors) - alive} expired); "
        f"leases {leases['held']} held, {leases['expired']} expired",
        highlight=False,
    )
    if executors:
        grid = Table(box=None, padding=(0, 1, 0, 0), header_style="bold underline")
        for column in ("executor", "state", "host", "pid", "group", "heartbeat", "lease", "runs"):
            grid.add_column(column)
        for e in executors:
            grid.add_row(
                e.id,
                "alive" if e.alive else "[red]expired[/]",
                e.host,
                str(e.pid),
                e.group or "-",
                e.heartbeat_at.strftime("%H:%M:%S"),
                f"{e.lease_seconds:g} s",
                f"{e.runs}" + (f" ({e.expired_leases} expired)" if e.expired_leases else ""),
            )
        _out.print(grid)


def _executor_data(e: ExecutorRecord) -> dict[str, Any]:
    return {
        "id": e.id,
        "alive": e.alive,
        "host": e.host,
        "pid": e.pid,
        "group": e.group,
        "started_at": e.started_at.isoformat(),
        "heartbeat_at": e.heartbeat_at.isoformat(),
        "lease_seconds": e.lease_seconds,
        "runs": e.runs,
        "expired_leases": e.expired_leases,
    }


def add_prompt(
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="A prompt definition (.yaml/.json).")
    ],
    builtin: Annotated[
        bool, typer.Option("--builtin", help="Store it in prompt_builtins.")
    ] = False,
    database: DatabaseOption = None,
) -> None:
    """Store (or replace) a prompt so `promptactors run ID` and actions can use it."""
    definition = load_prompt_file(file)
    settings = settings_from(database_url=database)
    record = PromptRecord(
        id=definition.id,
        name=definition.name,
        messages=tuple(PromptMessageRow(m.role, m.content) for m in definition.messages),
        variable_defaults=tuple(
            VariableDefaultRow(v.name, v.default, v.help_text) for v in definition.variables
        ),
        settings=dict(definition.settings),
    )
    source: Literal["prompts", "prompt_builtins"] = "prompt_builtins" if builtin else "prompts"

    async def main() -> None:
        async with await open_store(settings.database_url, migrate=True) as store:
            await store.put_prompt(record, source)

    run_async(main)
    _out.print(f"stored prompt {definition.id!r} in {source}", highlight=False)


# `prompts add` is the name to use; `db add-prompt` stays for scripts written before it.
db_app.command("add-prompt", cls=Command)(add_prompt)

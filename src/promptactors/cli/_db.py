"""``promptactors db``: create and migrate the schema, store prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

from .. import load_prompt_file
from ..store import PromptMessageRow, PromptRecord, VariableDefaultRow, open_store
from ._common import DatabaseOption, run_async, settings_from

db_app = typer.Typer(help="The database: schema and stored prompts.", no_args_is_help=True)
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


@db_app.command("init")
def init(database: DatabaseOption = None) -> None:
    """Create the schema (idempotent)."""
    _migrate(database)


@db_app.command("migrate")
def migrate(database: DatabaseOption = None) -> None:
    """Apply pending migrations (idempotent)."""
    _migrate(database)


@db_app.command("add-prompt")
def add_prompt(
    file: Annotated[Path, typer.Argument(help="A prompt definition (.yaml/.json).")],
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

"""Numbered schema migrations, read from ``sql/<dialect>/NNNN_name.sql``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from promptactors._exceptions import SchemaError
from promptactors._resources import resource_dir

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["Migration", "latest_version", "load_migrations", "sql_statements"]

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

# Serialises concurrent migrators on PostgreSQL (pg_advisory_xact_lock key).
ADVISORY_LOCK_KEY = 0x70616374  # "pact"


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration: its version number, name and SQL script."""

    version: int
    name: str
    sql: str


@cache
def load_migrations(dialect: str) -> tuple[Migration, ...]:
    """The migrations of ``dialect`` (``sqlite`` or ``postgres``) in version order.

    Raises ``SchemaError`` if the folder is missing or the numbering has a gap.
    """
    try:
        folder = resource_dir("sql") / dialect
    except FileNotFoundError as exc:
        raise SchemaError(f"cannot find the schema migrations: {exc}") from exc
    found = []
    for path in folder.glob("*.sql"):
        match = _NAME.match(path.name)
        if match is None:
            raise SchemaError(f"migration file {path.name!r} is not named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise SchemaError(f"{dialect} migrations must be numbered 1, 2, 3... without gaps")
    return tuple(found)


def latest_version(dialect: str) -> int:
    """The version the schema has once every migration of ``dialect`` is applied."""
    return len(load_migrations(dialect))


def sql_statements(script: str) -> Iterable[str]:
    """Split a migration script into statements (ours hold no ';' inside literals)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    for statement in "\n".join(lines).split(";"):
        if statement.strip():
            yield statement

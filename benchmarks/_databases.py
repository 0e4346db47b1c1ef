"""Databases for the benchmarks: a temporary PostgreSQL database, and row counts read
independently of the store under test (plain asyncpg or sqlite3, not our adapters)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from promptactors.store import open_store
from promptactors.store._open import sqlite_path

if TYPE_CHECKING:
    from collections.abc import Iterator

# The local server the benchmarks use when no database is named (trust auth, as CI's).
ADMIN_URL = os.environ.get(
    "PROMPTACTORS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def dialect(url: str) -> str:
    """``postgresql`` or ``sqlite``, from a store URL."""
    scheme = url.split(":", 1)[0].lower() if "://" in url else ""
    return "postgresql" if scheme in ("postgresql", "postgres") else "sqlite"


def redact(url: str) -> str:
    """``url`` without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def _pg(url: str, sql: str, *args: Any) -> list[Any]:
    import asyncpg

    async def go() -> list[Any]:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


@contextmanager
def temporary_postgres(admin_url: str = ADMIN_URL) -> Iterator[str]:
    """A new, empty database on the server of ``admin_url``, dropped on the way out."""
    name = f"pa_bench_{uuid.uuid4().hex[:12]}"
    _pg(admin_url, f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin_url)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        _pg(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(url: str) -> None:
    """Create (or bring up to date) the schema at ``url``."""

    async def go() -> None:
        store = await open_store(url, migrate=True)
        await store.close()

    asyncio.run(go())


def query(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run one statement at ``url`` (``$1`` placeholders, turned into ``?`` for SQLite)."""
    if dialect(url) == "postgresql":
        return [tuple(row) for row in _pg(url, sql, *args)]
    for index in range(len(args), 0, -1):
        sql = sql.replace(f"${index}", "?")
    with sqlite3.connect(sqlite_path(url), timeout=30) as conn:
        rows = conn.execute(sql, args).fetchall()
    conn.close()
    return rows


def count(url: str, sql: str, *args: Any) -> int:
    """The single integer ``sql`` selects."""
    return int(query(url, sql, *args)[0][0])

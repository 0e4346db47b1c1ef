"""Listing prompts and counting runs and tasks by status, for both adapters.

Kept apart from ``_sqlite.py`` and ``_postgres.py`` so neither grows past 600 lines: each
adapter mixes in its class here, which reaches the database through the adapter's own
``_call`` and ``_db``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from promptactors._exceptions import InvalidInput

from ._records import PROMPT_SOURCES, PromptRecord, PromptSource, check_choice
from ._rows import POSTGRES, SQLITE, prompt_from_row

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Awaitable, Callable, Iterable

    import asyncpg

__all__ = ["PostgresPromptListing", "SqlitePromptListing", "check_listing"]

T = TypeVar("T")


def check_listing(source: PromptSource, limit: int) -> None:
    """Raise ``InvalidInput`` unless ``source`` is a prompt table and ``limit`` positive."""
    check_choice(source, PROMPT_SOURCES, "prompt source")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput(f"limit must be a positive integer, got {limit!r}")


def _list_sql(source: PromptSource, limit: int, mark: str) -> str:
    """The query, once the arguments are checked (``source`` is then a known table name)."""
    check_listing(source, limit)
    return f"SELECT * FROM {source} ORDER BY id LIMIT {mark}"


_COUNT_SQL = (
    "SELECT 'runs', status, count(*) FROM ai_runs GROUP BY status"
    " UNION ALL SELECT 'tasks', status, count(*) FROM ai_tasks GROUP BY status"
)


def _counts(rows: Iterable[Any]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {"runs": {}, "tasks": {}}
    for table, status, n in rows:
        counts[table][status] = int(n)
    return counts


class SqlitePromptListing:
    """``Store.list_prompts`` and ``Store.count_by_status`` on SQLite."""

    if TYPE_CHECKING:

        @property
        def _db(self) -> sqlite3.Connection: ...

        async def _call(self, what: str, fn: Callable[..., T], *args: Any) -> T: ...

    async def list_prompts(
        self, source: PromptSource = "prompts", *, limit: int = 100
    ) -> list[PromptRecord]:
        """The prompts of ``source`` in id order, at most ``limit``."""
        sql = _list_sql(source, limit, "?")

        def read() -> list[PromptRecord]:
            return [prompt_from_row(r, SQLITE) for r in self._db.execute(sql, (limit,))]

        return await self._call(f"list {source}", read)

    async def count_by_status(self) -> dict[str, dict[str, int]]:
        """How many runs and tasks have each status: ``{"runs": {...}, "tasks": {...}}``."""
        return await self._call(
            "count runs and tasks", lambda: _counts(self._db.execute(_COUNT_SQL))
        )


class PostgresPromptListing:
    """``Store.list_prompts`` and ``Store.count_by_status`` on PostgreSQL."""

    if TYPE_CHECKING:

        @property
        def _db(self) -> asyncpg.Pool: ...

        async def _call(self, what: str, fn: Callable[..., Awaitable[T]], *args: Any) -> T: ...

    async def list_prompts(
        self, source: PromptSource = "prompts", *, limit: int = 100
    ) -> list[PromptRecord]:
        """The prompts of ``source`` in id order, at most ``limit``."""
        sql = _list_sql(source, limit, "$1")

        async def read() -> list[PromptRecord]:
            return [prompt_from_row(r, POSTGRES) for r in await self._db.fetch(sql, limit)]

        return await self._call(f"list {source}", read)

    async def count_by_status(self) -> dict[str, dict[str, int]]:
        """How many runs and tasks have each status: ``{"runs": {...}, "tasks": {...}}``."""

        async def read() -> dict[str, dict[str, int]]:
            return _counts(await self._db.fetch(_COUNT_SQL))

        return await self._call("count runs and tasks", read)

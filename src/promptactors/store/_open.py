"""Open a store from a URL."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from promptactors._exceptions import InvalidInput, StoreUnavailable

if TYPE_CHECKING:
    from ._protocol import Store

__all__ = ["open_store"]


async def open_store(
    url: str,
    *,
    migrate: bool = False,
    pool_size: int = 10,
    connect_timeout: float = 10.0,
    busy_timeout: float = 5.0,
) -> Store:
    """Open the store at ``url`` from the running trio or asyncio task.

    ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or a bare path open an SQLite
    file (created if missing); ``sqlite:///:memory:`` a private in-memory database;
    ``postgresql://`` or ``postgres://`` URLs a PostgreSQL database through a pool of at
    most ``pool_size`` connections (needs the ``postgres`` extra). With ``migrate`` the
    pending schema migrations are applied. Use the store as an async context manager, or
    call ``close()``.

    Raises ``InvalidInput`` for a URL it cannot use, ``StoreUnavailable`` when the database
    cannot be opened or reached, ``SchemaError`` when its schema is newer than this version.
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidInput(f"a store URL must be a non-empty string, got {url!r}")
    scheme = url.split(":", 1)[0].lower() if "://" in url else ""
    store: Store
    if scheme in ("postgresql", "postgres"):
        try:
            from ._postgres import PostgresStore
        except ImportError as exc:
            raise StoreUnavailable(
                "PostgreSQL support needs asyncpg: install prompt-actors[postgres]"
            ) from exc
        store = await PostgresStore.open(url, pool_size=pool_size, connect_timeout=connect_timeout)
    elif scheme == "memory":
        if url.strip().lower() != "memory://":
            raise InvalidInput(f"a memory store URL is just memory://, got {url!r}")
        from ._memory import MemoryStore

        store = MemoryStore()
    elif scheme in ("sqlite", ""):
        from ._sqlite import SqliteStore

        store = await SqliteStore.open(sqlite_path(url), busy_timeout=busy_timeout)
    else:
        raise InvalidInput(
            f"unknown store URL scheme {scheme!r} in {url!r}: use sqlite:///path.db, "
            "postgresql://..., memory:// or a file path"
        )
    if migrate:
        try:
            await store.migrate()
        except BaseException:
            await store.close()
            raise
    return store


def sqlite_path(url: str) -> str:
    """The file path (or ``:memory:``) an SQLite URL or bare path names."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise InvalidInput(f"an SQLite URL is sqlite:///path/to/file.db, got {url!r}")
    path = unquote(parts.path)
    # sqlite:///rel.db -> "/rel.db" -> "rel.db"; sqlite:////abs.db -> "//abs.db" -> "/abs.db"
    path = path[1:] if path.startswith("/") else path
    if not path:
        raise InvalidInput(f"the SQLite URL {url!r} names no file")
    return path

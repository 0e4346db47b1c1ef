"""Fixtures of the store contract suite: one database URL per store kind."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database: an SQLite file, a fresh PostgreSQL database, or
    ``memory://`` (each open of which is a fresh in-memory store).

    The PostgreSQL case goes through the ``postgres_url`` fixture, so it skips without a
    server, or fails when ``PROMPTACTORS_REQUIRE_POSTGRES=1``.
    """
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    if request.param == "memory":
        return "memory://"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def sql_store_url(store_url: str) -> str:
    """``store_url`` for tests about a database's schema: the memory store has none (it is
    born with the latest schema, and nothing outside the process can change it)."""
    if store_url.startswith("memory:"):
        pytest.skip("about schema migrations of a database; the memory store has no schema")
    return store_url

"""Fixtures of the store contract suite: one database URL per store kind."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database: an SQLite file, or a fresh PostgreSQL database.

    The PostgreSQL case goes through the ``postgres_url`` fixture, so it skips without a
    server, or fails when ``PROMPTACTORS_REQUIRE_POSTGRES=1``.
    """
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_url"))

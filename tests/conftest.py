"""Shared fixtures.

Async tests are marked explicitly: ``@pytest.mark.trio`` runs on trio through pytest-trio
(ask for ``autojump_clock`` to make time virtual), ``@pytest.mark.anyio`` runs once per
backend (trio and asyncio) through anyio's plugin.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

POSTGRES_URL = os.environ.get(
    "PROMPTACTORS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_POSTGRES = os.environ.get("PROMPTACTORS_REQUIRE_POSTGRES") == "1"


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every ``@pytest.mark.anyio`` test runs on both backends."""
    return str(request.param)


def _admin_execute(sql: str) -> None:
    import asyncpg  # the postgres extra; imported here so SQLite-only runs need none of it

    async def go() -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin URL of a reachable PostgreSQL server, or a skip saying why there is none.

    With ``PROMPTACTORS_REQUIRE_POSTGRES=1`` (set by CI) an unreachable server fails instead.
    """
    try:
        _admin_execute("SELECT 1")
    except Exception as exc:  # any failure to reach it means: no server here
        reason = f"PostgreSQL not reachable at {POSTGRES_URL}: {type(exc).__name__}: {exc}"
        if REQUIRE_POSTGRES:
            pytest.fail(reason + " (PROMPTACTORS_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = f"pa_test_{uuid.uuid4().hex[:12]}"
    _admin_execute(f'CREATE DATABASE "{name}"')
    base, _, _ = postgres_server.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def _pg_template() -> Iterator[tuple[Any, Any]]:
    """``(bin_dir, data folder)`` of one initdb'd cluster, copied by each ``pg_cluster``
    (initdb takes seconds; a copy a fraction of one). Skips or fails like ``pg_cluster``."""
    from _pg_cluster import PgCluster, find_pg_bin  # tests/ is on sys.path via rootdir

    bin_dir = find_pg_bin()
    if bin_dir is None:
        reason = "no PostgreSQL server binaries (initdb, pg_ctl) found"
        if REQUIRE_POSTGRES:
            pytest.fail(reason + " (PROMPTACTORS_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    template = PgCluster(bin_dir)
    try:
        yield bin_dir, template.make_template()
    finally:
        template.destroy()


@pytest.fixture
def pg_cluster(_pg_template: tuple[Any, Any]) -> Iterator[Any]:
    """A PostgreSQL cluster of this test's own (``_pg_cluster.PgCluster``), started on a
    free port: the test may stop and restart it. Always stopped and deleted afterwards.

    Skips when no ``initdb``/``pg_ctl`` is installed, unless
    ``PROMPTACTORS_REQUIRE_POSTGRES=1``, which fails instead.
    """
    from _pg_cluster import PgCluster

    bin_dir, template = _pg_template
    with PgCluster(bin_dir, template) as cluster:
        yield cluster

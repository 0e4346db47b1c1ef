"""A real PostgreSQL outage: the test's own cluster is stopped and restarted under a store.

While the server is down every call raises ``StoreUnavailable`` within the connect
timeout (never hangs, never leaks an asyncpg exception); once it is back, the same store
object works again.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from promptactors._exceptions import StoreUnavailable
from promptactors.store import CreateRun, open_store

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CONNECT_TIMEOUT = 2.0
TIMEOUT = 30


async def _calls(store: Any, tag: str) -> None:
    await store.apply([CreateRun(f"run-{tag}")])
    assert (await store.get_run(f"run-{tag}")).status == "running"
    await store.list_runs(limit=5)


@pytest.mark.anyio
async def test_a_stopped_server_gives_store_unavailable_and_the_store_recovers(
    pg_cluster: Any,
) -> None:
    """Calls during the outage fail fast with StoreUnavailable; after a restart the same
    store (and its pool) serves reads and writes again."""
    with anyio.fail_after(TIMEOUT):
        store = await open_store(
            pg_cluster.url, migrate=True, pool_size=4, connect_timeout=CONNECT_TIMEOUT
        )
    try:
        with anyio.fail_after(TIMEOUT):
            await _calls(store, "before")
            await anyio.to_thread.run_sync(pg_cluster.stop)
            for _ in range(3):
                for call in (
                    lambda: store.apply([CreateRun("run-down")]),
                    lambda: store.get_run("run-before"),
                    lambda: store.list_runs(limit=5),
                ):
                    started = time.monotonic()
                    with pytest.raises(StoreUnavailable) as caught:
                        await call()
                    assert time.monotonic() - started < CONNECT_TIMEOUT + 2
                    assert "PostgreSQL could not" in str(caught.value)
            await anyio.to_thread.run_sync(pg_cluster.start)
            await _calls(store, "after")
            assert {r.id for r in await store.list_runs(limit=10)} == {"run-before", "run-after"}
    finally:
        with anyio.fail_after(TIMEOUT):
            await store.close()


@pytest.mark.anyio
async def test_a_server_restarted_between_calls_is_invisible_after_one_error_at_most(
    pg_cluster: Any,
) -> None:
    """A restart while the pool sits idle costs at most one StoreUnavailable: dead
    connections are replaced, not handed out again and again."""
    with anyio.fail_after(TIMEOUT):
        store = await open_store(
            pg_cluster.url, migrate=True, pool_size=4, connect_timeout=CONNECT_TIMEOUT
        )
    try:
        with anyio.fail_after(TIMEOUT):
            await _calls(store, "before")
            await anyio.to_thread.run_sync(pg_cluster.stop)
            await anyio.to_thread.run_sync(pg_cluster.start)
            failures = 0
            for i in range(10):
                try:
                    await _calls(store, f"after-{i}")
                except StoreUnavailable:
                    failures += 1
            assert failures <= 1
    finally:
        with anyio.fail_after(TIMEOUT):
            await store.close()

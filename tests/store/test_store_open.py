"""Opening stores: URLs, unreachable databases, and how each adapter talks to its driver."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import anyio
import pytest

from promptactors._exceptions import InvalidInput, StoreUnavailable
from promptactors.store import CreateRun, CreateTask, Store, open_store
from promptactors.store._open import sqlite_path


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    "url",
    [
        "mysql://localhost/db",
        "http://example.com/x.db",
        "",
        "   ",
        "sqlite://host/x.db",
        "sqlite:///",
        "postgresql://127.0.0.1:notaport/db",
        "postgresql://127.0.0.1:1/db?sslmode=bogus",
    ],
)
@pytest.mark.trio
async def test_an_unusable_url_raises_invalid_input(url: str) -> None:
    """Unknown schemes and malformed SQLite URLs are refused with the URL in the message."""
    with pytest.raises(InvalidInput):
        await open_store(url)


def test_sqlite_urls_name_relative_and_absolute_paths() -> None:
    """sqlite:///rel.db is relative, sqlite:////abs.db absolute, a bare path is itself."""
    assert sqlite_path("sqlite:///data/x.db") == "data/x.db"
    assert sqlite_path("sqlite:////var/lib/x.db") == "/var/lib/x.db"
    assert sqlite_path("sqlite:///:memory:") == ":memory:"
    assert sqlite_path("x.db") == "x.db"


@pytest.mark.anyio
async def test_an_unreachable_postgres_raises_store_unavailable_fast() -> None:
    """Nothing listens on the port: the open fails at once and says where it tried."""
    port = unused_port()
    with anyio.fail_after(10), pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}"):
        await open_store(f"postgresql://postgres:secret@127.0.0.1:{port}/nowhere")


@pytest.mark.anyio
async def test_the_password_never_appears_in_error_messages() -> None:
    """A refused connection's message shows the URL with the password masked."""
    port = unused_port()
    with pytest.raises(StoreUnavailable) as info:
        await open_store(f"postgres://postgres:hunter2@127.0.0.1:{port}/db")
    assert "hunter2" not in str(info.value)
    assert "***" in str(info.value)


@pytest.mark.anyio
async def test_a_missing_postgres_database_raises_store_unavailable(postgres_server: str) -> None:
    """A server that is up but lacks the database is unavailable, naming the database."""
    base, _, _ = postgres_server.rpartition("/")
    with anyio.fail_after(10), pytest.raises(StoreUnavailable, match="pa_missing_db"):
        await open_store(f"{base}/pa_missing_db")


@pytest.mark.anyio
async def test_an_sqlite_path_that_cannot_be_opened_raises_store_unavailable(
    tmp_path: Path,
) -> None:
    """A file in a folder that does not exist cannot be opened; the path is in the message."""
    path = tmp_path / "no" / "such" / "dir" / "x.db"
    with pytest.raises(StoreUnavailable, match="no/such/dir"):
        await open_store(str(path))


@pytest.mark.anyio
async def test_a_closed_store_raises_store_unavailable(tmp_path: Path) -> None:
    """Every call after close says the store is closed; closing again is harmless."""
    store = await open_store(f"sqlite:///{tmp_path / 'x.db'}", migrate=True)
    await store.close()
    await store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.get_run("run-1")


@pytest.mark.anyio
async def test_an_in_memory_sqlite_store_works() -> None:
    """sqlite:///:memory: gives a private database for tests."""
    async with await open_store("sqlite:///:memory:", migrate=True) as store:
        assert isinstance(store, Store)
        assert store.dialect == "sqlite"
        await store.create_run(CreateRun("run-1"))
        assert (await store.get_run("run-1")).status == "running"


@pytest.mark.anyio
async def test_sqlite_work_runs_on_one_thread_that_is_not_the_event_loop(tmp_path: Path) -> None:
    """While a big batch commits, the event loop keeps ticking."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.001)

    loop_thread = threading.get_ident()
    async with await open_store(f"sqlite:///{tmp_path / 'x.db'}", migrate=True) as store:
        ops = [
            CreateRun(f"run-{i}", messages=[{"role": "user", "content": "x" * 2000}])
            for i in range(3000)
        ]
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            started = time.perf_counter()
            await store.apply(ops)
            elapsed = time.perf_counter() - started
            tg.cancel_scope.cancel()
        assert threading.get_ident() == loop_thread
    if elapsed > 0.05:  # only meaningful when the commit took a while
        assert ticks > 3


@pytest.mark.trio
async def test_cancelling_a_postgres_call_on_trio_cancels_the_query(postgres_url: str) -> None:
    """A trio timeout around a slow query ends it promptly and the store keeps working."""
    async with await open_store(postgres_url, migrate=True, pool_size=1) as store:
        from promptactors.store._postgres import PostgresStore

        assert isinstance(store, PostgresStore)
        started = time.perf_counter()
        with anyio.move_on_after(0.2):
            await store._call("sleep", store._execute, "SELECT pg_sleep(10)")
        assert time.perf_counter() - started < 3
        with anyio.fail_after(5):  # the only connection is free again
            await store.create_run(CreateRun("run-1"))
            assert (await store.get_run("run-1")).status == "running"


@pytest.mark.trio
async def test_concurrent_claims_on_postgres_never_share_a_run(postgres_url: str) -> None:
    """Two executors claiming stale runs at once split them: every run exactly once."""
    async with (
        await open_store(postgres_url, migrate=True) as first,
        await open_store(postgres_url, pool_size=4) as second,
    ):
        await first.apply([CreateRun(f"run-{i:03d}", executor_id="dead") for i in range(300)])
        await anyio.sleep(1.2)  # stale after 1 s; a claimed run stays fresh for that long
        claims: dict[str, list[str]] = {"a": [], "b": []}

        async def claimer(store: Store, executor: str) -> None:
            while batch := await store.claim_stale_runs(executor, stale_after=1.0, limit=7):
                claims[executor].extend(r.id for r in batch)

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(claimer, first, "a")
                    tg.start_soon(claimer, second, "b")
        everything = claims["a"] + claims["b"]
        assert len(everything) == len(set(everything)) == 300
        assert claims["a"]
        assert claims["b"]
        owners = {r.executor_id for r in await first.list_runs(limit=1000)}
        assert owners == {"a", "b"}


@pytest.mark.trio
async def test_many_tasks_share_a_store_concurrently(store_url: str) -> None:
    """Concurrent writers through one store all land (the thread or pool serialises them)."""
    async with await open_store(store_url, migrate=True) as store:
        await store.create_run(CreateRun("run-1"))

        async def write(i: int) -> None:
            await store.create_task(CreateTask(f"task-{i}", "run-1", provider="p", model="m"))

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for i in range(100):
                    tg.start_soon(write, i)
        assert (await store.get_run("run-1")).stats.task_count == 100

"""Permanent store errors reach the run tracker's callers at once, naming the cause.

Real SQLite files, no mocks: a read-only database file, a database without schema, and a
full database (``PRAGMA max_page_count``, which makes SQLite fail with SQLITE_FULL exactly
as a full disk does). None of them is retried: the waiter hears within a bounded time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from promptactors._exceptions import SchemaError, StoreNotWritable
from promptactors.actors._run_tracker import CommitBackoff, RunTrackerClient, run_tracker_actor
from promptactors.kernel import spawn
from promptactors.store import CreateRun, Store, open_store

BOUND = 5.0
# Were these errors retried, a 5 s bound would see hundreds of attempts and never an error.
RETRY = CommitBackoff(initial=0.01, maximum=0.05)


@asynccontextmanager
async def tracker_on(store: Store) -> AsyncIterator[RunTrackerClient]:
    async with anyio.create_task_group() as tg:
        ref = await spawn(tg, run_tracker_actor(store, retry=RETRY), shutdown_timeout=BOUND)
        try:
            yield RunTrackerClient(ref)
        finally:
            await ref.stop()


def _one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text
    return text


@pytest.fixture
def read_only_db(tmp_path: Path) -> Iterator[Path]:
    """A migrated SQLite file that cannot be written: mode 0444, and as root (who ignores
    permissions) also the immutable attribute, or a skip saying why that is impossible."""
    path = tmp_path / "ro.db"

    async def create() -> None:
        store = await open_store(str(path), migrate=True)
        await store.apply([CreateRun("run-old")])
        await store.close()

    anyio.run(create)
    path.chmod(0o444)
    immutable = False
    if os.geteuid() == 0:
        chattr = shutil.which("chattr")
        if chattr is None:
            pytest.skip("running as root, which ignores file modes, and no chattr to use")
        done = subprocess.run([chattr, "+i", str(path)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"running as root and chattr +i failed: {done.stderr.decode().strip()}")
        immutable = True
    try:
        yield path
    finally:
        if immutable:
            subprocess.run([chattr, "-i", str(path)], check=False)  # so tmp_path can be removed
        path.chmod(0o644)


@pytest.mark.anyio
async def test_a_read_only_database_fails_the_waiter_at_once_saying_so(read_only_db: Path) -> None:
    """persist on a read-only file raises StoreNotWritable naming the cause, well within
    the bound; a later flush does not hang either."""
    with anyio.fail_after(BOUND):
        store = await open_store(str(read_only_db))
        try:
            assert (await store.get_run("run-old")).status == "running"  # reads still work
            with capture_logs() as logs:
                async with tracker_on(store) as tracker:
                    with pytest.raises(StoreNotWritable) as caught:
                        await tracker.persist(CreateRun("run-new"))
                    await tracker.submit(CreateRun("run-submitted"))
                    await tracker.flush()
                    stats = await tracker.stats()
        finally:
            await store.close()
    assert "read-only" in _one_line(caught.value)
    assert str(read_only_db) in str(caught.value)
    assert stats.failed == 2
    assert stats.retries == 0
    assert stats.pending == 0
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "run_tracker_store_refuses_writes"
    ] * 2


@pytest.mark.anyio
async def test_a_database_without_schema_fails_the_waiter_naming_migrate(tmp_path: Path) -> None:
    """On an empty (unmigrated) database persist raises SchemaError that says to migrate."""
    with anyio.fail_after(BOUND):
        store = await open_store(str(tmp_path / "empty.db"))
        try:
            async with tracker_on(store) as tracker:
                with pytest.raises(SchemaError) as caught:
                    await tracker.persist(*(CreateRun(f"run-{i}") for i in range(10)))
                stats = await tracker.stats()
        finally:
            await store.close()
    assert "migrate" in _one_line(caught.value)
    assert stats.failed == 10
    assert stats.retries == 0


@pytest.mark.anyio
async def test_a_full_database_fails_the_waiters_at_once_saying_so(tmp_path: Path) -> None:
    """When the database cannot grow (SQLITE_FULL) the batch's waiters hear StoreNotWritable
    naming a full disk, and what was committed before stays."""
    with anyio.fail_after(BOUND):
        store = await open_store(str(tmp_path / "full.db"), migrate=True)
        try:
            async with tracker_on(store) as tracker:
                await tracker.persist(CreateRun("run-before"))
                # The store's own connection, on its own thread: cap the file at its size.
                await store._call(  # type: ignore[attr-defined]
                    "cap the database size",
                    lambda: store._db.execute(  # type: ignore[attr-defined]
                        "PRAGMA max_page_count = "
                        + str(store._db.execute("PRAGMA page_count").fetchone()[0])  # type: ignore[attr-defined]
                    ),
                )
                big = {"blob": "x" * 200_000}
                with pytest.raises(StoreNotWritable) as caught:
                    await tracker.persist(*(CreateRun(f"big-{i}", variables=big) for i in range(3)))
                stats = await tracker.stats()
            assert (await store.get_run("run-before")).status == "running"
        finally:
            await store.close()
    assert "full" in _one_line(caught.value)
    assert stats.failed == 3
    assert stats.retries == 0

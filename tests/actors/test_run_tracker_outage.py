"""The run tracker through a real PostgreSQL outage (the test's own cluster, stopped and
restarted): what was accepted before and during the outage is all committed once the
server is back, exactly once; a caller's bounded persist hears StoreUnavailable saying
its operations are still queued, and they are committed later anyway.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import anyio
import pytest

from promptactors._exceptions import StoreNotWritable, StoreUnavailable
from promptactors.actors._run_tracker import CommitBackoff, RunTrackerClient, run_tracker_actor
from promptactors.kernel import spawn
from promptactors.store import CreateRun, CreateTask, UpdateRun, open_store

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TIMEOUT = 60
OUTAGE = 1.0
RETRY = CommitBackoff(initial=0.05, maximum=0.5, rng=random.Random(3))


@pytest.mark.anyio
async def test_ops_accepted_before_and_during_an_outage_are_all_committed_once(
    pg_cluster: Any,
) -> None:
    """Submits before and during a stop of the server, and a persist that timed out, all
    land after the restart: every run and task once, later updates applied."""
    with anyio.fail_after(TIMEOUT):
        store = await open_store(pg_cluster.url, migrate=True, pool_size=4, connect_timeout=2)
    try:
        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:
                ref = await spawn(tg, run_tracker_actor(store, retry=RETRY), shutdown_timeout=30)
                tracker = RunTrackerClient(ref)
                for i in range(100):
                    await tracker.submit(
                        CreateRun(f"run-{i}"),
                        CreateTask(f"task-{i}", f"run-{i}", provider="simulated", model="sim-1"),
                    )
                await anyio.to_thread.run_sync(pg_cluster.stop)
                for i in range(100, 200):
                    await tracker.submit(CreateRun(f"run-{i}"), UpdateRun(f"run-{i}", name="x"))
                with pytest.raises(StoreUnavailable, match="still queued") as caught:
                    await tracker.persist(CreateRun("run-persisted"), timeout=0.5)
                assert "\n" not in str(caught.value)
                await anyio.sleep(OUTAGE)
                await anyio.to_thread.run_sync(pg_cluster.start)
                await tracker.flush(timeout=30)
                stats = await tracker.stats()
                await ref.stop()
            runs = await store.list_runs(limit=1000)
            tasks = [t for i in range(100) for t in await store.list_tasks(f"run-{i}")]
    finally:
        with anyio.fail_after(TIMEOUT):
            await store.close()
    ids = [run.id for run in runs]
    assert len(ids) == len(set(ids)) == 201
    assert set(ids) == {*(f"run-{i}" for i in range(200)), "run-persisted"}
    assert sorted(t.id for t in tasks) == sorted(f"task-{i}" for i in range(100))
    assert {run.name for run in runs if run.id in {f"run-{i}" for i in range(100, 200)}} == {"x"}
    assert stats.retries > 0
    assert stats.pending == 0
    assert stats.conflicts == 0


@pytest.mark.anyio
async def test_a_read_only_postgresql_database_fails_the_waiters_at_once(pg_cluster: Any) -> None:
    """A server that turned read-only (as a standby does) gets StoreNotWritable naming the
    cause at once, not retries; writes work again once it is writable."""
    import asyncpg  # the postgres extra

    async def admin(on: bool) -> None:
        conn = await asyncpg.connect(pg_cluster.url, timeout=5)
        try:
            await conn.execute(f"ALTER SYSTEM SET default_transaction_read_only = {on}")
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()

    async def set_read_only(on: bool) -> None:
        # asyncpg needs asyncio: run the admin session on a loop of its own in a thread.
        await anyio.to_thread.run_sync(lambda: asyncio.run(admin(on)))

    with anyio.fail_after(TIMEOUT):
        store = await open_store(pg_cluster.url, migrate=True, pool_size=2, connect_timeout=2)
    try:
        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:
                ref = await spawn(tg, run_tracker_actor(store, retry=RETRY), shutdown_timeout=30)
                tracker = RunTrackerClient(ref)
                await set_read_only(True)
                await anyio.sleep(0.2)  # the reload reaches the pooled sessions
                with pytest.raises(StoreNotWritable, match="read-only") as caught:
                    await tracker.persist(CreateRun("run-ro"), timeout=5)
                assert "\n" not in str(caught.value)
                await set_read_only(False)
                await anyio.sleep(0.2)
                await tracker.persist(CreateRun("run-rw"), timeout=5)
                stats = await tracker.stats()
                await ref.stop()
            assert [r.id for r in await store.list_runs()] == ["run-rw"]
    finally:
        with anyio.fail_after(TIMEOUT):
            await store.close()
    assert (stats.failed, stats.retries) == (1, 0)

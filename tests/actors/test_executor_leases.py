"""Executors and leases: heartbeat rows, bulk renewal, reclaim of expired leases, fences.

On a real SQLite file and a real PostgreSQL database. Lease times are the database's wall
clock, so expiry is made with short real sleeps against leases of a fraction of a second.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from promptactors import RuntimeSettings, open_runtime
from promptactors._exceptions import StaleFence
from promptactors.actors import FencedPersistence, reclaim_expired
from promptactors.store import (
    CreateRun,
    CreateTask,
    FinishTurn,
    Store,
    UpdateRun,
    WriteOp,
    open_store,
)
from promptactors.testing import ScriptedProvider

TIMEOUT = 20


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: an SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 't.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def any_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """``store_url``, or the memory store (for tests that open one store object only)."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 't.db'}"
    return str(request.getfixturevalue("postgres_url"))


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[Store]:
    with anyio.fail_after(TIMEOUT):
        store = await open_store(url, migrate=True)
    try:
        with anyio.fail_after(TIMEOUT):
            yield store
    finally:
        with anyio.fail_after(TIMEOUT):
            await store.close()


def leased_run(run_id: str, executor_id: str, lease: float) -> CreateRun:
    return CreateRun(run_id, executor_id=executor_id, owner_id=executor_id, lease_seconds=lease)


async def until_status(store: Store, run_id: str, status: str, within: float = 5.0) -> None:
    """Poll the run until it has ``status`` (the store offers no change notification)."""
    with anyio.fail_after(within):
        for _ in range(int(within / 0.05) + 1):
            if (await store.get_run(run_id)).status == status:
                return
            await anyio.sleep(0.05)


def task(task_id: str, run_id: str, fence: int | None = None) -> CreateTask:
    return CreateTask(task_id, run_id, provider="simulated", model="sim-1", fence=fence)


@pytest.mark.anyio
async def test_renewal_extends_every_lease_of_the_executor_at_once(any_store_url: str) -> None:
    """One renewal keeps all of an executor's runs leased; another executor's are untouched."""
    async with opened(any_store_url) as store:
        await store.register_executor("a", lease_seconds=0.3, pid=1)
        await store.apply([leased_run(f"a-{i}", "a", 0.3) for i in range(5)])
        await store.apply([leased_run("b-0", "b", 0.3)])
        for _ in range(3):
            await anyio.sleep(0.15)
            assert await store.renew_leases("a", 0.3) == (True, 5)
        await anyio.sleep(0.05)

        taken = await store.reclaim_expired("c", 5.0)

        assert [run.id for run in taken] == ["b-0"]
        assert (await store.get_run("a-0")).owner_id == "a"


@pytest.mark.anyio
async def test_reclaim_grows_the_fence_and_refuses_the_old_owners_writes(
    any_store_url: str,
) -> None:
    """A takeover names the new executor with a larger fence; writes with the old are refused."""
    async with opened(any_store_url) as store:
        await store.apply([leased_run("r", "dead", 0.1), task("t1", "r", fence=1)])
        await anyio.sleep(0.2)

        report = await reclaim_expired(store, "alive", lease_seconds=5.0)

        assert report.interrupted_runs == ("r",)
        assert report.interrupted_tasks == 1
        run = await store.get_run("r")
        assert (run.owner_id, run.executor_id, run.fence, run.takeovers) == (
            "alive",
            "alive",
            2,
            1,
        )
        assert run.status == "interrupted"
        assert (await store.get_task("t1")).status == "interrupted"
        with pytest.raises(StaleFence):
            await store.apply([task("t2", "r", fence=1)])
        assert await reclaim_expired(store, "other", lease_seconds=5.0) == type(report)()


@pytest.mark.anyio
async def test_resume_keeps_the_run_and_caps_the_takeovers(any_store_url: str) -> None:
    """With ``resume`` a taken-over run stays running and free, until the attempts run out."""
    async with opened(any_store_url) as store:
        await store.apply([leased_run("r", "dead", 0.1)])
        for attempt in (1, 2):
            await anyio.sleep(0.2)
            report = await reclaim_expired(
                store, f"s{attempt}", lease_seconds=0.1, recovery="resume", recovery_attempts=1
            )
            run = await store.get_run("r")
            if attempt == 1:
                assert report.resumable_runs == ("r",)
                assert (run.status, run.owner_id) == ("running", None)
                await store.claim_run("r", "s1", lease_seconds=0.1)  # a new owner, then dies
            else:
                assert report.interrupted_runs == ("r",)
                assert run.status == "interrupted"


@pytest.mark.anyio
async def test_executor_rows_say_alive_or_expired(any_store_url: str) -> None:
    """``list_executors`` tells live executors from expired ones and counts their leases."""
    async with opened(any_store_url) as store:
        await store.register_executor("old", lease_seconds=0.1, pid=11, group="g")
        await store.register_executor("new", lease_seconds=30, pid=12)
        await store.apply([leased_run("r", "old", 0.1)])
        await anyio.sleep(0.2)

        rows = {e.id: e for e in await store.list_executors()}

        assert (rows["old"].alive, rows["old"].runs, rows["old"].expired_leases) == (False, 1, 1)
        assert (rows["new"].alive, rows["new"].pid, rows["old"].group) == (True, 12, "g")
        # "old" still holds a running run; "new" is silent, but within its lease
        assert await store.prune_executors(0.05) == 0
        await store.remove_executor("new")
        assert [e.id for e in await store.list_executors()] == ["old"]


class _Sink:
    def __init__(self) -> None:
        self.ops: list[WriteOp] = []

    async def persist(self, *ops: WriteOp, timeout: float | None = None) -> None:
        self.ops.extend(ops)


@pytest.mark.anyio
async def test_fenced_persistence_stamps_the_runs_it_holds() -> None:
    """New runs are created held by the executor; their later writes carry fence 1."""
    sink = _Sink()
    fenced = FencedPersistence(sink, "ex", 7.0)
    await fenced.persist(CreateRun("r", executor_id="ex"), task("t", "r"))
    await fenced.persist(FinishTurn("t", "hi"), UpdateRun("r", status="completed"))
    await fenced.persist(task("u", "other"))

    create, created_task, finish, update, other = sink.ops
    assert isinstance(create, CreateRun)
    assert (create.owner_id, create.lease_seconds) == ("ex", 7.0)
    assert isinstance(created_task, CreateTask)
    assert isinstance(finish, FinishTurn)
    assert isinstance(update, UpdateRun)
    assert (created_task.fence, finish.fence, update.fence) == (1, 1, 1)
    assert isinstance(other, CreateTask)
    assert other.fence is None
    assert fenced.fence_of("r") is None  # the run ended


@pytest.mark.anyio
async def test_a_runtime_reclaims_expired_leases_continuously(store_url: str) -> None:
    """A live runtime takes over a dead executor's run while it runs, not only at start."""
    async with opened(store_url) as store:
        settings = RuntimeSettings(
            database_url=store_url,
            executor_id="survivor",
            lease_seconds=0.5,
            reclaim_interval=0.1,
        )
        async with open_runtime(settings, store=store, provider=ScriptedProvider([["ok"]])):
            await store.apply([leased_run("late", "dead", 0.3), task("late-t", "late", 1)])
            await until_status(store, "late", "interrupted")
            executors = await store.list_executors()
            assert [(e.id, e.alive) for e in executors] == [("survivor", True)]
            run = await store.get_run("late")
            assert (run.status, run.owner_id, run.fence) == ("interrupted", "survivor", 2)
        assert await store.list_executors() == []  # a clean stop removes the row
        assert (await store.get_run("late")).owner_id is None  # ...and frees its runs


@pytest.mark.anyio
async def test_a_runtime_fences_its_runs_and_renews_their_leases(store_url: str) -> None:
    """Runs of a runtime are held by its executor under a lease that outlives its length."""
    async with opened(store_url) as store:
        settings = RuntimeSettings(database_url=store_url, executor_id="ex", lease_seconds=0.6)
        provider = ScriptedProvider([["one"], ["two"]])
        async with open_runtime(settings, store=store, provider=provider) as runtime:
            prompt = {"id": "p", "messages": [{"role": "user", "content": "hi"}]}
            handle = await runtime.start_instance(prompt=prompt)
            result = await handle.execute()
            assert result.run_id is not None
            await anyio.sleep(1.0)  # longer than the lease: only renewals keep it
            run = await store.get_run(result.run_id)
            assert (run.owner_id, run.fence, run.status) == ("ex", 1, "running")
            assert await store.reclaim_expired("thief", 5.0) == []
            await handle.execute("again")

"""Crash recovery at runtime start, on a real SQLite file and a real PostgreSQL database.

Heartbeats are stored with the database's wall clock, so staleness is made with a short
real sleep (0.15 s against ``stale_after=0.1``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from promptactors._exceptions import InvalidInput
from promptactors.actors._recovery import RecoveryReport, recover
from promptactors.store import CreateRun, CreateTask, FinishTurn, Store, open_store

TIMEOUT = 15
STALE = 0.1


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: an SQLite file, or a fresh PostgreSQL database."""
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


def task(task_id: str, run_id: str) -> CreateTask:
    return CreateTask(task_id, run_id, provider="simulated", model="sim-1")


async def leave_running(store: Store, executor_id: str, run_id: str, *, tasks: int = 1) -> None:
    """What a process that dies mid-turn leaves: a running run with running tasks."""
    await store.apply(
        [
            CreateRun(run_id, executor_id=executor_id),
            *(task(f"{run_id}-t{i}", run_id) for i in range(tasks)),
        ]
    )


@pytest.mark.anyio
async def test_own_leftovers_are_marked_interrupted(store_url: str) -> None:
    """Runs and tasks this executor left running are marked interrupted; finished ones stay."""
    async with opened(store_url) as store:
        await leave_running(store, "me", "run-1", tasks=2)
        await store.apply([FinishTurn("run-1-t0", "done")])
        await leave_running(store, "me", "run-2", tasks=0)

        report = await recover(store, "me")

        assert report == RecoveryReport(
            interrupted_tasks=("run-1-t1",), interrupted_runs=("run-1", "run-2")
        )
        assert (await store.get_task("run-1-t0")).status == "completed"
        assert (await store.get_task("run-1-t1")).status == "interrupted"
        assert [(await store.get_run(r)).status for r in ("run-1", "run-2")] == [
            "interrupted",
            "interrupted",
        ]
        assert await recover(store, "me") == RecoveryReport()  # idempotent


@pytest.mark.anyio
async def test_stale_runs_of_another_executor_are_taken_over(store_url: str) -> None:
    """A dead executor's runs are claimed and interrupted; a live executor's stay untouched."""
    async with opened(store_url) as store:
        await leave_running(store, "dead", "dead-run")
        await leave_running(store, "alive", "alive-run")
        await anyio.sleep(STALE + 0.05)
        assert await store.heartbeat("alive") == 1

        report = await recover(store, "me", stale_after=STALE)

        assert report == RecoveryReport(
            interrupted_tasks=("dead-run-t0",),
            interrupted_runs=("dead-run",),
            taken_over=("dead-run",),
        )
        dead = await store.get_run("dead-run")
        assert (dead.status, dead.executor_id) == ("interrupted", "me")
        alive = await store.get_run("alive-run")
        assert (alive.status, alive.executor_id) == ("running", "alive")
        assert (await store.get_task("alive-run-t0")).status == "running"
        assert await recover(store, "me", stale_after=STALE) == RecoveryReport()


@pytest.mark.anyio
async def test_a_fresh_executor_is_left_alone(tmp_path: Path) -> None:
    """Runs of another executor with a recent heartbeat are neither claimed nor interrupted."""
    async with opened(f"sqlite:///{tmp_path / 't.db'}") as store:
        await leave_running(store, "other", "other-run")
        assert await recover(store, "me", stale_after=60) == RecoveryReport()
        run = await store.get_run("other-run")
        assert (run.status, run.executor_id) == ("running", "other")


@pytest.mark.anyio
async def test_resume_keeps_the_runs_running_and_returns_them_as_claimed(store_url: str) -> None:
    """With resume, tasks are interrupted but runs stay running, owned by this executor."""
    async with opened(store_url) as store:
        await leave_running(store, "me", "mine")
        await leave_running(store, "dead", "theirs")
        await anyio.sleep(STALE + 0.05)

        report = await recover(store, "me", stale_after=STALE, resume=True)

        assert report == RecoveryReport(
            interrupted_tasks=("mine-t0", "theirs-t0"),
            claimed_runs=("mine", "theirs"),
            taken_over=("theirs",),
        )
        for run_id in ("mine", "theirs"):
            run = await store.get_run(run_id)
            assert (run.status, run.executor_id) == ("running", "me")
            assert (await store.get_task(f"{run_id}-t0")).status == "interrupted"
        # Until the runtime ends them, resumable runs are reported again; no task is re-marked.
        again = await recover(store, "me", stale_after=STALE, resume=True)
        assert again.interrupted_tasks == ()
        assert set(again.claimed_runs) == {"mine", "theirs"}


@pytest.mark.anyio
async def test_recovering_twice_reports_nothing_new(tmp_path: Path) -> None:
    """A second recovery finds nothing left to interrupt or claim."""
    async with opened(f"sqlite:///{tmp_path / 't.db'}") as store:
        await leave_running(store, "me", "mine")
        await leave_running(store, "dead", "theirs")
        await anyio.sleep(STALE + 0.05)

        first = await recover(store, "me", stale_after=STALE)
        second = await recover(store, "me", stale_after=STALE)

        assert set(first.interrupted_runs) == {"mine", "theirs"}
        assert second == RecoveryReport()
        assert second.empty


@pytest.mark.anyio
async def test_bad_arguments_are_refused_before_any_io(tmp_path: Path) -> None:
    """An empty executor id or a negative stale_after raises InvalidInput."""
    async with opened(f"sqlite:///{tmp_path / 't.db'}") as store:
        with pytest.raises(InvalidInput, match="executor id"):
            await recover(store, "")
        with pytest.raises(InvalidInput, match="stale_after"):
            await recover(store, "me", stale_after=-1)

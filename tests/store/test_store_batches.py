"""Batches of many runs through ``Store.apply``: the same on SQLite, PostgreSQL and memory.

PostgreSQL applies a batch as set-based statements (one per kind of operation), so these
cover what a batch of one operation does not: task counts of runs created in the batch,
updates of many runs at once (releasing their claims), and a missing run among many.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import anyio
import pytest

from promptactors._exceptions import InvalidInput, RunNotFound
from promptactors.store import CreateRun, CreateTask, FinishTurn, UpdateRun, open_store

TIMEOUT = 20


async def task_count(url: str, run_id: str) -> int:
    """``ai_runs.task_count`` read behind the store's back (the records do not carry it)."""
    sql = "SELECT task_count FROM ai_runs WHERE id = $1"
    if url.startswith("sqlite:"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return int(conn.execute(sql.replace("$1", "?"), (run_id,)).fetchone()[0])
        finally:
            conn.close()

    import asyncpg

    async def go() -> int:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            return int(await conn.fetchval(sql, run_id))
        finally:
            await conn.close()

    return await anyio.to_thread.run_sync(asyncio.run, go())


def task(task_id: str, run_id: str) -> CreateTask:
    return CreateTask(task_id=task_id, run_id=run_id, provider="p", model="m", request=())


@pytest.mark.anyio
async def test_task_counts_of_new_and_existing_runs_in_one_batch(sql_store_url: str) -> None:
    """A run created with its tasks in one batch counts them once, replays included; a run
    created earlier counts the batch's new tasks on top of its own."""
    with anyio.fail_after(TIMEOUT):
        async with await open_store(sql_store_url, migrate=True) as store:
            await store.apply([CreateRun("old"), task("old-1", "old")])
            batch = [
                CreateRun("new"),
                task("new-1", "new"),
                task("new-2", "new"),
                task("new-1", "new"),  # a replay in the same batch
                task("old-1", "old"),  # a replay of an earlier batch
                task("old-2", "old"),
            ]
            await store.apply(batch)
            await store.apply(batch)  # the whole batch replayed
        assert await task_count(sql_store_url, "new") == 2
        assert await task_count(sql_store_url, "old") == 2


@pytest.mark.anyio
async def test_updates_of_many_runs_release_their_claims(store_url: str) -> None:
    """Run updates of distinct runs in one batch each apply, ``release`` included."""
    with anyio.fail_after(TIMEOUT):
        async with await open_store(store_url, migrate=True) as store:
            ids = [f"run-{i}" for i in range(3)]
            await store.apply([CreateRun(run_id, owner_id="exec-a") for run_id in ids])
            await store.apply(
                [
                    UpdateRun(ids[0], status="completed", fence=1, release=True),
                    UpdateRun(ids[1], status="failed", error="boom", release=True),
                    UpdateRun(ids[2], name="kept"),
                ]
            )
            runs = [await store.get_run(run_id) for run_id in ids]
            assert [(r.status, r.owner_id, r.fence) for r in runs] == [
                ("completed", None, 1),
                ("failed", None, 1),
                ("running", "exec-a", 1),
            ]
            assert (runs[1].error, runs[2].name) == ("boom", "kept")


@pytest.mark.anyio
async def test_a_missing_run_among_many_refuses_the_whole_batch(store_url: str) -> None:
    """An update or a task of a run that does not exist is ``RunNotFound``, and nothing of
    its batch is written."""
    with anyio.fail_after(TIMEOUT):
        async with await open_store(store_url, migrate=True) as store:
            await store.apply([CreateRun("run-1"), CreateRun("run-2"), task("t-1", "run-1")])
            finish = FinishTurn(task_id="t-1", response_text="done", run_status="completed")
            with pytest.raises(RunNotFound, match="ghost"):
                await store.apply(
                    [finish, UpdateRun("run-2", name="x"), UpdateRun("ghost", name="y")]
                )
            with pytest.raises(RunNotFound, match="ghost"):
                await store.apply([CreateRun("run-3"), task("t-2", "run-3"), task("t-3", "ghost")])
            assert (await store.get_task("t-1")).status == "running"
            assert (await store.get_run("run-2")).name is None
            with pytest.raises(RunNotFound):
                await store.get_run("run-3")


@pytest.mark.anyio
async def test_an_operation_is_written_as_it_was_made(store_url: str) -> None:
    """Write operations are frozen: their JSON is encoded once, when they are made (not
    again in the store's thread), so changing a list or dict handed to one afterwards
    does not change what is written."""
    messages = [{"role": "user", "content": "héllo"}]
    variables = {"name": "Ada"}
    ops = [
        CreateRun("r", messages=messages, variables=variables, settings={"t": 0.5}),
        CreateTask("t", "r", "p", "m", request=messages),
        FinishTurn("t", "hi", run_messages=[*messages, {"role": "assistant", "content": "hi"}]),
        UpdateRun("r2", messages=messages, variables=variables),
    ]
    messages.append({"role": "user", "content": "changed"})
    variables["name"] = "changed"
    with anyio.fail_after(TIMEOUT):
        async with await open_store(store_url, migrate=True) as store:
            await store.apply([CreateRun("r2")])
            await store.apply(ops)
            run, task_, other = (
                await store.get_run("r"),
                await store.get_task("t"),
                await store.get_run("r2"),
            )
    assert [m["content"] for m in run.messages] == ["héllo", "hi"]
    assert run.variables == {"name": "Ada"}
    assert run.settings == {"t": 0.5}
    assert list(task_.request) == [{"role": "user", "content": "héllo"}]
    assert [m["content"] for m in other.messages] == ["héllo"]
    assert other.variables == {"name": "Ada"}


@pytest.mark.parametrize(
    "make",
    [
        lambda: CreateRun("r", variables={"when": object()}),
        lambda: CreateTask("t", "r", "p", "m", request=[{"role": "user", "content": {1, 2}}]),
        lambda: FinishTurn("t", "x", run_messages=[{"role": "user", "content": b"bytes"}]),
        lambda: UpdateRun("r", variables={"v": object()}),
    ],
    ids=["create-run", "create-task", "finish-turn", "update-run"],
)
def test_an_operation_with_a_value_json_cannot_hold_is_refused_when_made(make: Any) -> None:
    with pytest.raises(InvalidInput, match="is not JSON-serialisable"):
        make()

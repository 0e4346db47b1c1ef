"""What only the memory store promises: atomic batches, records that do not alias its
state, fault switches, counters, virtual time and determinism. The contract it shares
with SQLite and PostgreSQL runs in test_store_contract.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import trio
import trio.testing

from promptactors._exceptions import (
    InvalidInput,
    NotFound,
    RunInUse,
    RunNotFound,
    StaleFence,
    StoreConflict,
    StoreUnavailable,
)
from promptactors.store import (
    CreateRun,
    CreateTask,
    FinishTurn,
    MemoryStore,
    PromptMessageRow,
    PromptRecord,
    Store,
    UpdateRun,
    WriteOp,
    open_store,
)
from promptactors.store._migrations import latest_version

REQUEST = [{"role": "user", "content": "hi"}]


def new_task(task_id: str, run_id: str = "run-1", fence: int | None = None) -> CreateTask:
    return CreateTask(
        task_id, run_id, provider="simulated", model="sim-1", request=REQUEST, fence=fence
    )


def finish(task_id: str, text: str = "hello") -> FinishTurn:
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": text}]
    return FinishTurn(task_id, text, run_messages=messages, input_tokens=3, output_tokens=2)


async def everything(store: Store) -> tuple[Any, ...]:
    """All runs and their tasks, as records (timestamps included)."""
    runs = await store.list_runs(limit=-1)
    tasks = [await store.list_tasks(run.id) for run in runs]
    return tuple((run, run.created_at, run.updated_at, run.heartbeat_at) for run in runs), tuple(
        (task, task.created_at, task.updated_at) for batch in tasks for task in batch
    )


@pytest.mark.anyio
async def test_memory_urls_open_a_fresh_store_born_with_the_latest_schema() -> None:
    """memory:// opens a new empty store each time; it needs no migration."""
    async with await open_store("memory://", migrate=True) as first:
        assert isinstance(first, MemoryStore)
        assert first.dialect == "memory"
        assert await first.migrate() == 0
        assert await first.schema_version() == latest_version("sqlite")
        await first.create_run(CreateRun("run-1"))
        async with await open_store("memory://") as second:
            with pytest.raises(RunNotFound, match="run-1"):
                await second.get_run("run-1")
    with pytest.raises(StoreUnavailable, match="closed"):
        await first.get_run("run-1")
    await first.close()  # idempotent
    with pytest.raises(InvalidInput, match="memory://"):
        await open_store("memory://somewhere")


@pytest.mark.trio
async def test_a_failing_batch_changes_nothing_whatever_op_fails() -> None:
    """A conflict, a missing task, a missing run or a stale fence at the end of a batch
    leaves every run and task as it was, and no counter moves."""
    store = MemoryStore()
    await store.apply([CreateRun("run-1", owner_id="me"), new_task("task-1")])
    before = await everything(store)
    counters = (store.writes, store.batches)
    head: list[WriteOp] = [
        CreateRun("run-2"),
        new_task("task-2", "run-2"),
        finish("task-1"),
        UpdateRun("run-1", name="changed", messages=[{"role": "user", "content": "x"}]),
    ]
    failing: list[tuple[WriteOp, type[Exception]]] = [
        (CreateRun("run-1", prompt_id="another"), StoreConflict),
        (finish("no-such-task"), NotFound),
        (UpdateRun("no-such-run", name="x"), RunNotFound),
        (UpdateRun("run-1", name="late", fence=0), StaleFence),
    ]
    for last, error in failing:
        with pytest.raises(error):
            await store.apply([*head, last])
        assert await everything(store) == before
        assert (store.writes, store.batches) == counters
    await store.apply(head)
    assert (await store.get_run("run-1")).name == "changed"
    assert (await store.get_task("task-1")).status == "completed"


@pytest.mark.trio
async def test_records_do_not_alias_the_stored_state() -> None:
    """Mutating what a call returned, or what was written, never changes the store."""
    store = MemoryStore()
    messages = [{"role": "user", "content": "hi"}]
    variables: dict[str, Any] = {"who": "Ada", "tags": ["a"]}
    await store.apply([CreateRun("run-1", messages=messages, variables=variables)])
    messages[0]["content"] = "changed after the write"
    variables["tags"].append("b")
    run = await store.get_run("run-1")
    run.messages[0]["content"] = "changed"  # type: ignore[index]
    run.variables["who"] = "Grace"  # type: ignore[index]
    again = await store.get_run("run-1")
    assert again.messages == ({"role": "user", "content": "hi"},)
    assert again.variables == {"who": "Ada", "tags": ["a"]}
    assert again is not run

    settings: dict[str, Any] = {"stop": ["\n"]}
    await store.put_prompt(
        PromptRecord("p1", "P", (PromptMessageRow("user", "x"),), settings=settings)
    )
    settings["stop"].append("!")
    prompt = await store.get_prompt("p1")
    prompt.settings["stop"].append("?")
    assert (await store.get_prompt("p1")).settings == {"stop": ["\n"]}

    await store.set_scoped_variable("user", "u1", "k", "v")
    (await store.get_scoped_variables("u1")).user["k"] = "w"
    assert (await store.get_scoped_variables("u1")).user == {"k": "v"}


@pytest.mark.trio
async def test_an_outage_refuses_every_call_until_it_ends() -> None:
    """set_available(False): every call raises StoreUnavailable and changes nothing."""
    store = MemoryStore()
    await store.create_run(CreateRun("run-1"))
    store.set_available(False)
    assert not store.available
    calls = [
        store.get_run("run-1"),
        store.apply([new_task("task-1")]),
        store.claim_run("run-1", "me"),
        store.heartbeat("exec"),
        store.find_unfinished(),
        store.put_broker_value("b", "v"),
        store.schema_version(),
        store.mark_interrupted(["run-1"]),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable, match="outage"):
            await call
    store.set_available(True)
    run = await store.get_run("run-1")
    assert (run.stats.task_count, run.owner_id, run.status) == (0, None, "running")


@pytest.mark.trio
async def test_fail_next_fails_exactly_the_next_calls() -> None:
    """fail_next(n) fails the next n calls that do work, with the given error."""
    store = MemoryStore()
    store.fail_next(2)
    with pytest.raises(InvalidInput):
        await store.get_run("")  # refused before the store: uses up no failure
    await store.apply([])  # nothing to do: uses up no failure
    for _ in range(2):
        with pytest.raises(StoreUnavailable, match="injected"):
            await store.create_run(CreateRun("run-1"))
    await store.create_run(CreateRun("run-1"))
    store.fail_next(1, StoreConflict("lost the race"))
    with pytest.raises(StoreConflict, match="lost the race"):
        await store.get_run("run-1")
    assert (await store.get_run("run-1")).id == "run-1"
    store.fail_next(3)
    store.fail_next(0)  # replaces the pending count
    assert (await store.get_run("run-1")).id == "run-1"
    with pytest.raises(InvalidInput, match="non-negative"):
        store.fail_next(-1)
    with pytest.raises(InvalidInput, match="StoreError"):
        store.fail_next(1, ValueError("x"))  # type: ignore[arg-type]


@pytest.mark.trio
async def test_counters_count_the_work_served() -> None:
    """reads and writes count calls served (a batch's ops one each), batches commits."""
    store = MemoryStore()
    await store.apply([CreateRun("run-1"), new_task("task-1"), finish("task-1")])
    await store.create_run(CreateRun("run-2"))
    await store.get_run("run-1")
    await store.list_tasks("run-1")
    await store.claim_run("run-2", "me")
    with pytest.raises(RunNotFound):
        await store.get_run("nope")
    with pytest.raises(RunInUse):
        await store.claim_run("run-2", "you")
    assert (store.reads, store.writes, store.batches) == (2, 5, 2)


@pytest.mark.trio
async def test_a_cancelled_call_changes_nothing() -> None:
    """Every call checkpoints before it works: cancelled there, it has no effect."""
    store = MemoryStore()
    with trio.CancelScope() as scope:
        scope.cancel()
        await store.apply([CreateRun("run-1")])
    assert scope.cancelled_caught
    with pytest.raises(RunNotFound):
        await store.get_run("run-1")


@pytest.mark.trio
async def test_staleness_and_leases_follow_virtual_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Under a MockClock heartbeats go stale and leases expire in virtual time."""
    store = MemoryStore()
    await store.apply([CreateRun("a", executor_id="exec-a"), CreateRun("b", executor_id="exec-b")])
    old = await store.claim_run("a", "inst-1", lease_seconds=30)
    await trio.sleep(3600)
    assert await store.heartbeat("exec-b") == 1
    assert [r.id for r in (await store.find_unfinished(stale_after=60)).runs] == ["a"]
    new = await store.claim_run("a", "inst-2", lease_seconds=30)
    assert new == old + 1
    claimed = await store.claim_stale_runs("exec-b", stale_after=60)
    assert [(r.id, r.executor_id) for r in claimed] == [("a", "exec-b")]
    run = await store.get_run("a")
    assert run.heartbeat_at is not None
    assert run.created_at is not None
    assert (run.heartbeat_at - run.created_at).total_seconds() == pytest.approx(3600)


async def _sleep(seconds: float) -> None:
    await trio.sleep(seconds)


async def _scenario(store: MemoryStore) -> list[Any]:
    """A fixed sequence of calls, successes and failures alike, with what each gave."""
    results: list[Any] = []
    steps: list[Any] = [
        lambda: store.apply([CreateRun(f"run-{i}", executor_id="e") for i in range(5)]),
        lambda: store.apply([new_task(f"task-{i}", f"run-{i}") for i in range(5)]),
        lambda: store.claim_run("run-1", "inst-1", lease_seconds=5),
        lambda: store.claim_run("run-1", "inst-2"),
        lambda: store.apply([finish("task-1"), UpdateRun("run-1", status="completed")]),
        lambda: store.apply([new_task("task-x", "run-2", fence=7)]),
        lambda: _sleep(10),
        lambda: store.claim_run("run-1", "inst-2"),
        lambda: store.mark_interrupted(["run-3"]),
        lambda: store.claim_stale_runs("f", stale_after=5),
        lambda: store.list_runs(limit=-1),
        lambda: store.find_unfinished(),
        lambda: store.list_tasks("run-1"),
    ]
    for step in steps:
        try:
            results.append(await step())
        except Exception as exc:  # the failure is the result to compare
            results.append((type(exc), str(exc)))
    results.append(await everything(store))
    return results


@pytest.mark.trio
async def test_the_same_calls_give_the_same_results(autojump_clock: trio.testing.MockClock) -> None:
    """Two stores with a fixed epoch, given the same calls, agree to the timestamp."""
    epoch = datetime(2030, 1, 1, tzinfo=UTC)
    first = await _scenario(MemoryStore(epoch=epoch))
    second = await _scenario(MemoryStore(epoch=epoch))
    assert first == second
    [(newest, created_at, _, _), *_] = first[-1][0]
    assert (newest.id, created_at) == ("run-4", epoch)


@pytest.mark.anyio
async def test_an_injected_clock_gives_now() -> None:
    """With clock=, staleness and timestamps follow that clock (here a manual one)."""
    now = [100.0]
    store = MemoryStore(clock=lambda: now[0], epoch=datetime(2030, 1, 1, tzinfo=UTC))
    await store.create_run(CreateRun("run-1"))
    assert (await store.find_unfinished(stale_after=1)).runs == ()
    now[0] += 2
    assert [r.id for r in (await store.find_unfinished(stale_after=1)).runs] == ["run-1"]
    assert (await store.get_run("run-1")).created_at == datetime(2030, 1, 1, tzinfo=UTC)
    assert await store.heartbeat("e") == 0

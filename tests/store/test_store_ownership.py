"""The store contract, continued: recovery, scale-out and run ownership, on every adapter."""

from __future__ import annotations

import anyio
import pytest
from _contract import TIMEOUT, conversation, new_task, opened

from promptactors._exceptions import (
    InvalidInput,
    NotFound,
    RunInUse,
    RunNotFound,
    StaleFence,
    StoreConflict,
)
from promptactors.store import (
    CreateRun,
    CreateTask,
    FinishTurn,
    UpdateRun,
    WriteOp,
)

# -- recovery and scale-out --------------------------------------------------------------


@pytest.mark.trio
async def test_stale_runs_are_found_and_claimed_by_another_executor(store_url: str) -> None:
    """Runs whose owner stopped heart-beating are found, claimed once, then owned by the claimer."""
    async with opened(store_url) as store:
        await store.apply(
            [
                CreateRun("a-1", executor_id="exec-a"),
                CreateRun("a-2", executor_id="exec-a"),
                CreateRun("b-1", executor_id="exec-b"),
                new_task("a-1-task", "a-1"),
            ]
        )
        await store.update_run(UpdateRun("a-2", status="completed"))
        await anyio.sleep(0.3)
        assert await store.heartbeat("exec-b") == 1  # b is alive, a is not

        stale = await store.find_unfinished(stale_after=0.2)
        assert [r.id for r in stale.runs] == ["a-1"]
        assert [t.id for t in stale.tasks] == ["a-1-task"]
        mine = await store.find_unfinished(executor_id="exec-b")
        assert ([r.id for r in mine.runs], mine.tasks) == (["b-1"], ())
        everything = await store.find_unfinished()
        assert {r.id for r in everything.runs} == {"a-1", "b-1"}

        version = (await store.get_run("a-1")).version
        claimed = await store.claim_stale_runs("exec-b", stale_after=0.2)
        assert [(r.id, r.executor_id) for r in claimed] == [("a-1", "exec-b")]
        assert await store.claim_stale_runs("exec-c", stale_after=0.2) == []
        assert (await store.get_run("a-1")).version == version + 1

        assert await store.mark_interrupted(["a-1"], keep_runs=True) == 1
        run, task = await store.get_run("a-1"), await store.get_task("a-1-task")
        assert (run.status, task.status) == ("running", "interrupted")
        assert await store.mark_interrupted(["b-1"], error="process died") == 0
        assert (await store.get_run("b-1")).status == "interrupted"
        assert (await store.get_run("b-1")).error == "process died"


# -- run ownership -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_first_claim_wins_and_a_second_owner_gets_run_in_use(store_url: str) -> None:
    """A claim returns a fence; another owner is refused naming the owner; the same owner
    may claim again and gets a larger fence; an unknown run is RunNotFound."""
    async with opened(store_url) as store:
        await store.create_run(CreateRun("run-1"))
        assert (await store.get_run("run-1")).fence == 0
        fence = await store.claim_run("run-1", "inst-a")
        assert fence == 1
        with pytest.raises(RunInUse, match="inst-a") as caught:
            await store.claim_run("run-1", "inst-b")
        assert (caught.value.run_id, caught.value.owner_id) == ("run-1", "inst-a")
        assert await store.claim_run("run-1", "inst-a") == fence + 1
        run = await store.get_run("run-1")
        assert (run.owner_id, run.fence, run.lease_expires_at) == ("inst-a", 2, None)
        with pytest.raises(RunNotFound, match="no-such-run"):
            await store.claim_run("no-such-run", "inst-a")
        with pytest.raises(InvalidInput, match="lease_seconds"):
            await store.claim_run("run-1", "inst-a", lease_seconds=0)


@pytest.mark.anyio
async def test_of_a_hundred_concurrent_claimers_exactly_one_wins(store_url: str) -> None:
    """100 owners claim one run at once: one gets a fence, 99 get RunInUse naming it."""
    async with opened(store_url) as store:
        await store.create_run(CreateRun("run-1"))
        won: dict[str, int] = {}
        refused: list[RunInUse] = []

        async def claim(owner: str) -> None:
            try:
                won[owner] = await store.claim_run("run-1", owner)
            except RunInUse as exc:
                refused.append(exc)

        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:
                for i in range(100):
                    tg.start_soon(claim, f"owner-{i}")
        assert len(won) == 1
        [(winner, fence)] = won.items()
        assert len(refused) == 99
        assert {exc.owner_id for exc in refused} == {winner}
        run = await store.get_run("run-1")
        assert (run.owner_id, run.fence) == (winner, fence)


@pytest.mark.trio
async def test_a_released_run_can_be_claimed_again_with_a_larger_fence(store_url: str) -> None:
    """Release frees the run only for its holder's fence; the next claim grows the fence."""
    async with opened(store_url) as store:
        await store.create_run(CreateRun("run-1", owner_id="creator"))
        run = await store.get_run("run-1")
        assert (run.owner_id, run.fence) == ("creator", 1)
        with pytest.raises(RunInUse, match="creator"):
            await store.claim_run("run-1", "inst-a")
        assert not await store.release_run("run-1", "creator", 0)  # not its fence
        assert not await store.release_run("run-1", "inst-a", 1)  # not its owner
        assert not await store.release_run("no-such-run", "creator", 1)
        assert await store.release_run("run-1", "creator", 1)
        assert not await store.release_run("run-1", "creator", 1)  # already free
        assert (await store.get_run("run-1")).owner_id is None
        assert await store.claim_run("run-1", "inst-a") == 2


@pytest.mark.trio
async def test_an_expired_lease_is_taken_over_with_a_larger_fence(store_url: str) -> None:
    """A lease holds until it expires; then another owner takes over and the old
    holder can neither renew nor release."""
    async with opened(store_url) as store:
        await store.create_run(CreateRun("run-1"))
        old = await store.claim_run("run-1", "exec-a", lease_seconds=0.3)
        assert (await store.get_run("run-1")).lease_expires_at is not None
        with pytest.raises(RunInUse, match="exec-a"):
            await store.claim_run("run-1", "exec-b", lease_seconds=30)
        await store.renew_run("run-1", "exec-a", old, 0.3)
        await anyio.sleep(0.5)
        new = await store.claim_run("run-1", "exec-b", lease_seconds=30)
        assert new > old
        with pytest.raises(StoreConflict, match="stale fence"):
            await store.renew_run("run-1", "exec-a", old, 30)
        assert not await store.release_run("run-1", "exec-a", old)
        await store.renew_run("run-1", "exec-b", new, 60)
        with pytest.raises(RunNotFound, match="no-such-run"):
            await store.renew_run("no-such-run", "exec-b", new, 60)
        run = await store.get_run("run-1")
        assert (run.owner_id, run.fence) == ("exec-b", new)


@pytest.mark.anyio
async def test_a_stale_fence_refuses_the_batch_naming_exactly_the_stale_ops(
    store_url: str,
) -> None:
    """Fenced writes apply with the current fence; a batch holding stale ones is refused
    whole with StaleFence listing them, and the rest commits once they are dropped."""
    async with opened(store_url) as store:
        await store.apply([CreateRun("run-a"), CreateRun("run-b"), new_task("task-a", "run-a")])
        stale = await store.claim_run("run-a", "inst-1")
        current = await store.claim_run("run-a", "inst-1")
        b = await store.claim_run("run-b", "inst-2")
        ops: list[WriteOp] = [
            UpdateRun("run-b", name="b", fence=b),
            UpdateRun("run-a", name="late", fence=stale),
            new_task("task-b", "run-b"),
            FinishTurn("task-a", "late", run_messages=conversation("hi", "late"), fence=stale),
            CreateTask("task-c", "run-a", provider="simulated", model="sim-1", fence=stale),
        ]
        before = await store.get_run("run-a")
        with pytest.raises(StaleFence, match="run-a") as caught:
            await store.apply(ops)
        assert caught.value.stale == ((1, "run-a"), (3, "run-a"), (4, "run-a"))
        assert await store.get_run("run-a") == before
        assert (await store.get_run("run-b")).name is None
        with pytest.raises(NotFound, match="task-b"):
            await store.get_task("task-b")

        rest = [op for i, op in enumerate(ops) if i not in {1, 3, 4}]
        await store.apply(rest)
        assert (await store.get_run("run-b")).name == "b"
        assert (await store.get_task("task-b")).status == "running"
        assert (await store.get_run("run-a")).name is None
        assert (await store.get_task("task-a")).status == "running"
        await store.apply([FinishTurn("task-a", "hi", fence=current)])
        assert (await store.get_task("task-a")).status == "completed"


@pytest.mark.trio
async def test_a_run_created_with_an_owner_is_fenced_from_the_start(store_url: str) -> None:
    """CreateRun with an owner gives fence 1, usable by fenced ops in the same batch."""
    async with opened(store_url) as store:
        await store.apply(
            [
                CreateRun("run-1", owner_id="inst-1"),
                CreateTask("task-1", "run-1", provider="simulated", model="sim-1", fence=1),
                UpdateRun("run-1", name="mine", fence=1),
            ]
        )
        run = await store.get_run("run-1")
        assert (run.owner_id, run.fence, run.name, run.stats.task_count) == ("inst-1", 1, "mine", 1)
        with pytest.raises(InvalidInput, match="no run"):
            CreateTask("t", None, provider="simulated", model="sim-1", fence=1)

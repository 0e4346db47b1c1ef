"""The run tracker: group commit, conflicts, an unavailable store, stop and heartbeat.

Core behaviours run on a real SQLite file and a real PostgreSQL database, on trio and
asyncio. Timing-driven behaviours (heartbeat) run on trio's virtual clock.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from promptactors._exceptions import (
    ActorDead,
    InvalidInput,
    StaleFence,
    StoreConflict,
    StoreUnavailable,
)
from promptactors.actors._run_tracker import (
    CommitBackoff,
    RunTracker,
    RunTrackerClient,
    run_tracker_actor,
)
from promptactors.kernel import spawn
from promptactors.store import CreateRun, CreateTask, Store, UpdateRun, WriteOp, open_store

TIMEOUT = 15
FAST_RETRY = CommitBackoff(initial=0.005, maximum=0.02, rng=random.Random(7))


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: an SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 't.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 't.db'}"


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[Store]:
    with anyio.fail_after(TIMEOUT):
        store = await open_store(url, migrate=True)
    try:
        yield store
    finally:
        with anyio.fail_after(TIMEOUT):
            await store.close()


@asynccontextmanager
async def running(actor: RunTracker) -> AsyncIterator[RunTrackerClient]:
    """The tracker started in a task group, stopped (gracefully) on the way out."""
    async with anyio.create_task_group() as tg:
        ref = await spawn(tg, actor, shutdown_timeout=TIMEOUT)
        try:
            yield RunTrackerClient(ref)
        finally:
            await ref.stop()


class FlakyStore:
    """A real store whose ``apply`` raises ``StoreUnavailable`` while told to."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.down = False
        self.fail_next = 0
        self.apply_calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def apply(self, ops: Any) -> None:
        self.apply_calls += 1
        if self.down or self.fail_next:
            self.fail_next = max(0, self.fail_next - 1)
            await anyio.lowlevel.checkpoint()
            raise StoreUnavailable("database is down (test)")
        await self.store.apply(ops)


async def until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` until it holds (bounded: fails after about 5 seconds)."""
    for _ in range(1000):
        if condition():
            return
        await anyio.sleep(0.005)
    raise AssertionError("condition never held")


async def until_pending(tracker: RunTrackerClient, count: int) -> None:
    """Poll the tracker until it holds ``count`` accepted, uncommitted ops (bounded)."""
    for _ in range(1000):
        if (await tracker.stats()).pending >= count:
            return
        await anyio.sleep(0.005)
    raise AssertionError(f"the tracker never held {count} pending ops")


def task(task_id: str, run_id: str) -> CreateTask:
    return CreateTask(task_id, run_id, provider="simulated", model="sim-1")


# -- group commit ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_burst_of_submits_lands_in_far_fewer_transactions(store_url: str) -> None:
    """5,000 ops submitted by 100 concurrent tasks are all committed in far fewer batches."""
    async with opened(store_url) as store, running(run_tracker_actor(store)) as tracker:

        async def submitter(n: int) -> None:
            for i in range(50):
                await tracker.submit(CreateRun(f"run-{n}-{i}", executor_id="ex"))

        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tg:
                for n in range(100):
                    tg.start_soon(submitter, n)
            await tracker.flush()
            stats = await tracker.stats()
        assert stats.ops_committed == 5000
        assert stats.pending == 0
        assert stats.batches <= 5000 // 20, stats
        assert stats.largest_batch > 1
        assert len(await store.list_runs(limit=10_000)) == 5000


@pytest.mark.anyio
async def test_persist_returns_only_after_the_ops_are_committed(store_url: str) -> None:
    """Right after persist returns, the store already holds its rows."""
    async with opened(store_url) as store, running(run_tracker_actor(store)) as tracker:
        with anyio.fail_after(TIMEOUT):
            await tracker.persist(CreateRun("run-1"), task("task-1", "run-1"))
            assert (await store.get_run("run-1")).status == "running"
            assert (await store.get_task("task-1")).run_id == "run-1"


@pytest.mark.anyio
async def test_ops_are_committed_in_submission_order(sqlite_url: str) -> None:
    """Later updates of the same run win, across messages and batches."""
    async with opened(sqlite_url) as store, running(run_tracker_actor(store, max_batch=7)) as t:
        with anyio.fail_after(TIMEOUT):
            await t.submit(CreateRun("run-1"))
            for i in range(100):
                await t.submit(UpdateRun("run-1", name=f"name-{i}"))
            await t.flush()
        assert (await store.get_run("run-1")).name == "name-99"


@pytest.mark.anyio
async def test_a_conflict_reaches_only_its_waiter_and_the_others_commit(store_url: str) -> None:
    """A conflicting op fails its own persist; the rest of its batch and others commit."""
    async with opened(store_url) as store:
        await store.apply([CreateRun("taken", prompt_id="p1")])
        async with running(run_tracker_actor(store)) as tracker:
            outcomes: dict[str, BaseException | None] = {}

            async def persist(name: str, *ops: WriteOp) -> None:
                try:
                    await tracker.persist(*ops)
                except StoreConflict as exc:
                    outcomes[name] = exc
                else:
                    outcomes[name] = None

            with anyio.fail_after(TIMEOUT):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(
                        persist,
                        "bad",
                        CreateRun("ok-1"),
                        CreateRun("taken", prompt_id="p2"),
                        CreateRun("ok-2"),
                    )
                    for i in range(20):
                        tg.start_soon(persist, f"good-{i}", CreateRun(f"good-{i}"))
                stats = await tracker.stats()
        assert isinstance(outcomes.pop("bad"), StoreConflict)
        assert set(outcomes.values()) == {None}
        assert stats.conflicts == 1
        ids = {run.id for run in await store.list_runs(limit=100)}
        assert ids == {"taken", "ok-1", "ok-2", *(f"good-{i}" for i in range(20))}
        assert (await store.get_run("taken")).prompt_id == "p1"


@pytest.mark.anyio
async def test_a_stale_fence_fails_only_its_waiter_and_its_batch_commits_at_once(
    store_url: str,
) -> None:
    """In one group commit, the op with a stale fence is refused to its own waiter with
    StaleFence naming the run; every other instance's op commits, without bisection."""
    async with opened(store_url) as base:
        await base.apply([CreateRun("run-a"), *(CreateRun(f"run-{i}") for i in range(10))])
        stale = await base.claim_run("run-a", "old-owner")
        await base.release_run("run-a", "old-owner", stale)
        current = await base.claim_run("run-a", "new-owner")
        fences = {i: await base.claim_run(f"run-{i}", f"owner-{i}") for i in range(10)}
        store = FlakyStore(base)
        # One commit at a time, so that the ops below queue up as one batch.
        one_at_a_time = RunTracker(store, retry=FAST_RETRY, commit_concurrency=1)  # type: ignore[arg-type]
        async with running(one_at_a_time) as tracker:
            outcomes: dict[str, BaseException | None] = {}

            async def persist(name: str, *ops: WriteOp) -> None:
                try:
                    await tracker.persist(*ops)
                except StoreConflict as exc:
                    outcomes[name] = exc
                else:
                    outcomes[name] = None

            with anyio.fail_after(TIMEOUT):
                async with anyio.create_task_group() as tg:
                    # Hold the tracker in a retry so the ops below queue up as ONE batch.
                    store.down = True
                    tg.start_soon(persist, "blocker", CreateRun("blocker"))
                    await until(lambda: store.apply_calls > 0)
                    tg.start_soon(persist, "stale", UpdateRun("run-a", name="late", fence=stale))
                    tg.start_soon(persist, "current", UpdateRun("run-a", name="new", fence=current))
                    for i, fence in fences.items():
                        tg.start_soon(
                            persist, f"run-{i}", UpdateRun(f"run-{i}", name="x", fence=fence)
                        )
                    await until_pending(tracker, 13)  # accepted behind the blocker
                    calls = store.apply_calls
                    store.down = False
                stats = await tracker.stats()
        error = outcomes.pop("stale")
        assert isinstance(error, StaleFence)
        assert [run for _, run in error.stale] == ["run-a"]
        assert "run-a" in str(error)
        assert set(outcomes.values()) == {None}
        assert stats.conflicts == 1
        assert store.apply_calls - calls == 3  # the blocker, the refused batch, its rest
        assert (await base.get_run("run-a")).name == "new"
        assert {(await base.get_run(f"run-{i}")).name for i in range(10)} == {"x"}


@pytest.mark.anyio
async def test_a_conflicting_submit_is_logged_and_counted(sqlite_url: str) -> None:
    """Nobody waits for a submitted op, so its refusal is logged; its batch still commits."""
    async with opened(sqlite_url) as store:
        await store.apply([CreateRun("taken", prompt_id="p1")])
        with capture_logs() as logs:
            async with running(run_tracker_actor(store)) as tracker:
                with anyio.fail_after(TIMEOUT):
                    ops = [CreateRun(f"r-{i}") for i in range(10)]
                    ops.insert(5, CreateRun("taken", prompt_id="p2"))
                    await tracker.submit(*ops)
                    await tracker.flush()
                    stats = await tracker.stats()
        assert stats.conflicts == 1
        assert stats.ops_committed == 10
        refused = [e for e in logs if e["event"] == "run_tracker_op_refused"]
        assert [e["op"] for e in refused] == ["CreateRun('taken')"]
        assert len(await store.list_runs(limit=100)) == 11


# -- an unavailable store ----------------------------------------------------------------


@pytest.mark.anyio
async def test_an_unavailable_store_is_retried_until_it_answers(store_url: str) -> None:
    """Commits that fail with StoreUnavailable are retried with backoff and nothing is lost."""
    async with opened(store_url) as real:
        flaky = FlakyStore(real)
        flaky.fail_next = 4
        actor = run_tracker_actor(flaky, retry=FAST_RETRY)
        async with running(actor) as tracker:
            with anyio.fail_after(TIMEOUT):
                await tracker.submit(*(CreateRun(f"r-{i}") for i in range(50)))
                await tracker.persist(CreateRun("last"))
                await tracker.flush()
                stats = await tracker.stats()
        assert stats.retries == 4
        assert stats.ops_committed == 51
        assert len(await real.list_runs(limit=100)) == 51


@pytest.mark.anyio
async def test_persist_times_out_with_store_unavailable_and_commits_later(sqlite_url: str) -> None:
    """A persist past its timeout raises StoreUnavailable; its ops still commit on recovery."""
    async with opened(sqlite_url) as real:
        flaky = FlakyStore(real)
        flaky.down = True
        actor = run_tracker_actor(flaky, retry=FAST_RETRY)
        async with running(actor) as tracker:
            with anyio.fail_after(TIMEOUT):
                with pytest.raises(StoreUnavailable, match="still queued") as caught:
                    await tracker.persist(CreateRun("run-1"), timeout=0.2)
                assert isinstance(caught.value.__cause__, StoreUnavailable)
                flaky.down = False
                await tracker.flush()
                stats = await tracker.stats()
        assert (await real.get_run("run-1")).status == "running"
        assert stats.retries >= 2


@pytest.mark.anyio
async def test_stopping_the_tracker_commits_what_is_pending(store_url: str) -> None:
    """A graceful stop commits every op accepted before it."""
    async with opened(store_url) as store:
        async with anyio.create_task_group() as tg:
            ref = await spawn(tg, run_tracker_actor(store), shutdown_timeout=TIMEOUT)
            tracker = RunTrackerClient(ref)
            with anyio.fail_after(TIMEOUT):
                for i in range(200):
                    await tracker.submit(CreateRun(f"r-{i}"), task(f"t-{i}", f"r-{i}"))
                await ref.stop()
        assert len(await store.list_runs(limit=1000)) == 200
        with pytest.raises(ActorDead):
            await tracker.submit(CreateRun("late"))


@pytest.mark.anyio
async def test_a_stop_while_the_store_is_down_fails_the_waiters(sqlite_url: str) -> None:
    """Ops still uncommitted when the shutdown timeout ends are reported, and their waiters
    answered instead of left hanging: StoreUnavailable for the ops accepted (in flight or
    waiting behind the commit), ActorDead for one still in the mailbox."""
    async with opened(sqlite_url) as real:
        flaky = FlakyStore(real)
        flaky.down = True
        async with anyio.create_task_group() as tg:
            # One op a batch: r-1 in flight, r-2 a full batch behind it, r-3 held back.
            actor = run_tracker_actor(flaky, retry=FAST_RETRY, max_batch=1)
            ref = await spawn(tg, actor, shutdown_timeout=0.3)
            tracker = RunTrackerClient(ref)
            errors: dict[str, BaseException] = {}

            async def persist(run_id: str) -> None:
                try:
                    await tracker.persist(CreateRun(run_id), timeout=None)
                except (StoreUnavailable, ActorDead) as exc:
                    errors[run_id] = exc

            with anyio.fail_after(TIMEOUT), capture_logs() as logs:
                async with anyio.create_task_group() as inner:
                    inner.start_soon(persist, "r-1")
                    await until(lambda: flaky.apply_calls >= 2)  # the tracker retries r-1
                    inner.start_soon(persist, "r-2")
                    # r-2 is accepted at once; then the tracker reads nothing more (and
                    # answers no stats) while the full batch waits.
                    await anyio.sleep(0.05)
                    await until(lambda: ref.queued == 0)
                    inner.start_soon(persist, "r-3")
                    await until(lambda: ref.queued == 1)  # r-3 waits in the mailbox
                    await ref.stop()
        for accepted in ("r-1", "r-2"):
            assert isinstance(errors[accepted], StoreUnavailable)
            assert "killed before committing" in str(errors[accepted])
        assert isinstance(errors["r-3"], ActorDead)
        assert any(e["event"] == "run_tracker_ops_uncommitted" for e in logs)


# -- the client's edges ------------------------------------------------------------------


@pytest.mark.anyio
async def test_flush_and_empty_persist_return_at_once_when_nothing_is_pending(
    sqlite_url: str,
) -> None:
    """With nothing pending, flush and an empty persist return without a transaction."""
    async with opened(sqlite_url) as store, running(run_tracker_actor(store)) as tracker:
        with anyio.fail_after(TIMEOUT):
            await tracker.flush()
            await tracker.persist()
            await tracker.submit()
            assert (await tracker.stats()).batches == 0


@pytest.mark.anyio
async def test_bad_settings_are_refused() -> None:
    """A batch size below one or a non-positive heartbeat interval raises InvalidInput."""
    with pytest.raises(InvalidInput, match="max_batch"):
        run_tracker_actor(object(), max_batch=0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="heartbeat_interval"):
        run_tracker_actor(object(), heartbeat_interval=0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="CommitBackoff"):
        CommitBackoff(initial=2, maximum=1)


def test_retry_delays_grow_exponentially_up_to_the_cap() -> None:
    """Backoff doubles from its initial delay, stays within the jitter band and the cap."""
    policy = CommitBackoff(initial=0.1, maximum=2.0, jitter=0.2, rng=random.Random(1))
    delays = [policy.delay(n) for n in range(1, 12)]
    for n, delay in enumerate(delays, start=1):
        base = min(2.0, 0.1 * 2 ** (n - 1))
        assert base * 0.8 <= delay <= base * 1.2
    assert CommitBackoff(jitter=0).delay(10_000) == CommitBackoff().maximum
    again = CommitBackoff(initial=0.1, maximum=2.0, jitter=0.2, rng=random.Random(1))
    assert [again.delay(n) for n in range(1, 12)] == delays


# -- heartbeat ---------------------------------------------------------------------------


class HeartbeatStore:
    """Records heartbeat calls with the (virtual) time they were made."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.beats: list[float] = []
        self.fail_at = fail_at

    async def heartbeat(self, executor_id: str) -> int:
        assert executor_id == "exec-1"
        self.beats.append(anyio.current_time())
        if len(self.beats) == self.fail_at:
            raise StoreUnavailable("down for one beat (test)")
        return 1

    async def apply(self, ops: Any) -> None:
        await anyio.lowlevel.checkpoint()


@pytest.mark.trio
async def test_heartbeat_is_written_every_interval_until_stop(autojump_clock: Any) -> None:
    """With an executor id, the tracker heart-beats every interval; a failed beat is survived."""
    store = HeartbeatStore(fail_at=2)
    actor = run_tracker_actor(store, executor_id="exec-1", heartbeat_interval=10)  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        ref = await spawn(tg, actor)
        start = anyio.current_time()
        await anyio.sleep(35)
        stats = await RunTrackerClient(ref).stats()
        await ref.stop()
        await anyio.sleep(100)
    assert [round(t - start) for t in store.beats] == [10, 20, 30]
    assert stats.heartbeats == 2


@pytest.mark.trio
async def test_no_heartbeat_without_an_executor_id(autojump_clock: Any) -> None:
    """Without an executor id, the tracker writes no heartbeat."""
    store = HeartbeatStore()
    async with anyio.create_task_group() as tg:
        ref = await spawn(tg, run_tracker_actor(store))  # type: ignore[arg-type]
        await anyio.sleep(60)
        await ref.stop()
    assert store.beats == []


# -- throughput (reported, loosely asserted) ---------------------------------------------


@pytest.mark.trio
async def test_group_commit_outpaces_per_row_commits(sqlite_url: str) -> None:
    """Through the tracker, 100 concurrent submitters commit thousands of rows a second."""
    async with opened(sqlite_url) as store, running(run_tracker_actor(store)) as tracker:

        async def submitter(n: int) -> None:
            for i in range(50):
                await tracker.submit(CreateRun(f"run-{n}-{i}"))

        with anyio.fail_after(TIMEOUT):
            began = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for n in range(100):
                    tg.start_soon(submitter, n)
            await tracker.flush()
            elapsed = time.perf_counter() - began
    rate = 5_000 / elapsed
    print(f"group commit through the tracker: {rate:,.0f} ops/s")
    assert rate > 1_000

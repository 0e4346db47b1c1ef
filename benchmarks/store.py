"""Tracked executions per second: the run tracker's group commit vs one transaction a write.

One execution is what a tracked turn writes: run create + task create (committed before
the provider would be called), task completion with the run's messages and totals, then
the run's final update (status ``completed``). ``concurrency`` tasks (1,000: one per
execution instance) each run executions back to back, through

- group commit: the real ``RunTracker`` actor and ``RunTrackerClient.persist(...)``
  awaited per step, as the instance does (``CreateRun`` + ``CreateTask`` in one persist,
  ``FinishTurn``, ``UpdateRun``);
- naive: one transaction per write, the same store adapter's single-operation methods
  (``create_run``, ``create_task``, ``finish_turn``, ``update_run``), same concurrency,
  same connection pool size.

Both on trio (the runtime's default backend), each phase with fresh ids. After each
phase the rows are counted with plain SQL (not through the store): ``lost_writes`` is the
runs and tasks missing or not completed as written, and must be 0.

Without ``-d`` a temporary database is created on the local PostgreSQL server and dropped
afterwards; ``-d postgresql://...`` uses that database (its schema is migrated, the
benchmark's rows deleted afterwards); ``-d sqlite:///file.db`` measures SQLite. ``-d``
may be given several times: the first database's figures are the top-level keys, the
others' are nested under their dialect.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import anyio

from promptactors.actors import RunTrackerClient, run_tracker_actor
from promptactors.kernel import spawn
from promptactors.store import (
    CreateRun,
    CreateTask,
    FinishTurn,
    UpdateRun,
    open_store,
)

from ._databases import ADMIN_URL, count, dialect, migrate, query, redact, temporary_postgres

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

CONCURRENCY = 1_000
POOL_SIZE = 10  # open_store's default, which the runtime uses
TOKENS = 50
TOKEN_TEXT = "tok "
REQUEST = (
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write a short note about actor runtimes."},
)


class _Execution:
    """The operations of execution number ``n`` of a phase (ids prefixed by the phase)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.text = TOKEN_TEXT * TOKENS

    def create(self, n: int) -> tuple[CreateRun, CreateTask]:
        run_id = f"{self.prefix}-r{n}"
        return (
            CreateRun(
                run_id=run_id,
                prompt_id="bench-store",
                instance_id=f"{self.prefix}-i{n}",
                name="bench",
                settings={"model": "bench-model"},
                executor_id="bench",
            ),
            CreateTask(
                task_id=f"{self.prefix}-t{n}",
                run_id=run_id,
                provider="bench",
                model="bench-model",
                request=REQUEST,
                instance_id=f"{self.prefix}-i{n}",
            ),
        )

    def finish(self, n: int) -> FinishTurn:
        return FinishTurn(
            task_id=f"{self.prefix}-t{n}",
            response_text=self.text,
            run_messages=[*REQUEST, {"role": "assistant", "content": self.text}],
            input_tokens=20,
            output_tokens=TOKENS,
            time_to_first_token=0.01,
            total_time=0.5,
            finish_reason="stop",
        )

    def close(self, n: int) -> UpdateRun:
        return UpdateRun(run_id=f"{self.prefix}-r{n}", status="completed")


async def _drive(
    executions: int, concurrency: int, step: Callable[[int], Awaitable[None]]
) -> float:
    """Run ``step(n)`` for n in 0..executions-1 from ``concurrency`` tasks; wall seconds."""
    next_n = 0

    async def worker() -> None:
        nonlocal next_n
        while next_n < executions:
            n = next_n
            next_n += 1
            await step(n)

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(min(concurrency, executions)):
            tg.start_soon(worker)
    return time.perf_counter() - start


async def _group_commit(url: str, prefix: str, executions: int, concurrency: int) -> dict[str, Any]:
    ex = _Execution(prefix)
    async with (
        await open_store(url, pool_size=POOL_SIZE) as store,
        anyio.create_task_group() as tg,
    ):
        ref = await spawn(tg, run_tracker_actor(store), shutdown_timeout=60.0)
        tracker = RunTrackerClient(ref)
        try:

            async def step(n: int) -> None:
                await tracker.persist(*ex.create(n))
                await tracker.persist(ex.finish(n))
                await tracker.persist(ex.close(n))

            cpu = time.process_time()
            wall = await _drive(executions, concurrency, step)
            cpu = time.process_time() - cpu
            stats = await tracker.stats()
        finally:
            await ref.stop()
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "batches": stats.batches,
        "largest_batch": stats.largest_batch,
        "mean_batch": round(stats.ops_committed / max(stats.batches, 1), 1),
    }


async def _naive(url: str, prefix: str, executions: int, concurrency: int) -> dict[str, Any]:
    ex = _Execution(prefix)
    async with await open_store(url, pool_size=POOL_SIZE) as store:

        async def step(n: int) -> None:
            run, task = ex.create(n)
            await store.create_run(run)
            await store.create_task(task)
            await store.finish_turn(ex.finish(n))
            await store.update_run(ex.close(n))

        cpu = time.process_time()
        wall = await _drive(executions, concurrency, step)
        cpu = time.process_time() - cpu
    return {"wall_s": wall, "cpu_s": cpu}


async def _warm(url: str, tag: str) -> None:
    """Connections, statement caches and imports, outside the measurement."""
    await _naive(url, f"bench-wnv-{tag}", 20, 20)
    await _group_commit(url, f"bench-wgc-{tag}", 20, 20)


def _lost(url: str, prefix: str, executions: int) -> int:
    """Runs plus tasks of the phase that are missing or not completed as written."""
    like = f"{prefix}-%"
    runs = count(
        url,
        "SELECT count(*) FROM ai_runs WHERE id LIKE $1 AND status = 'completed'"
        " AND task_count = 1 AND message_count = 3 AND output_tokens = $2",
        like,
        TOKENS,
    )
    tasks = count(
        url,
        "SELECT count(*) FROM ai_tasks WHERE id LIKE $1 AND status = 'completed'"
        " AND response_text = $2",
        like,
        TOKEN_TEXT * TOKENS,
    )
    return 2 * executions - runs - tasks


def _measure(url: str, executions: int, concurrency: int) -> dict[str, Any]:
    migrate(url)
    tag = uuid.uuid4().hex[:8]
    phases = {"group_commit": f"bench-gc-{tag}", "naive": f"bench-nv-{tag}"}
    try:
        anyio.run(_warm, url, tag, backend="trio")
        gc_fig = anyio.run(
            _group_commit, url, phases["group_commit"], executions, concurrency, backend="trio"
        )
        gc_lost = _lost(url, phases["group_commit"], executions)
        nv_fig = anyio.run(_naive, url, phases["naive"], executions, concurrency, backend="trio")
        nv_lost = _lost(url, phases["naive"], executions)
    finally:
        # This run's rows only (tasks go with their runs).
        query(url, "DELETE FROM ai_runs WHERE id LIKE $1", f"bench-%-{tag}-%")
    gc_rate = executions / gc_fig["wall_s"]
    nv_rate = executions / nv_fig["wall_s"]
    return {
        "dialect": dialect(url),
        "group_commit_exec_per_s": round(gc_rate),
        "naive_exec_per_s": round(nv_rate),
        "ratio": round(gc_rate / nv_rate, 2),
        "lost_writes": gc_lost + nv_lost,
        "group_commit_lost_writes": gc_lost,
        "naive_lost_writes": nv_lost,
        "group_commit_cpu_us_per_exec": round(gc_fig["cpu_s"] / executions * 1e6, 1),
        "naive_cpu_us_per_exec": round(nv_fig["cpu_s"] / executions * 1e6, 1),
        "group_commit_wall_s": round(gc_fig["wall_s"], 3),
        "naive_wall_s": round(nv_fig["wall_s"], 3),
        "batches": gc_fig["batches"],
        "mean_batch_ops": gc_fig["mean_batch"],
        "largest_batch_ops": gc_fig["largest_batch"],
    }


def run(
    *,
    quick: bool,
    databases: Sequence[str] = (),
    executions: int | None = None,
    concurrency: int = CONCURRENCY,
) -> dict[str, Any]:
    """Measure both paths on each database (a temporary PostgreSQL one when none is
    given) and return the figures (prints nothing)."""
    count_ = executions or (5_000 if quick else 20_000)
    parameters = {
        "executions": count_,
        "concurrency": concurrency,
        "pool_size": POOL_SIZE,
        "writes_per_execution": 4,
        "group_commit_persists_per_execution": 3,
        "naive_transactions_per_execution": 4,
        "backend": "trio",
        "quick": quick,
    }
    start = time.perf_counter()
    figures: list[dict[str, Any]] = []
    if databases:
        for url in databases:
            one = _measure(url, count_, concurrency)
            one["database"] = redact(url)
            figures.append(one)
    else:
        with temporary_postgres() as url:
            one = _measure(url, count_, concurrency)
        server = redact(ADMIN_URL).rsplit("/", 1)[0]
        one["database"] = f"temporary database on {server}, created and dropped by the benchmark"
        figures.append(one)
    result: dict[str, Any] = {**figures[0], **parameters}
    for other in figures[1:]:
        result[other["dialect"] if other["dialect"] not in result else other["database"]] = other
    result["bench_seconds"] = round(time.perf_counter() - start, 1)
    return result


if __name__ == "__main__":  # pragma: no cover - the CLI prints through `promptactors bench`
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))

"""The whole engine under load: N instances, one streamed turn each, tracked in SQLite.

Each instance is started by prompt id (through the single-flight prompt cache, so the
prompt is read from the store once), executes one 50-token turn on the simulated provider
(20 ms between tokens, paced by its shared ticker), and its run and task are committed to
an SQLite file through the run tracker's group commit — the path ``promptactors load``
takes. The same run is made on trio and on asyncio, and once more on trio with each turn
run by ``handle.execute()`` (no streaming: what earlier reports measured).

Figures: ``instances``, ``completed``, ``errors``, ``wall_s`` and ``ideal_wall_s`` (tokens x
delay: what one instance alone needs), ``cpu_us_per_token`` (process CPU, every thread —
the store's writer included — per streamed token, on the streamed ``run_load`` path that
``promptactors load`` takes), ``asyncio_cpu_us_per_token``, ``execute_cpu_us_per_token``
and ``execute_wall_s`` (the same load on trio, each turn through ``execute()`` with no
reader woken per token: comparable with reports made before the load streamed),
``chunks_per_token`` (chunks the streamed trio run's readers received per token: below 1
when a loaded engine falls behind the 20 ms pace and coalesces tokens, which also lowers
the CPU per token — compare CPU figures at similar values),
``kb_per_completed_instance`` (resident memory of the live, completed instances, their
answer text excluded; it includes the allocator's overhead and the SQLite page cache) and
``python_kb_per_completed_instance`` (the Python objects alone, by tracemalloc),
``store_reads_for_prompt``, ``ttft_p50``/``p99``, ``total_p50``/``p99``.
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from promptactors import RuntimeSettings, open_runtime, run_load
from promptactors._load import DEMO_PROMPT
from promptactors.kernel import start_soon
from promptactors.store import PromptMessageRow, PromptRecord, VariableDefaultRow, open_store

TOKENS = 50
DELAY = 0.02


def _rss_kb() -> float:
    with open("/proc/self/statm", encoding="ascii") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 1024


async def _seed(url: str) -> None:
    async with await open_store(url, migrate=True) as store:
        await store.put_prompt(
            PromptRecord(
                id=DEMO_PROMPT.id,
                name=DEMO_PROMPT.name,
                messages=tuple(PromptMessageRow(m.role, m.content) for m in DEMO_PROMPT.messages),
                variable_defaults=tuple(
                    VariableDefaultRow(v.name, v.default) for v in DEMO_PROMPT.variables
                ),
                settings=dict(DEMO_PROMPT.settings),
            ),
            "prompts",
        )


async def _engine(instances: int, folder: str) -> dict[str, Any]:
    url = f"sqlite:///{folder}/engine-{anyio.current_time():.0f}-{os.getpid()}.db"
    await _seed(url)
    settings = RuntimeSettings(
        database_url=url,
        simulated_tokens=TOKENS,
        simulated_latency=DELAY,
        recover_on_start=False,
    )
    async with open_runtime(settings) as rt:
        gc.collect()
        rss_before = _rss_kb()
        report = await run_load(rt, instances=instances, prompt_id=DEMO_PROMPT.id, stop_after=False)
        await rt.tracker.flush()
        gc.collect()
        rss_after = _rss_kb()
        prompt_stats = await rt.prompts.stats()
        runs = await rt.store.list_runs(limit=instances + 10)
        text_kb = sum(len(run.messages[-1]["content"]) for run in runs if run.messages) / 1024
    completed = max(report.completed, 1)
    return {
        "report": report,
        "kb_per_completed_instance": round((rss_after - rss_before - text_kb) / completed, 2),
        "store_reads_for_prompt": prompt_stats.store_reads,
        "runs_committed": len(runs),
    }


async def _execute_load(instances: int, folder: str) -> dict[str, Any]:
    """The same load with each turn run by ``handle.execute()``: CPU per token, wall time.

    Started as ``run_load`` starts them (all at once, on the kernel's cheap spawn path),
    measured over the same span (from the first start until every turn has ended)."""
    url = f"sqlite:///{folder}/execute-{os.getpid()}.db"
    await _seed(url)
    settings = RuntimeSettings(
        database_url=url,
        simulated_tokens=TOKENS,
        simulated_latency=DELAY,
        recover_on_start=False,
    )
    tokens = 0
    errors = 0
    async with open_runtime(settings) as rt:

        async def one() -> None:
            nonlocal tokens, errors
            try:
                handle = await rt.start_instance(
                    DEMO_PROMPT.id, execution_config={"track_in_runs": True, "allow_chat": True}
                )
                result = await handle.execute()
            except Exception:  # counted, as run_load counts its failures
                errors += 1
            else:
                tokens += result.output_tokens

        gc.collect()
        cpu_start = time.process_time()
        wall_start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(instances):
                start_soon(tg, one)
        cpu = time.process_time() - cpu_start
        wall = time.perf_counter() - wall_start
    return {
        "cpu_us_per_token": round(cpu / tokens * 1e6, 2) if tokens else None,
        "wall_s": round(wall, 4),
        "errors": errors,
    }


async def _python_heap(instances: int, folder: str) -> float:
    """KB of Python objects per live completed instance (tracemalloc, a separate run)."""
    import tracemalloc

    settings = RuntimeSettings(
        database_url=f"sqlite:///{folder}/heap-{os.getpid()}.db",
        simulated_tokens=TOKENS,
        simulated_latency=0.0,
        recover_on_start=False,
    )
    async with open_runtime(settings) as rt:
        await run_load(rt, instances=20, stop_after=False)  # warm the caches and code paths
        await rt.tracker.flush()
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        report = await run_load(rt, instances=instances, stop_after=False)
        await rt.tracker.flush()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        runs = await rt.store.list_runs(limit=instances)
        text = sum(len(run.messages[-1]["content"]) for run in runs[:instances] if run.messages)
    return round((after - before - text) / 1024 / max(report.completed, 1), 2)


def run(*, quick: bool) -> dict[str, Any]:
    """Run the load on trio and on asyncio and return the figures."""
    instances = 2_000 if quick else 10_000
    with tempfile.TemporaryDirectory(prefix="promptactors-bench-") as folder:
        start = time.perf_counter()
        trio_figures = anyio.run(_engine, instances, folder, backend="trio")
        asyncio_figures = anyio.run(_engine, instances, folder, backend="asyncio")
        execute_figures = anyio.run(_execute_load, instances, folder, backend="trio")
        heap_kb = anyio.run(_python_heap, 500, folder, backend="trio")
        elapsed = time.perf_counter() - start
    report = trio_figures["report"]
    other = asyncio_figures["report"]
    return {
        "instances": instances,
        "completed": report.completed,
        "errors": report.errors + other.errors + execute_figures["errors"],
        "error_kinds": {**report.error_kinds, **other.error_kinds},
        "wall_s": report.wall_s,
        "ideal_wall_s": round(TOKENS * DELAY, 3),
        "cpu_us_per_token": report.cpu_us_per_token,
        "asyncio_cpu_us_per_token": other.cpu_us_per_token,
        "asyncio_wall_s": other.wall_s,
        "chunks_per_token": (
            round(sum(t.chunks for t in report.turns) / report.tokens, 3) if report.tokens else None
        ),
        "execute_cpu_us_per_token": execute_figures["cpu_us_per_token"],
        "execute_wall_s": execute_figures["wall_s"],
        "kb_per_completed_instance": trio_figures["kb_per_completed_instance"],
        "python_kb_per_completed_instance": heap_kb,
        "store_reads_for_prompt": trio_figures["store_reads_for_prompt"],
        "runs_committed": trio_figures["runs_committed"],
        "tokens": report.tokens,
        "ttft_p50": report.ttft_p50,
        "ttft_p99": report.ttft_p99,
        "total_p50": report.total_p50,
        "total_p99": report.total_p99,
        "bench_seconds": round(elapsed, 1),
        "quick": quick,
        "database": "sqlite (temporary file)",
        "peer": None,
        "note": "cpu figures include every thread of the process (the SQLite writer too)",
        "folder": Path(folder).name,
    }

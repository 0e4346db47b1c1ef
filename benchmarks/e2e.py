"""End to end: concurrent 50-token turns streamed over HTTP and tracked in PostgreSQL.

The local LLM test server runs as its own process (a free 127.0.0.1 port, stopped by PID
at the end). Each side runs in its own subprocess, so only the client's CPU is measured
(``time.process_time``: every thread of that process, asyncpg's included), after a
warm-up of a few turns:

- ours: ``open_runtime`` on trio with an OpenAI-compatible endpoint pointing at the
  server, ``track_in_runs`` on; each turn starts an instance, streams its turn
  (``handle.stream()``) and stops it (the run is marked completed);
- the peer, what a team would otherwise write: asyncio, the official ``openai``
  ``AsyncOpenAI`` client (streaming, one shared client whose httpx pool is sized for all
  the streams at once) and SQLAlchemy 2 async (asyncpg driver, Core statements, a pool as
  large as ours) with one commit per write: run row and task row before the call, task
  completion and run update after it, into the same tables.

Without ``--quick`` the two sides run three times, alternating, each time in fresh
processes; the median CPU of each side counts (``*_cpu_s_all`` lists every run).
``lost`` counts turns (of every run) whose rows are missing or wrong (run completed with
the answer as its conversation and 50 output tokens, task completed with the streamed
text): it must be 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ._databases import ADMIN_URL, count, dialect, migrate, query, redact, temporary_postgres
from .providers import _start_server, _stop_server

TOKENS = 50
TOKEN_TEXT = "tok "
INTERVAL = 0.01  # seconds between a stream's chunks: the turns overlap, as real ones do
WARMUP = 20
POOL_SIZE = 10  # our store's default pool; the peer gets as many connections
SYSTEM = "You are a helpful assistant."
USER = "Write a short note about actor runtimes."
PEER_CONFIG = (
    "asyncio; openai.AsyncOpenAI (streaming, stream_options.include_usage) with one shared "
    "DefaultAsyncHttpxClient, limits max_connections=max_keepalive_connections=turns; "
    f"SQLAlchemy 2 async Core on asyncpg, pool_size={POOL_SIZE}, max_overflow=0, "
    "one transaction (engine.begin) per write, 4 per turn"
)


# -- the two sides, each run in its own process -----------------------------------------


def _ours(url: str, base_url: str, turns: int, marker: str) -> dict[str, Any]:
    import anyio

    from promptactors import PromptDefinition, PromptMessage, RuntimeSettings, open_runtime

    settings = RuntimeSettings(
        database_url=url,
        provider="bench",
        model="bench-model",
        endpoints={
            "bench": {
                "kind": "openai",
                "base_url": base_url,
                "api_key": "sk-bench",
                "max_connections": max(turns, WARMUP),
                "max_keepalive_connections": max(turns, WARMUP),
            }
        },
        recover_on_start=False,
    )

    def prompt(prompt_id: str) -> PromptDefinition:
        return PromptDefinition(
            id=prompt_id,
            name="bench",
            messages=(
                PromptMessage(role="system", content=SYSTEM),
                PromptMessage(role="user", content=USER),
            ),
        )

    async def batch(rt: Any, prompt_id: str, n: int) -> tuple[int, int]:
        definition = prompt(prompt_id)
        received = errors = 0

        async def one() -> None:
            nonlocal received, errors
            handle = await rt.start_instance(
                prompt=definition, execution_config={"track_in_runs": True}
            )
            try:
                async with handle.stream() as turn:
                    async for chunk in turn:
                        received += len(chunk.text)
                    await turn.result()
            except Exception:  # counted; the rows check says what was lost
                errors += 1
            finally:
                await handle.stop()

        async with anyio.create_task_group() as tg:
            for _ in range(n):
                tg.start_soon(one)
        await rt.tracker.flush()
        return received, errors

    async def main() -> dict[str, Any]:
        async with open_runtime(settings) as rt:
            await batch(rt, f"{marker}-warm", WARMUP)
            wall, cpu = time.perf_counter(), time.process_time()
            received, errors = await batch(rt, marker, turns)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        return {"cpu_s": cpu, "wall_s": wall, "chars": received, "errors": errors}

    result: dict[str, Any] = anyio.run(main, backend="trio")
    return result


def _peer(url: str, base_url: str, turns: int, marker: str) -> dict[str, Any]:
    import asyncio
    import uuid

    from openai import AsyncOpenAI, DefaultAsyncHttpxClient
    from sqlalchemy import Column, Integer, MetaData, Table, Text, func, insert, update
    from sqlalchemy.dialects.postgresql import JSONB
    from sqlalchemy.ext.asyncio import create_async_engine

    from .providers import _sdk_httpx

    meta = MetaData()
    runs = Table(
        "ai_runs",
        meta,
        Column("id", Text, primary_key=True),
        *(Column(name, Text) for name in ("prompt_id", "instance_id", "name", "status")),
        *(Column(name, Text) for name in ("executor_id",)),
        *(Column(name, JSONB) for name in ("messages", "variables", "settings")),
        *(Column(name, Integer) for name in ("message_count", "task_count", "version")),
        *(Column(name, Integer) for name in ("input_tokens", "output_tokens", "total_tokens")),
        Column("heartbeat_at"),
        Column("updated_at"),
    )
    tasks = Table(
        "ai_tasks",
        meta,
        Column("id", Text, primary_key=True),
        *(Column(name, Text) for name in ("run_id", "instance_id", "provider", "model")),
        *(Column(name, Text) for name in ("status", "response_text", "finish_reason")),
        Column("request", JSONB),
        *(Column(name, Integer) for name in ("attempt", "input_tokens", "output_tokens")),
        Column("time_to_first_token"),
        Column("total_time"),
        Column("updated_at"),
        Column("completed_at"),
    )
    request: Any = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]

    async def batch(engine: Any, client: AsyncOpenAI, prompt_id: str, n: int) -> tuple[int, int]:
        received = errors = 0

        async def one() -> None:
            nonlocal received, errors
            run_id, task_id, instance_id = (str(uuid.uuid4()) for _ in range(3))
            loop = asyncio.get_running_loop()
            try:
                async with engine.begin() as conn:
                    await conn.execute(
                        insert(runs).values(
                            id=run_id,
                            prompt_id=prompt_id,
                            instance_id=instance_id,
                            name="bench",
                            settings={"model": "bench-model"},
                            executor_id="bench-peer",
                            heartbeat_at=func.now(),
                        )
                    )
                async with engine.begin() as conn:
                    await conn.execute(
                        insert(tasks).values(
                            id=task_id,
                            run_id=run_id,
                            instance_id=instance_id,
                            provider="bench",
                            model="bench-model",
                            request=request,
                        )
                    )
                started = loop.time()
                first: float | None = None
                parts: list[str] = []
                usage: Any = None
                finish: str | None = None
                stream = await client.chat.completions.create(
                    model="bench-model",
                    messages=request,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                async with stream:
                    async for chunk in stream:
                        if chunk.usage is not None:
                            usage = chunk.usage
                        if chunk.choices:
                            choice = chunk.choices[0]
                            if choice.delta.content:
                                if first is None:
                                    first = loop.time() - started
                                parts.append(choice.delta.content)
                            finish = choice.finish_reason or finish
                text = "".join(parts)
                received += len(text)
                inp = usage.prompt_tokens if usage else 0
                out = usage.completion_tokens if usage else 0
                async with engine.begin() as conn:
                    await conn.execute(
                        update(tasks)
                        .where(tasks.c.id == task_id)
                        .values(
                            status="completed",
                            response_text=text,
                            input_tokens=inp,
                            output_tokens=out,
                            finish_reason=finish,
                            time_to_first_token=first,
                            total_time=loop.time() - started,
                            updated_at=func.now(),
                            completed_at=func.now(),
                        )
                    )
                async with engine.begin() as conn:
                    await conn.execute(
                        update(runs)
                        .where(runs.c.id == run_id)
                        .values(
                            status="completed",
                            # The run keeps the conversation (the templates are the
                            # prompt's), as ours does: here the one answer.
                            messages=[{"role": "assistant", "content": text, "task_id": task_id}],
                            message_count=1,
                            task_count=1,
                            input_tokens=inp,
                            output_tokens=out,
                            total_tokens=inp + out,
                            version=runs.c.version + 1,
                            updated_at=func.now(),
                        )
                    )
            except Exception:  # counted; the rows check says what was lost
                errors += 1

        await asyncio.gather(*(one() for _ in range(n)))
        return received, errors

    async def main() -> dict[str, Any]:
        engine = create_async_engine(
            url.replace("postgresql://", "postgresql+asyncpg://", 1),
            pool_size=POOL_SIZE,
            max_overflow=0,
            pool_timeout=600,
        )
        size = max(turns, WARMUP)
        limits = _sdk_httpx().Limits(max_connections=size, max_keepalive_connections=size)
        http_client = DefaultAsyncHttpxClient(limits=limits, timeout=120.0)
        client = AsyncOpenAI(base_url=base_url, api_key="sk-bench", http_client=http_client)
        try:
            await batch(engine, client, f"{marker}-warm", WARMUP)
            wall, cpu = time.perf_counter(), time.process_time()
            received, errors = await batch(engine, client, marker, turns)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        finally:
            await client.close()
            await engine.dispose()
        return {"cpu_s": cpu, "wall_s": wall, "chars": received, "errors": errors}

    return asyncio.run(main())


# -- the parent: server, database, subprocesses, checks -----------------------------------


def _side(side: str, url: str, base_url: str, turns: int, marker: str, timeout: float) -> Any:
    package = __package__ or "benchmarks"
    root = Path(__file__).resolve().parents[len(package.split("."))]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    args = [sys.executable, "-m", f"{package}.e2e", side, url, base_url, str(turns), marker]
    # subprocess.run kills the child if it outlives the timeout.
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"the {side} side failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _lost(url: str, marker: str, turns: int) -> int:
    good = count(
        url,
        "SELECT count(*) FROM ai_runs r JOIN ai_tasks t ON t.run_id = r.id"
        " WHERE r.prompt_id = $1 AND r.status = 'completed' AND r.message_count = 1"
        " AND r.messages -> 0 ->> 'content' = $3 AND r.messages -> 0 ->> 'task_id' = t.id"
        " AND r.task_count = 1 AND r.output_tokens = $2 AND t.status = 'completed'"
        " AND t.output_tokens = $2 AND t.response_text = $3",
        marker,
        TOKENS,
        TOKEN_TEXT * TOKENS,
    )
    return turns - good


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median CPU, with the errors and characters of all runs summed."""
    middle = sorted(runs, key=lambda r: r["cpu_s"])[len(runs) // 2]
    total = {key: sum(r[key] for r in runs) for key in ("errors", "chars")}
    return {**middle, **total}


def _measure(url: str, turns: int, timeout: float, repeats: int) -> dict[str, Any]:
    if dialect(url) != "postgresql":
        raise ValueError(f"bench e2e tracks in PostgreSQL; got {redact(url)}")
    migrate(url)
    tag = f"bench-e2e-{time.time_ns():x}"
    process, port = _start_server(TOKENS, INTERVAL)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        # Alternating sides, each repetition in fresh processes; the median CPU of each
        # side counts (a shared machine's noise hits both).
        runs: dict[str, list[dict[str, Any]]] = {"ours": [], "peer": []}
        for _ in range(repeats):
            for side in runs:
                runs[side].append(_side(side, url, base_url, turns, f"{tag}-{side}", timeout))
        ours, peer = _median_run(runs["ours"]), _median_run(runs["peer"])
        lost_ours = _lost(url, f"{tag}-ours", turns * repeats)
        lost_peer = _lost(url, f"{tag}-peer", turns * repeats)
    finally:
        _stop_server(process)
        query(url, "DELETE FROM ai_runs WHERE prompt_id LIKE $1", f"{tag}-%")
    ours_rate = turns / ours["cpu_s"]
    peer_rate = turns / peer["cpu_s"]
    return {
        "ours_turns_per_cpu_s": round(ours_rate, 1),
        "peer_turns_per_cpu_s": round(peer_rate, 1),
        "ratio": round(ours_rate / peer_rate, 2),
        "lost": lost_ours + lost_peer,
        "ours_lost": lost_ours,
        "peer_lost": lost_peer,
        "ours_errors": ours["errors"],
        "peer_errors": peer["errors"],
        "ours_cpu_s": round(ours["cpu_s"], 3),
        "peer_cpu_s": round(peer["cpu_s"], 3),
        "ours_wall_s": round(ours["wall_s"], 3),
        "peer_wall_s": round(peer["wall_s"], 3),
        "ours_chars": ours["chars"],
        "peer_chars": peer["chars"],
        "repeats": repeats,
        "ours_cpu_s_all": [round(r["cpu_s"], 3) for r in runs["ours"]],
        "peer_cpu_s_all": [round(r["cpu_s"], 3) for r in runs["peer"]],
    }


def run(
    *, quick: bool, databases: tuple[str, ...] | list[str] = (), turns: int | None = None
) -> dict[str, Any]:
    """Run both sides against one server process; return the figures (prints nothing)."""
    n = turns or (200 if quick else 1_000)
    timeout = 120.0 if quick else 600.0
    repeats = 1 if quick else 3
    start = time.perf_counter()
    if databases:
        figures = _measure(databases[0], n, timeout, repeats)
        where = redact(databases[0])
    else:
        with temporary_postgres() as url:
            figures = _measure(url, n, timeout, repeats)
        server = redact(ADMIN_URL).rsplit("/", 1)[0]
        where = f"temporary database on {server}, created and dropped by the benchmark"
    return {
        **figures,
        "turns": n,
        "tokens_per_turn": TOKENS,
        "server_interval_s": INTERVAL,
        "warmup_turns": WARMUP,
        "database": where,
        "peer_config": PEER_CONFIG,
        "ours_config": f"trio; open_runtime, track_in_runs, store pool_size={POOL_SIZE}",
        "cpu": "client process only (time.process_time, all its threads); server excluded",
        "quick": quick,
        "bench_seconds": round(time.perf_counter() - start, 1),
    }


if __name__ == "__main__":  # pragma: no cover - one side, run by _side in its own process
    side, url_, base_url_, turns_, marker_ = sys.argv[1:6]
    runner = _ours if side == "ours" else _peer
    print(json.dumps(runner(url_, base_url_, int(turns_), marker_)))

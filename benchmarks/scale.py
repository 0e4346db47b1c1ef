"""Scale-out on PostgreSQL: one load at 1 and at 2 processes, then a kill test.

Throughput: ``promptactors load --processes N --json`` (the same load: 2,000 instances of
one 200-token turn each, 5 ms between tokens, on the simulated provider, tracked in
PostgreSQL) run at N = 1 and
N = 2, each on a fresh database. Figures: ``tokens_per_s_1``, ``tokens_per_s_2`` and
``speedup`` (the database shares the machine's cores with the runtimes).

Kill test (:func:`kill_test`): two runtime processes of one executor group share a fresh
database with short leases; one is SIGKILLed mid-load. An observer polls every run's
owner and fence throughout. Figures: ``takeover_s`` (from the kill until the survivor
owns, or has settled, every run the dead one held), ``lease_s``, ``double_owned`` (fence
values seen with two owners, plus fences that went back), ``turns_lost`` (tasks or runs
left running, answers missing from their run) and ``turns_duplicated``.

Needs a PostgreSQL server: ``-d postgresql://...`` (``PROMPTACTORS_DATABASE_URL`` too);
the benchmark creates and drops its own databases there.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from promptactors import InvalidInput
from promptactors.store import open_store

INSTANCES = 2000
QUICK_INSTANCES = 1000
# Token-heavy turns: streaming (which parallelises) outweighs the per-turn commits.
TOKENS = 200
LATENCY = 0.005
LEASE = 2.0
TIMEOUT = 300


def _admin(url: str) -> tuple[str, str]:
    base, _, name = url.rpartition("/")
    return base, name


async def _create(url: str) -> str:
    """A fresh database next to ``url``'s: its URL."""
    base, _ = _admin(url)
    name = f"pa_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{base}/{name}"


async def _drop(url: str, fresh: str) -> None:
    _, name = _admin(fresh)
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _load(url: str, processes: int, instances: int) -> dict[str, Any]:
    args = [sys.executable, "-m", "promptactors", "load", "-n", str(instances), "--json"]
    args += ["--processes", str(processes), "-d", url]
    args += ["--tokens", str(TOKENS), "--latency", str(LATENCY), "--timeout", str(TIMEOUT)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT + 60, check=False)
    if done.returncode != 0:
        raise InvalidInput(f"load --processes {processes} failed: {done.stderr[-500:]}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report


async def _throughput(url: str, processes: int, instances: int) -> dict[str, Any]:
    fresh = await _create(url)
    try:
        return await asyncio.to_thread(_load, fresh, processes, instances)
    finally:
        await _drop(url, fresh)


# -- the kill test ---------------------------------------------------------------------------


def _spawn(
    url: str, folder: Path, name: str, *, instances: int, rate: float
) -> subprocess.Popen[bytes]:
    """A runtime process running a share of a load (the ``load-worker`` of ``load``)."""
    settings = {
        "database_url": url,
        "executor_id": name,
        "group": "kill-test",
        "lease_seconds": LEASE,
        "heartbeat_interval": LEASE / 4,
        "reclaim_interval": 0.25,
        "simulated_tokens": 60,
        "simulated_latency": 0.05,
    }
    spec = {
        "settings": settings,
        "instances": instances,
        "first_index": 0,
        "rate": rate,
        "prompt": None,
        "variables": {},
        "track": True,
        "slo": {},
        "epoch": time.time(),
        "out": str(folder / f"{name}.json"),
    }
    path = folder / f"{name}-spec.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    with (folder / f"{name}-stderr.txt").open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "promptactors", "load-worker", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )


class _Observer:
    """Every (run, fence) seen and its owners; fences that went back."""

    def __init__(self) -> None:
        self.owners: dict[tuple[str, int], set[str]] = {}
        self.fences: dict[str, int] = {}
        self.regressions = 0

    async def look(self, conn: Any) -> list[Any]:
        rows = await conn.fetch("SELECT id, owner_id, fence, status FROM ai_runs")
        for row in rows:
            run, fence, owner = row["id"], row["fence"], row["owner_id"]
            if owner is not None:
                self.owners.setdefault((run, fence), set()).add(owner)
            if fence < self.fences.get(run, 0):
                self.regressions += 1
            self.fences[run] = max(fence, self.fences.get(run, 0))
        return list(rows)

    @property
    def double_owned(self) -> int:
        return sum(len(owners) > 1 for owners in self.owners.values()) + self.regressions


async def kill_test(url: str, *, instances: int = 300, rate: float = 60.0) -> dict[str, Any]:
    """Two runtimes on database ``url`` (already created); SIGKILL one mid-load."""
    async with await open_store(url, migrate=True):
        pass
    folder = Path(tempfile.mkdtemp(prefix="promptactors-kill-"))
    victim = _spawn(url, folder, "victim", instances=instances, rate=rate)
    survivor = _spawn(url, folder, "survivor", instances=instances, rate=rate)
    observer = _Observer()
    conn = await asyncpg.connect(url, timeout=10)
    try:
        deadline = time.monotonic() + TIMEOUT
        held: set[str] = set()
        while len(held) < 20:  # the victim is mid-load: many runs held, turns streaming
            if time.monotonic() > deadline or victim.poll() is not None:
                raise InvalidInput("the victim never got its load going")
            rows = await observer.look(conn)
            held = {r["id"] for r in rows if r["owner_id"] == "victim" and r["status"] == "running"}
            await asyncio.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        victim.wait()
        rows = await observer.look(conn)
        held = {r["id"] for r in rows if r["owner_id"] == "victim" and r["status"] == "running"}
        takeover = None
        while takeover is None and time.monotonic() < deadline:
            rows = await observer.look(conn)
            if not any(r["id"] in held and r["owner_id"] == "victim" for r in rows):
                takeover = time.monotonic() - killed_at
            else:
                await asyncio.sleep(0.05)
        while survivor.poll() is None and time.monotonic() < deadline:
            await observer.look(conn)
            await asyncio.sleep(0.1)
        await observer.look(conn)
        lost, duplicated = await _turns(conn)
        report = json.loads((folder / "survivor.json").read_text(encoding="utf-8"))
        survivor_errors = sum(t["outcome"] != "ok" for t in report["turns"])
    finally:
        await conn.close()
        for process in (victim, survivor):
            if process.poll() is None:
                process.kill()
                process.wait()
    return {
        "takeover_s": None if takeover is None else round(takeover, 3),
        "lease_s": LEASE,
        "double_owned": observer.double_owned,
        "turns_lost": lost,
        "turns_duplicated": duplicated,
        "runs_taken_over": len(held),
        "survivor_turn_errors": survivor_errors,
    }


async def _turns(conn: Any) -> tuple[int, int]:
    """Turns lost (tasks or runs left running, answers missing from their run) and
    duplicated (a run of one turn with two answers or two completed tasks)."""
    running = await conn.fetchval(
        "SELECT (SELECT count(*) FROM ai_tasks WHERE status = 'running')"
        " + (SELECT count(*) FROM ai_runs WHERE status = 'running')"
    )
    rows = await conn.fetch(
        "SELECT (SELECT count(*) FROM jsonb_array_elements(r.messages) m"
        "        WHERE m->>'role' = 'assistant') AS answers,"
        " (SELECT count(*) FROM ai_tasks t WHERE t.run_id = r.id AND t.status = 'completed')"
        "  AS done FROM ai_runs r"
    )
    lost = int(running) + sum(max(0, r["done"] - r["answers"]) for r in rows)
    duplicated = sum(max(0, r["answers"] - r["done"]) + max(0, r["done"] - 1) for r in rows)
    return lost, duplicated


async def _run(url: str, quick: bool) -> dict[str, Any]:
    instances = QUICK_INSTANCES if quick else INSTANCES
    one = await _throughput(url, 1, instances)
    two = await _throughput(url, 2, instances)
    figures: dict[str, Any] = {
        "instances": instances,
        "tokens_per_s_1": one["tokens_per_s"],
        "tokens_per_s_2": two["tokens_per_s"],
        "speedup": round(two["tokens_per_s"] / one["tokens_per_s"], 2),
        "cpu_us_per_token_1": one["cpu_us_per_token"],
        "cpu_us_per_token_2": two["cpu_us_per_token"],
        "cores": os.cpu_count(),
    }
    fresh = await _create(url)
    try:
        figures.update(await kill_test(fresh))
    finally:
        await _drop(url, fresh)
    return figures


def run(*, quick: bool = False, database: str | None = None) -> dict[str, Any]:
    """Run the benchmark against the PostgreSQL server of ``database``; return figures."""
    url = database or os.environ.get("PROMPTACTORS_DATABASE_URL") or ""
    if not url.startswith(("postgresql://", "postgres://")):
        raise InvalidInput("bench scale needs a PostgreSQL server: -d postgresql://user@host/db")
    return asyncio.run(_run(url, quick))

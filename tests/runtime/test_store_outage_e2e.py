"""The runtime through a real PostgreSQL outage (the test's own cluster is stopped mid-run
and restarted), through the public API with the simulated provider.

The turn contract: every accepted turn ends with exactly one outcome (an answer, or a
clean failure caused by ``StoreUnavailable``); no caller hangs; once things settle the
database has no run or task left ``running``, no duplicated assistant message, and each
completed task holds the answer its caller got.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from promptactors import (
    PromptDefinition,
    RuntimeSettings,
    StoreNotWritable,
    StoreUnavailable,
    open_runtime,
)
from promptactors.store import open_store

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

N = 50
LATE = 10
OUTAGE = 3.0
BOUND = 120

PROMPT = PromptDefinition.model_validate(
    {
        "id": "outage",
        "name": "Outage",
        "messages": [{"role": "user", "content": "Say something about {{topic}}."}],
        "variables": [{"name": "topic", "default": "databases"}],
        "settings": {"model": "simulated"},
    }
)


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``error`` is, or was caused by, a ``kind``."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@pytest.mark.trio  # the asyncio bridge is covered by the store and tracker outage tests
async def test_turns_survive_a_database_outage_with_one_outcome_each(pg_cluster: Any) -> None:
    """50 instances mid-turn and 10 turns started during a 3 s stop of PostgreSQL: each
    accepted turn is answered or fails on StoreUnavailable; the rows agree afterwards."""
    settings = RuntimeSettings(
        database_url=pg_cluster.url,
        simulated_tokens=20,
        simulated_latency=0.05,
        retry_backoff=0.0,
        turn_timeout=60,
        heartbeat_interval=0.5,
    )
    answers: dict[str, Any] = {}  # instance -> TurnResult
    failures: dict[str, BaseException] = {}  # instance -> error of an accepted turn
    refused: dict[str, BaseException] = {}  # instance -> error before a turn was accepted

    async def one_turn(rt: Any, name: str) -> None:
        try:
            inst = await rt.start_instance(prompt=PROMPT, instance_id=name)
            ticket = await inst.start_turn()
        except Exception as exc:  # not accepted: must be a clean store refusal
            refused[name] = exc
            return
        try:
            answers[name] = await ticket.wait(BOUND / 2)
        except Exception as exc:
            failures[name] = exc

    with anyio.fail_after(BOUND):
        async with open_runtime(settings) as rt:
            async with anyio.create_task_group() as tg:
                for i in range(N):
                    tg.start_soon(one_turn, rt, f"inst-{i}")
                await anyio.sleep(0.2)
                await anyio.to_thread.run_sync(pg_cluster.stop)
                for i in range(LATE):
                    tg.start_soon(one_turn, rt, f"late-{i}")
                await anyio.sleep(OUTAGE)
                await anyio.to_thread.run_sync(pg_cluster.start)
            await rt.tracker.flush(timeout=30)
        store = await open_store(pg_cluster.url)
        try:
            runs = {run.instance_id: run for run in await store.list_runs(limit=1000)}
            tasks = {run.instance_id: await store.list_tasks(run.id) for run in runs.values()}
        finally:
            await store.close()

    assert len(answers) + len(failures) + len(refused) == N + LATE
    ended = {**failures, **refused}
    unclean = {k: repr(e) for k, e in ended.items() if not _caused_by(e, StoreUnavailable)}
    assert not unclean, unclean
    assert answers, "no turn was answered at all"
    assert [r.id for r in runs.values() if r.status == "running"] == []
    for name, result in answers.items():
        run = runs[name]
        assistant = [m for m in run.messages if m["role"] == "assistant"]
        assert [m["content"] for m in assistant] == [result.text], name
        done = [t for t in tasks[name] if t.status == "completed"]
        assert [(t.id, t.response_text) for t in done] == [(result.task_id, result.text)], name
        assert all(t.status != "running" for t in tasks[name]), name
    for name in refused:  # nothing half-created for a turn that was never accepted
        assert all(t.status != "running" for t in tasks.get(name, [])), name


@pytest.mark.trio
async def test_a_turn_on_a_read_only_database_fails_fast_naming_the_cause(
    tmp_path: Path,
) -> None:
    """On a database file that cannot be written, a turn fails within seconds with
    StoreNotWritable (or an error caused by it) saying the file is read-only."""
    path = tmp_path / "ro.db"
    settings = RuntimeSettings(
        database_url=f"sqlite:///{path}", simulated_tokens=2, simulated_latency=0.0
    )
    with anyio.fail_after(BOUND):
        async with open_runtime(settings) as rt:
            await (await rt.start_instance(prompt=PROMPT)).execute()
    with read_only(path):
        with anyio.move_on_after(15):  # the runtime's exit is bounded too
            async with open_runtime(settings) as rt:
                inst = await rt.start_instance(prompt=PROMPT)
                error: BaseException | None = None
                try:
                    await inst.execute(timeout=5)
                except Exception as exc:
                    error = exc
        assert error is not None
        assert _caused_by(error, StoreNotWritable), repr(error)
        assert "read-only" in str(error) or "read-only" in str(error.__cause__)


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` made unwritable: mode 0444, and immutable as root (who ignores modes)."""
    path.chmod(0o444)
    chattr = shutil.which("chattr")
    immutable = os.geteuid() == 0
    if immutable:
        if chattr is None:
            pytest.skip("running as root, which ignores file modes, and no chattr to use")
        done = subprocess.run([chattr, "+i", str(path)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"running as root and chattr +i failed: {done.stderr.decode().strip()}")
    try:
        yield
    finally:
        if immutable and chattr is not None:
            subprocess.run([chattr, "-i", str(path)], check=False)
        path.chmod(0o644)

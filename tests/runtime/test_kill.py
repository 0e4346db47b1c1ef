"""Scale-out under failure: a runtime process killed, or paused, while another lives.

The kill test runs two real runtime processes on one fresh PostgreSQL database with 2 s
leases (``benchmarks/scale.py`` measures the same scenario for ``bench scale``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import anyio
import pytest
import structlog

from promptactors import InstanceHandle, RuntimeSettings, open_runtime
from promptactors._exceptions import PromptActorsError, StaleFence
from promptactors.cli._bench import load_benchmark
from promptactors.store import open_store
from promptactors.testing import Pause, ScriptedProvider


@pytest.mark.postgres
def test_a_killed_runtime_is_taken_over_without_double_owners_or_lost_turns(
    postgres_url: str,
) -> None:
    """SIGKILL one of two runtimes mid-load: the survivor takes over all its runs within
    the lease + 2 s; no (run, fence) ever had two owners; no turn lost or duplicated."""
    scale = load_benchmark("scale")

    figures = asyncio.run(scale.kill_test(postgres_url))

    assert figures["runs_taken_over"] > 0
    assert figures["takeover_s"] is not None
    assert figures["takeover_s"] <= figures["lease_s"] + 2
    assert figures["double_owned"] == 0
    assert figures["turns_lost"] == 0
    assert figures["turns_duplicated"] == 0
    assert figures["survivor_turn_errors"] == 0


@pytest.mark.trio
async def test_a_paused_runtime_cannot_write_over_its_successor(tmp_path: Path) -> None:
    """A run taken over while its turn streams: the old owner's answer is refused (stale
    fence) and never lands in the run; the caller hears ``StaleFence`` (fenced out).
    """
    url = f"sqlite:///{tmp_path / 'p.db'}"
    provider = ScriptedProvider([["Hel", Pause(0.6), "lo"]] * 5)
    settings = RuntimeSettings(database_url=url, executor_id="paused", max_attempts=1)
    with anyio.fail_after(20):
        store = await open_store(url, migrate=True)
    async with store, open_runtime(settings, store=store, provider=provider) as rt:
        with anyio.fail_after(20), structlog.testing.capture_logs() as logs:
            prompt = {"id": "p", "messages": [{"role": "user", "content": "hi"}]}
            inst = await rt.start_instance(prompt=prompt)
            errors: list[BaseException] = []
            async with anyio.create_task_group() as tg:
                tg.start_soon(_execute, inst, errors)
                await anyio.sleep(0.3)  # the task row is committed; the answer streams
                (run,) = await store.list_runs()
                # As if this process had paused past its lease: another executor reclaims.
                with sqlite3.connect(tmp_path / "p.db") as db:
                    db.execute("UPDATE ai_runs SET lease_expires_at = '2000-01-01T00:00:00'")
                (taken,) = await store.reclaim_expired("successor", 30.0)
                assert taken.fence == run.fence + 1
                await anyio.sleep(1.0)  # the stream has ended and its answer was refused
                tg.cancel_scope.cancel()
            run = await store.get_run(run.id)
            assert (run.owner_id, run.fence, run.messages) == ("successor", 2, ())
            assert "completed" not in [t.status for t in await store.list_tasks(run.id)]
            assert any(e["event"] == "run_taken_over" for e in logs)
            assert [type(e) for e in errors] == [StaleFence]


async def _execute(inst: InstanceHandle, errors: list[BaseException]) -> None:
    try:
        await inst.execute()
    except PromptActorsError as exc:
        errors.append(exc)

"""Stopping a load early, from the library: cancelling ``run_load`` or its monitor's
``stop()`` ends the turns in flight (streaming or queued for admission) at once, and no
run or task row is left ``running``."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from promptactors import LoadMonitor, run_load

from ._turn_helpers import PROMPT, running_rows, runtime

pytestmark = pytest.mark.anyio

N = 1200  # more than the load stops at once: the queued ones are stopped in waves


async def _load_until_some_finished(how: str, tmp_path: Path) -> None:
    async with runtime(tmp_path, tokens=20, latency=0.01, max_active_turns=20) as rt:
        monitor = LoadMonitor()
        report = None
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                ten_done = anyio.Event()

                def progress(started: int, done: int, failed: int) -> None:
                    if done >= 10:
                        ten_done.set()

                async def load() -> None:
                    nonlocal report
                    report = await run_load(
                        rt, instances=N, prompt=PROMPT, monitor=monitor, progress=progress
                    )

                tg.start_soon(load)
                await ten_done.wait()
                if how == "cancel":
                    tg.cancel_scope.cancel()
                else:
                    monitor.stop()
        if how == "stop":
            assert report is not None
            assert report.partial
            assert 10 <= report.completed < N
            assert report.errors == 0
            assert report.cancelled == N - report.completed
        assert await running_rows(rt) == []
        assert await rt.instance_count() == 0


@pytest.mark.parametrize("how", ["cancel", "stop"])
async def test_a_stopped_load_leaves_no_running_row(tmp_path: Path, how: str) -> None:
    """Cancelled from outside, or stopped by its monitor, mid-run with turns streaming and
    turns queued: every turn ends, every run and task row is closed, no stop outlasts its
    timeout (no instance is killed) and no write goes unconfirmed."""
    with capture_logs() as logs:
        await _load_until_some_finished(how, tmp_path)
    assert [e for e in logs if e["log_level"] in ("warning", "error", "critical")] == []

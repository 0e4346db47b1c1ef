"""``run_load`` end to end on the simulated provider: streamed figures, monitor, stop."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from promptactors import InvalidInput, LoadMonitor, RuntimeSettings, open_runtime, run_load


def settings(tmp_path: Path, *, tokens: int = 5, latency: float = 0.0) -> RuntimeSettings:
    return RuntimeSettings(
        database_url=f"sqlite:///{tmp_path}/load.db",
        simulated_tokens=tokens,
        simulated_latency=latency,
    )


@pytest.mark.trio
async def test_itl_and_tpot_come_from_the_chunks_the_driver_receives(tmp_path: Path) -> None:
    """With 10 ms between tokens, chunk gaps and TPOT are about 10 ms, TTFT below E2E."""
    async with open_runtime(settings(tmp_path, tokens=6, latency=0.01)) as rt:
        report = await run_load(rt, instances=5, slo={"ttft": 5.0})

    assert (report.completed, report.errors, report.partial) == (5, 0, False)
    assert report.itl.n >= 5
    assert report.itl.p50 is not None
    assert 0.005 <= report.itl.p50 <= 0.1
    assert report.tpot.p50 is not None
    assert 0.005 <= report.tpot.p50 <= 0.1
    assert report.ttft.max is not None
    assert report.e2e.p50 is not None
    assert report.ttft.p50 is not None
    assert report.ttft.p50 < report.e2e.p50
    assert (report.ttft_p50, report.total_p99) == (report.ttft.p50, report.e2e.p99)
    assert report.goodput.turns == 5
    assert [t.index for t in report.turns] == list(range(5))
    assert all(t.run_id for t in report.turns)


@pytest.mark.trio
async def test_parameters_name_the_prompt_provider_model_and_database(tmp_path: Path) -> None:
    """The report says what ran: prompt, provider, model, instances, rate, database."""
    async with open_runtime(settings(tmp_path)) as rt:
        report = await run_load(rt, instances=2, rate=1000.0)

    p = report.parameters
    assert (p["prompt"], p["provider"], p["model"]) == ("demo (built in)", "simulated", "simulated")
    assert (p["instances"], p["rate"], p["processes"]) == (2, 1000.0, 1)
    assert p["database"] == f"sqlite:///{tmp_path}/load.db"


@pytest.mark.trio
async def test_monitor_counts_live_and_stop_returns_a_partial_report(tmp_path: Path) -> None:
    """``monitor.stop()`` ends the load at once: a partial report with the turns cut short."""
    monitor = LoadMonitor()
    three_done = anyio.Event()
    seen: list[int] = []

    def progress(started: int, done: int, failed: int) -> None:
        if done >= 3:
            three_done.set()

    async def stop_soon() -> None:
        await three_done.wait()
        seen.append(monitor.in_flight)
        monitor.stop()

    async with open_runtime(settings(tmp_path, tokens=5, latency=0.01)) as rt:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(stop_soon)
                report = await run_load(
                    rt, instances=10_000, rate=200.0, monitor=monitor, progress=progress
                )

    assert report.partial
    assert report.completed >= 3
    assert report.cancelled == len(report.turns) - report.completed - report.errors
    assert len(report.turns) < 10_000
    assert seen
    assert seen[0] >= 0


@pytest.mark.trio
async def test_progress_callback_still_hears_every_finished_turn(tmp_path: Path) -> None:
    """The original ``progress(started, done, failed)`` callback is called per finished turn."""
    calls: list[tuple[int, int, int]] = []
    async with open_runtime(settings(tmp_path)) as rt:
        await run_load(rt, instances=4, progress=lambda *a: calls.append(a))

    assert len(calls) == 4
    assert calls[-1][1:] == (4, 0)


@pytest.mark.trio
async def test_unknown_slo_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """An SLO on an unknown figure raises InvalidInput naming it."""
    async with open_runtime(settings(tmp_path)) as rt:
        with pytest.raises(InvalidInput, match="unknown SLO 'speed'"):
            await run_load(rt, instances=1, slo={"speed": 1.0})

"""ChildSpec.on_terminated: called once when a child stops for good, saying why."""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from promptactors.supervisors import (
    Backoff,
    ChildSpec,
    DynamicSupervisor,
    Restart,
    Supervisor,
    Termination,
    open_supervisor,
)

from ._helpers import Crash, Journal, StopSelf, Worker, expect_escalation, ref

pytestmark = pytest.mark.trio


def _spec(
    label: str,
    journal: Journal,
    *,
    restart: Restart = "permanent",
    shutdown: float | None = 5.0,
    hook_seconds: float = 0.0,
    **options: Any,
) -> ChildSpec:
    async def on_terminated(why: Termination) -> None:
        journal.add(f"terminated:{label}:{why}")
        if hook_seconds:
            await anyio.sleep(hook_seconds)
            journal.add(f"hook_done:{label}")

    return ChildSpec(
        label,
        lambda: Worker(label, journal, **options),
        restart=restart,
        shutdown=shutdown,
        on_terminated=on_terminated,
    )


def _terminations(journal: Journal) -> list[str]:
    return [e for e in journal.events if e.startswith("terminated:")]


async def test_a_restart_is_not_a_termination_but_a_stop_is_one(autojump_clock: Any) -> None:
    """A crash that is restarted calls nothing; terminate_child calls the hook once with
    'stopped', after on_stop ran; the supervisor's shutdown does not call it again."""
    journal = Journal()
    sup = Supervisor([_spec("a", journal), _spec("b", journal)])
    async with open_supervisor(sup):
        await ref(sup, "a").tell(Crash())
        await journal.wait_count("start:a", 2)
        assert _terminations(journal) == []
        await sup.terminate_child("a")
        assert journal.events[-2:] == ["stop:a", "terminated:a:stopped"]
    assert _terminations(journal) == ["terminated:a:stopped", "terminated:b:stopped"]


async def test_a_transient_childs_normal_exit_is_exited(autojump_clock: Any) -> None:
    """A transient child that stops itself is not restarted: the hook says 'exited'."""
    journal = Journal()
    dyn = DynamicSupervisor()
    async with open_supervisor(dyn):
        child = await dyn.start_child(_spec("t", journal, restart="transient"))
        await child.tell(StopSelf())  # type: ignore[union-attr]
        await journal.wait_count("terminated:t:exited", 1)
    assert _terminations(journal) == ["terminated:t:exited"]


async def test_a_child_killed_after_its_shutdown_timeout_is_killed(autojump_clock: Any) -> None:
    """on_stop hangs past the shutdown timeout: the child is killed, the hook says
    'killed' — it is the only code that runs for the child after the kill."""
    journal = Journal()
    sup = Supervisor([_spec("slow", journal, shutdown=2.0, stop_seconds=math.inf)])
    async with open_supervisor(sup):
        began = anyio.current_time()
        await ref(sup, "slow").stop()
        assert anyio.current_time() - began == pytest.approx(2.0)
    assert _terminations(journal) == ["terminated:slow:killed"]


async def test_the_child_whose_crash_escalates_gave_up_and_siblings_stopped(
    autojump_clock: Any,
) -> None:
    """max_restarts=0: the crashed child will never run again ('gave_up', no on_stop ran
    for it); its running siblings are stopped gracefully ('stopped'), in reverse order."""
    journal = Journal()
    sup = Supervisor([_spec(x, journal) for x in "abc"], max_restarts=0)

    async def crash_b() -> None:
        await ref(sup, "b").tell(Crash())

    await expect_escalation(sup, crash_b)
    assert _terminations(journal) == [
        "terminated:c:stopped",
        "terminated:b:gave_up",
        "terminated:a:stopped",
    ]


async def test_a_hook_is_bounded_by_the_shutdown_timeout_and_its_errors_are_logged(
    autojump_clock: Any,
) -> None:
    """A hook still running after the child's shutdown timeout is cancelled (logged); a
    hook that raises is logged; neither stops the supervisor."""
    journal = Journal()

    async def failing(why: Termination) -> None:
        raise RuntimeError("hook bug")

    sup = Supervisor(
        [
            _spec("slow", journal, shutdown=3.0, hook_seconds=math.inf),
            ChildSpec("bad", lambda: Worker("bad", journal), on_terminated=failing),
        ]
    )
    with capture_logs() as logs:
        async with open_supervisor(sup):
            began = anyio.current_time()
            await sup.terminate_child("slow")
            assert anyio.current_time() - began == pytest.approx(3.0)
            await sup.terminate_child("bad")
            assert sup.running
    events = [e["event"] for e in logs]
    assert "on_terminated_timed_out" in events
    assert "on_terminated_failed" in events
    assert journal.count("hook_done:slow") == 0


async def test_a_child_stopped_while_it_waits_to_restart_is_stopped(autojump_clock: Any) -> None:
    """A crashed child waiting out its backoff is terminated: no restart comes, and the
    hook (the only code that runs for it now) says 'stopped'."""
    journal = Journal()
    sup = Supervisor([_spec("a", journal)], backoff=Backoff(initial=10.0, jitter=0.0))
    async with open_supervisor(sup):
        await ref(sup, "a").tell(Crash())
        await journal.wait_count("crash:a", 1)
        await anyio.sleep(1.0)  # inside the 10 s backoff
        await sup.terminate_child("a")
        assert _terminations(journal) == ["terminated:a:stopped"]
        await anyio.sleep(20.0)
        assert journal.count("start:a") == 1

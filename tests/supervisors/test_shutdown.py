"""Stopping children: graceful (on_stop, queued messages first) or forced after the
child's shutdown timeout; ``shutdown=0`` kills at once, ``shutdown=None`` waits."""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest
from anyio.abc import TaskStatus
from structlog.testing import capture_logs

from promptactors import ActorDead
from promptactors.supervisors import ChildSpec, Supervisor, open_supervisor

from ._helpers import (
    WAIT,
    Busy,
    Crash,
    Hang,
    Journal,
    Note,
    Ping,
    ref,
    subtree,
    wait_until,
    worker,
)


@pytest.mark.trio
async def test_shutdown_stops_children_in_reverse_start_order_running_on_stop(
    autojump_clock: Any,
) -> None:
    """Leaving open_supervisor runs every child's on_stop, last started first."""
    journal = Journal()
    sup = Supervisor([worker(x, journal) for x in "abcd"])
    async with open_supervisor(sup):
        assert journal.events == ["start:a", "start:b", "start:c", "start:d"]
        refs = [ref(sup, x) for x in "abcd"]
    assert journal.events[4:] == ["stop:d", "stop:c", "stop:b", "stop:a"]
    assert not any(r.is_alive for r in refs)
    assert not sup.running
    with pytest.raises(ActorDead):
        await refs[0].tell(Ping())


@pytest.mark.trio
async def test_shutdown_handles_queued_messages_before_on_stop(autojump_clock: Any) -> None:
    """A terminal stop lets the child drain its mailbox, then runs on_stop."""
    journal = Journal()
    sup = Supervisor([worker("a", journal)])
    async with open_supervisor(sup):
        a = ref(sup, "a")
        await a.tell(Busy(1.0))
        for n in range(5):
            await a.tell(Note(n))
        assert a.queued >= 5
    assert journal.events[1:] == [*(f"note:a:{n}:1" for n in range(5)), "stop:a"]


@pytest.mark.trio
async def test_ref_stop_drains_then_stops_and_refuses_new_messages(autojump_clock: Any) -> None:
    """``ActorRef.stop`` on a supervised child handles what is queued, runs on_stop, and the
    child is not restarted."""
    journal = Journal()
    sup = Supervisor([worker("a", journal), worker("b", journal)])
    async with open_supervisor(sup):
        a = ref(sup, "a")
        await a.tell(Busy(1.0))
        await a.tell(Note(1))
        with anyio.fail_after(WAIT):
            await a.stop()
        assert journal.events[2:] == ["note:a:1:1", "stop:a"]
        with pytest.raises(ActorDead):
            await a.tell(Note(2))
        assert {row.id: row.running for row in sup.which_children()} == {"a": False, "b": True}
        assert await ref(sup, "b").ask(Ping()) == ("b", 1)
    assert journal.count("start:a") == 1


@pytest.mark.trio
async def test_an_on_stop_that_hangs_is_killed_after_the_shutdown_timeout(
    autojump_clock: Any,
) -> None:
    """A child whose on_stop overruns its shutdown timeout is killed when it expires."""
    journal = Journal()
    sup = Supervisor(
        [worker("a", journal), worker("slow", journal, shutdown=3.0, stop_seconds=math.inf)]
    )
    with capture_logs() as logs:
        async with open_supervisor(sup):
            began = anyio.current_time()
    assert anyio.current_time() - began == pytest.approx(3.0)
    assert journal.events[2:] == ["stop:slow", "stop:a"]
    killed = [e for e in logs if e["event"] == "child_killed"]
    assert [(e["child"], e["timeout"]) for e in killed] == [("slow", 3.0)]


@pytest.mark.trio
async def test_a_hanging_handler_is_killed_and_pending_asks_fail_with_actor_dead(
    autojump_clock: Any,
) -> None:
    """Killing a child stuck in a handler fails its in-flight and queued asks with ActorDead."""
    journal = Journal()
    sup = Supervisor([worker("a", journal, shutdown=2.0)])
    outcomes: dict[str, object] = {}

    async def ask(key: str, message: object) -> None:
        try:
            outcomes[key] = await a.ask(message, timeout=None)  # type: ignore[arg-type]
        except ActorDead as exc:
            outcomes[key] = exc

    async with anyio.create_task_group() as askers, open_supervisor(sup):
        a = ref(sup, "a")
        askers.start_soon(ask, "in_flight", Hang())
        await journal.wait_count("hanging:a", 1)
        askers.start_soon(ask, "queued", Ping())
        await wait_until(lambda: a.queued == 1)
        began = anyio.current_time()
    assert anyio.current_time() - began == pytest.approx(2.0)
    assert isinstance(outcomes["in_flight"], ActorDead)
    assert isinstance(outcomes["queued"], ActorDead)
    assert "stop:a" not in journal.events


@pytest.mark.trio
async def test_shutdown_zero_kills_at_once_without_on_stop(autojump_clock: Any) -> None:
    """A child with shutdown=0 is killed immediately: no drain, no on_stop."""
    journal = Journal()
    sup = Supervisor([worker("a", journal, shutdown=0)])
    async with open_supervisor(sup):
        a = ref(sup, "a")
        await a.tell(Busy(10.0))
        await a.tell(Note(1))
        began = anyio.current_time()
    assert anyio.current_time() == began
    assert journal.events == ["start:a"]


@pytest.mark.trio
async def test_shutdown_none_waits_for_a_slow_on_stop(autojump_clock: Any) -> None:
    """A child with shutdown=None is given all the time its on_stop takes."""
    journal = Journal()
    sup = Supervisor([worker("a", journal, shutdown=None, stop_seconds=1000.0)])
    async with open_supervisor(sup):
        began = anyio.current_time()
    assert anyio.current_time() - began == pytest.approx(1000.0)
    assert journal.events == ["start:a", "stop:a", "stopped:a"]


@pytest.mark.trio
async def test_ref_stop_timeout_applies_to_that_stop_only(autojump_clock: Any) -> None:
    """``ref.stop(timeout=...)`` bounds that one stop; the child's spec keeps its own
    shutdown timeout for later incarnations."""
    journal = Journal()
    sup = Supervisor([worker("a", journal, shutdown=5.0, stop_seconds=math.inf)])
    async with open_supervisor(sup):
        began = anyio.current_time()
        await ref(sup, "a").stop(timeout=1.0)
        assert anyio.current_time() - began == pytest.approx(1.0)
        await sup.restart_child("a")
        began = anyio.current_time()
    assert anyio.current_time() - began == pytest.approx(5.0)


@pytest.mark.trio
async def test_shutdown_is_idempotent_and_a_no_op_before_run(autojump_clock: Any) -> None:
    """``Supervisor.shutdown`` may be called twice, or on a supervisor that never ran."""
    journal = Journal()
    idle = Supervisor([worker("a", journal)])
    await idle.shutdown()
    sup = Supervisor([worker("b", journal)])
    async with open_supervisor(sup):
        await sup.shutdown()
        assert not sup.running
        await sup.shutdown()
    assert journal.events == ["start:b", "stop:b"]
    with pytest.raises(RuntimeError, match="already run"):
        await sup.run()


def _subtree_spec(journal: Journal, *, shutdown: float | None, leaf_stop: float) -> ChildSpec:
    return ChildSpec(
        "sub",
        lambda: Supervisor(
            [worker("leaf", journal, shutdown=None, stop_seconds=leaf_stop)], name="sub"
        ),
        shutdown=shutdown,
    )


@pytest.mark.trio
async def test_a_subtree_that_overruns_its_shutdown_is_killed_with_its_children(
    autojump_clock: Any,
) -> None:
    """A subtree stopped gracefully is killed, children included, when its own shutdown
    timeout passes, even if a child inside would wait without limit."""
    journal = Journal()
    root = Supervisor(
        [worker("a", journal), _subtree_spec(journal, shutdown=2.0, leaf_stop=math.inf)]
    )
    async with open_supervisor(root):
        leaf = ref(subtree(root, "sub"), "leaf")
        began = anyio.current_time()
    assert anyio.current_time() - began == pytest.approx(2.0)
    assert journal.events == ["start:a", "start:leaf", "stop:leaf", "stop:a"]
    assert not leaf.is_alive


@pytest.mark.trio
async def test_a_subtree_with_shutdown_zero_is_killed_at_once(autojump_clock: Any) -> None:
    """``shutdown=0`` on a subtree kills it (and its children) without waiting."""
    journal = Journal()
    root = Supervisor([_subtree_spec(journal, shutdown=0, leaf_stop=100.0)])
    async with open_supervisor(root):
        began = anyio.current_time()
    assert anyio.current_time() == began
    assert "stopped:leaf" not in journal.events


@pytest.mark.trio
async def test_a_subtree_with_shutdown_none_waits_for_its_children(autojump_clock: Any) -> None:
    """``shutdown=None`` on a subtree waits for its children's graceful stops."""
    journal = Journal()
    root = Supervisor([_subtree_spec(journal, shutdown=None, leaf_stop=100.0)])
    async with open_supervisor(root):
        began = anyio.current_time()
    assert anyio.current_time() - began == pytest.approx(100.0)
    assert journal.events == ["start:leaf", "stop:leaf", "stopped:leaf"]


@pytest.mark.trio
async def test_shutdown_kills_a_child_whose_restart_hangs_in_on_start(
    autojump_clock: Any,
) -> None:
    """A shutdown does not wait on a restarting child stuck in on_start."""
    journal = Journal()
    sup = Supervisor(
        [
            worker("a", journal),
            worker("b", journal, start_seconds=lambda attempt: math.inf if attempt > 1 else 0),
        ]
    )
    async with open_supervisor(sup):
        b = ref(sup, "b")
        await b.tell(Crash())
        await journal.wait_count("starting:b", 1)
        began = anyio.current_time()
    assert anyio.current_time() - began < 1.0
    assert journal.events[-2:] == ["starting:b", "stop:a"]
    assert not b.is_alive


@pytest.mark.trio
async def test_a_child_stuck_in_on_crash_is_killed_after_the_shutdown_timeout(
    autojump_clock: Any,
) -> None:
    """A shutdown does not wait longer than the shutdown timeout for a crashed child whose
    on_crash hook is still running."""
    journal = Journal()
    sup = Supervisor([worker("a", journal, shutdown=2.0, crash_seconds=1000.0)])
    async with anyio.create_task_group() as outer:
        host = await outer.start(_host, sup)
        await ref(sup, "a").tell(Crash())
        await journal.wait_count("crash:a", 1)
        began = anyio.current_time()
        with anyio.move_on_after(10.0):
            await sup.shutdown()
        host.cancel()  # the way out if the shutdown hung
    assert anyio.current_time() - began == pytest.approx(2.0)
    assert "crashed:a" not in journal.events
    assert journal.count("start:a") == 1


async def _host(sup: Supervisor, *, task_status: TaskStatus[anyio.CancelScope]) -> None:
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        task_status.started(tg.cancel_scope)


@pytest.mark.trio
async def test_an_error_in_the_block_stops_the_children_and_propagates(
    autojump_clock: Any,
) -> None:
    """An exception raised inside ``open_supervisor`` stops the children gracefully and
    comes out of the block as itself (not wrapped in a group)."""
    journal = Journal()
    sup = Supervisor([worker(x, journal) for x in "ab"])

    async def scenario() -> None:
        async with open_supervisor(sup):
            raise KeyError("from the block")

    with pytest.raises(KeyError, match="from the block"):
        await scenario()
    assert journal.events == ["start:a", "start:b", "stop:b", "stop:a"]

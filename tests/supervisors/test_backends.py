"""The core of supervision on both backends (trio and asyncio), in real time."""

from __future__ import annotations

import math

import anyio
import pytest

from promptactors import ActorDead, ActorRef, AskTimeout
from promptactors.supervisors import (
    Backoff,
    ChildSpec,
    DynamicSupervisor,
    Supervisor,
    open_supervisor,
)

from ._helpers import (
    WAIT,
    Boom,
    Crash,
    Hang,
    Journal,
    Msg,
    Note,
    Ping,
    StopSelf,
    Worker,
    expect_escalation,
    ref,
    worker,
)

pytestmark = pytest.mark.anyio


async def test_one_for_one_restarts_the_crashed_child_on_every_backend() -> None:
    """one_for_one restarts only the crashed child; its ref and queued messages survive."""
    journal = Journal()
    sup = Supervisor([worker(x, journal) for x in "abc"], backoff=Backoff(0.01, jitter=0.0))
    async with open_supervisor(sup):
        b = ref(sup, "b")
        await b.tell(Crash())
        await b.tell(Note(1))
        with anyio.fail_after(WAIT):
            assert await b.ask(Ping()) == ("b", 2)
        assert [(await ref(sup, x).ask(Ping()))[1] for x in "ac"] == [1, 1]
    assert journal.events == [
        *("start:a", "start:b", "start:c", "handled_crash:b:boom", "crash:b"),
        *("start:b", "note:b:1:2"),
        *("stop:c", "stop:b", "stop:a"),
    ]


async def test_one_for_all_restarts_in_start_order_on_every_backend() -> None:
    """one_for_all stops the others in reverse start order and restarts all in order."""
    journal = Journal()
    sup = Supervisor([worker(x, journal) for x in "abc"], strategy="one_for_all")
    async with open_supervisor(sup):
        mark = len(journal.events)
        await ref(sup, "b").tell(Crash())
        await journal.wait_count("start:c", 2)
        assert journal.since(mark) == [
            *("handled_crash:b:boom", "crash:b", "stop:c", "stop:a"),
            *("start:a", "start:b", "start:c"),
        ]


async def test_escalation_through_a_subtree_on_every_backend() -> None:
    """A subtree's escalation is restarted once by its parent, then escalates the root."""
    journal = Journal()
    sub = ChildSpec(
        "sub",
        lambda: Supervisor([worker("leaf", journal)], max_restarts=0, name="sub"),
        shutdown=None,
    )
    root = Supervisor([worker("a", journal), sub], max_restarts=1, period=60.0, name="root")

    async def crash_leaf_twice() -> None:
        for n in (1, 2):
            leaf = root.child("sub")
            assert isinstance(leaf, Supervisor)
            await ref(leaf, "leaf").tell(Crash(f"c{n}"))
            if n == 1:
                await journal.wait_count("start:leaf", 2)

    error = await expect_escalation(root, crash_leaf_twice)
    assert error.supervisor == "root"
    assert isinstance(error.__cause__, Exception)
    assert isinstance(error.__cause__.__cause__, Boom)
    assert journal.events[-1] == "stop:a"


async def test_dynamic_children_on_every_backend() -> None:
    """Temporary dynamic children start, answer, stop themselves and are forgotten; a
    transient one is restarted after a crash."""
    journal = Journal()
    dyn = DynamicSupervisor(max_children=500)
    async with open_supervisor(dyn):
        refs: list[ActorRef[Msg]] = []
        for n in range(300):
            found = await dyn.start_child(worker(f"w{n}", journal, restart="temporary"))
            assert isinstance(found, ActorRef)
            refs.append(found)
        assert dyn.count_children() == 300
        with anyio.fail_after(WAIT):
            assert [(await r.ask(Ping()))[0] for r in refs] == [f"w{n}" for n in range(300)]
            for r in refs:
                await r.tell(StopSelf())
            for r in refs:
                await r.wait_stopped()
        assert dyn.count_children() == 0
        spec = ChildSpec("t", lambda: Worker("t", journal), restart="transient")
        t = await dyn.start_child(spec)
        assert isinstance(t, ActorRef)
        await t.tell(Crash())
        with anyio.fail_after(WAIT):
            assert await t.ask(Ping()) == ("t", 2)


async def test_forced_shutdown_kills_hanging_hooks_on_every_backend() -> None:
    """Children stuck in on_stop or on_crash are killed once their shutdown timeout
    passes, and an ask waiting on a killed child fails with ActorDead."""
    journal = Journal()
    sup = Supervisor(
        [
            worker("stuck_stop", journal, shutdown=0.05, stop_seconds=math.inf),
            worker("stuck_crash", journal, shutdown=0.05, crash_seconds=100.0),
        ]
    )
    with anyio.fail_after(WAIT):
        async with open_supervisor(sup):
            crashing = ref(sup, "stuck_crash")
            await crashing.tell(Crash())
            await journal.wait_count("crash:stuck_crash", 1)
            with pytest.raises(AskTimeout):
                await crashing.ask(Ping(), timeout=0.05)
    assert "crashed:stuck_crash" not in journal.events
    assert journal.events[-1] == "stop:stuck_stop"
    assert not crashing.is_alive


async def test_cancellation_is_not_a_crash_on_every_backend() -> None:
    """Cancelling the scope around a supervisor ends it without restarts or escalation,
    and an ask in flight fails with ActorDead."""
    journal = Journal()
    sup = Supervisor([worker("a", journal), worker("b", journal)], max_restarts=0)
    outcome: list[object] = []

    async def ask_hanging(target: ActorRef[Msg]) -> None:
        try:
            outcome.append(await target.ask(Hang(), timeout=None))
        except ActorDead as exc:
            outcome.append(exc)

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as outer:
            with anyio.CancelScope() as scope:
                async with open_supervisor(sup):
                    outer.start_soon(ask_hanging, ref(sup, "b"))
                    await journal.wait_count("hanging:b", 1)
                    scope.cancel()
                    await anyio.sleep_forever()
    assert len(outcome) == 1
    assert isinstance(outcome[0], ActorDead)
    assert journal.events == ["start:a", "start:b", "hanging:b"]

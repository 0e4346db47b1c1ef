"""Restart intensity: more than max_restarts within period escalates; nested supervisors."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from promptactors import ActorDead, RestartIntensityExceeded
from promptactors.supervisors import Backoff, ChildSpec, Supervisor, open_supervisor

from ._helpers import (
    Boom,
    Busy,
    Crash,
    Journal,
    Ping,
    StartFailed,
    Worker,
    expect_escalation,
    ref,
    subtree,
    worker,
)


@pytest.mark.trio
async def test_more_than_max_restarts_within_period_stops_children_in_reverse_and_escalates(
    autojump_clock: Any,
) -> None:
    """The restart beyond max_restarts within period stops every child in reverse start
    order and raises RestartIntensityExceeded caused by the last crash."""
    journal = Journal()
    sup = Supervisor([worker(x, journal) for x in "abc"], max_restarts=2, period=10.0)
    marks: list[int] = []

    async def crash_b_three_times() -> None:
        b = ref(sup, "b")
        for n in (1, 2):
            await b.tell(Crash(f"crash-{n}"))
            await journal.wait_count("start:b", n + 1)
        marks.append(len(journal.events))
        await b.tell(Crash("crash-3"))

    with capture_logs() as logs:
        error = await expect_escalation(sup, crash_b_three_times)
    assert journal.since(marks[0]) == ["handled_crash:b:crash-3", "crash:b", "stop:c", "stop:a"]
    assert isinstance(error.__cause__, Boom)
    assert error.__cause__.args == ("crash-3",)
    assert (error.supervisor, error.max_restarts, error.period) == ("supervisor", 2, 10.0)
    assert [e["event"] for e in logs].count("child_restarting") == 2
    escalations = [e for e in logs if e["event"] == "restart_intensity_exceeded"]
    assert len(escalations) == 1
    assert escalations[0]["child"] == "b"
    assert not any(row.running for row in sup.which_children())
    assert not sup.running


@pytest.mark.trio
async def test_restarts_spaced_beyond_the_period_do_not_escalate(autojump_clock: Any) -> None:
    """Crashes further apart than period never add up to an escalation."""
    journal = Journal()
    sup = Supervisor([worker("a", journal)], max_restarts=1, period=2.0)
    async with open_supervisor(sup):
        a = ref(sup, "a")
        for n in range(1, 7):
            await a.tell(Crash())
            await journal.wait_count("start:a", n + 1)
            await anyio.sleep(2.5)
        assert await a.ask(Ping()) == ("a", 7)


@pytest.mark.trio
async def test_restarts_inside_the_period_count_across_children(autojump_clock: Any) -> None:
    """The intensity is the supervisor's: crashes of different children add up."""
    journal = Journal()
    sup = Supervisor([worker(x, journal) for x in "abc"], max_restarts=2, period=5.0)

    async def crash_each() -> None:
        for label in "ab":
            await ref(sup, label).tell(Crash())
            await journal.wait_count(f"start:{label}", 2)
        await anyio.sleep(1.0)
        await ref(sup, "c").tell(Crash())

    await expect_escalation(sup, crash_each)
    assert journal.events[-2:] == ["stop:b", "stop:a"]


@pytest.mark.trio
async def test_max_restarts_zero_escalates_on_the_first_crash(autojump_clock: Any) -> None:
    """With max_restarts=0 the first crash of a permanent child escalates."""
    journal = Journal()
    sup = Supervisor([worker("a", journal), worker("b", journal)], max_restarts=0)

    async def crash_b() -> None:
        await ref(sup, "b").tell(Crash())

    await expect_escalation(sup, crash_b)
    assert journal.events == ["start:a", "start:b", "handled_crash:b:boom", "crash:b", "stop:a"]


@pytest.mark.trio
async def test_on_start_failing_on_every_restart_escalates_with_its_error(
    autojump_clock: Any,
) -> None:
    """A child that cannot start again is a restart storm: the escalation's cause is the
    last on_start error."""
    journal = Journal()
    sup = Supervisor([worker("a", journal, fail_start=lambda attempt: attempt > 1)])

    async def crash_a() -> None:
        await ref(sup, "a").tell(Crash())

    error = await expect_escalation(sup, crash_a)
    assert isinstance(error.__cause__, StartFailed)
    assert journal.count("start_failed:a") == 3


@pytest.mark.trio
async def test_run_raises_restart_intensity_exceeded_into_its_task_group(
    autojump_clock: Any,
) -> None:
    """A supervisor run with ``task_group.start(sup.run)`` raises its escalation from run."""
    journal = Journal()
    sup = Supervisor([worker("a", journal)], max_restarts=0)

    async def scenario() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            await ref(sup, "a").tell(Crash())

    with pytest.raises(ExceptionGroup) as raised:
        await scenario()
    assert raised.group_contains(RestartIntensityExceeded)


def _leaf_tree(journal: Journal) -> ChildSpec:
    return ChildSpec(
        "sub",
        lambda: Supervisor([worker("leaf", journal)], max_restarts=0, name="sub"),
        shutdown=None,
    )


@pytest.mark.trio
async def test_a_subtree_escalation_is_its_parents_child_crash_and_is_restarted(
    autojump_clock: Any,
) -> None:
    """When a subtree gives up, its parent restarts the whole subtree from its spec."""
    journal = Journal()
    root = Supervisor([worker("a", journal), _leaf_tree(journal), worker("z", journal)])
    with capture_logs() as logs:
        async with open_supervisor(root):
            first = subtree(root, "sub")
            await ref(first, "leaf").tell(Crash())
            await journal.wait_count("start:leaf", 2)
            second = subtree(root, "sub")
            assert second is not first
            assert not first.running
            assert await ref(second, "leaf").ask(Ping()) == ("leaf", 2)
            assert [row.kind for row in root.which_children()] == ["actor", "supervisor", "actor"]
    restarting = [e for e in logs if e["event"] == "child_restarting"]
    assert [(e["supervisor"], e["child"]) for e in restarting] == [("supervisor", "sub")]
    assert journal.events == [
        *("start:a", "start:leaf", "start:z"),
        *("handled_crash:leaf:boom", "crash:leaf", "start:leaf"),
        *("stop:z", "stop:leaf", "stop:a"),
    ]


@pytest.mark.trio
async def test_a_subtree_escalation_under_rest_for_one_restarts_the_later_siblings(
    autojump_clock: Any,
) -> None:
    """A subtree's escalation under rest_for_one restarts it and the children after it."""
    journal = Journal()
    root = Supervisor(
        [worker("a", journal), _leaf_tree(journal), worker("z", journal)], strategy="rest_for_one"
    )
    async with open_supervisor(root):
        mark = len(journal.events)
        await ref(subtree(root, "sub"), "leaf").tell(Crash())
        await journal.wait_count("start:z", 2)
        assert journal.since(mark) == [
            *("handled_crash:leaf:boom", "crash:leaf", "stop:z"),
            *("start:leaf", "start:z"),
        ]
        assert (await ref(root, "a").ask(Ping()))[1] == 1


@pytest.mark.trio
async def test_escalation_climbs_nested_supervisors_to_the_root(autojump_clock: Any) -> None:
    """A subtree that keeps escalating exhausts its parent's intensity in turn; the root's
    error chains every level down to the crash."""
    journal = Journal()
    root = Supervisor(
        [worker("a", journal), _leaf_tree(journal), worker("z", journal)],
        max_restarts=1,
        name="root",
    )
    marks: list[int] = []

    async def crash_leaf_twice() -> None:
        await ref(subtree(root, "sub"), "leaf").tell(Crash("first"))
        await journal.wait_count("start:leaf", 2)
        marks.append(len(journal.events))
        await ref(subtree(root, "sub"), "leaf").tell(Crash("second"))

    top = await expect_escalation(root, crash_leaf_twice)
    assert journal.since(marks[0]) == [
        *("handled_crash:leaf:second", "crash:leaf"),
        *("stop:z", "stop:a"),
    ]
    assert top.supervisor == "root"
    middle = top.__cause__
    assert isinstance(middle, RestartIntensityExceeded)
    assert middle.supervisor == "sub"
    assert isinstance(middle.__cause__, Boom)
    assert middle.__cause__.args == ("second",)


@pytest.mark.trio
async def test_a_factory_failing_on_restart_escalates_with_its_error(autojump_clock: Any) -> None:
    """A factory that raises when called for a restart is a crash each time; the
    escalation's cause is the factory's error."""
    journal = Journal()
    calls: list[int] = []

    def factory() -> Worker:
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError(f"factory call {len(calls)}")
        return Worker("a", journal)

    sup = Supervisor([ChildSpec("a", factory)], max_restarts=2)

    async def crash_a() -> None:
        await ref(sup, "a").tell(Crash())

    error = await expect_escalation(sup, crash_a)
    assert isinstance(error.__cause__, RuntimeError)
    assert error.__cause__.args == ("factory call 3",)


@pytest.mark.trio
async def test_an_escalation_fails_asks_waiting_for_the_crashed_child(
    autojump_clock: Any,
) -> None:
    """Asks queued for the child whose crash escalated fail with ActorDead, not a hang."""
    journal = Journal()
    sup = Supervisor([worker("a", journal)], max_restarts=0)
    outcomes: list[object] = []

    async def crash_with_asks_queued() -> None:
        a = ref(sup, "a")
        await a.tell(Busy(1.0))
        await a.tell(Crash())

        async def ask() -> None:
            try:
                outcomes.append(await a.ask(Ping()))
            except ActorDead as exc:
                outcomes.append(exc)

        async with anyio.create_task_group() as askers:
            for _ in range(3):
                askers.start_soon(ask)

    await expect_escalation(sup, crash_with_asks_queued)
    assert len(outcomes) == 3
    assert all(isinstance(o, ActorDead) for o in outcomes)


@pytest.mark.trio
async def test_a_subtree_is_stopped_and_restarted_with_its_siblings_by_one_for_all(
    autojump_clock: Any,
) -> None:
    """A sibling's crash under one_for_all shuts a subtree down gracefully and starts a
    fresh one from its spec."""
    journal = Journal()
    sub = ChildSpec(
        "sub", lambda: Supervisor([worker(x, journal) for x in "xy"], name="sub"), shutdown=None
    )
    root = Supervisor([sub, worker("z", journal)], strategy="one_for_all")
    async with open_supervisor(root):
        first = subtree(root, "sub")
        mark = len(journal.events)
        await ref(root, "z").tell(Crash())
        await journal.wait_count("start:z", 2)
        assert journal.since(mark) == [
            *("handled_crash:z:boom", "crash:z"),
            *("stop:y", "stop:x"),
            *("start:x", "start:y", "start:z"),
        ]
        assert subtree(root, "sub") is not first
        assert await ref(subtree(root, "sub"), "y").ask(Ping()) == ("y", 2)


@pytest.mark.trio
async def test_an_escalation_drops_restarts_still_waiting_for_their_backoff(
    autojump_clock: Any,
) -> None:
    """Escalating does not wait for, nor perform, a restart still in its backoff."""
    journal = Journal()
    sup = Supervisor(
        [worker(x, journal) for x in "abc"],
        max_restarts=1,
        backoff=Backoff(initial=30.0, maximum=30.0, jitter=0.0),
    )
    began: list[float] = []

    async def crash_a_then_b() -> None:
        began.append(anyio.current_time())
        await ref(sup, "a").tell(Crash())
        await journal.wait_count("crash:a", 1)
        await ref(sup, "b").tell(Crash())

    await expect_escalation(sup, crash_a_then_b)
    assert anyio.current_time() - began[0] < 1.0
    assert journal.events[3:] == [
        *("handled_crash:a:boom", "crash:a", "handled_crash:b:boom", "crash:b"),
        "stop:c",
    ]
    assert not ref(sup, "a").is_alive

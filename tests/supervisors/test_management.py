"""Managing children by id: terminate_child, restart_child, which_children, child; and
the validation of specs and settings."""

from __future__ import annotations

import random
from typing import Any

import anyio
import pytest

from promptactors import ActorDead, ActorRef, InvalidInput
from promptactors.supervisors import (
    Backoff,
    ChildInfo,
    ChildSpec,
    DynamicSupervisor,
    Supervisor,
    open_supervisor,
)

from ._helpers import (
    WAIT,
    Crash,
    Journal,
    Ping,
    StartFailed,
    StopSelf,
    Worker,
    ref,
    wait_until,
    worker,
)


@pytest.mark.trio
async def test_which_children_lists_every_child_in_start_order(autojump_clock: Any) -> None:
    """``which_children`` has one row per child: id, kind, restart type, running."""
    journal = Journal()
    sup = Supervisor(
        [
            worker("a", journal),
            worker("b", journal, restart="transient"),
            ChildSpec("sub", lambda: Supervisor([worker("leaf", journal)]), shutdown=None),
        ]
    )
    async with open_supervisor(sup):
        rows = sup.which_children()
        assert all(isinstance(row, ChildInfo) for row in rows)
        assert [(r.id, r.kind, r.restart, r.running) for r in rows] == [
            ("a", "actor", "permanent", True),
            ("b", "actor", "transient", True),
            ("sub", "supervisor", "permanent", True),
        ]
        assert sup.count_children() == 3
        assert "running" in repr(rows[0])


@pytest.mark.trio
async def test_terminate_child_stops_it_for_good_and_keeps_its_spec(autojump_clock: Any) -> None:
    """A terminated child runs on_stop, is not restarted, and its spec stays listed."""
    journal = Journal()
    sup = Supervisor([worker(x, journal) for x in "abc"], strategy="one_for_all")
    async with open_supervisor(sup):
        b = ref(sup, "b")
        await sup.terminate_child("b")
        assert not b.is_alive
        assert journal.events[3:] == ["stop:b"]
        assert {r.id: r.running for r in sup.which_children()} == {
            "a": True,
            "b": False,
            "c": True,
        }
        mark = len(journal.events)
        await ref(sup, "a").tell(Crash())
        await journal.wait_count("start:c", 2)
        assert journal.since(mark) == [
            *("handled_crash:a:boom", "crash:a", "stop:c"),
            *("start:a", "start:c"),
        ]
        assert journal.count("start:b") == 1


@pytest.mark.trio
async def test_restart_child_starts_a_terminated_child_with_a_fresh_ref(
    autojump_clock: Any,
) -> None:
    """``restart_child`` starts a terminated child again; its old ref stays dead."""
    journal = Journal()
    sup = Supervisor([worker("a", journal), worker("b", journal)])
    async with open_supervisor(sup):
        old = ref(sup, "b")
        await sup.terminate_child("b")
        fresh = await sup.restart_child("b")
        assert fresh == ref(sup, "b")
        assert fresh != old
        assert not old.is_alive
        assert await ref(sup, "b").ask(Ping()) == ("b", 2)
        assert {r.id: r.running for r in sup.which_children()} == {"a": True, "b": True}


@pytest.mark.trio
async def test_restart_child_restarts_a_transient_child_that_exited_normally(
    autojump_clock: Any,
) -> None:
    """A transient child that stopped itself may be started again with restart_child."""
    journal = Journal()
    sup = Supervisor([worker("t", journal, restart="transient")])
    async with open_supervisor(sup):
        t = ref(sup, "t")
        await t.tell(StopSelf())
        with anyio.fail_after(WAIT):
            await t.wait_stopped()
        assert [r.running for r in sup.which_children()] == [False]
        await sup.restart_child("t")
        assert await ref(sup, "t").ask(Ping()) == ("t", 2)


@pytest.mark.trio
async def test_one_for_all_leaves_a_child_that_stopped_for_good_stopped(
    autojump_clock: Any,
) -> None:
    """A group restart does not bring back a transient sibling that had exited normally."""
    journal = Journal()
    sup = Supervisor(
        [worker("a", journal), worker("t", journal, restart="transient"), worker("c", journal)],
        strategy="one_for_all",
    )
    async with open_supervisor(sup):
        t = ref(sup, "t")
        await t.tell(StopSelf())
        with anyio.fail_after(WAIT):
            await t.wait_stopped()
        mark = len(journal.events)
        await ref(sup, "c").tell(Crash())
        await journal.wait_count("start:c", 2)
        assert await ref(sup, "a").ask(Ping()) == ("a", 2)
        assert journal.since(mark) == [
            *("handled_crash:c:boom", "crash:c", "stop:a"),
            *("start:a", "start:c"),
        ]
        assert {r.id: r.running for r in sup.which_children()} == {
            "a": True,
            "t": False,
            "c": True,
        }


@pytest.mark.trio
async def test_restart_child_of_a_running_child_raises_invalid_input(
    autojump_clock: Any,
) -> None:
    """``restart_child`` refuses a child that is running."""
    journal = Journal()
    sup = Supervisor([worker("a", journal)])
    async with open_supervisor(sup):
        with pytest.raises(InvalidInput, match="is running"):
            await sup.restart_child("a")
    assert journal.count("start:a") == 1
    with pytest.raises(ActorDead):
        await sup.restart_child("a")


@pytest.mark.trio
async def test_terminating_a_temporary_child_forgets_it(autojump_clock: Any) -> None:
    """A temporary child's spec is dropped when it is terminated."""
    journal = Journal()
    sup = Supervisor([worker("a", journal), worker("t", journal, restart="temporary")])
    async with open_supervisor(sup):
        await sup.terminate_child("t")
        assert [r.id for r in sup.which_children()] == ["a"]
        with pytest.raises(LookupError):
            await sup.restart_child("t")


@pytest.mark.trio
async def test_unknown_child_ids_raise_lookup_error(autojump_clock: Any) -> None:
    """``child``, ``terminate_child`` and ``restart_child`` raise LookupError for an
    unknown id."""
    sup = Supervisor()
    async with open_supervisor(sup):
        with pytest.raises(LookupError):
            sup.child("nope")
        with pytest.raises(LookupError):
            await sup.terminate_child("nope")
        with pytest.raises(LookupError):
            await sup.restart_child("nope")


@pytest.mark.trio
async def test_child_before_start_raises_actor_dead(autojump_clock: Any) -> None:
    """A child that has not started yet has no reference."""
    journal = Journal()
    sup = Supervisor([worker("a", journal)])
    with pytest.raises(ActorDead):
        sup.child("a")


@pytest.mark.trio
async def test_start_child_adds_a_child_to_a_static_supervisor(autojump_clock: Any) -> None:
    """``start_child`` on a running supervisor starts and keeps the new child; a duplicate
    id raises InvalidInput."""
    journal = Journal()
    sup = Supervisor([worker("a", journal)])
    async with open_supervisor(sup):
        late = await sup.start_child(worker("late", journal))
        assert late == ref(sup, "late")
        with pytest.raises(InvalidInput, match="already has a child"):
            await sup.start_child(worker("a", journal))
        await ref(sup, "late").tell(Crash())
        assert await ref(sup, "late").ask(Ping()) == ("late", 2)
    assert journal.events[-2:] == ["stop:late", "stop:a"]


def test_supervisor_settings_are_validated() -> None:
    """Bad strategies, intensities and duplicate ids raise InvalidInput."""
    journal = Journal()
    with pytest.raises(InvalidInput):
        Supervisor(strategy="one_for_some")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        Supervisor(max_restarts=-1)
    with pytest.raises(InvalidInput):
        Supervisor(period=0)
    with pytest.raises(InvalidInput, match="already has a child"):
        Supervisor([worker("a", journal), worker("a", journal)])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"id": ""},
        {"restart": "sometimes"},
        {"shutdown": -1.0},
        {"start": "not callable"},
    ],
)
def test_child_specs_are_validated(kwargs: dict[str, Any]) -> None:
    """A spec with an empty id, unknown restart type, negative timeout or no factory is
    refused with InvalidInput."""
    fields: dict[str, Any] = {"id": "a", "start": lambda: Worker("a", Journal())}
    fields.update(kwargs)
    with pytest.raises(InvalidInput):
        ChildSpec(**fields)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": -1.0},
        {"initial": 5.0, "maximum": 1.0},
        {"multiplier": 0.5},
        {"jitter": 1.5},
    ],
)
def test_backoff_settings_are_validated(kwargs: dict[str, Any]) -> None:
    """Backoff refuses a negative initial delay, a maximum below it, a shrinking multiplier
    or a jitter outside [0, 1]."""
    with pytest.raises(InvalidInput):
        Backoff(**kwargs)


def test_backoff_delay_without_jitter_is_exponential_and_capped() -> None:
    """Without jitter the n-th delay is initial * multiplier**(n-1), capped at maximum."""
    backoff = Backoff(initial=0.5, maximum=3.0, multiplier=2.0, jitter=0.0, rng=random.Random(1))
    assert [backoff.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.trio
async def test_terminate_and_restart_child_work_on_a_subtree(autojump_clock: Any) -> None:
    """A subtree can be terminated (its children stop in reverse order) and restarted."""
    journal = Journal()
    sub = ChildSpec(
        "sub", lambda: Supervisor([worker(x, journal) for x in "xy"], name="sub"), shutdown=None
    )
    root = Supervisor([worker("a", journal), sub])
    async with open_supervisor(root):
        first = root.child("sub")
        await root.terminate_child("sub")
        assert journal.events[3:] == ["stop:y", "stop:x"]
        assert [(r.id, r.running) for r in root.which_children()] == [("a", True), ("sub", False)]
        second = await root.restart_child("sub")
        assert isinstance(second, Supervisor)
        assert second is not first
        assert await ref(second, "x").ask(Ping()) == ("x", 2)


@pytest.mark.trio
async def test_a_child_stopped_during_its_backoff_is_not_restarted(autojump_clock: Any) -> None:
    """``ref.stop()`` or ``terminate_child`` while a child waits out its backoff cancels the
    restart; queued asks fail with ActorDead."""
    journal = Journal()
    sup = Supervisor(
        [worker("a", journal), worker("b", journal)],
        backoff=Backoff(initial=10.0, maximum=10.0, jitter=0.0),
    )
    async with open_supervisor(sup):
        a, b = ref(sup, "a"), ref(sup, "b")
        await a.tell(Crash())
        await journal.wait_count("crash:a", 1)
        await a.stop()
        assert not a.is_alive
        with pytest.raises(ActorDead):
            await a.ask(Ping())
        await anyio.sleep(20.0)
        assert journal.count("start:a") == 1
        await b.tell(Crash())
        await journal.wait_count("crash:b", 1)
        await sup.terminate_child("b")
        await anyio.sleep(20.0)
        assert journal.count("start:b") == 1
        assert [(r.id, r.running) for r in sup.which_children()] == [("a", False), ("b", False)]
        restarted = await sup.restart_child("b")
        assert isinstance(restarted, ActorRef)
        assert await restarted.ask(Ping()) == ("b", 2)


@pytest.mark.trio
async def test_restart_child_refuses_a_child_waiting_out_its_backoff(
    autojump_clock: Any,
) -> None:
    """A child between incarnations is restarting, not stopped: restart_child refuses it."""
    journal = Journal()
    sup = Supervisor([worker("a", journal)], backoff=Backoff(initial=5.0, jitter=0.0))
    async with open_supervisor(sup):
        await ref(sup, "a").tell(Crash())
        await journal.wait_count("crash:a", 1)
        with pytest.raises(InvalidInput, match="is running or restarting"):
            await sup.restart_child("a")
        await wait_until(lambda: sup.which_children()[0].running)
        with pytest.raises(InvalidInput, match="is running or restarting"):
            await sup.restart_child("a")
        assert await ref(sup, "a").ask(Ping()) == ("a", 2)


@pytest.mark.trio
async def test_restart_child_that_fails_to_start_raises_and_leaves_it_stopped(
    autojump_clock: Any,
) -> None:
    """If the restarted child's on_start raises, restart_child raises it, the child stays
    stopped, and its reference is dead rather than silent."""
    journal = Journal()
    sup = Supervisor([worker("a", journal, fail_start=lambda attempt: attempt == 2)])
    async with open_supervisor(sup):
        await sup.terminate_child("a")
        with pytest.raises(StartFailed):
            await sup.restart_child("a")
        assert [r.running for r in sup.which_children()] == [False]
        with pytest.raises(ActorDead):
            await ref(sup, "a").ask(Ping())
        await sup.restart_child("a")
        assert await ref(sup, "a").ask(Ping()) == ("a", 2)


def test_backoff_delay_of_a_very_long_storm_stays_at_the_maximum() -> None:
    """Thousands of restarts within the period never overflow the exponential."""
    assert Backoff(initial=1.0, maximum=5.0, jitter=0.0).delay(5000) == 5.0
    assert Backoff(initial=0.0, maximum=5.0, jitter=0.0).delay(5000) == 0.0


def test_dynamic_supervisor_settings_are_validated() -> None:
    """A negative max_children, intensity or period raises InvalidInput."""
    with pytest.raises(InvalidInput):
        DynamicSupervisor(max_children=-1)
    with pytest.raises(InvalidInput):
        DynamicSupervisor(max_restarts=-1)
    with pytest.raises(InvalidInput):
        DynamicSupervisor(period=0)

"""Which children a supervisor restarts, and in which order, per strategy, restart type and
exit kind (OTP's supervisor_SUITE: one_for_one, one_for_all, rest_for_one)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from promptactors import ActorDead, ActorRef
from promptactors.supervisors import Restart, Strategy, Supervisor, open_supervisor

from ._helpers import WAIT, Busy, Crash, CrashLinked, Journal, Ping, StopSelf, ref, worker

STRATEGIES: list[Strategy] = ["one_for_one", "one_for_all", "rest_for_one"]
RESTARTS: list[Restart] = ["permanent", "transient", "temporary"]
EXIT_KINDS = ["normal", "crash", "linked_crash", "killed"]


async def _make_exit(target: ActorRef[Any], kind: str) -> None:
    if kind == "normal":
        await target.tell(StopSelf())
    elif kind == "crash":
        await target.tell(Crash())
    elif kind == "linked_crash":
        await target.tell(CrashLinked())
    else:
        # An external kill (OTP's exit(Pid, kill)): no public API does this to a running
        # child, so reach the kernel cell directly.
        target._cell.kill()


def _expected(strategy: Strategy, restart: Restart, kind: str) -> tuple[bool, list[str]]:
    """Whether b is restarted, and the journal entries that follow b's exit."""
    own = {
        "normal": ["stop:b"],
        "crash": ["handled_crash:b:boom", "crash:b"],
        "linked_crash": ["crash:b"],
        "killed": [],
    }[kind]
    abnormal = kind != "normal"
    restarted = restart == "permanent" or (restart == "transient" and abnormal)
    if not restarted:
        return False, own
    if strategy == "one_for_one":
        return True, [*own, "start:b"]
    if strategy == "one_for_all":
        return True, [*own, "stop:c", "stop:a", "start:a", "start:b", "start:c"]
    return True, [*own, "stop:c", "start:b", "start:c"]


@pytest.mark.trio
@pytest.mark.parametrize("kind", EXIT_KINDS)
@pytest.mark.parametrize("restart", RESTARTS)
@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_strategy_restart_type_and_exit_kind_decide_what_restarts(
    strategy: Strategy, restart: Restart, kind: str, autojump_clock: Any
) -> None:
    """The middle child's exit restarts what its restart type and the strategy say, in order."""
    journal = Journal()
    sup = Supervisor(
        [worker("a", journal), worker("b", journal, restart=restart), worker("c", journal)],
        strategy=strategy,
    )
    restarted, expected = _expected(strategy, restart, kind)
    async with open_supervisor(sup):
        b = ref(sup, "b")
        mark = len(journal.events)
        await _make_exit(b, kind)
        if restarted:
            await journal.wait_for(lambda: len(journal.events) >= mark + len(expected))
            assert await b.ask(Ping()) == ("b", 2)
        else:
            with anyio.fail_after(WAIT):
                await b.wait_stopped()
        for label in ("a", "c"):
            assert (await ref(sup, label).ask(Ping()))[0] == label
        assert journal.since(mark) == expected
        rows = {row.id: row.running for row in sup.which_children()}
        if restart == "temporary":
            assert rows == {"a": True, "c": True}
        else:
            assert rows == {"a": True, "b": restarted, "c": True}


@pytest.mark.trio
async def test_one_for_one_restarts_only_the_crashed_child(autojump_clock: Any) -> None:
    """A crash under one_for_one restarts that child alone; its siblings keep running."""
    journal = Journal()
    sup = Supervisor([worker(x, journal) for x in "abc"], strategy="one_for_one")
    async with open_supervisor(sup):
        await ref(sup, "a").tell(Crash())
        await journal.wait_count("start:a", 2)
        assert [await ref(sup, x).ask(Ping()) for x in "abc"] == [("a", 2), ("b", 1), ("c", 1)]
    assert journal.events == [
        *("start:a", "start:b", "start:c"),
        *("handled_crash:a:boom", "crash:a", "start:a"),
        *("stop:c", "stop:b", "stop:a"),
    ]


@pytest.mark.trio
async def test_one_for_all_restarts_every_child_in_start_order(autojump_clock: Any) -> None:
    """A crash under one_for_all stops the others in reverse start order, then starts all."""
    journal = Journal()
    sup = Supervisor([worker(x, journal) for x in "abcd"], strategy="one_for_all")
    async with open_supervisor(sup):
        mark = len(journal.events)
        await ref(sup, "c").tell(Crash())
        await journal.wait_count("start:d", 2)
        assert journal.since(mark) == [
            *("handled_crash:c:boom", "crash:c"),
            *("stop:d", "stop:b", "stop:a"),
            *("start:a", "start:b", "start:c", "start:d"),
        ]
        assert [await ref(sup, x).ask(Ping()) for x in "abcd"] == [(x, 2) for x in "abcd"]


@pytest.mark.trio
async def test_rest_for_one_restarts_the_crashed_child_and_those_started_after_it(
    autojump_clock: Any,
) -> None:
    """A crash under rest_for_one restarts that child and the later ones, not the earlier."""
    journal = Journal()
    sup = Supervisor([worker(x, journal) for x in "abcd"], strategy="rest_for_one")
    async with open_supervisor(sup):
        mark = len(journal.events)
        await ref(sup, "b").tell(Crash())
        await journal.wait_count("start:d", 2)
        assert journal.since(mark) == [
            *("handled_crash:b:boom", "crash:b"),
            *("stop:d", "stop:c"),
            *("start:b", "start:c", "start:d"),
        ]
        assert [(await ref(sup, x).ask(Ping()))[1] for x in "abcd"] == [1, 2, 2, 2]


@pytest.mark.trio
async def test_one_for_all_stops_and_forgets_temporary_siblings(autojump_clock: Any) -> None:
    """A group restart stops a temporary sibling for good instead of restarting it."""
    journal = Journal()
    sup = Supervisor(
        [worker("a", journal), worker("t", journal, restart="temporary"), worker("c", journal)],
        strategy="one_for_all",
    )
    async with open_supervisor(sup):
        t = ref(sup, "t")
        mark = len(journal.events)
        await ref(sup, "a").tell(Crash())
        await journal.wait_count("start:c", 2)
        assert journal.since(mark) == [
            *("handled_crash:a:boom", "crash:a", "stop:c", "stop:t"),
            *("start:a", "start:c"),
        ]
        assert not t.is_alive
        assert [row.id for row in sup.which_children()] == ["a", "c"]


@pytest.mark.trio
async def test_group_restart_kills_a_sibling_whose_shutdown_times_out_and_restarts_it(
    autojump_clock: Any,
) -> None:
    """A sibling that overruns its shutdown timeout during a group restart is killed, then
    restarted with the group (transient: a kill is an abnormal exit)."""
    journal = Journal()
    sup = Supervisor(
        [
            worker("a", journal),
            worker("slow", journal, restart="transient", shutdown=2.0, stop_seconds=60.0),
        ],
        strategy="one_for_all",
    )
    async with open_supervisor(sup):
        mark = len(journal.events)
        await ref(sup, "a").tell(Crash())
        await journal.wait_count("start:slow", 2, timeout=10)
        assert journal.since(mark) == [
            *("handled_crash:a:boom", "crash:a", "stop:slow"),
            *("start:a", "start:slow"),
        ]
        assert journal.time_of("start:a", 2) - journal.time_of("stop:slow") == pytest.approx(2.0)
        # The killed on_stop is not resumed later: move the clock past its 60 s.
        await ref(sup, "slow").ask(Busy(120.0), timeout=None)
        assert "stopped:slow" not in journal.events
        # Leave without waiting on the slow on_stop.
        await ref(sup, "slow").stop(timeout=0)


@pytest.mark.trio
async def test_on_start_failing_during_a_restart_is_a_crash_and_is_retried(
    autojump_clock: Any,
) -> None:
    """When on_start raises in a restart, the supervisor counts a crash and restarts again."""
    journal = Journal()
    sup = Supervisor([worker("a", journal, fail_start=lambda attempt: attempt == 2)])
    async with open_supervisor(sup):
        a = ref(sup, "a")
        await a.tell(Crash())
        await journal.wait_count("start:a", 2)
        assert journal.events == [
            *("start:a", "handled_crash:a:boom", "crash:a"),
            *("start_failed:a", "crash:a", "start:a"),
        ]
        assert await a.ask(Ping()) == ("a", 2)


@pytest.mark.trio
async def test_an_on_stop_that_raises_after_a_normal_exit_counts_as_a_crash(
    autojump_clock: Any,
) -> None:
    """A transient child whose on_stop raises after stop_self is restarted (a crash)."""
    journal = Journal()
    sup = Supervisor([worker("t", journal, restart="transient", fail_stop=True)])
    async with open_supervisor(sup):
        t = ref(sup, "t")
        await t.tell(StopSelf())
        assert await t.ask(Ping()) == ("t", 2)
        await sup.terminate_child("t")
    assert journal.events == ["start:t", "stop:t", "crash:t", "start:t", "stop:t", "crash:t"]


@pytest.mark.trio
async def test_a_group_restart_counts_as_one_restart(autojump_clock: Any) -> None:
    """Restarting every child under one_for_all adds one restart to the intensity, not one
    per child."""
    journal = Journal()
    sup = Supervisor([worker(x, journal) for x in "abcd"], strategy="one_for_all", max_restarts=1)
    async with open_supervisor(sup):
        await ref(sup, "a").tell(Crash())
        await journal.wait_count("start:d", 2)
        assert [(await ref(sup, x).ask(Ping()))[1] for x in "abcd"] == [2, 2, 2, 2]
        assert sup.running


@pytest.mark.trio
async def test_asks_queued_for_a_child_that_is_not_restarted_fail_with_actor_dead(
    autojump_clock: Any,
) -> None:
    """When a temporary child crashes, asks waiting in its mailbox fail with ActorDead."""
    journal = Journal()
    sup = Supervisor([worker("t", journal, restart="temporary")])
    outcomes: list[object] = []
    async with open_supervisor(sup):
        t = ref(sup, "t")
        await t.tell(Busy(1.0))
        await t.tell(Crash())

        async def ask() -> None:
            try:
                outcomes.append(await t.ask(Ping()))
            except ActorDead as exc:
                outcomes.append(exc)

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(ask)
    assert len(outcomes) == 3
    assert all(isinstance(o, ActorDead) for o in outcomes)


@pytest.mark.trio
@pytest.mark.parametrize(("strategy", "crashing"), [("one_for_all", "atc"), ("rest_for_one", "at")])
async def test_siblings_that_crash_together_restart_once_and_temporaries_not_at_all(
    strategy: Strategy, crashing: str, autojump_clock: Any
) -> None:
    """When siblings crash before the supervisor has handled the first exit, one group
    restart brings back the permanent ones once and never a temporary one."""
    journal = Journal()
    sup = Supervisor(
        [worker("a", journal), worker("t", journal, restart="temporary"), worker("c", journal)],
        strategy=strategy,
    )
    async with open_supervisor(sup):
        refs = {x: ref(sup, x) for x in "atc"}
        for label in crashing:
            await refs[label].tell(Crash())
        await journal.wait_count("start:c", 2)
        assert [await ref(sup, x).ask(Ping()) for x in "ac"] == [("a", 2), ("c", 2)]
        assert [row.id for row in sup.which_children()] == ["a", "c"]
        assert not refs["t"].is_alive
    assert journal.count("start:t") == 1
    assert journal.count("start:a") == journal.count("start:c") == 2

"""Restarting: backoff with jitter, the mailbox as a stash across incarnations, restart
storms, and references that stay valid."""

from __future__ import annotations

import random
from typing import Any

import anyio
import pytest

from promptactors import ActorRef, MailboxFull
from promptactors.supervisors import Backoff, DynamicSupervisor, Supervisor, open_supervisor

from ._helpers import (
    WAIT,
    Busy,
    Crash,
    Journal,
    Msg,
    Note,
    Ping,
    StopSelf,
    expect_escalation,
    ref,
    worker,
)


@pytest.mark.trio
async def test_backoff_delays_grow_with_reproducible_jitter(autojump_clock: Any) -> None:
    """Successive restarts wait initial * multiplier**(n-1), capped, spread by seeded jitter."""
    journal = Journal()
    backoff = Backoff(initial=1.0, maximum=6.0, multiplier=2.0, jitter=0.25, rng=random.Random(7))
    expected_rng = random.Random(7)
    expected = [min(6.0, 2.0**n) * (1 + expected_rng.uniform(-0.25, 0.25)) for n in range(5)]
    sup = Supervisor([worker("a", journal)], max_restarts=10, period=1000.0, backoff=backoff)
    async with open_supervisor(sup):
        a = ref(sup, "a")
        for n in range(1, 6):
            await a.tell(Crash())
            await journal.wait_count("start:a", n + 1, timeout=WAIT + 10)
    waits = [journal.time_of("start:a", n + 1) - journal.time_of("crash:a", n) for n in range(1, 6)]
    assert waits == pytest.approx(expected)
    assert waits[:3] == sorted(waits[:3])
    assert waits[3] > 4.0 * 0.75


@pytest.mark.trio
async def test_backoff_starts_over_once_restarts_leave_the_period(autojump_clock: Any) -> None:
    """The backoff exponent counts the child's restarts within the period only."""
    journal = Journal()
    backoff = Backoff(initial=1.0, maximum=60.0, jitter=0.0)
    sup = Supervisor([worker("a", journal)], max_restarts=10, period=10.0, backoff=backoff)
    async with open_supervisor(sup):
        a = ref(sup, "a")
        for n in range(1, 4):
            await a.tell(Crash())
            await journal.wait_count("start:a", n + 1, timeout=WAIT + 10)
        await anyio.sleep(20.0)
        await a.tell(Crash())
        await journal.wait_count("start:a", 5)
    waits = [journal.time_of("start:a", n + 1) - journal.time_of("crash:a", n) for n in range(1, 5)]
    assert waits == pytest.approx([1.0, 2.0, 4.0, 1.0])


@pytest.mark.trio
async def test_messages_sent_during_backoff_reach_the_new_incarnation_in_order(
    autojump_clock: Any,
) -> None:
    """Tells sent while a child waits out its backoff are handled, in order, by the next
    incarnation; the ref used to send them never changes."""
    journal = Journal()
    backoff = Backoff(initial=5.0, jitter=0.0)
    sup = Supervisor([worker("a", journal)], backoff=backoff)
    async with open_supervisor(sup):
        a = ref(sup, "a")
        await a.tell(Crash())
        await journal.wait_count("crash:a", 1)
        crashed_at = anyio.current_time()
        for n in range(10):
            await a.tell(Note(n))
        assert a.queued == 10
        assert a.is_alive
        with anyio.fail_after(WAIT + 5):
            assert await a.ask(Ping(), timeout=None) == ("a", 2)
        assert journal.time_of("start:a", 2) - crashed_at == pytest.approx(5.0)
        assert journal.events[journal.events.index("start:a", 1) + 1 :] == [
            f"note:a:{n}:2" for n in range(10)
        ]
        assert ref(sup, "a") == a


@pytest.mark.trio
async def test_messages_queued_behind_the_crashing_one_go_to_the_next_incarnation(
    autojump_clock: Any,
) -> None:
    """What was queued behind the fatal message is delivered, in order, after the restart;
    the message that crashed the child is not handled again."""
    journal = Journal()
    sup = Supervisor([worker("a", journal)])
    async with open_supervisor(sup):
        a = ref(sup, "a")
        await a.tell(Busy(1.0))
        await a.tell(Note(0))
        await a.tell(Crash("fatal"))
        for n in range(1, 4):
            await a.tell(Note(n))
        assert await a.ask(Ping()) == ("a", 2)
    assert journal.events == [
        *("start:a", "note:a:0:1", "handled_crash:a:fatal", "crash:a", "start:a"),
        *(f"note:a:{n}:2" for n in range(1, 4)),
        "stop:a",
    ]


@pytest.mark.trio
async def test_asks_queued_before_a_crash_are_answered_by_the_next_incarnation(
    autojump_clock: Any,
) -> None:
    """An ask waiting in the mailbox when the child crashes is answered after the restart."""
    journal = Journal()
    sup = Supervisor([worker("a", journal)])
    answers: list[tuple[str, int]] = []
    async with open_supervisor(sup):
        a = ref(sup, "a")
        await a.tell(Busy(1.0))
        await a.tell(Crash())

        async def ask() -> None:
            answers.append(await a.ask(Ping()))

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(ask)
    assert answers == [("a", 2)] * 3


@pytest.mark.trio
async def test_try_tell_while_restarting_raises_mailbox_full_only_when_full(
    autojump_clock: Any,
) -> None:
    """During a restart the bounded mailbox still takes messages until it is full."""
    journal = Journal()
    sup = Supervisor(
        [worker("a", journal, mailbox_size=3)], backoff=Backoff(initial=5.0, jitter=0.0)
    )
    async with open_supervisor(sup):
        a = ref(sup, "a")
        await a.tell(Crash())
        await journal.wait_count("crash:a", 1)
        for n in range(3):
            a.try_tell(Note(n))
        with pytest.raises(MailboxFull):
            a.try_tell(Note(3))
        await journal.wait_count("note:a:2:2", 1, timeout=WAIT + 5)
    assert [e for e in journal.events if e.startswith("note")] == [
        f"note:a:{n}:2" for n in range(3)
    ]


@pytest.mark.trio
async def test_a_normal_exit_of_a_permanent_child_keeps_its_queued_messages(
    autojump_clock: Any,
) -> None:
    """A permanent child that stops itself is restarted and handles what was queued."""
    journal = Journal()
    sup = Supervisor([worker("a", journal)])
    async with open_supervisor(sup):
        a = ref(sup, "a")
        await a.tell(Busy(1.0))
        await a.tell(StopSelf())
        await a.tell(Note(1))
        assert await a.ask(Ping()) == ("a", 2)
    assert journal.events == ["start:a", "stop:a", "start:a", "note:a:1:2", "stop:a"]


@pytest.mark.trio
async def test_a_restart_storm_within_the_intensity_restarts_every_child_once(
    autojump_clock: Any,
) -> None:
    """Many children crashing together are each restarted exactly once."""
    journal = Journal()
    labels = [f"w{n}" for n in range(50)]
    sup = Supervisor([worker(x, journal) for x in labels], max_restarts=50, period=1.0)
    async with open_supervisor(sup):
        for label in labels:
            await ref(sup, label).tell(Crash())
        for label in labels:
            assert await ref(sup, label).ask(Ping()) == (label, 2)
    assert all(journal.count(f"start:{x}") == 2 for x in labels)


@pytest.mark.trio
async def test_a_restart_storm_beyond_the_intensity_escalates_once(autojump_clock: Any) -> None:
    """A storm past max_restarts escalates once and leaves no child running."""
    journal = Journal()
    labels = [f"w{n}" for n in range(50)]
    sup = Supervisor([worker(x, journal) for x in labels], max_restarts=5, period=1.0)
    refs: list[ActorRef[Msg]] = []

    async def crash_all() -> None:
        refs.extend(ref(sup, x) for x in labels)
        for r in refs:
            await r.tell(Crash())

    await expect_escalation(sup, crash_all)
    assert not any(r.is_alive for r in refs)
    assert not any(row.running for row in sup.which_children())
    assert sum(journal.count(f"start:{x}") for x in labels) == 50 + 5


@pytest.mark.trio
async def test_one_childs_backoff_does_not_delay_another_childs_restart(
    autojump_clock: Any,
) -> None:
    """Under one_for_one each child waits out its own backoff only."""
    journal = Journal()
    sup = Supervisor(
        [worker("a", journal), worker("b", journal)],
        backoff=Backoff(initial=10.0, maximum=10.0, jitter=0.0),
    )
    async with open_supervisor(sup):
        began = anyio.current_time()
        await ref(sup, "a").tell(Crash())
        await journal.wait_count("crash:a", 1)
        await anyio.sleep(1.0)
        await ref(sup, "b").tell(Crash())
        await journal.wait_count("start:b", 2, timeout=WAIT + 20)
        await journal.wait_count("start:a", 2, timeout=WAIT + 20)
    assert journal.time_of("start:a", 2) - began == pytest.approx(10.0)
    assert journal.time_of("start:b", 2) - began == pytest.approx(11.0)


@pytest.mark.trio
async def test_a_pending_backoff_does_not_hold_up_other_exits(autojump_clock: Any) -> None:
    """While one dynamic child waits out its backoff, another's normal exit is handled at
    once: it is forgotten and its reference is dead."""
    journal = Journal()
    dyn = DynamicSupervisor(backoff=Backoff(initial=30.0, maximum=30.0, jitter=0.0))
    async with open_supervisor(dyn):
        looping = await dyn.start_child(worker("looping", journal, restart="transient"))
        done = await dyn.start_child(worker("done", journal, restart="temporary"))
        assert isinstance(looping, ActorRef)
        assert isinstance(done, ActorRef)
        await looping.tell(Crash())
        await journal.wait_count("crash:looping", 1)
        await done.tell(StopSelf())
        with anyio.fail_after(1.0):
            await done.wait_stopped()
        assert dyn.count_children() == 1
        assert journal.count("start:looping") == 1
        assert await looping.ask(Ping(), timeout=None) == ("looping", 2)


@pytest.mark.trio
async def test_a_group_restart_absorbs_a_pending_restart_of_its_members(
    autojump_clock: Any,
) -> None:
    """Under rest_for_one, an earlier child's crash takes over the pending restart of the
    later ones: each of them starts once, with the new group."""
    journal = Journal()
    sup = Supervisor(
        [worker(x, journal) for x in "abc"],
        strategy="rest_for_one",
        backoff=Backoff(initial=4.0, maximum=4.0, jitter=0.0),
    )
    async with open_supervisor(sup):
        began = anyio.current_time()
        await ref(sup, "b").tell(Crash("b"))
        await journal.wait_count("stop:c", 1)
        await anyio.sleep(1.0)
        await ref(sup, "a").tell(Crash("a"))
        await journal.wait_count("start:c", 2, timeout=WAIT + 10)
        assert [await ref(sup, x).ask(Ping()) for x in "abc"] == [("a", 2), ("b", 2), ("c", 2)]
    assert journal.events[3:9] == [
        *("handled_crash:b:b", "crash:b", "stop:c"),
        *("handled_crash:a:a", "crash:a"),
        "start:a",
    ]
    assert journal.time_of("start:a", 2) - began == pytest.approx(5.0)

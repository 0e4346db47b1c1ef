"""The dynamic supervisor: many children of one kind, started and stopped on demand."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from promptactors import Actor, ActorDead, ActorRef, InvalidInput, handler
from promptactors.supervisors import ChildSpec, DynamicSupervisor, open_supervisor

from ._helpers import WAIT, Crash, Journal, Ping, StartFailed, StopSelf, Worker, worker


@dataclass(frozen=True)
class Echo:
    value: int


@dataclass(frozen=True)
class Quit:
    pass


class Echoer(Actor[Echo | Quit]):
    """A minimal actor: answers an Echo, stops itself on Quit."""

    @handler
    async def echo(self, message: Echo) -> int:
        return message.value

    @handler
    async def quit(self, message: Quit) -> None:
        self.stop_self()


def _echoer_ref(found: object) -> ActorRef[Echo | Quit]:
    assert isinstance(found, ActorRef)
    return found


def _worker_ref(found: object) -> ActorRef[Any]:
    assert isinstance(found, ActorRef)
    return found


@pytest.mark.trio
async def test_ten_thousand_temporary_children_start_answer_and_stop(
    autojump_clock: Any,
) -> None:
    """10,000 temporary children start, each answers, each stops itself and is forgotten."""
    n = 10_000
    dyn = DynamicSupervisor()
    async with open_supervisor(dyn):
        refs = [
            _echoer_ref(await dyn.start_child(ChildSpec(f"e{i}", Echoer, restart="temporary")))
            for i in range(n)
        ]
        assert dyn.count_children() == n
        answers: list[int] = []

        async def ask_all(chunk: list[ActorRef[Echo | Quit]], base: int) -> None:
            for offset, r in enumerate(chunk):
                answers.append(await r.ask(Echo(base + offset)))

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                for start in range(0, n, 1000):
                    tg.start_soon(ask_all, refs[start : start + 1000], start)
        assert sorted(answers) == list(range(n))
        for r in refs:
            await r.tell(Quit())
        with anyio.fail_after(WAIT):
            for r in refs:
                await r.wait_stopped()
        assert dyn.count_children() == 0
        assert dyn.which_children() == []


@pytest.mark.trio
async def test_max_children_is_enforced_with_invalid_input(autojump_clock: Any) -> None:
    """Starting a child beyond max_children raises InvalidInput; room frees up on a stop."""
    dyn = DynamicSupervisor(max_children=3)
    async with open_supervisor(dyn):
        refs = [
            _echoer_ref(await dyn.start_child(ChildSpec(f"e{i}", Echoer, restart="temporary")))
            for i in range(3)
        ]
        with pytest.raises(InvalidInput, match="max_children"):
            await dyn.start_child(ChildSpec("e3", Echoer, restart="temporary"))
        await refs[0].stop()
        assert dyn.count_children() == 2
        fresh = _echoer_ref(await dyn.start_child(ChildSpec("e3", Echoer, restart="temporary")))
        assert await fresh.ask(Echo(3)) == 3


@pytest.mark.trio
async def test_a_duplicate_child_id_raises_invalid_input(autojump_clock: Any) -> None:
    """Two live children cannot share an id; the id is free again once the first stops."""
    dyn = DynamicSupervisor()
    async with open_supervisor(dyn):
        first = _echoer_ref(await dyn.start_child(ChildSpec("same", Echoer)))
        with pytest.raises(InvalidInput, match="already has a child 'same'"):
            await dyn.start_child(ChildSpec("same", Echoer))
        await first.stop()
        again = _echoer_ref(await dyn.start_child(ChildSpec("same", Echoer)))
        assert again != first
        assert await again.ask(Echo(1)) == 1


@pytest.mark.trio
async def test_ref_stop_terminates_a_dynamic_child_and_forgets_it(autojump_clock: Any) -> None:
    """``ref.stop()`` on a dynamic child stops it for good (even a permanent one)."""
    journal = Journal()
    dyn = DynamicSupervisor()
    async with open_supervisor(dyn):
        w = _worker_ref(await dyn.start_child(ChildSpec("w", lambda: Worker("w", journal))))
        await w.stop()
        assert not w.is_alive
        assert dyn.count_children() == 0
        with pytest.raises(ActorDead):
            await w.ask(Ping())
    assert journal.events == ["start:w", "stop:w"]


@pytest.mark.trio
async def test_a_transient_dynamic_child_is_restarted_after_a_crash_only(
    autojump_clock: Any,
) -> None:
    """A transient dynamic child is restarted after a crash (same ref) and forgotten after
    a normal exit."""
    journal = Journal()
    dyn = DynamicSupervisor()
    async with open_supervisor(dyn):
        spec = ChildSpec("t", lambda: Worker("t", journal), restart="transient")
        t = _worker_ref(await dyn.start_child(spec))
        await t.tell(Crash())
        assert await t.ask(Ping()) == ("t", 2)
        assert dyn.count_children() == 1
        await t.tell(StopSelf())
        with anyio.fail_after(WAIT):
            await t.wait_stopped()
        assert dyn.count_children() == 0
    assert journal.events == [
        *("start:t", "handled_crash:t:boom", "crash:t", "start:t"),
        "stop:t",
    ]


@pytest.mark.trio
async def test_a_dynamic_child_failing_to_start_is_not_kept(autojump_clock: Any) -> None:
    """``start_child`` raises the on_start error and the child is not registered."""
    journal = Journal()
    dyn = DynamicSupervisor()
    async with open_supervisor(dyn):
        spec = ChildSpec("bad", lambda: Worker("bad", journal, fail_start=lambda attempt: True))
        with pytest.raises(StartFailed):
            await dyn.start_child(spec)
        assert dyn.count_children() == 0
        assert dyn.running


@pytest.mark.trio
async def test_dynamic_children_stop_in_reverse_start_order_on_shutdown(
    autojump_clock: Any,
) -> None:
    """Shutting a dynamic supervisor down stops its children, last started first."""
    journal = Journal()
    dyn = DynamicSupervisor()
    async with open_supervisor(dyn):
        for label in "abc":
            await dyn.start_child(worker(label, journal))
    assert journal.events == ["start:a", "start:b", "start:c", "stop:c", "stop:b", "stop:a"]


@pytest.mark.trio
async def test_start_child_on_a_supervisor_that_is_not_running_raises_actor_dead(
    autojump_clock: Any,
) -> None:
    """``start_child`` before ``run`` or after shutdown raises ActorDead."""
    dyn = DynamicSupervisor()
    with pytest.raises(ActorDead):
        await dyn.start_child(ChildSpec("e", Echoer))
    async with open_supervisor(dyn):
        pass
    with pytest.raises(ActorDead):
        await dyn.start_child(ChildSpec("e", Echoer))

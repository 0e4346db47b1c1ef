"""Cancellation is never a crash: cancelling a supervisor's task group ends its children
without restarts, and nobody waiting on them hangs."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from anyio.abc import TaskStatus

from promptactors import ActorDead
from promptactors.supervisors import Backoff, Supervisor, open_supervisor

from ._helpers import WAIT, Crash, Hang, Journal, Note, Ping, ref, wait_until, worker


async def _host(sup: Supervisor, *, task_status: TaskStatus[anyio.CancelScope]) -> None:
    """Run ``sup`` in a task group of its own and hand back that group's cancel scope."""
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        task_status.started(tg.cancel_scope)


@pytest.mark.trio
async def test_cancelling_the_task_group_ends_children_without_restarts(
    autojump_clock: Any,
) -> None:
    """Cancelling the group running a supervisor kills its children (no on_stop, no
    restart, no escalation even with max_restarts=0) and fails pending asks with ActorDead."""
    journal = Journal()
    sup = Supervisor([worker(x, journal) for x in "abc"], max_restarts=0)
    outcomes: dict[str, object] = {}

    async with anyio.create_task_group() as outer:
        scope = await outer.start(_host, sup)
        b = ref(sup, "b")

        async def ask(key: str, message: Ping | Hang) -> None:
            try:
                outcomes[key] = await b.ask(message, timeout=None)
            except ActorDead as exc:
                outcomes[key] = exc

        outer.start_soon(ask, "in_flight", Hang())
        await journal.wait_count("hanging:b", 1)
        outer.start_soon(ask, "queued", Ping())
        await wait_until(lambda: b.queued == 1)
        scope.cancel()
    assert isinstance(outcomes["in_flight"], ActorDead)
    assert isinstance(outcomes["queued"], ActorDead)
    assert journal.events == ["start:a", "start:b", "start:c", "hanging:b"]
    assert not any(ref(sup, x).is_alive for x in "abc")
    assert not sup.running
    with pytest.raises(ActorDead):
        await b.tell(Note(1))


@pytest.mark.trio
async def test_cancelling_an_open_supervisor_block_is_not_an_error(autojump_clock: Any) -> None:
    """A cancel scope around ``open_supervisor`` ends it quietly, without restarts."""
    journal = Journal()
    sup = Supervisor([worker("a", journal), worker("b", journal)], max_restarts=0)
    with anyio.move_on_after(1.0) as scope:
        async with open_supervisor(sup):
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert journal.count("start:a") == journal.count("start:b") == 1
    assert "crash:a" not in journal.events
    assert not sup.running


@pytest.mark.trio
async def test_cancelling_during_a_backoff_does_not_restart_the_child(
    autojump_clock: Any,
) -> None:
    """A child waiting out its backoff when the supervisor is cancelled is never started
    again, and a message waiting for it fails with ActorDead."""
    journal = Journal()
    sup = Supervisor([worker("a", journal)], backoff=Backoff(initial=10.0, jitter=0.0))
    outcomes: list[object] = []
    async with anyio.create_task_group() as outer:
        scope = await outer.start(_host, sup)
        a = ref(sup, "a")
        await a.tell(Crash())
        await journal.wait_count("crash:a", 1)

        async def ask() -> None:
            try:
                outcomes.append(await a.ask(Ping(), timeout=None))
            except ActorDead as exc:
                outcomes.append(exc)

        outer.start_soon(ask)
        await wait_until(lambda: a.queued == 1)
        scope.cancel()
    assert len(outcomes) == 1
    assert isinstance(outcomes[0], ActorDead)
    assert journal.count("start:a") == 1
    await anyio.sleep(20.0)
    assert journal.count("start:a") == 1


@pytest.mark.trio
async def test_shutdown_during_a_backoff_ends_promptly_without_restarting(
    autojump_clock: Any,
) -> None:
    """A graceful shutdown does not wait for a pending backoff, nor restart the child."""
    journal = Journal()
    sup = Supervisor(
        [worker("a", journal), worker("b", journal)],
        backoff=Backoff(initial=100.0, maximum=100.0, jitter=0.0),
    )
    async with open_supervisor(sup):
        await ref(sup, "b").tell(Crash())
        await journal.wait_count("crash:b", 1)
        began = anyio.current_time()
    assert anyio.current_time() - began < 1.0
    assert journal.events[-1] == "stop:a"
    assert journal.count("start:b") == 1
    with anyio.fail_after(WAIT):
        await ref(sup, "b").wait_stopped()

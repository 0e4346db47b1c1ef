"""The initial start: children start in order; a failure stops those already started."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from promptactors.supervisors import ChildSpec, Supervisor, open_supervisor

from ._helpers import Journal, Ping, StartFailed, ref, worker


@pytest.mark.trio
async def test_children_start_in_order_each_after_the_previous_on_start(
    autojump_clock: Any,
) -> None:
    """``task_group.start(sup.run)`` returns once every child's on_start has completed."""
    journal = Journal()
    sup = Supervisor([worker(x, journal) for x in "abc"])
    async with anyio.create_task_group() as tg:
        assert await tg.start(sup.run) is sup
        assert sup.running
        assert journal.events == ["start:a", "start:b", "start:c"]
        assert await ref(sup, "c").ask(Ping()) == ("c", 1)
        await sup.shutdown()
    assert journal.events[3:] == ["stop:c", "stop:b", "stop:a"]


@pytest.mark.trio
async def test_a_failing_on_start_stops_the_started_children_and_raises_its_error(
    autojump_clock: Any,
) -> None:
    """If a child's on_start raises at the first start, the children already started are
    stopped in reverse order and open_supervisor raises that error."""
    journal = Journal()
    sup = Supervisor(
        [
            worker("a", journal),
            worker("b", journal),
            worker("c", journal, fail_start=lambda attempt: True),
            worker("d", journal),
        ]
    )

    async def scenario() -> None:
        async with open_supervisor(sup):
            pytest.fail("the block must not run")

    with pytest.raises(StartFailed, match="c attempt 1"):
        await scenario()
    assert journal.events == [
        *("start:a", "start:b", "start_failed:c", "crash:c"),
        *("stop:b", "stop:a"),
    ]
    assert not sup.running


@pytest.mark.trio
async def test_run_raises_the_start_failure_from_task_group_start(autojump_clock: Any) -> None:
    """``task_group.start(sup.run)`` raises what the failing child's on_start raised."""
    journal = Journal()
    sup = Supervisor([worker("a", journal), worker("b", journal, fail_start=lambda attempt: True)])
    async with anyio.create_task_group() as tg:
        with pytest.raises(StartFailed):
            await tg.start(sup.run)
    assert journal.events == ["start:a", "start_failed:b", "crash:b", "stop:a"]


@pytest.mark.trio
async def test_a_factory_that_raises_fails_the_start(autojump_clock: Any) -> None:
    """A child spec whose factory raises fails the supervisor's start with that error."""
    journal = Journal()

    def broken() -> Any:
        raise RuntimeError("no actor today")

    sup = Supervisor([worker("a", journal), ChildSpec("broken", broken)])

    async def scenario() -> None:
        async with open_supervisor(sup):
            pass

    with pytest.raises(RuntimeError, match="no actor today"):
        await scenario()
    assert journal.events == ["start:a", "stop:a"]


@pytest.mark.trio
async def test_a_factory_returning_something_else_fails_with_type_error(
    autojump_clock: Any,
) -> None:
    """A factory must build an Actor or a Supervisor; anything else is a TypeError."""
    sup = Supervisor([ChildSpec("odd", lambda: "not an actor")])  # type: ignore[arg-type,return-value]

    async def scenario() -> None:
        async with open_supervisor(sup):
            pass

    with pytest.raises(TypeError, match="not an Actor or a Supervisor"):
        await scenario()


@pytest.mark.trio
async def test_a_subtree_that_fails_to_start_fails_its_parents_start(
    autojump_clock: Any,
) -> None:
    """A start failure deep in a subtree is raised by the root's start."""
    journal = Journal()
    inner = ChildSpec(
        "sub",
        lambda: Supervisor(
            [worker("leaf", journal), worker("bad", journal, fail_start=lambda attempt: True)]
        ),
        shutdown=None,
    )
    root = Supervisor([worker("a", journal), inner, worker("z", journal)])

    async def scenario() -> None:
        async with open_supervisor(root):
            pass

    with pytest.raises(StartFailed):
        await scenario()
    assert journal.events == [
        *("start:a", "start:leaf", "start_failed:bad", "crash:bad"),
        *("stop:leaf", "stop:a"),
    ]

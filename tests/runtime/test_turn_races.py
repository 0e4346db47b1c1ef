"""Races of the turn contract: a crash during a stop, and many turns stopped at random."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from promptactors import TurnCancelled, TurnResult
from promptactors.providers import ProviderRequest, StreamEnd, TextDelta, Usage
from promptactors.store import InterruptTask, open_store
from promptactors.testing import Pause, ScriptedProvider

from ._turn_helpers import PROMPT, GatedStore, running_rows, runtime

pytestmark = pytest.mark.anyio


class _CrashesWhenClosed:
    """Streams one token then waits; closing the stream (a cancel) raises a bug."""

    name = "simulated"

    def __init__(self) -> None:
        self.streaming = anyio.Event()

    @asynccontextmanager
    async def stream(self, request: ProviderRequest) -> AsyncIterator[Any]:
        async def events() -> AsyncIterator[Any]:
            yield TextDelta("part")
            self.streaming.set()
            await anyio.sleep_forever()

        try:
            yield events()
        finally:
            raise RuntimeError("bug while closing the stream")

    async def aclose(self) -> None:
        pass


async def test_a_crash_during_a_stop_still_gives_one_cancelled_outcome(tmp_path: Path) -> None:
    """The stream crashes while the stop cancels it: the caller gets TurnCancelled, the
    instance is not restarted, and no row is left running."""
    provider = _CrashesWhenClosed()
    async with runtime(tmp_path, provider) as rt:  # type: ignore[arg-type]
        inst = await rt.start_instance(prompt=PROMPT)
        ticket = await inst.start_turn("go")
        with anyio.fail_after(10):
            await provider.streaming.wait()
        await inst.stop()
        with pytest.raises(TurnCancelled):
            await ticket.wait(10)
        assert not inst.is_alive
        assert await rt.instance_count() == 0
        assert await running_rows(rt) == []


@pytest.mark.parametrize("seed", [1, 2])
async def test_200_concurrent_turns_with_random_stops_all_resolve_and_nothing_runs(
    tmp_path: Path, seed: int
) -> None:
    """200 instances, each a turn, about half stopped at a random moment: every caller gets
    an answer or TurnCancelled, answers match their task rows, and nothing stays running."""
    rng = random.Random(seed)

    def script(request: ProviderRequest) -> list[Any]:
        return ["a", Pause(rng.random() * 0.01), "b", Pause(rng.random() * 0.01), "c"]

    provider = ScriptedProvider(default=script)
    outcomes: list[TurnResult | TurnCancelled] = []
    async with runtime(tmp_path, provider) as rt:

        async def one(stop_after: float | None) -> None:
            inst = await rt.start_instance(prompt=PROMPT)
            ticket = await inst.start_turn("q")
            if stop_after is not None:
                await anyio.sleep(stop_after)  # a random moment of the turn: the race itself
                await inst.stop()
            try:
                outcomes.append(await ticket.wait(20))
            except TurnCancelled as exc:
                outcomes.append(exc)
            await inst.stop()

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for _ in range(200):
                    stop = rng.random() * 0.02 if rng.random() < 0.5 else None
                    tg.start_soon(one, stop)
        assert len(outcomes) == 200
        assert await running_rows(rt) == []
        for outcome in outcomes:
            if isinstance(outcome, TurnResult):
                task = await rt.store.get_task(outcome.task_id)
                assert (task.status, task.response_text) == ("completed", outcome.text)
        assert await rt.instance_count() == 0


async def test_a_runtime_shutdown_mid_turn_cancels_it_and_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    """Leaving open_runtime during a stream cancels the turn for its caller and marks its
    rows: after the shutdown no run or task is running in the database."""
    provider = ScriptedProvider([["so", Pause(30), "far"]])
    async with runtime(tmp_path, provider) as rt:
        inst = await rt.start_instance(prompt=PROMPT)
        async with inst.stream("go") as turn:
            async for _chunk in turn:
                break
        ticket = await inst.current_turn()
        assert ticket is not None
    with pytest.raises(TurnCancelled):
        await ticket.wait(10)
    async with await open_store(f"sqlite:///{tmp_path}/turns.db") as store:
        runs = await store.list_runs(limit=10)
        assert len(runs) == 1
        assert runs[0].status != "running"
        assert [t.status for t in await store.list_tasks(runs[0].id)] == ["interrupted"]


class _CrashThenHang:
    """The first stream crashes the instance (a bug); later ones stream then wait."""

    name = "simulated"

    def __init__(self) -> None:
        self.calls = 0
        self.second = anyio.Event()

    @asynccontextmanager
    async def stream(self, request: ProviderRequest) -> AsyncIterator[Any]:
        self.calls += 1
        call = self.calls

        async def events() -> AsyncIterator[Any]:
            yield TextDelta(f"try {call}")
            if call == 1:
                raise RuntimeError("bug in the stream")
            self.second.set()
            await anyio.sleep_forever()

        yield events()

    async def aclose(self) -> None:
        pass


async def test_a_stop_after_a_crash_cancels_the_retried_turn(tmp_path: Path) -> None:
    """A stop reaching the restarted incarnation during the retry: one cancelled outcome,
    the crashed attempt interrupted, the retry interrupted, nothing running."""
    provider = _CrashThenHang()
    async with runtime(tmp_path, provider) as rt:  # type: ignore[arg-type]
        inst = await rt.start_instance(prompt=PROMPT)
        ticket = await inst.start_turn("go")
        with anyio.fail_after(10):
            await provider.second.wait()
        await inst.stop()
        with pytest.raises(TurnCancelled) as cancelled:
            await ticket.wait(10)
        assert cancelled.value.partial_text == "try 2"
        assert await running_rows(rt) == []
        run = (await rt.store.list_runs(limit=1))[0]
        tasks = sorted(await rt.store.list_tasks(run.id), key=lambda t: t.attempt)
        assert [(t.attempt, t.status, t.response_text) for t in tasks] == [
            (1, "interrupted", "try 1"),
            (2, "interrupted", "try 2"),
        ]


class _LateRead:
    """Streams ``early``, then holds its next read (deaf to cancellation) until
    ``release``: the read then delivers ``late`` and the stream's end anyway."""

    name = "simulated"

    def __init__(self) -> None:
        self.streaming = anyio.Event()
        self.release = anyio.Event()
        self.closed = anyio.Event()

    @asynccontextmanager
    async def stream(self, request: ProviderRequest) -> AsyncIterator[Any]:
        async def events() -> AsyncIterator[Any]:
            yield TextDelta("early")
            self.streaming.set()
            with anyio.CancelScope(shield=True):  # a read already on its way
                await self.release.wait()
            yield TextDelta("late")
            yield StreamEnd(Usage(1, 2), "stop")

        stream = events()
        try:
            yield stream
        finally:
            await stream.aclose()
            self.closed.set()

    async def aclose(self) -> None:
        pass


async def test_a_token_arriving_after_a_stop_began_changes_nothing(tmp_path: Path) -> None:
    """A read delivered while the stop writes the cancelled turn: no crash, the caller gets
    TurnCancelled with the text from before the stop, and only that text is saved."""
    provider = _LateRead()
    async with await open_store(f"sqlite:///{tmp_path}/late.db", migrate=True) as inner:
        store = GatedStore(inner, InterruptTask)
        async with runtime(tmp_path, provider, store=store) as rt:  # type: ignore[arg-type]
            inst = await rt.start_instance(prompt=PROMPT)
            ticket = await inst.start_turn("go")
            with anyio.fail_after(10):
                await provider.streaming.wait()
            with capture_logs() as logs, anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(inst.stop)
                    await store.entered.wait()  # the stop is writing the cancelled turn
                    assert not ticket.done
                    provider.release.set()
                    await provider.closed.wait()  # the late token and the end were read
                    store.gate.set()
                    with pytest.raises(TurnCancelled) as cancelled:
                        await ticket.wait()
            assert cancelled.value.partial_text == "early"
            crashes = [e for e in logs if "crash" in e["event"]]
            assert crashes == []
            assert not inst.is_alive
            assert await running_rows(rt) == []
            run = (await rt.store.list_runs(limit=1))[0]
            assert [(m["role"], m["content"], m.get("partial", False)) for m in run.messages] == [
                ("user", "go", False),
                ("assistant", "early", True),
            ]
            tasks = await rt.store.list_tasks(run.id)
            assert [(t.status, t.response_text) for t in tasks] == [("interrupted", "early")]

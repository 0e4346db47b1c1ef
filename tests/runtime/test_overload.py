"""Overload: admission control (``max_active_turns``) queues turns beyond capacity, first
come first served, as accepted turns in phase ``starting``; the slot comes back however a
turn ends; queueing never times a caller out on the runtime's own bound; and a burst far
above capacity on a slow store completes with no error and no restart."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from promptactors import (
    AskTimeout,
    ExecutionStatus,
    ProviderBadRequest,
    Runtime,
    TurnCancelled,
    run_load,
)
from promptactors.actors import Admission
from promptactors.providers import ProviderRequest, StreamEnd, TextDelta, Usage
from promptactors.store import WriteOp, open_store

from ._turn_helpers import PROMPT, runtime, until

pytestmark = pytest.mark.anyio


def _admission(rt: Runtime) -> Admission:
    admission = rt._engine.admission
    assert admission is not None
    return admission


class _ByInput:
    """Behaves as the turn's last user message says: ``answer``, ``fail`` (not retryable),
    ``hang`` (one token, then waits for ``gate``), ``crash`` (a bug in the first stream);
    anything else streams for 10 ms."""

    name = "simulated"

    def __init__(self) -> None:
        self.gate = anyio.Event()
        self.started: list[str] = []
        self.open = 0
        self.most_open = 0
        self.crashed = False

    @asynccontextmanager
    async def stream(self, request: ProviderRequest) -> AsyncIterator[Any]:
        kind = request.messages[-1].content
        self.started.append(kind)
        if kind == "fail":
            raise ProviderBadRequest("refused", retryable=False)
        self.open += 1
        self.most_open = max(self.most_open, self.open)

        async def events() -> AsyncIterator[Any]:
            yield TextDelta("part")
            if kind == "crash" and not self.crashed:
                self.crashed = True
                raise RuntimeError("bug in the stream")
            if kind.startswith("hang"):
                await self.gate.wait()
            elif kind not in ("answer", "crash"):
                await anyio.sleep(0.01)  # the load's prompt: a short stream
            yield StreamEnd(Usage(3, 1))

        try:
            yield events()
        finally:
            self.open -= 1

    async def aclose(self) -> None:
        pass


async def test_turns_beyond_capacity_are_queued_in_starting_and_run_in_order(
    tmp_path: Path,
) -> None:
    """With two slots, three more turns are accepted and wait: status executing, not
    ready; they stream once slots free up."""
    provider = _ByInput()
    async with runtime(tmp_path, provider, max_active_turns=2) as rt:  # type: ignore[arg-type]
        admission = _admission(rt)
        insts = [await rt.start_instance(prompt=PROMPT) for _ in range(5)]
        tickets = [await inst.start_turn(f"hang {i}") for i, inst in enumerate(insts)]

        async def queued() -> bool:
            return admission.waiting == 3 and provider.open == 2

        await until(queued, "two turns streaming, three queued")
        assert admission.active == 2
        assert provider.started == ["hang 0", "hang 1"]
        for inst in insts[2:]:
            assert (await inst.snapshot()).status is ExecutionStatus.EXECUTING
            assert not await inst.is_ready()
        provider.gate.set()
        with anyio.fail_after(10):
            results = [await ticket.wait() for ticket in tickets]
        assert [r.text for r in results] == ["part"] * 5
        # (admitted in order, but turns admitted together reach the provider in any order)
        assert sorted(provider.started) == [f"hang {i}" for i in range(5)]
        assert provider.most_open == 2
        assert (admission.active, admission.waiting) == (0, 0)


@pytest.mark.parametrize("ending", ["answered", "failed", "cancelled", "queued", "crashed"])
async def test_the_slot_comes_back_however_the_turn_ends(tmp_path: Path, ending: str) -> None:
    """With one slot: after a turn is answered, fails, is cancelled streaming or queued,
    or its instance crashes, the next turn is admitted and answered; nothing is held."""
    provider = _ByInput()
    async with runtime(tmp_path, provider, max_active_turns=1) as rt:  # type: ignore[arg-type]
        admission = _admission(rt)
        first = await rt.start_instance(prompt=PROMPT)
        if ending == "answered":
            await first.execute("answer")
        elif ending == "failed":
            with pytest.raises(ProviderBadRequest):
                await first.execute("fail")
        elif ending == "crashed":
            assert (await first.execute("crash")).attempts == 2
            assert provider.crashed
        elif ending == "cancelled":
            ticket = await first.start_turn("hang")
            await until(_true(lambda: provider.open == 1), "streaming")
            await first.stop()
            with pytest.raises(TurnCancelled):
                await ticket.wait(10)
        else:  # queued behind a turn that holds the only slot
            holder = await rt.start_instance(prompt=PROMPT)
            held = await holder.start_turn("hang")
            ticket = await first.start_turn("answer")
            await until(_true(lambda: admission.waiting == 1), "queued")
            await first.stop()
            with pytest.raises(TurnCancelled):
                await ticket.wait(10)
            assert admission.waiting == 0
            provider.gate.set()
            await held.wait(10)
        second = await rt.start_instance(prompt=PROMPT)
        with anyio.fail_after(10):
            assert (await second.execute("answer")).text == "part"
        await until(_true(lambda: admission.active == 0), "every slot back")
        assert admission.waiting == 0


def _true(check: Any) -> Any:
    async def run() -> bool:
        return bool(check())

    return run


async def test_queue_time_does_not_count_against_turn_timeout(tmp_path: Path) -> None:
    """A queued turn outlives ``turn_timeout`` in the queue and is answered; a caller's
    own timeout still bounds its whole wait (the turn goes on)."""
    provider = _ByInput()
    async with runtime(
        tmp_path,
        provider,  # type: ignore[arg-type]
        max_active_turns=1,
        turn_timeout=0.3,
    ) as rt:
        holder, patient, hasty = [await rt.start_instance(prompt=PROMPT) for _ in range(3)]
        held = await holder.start_turn("hang")
        async with anyio.create_task_group() as tg:
            results: list[str] = []

            async def wait_default() -> None:
                results.append((await patient.execute("answer")).text)

            tg.start_soon(wait_default)
            with pytest.raises(AskTimeout):
                await hasty.execute("answer", timeout=0.2)
            await anyio.sleep(0.5)  # past turn_timeout, still queued
            provider.gate.set()
        assert results == ["part"]
        await held.wait(10)
        ticket = await hasty.current_turn()
        assert ticket is not None
        assert (await ticket.wait(10)).text == "part"


class _SlowStore:
    """A store whose every batch commit takes ``delay`` seconds more."""

    def __init__(self, inner: Any, delay: float) -> None:
        self._inner = inner
        self._delay = delay

    async def apply(self, ops: Sequence[WriteOp]) -> None:
        await anyio.sleep(self._delay)
        await self._inner.apply(ops)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.mark.slow
async def test_a_burst_far_above_capacity_completes_without_errors_or_restarts(
    tmp_path: Path,
) -> None:
    """2,000 turns at once, 50 slots, a store slow to commit: every turn is answered,
    nothing crashes or restarts, and never more than 50 attempts run at once."""
    provider = _ByInput()
    async with await open_store(f"sqlite:///{tmp_path}/slow.db", migrate=True) as inner:
        store = _SlowStore(inner, 0.02)
        with capture_logs() as logs:
            async with runtime(
                tmp_path,
                provider,  # type: ignore[arg-type]
                store=store,  # type: ignore[arg-type]
                max_active_turns=50,
            ) as rt:
                with anyio.fail_after(120):
                    report = await run_load(rt, instances=2000, prompt=PROMPT)
                admission = _admission(rt)
                assert (admission.active, admission.waiting) == (0, 0)
        assert (report.completed, report.errors) == (2000, 0), report.error_kinds
        assert 1 < provider.most_open <= 50
        bad = [e for e in logs if e["log_level"] in ("warning", "error", "critical")]
        assert bad == []

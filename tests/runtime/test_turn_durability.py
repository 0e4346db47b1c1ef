"""What the turn path writes, checked where a small slip would pass the other tests: the
task row before the provider, run totals summed, attempts numbered, crashes bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from pydantic import ValidationError

from promptactors import (
    AttemptsExhausted,
    InjectedFault,
    Runtime,
    RuntimeSettings,
    StoreUnavailable,
)
from promptactors.providers import ProviderRequest, StreamEnd, TextDelta, Usage
from promptactors.store import open_store
from promptactors.testing import ScriptedProvider

from ._turn_helpers import PROMPT, running_rows, runtime

pytestmark = pytest.mark.anyio


class _RowCheckingProvider:
    """Answers after reading its task row from the store: records the status it saw."""

    name = "simulated"

    def __init__(self) -> None:
        self.runtime: Runtime | None = None
        self.seen: list[str] = []

    @asynccontextmanager
    async def stream(self, request: ProviderRequest) -> AsyncIterator[Any]:
        assert self.runtime is not None
        task = await self.runtime.store.get_task(request.request_id or "")
        self.seen.append(task.status)

        async def events() -> AsyncIterator[Any]:
            yield TextDelta("ok")
            yield StreamEnd(Usage(1, 1), "stop")

        yield events()

    async def aclose(self) -> None:
        pass


async def test_the_task_row_is_committed_before_the_provider_is_called(tmp_path: Path) -> None:
    """When the provider is called, its task row is already in the store, running."""
    provider = _RowCheckingProvider()
    async with runtime(tmp_path, provider) as rt:  # type: ignore[arg-type]
        provider.runtime = rt
        inst = await rt.start_instance(prompt=PROMPT)
        await inst.execute("one")
        await inst.execute("two")
        assert provider.seen == ["running", "running"]


async def test_run_totals_are_the_sum_of_the_turns(tmp_path: Path) -> None:
    """Two turns: the run's tokens and cost are the sums of both tasks', not the last's."""
    provider = ScriptedProvider([["a", Usage(10, 3)], ["b", Usage(7, 2)]])
    async with runtime(tmp_path, provider) as rt:
        inst = await rt.start_instance(prompt=PROMPT, settings={"model": "gpt-4o-mini"})
        first = await inst.execute("1")
        second = await inst.execute("2")
        await rt.tracker.flush()
        run = await rt.store.get_run(first.run_id or "")
        assert (run.stats.input_tokens, run.stats.output_tokens) == (17, 5)
        assert first.cost
        assert second.cost
        assert run.stats.total_cost == pytest.approx(first.cost + second.cost)
        stats = await inst.stats()
        assert (stats.input_tokens, stats.output_tokens) == (17, 5)


class _AlwaysCrashing:
    """Streams a little, then raises a bug (not a ProviderError): the instance crashes."""

    name = "simulated"

    def __init__(self) -> None:
        self.calls = 0

    @asynccontextmanager
    async def stream(self, request: ProviderRequest) -> AsyncIterator[Any]:
        self.calls += 1

        async def events() -> AsyncIterator[Any]:
            yield TextDelta(f"partial {self.calls}")
            await anyio.lowlevel.checkpoint()
            raise RuntimeError("bug in the stream")

        yield events()

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize("max_attempts", [1, 3])
async def test_crashes_are_retried_up_to_the_attempt_limit_with_numbered_rows(
    tmp_path: Path, max_attempts: int
) -> None:
    """A turn whose every attempt crashes the instance is tried exactly max_attempts times,
    its task rows numbered 1..n and interrupted with their partial output; then it fails."""
    provider = _AlwaysCrashing()
    async with runtime(tmp_path, provider, max_attempts=max_attempts) as rt:  # type: ignore[arg-type]
        inst = await rt.start_instance(prompt=PROMPT)
        with pytest.raises(AttemptsExhausted, match=f"{max_attempts} attempts"):
            await inst.execute("go")
        assert provider.calls == max_attempts
        await rt.tracker.flush()
        run = (await rt.store.list_runs(limit=1))[0]
        tasks = sorted(await rt.store.list_tasks(run.id), key=lambda t: t.attempt)
        assert [(t.attempt, t.status) for t in tasks] == [
            (n, "interrupted") for n in range(1, max_attempts + 1)
        ]
        assert [t.response_text for t in tasks] == [
            f"partial {n}" for n in range(1, max_attempts + 1)
        ]
        assert [(m["role"], m.get("failed")) for m in run.messages] == [("user", True)]
        await inst.stop()
        assert await running_rows(rt) == []


async def test_provider_retries_number_their_task_rows(tmp_path: Path) -> None:
    """Each attempt of a retried turn has its own task row with its attempt number."""
    provider = ScriptedProvider(
        [[InjectedFault("one", retryable=True)], [InjectedFault("two", retryable=True)], ["ok"]]
    )
    async with runtime(tmp_path, provider, max_attempts=3) as rt:
        inst = await rt.start_instance(prompt=PROMPT)
        result = await inst.execute("go")
        assert result.attempts == 3
        await rt.tracker.flush()
        tasks = sorted(await rt.store.list_tasks(result.run_id or ""), key=lambda t: t.attempt)
        assert [(t.attempt, t.status) for t in tasks] == [
            (1, "failed"),
            (2, "failed"),
            (3, "completed"),
        ]


class _DownStore:
    """A store whose ``apply`` is unavailable while ``down`` is set."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.down = True

    async def apply(self, ops: Any) -> None:
        if self.down:
            raise StoreUnavailable("the database is down (test)")
        await self._inner.apply(ops)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def test_a_store_outage_while_creating_rows_fails_the_turn_cleanly(tmp_path: Path) -> None:
    """The turn fails with StoreUnavailable (the instance does not crash); once the store
    is back the rows say failed, and the next turn reuses the one run chosen at first."""
    async with await open_store(f"sqlite:///{tmp_path}/down.db", migrate=True) as inner:
        store = _DownStore(inner)
        provider = ScriptedProvider(default=["fine"])
        async with runtime(
            tmp_path,
            provider,
            store=store,  # type: ignore[arg-type]
            turn_rows_timeout=0.2,
        ) as rt:
            inst = await rt.start_instance(prompt=PROMPT)
            with anyio.fail_after(5), pytest.raises(StoreUnavailable):
                await inst.execute("first")  # after turn_rows_timeout, not the 30 s default
            assert provider.requests == []
            snap = await inst.snapshot()
            assert snap.conversation.messages[0].failed
            store.down = False
            await rt.tracker.flush()
            result = await inst.execute("second")
            assert result.text == "fine"
            assert len(await rt.store.list_runs(limit=10)) == 1
            tasks = await rt.store.list_tasks(result.run_id or "")
            assert sorted(t.status for t in tasks) == ["completed", "failed"]
            await inst.stop()
            assert await running_rows(rt) == []


def test_the_turn_rows_timeout_comes_from_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PROMPTACTORS_TURN_ROWS_TIMEOUT sets how long a turn waits for its first rows."""
    monkeypatch.setenv("PROMPTACTORS_TURN_ROWS_TIMEOUT", "2.5")
    assert RuntimeSettings().turn_rows_timeout == 2.5
    monkeypatch.setenv("PROMPTACTORS_TURN_ROWS_TIMEOUT", "0")
    with pytest.raises(ValidationError, match="turn_rows_timeout"):
        RuntimeSettings()

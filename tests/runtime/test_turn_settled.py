"""Every accepted turn ends, even when its instance is gone for good without a graceful
stop: the supervisor gave up restarting it, or killed it after its shutdown timeout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import trio
import trio.testing

from promptactors import AttemptsExhausted, RuntimeSettings, TurnCancelled, open_runtime
from promptactors.providers import ProviderRequest, TextDelta
from promptactors.store import InterruptTask, open_store
from promptactors.testing import Pause, ScriptedProvider

from ._turn_helpers import PROMPT, GatedStore, running_rows, runtime, until


class _CrashesTheInstance:
    """Streams a little, then raises a bug (not a ProviderError): the instance crashes."""

    name = "simulated"

    def __init__(self) -> None:
        self.calls = 0

    @asynccontextmanager
    async def stream(self, request: ProviderRequest) -> AsyncIterator[Any]:
        self.calls += 1

        async def events() -> AsyncIterator[Any]:
            yield TextDelta("partial")
            await anyio.lowlevel.checkpoint()
            raise RuntimeError("bug in the stream")

        yield events()

    async def aclose(self) -> None:
        pass


@pytest.mark.anyio
async def test_a_turn_ends_when_the_supervisor_gives_up_restarting_its_instance(
    tmp_path: Path,
) -> None:
    """The instances' supervisor allows no restart: the crash escalates instead of a retry.
    The caller gets AttemptsExhausted naming why, the attempt is interrupted with its
    partial output, the run failed, the instance gone, and the runtime goes on."""
    provider = _CrashesTheInstance()
    async with runtime(tmp_path, provider, instance_restarts=0) as rt:  # type: ignore[arg-type]
        inst = await rt.start_instance(prompt=PROMPT)
        ticket = await inst.start_turn("go")
        with pytest.raises(AttemptsExhausted, match="gave up") as failed:
            await ticket.wait(10)
        assert "restart" in str(failed.value)
        assert provider.calls == 1
        assert await running_rows(rt) == []
        run = (await rt.store.list_runs(limit=1))[0]
        assert run.status == "failed"
        assert [(m["role"], m.get("failed", False)) for m in run.messages] == [("user", True)]
        tasks = await rt.store.list_tasks(run.id)
        assert [(t.status, t.response_text) for t in tasks] == [("interrupted", "partial")]

        async def gone() -> bool:
            return await rt.instance_count() == 0

        await until(gone, "the registry forgets the instance")
        assert not inst.is_alive
        other = await rt.start_instance(prompt=PROMPT, instance_id="after")
        assert other.instance_id == "after"


@pytest.mark.trio
async def test_a_queued_turn_ends_when_its_instance_is_killed_after_the_shutdown_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The stop's write of the cancelled turn hangs (the store holds it) past the
    instance's shutdown timeout: the instance is killed mid-stop. The queued turn is still
    cancelled for its caller, and once the store answers no row is left running."""
    async with await open_store("memory://", migrate=True) as inner:
        store = GatedStore(inner, InterruptTask)
        provider = ScriptedProvider([["so far", Pause(3600)]])
        settings = RuntimeSettings(
            database_url="memory://", turn_rows_timeout=600.0, retry_backoff=0.0
        )
        with trio.fail_after(1800):
            async with open_runtime(settings, provider=provider, store=store) as rt:  # type: ignore[arg-type]
                inst = await rt.start_instance(
                    prompt=PROMPT, execution_config={"on_busy": "enqueue"}
                )
                running = await inst.start_turn("one")
                queued = await inst.start_turn("two")

                async def streaming() -> bool:
                    return (await inst.streaming_text()) == "so far"

                await until(streaming, "the first turn streams", timeout=60)
                began = trio.current_time()
                await inst.stop()
                assert trio.current_time() - began >= 10.0  # killed, not stopped gracefully
                with pytest.raises(TurnCancelled):
                    await running.wait(5)
                with pytest.raises(TurnCancelled):
                    await queued.wait(5)
                store.gate.set()
                await rt.tracker.flush()
                assert await rt.instance_count() == 0
                runs = await rt.store.list_runs(limit=10)
                assert [r.status for r in runs] == ["interrupted"]
                tasks = await rt.store.list_tasks(runs[0].id)
                assert [(t.status, t.response_text) for t in tasks] == [("interrupted", "so far")]

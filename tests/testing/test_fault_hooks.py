"""Fault injection seams: crash_actor, OutageStore, and the provider's permanent refusal."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from promptactors import (
    InjectedFault,
    RuntimeSettings,
    StoreUnavailable,
    open_runtime,
)
from promptactors._load import DEMO_PROMPT
from promptactors.providers import ProviderRequest
from promptactors.providers._simulated import SimulatedProvider
from promptactors.store import open_store
from promptactors.testing import FaultPlan, OutageStore, crash_actor


@pytest.mark.anyio
async def test_crash_actor_crashes_an_instance_and_its_supervisor_restarts_it(
    tmp_path: Path,
) -> None:
    """The instance crashes mid-turn; the restarted incarnation answers the turn once."""
    settings = RuntimeSettings(
        database_url=f"sqlite:///{tmp_path}/c.db", simulated_tokens=20, simulated_latency=0.01
    )
    with anyio.fail_after(30):
        async with open_runtime(settings) as rt:
            handle = await rt.start_instance(prompt=DEMO_PROMPT)
            ref = await rt.registry.get(handle.instance_id)
            async with handle.stream() as turn:
                async for _chunk in turn:
                    assert crash_actor(ref)
                    break
                result = await turn.result()
            assert result.attempts == 2
            snap = await handle.snapshot()
            answers = [m for m in snap.conversation.messages if m.role == "assistant"]
            assert [a.content for a in answers] == [result.text]
            await handle.stop()
            assert not crash_actor(ref)  # stopped: nothing to crash


@pytest.mark.anyio
async def test_crash_actor_restarts_an_engine_actor(tmp_path: Path) -> None:
    """Crashing the registry restarts it (and, rest_for_one, what started after it)."""
    settings = RuntimeSettings(database_url=f"sqlite:///{tmp_path}/c.db")
    with anyio.fail_after(30):
        async with open_runtime(settings) as rt:
            assert crash_actor(rt.registry.ref, RuntimeError("boom"))
            handle = await rt.start_instance(prompt=DEMO_PROMPT)
            assert await rt.instance_ids() == [handle.instance_id]


@pytest.mark.anyio
async def test_outage_store_refuses_calls_during_an_outage_only(tmp_path: Path) -> None:
    """Every call raises StoreUnavailable while down and passes through once up again."""
    async with await open_store(f"sqlite:///{tmp_path}/o.db", migrate=True) as real:
        store = OutageStore(real)
        assert await store.count_by_status() == {"runs": {}, "tasks": {}}
        store.begin_outage()
        with pytest.raises(StoreUnavailable, match="injected store outage"):
            await store.count_by_status()
        store.end_outage()
        assert await store.schema_version() >= 1
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(store.outage, 0.05)
                await anyio.sleep(0.01)
                assert store.is_down
        assert not store.is_down
        assert (store.refused, store.outages) == (1, 2)
        assert store.dialect == "sqlite"


@pytest.mark.anyio
async def test_a_scripted_reject_is_a_permanent_refusal() -> None:
    """``"reject"`` fails on entry with a fault that must not be retried."""
    async with SimulatedProvider(faults=FaultPlan(script=["reject"]), tokens=2) as provider:
        request = ProviderRequest(model="m", messages=())
        with pytest.raises(InjectedFault) as caught:
            async with provider.stream(request):
                pass
        assert caught.value.retryable is False
        assert provider.fault_counts == {"reject": 1}

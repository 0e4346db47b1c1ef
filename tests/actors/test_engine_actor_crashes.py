"""Crashes of the runtime's own actors (run tracker, registry, caches) lose no turn.

The root supervisor restarts such an actor alone (``one_for_one``): its reference stays
valid, messages sent meanwhile wait for the next incarnation, and what it must not forget
(the tracker's accepted writes, the registry's indexes) lives in a home outside the
incarnation. The instances live on through it; a cache caller whose read the crash
cut short is answered by the next incarnation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from promptactors import ActorDead, RuntimeSettings, open_runtime
from promptactors._load import DEMO_PROMPT
from promptactors.actors._caches import PromptCache, PromptCacheClient
from promptactors.kernel import ActorRef, spawn
from promptactors.store import PromptMessageRow, PromptRecord, Store, open_store
from promptactors.supervisors import ChildSpec, Supervisor, open_supervisor
from promptactors.testing import crash_actor

pytestmark = pytest.mark.anyio

TIMEOUT = 30


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(2000):
        if condition():
            return
        await anyio.sleep(0.005)
    raise AssertionError("condition never held")


def settings(tmp_path: Path) -> RuntimeSettings:
    return RuntimeSettings(
        database_url=f"sqlite:///{tmp_path}/e.db", simulated_tokens=20, simulated_latency=0.01
    )


async def test_a_tracker_crash_mid_turns_restarts_it_alone_and_commits_every_turn(
    tmp_path: Path,
) -> None:
    with anyio.fail_after(TIMEOUT), capture_logs() as logs:
        async with open_runtime(settings(tmp_path)) as rt:
            handles = [
                await rt.start_instance(
                    prompt=DEMO_PROMPT, execution_config={"track_in_runs": True}
                )
                for _ in range(20)
            ]
            refs = [await rt.registry.get(h.instance_id) for h in handles]
            results: dict[str, Any] = {}

            async def turn(n: int) -> None:
                async with handles[n].stream() as stream:
                    async for _chunk in stream:
                        pass
                    results[handles[n].instance_id] = await stream.result()

            async with anyio.create_task_group() as tg:
                for n in range(len(handles)):
                    tg.start_soon(turn, n)
                await anyio.sleep(0.05)  # mid-stream: task rows accepted, turns running
                assert crash_actor(rt.tracker.ref)
            assert len(results) == 20
            # The instances lived through it: same incarnations, one attempt each.
            assert [await rt.registry.get(h.instance_id) for h in handles] == refs
            assert all(r.attempts == 1 for r in results.values())
            for handle in handles:
                await handle.stop()
            for handle in handles:
                run = await rt.store.get_run(results[handle.instance_id].run_id)
                assert run.status != "running"
                assert run.messages[-1]["content"] == results[handle.instance_id].text
    events = [e["event"] for e in logs]
    assert events.count("actor_crashed") == 1  # the tracker only: no instance crashed
    assert "child_killed" not in events
    assert "run_tracker_ops_uncommitted" not in events


async def test_a_registry_crash_forgets_no_live_instance(tmp_path: Path) -> None:
    with anyio.fail_after(TIMEOUT), capture_logs() as logs:
        async with open_runtime(settings(tmp_path)) as rt:
            handles = [await rt.start_instance(prompt=DEMO_PROMPT) for _ in range(3)]
            ids = [h.instance_id for h in handles]
            refs = [await rt.registry.get(i) for i in ids]
            assert crash_actor(rt.registry.ref)
            assert await rt.instance_ids() == ids
            assert [await rt.registry.get(i) for i in ids] == refs
            assert [h.instance_id for h in await rt.instances_by_prompt(DEMO_PROMPT.id)] == ids
            result = await (await handles[0].start_turn("still here?")).wait()
            assert result.attempts == 1
            await handles[1].stop()
            assert await rt.instance_ids() == [ids[0], ids[2]]
    assert "child_killed" not in [e["event"] for e in logs]


async def test_a_cache_crash_restarts_the_cache_alone(tmp_path: Path) -> None:
    """Under the old rest_for_one root this restarted the instances subtree."""
    with anyio.fail_after(TIMEOUT), capture_logs():
        async with open_runtime(settings(tmp_path)) as rt:
            handle = await rt.start_instance(prompt=DEMO_PROMPT)
            ref = await rt.registry.get(handle.instance_id)
            for cache in (rt.prompts, rt.actions, rt.scoped):
                assert crash_actor(cache.ref)
            assert await rt.instance_ids() == [handle.instance_id]
            assert await rt.registry.get(handle.instance_id) == ref
            assert (await (await handle.start_turn("hello")).wait()).attempts == 1


class HeldReads:
    """A real store whose prompt reads wait for ``gate``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.gate = anyio.Event()
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def get_prompt(self, prompt_id: str, source: Any = "prompts") -> PromptRecord:
        self.reads += 1
        await self.gate.wait()
        return await self.store.get_prompt(prompt_id, source)


PROMPT = PromptRecord(id="p1", name="Greeter", messages=(PromptMessageRow("system", "Hi."),))


async def test_a_read_cut_short_by_a_cache_crash_is_answered_by_the_next_incarnation(
    tmp_path: Path,
) -> None:
    async with await open_store(f"sqlite:///{tmp_path}/c.db", migrate=True) as real:
        await real.put_prompt(PROMPT)
        store = HeldReads(real)
        spec = ChildSpec("prompt_cache", lambda: PromptCache(store))  # type: ignore[arg-type]
        with anyio.fail_after(TIMEOUT), capture_logs():
            async with open_supervisor(Supervisor([spec])) as sup:
                ref = sup.child("prompt_cache")
                assert isinstance(ref, ActorRef)
                cache = PromptCacheClient(ref)
                found: list[str] = []

                async def get() -> None:
                    found.append((await cache.get("p1")).name)

                async with anyio.create_task_group() as tg:
                    for _ in range(3):
                        tg.start_soon(get)
                    await until(lambda: store.reads >= 1)
                    assert crash_actor(ref)  # the flight fails with ActorDead
                    await until(lambda: store.reads >= 2)  # the callers asked again: one new read
                    store.gate.set()
                assert found == ["Greeter"] * 3
                assert store.reads == 2


async def test_a_cache_stopped_for_good_still_raises_actor_dead(tmp_path: Path) -> None:
    async with await open_store(f"sqlite:///{tmp_path}/c.db", migrate=True) as real:
        await real.put_prompt(PROMPT)
        store = HeldReads(real)
        with anyio.fail_after(TIMEOUT), capture_logs():
            async with anyio.create_task_group() as tg:
                ref = await spawn(tg, PromptCache(store))  # type: ignore[arg-type]
                cache = PromptCacheClient(ref)

                async def get() -> None:
                    with pytest.raises(ActorDead):
                        await cache.get("p1")

                async with anyio.create_task_group() as inner:
                    inner.start_soon(get)
                    await until(lambda: store.reads >= 1)
                    await ref.stop()
        assert store.reads == 1

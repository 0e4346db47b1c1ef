"""The runtime on the memory store in virtual time: what ``chaos --simulate`` builds on."""

from __future__ import annotations

import anyio
import pytest
import trio.testing

from promptactors import PromptDefinition, RuntimeSettings, TurnResult, open_runtime
from promptactors.store import MemoryStore

PROMPT = PromptDefinition.model_validate(
    {
        "id": "greet",
        "name": "Greet",
        "messages": [{"role": "user", "content": "Say hello to {{who}}."}],
        "variables": [{"name": "who"}],
        "settings": {"model": "simulated"},
    }
)


@pytest.mark.trio
async def test_fifty_instances_complete_their_turns_on_memory_in_virtual_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """50 instances each execute two turns on memory:// under MockClock(autojump_threshold=0):
    every task completes once and each run's rows agree with its conversation."""
    settings = RuntimeSettings(
        database_url="memory://", simulated_tokens=8, simulated_latency=0.05, retry_backoff=0.0
    )
    results: dict[int, tuple[TurnResult, TurnResult]] = {}
    async with open_runtime(settings) as rt:
        assert isinstance(rt.store, MemoryStore)

        async def converse(i: int) -> None:
            inst = await rt.start_instance(prompt=PROMPT, variables={"who": f"user-{i}"})
            first = await inst.execute()
            second = await inst.execute("And again?")
            results[i] = (first, second)
            await inst.stop()

        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(converse, i)
        await rt.tracker.flush()

        assert len(results) == 50
        runs = await rt.store.list_runs(limit=-1)
        assert len(runs) == 50
        assert {r.status for r in runs} == {"completed"}
        for first, second in results.values():
            assert first.run_id == second.run_id
        for run in runs:
            tasks = await rt.store.list_tasks(run.id)
            assert [t.status for t in tasks] == ["completed", "completed"]
            assert [m["role"] for m in run.messages] == ["assistant", "user", "assistant"]
            assert [m["content"] for m in run.messages if m["role"] == "assistant"] == [
                t.response_text for t in tasks
            ]
            assert run.stats.task_count == 2
            assert run.stats.output_tokens == sum(t.output_tokens or 0 for t in tasks) == 16
            assert run.stats.total_tokens == sum(
                (t.input_tokens or 0) + (t.output_tokens or 0) for t in tasks
            )
            assert run.owner_id is None
        assert (await rt.store.find_unfinished()).runs == ()
    # two turns of 8 tokens, 50 ms apart: the clock moved, in virtual time only
    assert autojump_clock.current_time() >= 0.8

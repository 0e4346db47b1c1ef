"""``Store.list_prompts`` and ``Store.count_by_status``: the same on SQLite and PostgreSQL."""

from __future__ import annotations

import anyio
import pytest

from promptactors._exceptions import InvalidInput
from promptactors.store import (
    CreateRun,
    CreateTask,
    FailTask,
    PromptMessageRow,
    PromptRecord,
    UpdateRun,
    open_store,
)

TIMEOUT = 20


def prompt(prompt_id: str, name: str = "P") -> PromptRecord:
    return PromptRecord(id=prompt_id, name=name, messages=(PromptMessageRow("user", "hi"),))


@pytest.mark.anyio
async def test_list_prompts_gives_one_table_in_id_order_up_to_the_limit(store_url: str) -> None:
    """Prompts come back whole, ordered by id, from the table asked for only, at most ``limit``."""
    with anyio.fail_after(TIMEOUT):
        async with await open_store(store_url, migrate=True) as store:
            assert await store.list_prompts() == []
            for prompt_id in ("b", "c", "a"):
                await store.put_prompt(prompt(prompt_id, name=f"name {prompt_id}"))
            await store.put_prompt(prompt("builtin"), "prompt_builtins")

            listed = await store.list_prompts()
            assert listed == [prompt(i, name=f"name {i}") for i in ("a", "b", "c")]
            assert [p.id for p in await store.list_prompts(limit=2)] == ["a", "b"]
            assert await store.list_prompts("prompt_builtins") == [prompt("builtin")]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "nowhere"}, "prompt source must be one of prompts, prompt_builtins"),
        ({"limit": 0}, "limit must be a positive integer, got 0"),
    ],
    ids=["unknown-source", "zero-limit"],
)
async def test_list_prompts_refuses_a_bad_source_or_limit(
    store_url: str, kwargs: dict[str, object], message: str
) -> None:
    """An unknown table or a limit below one raises ``InvalidInput`` before any query."""
    with anyio.fail_after(TIMEOUT):
        async with await open_store(store_url, migrate=True) as store:
            with pytest.raises(InvalidInput, match=message):
                await store.list_prompts(**kwargs)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_count_by_status_counts_runs_and_tasks_per_status(store_url: str) -> None:
    """Counts are per table and status; a status no row has is absent."""
    with anyio.fail_after(TIMEOUT):
        async with await open_store(store_url, migrate=True) as store:
            assert await store.count_by_status() == {"runs": {}, "tasks": {}}
            await store.apply([CreateRun("r1"), CreateRun("r2")])
            await store.apply([CreateTask("t1", "r1", provider="p", model="m")])
            await store.apply([CreateTask("t2", "r2", provider="p", model="m")])
            await store.fail_task(FailTask("t2", "boom"))
            await store.update_run(UpdateRun("r2", status="failed", error="boom"))

            assert await store.count_by_status() == {
                "runs": {"running": 1, "failed": 1},
                "tasks": {"running": 1, "failed": 1},
            }

"""Helpers the store contract suites share: an opened store, raw SQL behind its back,
and the write operations of a typical turn."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from promptactors.store import (
    CreateTask,
    FinishTurn,
    Store,
    open_store,
)

TIMEOUT = 20


@asynccontextmanager
async def opened(url: str, **kwargs: Any) -> AsyncIterator[Store]:
    """The store at ``url``, migrated, closed afterwards."""
    with anyio.fail_after(TIMEOUT):
        store = await open_store(url, migrate=True, **kwargs)
    try:
        yield store
    finally:
        with anyio.fail_after(TIMEOUT):
            await store.close()


async def raw_execute(url: str, sql: str) -> None:
    """Run ``sql`` on the database behind the store's back."""
    if url.startswith("sqlite:"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            conn.execute(sql)
            conn.commit()
        finally:
            conn.close()
        return

    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    await anyio.to_thread.run_sync(asyncio.run, go())


def conversation(*texts: str) -> list[dict[str, str]]:
    roles = ["user", "assistant"]
    return [{"role": roles[i % 2], "content": text} for i, text in enumerate(texts)]


REQUEST = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]


def new_task(task_id: str, run_id: str | None = "run-1", attempt: int = 1) -> CreateTask:
    return CreateTask(
        task_id, run_id, provider="simulated", model="sim-1", request=REQUEST, attempt=attempt
    )


def finish(
    task_id: str, text: str = "hello", messages: list[dict[str, str]] | None = None
) -> FinishTurn:
    return FinishTurn(
        task_id,
        text,
        run_messages=conversation("hi", text) if messages is None else messages,
        input_tokens=10,
        output_tokens=5,
        cost=0.25,
        time_to_first_token=0.1,
        total_time=0.5,
        finish_reason="stop",
    )

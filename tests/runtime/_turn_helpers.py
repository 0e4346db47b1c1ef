"""Helpers of the turn-contract tests: a runtime on a SQLite file, bounded waits, row checks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel

from promptactors import PromptDefinition, Runtime, RuntimeSettings, open_runtime
from promptactors.providers import Provider
from promptactors.store import Store, WriteOp

PROMPT = PromptDefinition.model_validate(
    {
        "id": "turns",
        "name": "Turns",
        "messages": [{"role": "system", "content": "Be brief."}],
        "settings": {"model": "simulated"},
    }
)


@asynccontextmanager
async def runtime(
    tmp_path: Path, provider: Provider | None = None, store: Store | None = None, **overrides: Any
) -> AsyncIterator[Runtime]:
    """A runtime on a fresh SQLite file, bounded to 60 seconds."""
    settings = RuntimeSettings(
        database_url=f"sqlite:///{tmp_path}/turns.db",
        simulated_tokens=overrides.pop("tokens", 5),
        simulated_latency=overrides.pop("latency", 0.0),
        retry_backoff=overrides.pop("retry_backoff", 0.0),
        **overrides,
    )
    with anyio.fail_after(60):
        async with open_runtime(settings, provider=provider, store=store) as rt:
            yield rt


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    """Wait (bounded) until ``check()`` holds; each check is a round trip to an actor."""
    with anyio.fail_after(timeout):
        # Polling an actor's state, not sleeping for time: each check is an ask.
        while not await check():
            await anyio.lowlevel.checkpoint()


async def running_rows(rt: Runtime) -> list[str]:
    """Every run or task row still ``running``, after the tracker committed what it holds."""
    await rt.tracker.flush()
    found = []
    for run in await rt.store.list_runs(limit=10_000):
        if run.status == "running":
            found.append(f"run {run.id}")
        tasks = await rt.store.list_tasks(run.id)
        found += [f"task {t.id}" for t in tasks if t.status == "running"]
    return found


class GatedStore:
    """A store whose ``apply`` waits at ``gate`` for batches holding an op of ``kind``."""

    def __init__(self, inner: Store, kind: type[WriteOp]) -> None:
        self._inner = inner
        self._kind = kind
        self.entered = anyio.Event()
        self.gate = anyio.Event()

    async def apply(self, ops: Sequence[WriteOp]) -> None:
        if any(isinstance(op, self._kind) for op in ops):
            self.entered.set()
            await self.gate.wait()
        await self._inner.apply(ops)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

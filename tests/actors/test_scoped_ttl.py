"""The scoped-variables TTL runs from the start of the read that filled the entry."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import trio
import trio.testing

from promptactors import spawn
from promptactors.actors import ScopedVariablesCache, ScopedVariablesCacheClient
from promptactors.store import Store, open_store

READ_SECONDS = 20.0
TTL = 60.0


class SlowReads:
    """A store whose scoped-variables read takes ``READ_SECONDS`` (virtual) seconds."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.reads: list[float] = []

    async def get_scoped_variables(
        self, user_id: str | None = None, org_id: str | None = None, project_id: str | None = None
    ) -> Any:
        self.reads.append(trio.current_time())
        await trio.sleep(READ_SECONDS)
        return await self._inner.get_scoped_variables(user_id, org_id, project_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.mark.trio
async def test_a_slow_read_expires_ttl_seconds_after_it_began(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A read taking 20 s under a 60 s TTL: the entry is served until start+60 s and read
    again just after, not kept until the read's end + 60 s."""
    with trio.fail_after(3600):
        async with await open_store("memory://", migrate=True) as inner:
            await inner.set_scoped_variable("user", "u1", "user_name", "Ada")
            store = SlowReads(inner)
            async with anyio.create_task_group() as tg:
                ref = await spawn(tg, ScopedVariablesCache(store, ttl=TTL))  # type: ignore[arg-type]
                cache = ScopedVariablesCacheClient(ref, timeout=None)
                began = trio.current_time()
                await cache.get("u1", None, None)
                assert trio.current_time() == began + READ_SECONDS
                await trio.sleep(TTL - READ_SECONDS - 1)  # start + 59 s: fresh
                await cache.get("u1", None, None)
                assert store.reads == [began]
                await trio.sleep(2)  # start + 61 s: expired (the read's end + 41 s)
                await cache.get("u1", None, None)
                assert store.reads == [began, began + TTL + 1]
                await ref.stop()

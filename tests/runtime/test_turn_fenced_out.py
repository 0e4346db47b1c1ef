"""A run taken over by another executor while a turn runs: the instance is fenced out.

On a real SQLite file. The executor's heartbeat is stalled (its lease renewals do nothing,
as in a paused process), so its lease expires and a second executor reclaims the run with
a grown fence while the turn streams. Then the old instance's writes are refused with
``StaleFence``: its turn must end with that error (never a false answer, never a hang),
and the instance must stop touching the run and stop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from promptactors import RuntimeSettings, open_runtime
from promptactors._exceptions import ActorDead, InstanceNotFound, StaleFence
from promptactors.store import Store, open_store
from promptactors.testing import Pause, ScriptedProvider

PROMPT = {"id": "p", "messages": [{"role": "user", "content": "hi"}]}
LEASE = 0.3


class StalledHeartbeat:
    """A store whose lease renewals do nothing: the executor looks paused to the others."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner

    async def renew_leases(self, executor_id: str, lease_seconds: float) -> tuple[bool, int]:
        return True, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def _take_over(url: str, run_id: str) -> int:
    """Another executor reclaims ``run_id`` once its lease has expired; its new fence."""
    other = await open_store(url)
    try:
        while True:
            taken = await other.reclaim_expired("thief", 30.0)
            if any(run.id == run_id for run in taken):
                return (await other.get_run(run_id)).fence
            await anyio.sleep(0.05)
    finally:
        await other.close()


@pytest.mark.anyio
@pytest.mark.parametrize("when", ["streaming", "before_first_token"])
async def test_a_fenced_out_turn_fails_with_stale_fence_and_the_instance_stops(
    tmp_path: Path, when: str
) -> None:
    url = f"sqlite:///{tmp_path / 'fence.db'}"
    script: list[Any] = ["one ", Pause(1.0), "two"] if when == "streaming" else [Pause(1.0), "two"]
    provider = ScriptedProvider([["first answer"], script, ["never"]])
    settings = RuntimeSettings(
        database_url=url,
        executor_id="paused",
        lease_seconds=LEASE,
        reclaim_interval=60.0,
        simulated_latency=0.0,
    )
    with anyio.fail_after(30):
        store = StalledHeartbeat(await open_store(url, migrate=True))
        try:
            async with open_runtime(settings, store=store, provider=provider) as rt:  # type: ignore[arg-type]
                handle = await rt.start_instance(prompt=PROMPT)
                first = await handle.execute()
                run_id = first.run_id
                assert run_id is not None
                ticket = await handle.start_turn("again")
                fence = await _take_over(url, run_id)
                assert fence == 2
                before = await store.get_run(run_id)
                with pytest.raises(StaleFence, match="taken over by another executor"):
                    await ticket.wait(timeout=10)
                # The instance stops: it no longer owns its run.
                with anyio.fail_after(5):
                    while True:
                        try:
                            await rt.instance(handle.instance_id)
                        except InstanceNotFound:
                            break
                        await anyio.sleep(0.02)
                with pytest.raises((ActorDead, InstanceNotFound)):
                    await handle.execute("more")
                await rt.tracker.flush()
                after = await store.get_run(run_id)
                # Nothing of the old owner reached the run after the takeover.
                assert (after.owner_id, after.fence, after.status) == ("thief", 2, "running")
                assert after.messages == before.messages
                assert "two" not in str(after.messages)
                tasks = await store.list_tasks(run_id)
                assert not any(t.response_text and "two" in t.response_text for t in tasks)
                assert provider.remaining == 1  # no further attempt was made
        finally:
            await store.close()

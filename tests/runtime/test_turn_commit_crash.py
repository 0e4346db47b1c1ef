"""A crash while the answer's commit waits: the turn is answered only once committed.

The commit's wait is cancelled with the incarnation; the answer must not be given then
(its write may never have reached the run tracker: a full mailbox under a store outage
refuses it). The next incarnation replays the commit, and the caller hears the answer
after it is stored.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from promptactors.providers import Usage
from promptactors.store import FinishTurn, open_store
from promptactors.testing import ScriptedProvider, crash_actor

from ._turn_helpers import PROMPT, GatedStore, running_rows, runtime

pytestmark = pytest.mark.anyio


async def test_a_crash_during_the_commit_answers_only_after_the_commit(tmp_path: Path) -> None:
    async with await open_store(f"sqlite:///{tmp_path}/gated.db", migrate=True) as inner:
        store = GatedStore(inner, FinishTurn)
        provider = ScriptedProvider([["the ", "answer", Usage(4, 2)]])
        async with runtime(tmp_path, provider, store=store) as rt:  # type: ignore[arg-type]
            inst = await rt.start_instance(prompt=PROMPT)
            ticket = await inst.start_turn("q")
            with anyio.fail_after(10):
                await store.entered.wait()
            assert crash_actor(inst._ref)
            await anyio.sleep(0.2)  # the next incarnation is up and replays the commit
            assert not ticket.done  # not answered: the answer is not stored yet
            store.gate.set()
            result = await ticket.wait(10)
            assert result.text == "the answer"
            tasks = await rt.store.list_tasks(result.run_id or "")
            assert [(t.status, t.response_text) for t in tasks] == [("completed", "the answer")]
            assert (await inst.snapshot()).status == "completed"
            await inst.stop()
            assert await running_rows(rt) == []

"""A crash while the answer's commit waits: the turn is answered only once committed.

The commit's wait is cancelled with the incarnation; the answer must not be given then
(its write may never have reached the run tracker: a full mailbox under a store outage
refuses it). The next incarnation replays the commit, and the caller hears the answer
after it is stored. A change of the state made while the commit waits is kept: the answer
is applied over it.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from promptactors.providers import Usage
from promptactors.state import import_journal, replay, snapshot
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


async def test_a_change_made_while_the_answer_commits_is_kept_with_the_answer(
    tmp_path: Path,
) -> None:
    """A variable set while the answer's commit waits for the store stays set, and the
    answer is applied over it: the snapshot has both, and the journal replays to it."""
    async with await open_store(f"sqlite:///{tmp_path}/gated.db", migrate=True) as inner:
        store = GatedStore(inner, FinishTurn)
        provider = ScriptedProvider([["the ", "answer", Usage(4, 2)]])
        async with runtime(tmp_path, provider, store=store) as rt:  # type: ignore[arg-type]
            inst = await rt.start_instance(prompt=PROMPT)
            ticket = await inst.start_turn("q")
            with anyio.fail_after(10):
                await store.entered.wait()
            await inst.update_variable("tone", "dry")
            store.gate.set()
            result = await ticket.wait(10)
            assert result.text == "the answer"
            snap = await inst.snapshot()
            assert snap.variables.user_values == {"tone": "dry"}
            assert [(m.role, m.content) for m in snap.conversation.messages] == [
                ("user", "q"),
                ("assistant", "the answer"),
            ]
            assert snapshot(replay(import_journal(await inst.export_journal()))) == snap

"""The turn contract through the public API: one outcome per accepted turn, memory and
database agreeing, status telling the truth, on_busy, stop at every phase."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from promptactors import (
    ActorDead,
    AttemptsExhausted,
    ConfigurationError,
    ExecutionStatus,
    IllegalTransition,
    ProviderBadRequest,
    ProviderRateLimited,
    TurnCancelled,
    TurnInProgress,
)
from promptactors.providers import Usage
from promptactors.store import FinishTurn, open_store
from promptactors.testing import Pause, ScriptedProvider

from ._turn_helpers import PROMPT, GatedStore, running_rows, runtime, until

pytestmark = pytest.mark.anyio


async def test_a_second_turn_during_the_retry_backoff_is_refused_and_the_first_answered(
    tmp_path: Path,
) -> None:
    """While a retry is pending the instance is in its turn: status executing, not ready,
    a second turn gets TurnInProgress, clearing is refused, and the first caller is answered."""
    provider = ScriptedProvider(
        [[ProviderRateLimited("slow down", retry_after=0.2)], ["fine", Usage(3, 1)]]
    )
    async with runtime(tmp_path, provider) as rt:
        inst = await rt.start_instance(prompt=PROMPT)
        ticket = await inst.start_turn("hi")

        async def in_backoff() -> bool:
            snap = await inst.snapshot()
            return snap.execution.current_task_id != ticket.first_task_id

        await until(in_backoff, "the retry backoff")
        snap = await inst.snapshot()
        assert snap.status is ExecutionStatus.EXECUTING
        assert not await inst.is_ready()
        with pytest.raises(TurnInProgress):
            await inst.start_turn("again")
        with pytest.raises(IllegalTransition):
            await inst.clear_conversation()
        result = await ticket.wait(10)
        assert (result.text, result.attempts) == ("fine", 2)
        messages = await inst.conversation_messages()
        assert [(m.role, m.content) for m in messages] == [("user", "hi"), ("assistant", "fine")]


async def test_a_turn_that_fails_for_good_is_saved_to_the_run_with_its_marker(
    tmp_path: Path,
) -> None:
    """A failed turn's user message is in ai_runs.messages marked failed, with its task."""
    provider = ScriptedProvider([[ProviderBadRequest("no such thing", retryable=False)]])
    async with runtime(tmp_path, provider) as rt:
        inst = await rt.start_instance(prompt=PROMPT)
        ticket = await inst.start_turn("hello")
        with pytest.raises(ProviderBadRequest):
            await ticket.wait(10)
        await rt.tracker.flush()
        run = (await rt.store.list_runs(limit=1))[0]
        assert [(m["role"], m.get("failed")) for m in run.messages] == [("user", True)]
        assert "no such thing" in run.messages[0]["error"]
        assert [t.status for t in await rt.store.list_tasks(run.id)] == ["failed"]


async def test_a_prompt_naming_an_unknown_provider_fails_at_start(tmp_path: Path) -> None:
    """Bad configuration fails start_instance with an error naming it; nothing starts."""
    async with runtime(tmp_path) as rt:
        with pytest.raises(ConfigurationError, match="'nowhere'"):
            await rt.start_instance(prompt=PROMPT, settings={"provider": "nowhere"})
        assert await rt.instance_count() == 0


async def test_stop_before_the_turn_wrote_anything_cancels_it(tmp_path: Path) -> None:
    """A stop right after the turn was accepted cancels it; no row is left running."""
    async with runtime(tmp_path, ScriptedProvider(default=["late"])) as rt:
        inst = await rt.start_instance(prompt=PROMPT)
        ticket = await inst.start_turn("hi")
        await inst.stop()
        with pytest.raises(TurnCancelled):
            await ticket.wait(10)
        assert await running_rows(rt) == []


async def test_stop_while_streaming_keeps_the_partial_answer_everywhere(tmp_path: Path) -> None:
    """Stop mid-stream: TurnCancelled with the partial text, a partial assistant message in
    memory and in the run, the task interrupted, the run interrupted (not failed) saying it
    was cancelled, nothing running."""
    provider = ScriptedProvider([["Hal", "f ", Pause(30), "never"]])
    async with runtime(tmp_path, provider) as rt:
        inst = await rt.start_instance(prompt=PROMPT)
        async with inst.stream("go") as turn:
            seen = ""
            async for chunk in turn:
                seen += chunk.text
                if seen == "Half ":
                    break
            await inst.stop()
            with pytest.raises(TurnCancelled) as cancelled:
                await turn.result()
        assert cancelled.value.partial_text == "Half "
        assert await running_rows(rt) == []
        run = (await rt.store.list_runs(limit=1))[0]
        assert [(m["role"], m.get("partial", False)) for m in run.messages] == [
            ("user", False),
            ("assistant", True),
        ]
        assert run.messages[1]["content"] == "Half "
        tasks = await rt.store.list_tasks(run.id)
        assert [(t.status, t.response_text) for t in tasks] == [("interrupted", "Half ")]
        assert (run.status, run.error) == (
            "interrupted",
            "cancelled: the instance was stopped",
        )


async def test_stop_during_the_backoff_cancels_the_pending_retry(tmp_path: Path) -> None:
    """Stop while a retry waits: the turn is cancelled, the provider is not called again."""
    provider = ScriptedProvider([[ProviderRateLimited("slow", retry_after=30.0)]])
    async with runtime(tmp_path, provider) as rt:
        inst = await rt.start_instance(prompt=PROMPT)
        ticket = await inst.start_turn("hi")

        async def in_backoff() -> bool:
            snap = await inst.snapshot()
            return snap.execution.current_task_id != ticket.first_task_id

        await until(in_backoff, "the retry backoff")
        await inst.stop()
        with pytest.raises(TurnCancelled):
            await ticket.wait(10)
        assert len(provider.requests) == 1
        assert await running_rows(rt) == []
        run = (await rt.store.list_runs(limit=1))[0]
        assert [t.status for t in await rt.store.list_tasks(run.id)] == ["failed"]


async def test_stop_during_the_answers_commit_answers_the_turn(tmp_path: Path) -> None:
    """Once the answer's commit started, a stop waits for it: the caller gets the answer,
    and memory and database agree that the turn was answered."""
    async with await open_store(f"sqlite:///{tmp_path}/gated.db", migrate=True) as inner:
        store = GatedStore(inner, FinishTurn)
        provider = ScriptedProvider([["the ", "answer", Usage(4, 2)]])
        async with runtime(tmp_path, provider, store=store) as rt:  # type: ignore[arg-type]
            inst = await rt.start_instance(prompt=PROMPT)
            ticket = await inst.start_turn("q")
            with anyio.fail_after(10):
                await store.entered.wait()

            async def stopping() -> bool:
                try:
                    await inst.snapshot()
                except ActorDead:
                    return True
                return False

            async with anyio.create_task_group() as tg:
                tg.start_soon(inst.stop)
                await until(stopping, "the stop to begin")
                store.gate.set()
            result = await ticket.wait(10)
            assert result.text == "the answer"
            assert await running_rows(rt) == []
            tasks = await rt.store.list_tasks(result.run_id or "")
            assert [(t.status, t.response_text) for t in tasks] == [("completed", "the answer")]
            run = await rt.store.get_run(result.run_id or "")
            assert [m["role"] for m in run.messages] == ["user", "assistant"]
            assert run.status == "completed"


async def test_stop_with_drain_lets_the_running_turn_finish(tmp_path: Path) -> None:
    """stop(drain=True) waits for the running turn: it is answered, then the instance stops."""
    provider = ScriptedProvider([["slow", Pause(0.05), " answer"]])
    async with runtime(tmp_path, provider) as rt:
        inst = await rt.start_instance(prompt=PROMPT)
        ticket = await inst.start_turn("q")
        await inst.stop(drain=True)
        assert (await ticket.wait(10)).text == "slow answer"
        assert not inst.is_alive
        assert await running_rows(rt) == []


async def test_on_busy_enqueue_runs_turns_in_order_and_bounds_the_queue(tmp_path: Path) -> None:
    """Queued turns run one after another in FIFO order; a full queue refuses more."""
    provider = ScriptedProvider([["one", Pause(0.05)], ["two"], ["three"]])
    async with runtime(tmp_path, provider) as rt:
        inst = await rt.start_instance(
            prompt=PROMPT, execution_config={"on_busy": "enqueue", "max_queued_turns": 2}
        )
        tickets = [await inst.start_turn(q) for q in ("a", "b", "c")]
        with pytest.raises(TurnInProgress, match="queue is full"):
            await inst.start_turn("d")
        results = [await t.wait(10) for t in tickets]
        assert [r.text for r in results] == ["one", "two", "three"]
        messages = await inst.conversation_messages()
        assert [m.content for m in messages] == ["a", "one", "b", "two", "c", "three"]


async def test_on_busy_interrupt_cancels_the_running_turn_keeping_its_partial_output(
    tmp_path: Path,
) -> None:
    """A new turn interrupts the running one: it is cancelled with its partial text kept as
    a partial assistant message, and the new turn is answered."""
    provider = ScriptedProvider([["par", "tial", Pause(30), "never"], ["second"]])
    async with runtime(tmp_path, provider) as rt:
        inst = await rt.start_instance(prompt=PROMPT, execution_config={"on_busy": "interrupt"})
        async with inst.stream("first") as turn:
            seen = ""
            async for chunk in turn:
                seen += chunk.text
                if seen == "partial":
                    break
            second = await inst.start_turn("next")
            with pytest.raises(TurnCancelled) as cancelled:
                await turn.result()
        assert cancelled.value.partial_text == "partial"
        assert (await second.wait(10)).text == "second"
        messages = await inst.conversation_messages()
        assert [(m.content, m.partial) for m in messages] == [
            ("first", False),
            ("partial", True),
            ("next", False),
            ("second", False),
        ]
        await rt.tracker.flush()
        run = (await rt.store.list_runs(limit=1))[0]
        assert sorted(t.status for t in await rt.store.list_tasks(run.id)) == [
            "completed",
            "interrupted",
        ]


async def test_a_caller_timeout_leaves_the_outcome_to_a_later_wait(tmp_path: Path) -> None:
    """After wait(timeout) times out, wait() still yields the final outcome, as committed."""
    provider = ScriptedProvider([["a", Pause(0.2), "b"]])
    async with runtime(tmp_path, provider) as rt:
        inst = await rt.start_instance(prompt=PROMPT)
        ticket = await inst.start_turn("q")
        with pytest.raises(TimeoutError):
            await ticket.wait(0.01)
        with anyio.fail_after(10):
            result = await ticket.wait()
        assert result.text == "ab"
        task = await rt.store.get_task(result.task_id)
        assert (task.status, task.response_text) == ("completed", "ab")


async def test_retries_exhausted_surface_as_attempts_exhausted_not_as_a_cancel(
    tmp_path: Path,
) -> None:
    """A turn failing every attempt fails with AttemptsExhausted and is saved as failed."""
    provider = ScriptedProvider(default=[ProviderRateLimited("busy", retry_after=0.0)])
    async with runtime(tmp_path, provider, max_attempts=2) as rt:
        inst = await rt.start_instance(prompt=PROMPT)
        with pytest.raises(AttemptsExhausted, match="2 attempts"):
            await inst.execute("x")
        assert await running_rows(rt) == [f"run {(await rt.store.list_runs(limit=1))[0].id}"]
        await inst.stop()
        assert await running_rows(rt) == []

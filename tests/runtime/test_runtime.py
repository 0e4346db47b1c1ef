"""The runtime end to end: instances, turns, tracking, actions, recovery from crashes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from promptactors import (
    ActionNotFound,
    AttemptsExhausted,
    BrokerContext,
    BrokerError,
    BrokerRegistry,
    ChatNotAllowed,
    ExecutionStatus,
    InjectedFault,
    InvalidInput,
    MissingVariables,
    PromptDefinition,
    PromptNotFound,
    ProviderBadRequest,
    Runtime,
    RuntimeSettings,
    StoreBroker,
    TurnCancelled,
    TurnInProgress,
    open_runtime,
)
from promptactors.providers import Provider, TextDelta, Usage
from promptactors.state import import_journal, replay, snapshot
from promptactors.store import ActionRecord, PromptMessageRow, PromptRecord, VariableDefaultRow
from promptactors.testing import ScriptedProvider

PROMPT = PromptDefinition.model_validate(
    {
        "id": "greet",
        "name": "Greet",
        "messages": [
            {"role": "system", "content": "You greet {{who}} on {{current_date}}."},
            {"role": "user", "content": "Say hello to {{who}} from {{place}}."},
        ],
        "variables": [{"name": "who", "default": "world"}, {"name": "place"}],
        "settings": {"model": "simulated"},
    }
)

StartRuntime = Callable[..., Any]


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/runtime.db"


@pytest.fixture
def start(database: str) -> StartRuntime:
    """Open a runtime on a fresh SQLite file with fast, deterministic settings."""

    @asynccontextmanager
    async def start(
        provider: Provider | None = None, url: str | None = None, **overrides: Any
    ) -> AsyncIterator[Runtime]:
        settings = RuntimeSettings(
            database_url=url or database,
            simulated_tokens=overrides.pop("tokens", 5),
            simulated_latency=overrides.pop("latency", 0.0),
            retry_backoff=0.0,
            **overrides,
        )
        with anyio.fail_after(60):
            async with open_runtime(settings, provider=provider) as rt:
                yield rt

    return start


async def _store_prompt(
    rt: Runtime, prompt: PromptDefinition = PROMPT, source: str = "prompts"
) -> None:
    await rt.store.put_prompt(
        PromptRecord(
            id=prompt.id,
            name=prompt.name,
            messages=tuple(PromptMessageRow(m.role, m.content) for m in prompt.messages),
            variable_defaults=tuple(
                VariableDefaultRow(v.name, v.default) for v in prompt.variables
            ),
            settings=dict(prompt.settings),
        ),
        source,  # type: ignore[arg-type]
    )


@pytest.mark.anyio
async def test_a_tracked_turn_commits_its_run_and_task(start: StartRuntime) -> None:
    """One execution creates the run, completes the task, saves the conversation."""
    async with start() as rt:
        inst = await rt.start_instance(prompt=PROMPT, variables={"place": "Paris"})
        result = await inst.execute()
        assert result.output_tokens == 5
        assert result.attempts == 1
        assert result.run_id is not None
        run = await rt.store.get_run(result.run_id)
        assert [m["role"] for m in run.messages] == ["assistant"]
        assert run.messages[0]["content"] == result.text
        tasks = await rt.store.list_tasks(result.run_id)
        assert [(t.status, t.output_tokens) for t in tasks] == [("completed", 5)]
        assert tasks[0].request[1]["content"] == "Say hello to world from Paris."
        assert not await inst.has_unsaved_changes()
        assert (await inst.snapshot()).status is ExecutionStatus.COMPLETED


@pytest.mark.postgres
@pytest.mark.anyio
async def test_a_tracked_turn_commits_to_postgresql(start: StartRuntime, postgres_url: str) -> None:
    """The same turn, tracked in PostgreSQL through the asyncpg adapter."""
    async with start(url=postgres_url) as rt:
        inst = await rt.start_instance(prompt=PROMPT, variables={"place": "Lyon"})
        first = await inst.execute()
        second = await inst.execute("And again?")
        run = await rt.store.get_run(first.run_id or "")
        assert [m["role"] for m in run.messages] == ["assistant", "user", "assistant"]
        assert second.run_id == first.run_id
        assert run.stats.task_count == 2


@pytest.mark.anyio
async def test_missing_variables_block_execution_naming_every_one(start: StartRuntime) -> None:
    """A turn whose templates need values no layer gives is refused, naming them all."""
    async with start() as rt:
        inst = await rt.start_instance(prompt=PROMPT)
        readiness = await inst.is_ready()
        assert not readiness
        assert readiness.missing == ("place",)
        with pytest.raises(MissingVariables, match="place"):
            await inst.execute()
        assert (await inst.snapshot()).status is ExecutionStatus.READY
        await inst.update_variable("place", "Rome")
        assert (await inst.execute()).text


@pytest.mark.anyio
async def test_a_second_turn_needs_allow_chat(start: StartRuntime) -> None:
    """With allow_chat off, the first answer is the last."""
    async with start() as rt:
        inst = await rt.start_instance(
            prompt=PROMPT, variables={"place": "Oslo"}, execution_config={"allow_chat": False}
        )
        await inst.execute()
        with pytest.raises(ChatNotAllowed):
            await inst.execute("more")


@pytest.mark.anyio
async def test_auto_run_executes_at_start(start: StartRuntime) -> None:
    """auto_run starts the first turn as soon as the instance starts."""
    async with start() as rt:
        inst = await rt.start_instance(
            prompt=PROMPT, variables={"place": "Bern"}, execution_config={"auto_run": True}
        )
        ticket = await inst.current_turn()
        assert ticket is not None
        await ticket.wait(10)
        messages = await inst.conversation_messages()
        assert [m.role for m in messages] == ["assistant"]


@pytest.mark.anyio
async def test_streaming_yields_the_answer_in_chunks(start: StartRuntime) -> None:
    """A streamed turn's chunks join to the committed answer."""
    provider = ScriptedProvider([["Hel", "lo ", "there", Usage(7, 3)]])
    async with start(provider) as rt:
        inst = await rt.start_instance(prompt=PROMPT, variables={"place": "Kyiv"})
        async with inst.stream() as turn:
            chunks = [chunk.text async for chunk in turn]
            result = await turn.result()
        assert "".join(chunks) == result.text == "Hello there"
        assert (result.input_tokens, result.output_tokens) == (7, 3)


@pytest.mark.anyio
async def test_a_retryable_failure_is_retried_and_leaves_one_answer(start: StartRuntime) -> None:
    """A fault before the first token fails the attempt; the retry answers; one answer stays."""
    provider = ScriptedProvider(
        [[InjectedFault("boom", retryable=True)], ["second ", "try", Usage(5, 2)]]
    )
    async with start(provider) as rt:
        inst = await rt.start_instance(prompt=PROMPT, variables={"place": "Rabat"})
        result = await inst.execute("hi")
        assert result.attempts == 2
        assert result.text == "second try"
        messages = await inst.conversation_messages()
        assert [(m.role, m.failed) for m in messages] == [("user", False), ("assistant", False)]
        tasks = await rt.store.list_tasks(result.run_id or "")
        assert sorted(t.status for t in tasks) == ["completed", "failed"]


@pytest.mark.anyio
async def test_a_turn_failing_every_attempt_marks_the_user_message_failed(
    start: StartRuntime,
) -> None:
    """After the last attempt the caller gets AttemptsExhausted and the message says failed."""
    provider = ScriptedProvider(default=[InjectedFault("always", retryable=True)])
    async with start(provider, max_attempts=2) as rt:
        inst = await rt.start_instance(prompt=PROMPT, variables={"place": "Lima"})
        with pytest.raises(AttemptsExhausted, match="2 attempts"):
            await inst.execute("hello?")
        messages = await inst.conversation_messages()
        assert [(m.role, m.failed) for m in messages] == [("user", True)]
        assert (await inst.snapshot()).status is ExecutionStatus.ERROR
        await inst.stop()
        await rt.tracker.flush()
        runs = await rt.store.list_runs(limit=1)
        assert (runs[0].status, runs[0].error) == ("failed", "always")


@pytest.mark.anyio
async def test_a_non_retryable_provider_error_reaches_the_caller_at_once(
    start: StartRuntime,
) -> None:
    """A rejected request is not retried: the caller gets the provider's error."""
    provider = ScriptedProvider([[ProviderBadRequest("bad model", retryable=False)]])
    async with start(provider) as rt:
        inst = await rt.start_instance(prompt=PROMPT, variables={"place": "Quito"})
        with pytest.raises(ProviderBadRequest, match="bad model"):
            await inst.execute()


class _CrashingProvider:
    """Streams a little, then raises a bug (not a ProviderError) once: the actor crashes."""

    name = "simulated"

    def __init__(self) -> None:
        self.calls = 0

    @asynccontextmanager
    async def stream(self, request: Any) -> AsyncIterator[Any]:
        self.calls += 1
        call = self.calls

        async def events() -> AsyncIterator[Any]:
            yield TextDelta("partial ")
            await anyio.lowlevel.checkpoint()
            if call == 1:
                raise RuntimeError("bug in the stream")
            yield TextDelta("answer")
            from promptactors.providers import StreamEnd

            yield StreamEnd(Usage(4, 2), "stop")

        yield events()

    async def aclose(self) -> None:
        pass


@pytest.mark.anyio
async def test_a_crash_mid_stream_restarts_the_instance_and_the_turn_is_answered_once(
    start: StartRuntime,
) -> None:
    """The supervisor restarts the crashed instance; its task is marked interrupted with the
    partial output, the turn is retried, and the caller gets exactly one answer."""
    provider = _CrashingProvider()
    async with start(provider) as rt:  # type: ignore[arg-type]
        inst = await rt.start_instance(prompt=PROMPT, variables={"place": "Accra"})
        result = await inst.execute("go")
        assert result.text == "partial answer"
        assert result.attempts == 2
        messages = await inst.conversation_messages()
        assert [m.role for m in messages] == ["user", "assistant"]
        tasks = {t.status: t for t in await rt.store.list_tasks(result.run_id or "")}
        assert set(tasks) == {"interrupted", "completed"}
        assert tasks["interrupted"].response_text == "partial "
        assert (await rt.instance(inst.instance_id)).is_alive
        run = await rt.store.get_run(result.run_id or "")
        assert [m["role"] for m in run.messages] == ["user", "assistant"]


@pytest.mark.anyio
async def test_a_turn_cannot_start_while_one_runs(start: StartRuntime) -> None:
    """A second execute during a turn is refused (on_busy 'reject') and changes nothing."""
    async with start(latency=0.05, tokens=20) as rt:
        inst = await rt.start_instance(prompt=PROMPT, variables={"place": "Baku"})
        ticket = await inst.start_turn()
        with pytest.raises(TurnInProgress, match="reject"):
            await inst.execute()
        result = await ticket.wait(30)
        assert result.output_tokens == 20


@pytest.mark.anyio
async def test_single_flight_loads_one_uncached_prompt_once_for_1000_starts(
    start: StartRuntime,
) -> None:
    """1,000 concurrent starts of one uncached stored prompt read it from the store once."""
    async with start() as rt:
        await _store_prompt(rt)
        handles: list[Any] = []

        async def start_one() -> None:
            handles.append(await rt.start_instance("greet", variables={"place": "Nuuk"}))

        async with anyio.create_task_group() as tg:
            for _ in range(1000):
                tg.start_soon(start_one)
        stats = await rt.prompts.stats()
        assert stats.store_reads == 1
        assert len(handles) == 1000
        assert len(await rt.instances_by_prompt("greet")) == 1000


@pytest.mark.anyio
async def test_unknown_ids_and_bad_arguments_get_specific_errors(start: StartRuntime) -> None:
    """Bad input gets a specific error naming what is wrong, and nothing starts."""
    async with start() as rt:
        with pytest.raises(PromptNotFound, match="'nope'"):
            await rt.start_instance("nope")
        with pytest.raises(InvalidInput, match="prompt_id"):
            await rt.start_instance("")
        with pytest.raises(InvalidInput, match="not a variable name"):
            await rt.start_instance(prompt=PROMPT, variables={"bad name": "x"})
        with pytest.raises(InvalidInput, match="limit"):
            await rt.start_instance(prompt=PROMPT, initial_message="x" * 2_000_000)
        with pytest.raises(InvalidInput, match="exactly one"):
            await rt.start_instance()
        with pytest.raises(InvalidInput, match="JSON values"):
            await rt.start_instance(prompt=PROMPT, settings={"temperature": object()})
        from promptactors import RunNotFound

        with pytest.raises(RunNotFound):
            await rt.start_instance(prompt=PROMPT, run_id="no-such-run")
        with pytest.raises(ActionNotFound):
            await rt.start_action("no-such-action")
        assert await rt.instance_count() == 0


@pytest.mark.anyio
async def test_an_instance_can_continue_an_existing_run(start: StartRuntime) -> None:
    """Starting with a run id loads that run's messages and appends to the same run."""
    async with start() as rt:
        first = await rt.start_instance(prompt=PROMPT, variables={"place": "Pune"})
        answer = await first.execute("one")
        await first.stop()
        second = await rt.start_instance(
            prompt=PROMPT, variables={"place": "Pune"}, run_id=answer.run_id
        )
        assert [m.role for m in await second.conversation_messages()] == ["user", "assistant"]
        again = await second.execute("two")
        assert again.run_id == answer.run_id
        run = await rt.store.get_run(answer.run_id or "")
        assert [m["content"] for m in run.messages][2] == "two"
        assert run.status == "running"
        assert (await rt.instance_by_run(answer.run_id or "")) is not None
        await second.stop()
        await rt.tracker.flush()
        assert (await rt.store.get_run(answer.run_id or "")).status == "completed"


@pytest.mark.anyio
async def test_a_run_is_continued_by_at_most_one_live_instance(start: StartRuntime) -> None:
    """Two concurrent starts on one run: one succeeds, the other gets RunInUse; once the
    first instance stops, the run can be continued again."""
    from promptactors import RunInUse

    async with start() as rt:
        first = await rt.start_instance(prompt=PROMPT, variables={"place": "Pune"})
        run_id = (await first.execute("one")).run_id or ""
        await first.stop()
        started: list[Any] = []
        refused: list[RunInUse] = []

        async def continue_run() -> None:
            try:
                started.append(
                    await rt.start_instance(prompt=PROMPT, variables={"place": "x"}, run_id=run_id)
                )
            except RunInUse as exc:
                refused.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(continue_run)
            tg.start_soon(continue_run)
        assert (len(started), len(refused)) == (1, 1)
        assert refused[0].run_id == run_id
        assert refused[0].owner_id == started[0].instance_id
        assert (await rt.store.get_run(run_id)).owner_id == started[0].instance_id
        with pytest.raises(RunInUse, match=run_id):
            await rt.start_instance(prompt=PROMPT, run_id=run_id)
        await started[0].stop()
        assert (await rt.store.get_run(run_id)).owner_id is None
        again = await rt.start_instance(prompt=PROMPT, variables={"place": "x"}, run_id=run_id)
        assert (await again.execute("two")).run_id == run_id
        await again.stop()


@pytest.mark.anyio
async def test_actions_resolve_brokers_with_the_documented_precedence(start: StartRuntime) -> None:
    """User > hardcoded > broker > scoped > default, and brokers are counted."""
    async with start() as rt:
        prompt = PromptDefinition.model_validate(
            {
                "id": "brief",
                "messages": [
                    {"role": "user", "content": "{{a}}|{{b}}|{{c}}|{{d}}|{{e}}"},
                ],
                "variables": [{"name": n, "default": f"default-{n}"} for n in "abcde"],
                "settings": {"model": "simulated"},
            }
        )
        await _store_prompt(rt, prompt)
        await rt.store.set_scoped_variable("project", "p1", "d", "scoped-d")
        await rt.store.set_scoped_variable("project", "p1", "c", "scoped-c")
        await rt.store.put_broker_value("broker-b", "broker-b", scope_kind="project", scope_id="p1")
        await rt.store.put_broker_value("broker-c", "broker-c", scope_kind="project", scope_id="p1")
        await rt.store.put_action(
            ActionRecord(
                id="act",
                name="Act",
                prompt_id="brief",
                broker_mappings={"b": "broker-b", "c": "broker-c"},
                hardcoded_values={"a": "hard-a", "b": "hard-b"},
            )
        )
        started = await rt.start_action(
            "act",
            context={"user_id": "u1", "workspace_id": "o1", "project_id": "p1"},
            user_provided_variables={"a": "user-a"},
        )
        assert started.broker_resolved_count == 2
        merged = await started.instance.merged_variables()
        assert [merged[n] for n in "abcde"] == [
            "user-a",
            "hard-b",
            "broker-c",
            "scoped-d",
            "default-e",
        ]
        explained = {e.name: e.source.value for e in await started.instance.explain_variables()}
        assert explained["c"] == "broker"


@pytest.mark.anyio
async def test_a_failing_broker_is_named_in_the_error(start: StartRuntime) -> None:
    """A required broker without a value fails the action start, naming broker and variable."""
    async with start() as rt:
        await _store_prompt(rt)
        await rt.store.put_action(
            ActionRecord(id="act2", name="A", prompt_id="greet", broker_mappings={"place": "geo"})
        )
        with pytest.raises(BrokerError, match="'geo'"):
            await rt.start_action("act2", context=BrokerContext(user_id="u"))
        assert await rt.instance_count() == 0


@pytest.mark.anyio
async def test_the_journal_replays_to_the_same_state(start: StartRuntime) -> None:
    """An exported journal replays (after JSON) to the instance's own snapshot."""
    async with start() as rt:
        inst = await rt.start_instance(prompt=PROMPT, variables={"place": "Cork"})
        await inst.execute("one")
        await inst.update_variable("who", "you")
        await inst.execute("two")
        journal = await inst.export_journal()
        replayed = snapshot(replay(import_journal(journal)))
        assert replayed == await inst.snapshot()


@pytest.mark.anyio
async def test_stopping_mid_turn_marks_the_task_interrupted(start: StartRuntime) -> None:
    """A stop during a turn fails the caller clearly and leaves the task row interrupted."""
    async with start(latency=0.2, tokens=50) as rt:
        inst = await rt.start_instance(prompt=PROMPT, variables={"place": "Hilo"})
        async with inst.stream("wait") as turn:
            async for _first_chunk in turn:
                break  # the turn is streaming now
            await inst.stop()
            with pytest.raises(TurnCancelled, match="stopped") as cancelled:
                await turn.result()
            assert cancelled.value.partial_text
        await rt.tracker.flush()
        tasks = await rt.store.list_tasks((await rt.store.list_runs(limit=1))[0].id)
        assert [t.status for t in tasks] == ["interrupted"]
        assert tasks[0].response_text


@pytest.mark.anyio
async def test_scoped_variables_are_fetched_and_cached(start: StartRuntime) -> None:
    """fetch_scoped_variables reads each scope once and serves later calls from cache."""
    async with start() as rt:
        await rt.store.set_scoped_variable("user", "u1", "tone", "warm")
        await rt.store.set_scoped_variable("org", "o1", "tone", "formal")
        scoped = await rt.fetch_scoped_variables("u1", "o1", None)
        assert scoped.merged() == {"tone": "formal"}
        await rt.store.set_scoped_variable("org", "o1", "tone", "changed")
        assert (await rt.fetch_scoped_variables("u1", "o1", None)).org == {"tone": "formal"}
        assert (await rt.fetch_scoped_variables("u1", "o1", None, force=True)).org == {
            "tone": "changed"
        }


@pytest.mark.anyio
async def test_a_custom_broker_is_used_for_its_ids(start: StartRuntime, database: str) -> None:
    """Brokers registered by the application resolve their ids; the store serves the rest."""

    class Weather:
        async def resolve(self, broker_id: str, context: BrokerContext) -> str | None:
            return f"sunny for {context.user_id}"

    settings = RuntimeSettings(database_url=database, simulated_tokens=2, simulated_latency=0.0)
    async with open_runtime(settings) as rt:
        registry = BrokerRegistry(default=StoreBroker(rt.store))
        registry.register("weather", Weather())
        rt._brokers = registry
        await _store_prompt(rt)
        await rt.store.put_action(
            ActionRecord(id="w", name="W", prompt_id="greet", broker_mappings={"place": "weather"})
        )
        started = await rt.start_action("w", context={"user_id": "ana"})
        assert (await started.instance.merged_variables())["place"] == "sunny for ana"


@pytest.mark.anyio
async def test_each_turn_is_priced_from_the_table_users_can_extend(start: StartRuntime) -> None:
    """Cost = tokens x the model's price: built-in prices, and prices from the settings."""
    from promptactors.providers import PriceTable

    async with start(prices={"house-model": {"input": 1.0, "output": 2.0}}) as rt:
        inst = await rt.start_instance(
            prompt=PROMPT, variables={"place": "Oslo"}, settings={"model": "gpt-4o-mini"}
        )
        result = await inst.execute()
        from promptactors.providers import Usage

        expected = PriceTable.default().cost(
            "gpt-4o-mini", Usage(result.input_tokens, result.output_tokens)
        )
        assert expected is not None
        assert expected > 0
        assert result.cost == pytest.approx(expected)
        task = (await rt.store.list_tasks(result.run_id or ""))[0]
        assert task.cost == pytest.approx(expected)
        house = await rt.start_instance(
            prompt=PROMPT, variables={"place": "Oslo"}, settings={"model": "house-model"}
        )
        priced = await house.execute()
        cost = (priced.input_tokens * 1.0 + priced.output_tokens * 2.0) / 1_000_000
        assert priced.cost == pytest.approx(cost)

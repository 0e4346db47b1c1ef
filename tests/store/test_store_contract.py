"""The store contract: every behaviour here holds for SQLite, PostgreSQL and memory alike
(but the schema tests, which are about a database's SQL schema).

Tests marked ``anyio`` run on trio and asyncio; the others on trio.
"""

from __future__ import annotations

import anyio
import pytest
from _contract import REQUEST, TIMEOUT, conversation, finish, new_task, opened, raw_execute

from promptactors._exceptions import (
    ActionNotFound,
    InvalidInput,
    NotFound,
    PromptNotFound,
    RunNotFound,
    SchemaError,
    StoreConflict,
)
from promptactors.store import (
    ActionRecord,
    CreateRun,
    CreateTask,
    FailTask,
    FinishTurn,
    InterruptTask,
    PromptMessageRow,
    PromptRecord,
    UpdateRun,
    VariableDefaultRow,
    WriteOp,
    open_store,
)
from promptactors.store._migrations import latest_version

# -- schema ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_migrating_twice_is_a_no_op(sql_store_url: str) -> None:
    """The first migrate applies every migration, the second applies none."""
    with anyio.fail_after(TIMEOUT):
        store = await open_store(sql_store_url)
        try:
            assert await store.schema_version() == 0
            assert await store.migrate() == latest_version("sqlite")
            assert await store.migrate() == 0
            assert await store.schema_version() == latest_version("sqlite")
        finally:
            await store.close()


@pytest.mark.anyio
async def test_a_newer_schema_raises_schema_error(sql_store_url: str) -> None:
    """A database migrated by a newer version is refused by migrate and by open."""
    async with opened(sql_store_url) as store:
        await raw_execute(
            sql_store_url,
            "INSERT INTO schema_migrations (version, name, applied_at)"
            " VALUES (999, 'future', '2099-01-01')",
        )
        with pytest.raises(SchemaError, match="999"):
            await store.migrate()
    with pytest.raises(SchemaError, match="newer"):
        await open_store(sql_store_url)


@pytest.mark.trio
async def test_an_unmigrated_database_raises_schema_error(sql_store_url: str) -> None:
    """Using a store before migrating says the schema is missing."""
    with anyio.fail_after(TIMEOUT):
        store = await open_store(sql_store_url)
        try:
            with pytest.raises(SchemaError, match="migrated"):
                await store.get_run("run-1")
        finally:
            await store.close()


# -- prompts, actions, variables, brokers ----------------------------------------------------


@pytest.mark.anyio
async def test_prompts_and_builtins_round_trip(store_url: str) -> None:
    """A prompt reads back equal from the table it was written to, and only from it."""
    prompt = PromptRecord(
        id="6f1c3a52-1d2e-4c7b-9a35-3e0f7f2d9b10",
        name="Summarise",
        messages=(
            PromptMessageRow("system", "You summarise."),
            PromptMessageRow("user", "{{ text }}"),
        ),
        variable_defaults=(
            VariableDefaultRow("text", "", "what to summarise"),
            VariableDefaultRow("tone", "dry"),
        ),
        settings={"model": "sim-1", "temperature": 0.2, "stop": ["\n\n"]},
        description="a summariser",
    )
    builtin = PromptRecord(
        id="builtin-1", name="Builtin", messages=(PromptMessageRow("user", "x"),)
    )
    async with opened(store_url) as store:
        await store.put_prompt(prompt)
        await store.put_prompt(builtin, "prompt_builtins")
        got = await store.get_prompt(prompt.id)
        assert got == prompt
        assert got.created_at is not None
        assert await store.get_prompt("builtin-1", "prompt_builtins") == builtin
        with pytest.raises(PromptNotFound, match="builtin-1"):
            await store.get_prompt("builtin-1")
        renamed = PromptRecord(id=prompt.id, name="Renamed")
        await store.put_prompt(renamed)
        assert await store.get_prompt(prompt.id) == renamed


@pytest.mark.trio
async def test_actions_round_trip(store_url: str) -> None:
    """An action with brokers, optional variables and hardcoded values reads back equal."""
    action = ActionRecord(
        id="generate-brief",
        name="Generate brief",
        prompt_id="builtin-1",
        prompt_source="prompt_builtins",
        broker_mappings={"workspace_name": "workspace-name-broker", "project_goal": "goal-broker"},
        optional_variables=frozenset({"project_goal"}),
        hardcoded_values={"format": "markdown"},
        execution_config={"auto_run": True, "track_in_runs": True},
    )
    async with opened(store_url) as store:
        await store.put_action(action)
        assert await store.get_action("generate-brief") == action


@pytest.mark.trio
async def test_missing_things_raise_not_found_naming_the_id(store_url: str) -> None:
    """Unknown prompt, action, run and task ids raise NotFound subclasses naming the id."""
    async with opened(store_url) as store:
        with pytest.raises(PromptNotFound, match="no-such-prompt"):
            await store.get_prompt("no-such-prompt")
        with pytest.raises(ActionNotFound, match="no-such-action"):
            await store.get_action("no-such-action")
        with pytest.raises(RunNotFound, match="no-such-run"):
            await store.get_run("no-such-run")
        with pytest.raises(NotFound, match="no-such-task"):
            await store.get_task("no-such-task")
        with pytest.raises(RunNotFound, match="no-such-run"):
            await store.create_task(new_task("t1", run_id="no-such-run"))
        with pytest.raises(RunNotFound, match="no-such-run"):
            await store.update_run(UpdateRun("no-such-run", status="completed"))
        with pytest.raises(NotFound, match="no-such-task"):
            await store.finish_turn(finish("no-such-task"))


@pytest.mark.trio
async def test_invalid_arguments_raise_invalid_input(store_url: str) -> None:
    """Empty ids, bad sources and bad scopes are refused before any I/O."""
    async with opened(store_url) as store:
        with pytest.raises(InvalidInput, match="prompt id"):
            await store.get_prompt("")
        with pytest.raises(InvalidInput, match="prompt source"):
            await store.get_prompt("p", "nope")  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="scope"):
            await store.set_scoped_variable("team", "t1", "k", "v")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="run id"):
        CreateRun("")
    with pytest.raises(InvalidInput, match="attempt"):
        new_task("t1", attempt=0)
    with pytest.raises(InvalidInput, match="output_tokens"):
        FinishTurn("t1", "x", output_tokens=-1)


@pytest.mark.trio
async def test_scoped_variables_are_kept_per_scope(store_url: str) -> None:
    """Each scope keeps its own variables per owner; one read returns all three scopes."""
    async with opened(store_url) as store:
        await store.set_scoped_variable("user", "u1", "name", "Ada")
        await store.set_scoped_variable("user", "u2", "name", "Grace")
        await store.set_scoped_variable("org", "o1", "name", "Analytical Engines")
        await store.set_scoped_variable("project", "p1", "goal", "compute")
        await store.set_scoped_variable("project", "p1", "goal", "compute more")  # replaces
        got = await store.get_scoped_variables("u1", "o1", "p1")
        assert got.user == {"name": "Ada"}
        assert got.org == {"name": "Analytical Engines"}
        assert got.project == {"goal": "compute more"}
        assert await store.get_scoped_variables(user_id="u2") == ({"name": "Grace"}, {}, {})
        assert await store.delete_scoped_variable("user", "u1", "name")
        assert not await store.delete_scoped_variable("user", "u1", "name")
        assert (await store.get_scoped_variables("u1")).user == {}


@pytest.mark.trio
async def test_broker_values_resolve_the_most_specific_scope(store_url: str) -> None:
    """Project beats org beats user beats global; unknown brokers are absent."""
    async with opened(store_url) as store:
        await store.put_broker_value("tone", "neutral")
        await store.put_broker_value("tone", "formal", scope_kind="org", scope_id="o1")
        await store.put_broker_value("tone", "casual", scope_kind="project", scope_id="p1")
        await store.put_broker_value("lang", "en")
        await store.put_broker_value("lang", "fr", scope_kind="user", scope_id="u1")
        await store.put_broker_value("lang", "de", scope_kind="user", scope_id="u2")
        await store.put_broker_value("topic", "ships", scope_kind="ticket", scope_id="t9")
        context = {"user": "u1", "org": "o1", "project": "p1", "ticket": "t9"}
        got = await store.get_broker_values(["tone", "lang", "topic", "missing"], context)
        assert got == {"tone": "casual", "lang": "fr", "topic": "ships"}
        assert await store.get_broker_values(["tone", "lang", "topic"]) == {
            "tone": "neutral",
            "lang": "en",
        }
        assert await store.get_broker_values(["tone"], {"org": "o1", "project": "p2"}) == {
            "tone": "formal"
        }
        assert await store.get_broker_values([], context) == {}


# -- runs and tasks ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_run_and_its_tasks_go_through_their_lifecycle(store_url: str) -> None:
    """Create run, create task (running), finish the turn: task, messages and stats agree."""
    async with opened(store_url) as store:
        await store.create_run(
            CreateRun(
                "run-1",
                prompt_id="p1",
                instance_id="i1",
                name="first",
                variables={"text": "hi"},
                settings={"model": "sim-1"},
                executor_id="exec-a",
            )
        )
        run = await store.get_run("run-1")
        assert (run.status, run.executor_id, run.stats.message_count, run.version) == (
            "running",
            "exec-a",
            0,
            1,
        )
        assert run.heartbeat_at is not None

        await store.create_task(new_task("task-1"))
        task = await store.get_task("task-1")
        assert (task.status, task.attempt, task.run_id, task.request) == (
            "running",
            1,
            "run-1",
            tuple(REQUEST),
        )

        await store.finish_turn(finish("task-1"))
        task = await store.get_task("task-1")
        assert task.status == "completed"
        assert (task.response_text, task.input_tokens, task.output_tokens, task.finish_reason) == (
            "hello",
            10,
            5,
            "stop",
        )
        assert task.completed_at is not None
        run = await store.get_run("run-1")
        assert run.messages == tuple(conversation("hi", "hello"))
        stats = run.stats
        assert (stats.message_count, stats.task_count, stats.total_tokens, stats.total_cost) == (
            2,
            1,
            15,
            0.25,
        )

        await store.create_task(new_task("task-2"))
        await store.fail_task(FailTask("task-2", error="provider exploded"))
        await store.update_run(UpdateRun("run-1", status="completed", name="renamed"))
        run = await store.get_run("run-1")
        assert (run.status, run.name, run.stats.task_count, run.stats.total_tokens) == (
            "completed",
            "renamed",
            2,
            15,
        )
        assert [t.id for t in await store.list_tasks("run-1")] == ["task-1", "task-2"]
        assert (await store.get_task("task-2")).error == "provider exploded"


@pytest.mark.anyio
async def test_replaying_operations_never_duplicates(store_url: str) -> None:
    """The same create and finish applied twice leave one row, one message list, one count."""
    ops: list[WriteOp] = [
        CreateRun("run-1", prompt_id="p1", instance_id="i1"),
        new_task("task-1"),
        finish("task-1"),
    ]
    async with opened(store_url) as store:
        for op in ops:
            await store.apply([op])
        before = await store.get_run("run-1")
        await store.apply(ops)  # the whole batch replayed
        for op in ops:
            await store.apply([op, op])  # and each op twice in one batch
        after = await store.get_run("run-1")
        assert after == before
        assert after.stats.task_count == 1
        assert after.stats.total_tokens == 15
        assert after.messages == tuple(conversation("hi", "hello"))
        assert len(await store.list_tasks("run-1")) == 1


@pytest.mark.trio
async def test_conflicting_replays_raise_store_conflict(store_url: str) -> None:
    """Reusing a run or task id for a different operation is a conflict, and changes nothing."""
    async with opened(store_url) as store:
        await store.apply(
            [CreateRun("run-1", prompt_id="p1"), new_task("task-1"), finish("task-1")]
        )
        before = await store.get_run("run-1")
        with pytest.raises(StoreConflict, match="run-1"):
            await store.create_run(CreateRun("run-1", prompt_id="another"))
        other = CreateTask(
            "task-1",
            "run-1",
            provider="simulated",
            model="sim-1",
            request=[{"role": "user", "content": "other"}],
        )
        with pytest.raises(StoreConflict, match="task-1"):
            await store.create_task(other)
        with pytest.raises(StoreConflict, match="task-1"):
            await store.finish_turn(finish("task-1", "a different answer"))
        with pytest.raises(StoreConflict, match="already completed"):
            await store.fail_task(FailTask("task-1", "late failure"))
        with pytest.raises(StoreConflict, match="already completed"):
            await store.mark_task_interrupted(InterruptTask("task-1", "hel"))
        assert await store.get_run("run-1") == before
        assert (await store.get_task("task-1")).status == "completed"
        with pytest.raises(StoreConflict, match="task-2"):
            await store.apply([new_task("task-2"), finish("task-2", "a"), finish("task-2", "b")])
        with pytest.raises(NotFound, match="task-2"):
            await store.get_task("task-2")


@pytest.mark.trio
async def test_turns_finished_in_one_batch_add_up_on_their_run(store_url: str) -> None:
    """Usage of every finished turn is added; the run keeps the last conversation given."""
    async with opened(store_url) as store:
        await store.apply(
            [
                CreateRun("run-1"),
                new_task("task-1"),
                new_task("task-2", attempt=2),
                finish("task-1", "one", conversation("hi", "one")),
                finish("task-2", "two", conversation("hi", "one", "more", "two")),
                FinishTurn("task-2", "two", input_tokens=10, output_tokens=5),  # a replay
            ]
        )
        run = await store.get_run("run-1")
        assert run.messages == tuple(conversation("hi", "one", "more", "two"))
        stats = run.stats
        assert (stats.message_count, stats.task_count, stats.total_tokens) == (4, 2, 30)
        assert stats.total_cost == pytest.approx(0.5)


@pytest.mark.trio
async def test_finish_turn_commits_with_its_batch_or_not_at_all(store_url: str) -> None:
    """A batch that fails part-way keeps nothing: the task stays running, the run unchanged."""
    async with opened(store_url) as store:
        await store.apply([CreateRun("run-1"), new_task("task-1")])
        before = await store.get_run("run-1")
        with pytest.raises(RunNotFound, match="gone"):
            await store.apply(
                [new_task("task-2"), finish("task-1"), UpdateRun("gone", status="failed")]
            )
        assert (await store.get_task("task-1")).status == "running"
        assert await store.get_run("run-1") == before
        with pytest.raises(NotFound, match="task-2"):
            await store.get_task("task-2")


@pytest.mark.trio
async def test_an_interrupted_task_keeps_its_partial_output(store_url: str) -> None:
    """Interrupting keeps the partial text; a longer replay extends it, a shorter is a no-op."""
    async with opened(store_url) as store:
        await store.apply([CreateRun("run-1"), new_task("task-1")])
        await store.mark_task_interrupted(InterruptTask("task-1", "Once upon"))
        await store.mark_task_interrupted(InterruptTask("task-1", "Once upon a time"))
        await store.mark_task_interrupted(InterruptTask("task-1", "Once"))
        task = await store.get_task("task-1")
        assert (task.status, task.response_text) == ("interrupted", "Once upon a time")
        with pytest.raises(StoreConflict, match="task-1"):
            await store.mark_task_interrupted(InterruptTask("task-1", "Something else"))
        with pytest.raises(StoreConflict, match="already interrupted"):
            await store.finish_turn(finish("task-1"))
        # the retry is a new task, attempt 2
        await store.create_task(new_task("task-1b", attempt=2))
        await store.finish_turn(finish("task-1b"))
        run = await store.get_run("run-1")
        assert (run.stats.task_count, run.stats.total_tokens, len(run.messages)) == (2, 15, 2)


@pytest.mark.anyio
async def test_apply_commits_a_thousand_operations_in_one_transaction(store_url: str) -> None:
    """1,000 operations land together; with one bad operation at the end none of them do."""
    runs = [CreateRun(f"run-{i}", instance_id=f"i{i}") for i in range(200)]
    tasks = [new_task(f"task-{i}", f"run-{i}") for i in range(200)]
    turns = [finish(f"task-{i}") for i in range(200)]
    more = [new_task(f"task-{i}-2", f"run-{i}", attempt=2) for i in range(200)]
    ends = [UpdateRun(f"run-{i}", status="completed") for i in range(199)]
    async with opened(store_url) as store:
        with pytest.raises(RunNotFound, match="missing"):
            await store.apply(
                [*runs, *tasks, *turns, *more, *ends, UpdateRun("missing", status="failed")]
            )
        assert await store.list_runs(limit=10) == []

        with anyio.fail_after(TIMEOUT):
            await store.apply(
                [*runs, *tasks, *turns, *more, *ends, UpdateRun("run-199", status="failed")]
            )
        assert len(await store.list_runs(status="completed", limit=1000)) == 199
        assert len(await store.list_runs(status="failed", limit=1000)) == 1
        run = await store.get_run("run-7")
        assert (run.stats.task_count, run.stats.total_tokens, len(run.messages)) == (2, 15, 2)
        assert [t.status for t in await store.list_tasks("run-7")] == ["completed", "running"]


@pytest.mark.trio
async def test_list_runs_filters_and_orders_newest_first(store_url: str) -> None:
    """Filters combine; the newest run comes first; limit is honoured."""
    async with opened(store_url) as store:
        for i in range(5):
            await store.create_run(
                CreateRun(f"run-{i}", prompt_id="p1" if i % 2 else "p2", executor_id="a")
            )
        await store.update_run(UpdateRun("run-3", status="completed"))
        assert [r.id for r in await store.list_runs()] == [
            "run-4",
            "run-3",
            "run-2",
            "run-1",
            "run-0",
        ]
        assert [r.id for r in await store.list_runs(prompt_id="p1", status="running")] == ["run-1"]
        assert [r.id for r in await store.list_runs(executor_id="a", limit=2)] == ["run-4", "run-3"]
        assert await store.list_runs(instance_id="nobody") == []

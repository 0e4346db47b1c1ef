"""``runs``, ``tasks``, ``prompts``, ``recover``, ``instances`` and ``db status``: looking
inside a database populated by real turns on the simulated provider."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import trio
from test_cli import ADA, Cli, assert_explained, write

from promptactors.cli._output import redact_url
from promptactors.store import CreateRun, CreateTask, RunRecord, open_store


def turns(cli: Cli, greet: str, n: int, *extra: str) -> list[dict[str, object]]:
    """Run ``greet`` ``n`` times; the JSON result of each, oldest first."""
    results = []
    for _ in range(n):
        result = cli("run", greet, *ADA, "--json", *extra, *cli.fast())
        assert result.code == 0, result
        results.append(result.json)
    return results


def store_write(url: str, *ops: object) -> None:
    async def go() -> None:
        async with await open_store(url, migrate=True) as store:
            await store.apply(list(ops))  # type: ignore[arg-type]

    trio.run(go)


# -- runs ------------------------------------------------------------------------------------


def test_runs_list_json_is_an_array_of_runs_newest_first(cli: Cli, greet: str) -> None:
    """``runs list --json`` prints only a JSON array on stdout, the newest run first."""
    ran = turns(cli, greet, 3)

    result = cli("runs", "list", "--json", *cli.db)

    assert result.code == 0, result
    runs = json.loads(result.out)
    assert isinstance(runs, list)
    assert [r["id"] for r in runs] == [r["run_id"] for r in reversed(ran)]
    assert runs[0]["status"] == "completed"
    assert runs[0]["stats"]["output_tokens"] == 5


def test_runs_list_filters_by_status_prompt_and_limit(cli: Cli, greet: str) -> None:
    """``--status``, ``--prompt`` and ``--limit`` narrow the list."""
    turns(cli, greet, 3)
    store_write(cli.db_url, CreateRun("left-running", prompt_id="other"))

    def ids(*args: str) -> list[str]:
        result = cli("runs", "list", "--json", *args, *cli.db)
        assert result.code == 0, result
        return [r["id"] for r in result.json]

    assert ids("--status", "running") == ["left-running"]
    assert len(ids("--status", "completed")) == 3
    assert ids("--prompt", "other") == ["left-running"]
    assert len(ids("--prompt", "greet")) == 3
    assert len(ids("--limit", "2")) == 2


def test_runs_list_table_shows_whole_ids_in_80_columns(cli: Cli, greet: str) -> None:
    """The table keeps each run id whole, so it can be copied into ``runs show``."""
    (ran,) = turns(cli, greet, 1)

    result = cli("runs", "list", *cli.db)

    assert result.code == 0, result
    assert str(ran["run_id"]) in result.out
    assert "completed" in result.out


def test_runs_show_gives_fields_totals_conversation_and_tasks(cli: Cli, greet: str) -> None:
    """``runs show`` prints the run, its totals, its messages and its tasks."""
    (ran,) = turns(cli, greet, 1, "--input", "be brief")

    shown = cli("runs", "show", str(ran["run_id"]), *cli.db)
    as_json = cli("runs", "show", str(ran["run_id"]), "--json", *cli.db)

    assert shown.code == 0, shown
    assert f"run {ran['run_id']} completed" in shown.text
    assert "1 tasks" in shown.text
    assert "be brief" in shown.text
    assert str(ran["text"]) in shown.out
    assert str(ran["task_id"]) in shown.out
    data = as_json.json
    assert data["id"] == ran["run_id"]
    assert [t["id"] for t in data["tasks"]] == [ran["task_id"]]
    assert data["messages"][-1]["content"] == ran["text"]


def test_runs_show_marks_failed_messages(cli: Cli) -> None:
    """A message the run recorded as failed is shown with its error."""
    messages = [{"role": "user", "content": "hi", "failed": True, "error": "provider down"}]
    store_write(cli.db_url, CreateRun("r-failed", messages=messages))

    result = cli("runs", "show", "r-failed", *cli.db)

    assert result.code == 0, result
    assert "user (failed: provider down)" in result.text


def test_runs_show_of_an_unknown_run_is_one_line(cli: Cli, greet: str) -> None:
    """An unknown run id is named, exit 1, no traceback."""
    turns(cli, greet, 1)

    result = cli("runs", "show", "no-such-run", *cli.db)

    assert_explained(result, "no-such-run")


def test_an_unknown_status_is_refused_naming_the_choices(cli: Cli, greet: str) -> None:
    """``--status`` accepts only the statuses runs and tasks have."""
    turns(cli, greet, 1)

    for command in (("runs", "list"), ("tasks", "list")):
        result = cli(*command, "--status", "done", *cli.db)
        assert_explained(result, "--status 'done': choose one of running, completed")


def test_reading_a_database_file_that_is_not_there_creates_nothing(cli: Cli) -> None:
    """Inspecting a missing SQLite file says so and does not create it."""
    for command in (("runs", "list"), ("tasks", "list"), ("prompts", "list"), ("db", "status")):
        result = cli(*command, *cli.db)
        assert_explained(result, "database file", "does not exist", "promptactors db init")
    assert not Path("x.db").exists()


# -- tasks -----------------------------------------------------------------------------------


def test_tasks_list_of_a_run_and_of_the_newest_runs(cli: Cli, greet: str) -> None:
    """``tasks list --run`` gives that run's tasks; without it, the newest runs' tasks."""
    ran = turns(cli, greet, 3)

    one = cli("tasks", "list", "--run", str(ran[0]["run_id"]), "--json", *cli.db)
    newest = cli("tasks", "list", "--json", "--limit", "2", *cli.db)
    completed = cli("tasks", "list", "--status", "completed", "--json", *cli.db)
    failed = cli("tasks", "list", "--status", "failed", "--json", *cli.db)

    assert [t["id"] for t in one.json] == [ran[0]["task_id"]]
    assert [t["id"] for t in newest.json] == [ran[2]["task_id"], ran[1]["task_id"]]
    assert len(completed.json) == 3
    assert failed.json == []
    assert_explained(cli("tasks", "list", "--run", "nope", *cli.db), "nope")


def test_tasks_show_gives_request_response_timings_tokens_and_cost(cli: Cli, greet: str) -> None:
    """``tasks show`` prints what was sent, what came back, and what it took."""
    (ran,) = turns(cli, greet, 1)

    shown = cli("tasks", "show", str(ran["task_id"]), *cli.db)
    as_json = cli("tasks", "show", str(ran["task_id"]), "--json", *cli.db)

    assert shown.code == 0, shown
    for fragment in ("Say hello to Ada.", str(ran["text"]), "attempt 1", "5 out", "ttft"):
        assert fragment in shown.text, fragment
    data = as_json.json
    assert data["response_text"] == ran["text"]
    assert data["output_tokens"] == 5
    assert data["request"][-1]["content"] == "Say hello to Ada."
    assert_explained(cli("tasks", "show", "nope", *cli.db), "task 'nope' not found")


# -- prompts ---------------------------------------------------------------------------------


def test_prompts_add_list_show_round_trip(cli: Cli, greet: str) -> None:
    """``prompts add`` stores a prompt that ``list`` and ``show`` then give back."""
    write("other.yaml", "id: other\nmessages:\n  - role: user\n    content: hi\n")
    assert cli("prompts", "add", greet, *cli.db).code == 0
    assert cli("prompts", "add", "other.yaml", "--builtin", *cli.db).code == 0

    listed = cli("prompts", "list", "--json", *cli.db)
    builtins = cli("prompts", "list", "--builtin", "--json", *cli.db)
    table = cli("prompts", "list", *cli.db)
    shown = cli("prompts", "show", "greet", *cli.db)

    assert [p["id"] for p in listed.json] == ["greet"]
    assert [p["id"] for p in builtins.json] == ["other"]
    assert "greet" in table.out
    assert "Greeting" in table.out
    assert "Say hello to {{customer_name}}." in shown.out
    assert "customer_name" in shown.out
    assert cli("prompts", "show", "greet", "--json", *cli.db).json["name"] == "Greeting"
    assert_explained(cli("prompts", "show", "other", *cli.db), "prompt 'other' not found")


# -- recover, instances, db status -----------------------------------------------------------


def left_running(cli: Cli, executor: str = "dead-executor") -> None:
    """A run and its task, left running by an executor that is gone."""
    store_write(
        cli.db_url,
        CreateRun("orphan", executor_id=executor),
        CreateTask("orphan-task", "orphan", provider="simulated", model="simulated"),
    )


def test_recover_marks_what_a_dead_executor_left_running(cli: Cli) -> None:
    """``recover --executor ID`` marks that executor's running runs and tasks interrupted."""
    left_running(cli)

    result = cli("recover", "--executor", "dead-executor", "--json", *cli.db)

    assert result.code == 0, result
    assert result.json["interrupted_runs"] == ["orphan"]
    assert result.json["interrupted_tasks"] == ["orphan-task"]
    run: RunRecord = cli.read(lambda store: store.get_run("orphan"))
    assert run.status == "interrupted"
    again = cli("recover", "--executor", "dead-executor", *cli.db)
    assert "nothing to recover" in again.text


def test_recover_takes_over_runs_whose_heartbeat_is_stale(cli: Cli) -> None:
    """Without ``--executor``, runs whose heartbeat is older than ``--stale-after`` go."""
    left_running(cli)
    time.sleep(0.05)

    result = cli("recover", "--stale-after", "0.01", *cli.db)

    assert result.code == 0, result
    assert "recovered 1 run and 1 task" in result.text
    assert "run orphan" in result.text


def test_instances_lists_running_runs_and_says_where_live_instances_are(cli: Cli) -> None:
    """``instances`` lists runs still running and says live instances live in their process."""
    left_running(cli)

    table = cli("instances", *cli.db)
    as_json = cli("instances", "--json", *cli.db)

    assert table.code == 0, table
    assert "orphan" in table.out
    assert "Runtime.instance_ids()" in table.err
    assert [r["run_id"] for r in as_json.json] == ["orphan"]


def test_db_status_gives_version_url_and_counts_by_status(cli: Cli, greet: str) -> None:
    """``db status`` reports the schema version and runs and tasks per status."""
    turns(cli, greet, 2)
    left_running(cli)

    as_json = cli("db", "status", "--json", *cli.db)
    table = cli("db", "status", *cli.db)

    data = as_json.json
    assert data["database"] == cli.db_url
    assert data["schema_version"] >= 1
    assert data["runs"] == {"completed": 2, "running": 1}
    assert data["tasks"] == {"completed": 2, "running": 1}
    assert "runs 3 (2 completed, 1 running)" in table.text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:secret@db:5432/x", "postgresql://u:***@db:5432/x"),
        ("postgresql://u@db/x", "postgresql://u@db/x"),
        ("sqlite:///a.db", "sqlite:///a.db"),
    ],
)
def test_database_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    """A password in a database URL is replaced by ``***``."""
    assert redact_url(url) == shown


@pytest.mark.postgres
def test_runs_list_and_db_status_on_postgresql(
    capsys: pytest.CaptureFixture[str], postgres_url: str, greet: str
) -> None:
    """The same commands read a PostgreSQL database."""
    cli = Cli(capsys, postgres_url)
    (ran,) = turns(cli, greet, 1)

    listed = cli("runs", "list", "--json", *cli.db)
    status = cli("db", "status", "--json", *cli.db)

    assert [r["id"] for r in listed.json] == [ran["run_id"]]
    assert status.json["runs"] == {"completed": 1}
    assert status.json["schema_version"] >= 1


def test_runtime_instance_ids_lists_the_live_instances(tmp_path: Path) -> None:
    """``Runtime.instance_ids`` gives the ids of live instances; a stopped one is gone."""
    from promptactors import RuntimeSettings, open_runtime

    async def go() -> None:
        settings = RuntimeSettings(database_url=f"sqlite:///{tmp_path}/r.db")
        async with open_runtime(settings) as rt:
            prompt = {"id": "p", "messages": [{"role": "user", "content": "hi"}]}
            first = await rt.start_instance(prompt=prompt)
            second = await rt.start_instance(prompt=prompt)
            assert await rt.instance_ids() == [first.instance_id, second.instance_id]
            await first.stop()
            assert await rt.instance_ids() == [second.instance_id]
            await second.stop()

    trio.run(go)


def test_recover_on_a_database_file_that_is_not_there_creates_nothing(cli: Cli) -> None:
    """``recover`` of a missing SQLite file says so instead of creating an empty database."""
    result = cli("recover", *cli.db)

    assert_explained(result, "database file", "does not exist")
    assert not Path("x.db").exists()

"""The ``promptactors`` command line, through ``main(argv)`` and through the console script.

Every test runs in its own directory with its own SQLite file, on the simulated provider
with no latency, so a command takes milliseconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import structlog
import trio

import promptactors
from promptactors.cli import main
from promptactors.store import Store, open_store

T = TypeVar("T")

GREET = "greet.yaml"
GREET_YAML = """\
id: greet
name: Greeting
messages:
  - role: system
    content: You greet people.
  - role: user
    content: Say hello to {{customer_name}}.
variables:
  - name: customer_name
    help_text: who to greet
"""
ADA = ("--var", "customer_name=Ada")
RUN_ID = re.compile(r"run\s+([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
SUBPROCESS_TIMEOUT = 60


@dataclass(frozen=True)
class Result:
    """What one command did: its exit status and what it wrote."""

    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        """stdout and stderr with rich's line wrapping undone."""
        return " ".join((self.out + self.err).split())

    @property
    def json(self) -> Any:
        return json.loads(self.out)


@dataclass(frozen=True)
class Cli:
    """Runs ``promptactors ARGS...`` in-process against the test's own database."""

    capsys: pytest.CaptureFixture[str]
    db_url: str

    def __call__(self, *args: str) -> Result:
        self.capsys.readouterr()
        code = main(list(args))
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    @property
    def db(self) -> tuple[str, ...]:
        return ("--database", self.db_url)

    def fast(self, tokens: int = 5) -> tuple[str, ...]:
        """The test database and a simulated provider answering ``tokens`` tokens at once."""
        return (*self.db, "--latency", "0", "--tokens", str(tokens))

    def read(self, read: Callable[[Store], Awaitable[T]]) -> T:
        """Open the database the commands used and read something from it."""

        async def go() -> T:
            async with await open_store(self.db_url) as store:
                return await read(store)

        return trio.run(go)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Each test runs in its own directory, without PROMPTACTORS_* from the caller's shell,
    at a fixed console width, and gets structlog's configuration back as it was.

    The CLI configures structlog for the whole process, writing to the stderr of the moment
    (pytest's capture here), so loggers are kept from caching that while a test runs.
    """
    for name in list(os.environ):
        if name.startswith("PROMPTACTORS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.chdir(tmp_path)
    saved = structlog.get_config()
    configure = structlog.configure

    def uncached(**kwargs: Any) -> None:
        configure(**{**kwargs, "cache_logger_on_first_use": False})

    monkeypatch.setattr(structlog, "configure", uncached)
    yield
    configure(**saved)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    return Cli(capsys, f"sqlite:///{tmp_path}/x.db")


@pytest.fixture
def greet() -> str:
    """A prompt file with one required variable, ``customer_name``; its relative name."""
    return write(GREET, GREET_YAML)


def write(name: str, text: str) -> str:
    """Write a file in the test's directory and return its relative name."""
    Path(name).write_text(text, encoding="utf-8")
    return name


def assert_explained(result: Result, *fragments: str) -> None:
    """The command failed with exit 1 and a message holding every fragment, no traceback."""
    assert result.code == 1, result
    assert "Traceback" not in result.out + result.err
    assert result.text.startswith("error:"), result
    for fragment in fragments:
        assert fragment in result.text, (fragment, result.text)


# -- version and db ------------------------------------------------------------------------


def test_version_prints_the_installed_version(cli: Cli) -> None:
    """``version`` prints the package version and nothing else."""
    result = cli("version")

    assert result.code == 0
    assert result.out.strip() == promptactors.__version__
    assert result.err == ""


def test_db_init_creates_the_schema_and_says_its_version(cli: Cli) -> None:
    """``db init`` on a new file applies the migrations and reports the schema version."""
    result = cli("db", "init", *cli.db)

    assert result.code == 0, result
    version = cli.read(lambda store: store.schema_version())
    assert version >= 1
    assert f"schema at version {version} (" in result.text
    assert re.search(r"\(\d+ migrations? applied\)", result.text)


def test_db_init_twice_applies_nothing_the_second_time(cli: Cli) -> None:
    """A second ``db init``, and a ``db migrate`` after it, succeed and apply no migration."""
    first = cli("db", "init", *cli.db)
    second = cli("db", "init", *cli.db)
    migrate = cli("db", "migrate", *cli.db)

    assert (first.code, second.code, migrate.code) == (0, 0, 0)
    version = cli.read(lambda store: store.schema_version())
    for again in (second, migrate):
        assert f"schema at version {version} (0 migrations applied)" in again.text


def test_add_prompt_then_run_by_id_executes_the_stored_prompt(cli: Cli, greet: str) -> None:
    """A prompt stored with ``db add-prompt`` runs by its id, with the variables given."""
    added = cli("db", "add-prompt", greet, *cli.db)
    assert added.code == 0, added
    assert "stored prompt 'greet' in prompts" in added.text

    ran = cli("run", "greet", *ADA, "--json", *cli.fast())

    assert ran.code == 0, ran
    task = cli.read(lambda store: store.get_task(ran.json["task_id"]))
    assert task.request[-1]["content"] == "Say hello to Ada."
    run = cli.read(lambda store: store.get_run(ran.json["run_id"]))
    assert (run.prompt_id, run.prompt_source) == ("greet", "prompts")


def test_builtin_prompt_round_trips_through_add_prompt_and_run(cli: Cli, greet: str) -> None:
    """``db add-prompt --builtin`` stores in prompt_builtins, and ``run --builtin`` reads it."""
    added = cli("db", "add-prompt", greet, "--builtin", *cli.db)
    assert added.code == 0, added
    assert "stored prompt 'greet' in prompt_builtins" in added.text
    stored = cli.read(lambda store: store.get_prompt("greet", "prompt_builtins"))
    assert stored.name == "Greeting"

    ran = cli("run", "greet", "--builtin", *ADA, "--json", *cli.fast())

    assert ran.code == 0, ran
    run = cli.read(lambda store: store.get_run(ran.json["run_id"]))
    assert (run.prompt_id, run.prompt_source) == ("greet", "prompt_builtins")


def test_builtin_prompt_is_not_found_among_ordinary_prompts(cli: Cli, greet: str) -> None:
    """A prompt stored only as a builtin is not found by ``run`` without ``--builtin``."""
    assert cli("db", "add-prompt", greet, "--builtin", *cli.db).code == 0

    result = cli("run", "greet", *ADA, *cli.fast())

    assert_explained(result, "prompt 'greet' not found in prompts")


def test_add_prompt_with_a_missing_file_names_the_file(cli: Cli) -> None:
    """``db add-prompt`` of a file that is not there says so, with exit 1."""
    result = cli("db", "add-prompt", "nothere.yaml", *cli.db)

    assert_explained(result, "prompt file 'nothere.yaml' does not exist")


# -- run -------------------------------------------------------------------------------------


def test_run_streams_the_answer_to_stdout_and_a_summary_to_stderr(cli: Cli, greet: str) -> None:
    """``run FILE`` writes only the answer to stdout; tokens and the run id go to stderr."""
    result = cli("run", greet, *ADA, *cli.fast())

    assert result.code == 0, result
    answer = result.out.strip()
    assert answer
    assert "tokens" not in result.out
    summary = " ".join(result.err.split())
    assert "5 tokens" in summary
    match = RUN_ID.search(summary)
    assert match is not None, summary
    run = cli.read(lambda store: store.get_run(match.group(1)))
    assert (run.messages[-1]["role"], run.messages[-1]["content"]) == ("assistant", answer)


def test_run_summary_is_one_line_when_not_a_terminal(cli: Cli, greet: str) -> None:
    """The summary keeps the token count and the run id on one line, for grep and logs."""
    result = cli("run", greet, *ADA, *cli.fast())

    assert result.code == 0, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert RUN_ID.search(lines[0])


def test_run_json_prints_one_object_with_text_ids_and_tokens(cli: Cli, greet: str) -> None:
    """``run --json`` prints a single JSON object holding the answer, its ids and tokens."""
    result = cli("run", greet, *ADA, "--json", *cli.fast())

    assert result.code == 0, result
    data = result.json
    assert isinstance(data["text"], str)
    assert data["text"]
    assert data["output_tokens"] == 5
    assert data["task_id"]
    assert data["run_id"]
    run = cli.read(lambda store: store.get_run(data["run_id"]))
    assert run.messages[-1]["content"] == data["text"]


def test_run_var_fills_the_prompt_template(cli: Cli, greet: str) -> None:
    """``--var name=value`` is substituted into the prompt; the value may itself hold ``=``."""
    result = cli("run", greet, "--var", "customer_name=Ada=Lovelace", "--json", *cli.fast())

    assert result.code == 0, result
    task = cli.read(lambda store: store.get_task(result.json["task_id"]))
    assert [m["content"] for m in task.request] == [
        "You greet people.",
        "Say hello to Ada=Lovelace.",
    ]


def test_run_input_is_appended_after_the_prompt_messages(cli: Cli, greet: str) -> None:
    """``--input TEXT`` becomes a user message after the prompt's own messages."""
    result = cli("run", greet, *ADA, "--input", "and be brief", "--json", *cli.fast())

    assert result.code == 0, result
    task = cli.read(lambda store: store.get_task(result.json["task_id"]))
    assert [(m["role"], m["content"]) for m in task.request] == [
        ("system", "You greet people."),
        ("user", "Say hello to Ada."),
        ("user", "and be brief"),
    ]


def test_run_no_track_says_not_tracked_and_records_no_run(cli: Cli, greet: str) -> None:
    """``--no-track`` runs the prompt, says the run is not tracked, and writes no run row."""
    streamed = cli("run", greet, *ADA, "--no-track", *cli.fast())
    as_json = cli("run", greet, *ADA, "--no-track", "--json", *cli.fast())

    assert (streamed.code, as_json.code) == (0, 0)
    assert streamed.out.strip()
    assert "run not tracked" in " ".join(streamed.err.split())
    assert as_json.json["run_id"] is None
    assert cli.read(lambda store: store.list_runs()) == []


def test_run_accepts_a_json_prompt_file(cli: Cli) -> None:
    """A ``.json`` prompt file runs like a YAML one."""
    prompt = {
        "id": "greet-json",
        "messages": [{"role": "user", "content": "Say hello to {{customer_name}}."}],
    }
    name = write("greet.json", json.dumps(prompt))

    result = cli("run", name, *ADA, "--json", *cli.fast())

    assert result.code == 0, result
    run = cli.read(lambda store: store.get_run(result.json["run_id"]))
    assert run.prompt_id == "greet-json"


# -- errors we explain -----------------------------------------------------------------------


def test_missing_prompt_file_is_reported_by_name(cli: Cli) -> None:
    """``run`` of a prompt file that does not exist names it, with exit 1."""
    result = cli("run", "missing.yaml", *cli.fast())

    assert_explained(result, "prompt file 'missing.yaml' does not exist")


def test_malformed_yaml_is_reported_as_not_valid_yaml(cli: Cli) -> None:
    """A prompt file YAML cannot parse is refused, with the parser's position."""
    name = write("broken.yaml", "messages: [\n  - role: user\n")

    result = cli("run", name, *cli.fast())

    assert_explained(result, "prompt file 'broken.yaml' is not valid yaml", "line 2")


def test_malformed_json_is_reported_as_not_valid_json(cli: Cli) -> None:
    """A ``.json`` prompt file with a syntax error is refused as invalid JSON."""
    name = write("broken.json", '{"messages": [')

    result = cli("run", name, *cli.fast())

    assert_explained(result, "prompt file 'broken.json' is not valid json")


def test_prompt_file_that_is_not_a_mapping_is_refused(cli: Cli) -> None:
    """A prompt file holding a list instead of a mapping is refused."""
    name = write("list.yaml", "- role: user\n  content: hi\n")

    result = cli("run", name, *cli.fast())

    assert_explained(result, "prompt file 'list.yaml' must hold a mapping with 'messages'")


@pytest.mark.parametrize(
    "text", ["id: nothing\nname: No messages\n", "messages: []\n"], ids=["absent", "empty"]
)
def test_prompt_file_without_messages_is_refused(cli: Cli, text: str) -> None:
    """A prompt file with no messages is refused before anything runs."""
    name = write("nomessages.yaml", text)

    result = cli("run", name, *cli.fast())

    assert_explained(result, "prompt file 'nomessages.yaml'", "messages")


def test_prompt_file_with_an_unknown_role_is_refused(cli: Cli) -> None:
    """A message whose role is not system, user or assistant is refused, saying where."""
    name = write("wizard.yaml", "messages:\n  - role: wizard\n    content: hi\n")

    result = cli("run", name, *cli.fast())

    assert_explained(
        result, "prompt file 'wizard.yaml'", "messages.0", "'system', 'user' or 'assistant'"
    )


@pytest.mark.parametrize("pair", ["customer_name", "=Ada", " =Ada"])
def test_var_without_a_name_and_value_is_refused(cli: Cli, greet: str, pair: str) -> None:
    """A ``--var`` that is not ``name=value`` is refused, quoting it."""
    result = cli("run", greet, "--var", pair, *cli.fast())

    assert_explained(result, f"--var {pair!r}: write it as name=value")


def test_missing_variable_is_named_in_the_error(cli: Cli, greet: str) -> None:
    """Running a prompt without a value for one of its variables names that variable."""
    result = cli("run", greet, *cli.fast())

    assert_explained(result, "missing variables: customer_name")


def test_unknown_stored_prompt_id_is_reported(cli: Cli) -> None:
    """``run ID`` for an id the database does not hold names the id."""
    result = cli("run", "no-such-prompt", *cli.fast())

    assert_explained(result, "prompt 'no-such-prompt' not found in prompts")


@pytest.mark.parametrize(
    "command",
    [("db", "init"), ("db", "migrate"), ("run", GREET, *ADA), ("load", "-n", "1")],
    ids=["db-init", "db-migrate", "run", "load"],
)
def test_unknown_database_scheme_is_reported(
    cli: Cli, greet: str, command: tuple[str, ...]
) -> None:
    """A ``--database`` URL of a kind we do not support is refused, naming the scheme."""
    result = cli(*command, "--database", "mysql://db.example/prompts")

    assert_explained(result, "unknown store URL scheme 'mysql'")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--latency", "-1", "simulated_latency: Input should be greater than or equal to 0"),
        ("--tokens", "0", "simulated_tokens: Input should be greater than or equal to 1"),
    ],
    ids=["negative-latency", "zero-tokens"],
)
@pytest.mark.parametrize(
    "command", [("run", GREET, *ADA), ("load", "-n", "1")], ids=["run", "load"]
)
def test_out_of_range_settings_are_refused_naming_the_setting(
    cli: Cli, greet: str, command: tuple[str, ...], option: str, value: str, message: str
) -> None:
    """Settings validation refuses a negative latency or zero tokens before anything runs."""
    result = cli(*command, *cli.db, option, value)

    assert_explained(result, message)
    assert not Path("x.db").exists()


@pytest.mark.parametrize(
    "argv",
    [["bench", "nosuch"], ["nosuch"], ["run"], ["--log-level", "loud", "version"]],
    ids=["bench-nosuch", "unknown-command", "missing-argument", "bad-log-level"],
)
def test_usage_errors_exit_2_with_the_usage_and_no_traceback(cli: Cli, argv: list[str]) -> None:
    """typer's usage errors exit 2 with a usage line, never a traceback."""
    result = cli(*argv)

    assert result.code == 2
    assert "Usage: " in result.err
    assert "Traceback" not in result.out + result.err


def test_usage_names_the_program_promptactors_when_main_is_called_in_process(cli: Cli) -> None:
    """The usage line says ``promptactors`` whatever program called ``main(argv)``."""
    result = cli("bench", "nosuch")

    assert result.code == 2
    assert "Usage: promptactors bench" in result.err


def test_bench_nosuch_says_there_is_no_such_command(cli: Cli) -> None:
    """``bench nosuch`` names the unknown benchmark."""
    result = cli("bench", "nosuch")

    assert result.code == 2
    assert "No such command 'nosuch'" in result.err


def _broken_parse_vars(pairs: list[str] | None) -> dict[str, str]:
    raise RuntimeError("the unexpected")


def test_unexpected_error_is_summarised_with_exit_2_and_no_traceback(
    cli: Cli, greet: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error that is not ours is named in one line with the debug hint, exit 2."""
    monkeypatch.setattr("promptactors.cli._run.parse_vars", _broken_parse_vars)

    result = cli("run", greet, *cli.fast())

    assert result.code == 2
    assert "Traceback" not in result.out + result.err
    assert "internal error: RuntimeError: the unexpected" in result.text
    assert "set PROMPTACTORS_DEBUG=1 to see the traceback" in result.text


def test_unexpected_error_propagates_with_promptactors_debug(
    cli: Cli, greet: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With PROMPTACTORS_DEBUG=1 an unexpected error propagates, traceback and all."""
    monkeypatch.setattr("promptactors.cli._run.parse_vars", _broken_parse_vars)
    monkeypatch.setenv("PROMPTACTORS_DEBUG", "1")

    with pytest.raises(RuntimeError, match="the unexpected"):
        main(["run", greet, *cli.fast()])


# -- the console script ----------------------------------------------------------------------


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed ``promptactors`` of this interpreter's environment."""
    script = shutil.which("promptactors", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.fail("the promptactors console script is not installed next to the interpreter")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTACTORS_")}
    return subprocess.run(
        [script, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )


def test_console_script_initialises_and_runs_a_prompt_end_to_end(cli: Cli, greet: str) -> None:
    """The installed ``promptactors`` creates the schema, streams an answer and exits 0."""
    init = run_script("db", "init", *cli.db)
    assert init.returncode == 0, init.stderr
    assert "schema at version" in init.stdout

    ran = run_script("run", greet, *ADA, *cli.fast())

    assert ran.returncode == 0, ran.stderr
    answer = ran.stdout.strip()
    assert answer
    summary = " ".join(ran.stderr.split())
    assert "5 tokens" in summary
    match = RUN_ID.search(summary)
    assert match is not None, summary
    run = cli.read(lambda store: store.get_run(match.group(1)))
    assert run.messages[-1]["content"] == answer


def test_console_script_explains_an_error_with_exit_1_and_no_traceback(cli: Cli) -> None:
    """The installed ``promptactors`` turns a missing prompt file into a message and exit 1."""
    result = run_script("run", "missing.yaml", *cli.fast())

    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "error: prompt file 'missing.yaml' does not exist" in result.stderr


def test_console_script_prints_the_version() -> None:
    """``promptactors version`` from a shell prints the installed version."""
    result = run_script("version")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == promptactors.__version__

"""Configuration on the command line: ``promptactors.toml``, ``--config``, ``PROMPTACTORS_*``
and flags, through ``main(argv)``; nothing silently ignored.

Every test runs in its own directory with real files and the real environment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.from_thread
import pytest
import structlog

from promptactors.cli import main
from promptactors.testing._llm_server import LLMServer, Reply, serve_llm

GREET_YAML = """\
id: greet
messages:
  - role: user
    content: Say hello to {{customer_name}} from {{place}}.
variables:
  - name: customer_name
"""
ADA = ("--var", "customer_name=Ada", "--var", "place=London")
FAST = "simulated_latency = 0\n"


@dataclass(frozen=True)
class Result:
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


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Own directory, no PROMPTACTORS_* from the caller's shell, a fixed console width, and
    structlog's configuration restored (the CLI configures it for the process)."""
    for name in list(os.environ):
        if name.upper().startswith("PROMPTACTORS_"):
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
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def greet() -> str:
    return write("greet.yaml", GREET_YAML)


def write(name: str, text: str) -> str:
    Path(name).write_text(text, encoding="utf-8")
    return name


def assert_one_line_error(result: Result, expected: str) -> None:
    """Exit 1, exactly one line on stderr, ``error: <expected>``, never an internal error."""
    assert result.code == 1, result
    assert "internal error" not in result.err
    assert "Traceback" not in result.out + result.err
    assert result.text == f"error: {expected}", result.text


# -- precedence ------------------------------------------------------------------------------


def test_flags_beat_the_environment_which_beats_the_config_file(
    cli: Any, greet: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The simulated answer's length follows promptactors.toml, then PROMPTACTORS_*, then
    the flag."""
    write("promptactors.toml", FAST + "simulated_tokens = 3\n")

    from_file = cli("run", greet, *ADA, "--json")
    monkeypatch.setenv("PROMPTACTORS_SIMULATED_TOKENS", "4")
    from_env = cli("run", greet, *ADA, "--json")
    from_flag = cli("run", greet, *ADA, "--json", "--tokens", "5")

    assert [r.code for r in (from_file, from_env, from_flag)] == [0, 0, 0]
    assert [r.json["output_tokens"] for r in (from_file, from_env, from_flag)] == [3, 4, 5]


def test_the_config_file_names_the_database(cli: Any) -> None:
    """``database_url`` in promptactors.toml is where ``db init`` creates the schema."""
    write("promptactors.toml", 'database_url = "sqlite:///from-file.db"\n')

    result = cli("db", "init")

    assert result.code == 0, result
    assert "in sqlite:///from-file.db" in result.text
    assert Path("from-file.db").exists()
    assert not Path("promptactors.db").exists()


def test_global_config_option_reads_another_file(cli: Any, greet: str) -> None:
    """``--config FILE`` reads that file instead of ./promptactors.toml."""
    write("promptactors.toml", FAST + "simulated_tokens = 3\n")
    Path("conf").mkdir()
    write("conf/other.toml", FAST + "simulated_tokens = 6\n")

    result = cli("--config", "conf/other.toml", "run", greet, *ADA, "--json")

    assert result.code == 0, result
    assert result.json["output_tokens"] == 6


def test_global_config_option_naming_a_missing_file_is_an_error(cli: Any) -> None:
    """``--config`` pointing at nothing says so in one line, exit 1."""
    result = cli("--config", "nothere.toml", "db", "init")

    assert_one_line_error(result, "config file 'nothere.toml' (from --config) does not exist")
    assert not Path("promptactors.db").exists()


# -- nothing silently ignored ----------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [("db", "init"), ("run", "greet.yaml", *ADA), ("load", "-n", "1")]
)
def test_a_misspelt_environment_variable_is_an_error_with_a_suggestion(
    cli: Any, greet: str, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    """``PROMPTACTORS_DATABSE_URL`` is refused, not ignored for the default database."""
    monkeypatch.setenv("PROMPTACTORS_DATABSE_URL", "sqlite:///elsewhere.db")

    result = cli(*command)

    assert_one_line_error(
        result,
        "unknown environment variable PROMPTACTORS_DATABSE_URL "
        "(did you mean PROMPTACTORS_DATABASE_URL?)",
    )
    assert not Path("promptactors.db").exists()


def test_an_unknown_key_in_the_config_file_is_an_error_with_a_suggestion(cli: Any) -> None:
    """A misspelt key in promptactors.toml names the file, the key and the likely key."""
    write("promptactors.toml", 'databse_url = "sqlite:///x.db"\n')

    result = cli("db", "init")

    assert_one_line_error(
        result,
        "config file 'promptactors.toml': unknown key 'databse_url' (did you mean 'database_url'?)",
    )


@pytest.mark.parametrize("name", ["PROMPTACTORS_ENDPOINTS", "PROMPTACTORS_PRICES"])
def test_malformed_json_in_a_variable_names_it_and_is_not_an_internal_error(
    cli: Any, greet: str, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """``PROMPTACTORS_ENDPOINTS='{bad'`` is one line naming the variable, exit 1."""
    monkeypatch.setenv(name, "{bad")

    result = cli("run", greet, *ADA)

    assert_one_line_error(
        result,
        f"{name}: not valid JSON: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)",
    )


def test_malformed_toml_names_the_file(cli: Any, greet: str) -> None:
    """A config file that is not TOML is one line naming it, with the parser's position."""
    write("promptactors.toml", "[endpoints.local\n")

    result = cli("run", greet, *ADA)

    assert result.code == 1, result
    assert result.text.startswith("error: config file 'promptactors.toml' is not valid TOML:")
    assert "line 1" in result.text
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("file", "config file 'promptactors.toml': simulated_tokens: Input should be a valid"),
        ("env", "PROMPTACTORS_SIMULATED_TOKENS: Input should be a valid integer"),
    ],
)
def test_a_malformed_number_names_its_key_or_variable(
    cli: Any, greet: str, monkeypatch: pytest.MonkeyPatch, source: str, expected: str
) -> None:
    """A number that is not one names where it was written."""
    if source == "file":
        write("promptactors.toml", 'simulated_tokens = "many"\n')
    else:
        monkeypatch.setenv("PROMPTACTORS_SIMULATED_TOKENS", "many")

    result = cli("run", greet, *ADA)

    assert result.code == 1, result
    assert result.text.startswith(f"error: {expected}"), result.text


def test_an_unknown_key_in_an_endpoint_table_is_named_with_a_suggestion(
    cli: Any, greet: str
) -> None:
    """A misspelt key inside ``[endpoints.NAME]`` names the endpoint, the key and the fix."""
    write("promptactors.toml", '[endpoints.local]\nkind = "openai"\nbase_ulr = "http://x"\n')

    result = cli("run", greet, *ADA)

    assert_one_line_error(
        result,
        "config file 'promptactors.toml': endpoints.local: unknown key 'base_ulr' "
        "(did you mean 'base_url'?)",
    )


def test_a_var_the_prompt_does_not_know_is_refused_naming_its_variables(
    cli: Any, greet: str
) -> None:
    """``--var`` for a name neither declared nor used lists the prompt's variables."""
    result = cli("run", greet, *ADA, "--var", "custmer=Bob")

    assert_one_line_error(
        result,
        "--var 'custmer': prompt 'greet' has no such variable (did you mean "
        "'customer_name'?); its variables: customer_name, place",
    )


def test_a_var_unknown_to_a_stored_prompt_is_refused(cli: Any, greet: str) -> None:
    """The check holds for a prompt run by its stored id too."""
    assert cli("db", "add-prompt", greet).code == 0

    result = cli("run", "greet", *ADA, "--var", "zzz=1", "--latency", "0")

    assert_one_line_error(
        result,
        "--var 'zzz': prompt 'greet' has no such variable; its variables: customer_name, place",
    )


def test_a_var_the_prompt_uses_without_declaring_is_accepted(cli: Any, greet: str) -> None:
    """``place`` is only used in a message, not declared: it is still a known variable."""
    result = cli("run", greet, *ADA, "--json", "--latency", "0", "--tokens", "2")

    assert result.code == 0, result


@pytest.mark.parametrize(
    ("args", "env", "source"),
    [(("--model", "gpt-4o"), None, "--model"), ((), "gpt-4o", "PROMPTACTORS_MODEL")],
    ids=["flag", "env"],
)
def test_a_model_with_the_simulated_provider_is_refused(
    cli: Any,
    greet: str,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    env: str | None,
    source: str,
) -> None:
    """The simulated provider has no models: ``--model gpt-4o`` without a provider says so."""
    if env is not None:
        monkeypatch.setenv("PROMPTACTORS_MODEL", env)

    result = cli("run", greet, *ADA, *args)

    assert_one_line_error(
        result,
        f"model 'gpt-4o' (from {source}) needs a real provider: the simulated provider has "
        "no models; choose one with --provider (endpoints: none configured)",
    )


def test_db_init_on_a_damaged_file_names_the_file_and_the_cause(cli: Any) -> None:
    """A file that is not an SQLite database is refused in one line, and left as it was."""
    damaged = b"this is not a database\n" * 200
    Path("damaged.db").write_bytes(damaged)

    result = cli("db", "init", "--database", "sqlite:///damaged.db")

    assert_one_line_error(
        result, "SQLite could not open the database (damaged.db): file is not a database"
    )
    assert Path("damaged.db").read_bytes() == damaged


# -- end to end through an endpoint of the config file ---------------------------------------


@pytest.fixture
def llm_server() -> Iterator[LLMServer]:
    """A real OpenAI-compatible server on 127.0.0.1, in its own thread and event loop."""
    with (
        anyio.from_thread.start_blocking_portal(backend="trio") as portal,
        portal.wrap_async_context_manager(serve_llm(Reply(tokens=4))) as server,
    ):
        yield server


def test_run_streams_from_an_endpoint_configured_in_toml(
    cli: Any, greet: str, llm_server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``[endpoints.local]`` and ``[prices."gpt-test"]`` from promptactors.toml reach a real
    server: the request carries the model and the key from the named variable, and the
    answer is priced with the file's prices."""
    monkeypatch.setenv("LOCAL_LLM_KEY", "sk-from-env")
    write(
        "promptactors.toml",
        f"""\
provider = "local"

[endpoints.local]
kind = "openai"
base_url = "{llm_server.base_url}"
api_key_env = "LOCAL_LLM_KEY"
default_model = "gpt-test"
max_attempts = 1

[prices."gpt-test"]
input = 1000000
output = 2000000
""",
    )

    result = cli("run", greet, *ADA, "--json")

    assert result.code == 0, result
    data = result.json
    assert data["text"] == "tok " * 4
    assert data["output_tokens"] == 4
    assert data["cost"] == pytest.approx(data["input_tokens"] * 1.0 + 4 * 2.0)
    (request,) = llm_server.requests
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "gpt-test"
    assert request.headers["authorization"] == "Bearer sk-from-env"
    assert request.body["messages"][-1]["content"] == "Say hello to Ada from London."

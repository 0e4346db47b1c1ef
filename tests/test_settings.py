"""``RuntimeSettings``: keyword arguments in code, and :meth:`RuntimeSettings.load`'s sources.

Real files in the test's own directory and the real environment (through monkeypatch).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from promptactors import ConfigurationError, RuntimeSettings


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test runs in its own directory, without PROMPTACTORS_* from the caller's shell."""
    for name in list(os.environ):
        if name.upper().startswith("PROMPTACTORS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def write_config(text: str, name: str = "promptactors.toml") -> Path:
    path = Path(name)
    path.write_text(text, encoding="utf-8")
    return path


# -- in code ---------------------------------------------------------------------------------


def test_an_unknown_keyword_argument_is_refused_with_the_closest_setting() -> None:
    """``RuntimeSettings(databse_url=...)`` fails naming the argument and the likely one."""
    with pytest.raises(ValidationError, match=r"unknown setting 'databse_url' \(did you mean "):
        RuntimeSettings(databse_url="sqlite:///x.db")  # type: ignore[call-arg]


def test_code_values_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keyword arguments override ``PROMPTACTORS_*``, which override the defaults."""
    monkeypatch.setenv("PROMPTACTORS_SIMULATED_TOKENS", "7")
    monkeypatch.setenv("PROMPTACTORS_PROVIDER", "local")

    settings = RuntimeSettings(simulated_tokens=9)

    assert (settings.simulated_tokens, settings.provider) == (9, "local")


# -- load: precedence ------------------------------------------------------------------------


def test_load_without_any_source_gives_the_defaults() -> None:
    """No file, no variable, no flag: the defaults, each saying so."""
    settings = RuntimeSettings.load()

    assert settings.database_url == "sqlite:///promptactors.db"
    assert settings.provider == "simulated"
    assert settings.source_of("database_url") == "the default"


def test_flags_beat_the_environment_which_beats_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """flag > PROMPTACTORS_* > promptactors.toml > default, setting by setting."""
    write_config("simulated_tokens = 3\nsimulated_seed = 11\nmax_attempts = 5\n")
    monkeypatch.setenv("PROMPTACTORS_SIMULATED_TOKENS", "4")
    monkeypatch.setenv("PROMPTACTORS_SIMULATED_SEED", "12")

    settings = RuntimeSettings.load(simulated_tokens=5, simulated_latency=None)

    assert settings.simulated_tokens == 5
    assert settings.simulated_seed == 12
    assert settings.max_attempts == 5
    assert settings.simulated_latency == 0.02
    assert settings.source_of("simulated_tokens") == "the command line"
    assert settings.source_of("simulated_seed") == "PROMPTACTORS_SIMULATED_SEED"
    assert settings.source_of("max_attempts") == "config file 'promptactors.toml'"


def test_endpoints_and_prices_are_toml_tables_and_the_env_json_replaces_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``[endpoints.NAME]`` / ``[prices."MODEL"]`` tables load; the JSON variable wins whole."""
    write_config(
        '[endpoints.local]\nkind = "openai"\nbase_url = "http://127.0.0.1:1/v1"\n'
        '[prices."gpt-4o"]\ninput = 2.5\noutput = 10\n'
    )

    from_file = RuntimeSettings.load()
    monkeypatch.setenv("PROMPTACTORS_PRICES", '{"my-model": {"input": 0.1, "output": 0.4}}')
    from_env = RuntimeSettings.load()

    assert from_file.endpoints == {"local": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1"}}
    assert from_file.prices == {"gpt-4o": {"input": 2.5, "output": 10.0}}
    assert from_env.prices == {"my-model": {"input": 0.1, "output": 0.4}}
    assert from_env.endpoints == from_file.endpoints


def test_the_config_file_can_be_named_or_given_by_promptactors_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A named file replaces ./promptactors.toml; the argument beats PROMPTACTORS_CONFIG."""
    write_config("simulated_seed = 1\n")
    write_config("simulated_seed = 2\n", "env.toml")
    write_config("simulated_seed = 3\n", "named.toml")

    assert RuntimeSettings.load().simulated_seed == 1
    monkeypatch.setenv("PROMPTACTORS_CONFIG", "env.toml")
    assert RuntimeSettings.load().simulated_seed == 2
    assert RuntimeSettings.load("named.toml").simulated_seed == 3


# -- load: nothing silently ignored ----------------------------------------------------------


def test_an_unknown_environment_variable_is_named_with_the_closest_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A misspelt ``PROMPTACTORS_DATABSE_URL`` is an error, never the default database."""
    monkeypatch.setenv("PROMPTACTORS_DATABSE_URL", "sqlite:///elsewhere.db")

    with pytest.raises(ConfigurationError) as info:
        RuntimeSettings.load()

    assert str(info.value) == (
        "unknown environment variable PROMPTACTORS_DATABSE_URL "
        "(did you mean PROMPTACTORS_DATABASE_URL?)"
    )


@pytest.mark.parametrize(
    "name",
    [
        "PROMPTACTORS_DEBUG",
        "PROMPTACTORS_CONFIG",
        "PROMPTACTORS_TEST_POSTGRES_URL",
        "PROMPTACTORS_REQUIRE_POSTGRES",
        "PROMPTACTORS_REQUIRE_CHROMIUM",
    ],
)
def test_the_documented_non_setting_variables_are_accepted(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The variables read by the CLI and the test suite are not mistaken for misspellings."""
    write_config("")
    monkeypatch.setenv(name, "promptactors.toml" if name == "PROMPTACTORS_CONFIG" else "1")

    assert RuntimeSettings.load().provider == "simulated"


def test_an_unknown_key_in_the_file_is_named_with_the_closest_one() -> None:
    """A misspelt key in the config file names the file, the key and the likely key."""
    write_config('databse_url = "sqlite:///x.db"\n')

    with pytest.raises(ConfigurationError) as info:
        RuntimeSettings.load()

    assert str(info.value) == (
        "config file 'promptactors.toml': unknown key 'databse_url' (did you mean 'database_url'?)"
    )


@pytest.mark.parametrize("name", ["PROMPTACTORS_ENDPOINTS", "PROMPTACTORS_PRICES"])
def test_malformed_json_in_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Bad JSON in a JSON-valued variable is one line naming that variable."""
    monkeypatch.setenv(name, "{bad")

    with pytest.raises(ConfigurationError, match=rf"^{name}: not valid JSON: .*line 1 column 2"):
        RuntimeSettings.load()


def test_malformed_toml_names_the_file_and_the_position() -> None:
    """A config file TOML cannot parse is refused with the parser's position."""
    write_config("provider = \nmodel = 1\n")

    with pytest.raises(ConfigurationError) as info:
        RuntimeSettings.load()

    message = str(info.value)
    assert message.startswith("config file 'promptactors.toml' is not valid TOML: ")
    assert "line 1" in message
    assert "\n" not in message


def test_an_invalid_number_names_its_variable_or_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A value of the wrong kind names where it came from: the variable or the file key."""
    write_config('max_attempts = "many"\n[prices.m]\ninput = "cheap"\noutput = 1\n')
    with pytest.raises(ConfigurationError) as from_file:
        RuntimeSettings.load()
    monkeypatch.setenv("PROMPTACTORS_MAX_ATTEMPTS", "0")
    with pytest.raises(ConfigurationError) as from_env:
        RuntimeSettings.load()

    assert str(from_file.value) == (
        "config file 'promptactors.toml': prices.m.input: Input should be a valid number, "
        "unable to parse string as a number; config file 'promptactors.toml': "
        "max_attempts: Input should be a valid integer, unable to parse string as an integer"
    )
    assert str(from_env.value).endswith(
        "; PROMPTACTORS_MAX_ATTEMPTS: Input should be greater than or equal to 1"
    )


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (True, "config file 'nothere.toml' (from --config) does not exist"),
        (False, "config file 'nothere.toml' (from PROMPTACTORS_CONFIG) does not exist"),
    ],
    ids=["argument", "variable"],
)
def test_a_named_config_file_that_is_missing_is_an_error(
    monkeypatch: pytest.MonkeyPatch, given: bool, message: str
) -> None:
    """A config file asked for by name must exist; only ./promptactors.toml is optional."""
    if not given:
        monkeypatch.setenv("PROMPTACTORS_CONFIG", "nothere.toml")

    with pytest.raises(ConfigurationError) as info:
        RuntimeSettings.load("nothere.toml" if given else None)

    assert str(info.value) == message


def test_a_config_directory_is_not_a_file() -> None:
    """``--config`` naming a directory says so."""
    Path("conf.d").mkdir()

    with pytest.raises(ConfigurationError, match=r"config file 'conf.d' \(from --config\) is not"):
        RuntimeSettings.load("conf.d")


def test_the_readme_sample_config_file_loads() -> None:
    """The sample ``promptactors.toml`` of README.md's Configuration section is valid."""
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Configuration") :]
    sample = section[section.index("```toml\n") + 8 : section.index("```\n", 10)]
    write_config(sample)

    settings = RuntimeSettings.load()

    assert settings.provider == "local"
    assert set(settings.endpoints) == {"local", "anthropic"}
    assert settings.prices == {"llama-3.1-8b": {"input": 0.05, "output": 0.08}}

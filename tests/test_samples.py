"""The sample prompts shipped in the package, their JSON Schema, and ``promptactors init``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest
import structlog
import yaml

import promptactors
from promptactors import InvalidInput, RuntimeSettings, load_prompt_file
from promptactors._prompt_files import prompt_file_schema, prompt_file_schema_text
from promptactors.cli import main

SAMPLES = Path(str(files("promptactors").joinpath("samples")))
SCHEMA_FILE = SAMPLES / "prompt.schema.json"
PROMPTS = sorted(SAMPLES.glob("*.yaml"))
REGENERATE = (
    'python -c "from promptactors._prompt_files import prompt_file_schema_text as t; '
    "print(t(), end='')\" > src/promptactors/samples/prompt.schema.json"
)
#: Values for the sample variables that have no default.
REQUIRED = {"product": "promptactors", "version": "0.2.0", "changes": "a new init command"}


def test_the_shipped_schema_is_the_one_the_model_generates() -> None:
    """prompt.schema.json equals what PromptDefinition generates today: it cannot drift."""
    assert SCHEMA_FILE.read_text(encoding="utf-8") == prompt_file_schema_text(), (
        f"the shipped schema is stale; regenerate it: {REGENERATE}"
    )


def test_the_schema_is_a_valid_json_schema() -> None:
    """Editors can load it: it validates against the 2020-12 meta-schema."""
    jsonschema.Draft202012Validator.check_schema(prompt_file_schema())


def test_there_are_samples_of_each_kind() -> None:
    """A first prompt, a multi-turn chat and one with several variables ship."""
    assert {p.name for p in PROMPTS} >= {"greet.yaml", "chat.yaml", "release-notes.yaml"}
    chat = load_prompt_file(SAMPLES / "chat.yaml")
    assert {m.role for m in chat.messages} == {"system", "user", "assistant"}
    several = load_prompt_file(SAMPLES / "release-notes.yaml")
    assert len(several.variables) > 3
    assert any(v.default is None for v in several.variables)


@pytest.mark.parametrize("path", PROMPTS, ids=lambda p: p.name)
def test_each_sample_satisfies_the_schema_and_points_editors_at_it(path: Path) -> None:
    """The schema accepts every sample, whose first line names the schema beside it."""
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == "# yaml-language-server: $schema=prompt.schema.json"
    jsonschema.validate(yaml.safe_load(text), prompt_file_schema())


@pytest.mark.parametrize("path", PROMPTS, ids=lambda p: p.name)
def test_each_sample_runs_on_the_simulated_provider(path: Path, tmp_path: Path) -> None:
    """Every sample loads and answers a turn, tracked in the database."""
    definition = load_prompt_file(path)
    settings = RuntimeSettings(database_url=f"sqlite:///{tmp_path}/s.db", simulated_latency=0)

    async def go() -> promptactors.TurnResult:
        async with promptactors.open_runtime(settings) as rt:
            inst = await rt.start_instance(prompt=definition, variables=REQUIRED)
            return await inst.execute()

    result = anyio.run(go, backend="trio")
    assert result.text
    assert result.run_id is not None


def test_the_schema_rejects_what_the_loader_rejects(tmp_path: Path) -> None:
    """A bad role or a bad variable name is caught by the editor and by the loader alike."""
    bad = {"messages": [{"role": "robot", "content": "hi"}], "variables": [{"name": "1x"}]}
    validator = jsonschema.Draft202012Validator(prompt_file_schema())
    assert len(list(validator.iter_errors(bad))) == 2
    file = tmp_path / "bad.json"
    file.write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"bad\.json"):
        load_prompt_file(file)


def test_a_json_prompt_file_may_name_its_schema(tmp_path: Path) -> None:
    """A JSON file's ``$schema`` key (how editors find a schema) is accepted and ignored."""
    data = {"$schema": "prompt.schema.json", "messages": [{"role": "user", "content": "Hi"}]}
    jsonschema.validate(data, prompt_file_schema())
    file = tmp_path / "hi.json"
    file.write_text(json.dumps(data), encoding="utf-8")
    assert load_prompt_file(file).id == "hi"


# -- promptactors init ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _cli_isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No PROMPTACTORS_* from the caller's shell; structlog's configuration (which the CLI
    sets for the process) is given back, and loggers do not cache pytest's stderr."""
    for name in list(os.environ):
        if name.startswith("PROMPTACTORS_"):
            monkeypatch.delenv(name)
    saved = structlog.get_config()
    configure = structlog.configure

    def uncached(**kwargs: Any) -> None:
        configure(**{**kwargs, "cache_logger_on_first_use": False})

    monkeypatch.setattr(structlog, "configure", uncached)
    yield
    configure(**saved)


def test_init_writes_a_prompt_that_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``init`` writes prompts/greet.yaml and its schema, and the command it prints works."""
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "prompts/greet.yaml").read_text() == (SAMPLES / "greet.yaml").read_text()
    assert (tmp_path / "prompts/prompt.schema.json").read_text() == SCHEMA_FILE.read_text()
    next_line = out.strip().splitlines()[-1]
    assert next_line == "next: promptactors run prompts/greet.yaml --var who=Ada"
    argv = next_line.removeprefix("next: promptactors ").split()
    assert main([*argv, "--database", f"sqlite:///{tmp_path}/x.db", "--latency", "0"]) == 0
    assert "tokens" in capsys.readouterr().err


def test_init_into_a_new_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``init DIR`` creates the folder and prints the command with its path."""
    assert main(["init", str(tmp_path / "new")]) == 0
    assert (tmp_path / "new/prompts/greet.yaml").is_file()
    assert f"promptactors run {tmp_path}/new/prompts/greet.yaml" in capsys.readouterr().out


def test_init_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An existing file is kept and named in a one-line error; ``--force`` replaces it."""
    greet = tmp_path / "prompts/greet.yaml"
    greet.parent.mkdir()
    greet.write_text("mine", encoding="utf-8")
    capsys.readouterr()
    assert main(["init", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "greet.yaml already exists (use --force to overwrite)" in " ".join(err.split())
    assert greet.read_text() == "mine"
    assert not (tmp_path / "prompts/prompt.schema.json").exists()
    assert main(["init", str(tmp_path), "--force"]) == 0
    assert greet.read_text() == (SAMPLES / "greet.yaml").read_text()

"""Help, ``--version``, ``python -m promptactors``, and ``run --input`` from a file or stdin."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from test_cli import ADA, SUBPROCESS_TIMEOUT, Cli, assert_explained, write

import promptactors
from promptactors.cli._main import app


def command_paths() -> list[tuple[str, ...]]:
    """Every command and group of the app, as the words that name it."""
    paths: list[tuple[str, ...]] = [()]

    def walk(group: typer.Typer, prefix: tuple[str, ...]) -> None:
        for info in group.registered_commands:
            name = info.name or (info.callback.__name__ if info.callback else "")
            paths.append((*prefix, name.replace("_", "-")))
        for sub in group.registered_groups:
            assert sub.name is not None
            assert sub.typer_instance is not None
            paths.append((*prefix, sub.name))
            walk(sub.typer_instance, (*prefix, sub.name))

    walk(app, ())
    return paths


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "root")
def test_help_shows_no_python_type_placeholders(cli: Cli, path: tuple[str, ...]) -> None:
    """No ``<bool>``, ``<str>``, ``<list[str]>`` or ``{argument}`` in any help page."""
    result = cli(*path, "--help")

    assert result.code == 0, result
    assert not re.search(r"<[a-z][a-z_\[\]|, ]*>", result.out), result.out
    assert not re.search(r"\{[a-z_]+\}", result.out), result.out


def test_flags_take_no_value(cli: Cli, greet: str) -> None:
    """``--json`` is a flag: the help shows no value for it, and a value is refused."""
    help_text = cli("run", "--help").out
    (line,) = [line for line in help_text.splitlines() if "--json" in line]
    assert re.search(r"--json\s+Print", line), line

    result = cli("run", greet, *ADA, "--json", "false", *cli.fast())

    assert result.code == 2
    assert "unexpected extra argument" in result.err


def test_options_and_arguments_have_readable_metavars(cli: Cli) -> None:
    """``run --help`` shows PROMPT, NAME=VALUE and the --input forms."""
    text = cli("run", "--help").out

    assert "Usage: promptactors run [OPTIONS] PROMPT" in text
    assert "NAME=VALUE" in text
    assert "TEXT|@FILE|-" in text


@pytest.mark.parametrize("path", [(), ("run",), ("chat",)], ids=["root", "run", "chat"])
def test_help_says_which_providers_exist_and_how_to_configure_one(
    cli: Cli, path: tuple[str, ...]
) -> None:
    """The top-level, run and chat help name the providers and the settings that choose one."""
    text = " ".join(cli(*path, "--help").out.replace("│", " ").split())

    for word in (
        "simulated",
        "openai-compatible",
        "anthropic",
        "PROMPTACTORS_PROVIDER",
        "PROMPTACTORS_ENDPOINTS",
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "PROMPTACTORS_DATABASE_URL",
    ):
        assert word in text, word


def test_version_flag_prints_the_version(cli: Cli) -> None:
    """``--version`` prints the version and exits 0."""
    result = cli("--version")

    assert result.code == 0
    assert result.out.strip() == promptactors.__version__


def test_python_dash_m_promptactors_runs_the_command_line() -> None:
    """``python -m promptactors --help`` prints the help and exits 0."""
    result = subprocess.run(
        [sys.executable, "-m", "promptactors", "--help"],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "Usage: promptactors" in result.stdout or "Usage: python -m" in result.stdout


# -- run --input -----------------------------------------------------------------------------


def last_request(cli: Cli, task_id: str) -> str:
    task = cli.read(lambda store: store.get_task(task_id))
    return str(task.request[-1]["content"])


def test_run_input_at_file_reads_the_file(cli: Cli, greet: str) -> None:
    """``--input @FILE`` sends the file's content as the user input."""
    write("question.txt", "a question\nover two lines\n")

    result = cli("run", greet, *ADA, "--input", "@question.txt", "--json", *cli.fast())

    assert result.code == 0, result
    assert last_request(cli, result.json["task_id"]) == "a question\nover two lines\n"


def test_run_input_dash_reads_stdin(cli: Cli, greet: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--input -`` sends what stdin holds."""
    monkeypatch.setattr("sys.stdin", io.StringIO("from a pipe"))

    result = cli("run", greet, *ADA, "--input", "-", "--json", *cli.fast())

    assert result.code == 0, result
    assert last_request(cli, result.json["task_id"]) == "from a pipe"


def test_run_input_of_a_missing_file_is_one_line(cli: Cli, greet: str) -> None:
    """``--input @FILE`` of a file that is not there names it, exit 1."""
    result = cli("run", greet, *ADA, "--input", "@nothere.txt", *cli.fast())

    assert_explained(result, "--input: file 'nothere.txt' does not exist")
    assert not Path("x.db").exists()

"""README.md's examples run as written, so the docs cannot rot.

* Every ```python block runs in its own interpreter (a fresh namespace) in a temporary
  directory, where the default SQLite file lands, and must finish within
  ``PYTHON_BLOCK_TIMEOUT`` seconds.
* Every line of a ```sh block that starts with ``promptactors `` runs through the command
  line's ``main(argv)``, in order, each block in its own temporary directory (so its
  ``promptactors init`` makes the ``prompts/greet.yaml`` that later lines use) against a
  temporary database; each must exit 0 within ``COMMAND_TIMEOUT`` seconds. Set-up lines
  (``python3 -m venv ...``) are not run.
* Both run with the defaults a new user has (no PROMPTACTORS_* variable) except a
  simulated provider with no pause between tokens, to keep the suite quick.
* The convention for a line that is shown but not run: its trailing comment begins with
  ``illustrative`` (``promptactors bench kernel --quick   # illustrative (takes ~30 s)``).
  Keep such lines rare: at most ``MAX_ILLUSTRATIVE`` of them.
* Every ```yaml block is a prompt file equal to the shipped sample it shows.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from promptactors import load_prompt_file
from promptactors.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
SAMPLES = Path(str(files("promptactors").joinpath("samples")))
PYTHON_BLOCK_TIMEOUT = 60
COMMAND_TIMEOUT = 60
MAX_ILLUSTRATIVE = 2
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
ILLUSTRATIVE = re.compile(r"#\s*illustrative\b")
SET_UP = ("python3 -m venv ",)
FAST = {"PROMPTACTORS_SIMULATED_LATENCY": "0"}


def blocks(language: str) -> list[str]:
    """The README's fenced blocks of ``language``, in order."""
    text = README.read_text(encoding="utf-8")
    return [body for lang, body in FENCE.findall(text) if lang == language]


def command_lines(block: str) -> tuple[list[str], list[str]]:
    """The ``promptactors`` lines of an sh block to run, and those marked illustrative."""
    run, shown = [], []
    for line in block.splitlines():
        line = line.strip()
        if not line or line.startswith(SET_UP):
            continue
        assert line.startswith("promptactors "), f"an sh line the test cannot run: {line}"
        (shown if ILLUSTRATIVE.search(line) else run).append(line)
    return run, shown


def clean_env() -> dict[str, str]:
    """The environment less PROMPTACTORS_* (the defaults, as a new user has them), but a
    fast simulated provider."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTACTORS_")}
    return {**env, **FAST, "COLUMNS": "100"}


RUNNABLE_SH = [b for b in blocks("sh") if command_lines(b)[0]]


def test_the_readme_has_examples_of_each_kind() -> None:
    """The extraction finds the blocks (a broken fence would silently test nothing)."""
    assert len(blocks("python")) >= 3
    assert len(RUNNABLE_SH) >= 2
    shown = [line for block in blocks("sh") for line in command_lines(block)[1]]
    assert len(shown) <= MAX_ILLUSTRATIVE, f"too many lines not run: {shown}"


@pytest.mark.parametrize(
    "code", blocks("python"), ids=lambda code: code.strip().splitlines()[0][:40]
)
def test_each_python_block_runs(code: str, tmp_path: Path) -> None:
    """The block runs to its end, in its own interpreter and directory, in bounded time;
    a runtime it opens keeps its runs in ./promptactors.db (the default) there."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=PYTHON_BLOCK_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    if "print(" in code:  # a block that prints but never runs its main() prints nothing
        assert done.stdout.strip(), "the block printed nothing: is its main() ever run?"
    if "open_runtime()" in code and "anyio.run(" in code:
        assert (tmp_path / "promptactors.db").is_file()


@pytest.fixture
def isolated_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The environment of :func:`clean_env`; structlog's configuration (which the command
    line sets for the process) is given back, and loggers do not cache pytest's stderr."""
    for name in list(os.environ):
        if name.startswith("PROMPTACTORS_"):
            monkeypatch.delenv(name)
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    saved = structlog.get_config()
    configure = structlog.configure

    def uncached(**kwargs: Any) -> None:
        configure(**{**kwargs, "cache_logger_on_first_use": False})

    monkeypatch.setattr(structlog, "configure", uncached)
    yield
    configure(**saved)


@pytest.mark.parametrize(
    "block", RUNNABLE_SH, ids=lambda block: command_lines(block)[0][0].split("#")[0].strip()
)
@pytest.mark.usefixtures("isolated_cli")
def test_the_command_lines_of_each_sh_block_run_in_order(
    block: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each ``promptactors ...`` line of the block exits 0, after the ones before it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROMPTACTORS_DATABASE_URL", f"sqlite:///{tmp_path}/readme.db")
    for line in command_lines(block)[0]:
        started = time.monotonic()
        code = main(shlex.split(line, comments=True)[1:])
        out, err = capsys.readouterr()
        assert code == 0, f"{line}\nstdout:\n{out}\nstderr:\n{err}"
        assert time.monotonic() - started < COMMAND_TIMEOUT, line


@pytest.mark.parametrize("text", blocks("yaml"), ids=lambda text: text.splitlines()[1][:40])
def test_each_yaml_block_is_the_sample_it_shows(text: str, tmp_path: Path) -> None:
    """A prompt file shown in the README loads and equals the shipped sample of its id."""
    file = tmp_path / "shown.yaml"
    file.write_text(text, encoding="utf-8")
    definition = load_prompt_file(file)
    sample = SAMPLES / f"{definition.id}.yaml"
    assert yaml.safe_load(text) == yaml.safe_load(sample.read_text(encoding="utf-8"))

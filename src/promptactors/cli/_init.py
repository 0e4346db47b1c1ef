"""``promptactors init``: give a new project a working prompt in one command."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .. import InvalidInput

_out = Console()

#: What init writes, relative to the project folder, and the shipped sample it copies.
#: The schema goes beside the prompt: the prompt's first line points editors at it.
_FILES = {
    Path("prompts/greet.yaml"): "greet.yaml",
    Path("prompts/prompt.schema.json"): "prompt.schema.json",
}


def init(
    directory: Annotated[
        Path, typer.Argument(help="The project folder (created if missing).")
    ] = Path("."),
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite files that already exist.")
    ] = False,
) -> None:
    """Write a sample prompt, prompts/greet.yaml (and its JSON Schema), to start from."""
    targets = {directory / relative: sample for relative, sample in _FILES.items()}
    existing = [str(path) for path in targets if path.exists()]
    if existing and not force:
        verb = "exists" if len(existing) == 1 else "exist"
        raise InvalidInput(f"{', '.join(existing)} already {verb} (use --force to overwrite)")
    samples = files("promptactors").joinpath("samples")
    for path, sample in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(samples.joinpath(sample).read_text(encoding="utf-8"), encoding="utf-8")
        _out.print(f"wrote {path}", highlight=False)
    prompt = next(iter(targets))
    _out.print(
        f"next: promptactors run {prompt.as_posix()} --var who=Ada", highlight=False, soft_wrap=True
    )

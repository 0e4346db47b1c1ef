"""Prompt definitions kept in YAML or JSON files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ._exceptions import InvalidInput
from .messages import PromptDefinition

__all__ = ["load_prompt_file"]

MAX_PROMPT_FILE_BYTES = 1_000_000


def load_prompt_file(path: str | Path) -> PromptDefinition:
    """Read a prompt definition from a ``.yaml``/``.yml``/``.json`` file.

    The file holds ``messages`` (each ``role`` and ``content``, with ``{{variables}}``),
    optionally ``id`` (default: the file name without suffix), ``name``, ``variables``
    (each ``name``, optional ``default`` and ``help_text``) and ``settings`` (``model``,
    ``provider``, ``temperature``...). Raises ``InvalidInput`` saying what is wrong and where.
    """
    file = Path(path)
    if not file.is_file():
        raise InvalidInput(f"prompt file {str(file)!r} does not exist")
    if file.stat().st_size > MAX_PROMPT_FILE_BYTES:
        raise InvalidInput(
            f"prompt file {str(file)!r} is larger than {MAX_PROMPT_FILE_BYTES} bytes"
        )
    text = file.read_text(encoding="utf-8")
    try:
        data: Any = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(
            f"prompt file {str(file)!r} is not valid {file.suffix[1:] or 'YAML'}: {exc}"
        ) from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"prompt file {str(file)!r} must hold a mapping with 'messages'")
    if not data.get("messages"):
        raise InvalidInput(
            f"prompt file {str(file)!r} has no messages: give a list of role/content items"
        )
    data.setdefault("id", file.stem)
    data.pop("execution_config", None)
    try:
        return PromptDefinition.model_validate(data)
    except (ValidationError, InvalidInput) as exc:
        raise InvalidInput(f"prompt file {str(file)!r}: {_describe(exc)}") from exc


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error.get("loc", ())) or "value"
        return f"{where}: {error.get('msg', 'invalid')}"
    return str(exc)

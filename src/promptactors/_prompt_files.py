"""Prompt definitions kept in YAML or JSON files, and the JSON Schema editors check them with.

The format is :class:`~promptactors.PromptDefinition` with ``id`` optional (the file name)
and at least one message. :func:`prompt_file_schema` derives the schema from the model, so
the copy shipped in ``promptactors/samples/prompt.schema.json`` cannot drift (a test
compares them and says how to regenerate it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ._exceptions import InvalidInput
from .messages import MAX_ID_CHARS, MAX_NAME_CHARS, VARIABLE_NAME_PATTERN, PromptDefinition

__all__ = ["load_prompt_file", "prompt_file_schema", "prompt_file_schema_text"]

MAX_PROMPT_FILE_BYTES = 1_000_000

#: Keys a prompt file may hold that are not the definition's: a JSON file's ``$schema``
#: reference for editors, and ``execution_config``, which belongs to an instance (it is
#: given when one starts) and is ignored here.
_IGNORED_KEYS = ("$schema", "execution_config")


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
    for key in _IGNORED_KEYS:
        data.pop(key, None)
    try:
        return PromptDefinition.model_validate(data)
    except (ValidationError, InvalidInput) as exc:
        raise InvalidInput(f"prompt file {str(file)!r}: {_describe(exc)}") from exc


def prompt_file_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a prompt file, derived from ``PromptDefinition``."""
    schema = PromptDefinition.model_json_schema()
    props = schema["properties"]
    defs = schema["$defs"]
    props["id"].update(
        minLength=1,
        maxLength=MAX_ID_CHARS,
        description="The prompt's id (default: the file name without its suffix).",
    )
    props["name"]["description"] = "A human-readable name."
    props["source"]["description"] = (
        "The table `promptactors db add-prompt` stores it in (`--builtin` also picks "
        "prompt_builtins)."
    )
    props["messages"].update(
        minItems=1,
        description="The template messages, in order; `{{name}}` inserts a variable.",
    )
    props["variables"]["description"] = (
        "The variables the messages use; one without a default must be given at run time."
    )
    props["settings"] = {
        "type": "object",
        "title": "Settings",
        "description": (
            "The model configuration: `provider` and `model` pick the endpoint (default: "
            "the runtime's settings); other keys (`temperature`, `max_tokens`, `stop`...) "
            "are sent with the request."
        ),
        "properties": {
            "provider": {"type": "string", "description": "A configured provider's name."},
            "model": {"type": "string", "description": "The model to ask."},
            "temperature": {"type": "number", "minimum": 0},
            "max_tokens": {"type": "integer", "minimum": 1},
        },
        "additionalProperties": {"$ref": "#/$defs/JsonValue"},
    }
    props["$schema"] = {
        "type": "string",
        "description": "A JSON file's reference to this schema, for editors (ignored).",
    }
    props["execution_config"] = {
        "type": "object",
        "description": "Ignored in a prompt file: an instance's execution config is given "
        "when it starts.",
    }
    defs["PromptMessage"]["properties"]["role"]["description"] = (
        "system: instructions; user: the person's turn; assistant: an earlier answer."
    )
    variable = defs["VariableDefault"]["properties"]
    variable["name"].update(
        pattern=f"^{VARIABLE_NAME_PATTERN}$",
        maxLength=MAX_NAME_CHARS,
        description="Used in messages as `{{name}}`.",
    )
    variable["default"]["description"] = "The value when no other layer gives one."
    variable["help_text"]["description"] = "What the variable is for, shown to users."
    schema["required"] = ["messages"]
    schema["description"] = (
        "A promptactors prompt: template messages, declared variables, model settings. "
        "See the README's 'Prompt files' section."
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "promptactors prompt file",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def prompt_file_schema_text() -> str:
    """:func:`prompt_file_schema` as the text of the shipped ``prompt.schema.json``."""
    return json.dumps(prompt_file_schema(), indent=2, ensure_ascii=False) + "\n"


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error.get("loc", ())) or "value"
        return f"{where}: {error.get('msg', 'invalid')}"
    return str(exc)

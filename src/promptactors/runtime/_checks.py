"""Checks at the boundary: what callers pass the runtime becomes valid values or ``InvalidInput``.

Everything past these checks (the instance actor, the reducer) may trust its input; data
read back from the store that fails a check is a ``StoreError``, not the caller's fault.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from .._exceptions import InvalidInput, StoreError
from ..actors import BrokerContext
from ..messages import (
    MAX_ID_CHARS,
    MAX_INPUT_CHARS,
    VARIABLE_NAME_PATTERN,
    ConversationMessage,
    ExecutionConfig,
    PromptDefinition,
)

__all__ = [
    "check_config",
    "check_context",
    "check_id",
    "check_prompt",
    "check_settings",
    "check_text",
    "check_variables",
    "stored_message",
]


def check_id(name: str, value: str | None) -> None:
    """An id (None passes): a non-blank string of at most ``MAX_ID_CHARS``."""
    if value is None:
        return
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name} must be a non-empty string")
    if len(value) > MAX_ID_CHARS:
        raise InvalidInput(f"{name} is {len(value)} characters long; the limit is {MAX_ID_CHARS}")


def check_text(name: str, value: str | None) -> None:
    """User text (None passes): a string of at most ``MAX_INPUT_CHARS``."""
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string, not {type(value).__name__}")
    if len(value) > MAX_INPUT_CHARS:
        raise InvalidInput(
            f"{name} is {len(value):,} characters long; the limit is {MAX_INPUT_CHARS:,}"
        )


def check_variables(name: str, values: Mapping[str, str]) -> dict[str, str]:
    """Variable values: names that are identifiers, values that are text."""
    checked: dict[str, str] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not re.fullmatch(VARIABLE_NAME_PATTERN, key):
            raise InvalidInput(f"{name}: {key!r} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)")
        if not isinstance(value, str):
            raise InvalidInput(f"{name}: the value of {key!r} must be a string")
        check_text(f"{name}[{key!r}]", value)
        checked[key] = value
    return checked


def check_settings(value: Mapping[str, Any] | None) -> dict[str, Any]:
    """Model settings overrides: a mapping of JSON values (they are stored with the run)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidInput("settings must be a mapping with string keys")
    try:
        json.dumps(dict(value), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"settings must hold JSON values only: {exc}") from exc
    return dict(value)


def check_config(value: ExecutionConfig | Mapping[str, Any] | None) -> ExecutionConfig:
    """The execution config given as a model or a mapping (None: the defaults)."""
    if value is None:
        return ExecutionConfig()
    if isinstance(value, ExecutionConfig):
        return value
    try:
        return ExecutionConfig.model_validate(dict(value))
    except ValidationError as exc:
        raise InvalidInput(f"execution_config: {_first_error(exc)}") from exc


def check_prompt(value: PromptDefinition | Mapping[str, Any]) -> PromptDefinition:
    """An inline prompt given as a model or a mapping."""
    if isinstance(value, PromptDefinition):
        return value
    try:
        return PromptDefinition.model_validate(dict(value))
    except ValidationError as exc:
        raise InvalidInput(f"prompt: {_first_error(exc)}") from exc


def check_context(value: BrokerContext | Mapping[str, Any] | None) -> BrokerContext:
    """An action's context given as a ``BrokerContext`` or a mapping (None: empty)."""
    if value is None:
        return BrokerContext()
    if isinstance(value, BrokerContext):
        return value
    return BrokerContext.from_mapping(value)


def stored_message(run_id: str, row: Mapping[str, Any]) -> ConversationMessage:
    """A message of a stored run; raises ``StoreError`` if the row is not a valid one."""
    try:
        return ConversationMessage.model_validate(
            {k: row[k] for k in ("role", "content", "task_id", "failed", "error") if k in row}
        )
    except ValidationError as exc:
        raise StoreError(f"run {run_id!r} holds an invalid message: {_first_error(exc)}") from exc


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error.get("loc", ())) or "value"
    return f"{where}: {error.get('msg', 'invalid')}"

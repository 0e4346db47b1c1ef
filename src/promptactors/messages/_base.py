"""The frozen model base and the constrained field types every message shares.

Constructing a message with a bad argument raises :class:`~promptactors.InvalidInput`
(a ``ValueError``) whose text names the model and the field; pydantic's own
``ValidationError`` never escapes a constructor. (``model_validate`` and
``model_validate_json`` still raise it; :func:`parse_event` and the journal import
translate it.)
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from promptactors._exceptions import InvalidInput

__all__ = [
    "MAX_ID_CHARS",
    "MAX_INPUT_CHARS",
    "MAX_NAME_CHARS",
    "VARIABLE_NAME_PATTERN",
    "Frozen",
    "Id",
    "InputText",
    "Role",
    "Timestamp",
    "VariableName",
    "describe_validation_error",
]

MAX_INPUT_CHARS = 1_000_000
"""Longest text accepted for one input, message or variable value (characters).

About 250k tokens: above any context window in use, below anything that would hurt the
process. Longer text is rejected with ``InvalidInput``.
"""

MAX_ID_CHARS = 200
"""Longest id (instance, prompt, task, run) accepted, in characters."""

MAX_NAME_CHARS = 200
"""Longest variable name accepted, in characters."""

VARIABLE_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"
"""What a variable name looks like, in templates (``{{name}}``) and in every values map."""

_VARIABLE_NAME = re.compile(VARIABLE_NAME_PATTERN)

Role: TypeAlias = Literal["system", "user", "assistant"]


def _check_id(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    if len(value) > MAX_ID_CHARS:
        raise ValueError(f"must be at most {MAX_ID_CHARS} characters, got {len(value)}")
    if value != value.strip():
        raise ValueError(f"must not start or end with whitespace, got {value!r}")
    return value


def _check_input(value: str) -> str:
    if len(value) > MAX_INPUT_CHARS:
        raise ValueError(f"must be at most {MAX_INPUT_CHARS} characters, got {len(value)}")
    return value


def _check_variable_name(value: str) -> str:
    if len(value) > MAX_NAME_CHARS or _VARIABLE_NAME.fullmatch(value) is None:
        raise ValueError(
            f"invalid variable name {value[:MAX_NAME_CHARS]!r}: "
            f"must match {VARIABLE_NAME_PATTERN} (at most {MAX_NAME_CHARS} characters)"
        )
    return value


Id = Annotated[str, AfterValidator(_check_id)]
"""A non-empty id without surrounding whitespace, at most ``MAX_ID_CHARS`` long."""

InputText = Annotated[str, AfterValidator(_check_input)]
"""Text at most ``MAX_INPUT_CHARS`` long."""

VariableName = Annotated[str, AfterValidator(_check_variable_name)]
"""A variable name matching ``VARIABLE_NAME_PATTERN``."""

Timestamp = Annotated[float, Field(allow_inf_nan=False)]
"""A finite time in seconds, from the clock the runtime uses for the instance."""


def describe_validation_error(model: str, exc: ValidationError) -> str:
    """Render a pydantic error as ``invalid Model: field: what is wrong; ...``."""
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(input)"
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}")
    return "invalid " + model + ": " + "; ".join(problems)


class Frozen(BaseModel):
    """Base of every message: immutable, unknown fields rejected.

    Raises ``InvalidInput`` (naming the model and field) when an argument is invalid.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, /, **data: Any) -> None:
        # Same as BaseModel.__init__ (one validator call), with our exception.
        try:
            self.__pydantic_validator__.validate_python(data, self_instance=self)
        except ValidationError as exc:
            raise InvalidInput(describe_validation_error(type(self).__name__, exc)) from exc

"""``{{name}}`` templates: find the variables a text needs, and replace them in one pass.

A placeholder is ``{{`` + optional spaces + a name matching ``[A-Za-z_][A-Za-z0-9_]*`` +
optional spaces + ``}}``. Anything else between braces is plain text. Replacement is
single-pass: a value that itself contains ``{{x}}`` is inserted literally, never expanded.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

from promptactors._exceptions import MissingVariables
from promptactors.messages import VARIABLE_NAME_PATTERN, PromptMessage

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["PLACEHOLDER", "find_variables", "render", "render_messages"]

PLACEHOLDER = re.compile(r"\{\{\s*(" + VARIABLE_NAME_PATTERN + r")\s*\}\}")
"""The compiled pattern of a placeholder; group 1 is the variable name."""


@lru_cache(maxsize=1024)  # the same template texts are scanned on every turn
def find_variables(text: str) -> tuple[str, ...]:
    """The names of the variables ``text`` uses, each once, in order of first use."""
    if "{{" not in text:
        return ()
    return tuple(dict.fromkeys(PLACEHOLDER.findall(text)))


def render(text: str, values: Mapping[str, str], *, strict: bool = True) -> str:
    """Replace every placeholder of ``text`` by its value from ``values``, in one pass.

    With ``strict`` a name without a value raises ``MissingVariables`` naming every such
    name; without it the placeholder is left as written.
    """
    if "{{" not in text:
        return text
    if strict:
        missing = [name for name in find_variables(text) if name not in values]
        if missing:
            raise MissingVariables(missing)

    def substitute(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        return match.group(0) if value is None else value

    return PLACEHOLDER.sub(substitute, text)


def render_messages(
    messages: Iterable[PromptMessage],
    values: Mapping[str, str],
    *,
    apply_variables: bool = True,
) -> tuple[PromptMessage, ...]:
    """Render every message; with ``apply_variables`` off return them verbatim.

    Raises ``MissingVariables`` naming every variable missing from any of the messages
    (checked before anything is rendered).
    """
    messages = tuple(messages)
    if not apply_variables:
        return messages
    missing = {name for message in messages for name in find_variables(message.content)}.difference(
        values
    )
    if missing:
        raise MissingVariables(missing)
    return tuple(
        message
        if "{{" not in message.content
        else PromptMessage.model_construct(
            role=message.role, content=render(message.content, values)
        )
        for message in messages
    )

"""Turning stored prompt rows into definitions, and the bounds the caches refuse."""

from __future__ import annotations

from typing import Any

import pytest

from promptactors import InvalidInput
from promptactors.actors import (
    ActionCache,
    PromptCache,
    ScopedVariablesCache,
    prompt_definition_from_record,
)
from promptactors.store import PromptMessageRow, PromptRecord, VariableDefaultRow

PROMPT = PromptRecord(
    id="p1",
    name="Greeter",
    messages=(PromptMessageRow("system", "You greet."), PromptMessageRow("user", "Hi {{ name }}")),
    variable_defaults=(VariableDefaultRow("name", "World", "who to greet"),),
    settings={"model": "m-1", "temperature": 0.2},
)


def test_prompt_definition_from_record_keeps_messages_defaults_and_settings() -> None:
    """A stored prompt becomes a PromptDefinition of the given source, field by field."""
    definition = prompt_definition_from_record(PROMPT, "prompt_builtins")
    assert definition.id == "p1"
    assert definition.name == "Greeter"
    assert definition.source == "prompt_builtins"
    assert [(m.role, m.content) for m in definition.messages] == [
        ("system", "You greet."),
        ("user", "Hi {{ name }}"),
    ]
    assert definition.defaults() == {"name": "World"}
    assert definition.variables[0].help_text == "who to greet"
    assert definition.settings == {"model": "m-1", "temperature": 0.2}


def test_a_malformed_stored_prompt_raises_invalid_input() -> None:
    """A stored message with an unknown role cannot become a PromptDefinition."""
    record = PromptRecord(id="bad", name="Bad", messages=(PromptMessageRow("robot", "beep"),))
    with pytest.raises(InvalidInput, match="role"):
        prompt_definition_from_record(record)


@pytest.mark.parametrize(
    ("make", "options"),
    [
        (PromptCache, {"max_entries": 0}),
        (ActionCache, {"max_entries": -1}),
        (ScopedVariablesCache, {"ttl": 0}),
        (ScopedVariablesCache, {"max_entries": 0}),
        (PromptCache, {"read_timeout": 0}),
    ],
)
def test_caches_refuse_bad_bounds(make: Any, options: dict[str, Any]) -> None:
    """A cache needs max_entries >= 1, a positive TTL and a positive read timeout."""
    with pytest.raises(InvalidInput):
        make(object(), **options)

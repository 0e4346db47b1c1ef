"""The message spec: validation at construction, immutability, JSON round trips."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter

from promptactors import _exceptions as exc
from promptactors.messages import (
    EVENT_TYPES,
    MAX_INPUT_CHARS,
    ActionValuesSet,
    BrokerValuesSet,
    ComputedValuesSet,
    ConversationCleared,
    ConversationMessage,
    Event,
    ExecutionCompleted,
    ExecutionConfig,
    ExecutionFailed,
    ExecutionInstance,
    ExecutionStarted,
    ExecutionStatus,
    ExpandedVariableSet,
    InputSet,
    InstanceCreated,
    InstanceReset,
    InstanceRestored,
    MessageAdded,
    PromptDefinition,
    PromptMessage,
    Readiness,
    ResourcesSet,
    RunLinked,
    RunSaved,
    ScopedValues,
    ScopedVariablesSet,
    SettingsUpdated,
    ShowVariablesToggled,
    StatusChanged,
    StreamDelta,
    StreamingStarted,
    UserTurnFailed,
    VariableCleared,
    VariableDefault,
    VariablesUpdated,
    VariableUpdated,
    parse_event,
)

PROMPT = PromptDefinition(
    id="p-1",
    messages=(PromptMessage(role="user", content="Hi {{name}}"),),
    variables=(VariableDefault(name="name", default="you"),),
    settings={"model": "m", "temperature": 0.5, "stop": ["\n"]},
)

SNAPSHOT = ExecutionInstance(
    instance_id="i-1",
    prompt_id="p-1",
    prompt_source="prompts",
    prompt=PROMPT,
    status=ExecutionStatus.READY,
    created_at=1.0,
    updated_at=2.0,
)

SAMPLE_EVENTS: list[Event] = [
    InstanceCreated(
        instance_id="i-1",
        prompt=PROMPT,
        execution_config=ExecutionConfig(allow_chat=False),
        settings={"temperature": 0.1},
        user_values={"name": "Ada"},
        action_values={"a": "1"},
        broker_values={"b": "2"},
        scoped_values=ScopedValues(project={"p": "3"}, org={"o": "4"}, user={"u": "5"}),
        computed_values={"current_date": "2024-01-15"},
        current_input="draft",
        at=1.0,
    ),
    StatusChanged(status=ExecutionStatus.ERROR, error="boom", at=1.5),
    InstanceReset(at=2.0),
    InstanceRestored(instance=SNAPSHOT, at=2.5),
    VariableUpdated(name="name", value="Grace", at=3.0),
    VariablesUpdated(values={"x": "1", "y": "{{z}}"}, at=3.1),
    VariableCleared(name="x", at=3.2),
    ScopedVariablesSet(scoped_values=ScopedValues(org={"o": "9"}), at=3.3),
    ActionValuesSet(values={"a": "2"}, at=3.4),
    BrokerValuesSet(values={"b": "3"}, at=3.5),
    ComputedValuesSet(values={"current_time": "14:30:00"}, at=3.6),
    SettingsUpdated(settings={"max_tokens": 100, "extra": {"nested": [1, None]}}, at=3.7),
    InputSet(text="next question", at=4.0),
    MessageAdded(message=ConversationMessage(role="user", content="hi", task_id="t-0"), at=4.1),
    ConversationCleared(at=4.2),
    ResourcesSet(resources=({"kind": "file", "id": 7}, "url"), at=4.3),
    ExecutionStarted(task_id="t-1", user_message="hello", computed_values={}, at=5.0),
    StreamingStarted(at=5.2),
    StreamDelta(text="Hel", chunks=2, at=5.3),
    ExecutionCompleted(input_tokens=10, output_tokens=2, cost=0.25, finish_reason="stop", at=6.0),
    ExecutionFailed(error="provider down", at=6.1),
    UserTurnFailed(task_id="t-1", error="gave up", at=6.2),
    RunLinked(run_id="r-1", run_name="first", saved_message_count=0, at=7.0),
    RunSaved(saved_message_count=2, at=7.1),
    ExpandedVariableSet(name="name", at=8.0),
    ShowVariablesToggled(at=8.1),
]


def _invalid(factory: Any, **kwargs: Any) -> str:
    with pytest.raises(exc.InvalidInput) as info:
        factory(**kwargs)
    return str(info.value)


def test_an_empty_instance_id_is_rejected_naming_the_field() -> None:
    """An empty id raises InvalidInput whose message names the model and the field."""
    message = _invalid(InstanceCreated, instance_id="", prompt=PROMPT, at=0.0)
    assert "InstanceCreated" in message
    assert "instance_id" in message
    assert "empty" in message


def test_an_id_with_surrounding_whitespace_is_rejected() -> None:
    """An id with leading or trailing spaces is refused rather than silently stripped."""
    assert "task_id" in _invalid(ExecutionStarted, task_id=" t1", at=0.0)


def test_an_overlong_id_is_rejected() -> None:
    """Ids longer than the documented limit are refused."""
    assert "run_id" in _invalid(RunLinked, run_id="r" * 201, at=0.0)


def test_an_oversized_input_is_rejected_naming_the_limit() -> None:
    """Text over MAX_INPUT_CHARS raises InvalidInput naming the field and the limit."""
    message = _invalid(InputSet, text="x" * (MAX_INPUT_CHARS + 1), at=0.0)
    assert "text" in message
    assert str(MAX_INPUT_CHARS) in message


def test_input_at_the_limit_is_accepted() -> None:
    """Text of exactly MAX_INPUT_CHARS characters is accepted."""
    assert len(InputSet(text="x" * MAX_INPUT_CHARS, at=0.0).text) == MAX_INPUT_CHARS


@pytest.mark.parametrize("name", ["1abc", "a-b", "", "with space", "é", "a" * 201])
def test_an_invalid_variable_name_is_rejected(name: str) -> None:
    """Variable names must match [A-Za-z_][A-Za-z0-9_]* and stay short."""
    assert "name" in _invalid(VariableUpdated, name=name, value="v", at=0.0)


def test_values_keyed_by_an_invalid_variable_name_are_rejected() -> None:
    """A values map is refused when one of its keys is not a variable name."""
    message = _invalid(VariablesUpdated, values={"ok": "1", "not ok": "2"}, at=0.0)
    assert "not ok" in message


def test_a_variable_declared_twice_is_rejected() -> None:
    """A prompt may declare each variable once."""
    message = _invalid(
        PromptDefinition,
        id="p",
        variables=(VariableDefault(name="a"), VariableDefault(name="a", default="x")),
    )
    assert "declared twice" in message


def test_a_non_finite_timestamp_is_rejected() -> None:
    """Event times must be finite numbers."""
    assert "at" in _invalid(StreamingStarted, at=float("nan"))


def test_a_negative_token_count_is_rejected() -> None:
    """Usage counts cannot be negative."""
    assert "output_tokens" in _invalid(ExecutionCompleted, output_tokens=-1, at=0.0)


def test_messages_are_frozen() -> None:
    """Assigning to a field of a message raises."""
    event = InputSet(text="a", at=0.0)
    with pytest.raises(ValueError, match="frozen"):
        event.text = "b"  # type: ignore[misc]


def test_unknown_fields_are_rejected() -> None:
    """A field the model does not define is an error, not silently dropped."""
    assert "colour" in _invalid(ShowVariablesToggled, at=0.0, colour="red")


def test_a_snapshot_whose_prompt_id_disagrees_with_its_prompt_is_rejected() -> None:
    """prompt_id and prompt_source must be those of the embedded prompt."""
    data = SNAPSHOT.model_dump()
    data["prompt_id"] = "other"
    assert "prompt_id" in _invalid(ExecutionInstance, **data)


def test_execution_config_defaults_match_the_seed() -> None:
    """The defaults are the seed engine's: no auto run, chat, variables applied, tracked."""
    assert ExecutionConfig() == ExecutionConfig(
        auto_run=False,
        allow_chat=True,
        show_variables=False,
        apply_variables=True,
        track_in_runs=True,
    )


def test_prompt_defaults_list_only_variables_with_a_default() -> None:
    """A declared variable without a default has no default value."""
    prompt = PromptDefinition(
        id="p", variables=(VariableDefault(name="a", default=""), VariableDefault(name="b"))
    )
    assert prompt.defaults() == {"a": ""}


def test_scoped_values_merge_project_over_org_over_user() -> None:
    """The project scope wins over the organisation, which wins over the user."""
    scoped = ScopedValues(
        project={"a": "project"},
        org={"a": "org", "b": "org"},
        user={"a": "user", "b": "user", "c": "user"},
    )
    assert scoped.merged() == {"a": "project", "b": "org", "c": "user"}


def test_readiness_is_truthy_only_when_ready() -> None:
    """A Readiness can be used directly in a condition."""
    assert Readiness(ready=True)
    assert not Readiness(ready=False, missing=("x",), reason="missing variables: x")


def test_the_samples_cover_every_event_type() -> None:
    """Each event class appears in the round-trip samples below."""
    assert {type(event) for event in SAMPLE_EVENTS} == set(EVENT_TYPES.values())


@pytest.mark.parametrize("event", SAMPLE_EVENTS, ids=lambda e: type(e).__name__)
def test_every_event_round_trips_through_json(event: Event) -> None:
    """Dumping an event to JSON and parsing it back yields an equal event of the same class."""
    for data in (event.model_dump_json(), event.model_dump(mode="json")):
        parsed = parse_event(data)
        assert type(parsed) is type(event)
        assert parsed == event


def test_a_list_of_events_round_trips_through_the_union() -> None:
    """The discriminated union parses a mixed list back to the right classes."""
    adapter: TypeAdapter[list[Event]] = TypeAdapter(list[Event])
    assert adapter.validate_json(adapter.dump_json(SAMPLE_EVENTS)) == SAMPLE_EVENTS


def test_parse_event_rejects_an_unknown_type_with_invalid_input() -> None:
    """An unknown ``type`` tag is InvalidInput, not a pydantic error."""
    with pytest.raises(exc.InvalidInput, match="type"):
        parse_event({"type": "no_such_event", "at": 1.0})


def test_parse_event_rejects_malformed_json_with_invalid_input() -> None:
    """Text that is not JSON is InvalidInput."""
    with pytest.raises(exc.InvalidInput):
        parse_event("{not json")


def test_a_snapshot_round_trips_through_json() -> None:
    """An ExecutionInstance parsed from its JSON equals the original."""
    assert ExecutionInstance.model_validate_json(SNAPSHOT.model_dump_json()) == SNAPSHOT

"""Variable precedence, provenance and the computed variables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from promptactors.messages import (
    ExecutionVariables,
    InstanceCreated,
    PromptDefinition,
    ScopedValues,
    VariableDefault,
    VariableSource,
    VariableValue,
)
from promptactors.state import (
    COMPUTED_VARIABLES,
    computed_variables,
    explain_variables,
    merged_variables,
    reduce,
)

LAYERED = PromptDefinition(
    id="p",
    variables=(
        VariableDefault(name="x", default="default"),
        VariableDefault(name="only_default", default="d"),
    ),
)


def _every_layer_sets_x() -> InstanceCreated:
    return InstanceCreated(
        instance_id="i",
        prompt=LAYERED,
        computed_values={"x": "computed"},
        user_values={"x": "user"},
        action_values={"x": "action"},
        broker_values={"x": "broker"},
        scoped_values=ScopedValues(
            project={"x": "project"}, org={"x": "org"}, user={"x": "scoped user"}
        ),
        at=1.0,
    )


def test_explain_variables_lists_every_layer_in_precedence_order() -> None:
    """The winning value comes first, then each shadowed one from the highest layer down."""
    state = reduce(None, _every_layer_sets_x())
    explained = {e.name: e for e in explain_variables(state)}
    x = explained["x"]
    assert (x.value, x.source) == ("computed", VariableSource.COMPUTED)
    assert x.shadowed == (
        VariableValue(source=VariableSource.USER, value="user"),
        VariableValue(source=VariableSource.ACTION, value="action"),
        VariableValue(source=VariableSource.BROKER, value="broker"),
        VariableValue(source=VariableSource.SCOPED_PROJECT, value="project"),
        VariableValue(source=VariableSource.SCOPED_ORG, value="org"),
        VariableValue(source=VariableSource.SCOPED_USER, value="scoped user"),
        VariableValue(source=VariableSource.DEFAULT, value="default"),
    )
    assert explained["only_default"].source is VariableSource.DEFAULT
    assert explained["only_default"].shadowed == ()


def test_each_layer_beats_every_layer_below_it() -> None:
    """Removing the winning layer one at a time lets the next one win, down to the default."""
    event = _every_layer_sets_x()
    order = [
        ("computed_values", "computed"),
        ("user_values", "user"),
        ("action_values", "action"),
        ("broker_values", "broker"),
    ]
    for index, (_, expected) in enumerate(order):
        cleared: dict[str, dict[str, str]] = {field: {} for field, _ in order[:index]}
        state = reduce(None, event.model_copy(update=cleared))
        assert merged_variables(state)["x"] == expected
    scoped_only = event.model_copy(update={field: {} for field, _ in order})
    assert merged_variables(reduce(None, scoped_only))["x"] == "project"
    none = scoped_only.model_copy(update={"scoped_values": ScopedValues()})
    assert merged_variables(reduce(None, none))["x"] == "default"


def test_merged_variables_hold_one_value_per_name() -> None:
    """Merging keeps names from every layer, each once."""
    state = reduce(
        None,
        InstanceCreated(
            instance_id="i",
            prompt=LAYERED,
            user_values={"a": "1"},
            scoped_values=ScopedValues(user={"b": "2"}),
            at=1.0,
        ),
    )
    assert merged_variables(state) == {"a": "1", "b": "2", "x": "default", "only_default": "d"}


def test_explaining_an_empty_instance_gives_nothing() -> None:
    """No layer, no explanation."""
    state = reduce(None, InstanceCreated(instance_id="i", prompt=PromptDefinition(id="p"), at=0.0))
    assert explain_variables(state) == ()
    assert ExecutionVariables() == state.core.variables


def test_computed_variables_use_the_seed_formats() -> None:
    """Date, time and ISO datetime with milliseconds and a Z, in UTC."""
    now = datetime(2024, 1, 15, 14, 30, 0, 123_999, tzinfo=UTC)
    assert computed_variables(now) == {
        "current_date": "2024-01-15",
        "current_time": "14:30:00",
        "current_datetime": "2024-01-15T14:30:00.123Z",
    }
    assert tuple(computed_variables(now)) == COMPUTED_VARIABLES


def test_computed_variables_convert_to_utc() -> None:
    """An aware time in another zone is converted; a naive time is taken as UTC."""
    paris = timezone(timedelta(hours=1))
    assert computed_variables(datetime(2024, 1, 1, 0, 30, tzinfo=paris))["current_datetime"] == (
        "2023-12-31T23:30:00.000Z"
    )
    assert computed_variables(datetime(2024, 1, 1, 0, 30))["current_time"] == "00:30:00"

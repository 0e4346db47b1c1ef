"""The reducer: what each event does to the state, and what it refuses."""

from __future__ import annotations

import sys
import time

import pytest

from promptactors import _exceptions as exc
from promptactors.messages import (
    ActionValuesSet,
    BrokerValuesSet,
    ComputedValuesSet,
    ConversationMessage,
    ExecutionCompleted,
    ExecutionConfig,
    ExecutionFailed,
    ExecutionStarted,
    ExpandedVariableSet,
    InputSet,
    InstanceCreated,
    InstanceReset,
    InstanceRestored,
    MessageAdded,
    PromptDefinition,
    ResourcesSet,
    RunLinked,
    RunSaved,
    ScopedValues,
    ScopedVariablesSet,
    SettingsUpdated,
    ShowVariablesToggled,
    StreamDelta,
    UserTurnFailed,
    VariableCleared,
    VariablesUpdated,
    VariableUpdated,
)
from promptactors.state import (
    InstanceState,
    has_unsaved_changes,
    merged_variables,
    reduce,
    snapshot,
    streaming_text,
)

from ._helpers import make_created, make_ready, start_turn, stream


def test_instance_created_starts_idle_with_the_prompt_settings_overridden(
    prompt: PromptDefinition,
) -> None:
    """The instance's settings are the prompt's with the event's overrides on top."""
    state = reduce(
        None,
        InstanceCreated(
            instance_id="i", prompt=prompt, settings={"temperature": 0.9, "top_p": 1}, at=3.0
        ),
    )
    assert state.status == "idle"
    assert dict(state.core.settings) == {"model": "sim-1", "temperature": 0.9, "top_p": 1}
    assert state.core.created_at == state.updated_at == 3.0


def test_show_variables_starts_from_the_execution_config(prompt: PromptDefinition) -> None:
    """The UI's variables panel opens when the configuration says so."""
    state = make_created(prompt, ExecutionConfig(show_variables=True))
    assert state.core.ui.show_variables is True


def test_every_event_sets_updated_at(ready: InstanceState) -> None:
    """updated_at is the time of the last event, never read from a clock."""
    assert reduce(ready, InputSet(text="x", at=42.5)).updated_at == 42.5


def test_execution_started_appends_the_user_message_and_clears_the_input(
    ready: InstanceState,
) -> None:
    """The turn's user message joins the conversation with its task id; the input empties."""
    state = reduce(ready, InputSet(text="draft", at=1.5))
    state = reduce(state, ExecutionStarted(task_id="t1", user_message="draft!", at=2.0))
    (message,) = state.core.messages
    assert (message.role, message.content, message.task_id) == ("user", "draft!", "t1")
    assert message.created_at == 2.0
    assert state.core.current_input == ""
    assert state.core.turn.task_id == "t1"
    assert state.core.turn.started_at == 2.0
    assert state.core.totals.executions == 1


def test_execution_started_refreshes_the_computed_values(ready: InstanceState) -> None:
    """Computed values passed with a turn are the ones it renders with."""
    state = reduce(
        ready,
        ExecutionStarted(task_id="t1", computed_values={"current_date": "2030-01-01"}, at=2.0),
    )
    assert merged_variables(state)["current_date"] == "2030-01-01"


def test_execution_started_with_missing_variables_raises_and_changes_nothing(
    prompt: PromptDefinition,
) -> None:
    """A turn whose messages need unknown variables raises MissingVariables naming them all."""
    state = make_ready(prompt)
    before = snapshot(state)
    with pytest.raises(exc.MissingVariables) as info:
        reduce(state, ExecutionStarted(task_id="t1", user_message="and {{tone}}", at=2.0))
    assert info.value.names == ("text", "tone")
    assert snapshot(state) == before


def test_missing_variables_do_not_block_when_apply_variables_is_off(
    prompt: PromptDefinition,
) -> None:
    """With apply_variables off messages are verbatim, so nothing is missing."""
    state = make_ready(prompt, ExecutionConfig(apply_variables=False))
    assert start_turn(state).status == "executing"


def test_stream_deltas_accumulate_text_and_counts(ready: InstanceState) -> None:
    """Each delta appends its text and adds its chunks."""
    state = stream(start_turn(ready))
    state = reduce(state, StreamDelta(text="Hel", chunks=2, at=3.1))
    state = reduce(state, StreamDelta(text="lo", chunks=1, at=3.2))
    assert streaming_text(state) == "Hello"
    assert (state.stream.chunks, state.stream.chars) == (3, 5)
    assert state.updated_at == 3.2


def test_an_older_state_keeps_its_text_after_newer_deltas(streaming: InstanceState) -> None:
    """States share the chunk list, yet each still reads exactly its own text."""
    newer = reduce(streaming, StreamDelta(text="!", at=4.0))
    newest = reduce(newer, StreamDelta(text="?", at=4.1))
    assert streaming_text(streaming) == "Hello world"
    assert streaming_text(newer) == "Hello world!"
    assert streaming_text(newest) == "Hello world!?"


def test_reducing_the_same_state_twice_branches_the_stream(streaming: InstanceState) -> None:
    """Two deltas applied to one state give two independent continuations."""
    left = reduce(streaming, StreamDelta(text=" left", at=4.0))
    right = reduce(streaming, StreamDelta(text=" right", at=4.0))
    left_more = reduce(left, StreamDelta(text="!", at=4.1))
    assert streaming_text(left) == "Hello world left"
    assert streaming_text(right) == "Hello world right"
    assert streaming_text(left_more) == "Hello world left!"
    assert streaming_text(reduce(right, StreamDelta(text="?", at=4.2))) == "Hello world right?"


def test_a_new_turn_starts_with_empty_streaming_text(streaming: InstanceState) -> None:
    """The previous turn's text does not leak into the next one."""
    completed = reduce(streaming, ExecutionCompleted(at=4.0))
    again = stream(reduce(completed, ExecutionStarted(task_id="t2", user_message="?", at=5.0)), "B")
    assert streaming_text(again) == "B"
    assert streaming_text(completed) == "Hello world"


def test_execution_completed_appends_the_streamed_text_as_the_answer(
    streaming: InstanceState,
) -> None:
    """The answer carries the task id; usage, cost and times are recorded."""
    state = reduce(
        streaming,
        ExecutionCompleted(
            input_tokens=12, output_tokens=3, cost=0.5, finish_reason="stop", at=4.0
        ),
    )
    answer = state.core.messages[-1]
    assert (answer.role, answer.content, answer.task_id) == ("assistant", "Hello world", "task-1")
    turn = state.core.turn
    assert (turn.input_tokens, turn.output_tokens, turn.cost) == (12, 3, 0.5)
    assert turn.time_to_first_token == pytest.approx(1.0)
    assert turn.total_time == pytest.approx(2.0)
    totals = state.core.totals
    assert (totals.completed, totals.input_tokens, totals.output_tokens) == (1, 12, 3)
    assert totals.cost == 0.5


def test_execution_failed_keeps_the_partial_text_and_records_the_error(
    streaming: InstanceState,
) -> None:
    """A failed turn adds no answer; its partial text and error stay visible."""
    state = reduce(streaming, ExecutionFailed(error="connection reset", at=4.0))
    assert state.status == "error"
    assert state.core.error == "connection reset"
    assert [m.role for m in state.core.messages] == []
    assert streaming_text(state) == "Hello world"
    assert state.core.totals.failed == 1


def test_user_turn_failed_marks_the_user_message(ready: InstanceState) -> None:
    """After giving up on a turn, its user message is marked failed with the reason."""
    state = stream(start_turn(ready, user_message="question"), "par")
    state = reduce(state, ExecutionFailed(error="boom", at=4.0))
    state = reduce(state, UserTurnFailed(task_id="task-1", error="3 attempts failed", at=5.0))
    (message,) = state.core.messages
    assert message.failed is True
    assert message.error == "3 attempts failed"


def test_user_turn_failed_for_an_unknown_task_is_invalid(ready: InstanceState) -> None:
    """Marking a task that has no user message is InvalidInput naming the task."""
    with pytest.raises(exc.InvalidInput, match="nope"):
        reduce(ready, UserTurnFailed(task_id="nope", at=2.0))


def test_user_turn_failed_is_refused_while_that_task_runs(ready: InstanceState) -> None:
    """A running task's user message cannot be marked failed."""
    state = stream(start_turn(ready, user_message="q"), "x")
    with pytest.raises(exc.IllegalTransition):
        reduce(state, UserTurnFailed(task_id="task-1", at=4.0))


def test_run_linked_then_saved_tracks_unsaved_changes(streaming: InstanceState) -> None:
    """Messages beyond the run's saved count are unsaved until RunSaved covers them."""
    state = reduce(streaming, ExecutionCompleted(at=4.0))
    state = reduce(state, RunLinked(run_id="run-1", run_name="First", at=4.1))
    assert has_unsaved_changes(state)
    state = reduce(state, RunSaved(saved_message_count=1, at=4.2))
    assert not has_unsaved_changes(state)
    assert (state.core.run.run_id, state.core.run.run_name) == ("run-1", "First")


def test_linking_a_second_run_is_invalid(ready: InstanceState) -> None:
    """An instance belongs to one run; relinking the same run is accepted."""
    state = reduce(ready, RunLinked(run_id="run-1", at=2.0))
    assert reduce(state, RunLinked(run_id="run-1", run_name="renamed", at=2.1)).core.run.run_name
    with pytest.raises(exc.InvalidInput, match="run-1"):
        reduce(state, RunLinked(run_id="run-2", at=2.2))


def test_saving_more_messages_than_exist_is_invalid(ready: InstanceState) -> None:
    """A saved count larger than the conversation is refused."""
    state = reduce(ready, RunLinked(run_id="run-1", at=2.0))
    with pytest.raises(exc.InvalidInput, match="saved_message_count"):
        reduce(state, RunSaved(saved_message_count=1, at=2.1))


def test_saving_without_a_run_is_invalid(ready: InstanceState) -> None:
    """RunSaved needs a linked run."""
    with pytest.raises(exc.InvalidInput, match="not linked"):
        reduce(ready, RunSaved(saved_message_count=0, at=2.0))


def test_run_linking_is_refused_when_track_in_runs_is_off(prompt: PromptDefinition) -> None:
    """An untracked instance has no run."""
    state = make_ready(prompt, ExecutionConfig(track_in_runs=False), text="t")
    with pytest.raises(exc.InvalidInput, match="track_in_runs"):
        reduce(state, RunLinked(run_id="run-1", at=2.0))


def test_variable_events_update_their_layers(ready: InstanceState) -> None:
    """Each variable event writes its own layer and leaves the others alone."""
    state = reduce(ready, VariableUpdated(name="a", value="1", at=2.0))
    state = reduce(state, VariablesUpdated(values={"b": "2", "a": "3"}, at=2.1))
    state = reduce(state, ActionValuesSet(values={"c": "4"}, at=2.2))
    state = reduce(state, BrokerValuesSet(values={"d": "5"}, at=2.3))
    state = reduce(state, ScopedVariablesSet(scoped_values=ScopedValues(org={"e": "6"}), at=2.4))
    state = reduce(state, ComputedValuesSet(values={"current_date": "x"}, at=2.5))
    variables = state.core.variables
    assert variables.user_values == {"text": "the report", "a": "3", "b": "2"}
    assert variables.action_values == {"c": "4"}
    assert variables.broker_values == {"d": "5"}
    assert variables.scoped_values.org == {"e": "6"}
    assert variables.computed_values == {"current_date": "x"}
    assert ready.core.variables.user_values == {"text": "the report"}


def test_variable_cleared_lets_lower_layers_apply_again(ready: InstanceState) -> None:
    """Removing the user's value of a variable brings back its default."""
    state = reduce(ready, VariableUpdated(name="persona", value="a poet", at=2.0))
    assert merged_variables(state)["persona"] == "a poet"
    state = reduce(state, VariableCleared(name="persona", at=2.1))
    assert merged_variables(state)["persona"] == "a careful editor"


def test_settings_updates_merge_over_the_current_settings(ready: InstanceState) -> None:
    """SettingsUpdated overrides the keys it names and keeps the others."""
    state = reduce(ready, SettingsUpdated(settings={"temperature": 1.0, "seed": 7}, at=2.0))
    assert dict(state.core.settings) == {"model": "sim-1", "temperature": 1.0, "seed": 7}


def test_ui_events_update_the_ui_state(ready: InstanceState) -> None:
    """The expanded variable and the variables panel follow their events."""
    state = reduce(ready, ExpandedVariableSet(name="text", at=2.0))
    state = reduce(state, ShowVariablesToggled(at=2.1))
    assert (state.core.ui.expanded_variable, state.core.ui.show_variables) == ("text", True)
    state = reduce(state, ShowVariablesToggled(at=2.2))
    assert state.core.ui.show_variables is False


def test_messages_and_resources_can_be_added_between_turns(ready: InstanceState) -> None:
    """MessageAdded appends as given; ResourcesSet replaces the resources."""
    message = ConversationMessage(role="user", content="loaded", task_id="old")
    state = reduce(ready, MessageAdded(message=message, at=2.0))
    state = reduce(state, ResourcesSet(resources=({"id": 1},), at=2.1))
    assert state.core.messages == (message,)
    assert state.core.resources == ({"id": 1},)


def test_instance_reset_clears_the_session_but_keeps_variables(streaming: InstanceState) -> None:
    """Reset forgets the conversation, turn, totals and run, and keeps prompt and variables."""
    state = reduce(streaming, ExecutionCompleted(output_tokens=3, at=4.0))
    state = reduce(state, RunLinked(run_id="run-1", at=4.1))
    state = reduce(state, InstanceReset(at=5.0))
    assert state.status == "ready"
    assert state.core.messages == ()
    assert state.core.run.run_id is None
    assert state.core.totals.output_tokens == 0
    assert streaming_text(state) == ""
    assert state.core.variables == streaming.core.variables


def test_instance_restored_reproduces_the_snapshot(streaming: InstanceState) -> None:
    """Restoring a snapshot yields a state whose snapshot is the same, mid-stream included."""
    saved = snapshot(streaming)
    restored = reduce(make_created(streaming.core.prompt), InstanceRestored(instance=saved, at=9.0))
    assert snapshot(restored) == saved
    assert snapshot(reduce(None, InstanceRestored(instance=saved, at=9.0))) == saved
    more = reduce(restored, StreamDelta(text="!", at=9.1))
    assert streaming_text(more) == "Hello world!"


def test_restoring_another_instances_snapshot_is_invalid(
    streaming: InstanceState, prompt: PromptDefinition
) -> None:
    """A snapshot restores only the instance it was taken from."""
    other = snapshot(reduce(None, InstanceCreated(instance_id="other", prompt=prompt, at=0.0)))
    with pytest.raises(exc.InvalidInput, match="other"):
        reduce(streaming, InstanceRestored(instance=other, at=9.0))


def test_applying_a_stream_delta_stays_far_below_the_token_budget(
    streaming: InstanceState,
) -> None:
    """A StreamDelta costs microseconds (the runtime's whole budget is 20 µs per token)."""
    if sys.gettrace() is not None:
        pytest.skip("timings are meaningless under a tracer (coverage, debugger)")
    delta = StreamDelta(text="tok", at=4.0)
    state = streaming
    rounds = 20_000
    started = time.process_time()
    for _ in range(rounds):
        state = reduce(state, delta)
    per_delta = (time.process_time() - started) / rounds
    assert state.stream.length == streaming.stream.length + rounds
    assert per_delta < 20e-6

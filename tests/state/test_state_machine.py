"""The status machine: legal transitions, refused ones, and the chat rule."""

from __future__ import annotations

import itertools

import pytest

from promptactors import _exceptions as exc
from promptactors.messages import (
    ConversationCleared,
    ConversationMessage,
    Event,
    ExecutionCompleted,
    ExecutionConfig,
    ExecutionFailed,
    ExecutionStarted,
    ExecutionStatus,
    InstanceCreated,
    InstanceReset,
    MessageAdded,
    PromptDefinition,
    StatusChanged,
    StreamDelta,
    StreamingStarted,
    VariableUpdated,
)
from promptactors.state import (
    TRANSITIONS,
    InstanceState,
    can_transition,
    check_transition,
    reduce,
    snapshot,
)

from ._helpers import make_created, make_ready, start_turn, stream

S = ExecutionStatus

LEGAL = {
    (S.IDLE, S.INITIALIZING),
    (S.IDLE, S.ERROR),
    (S.INITIALIZING, S.READY),
    (S.INITIALIZING, S.ERROR),
    (S.READY, S.EXECUTING),
    (S.READY, S.ERROR),
    (S.EXECUTING, S.EXECUTING),
    (S.EXECUTING, S.STREAMING),
    (S.EXECUTING, S.COMPLETED),
    (S.EXECUTING, S.ERROR),
    (S.STREAMING, S.EXECUTING),
    (S.STREAMING, S.COMPLETED),
    (S.STREAMING, S.ERROR),
    (S.COMPLETED, S.EXECUTING),
    (S.COMPLETED, S.READY),
    (S.ERROR, S.EXECUTING),
    (S.ERROR, S.READY),
}


def _refused(state: InstanceState, event: Event, error: type[Exception]) -> None:
    before = snapshot(state)
    with pytest.raises(error):
        reduce(state, event)
    assert snapshot(state) == before


@pytest.mark.parametrize(("current", "requested"), list(itertools.product(S, S)))
def test_the_table_allows_exactly_the_documented_transitions(
    current: ExecutionStatus, requested: ExecutionStatus
) -> None:
    """can_transition and check_transition agree with the table in the module docstring."""
    legal = (current, requested) in LEGAL
    assert can_transition(current, requested) is legal
    assert (requested in TRANSITIONS[current]) is legal
    if legal:
        check_transition(current, requested)
    else:
        with pytest.raises(exc.IllegalTransition) as info:
            check_transition(current, requested)
        assert info.value.current == current.value
        assert info.value.requested == requested.value


def test_streaming_is_rejected_from_idle(prompt: PromptDefinition) -> None:
    """StreamingStarted on an idle instance raises IllegalTransition and changes nothing."""
    _refused(make_created(prompt), StreamingStarted(at=5.0), exc.IllegalTransition)


def test_a_stream_delta_is_rejected_outside_streaming(ready: InstanceState) -> None:
    """Text can only arrive while streaming; before the first token it is refused."""
    _refused(start_turn(ready), StreamDelta(text="x", at=5.0), exc.IllegalTransition)


def test_execution_is_rejected_before_the_instance_is_ready(prompt: PromptDefinition) -> None:
    """A turn cannot start on an idle instance."""
    state = make_created(prompt, text="t")
    _refused(state, ExecutionStarted(task_id="t1", at=5.0), exc.IllegalTransition)


def test_a_second_turn_cannot_start_while_one_runs(streaming: InstanceState) -> None:
    """ExecutionStarted during a turn is refused."""
    _refused(streaming, ExecutionStarted(task_id="t2", at=5.0), exc.IllegalTransition)


def test_a_full_turn_walks_the_machine(ready: InstanceState) -> None:
    """ready -> executing -> streaming -> completed, each by its own event."""
    executing = start_turn(ready)
    assert executing.status is S.EXECUTING
    streaming = stream(executing, "hi")
    assert streaming.status is S.STREAMING
    completed = reduce(streaming, ExecutionCompleted(at=4.0))
    assert completed.status is S.COMPLETED


def test_an_empty_stream_completes_from_executing(ready: InstanceState) -> None:
    """A stream with no text goes from executing straight to completed, with an empty answer."""
    completed = reduce(start_turn(ready), ExecutionCompleted(at=4.0))
    assert completed.status is S.COMPLETED
    assert completed.core.messages[-1].content == ""


def test_a_further_turn_is_allowed_with_allow_chat(streaming: InstanceState) -> None:
    """completed -> executing is legal when allow_chat is on (the default)."""
    completed = reduce(streaming, ExecutionCompleted(at=4.0))
    again = reduce(completed, ExecutionStarted(task_id="t2", user_message="more", at=5.0))
    assert again.status is S.EXECUTING


def test_a_further_turn_without_allow_chat_raises_chat_not_allowed(
    prompt: PromptDefinition,
) -> None:
    """Once answered, an instance without allow_chat refuses another turn."""
    state = make_ready(prompt, ExecutionConfig(allow_chat=False), text="t")
    completed = reduce(stream(start_turn(state), "answer"), ExecutionCompleted(at=4.0))
    _refused(completed, ExecutionStarted(task_id="t2", at=5.0), exc.ChatNotAllowed)
    back_to_ready = reduce(completed, StatusChanged(status="ready", at=5.0))
    _refused(back_to_ready, ExecutionStarted(task_id="t2", at=6.0), exc.ChatNotAllowed)


def test_a_failed_first_turn_may_be_retried_without_allow_chat(prompt: PromptDefinition) -> None:
    """error -> executing is a retry when nothing was answered yet, so allow_chat is not needed."""
    state = make_ready(prompt, ExecutionConfig(allow_chat=False), text="t")
    failed = reduce(stream(start_turn(state), "partial"), ExecutionFailed(error="reset", at=4.0))
    retried = reduce(failed, ExecutionStarted(task_id="task-1", at=5.0))
    assert retried.status is S.EXECUTING
    assert retried.core.error is None


def test_status_changed_cannot_start_or_complete_a_turn(ready: InstanceState) -> None:
    """Turn statuses are reached only through the turn's own events."""
    for status in (S.EXECUTING, S.STREAMING, S.COMPLETED):
        _refused(ready, StatusChanged(status=status, at=5.0), exc.IllegalTransition)


def test_status_changed_cannot_end_a_running_turn(streaming: InstanceState) -> None:
    """A running turn ends with ExecutionCompleted or ExecutionFailed, not StatusChanged."""
    _refused(streaming, StatusChanged(status="error", error="x", at=5.0), exc.IllegalTransition)


def test_execution_failed_needs_a_running_turn(ready: InstanceState) -> None:
    """ExecutionFailed outside a turn is refused."""
    _refused(ready, ExecutionFailed(error="x", at=5.0), exc.IllegalTransition)


def test_status_changed_to_error_keeps_the_error(prompt: PromptDefinition) -> None:
    """A setup failure moves idle to error with its message."""
    state = reduce(make_created(prompt), StatusChanged(status="error", error="no prompt", at=2.0))
    assert state.status is S.ERROR
    assert state.core.error == "no prompt"


def test_completed_goes_back_to_ready_when_the_conversation_is_cleared(
    streaming: InstanceState,
) -> None:
    """Clearing a finished conversation makes the instance ready again."""
    completed = reduce(streaming, ExecutionCompleted(at=4.0))
    cleared = reduce(completed, ConversationCleared(at=5.0))
    assert cleared.status is S.READY
    assert cleared.core.messages == ()


def test_clearing_or_resetting_during_a_turn_is_rejected(streaming: InstanceState) -> None:
    """ConversationCleared, InstanceReset and MessageAdded wait for the turn to end."""
    _refused(streaming, ConversationCleared(at=5.0), exc.IllegalTransition)
    _refused(streaming, InstanceReset(at=5.0), exc.IllegalTransition)
    message = ConversationMessage(role="user", content="x")
    _refused(streaming, MessageAdded(message=message, at=5.0), exc.IllegalTransition)


def test_variables_may_change_during_a_turn(streaming: InstanceState) -> None:
    """Variable updates are accepted in any status (they apply to the next turn)."""
    state = reduce(streaming, VariableUpdated(name="text", value="other", at=5.0))
    assert state.status is S.STREAMING


def test_a_second_instance_created_event_is_rejected(
    ready: InstanceState, prompt: PromptDefinition
) -> None:
    """An instance is created once."""
    event = InstanceCreated(instance_id="inst-2", prompt=prompt, at=5.0)
    _refused(ready, event, exc.IllegalTransition)


def test_the_first_event_must_create_or_restore_the_instance() -> None:
    """Any other event without a state is InvalidInput naming the expected events."""
    with pytest.raises(exc.InvalidInput, match="instance_created"):
        reduce(None, StreamingStarted(at=1.0))

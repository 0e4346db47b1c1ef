"""Selectors: what callers read from an instance state."""

from __future__ import annotations

import pytest

from promptactors import _exceptions as exc
from promptactors.messages import (
    ConversationMessage,
    ExecutionCompleted,
    ExecutionConfig,
    ExecutionFailed,
    InputSet,
    MessageAdded,
    PromptDefinition,
    PromptMessage,
    RunLinked,
    StreamDelta,
    UserTurnFailed,
)
from promptactors.state import (
    InstanceState,
    conversation_messages,
    display_messages,
    has_unsaved_changes,
    instance_stats,
    is_ready_to_execute,
    is_response_ended,
    live_stats,
    missing_variables,
    model_config,
    reduce,
    required_variables,
    resolved_messages,
    streaming_text,
    system_message,
    template_messages,
)

from ._helpers import make_created, make_ready, start_turn, stream


def _answered(ready: InstanceState, user_message: str) -> InstanceState:
    state = stream(start_turn(ready, user_message=user_message), "Answer with {{braces}}")
    return reduce(state, ExecutionCompleted(input_tokens=7, output_tokens=4, cost=0.2, at=5.0))


def _linked(state: InstanceState, saved: int) -> InstanceState:
    return reduce(state, RunLinked(run_id="run-1", saved_message_count=saved, at=6.0))


def test_template_messages_are_the_prompts_unresolved(ready: InstanceState) -> None:
    """template_messages returns the prompt's messages as written."""
    assert template_messages(ready) == ready.core.prompt.messages
    assert "{{ persona }}" in template_messages(ready)[0].content


def test_resolved_messages_replace_variables_in_templates_and_user_messages(
    ready: InstanceState,
) -> None:
    """Templates and user turns are rendered; the assistant's answer is sent verbatim."""
    state = _answered(ready, "Shorter, {{persona}}?")
    assert resolved_messages(state) == (
        PromptMessage(role="system", content="You are a careful editor. Today is 2024-01-15."),
        PromptMessage(role="user", content="Summarise: the report"),
        PromptMessage(role="user", content="Shorter, a careful editor?"),
        PromptMessage(role="assistant", content="Answer with {{braces}}"),
    )
    assert conversation_messages(state)[0].content == "Shorter, {{persona}}?"


def test_resolved_messages_are_verbatim_when_apply_variables_is_off(
    prompt: PromptDefinition,
) -> None:
    """With apply_variables off no placeholder is touched and nothing is missing."""
    state = make_ready(prompt, ExecutionConfig(apply_variables=False))
    assert [m.content for m in resolved_messages(state)] == [m.content for m in prompt.messages]
    assert missing_variables(state) == ()


def test_resolved_messages_name_every_missing_variable(prompt: PromptDefinition) -> None:
    """One error lists every variable missing from any message."""
    state = reduce(
        make_ready(prompt),
        MessageAdded(message=ConversationMessage(role="user", content="{{a}} {{b}}"), at=2.0),
    )
    with pytest.raises(exc.MissingVariables) as info:
        resolved_messages(state)
    assert info.value.names == ("a", "b", "text")
    assert "a, b, text" in str(info.value)


def test_failed_user_messages_are_shown_but_not_resent(ready: InstanceState) -> None:
    """A user turn marked failed stays in the conversation and leaves the request."""
    state = stream(start_turn(ready, user_message="lost question"), "x")
    state = reduce(state, ExecutionFailed(error="boom", at=4.0))
    state = reduce(state, UserTurnFailed(task_id="task-1", at=4.1))
    assert display_messages(state)[-1].content == "lost question"
    assert all(m.content != "lost question" for m in resolved_messages(state))


def test_system_message_leaves_unknown_placeholders_as_written(
    prompt: PromptDefinition,
) -> None:
    """The system prompt preview replaces what it can and keeps the rest."""
    extended = prompt.model_copy(
        update={"messages": (PromptMessage(role="system", content="{{persona}} / {{unknown}}"),)}
    )
    assert system_message(make_ready(extended)) == "a careful editor / {{unknown}}"


def test_system_message_is_none_without_a_system_template(prompt: PromptDefinition) -> None:
    """A prompt without a system message has none."""
    only_user = prompt.model_copy(update={"messages": prompt.messages[1:]})
    assert system_message(make_ready(only_user)) is None


def test_display_messages_include_the_streaming_reply_only_while_streaming(
    streaming: InstanceState,
) -> None:
    """The in-progress answer is displayed while it streams, then as the real message."""
    shown = display_messages(streaming)
    assert (shown[-1].role, shown[-1].content, shown[-1].task_id) == (
        "assistant",
        "Hello world",
        "task-1",
    )
    assert conversation_messages(streaming) == ()
    completed = reduce(streaming, ExecutionCompleted(at=4.0))
    assert display_messages(completed) == conversation_messages(completed)
    assert len(display_messages(completed)) == 1


def test_is_response_ended_only_after_completion_or_failure(streaming: InstanceState) -> None:
    """A response has ended once its turn completed or failed."""
    assert not is_response_ended(streaming)
    assert is_response_ended(reduce(streaming, ExecutionCompleted(at=4.0)))
    assert is_response_ended(reduce(streaming, ExecutionFailed(error="x", at=4.0)))


def test_live_stats_measure_the_running_turn(streaming: InstanceState) -> None:
    """TTFT, elapsed time, chunks and a rate from the first token are reported live."""
    state = reduce(streaming, StreamDelta(text="!", chunks=2, at=5.0))
    stats = live_stats(state)
    assert stats.is_streaming
    assert stats.time_to_first_token == pytest.approx(1.0)
    assert stats.elapsed == pytest.approx(3.0)
    assert (stats.output_chunks, stats.characters, stats.tokens) == (4, 12, 4)
    assert stats.tokens_per_second == pytest.approx(2.0)
    assert live_stats(state, now=7.0).elapsed == pytest.approx(5.0)


def test_live_stats_use_the_reported_usage_once_completed(streaming: InstanceState) -> None:
    """After completion tokens are the provider's output tokens and time stops at the end."""
    state = reduce(streaming, ExecutionCompleted(output_tokens=10, at=5.0))
    stats = live_stats(state, now=100.0)
    assert not stats.is_streaming
    assert stats.tokens == 10
    assert stats.elapsed == pytest.approx(3.0)
    assert stats.tokens_per_second == pytest.approx(5.0)


def test_live_stats_are_empty_before_any_turn(ready: InstanceState) -> None:
    """Without a turn there are no times."""
    stats = live_stats(ready)
    assert (stats.time_to_first_token, stats.elapsed, stats.tokens_per_second) == (None,) * 3


def test_is_ready_to_execute_names_the_missing_variables(prompt: PromptDefinition) -> None:
    """An instance missing variables is not ready, and says which."""
    state = reduce(make_ready(prompt), InputSet(text="in {{tone}}", at=2.0))
    readiness = is_ready_to_execute(state)
    assert not readiness
    assert readiness.missing == ("text", "tone")
    assert required_variables(state) == ("current_date", "persona", "text", "tone")


def test_is_ready_to_execute_checks_the_status_and_the_chat_rule(
    prompt: PromptDefinition, ready: InstanceState
) -> None:
    """Not ready before initialisation, during a turn, or after an answer without chat."""
    assert is_ready_to_execute(ready)
    assert "idle" in (is_ready_to_execute(make_created(prompt, text="t")).reason or "")
    assert not is_ready_to_execute(start_turn(ready))
    one_shot = make_ready(prompt, ExecutionConfig(allow_chat=False), text="t")
    answered = _answered(one_shot, "q")
    assert "allow_chat" in (is_ready_to_execute(answered).reason or "")
    assert is_ready_to_execute(_answered(ready, "q"))


def test_has_unsaved_changes_counts_messages_beyond_the_saved_ones(
    ready: InstanceState,
) -> None:
    """A run holding only part of the conversation means unsaved changes."""
    state = _answered(ready, "q")
    assert has_unsaved_changes(state)
    assert not has_unsaved_changes(_linked(state, saved=2))
    assert has_unsaved_changes(_linked(state, saved=1))


def test_nothing_is_unsaved_when_runs_are_not_tracked(prompt: PromptDefinition) -> None:
    """An untracked instance never has unsaved changes."""
    state = make_ready(prompt, ExecutionConfig(track_in_runs=False), text="t")
    assert not has_unsaved_changes(_answered(state, "q"))


def test_instance_stats_sum_the_turns(ready: InstanceState) -> None:
    """Message counts, turns, tokens, cost and time are totalled."""
    state = _answered(ready, "q")
    state = stream(start_turn(state, "task-2", "again", at=6.0), "x", at=6.5)
    state = reduce(state, ExecutionFailed(error="boom", at=7.0))
    stats = instance_stats(state)
    assert (stats.message_count, stats.user_messages, stats.assistant_messages) == (3, 2, 1)
    assert (stats.executions, stats.completed, stats.failed) == (2, 1, 1)
    assert (stats.input_tokens, stats.output_tokens, stats.total_tokens) == (7, 4, 11)
    assert stats.cost == pytest.approx(0.2)
    assert stats.total_time == pytest.approx(4.0)
    assert stats.last_time_to_first_token == pytest.approx(0.5)


def test_model_config_is_a_copy_of_the_effective_settings(ready: InstanceState) -> None:
    """Changing the returned dict does not change the state."""
    config = model_config(ready)
    assert config == {"model": "sim-1", "temperature": 0.2}
    config["temperature"] = 2.0
    assert model_config(ready)["temperature"] == 0.2


def test_streaming_text_is_empty_before_the_first_token(ready: InstanceState) -> None:
    """No text has streamed before the turn's first delta."""
    assert streaming_text(start_turn(ready)) == ""

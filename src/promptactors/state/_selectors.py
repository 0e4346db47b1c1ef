"""Selectors: pure functions of an :class:`InstanceState` (the seed's computed selectors).

Templating applies to the prompt's template messages and to the conversation's user and
system messages. Assistant messages are model output and always sent verbatim: a reply
that happens to contain ``{{x}}`` must not block the next turn. User messages marked
failed are shown but not sent again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from promptactors._exceptions import MissingVariables
from promptactors.messages import (
    ConversationMessage,
    ExecutionStatus,
    InstanceStats,
    LiveStats,
    PromptDefinition,
    PromptMessage,
    Readiness,
    VariableExplanation,
)

from ._machine import TURN_STATUSES
from ._templates import find_variables, render
from ._variables import explain_variable_layers, merge_variables

if TYPE_CHECKING:
    from collections.abc import Iterable

    from pydantic import JsonValue

    from ._state import InstanceState

__all__ = [
    "conversation_messages",
    "display_messages",
    "explain_variables",
    "has_unsaved_changes",
    "instance_stats",
    "is_ready_to_execute",
    "is_response_ended",
    "live_stats",
    "merged_variables",
    "missing_variables",
    "model_config",
    "required_variables",
    "resolved_messages",
    "streaming_text",
    "system_message",
    "template_messages",
]

_ENDED = frozenset({ExecutionStatus.COMPLETED, ExecutionStatus.ERROR})
_STARTABLE = frozenset({ExecutionStatus.READY, ExecutionStatus.COMPLETED, ExecutionStatus.ERROR})


def _templated_texts(
    prompt: PromptDefinition, messages: Iterable[ConversationMessage]
) -> Iterable[str]:
    for template in prompt.messages:
        yield template.content
    for message in messages:
        if message.role != "assistant" and not message.failed:
            yield message.content


def needed_names(
    prompt: PromptDefinition, messages: Iterable[ConversationMessage], *extra: str
) -> set[str]:
    """The variable names the templated messages (and ``extra`` texts) use."""
    names: set[str] = set()
    for text in (*_templated_texts(prompt, messages), *extra):
        names.update(find_variables(text))
    return names


def merged_variables(state: InstanceState) -> dict[str, str]:
    """Every variable's value, taken from the highest layer that has one."""
    return merge_variables(state.core.variables, state.core.prompt)


def explain_variables(state: InstanceState) -> tuple[VariableExplanation, ...]:
    """For each variable (sorted by name): its value, its layer, and what it shadows."""
    return explain_variable_layers(state.core.variables, state.core.prompt)


def template_messages(state: InstanceState) -> tuple[PromptMessage, ...]:
    """The prompt's template messages, unresolved."""
    return state.core.prompt.messages


def conversation_messages(state: InstanceState) -> tuple[ConversationMessage, ...]:
    """The conversation's messages, failed user turns included."""
    return state.core.messages


def required_variables(state: InstanceState) -> tuple[str, ...]:
    """Every variable the messages to send use (sorted), the current input included."""
    core = state.core
    return tuple(sorted(needed_names(core.prompt, core.messages, core.current_input)))


def missing_variables(state: InstanceState) -> tuple[str, ...]:
    """The variables the messages to send (and the current input) use that no layer
    provides, sorted; empty when ``apply_variables`` is off."""
    core = state.core
    if not core.config.apply_variables:
        return ()
    needed = needed_names(core.prompt, core.messages, core.current_input)
    return tuple(sorted(needed.difference(merged_variables(state))))


def resolved_messages(state: InstanceState) -> tuple[PromptMessage, ...]:
    """The messages to send: template messages then the conversation, variables replaced
    (verbatim when ``apply_variables`` is off; failed user messages left out).

    Raises ``MissingVariables`` naming every variable missing from any message.
    """
    core = state.core
    apply = core.config.apply_variables
    values = merged_variables(state) if apply else {}
    if apply:
        missing = needed_names(core.prompt, core.messages).difference(values)
        if missing:
            raise MissingVariables(missing)
    resolved = [
        PromptMessage.model_construct(
            role=m.role, content=render(m.content, values) if apply else m.content
        )
        for m in core.prompt.messages
    ]
    for m in core.messages:
        if m.failed and m.role == "user":
            continue
        content = m.content if m.role == "assistant" or not apply else render(m.content, values)
        resolved.append(PromptMessage.model_construct(role=m.role, content=content))
    return tuple(resolved)


def system_message(state: InstanceState) -> str | None:
    """The prompt's first system message with the variables that have values replaced
    (the others left as written), or None when it has none."""
    core = state.core
    for template in core.prompt.messages:
        if template.role == "system":
            if not core.config.apply_variables:
                return template.content
            return render(template.content, merged_variables(state), strict=False)
    return None


def streaming_text(state: InstanceState) -> str:
    """The text streamed so far in the current (or last) turn."""
    return state.stream.text


def display_messages(state: InstanceState) -> tuple[ConversationMessage, ...]:
    """The conversation, plus the assistant reply being streamed while streaming."""
    core = state.core
    if core.status is not ExecutionStatus.STREAMING:
        return core.messages
    partial = ConversationMessage.model_construct(
        role="assistant",
        content=state.stream.text,
        task_id=core.turn.task_id,
        failed=False,
        error=None,
        created_at=None,
    )
    return (*core.messages, partial)


def is_response_ended(state: InstanceState) -> bool:
    """Whether the last turn has ended (status ``completed`` or ``error``)."""
    return state.core.status in _ENDED


def live_stats(state: InstanceState, now: float | None = None) -> LiveStats:
    """Statistics of the current (or last) turn.

    ``now`` (seconds, the instance's clock) measures a running turn up to now; without it,
    up to the last event.
    """
    core = state.core
    turn = core.turn
    stream = state.stream
    running = core.status in TURN_STATUSES
    end = turn.ended_at if not running else (now if now is not None else state.updated_at)
    elapsed = None if turn.started_at is None or end is None else max(0.0, end - turn.started_at)
    tokens = (
        turn.output_tokens if turn.ended_at is not None and turn.output_tokens else stream.chunks
    )
    per_second = None
    if turn.first_token_at is not None and end is not None and end > turn.first_token_at:
        per_second = tokens / (end - turn.first_token_at)
    return LiveStats(
        is_streaming=core.status is ExecutionStatus.STREAMING,
        time_to_first_token=turn.time_to_first_token,
        elapsed=elapsed,
        output_chunks=stream.chunks,
        characters=stream.chars,
        tokens=tokens,
        tokens_per_second=per_second,
    )


def is_ready_to_execute(state: InstanceState) -> Readiness:
    """Whether a turn can start now; if not, why (and which variables are missing)."""
    core = state.core
    if core.status not in _STARTABLE:
        return Readiness(ready=False, reason=f"status is {core.status.value!r}")
    if not core.config.allow_chat and any(m.role == "assistant" for m in core.messages):
        return Readiness(ready=False, reason="already answered and allow_chat is off")
    missing = missing_variables(state)
    if missing:
        return Readiness(
            ready=False, missing=missing, reason="missing variables: " + ", ".join(missing)
        )
    return Readiness(ready=True)


def has_unsaved_changes(state: InstanceState) -> bool:
    """Whether the conversation holds messages not yet saved to its run (never, with
    ``track_in_runs`` off: nothing is to be saved)."""
    core = state.core
    return core.config.track_in_runs and len(core.messages) > core.run.saved_message_count


def instance_stats(state: InstanceState) -> InstanceStats:
    """Totals of the instance: messages, turns, tokens, cost and time."""
    core = state.core
    totals = core.totals
    user = sum(1 for m in core.messages if m.role == "user")
    return InstanceStats(
        message_count=len(core.messages),
        user_messages=user,
        assistant_messages=sum(1 for m in core.messages if m.role == "assistant"),
        failed_user_messages=sum(1 for m in core.messages if m.role == "user" and m.failed),
        executions=totals.executions,
        completed=totals.completed,
        failed=totals.failed,
        input_tokens=totals.input_tokens,
        output_tokens=totals.output_tokens,
        total_tokens=totals.input_tokens + totals.output_tokens,
        cost=totals.cost,
        total_time=totals.total_time,
        last_time_to_first_token=core.turn.time_to_first_token,
        last_total_time=core.turn.total_time,
    )


def model_config(state: InstanceState) -> dict[str, JsonValue]:
    """The effective model settings (the prompt's, with the instance's overrides)."""
    return dict(state.core.settings)

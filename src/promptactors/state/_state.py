"""The working state of an instance: cheap to derive, converted to a snapshot on demand.

:class:`InstanceState` is what the reducer takes and returns. Applying a ``StreamDelta``
must cost a few microseconds, so the state is split in two:

* :class:`InstanceCore`: everything that changes rarely (once per command or turn), a
  frozen dataclass replaced with ``dataclasses.replace``;
* :class:`StreamView`: the text of the turn being streamed, as a list of pieces that is
  only ever appended to and is shared between successive states. Each state records how
  many pieces it sees, so an older state still reads exactly its own text after newer
  states have appended. A new list starts with each turn.

Nothing in a state is ever mutated in place, except that append-only list beyond the
length older states see. :func:`snapshot` builds the frozen
:class:`~promptactors.messages.ExecutionInstance`; :func:`from_snapshot` goes back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from promptactors.messages import (
    Conversation,
    ConversationMessage,
    ExecutionConfig,
    ExecutionInstance,
    ExecutionStatus,
    ExecutionTracking,
    ExecutionVariables,
    PromptDefinition,
    RunTracking,
    UIState,
    UsageTotals,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pydantic import JsonValue

__all__ = ["InstanceCore", "InstanceState", "StreamView", "Turn", "from_snapshot", "snapshot"]


@dataclass(slots=True, frozen=True)
class Turn:
    """The current (or last) turn: its task, times (seconds) and usage."""

    task_id: str | None = None
    started_at: float | None = None
    first_token_at: float | None = None
    ended_at: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None
    finish_reason: str | None = None

    @property
    def time_to_first_token(self) -> float | None:
        """Seconds from the start of the turn to its first token, once it arrived."""
        if self.started_at is None or self.first_token_at is None:
            return None
        return self.first_token_at - self.started_at

    @property
    def total_time(self) -> float | None:
        """Seconds from the start of the turn to its end, once it ended."""
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at


@dataclass(slots=True, frozen=True, eq=False)
class StreamView:
    """The first ``length`` pieces of a shared, append-only list: one turn's streamed text.

    ``chars`` is the length of that text, ``chunks`` how many content chunks the provider
    sent for it. Two views are equal when they show the same text and counts.
    """

    pieces: list[str] = field(default_factory=list)
    length: int = 0
    chars: int = 0
    chunks: int = 0

    @property
    def text(self) -> str:
        """The text this view sees."""
        pieces = self.pieces
        if len(pieces) == self.length:
            return "".join(pieces)
        return "".join(pieces[: self.length])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StreamView):
            return NotImplemented
        return (self.length, self.chars, self.chunks) == (
            other.length,
            other.chars,
            other.chunks,
        ) and self.text == other.text


@dataclass(slots=True, frozen=True)
class InstanceCore:
    """Everything about an instance except the streamed text and ``updated_at``.

    ``settings`` is the effective model configuration (the prompt's settings with the
    instance's overrides); ``messages`` is the conversation.
    """

    instance_id: str
    prompt: PromptDefinition
    status: ExecutionStatus
    error: str | None
    created_at: float
    settings: Mapping[str, JsonValue]
    config: ExecutionConfig
    variables: ExecutionVariables
    messages: tuple[ConversationMessage, ...]
    current_input: str
    resources: tuple[JsonValue, ...]
    turn: Turn
    totals: UsageTotals
    run: RunTracking
    ui: UIState


@dataclass(slots=True, frozen=True)
class InstanceState:
    """The state the reducer works on: the core, the streamed text, the last event's time."""

    core: InstanceCore
    stream: StreamView
    updated_at: float

    @property
    def status(self) -> ExecutionStatus:
        """The instance's status."""
        return self.core.status

    @property
    def instance_id(self) -> str:
        """The instance's id."""
        return self.core.instance_id


def snapshot(state: InstanceState) -> ExecutionInstance:
    """The whole state as a frozen, JSON-serialisable ``ExecutionInstance``."""
    core = state.core
    turn = core.turn
    stream = state.stream
    return ExecutionInstance(
        instance_id=core.instance_id,
        prompt_id=core.prompt.id,
        prompt_source=core.prompt.source,
        prompt=core.prompt,
        status=core.status,
        error=core.error,
        created_at=core.created_at,
        updated_at=state.updated_at,
        settings=dict(core.settings),
        execution_config=core.config,
        variables=core.variables,
        conversation=Conversation(
            messages=core.messages,
            current_input=core.current_input,
            resources=core.resources,
        ),
        execution=ExecutionTracking(
            current_task_id=turn.task_id,
            message_start_time=turn.started_at,
            first_token_time=turn.first_token_at,
            end_time=turn.ended_at,
            streaming_text=stream.text,
            output_chunks=stream.chunks,
            input_tokens=turn.input_tokens,
            output_tokens=turn.output_tokens,
            cost=turn.cost,
            finish_reason=turn.finish_reason,
            is_streaming=core.status is ExecutionStatus.STREAMING,
            time_to_first_token=turn.time_to_first_token,
            total_time=turn.total_time,
        ),
        totals=core.totals,
        run_tracking=core.run,
        ui=core.ui,
    )


def from_snapshot(instance: ExecutionInstance) -> InstanceState:
    """The working state of a snapshot (derived fields of the snapshot are recomputed)."""
    execution = instance.execution
    text = execution.streaming_text
    conversation = instance.conversation
    core = InstanceCore(
        instance_id=instance.instance_id,
        prompt=instance.prompt,
        status=instance.status,
        error=instance.error,
        created_at=instance.created_at,
        settings=dict(instance.settings),
        config=instance.execution_config,
        variables=instance.variables,
        messages=conversation.messages,
        current_input=conversation.current_input,
        resources=conversation.resources,
        turn=Turn(
            task_id=execution.current_task_id,
            started_at=execution.message_start_time,
            first_token_at=execution.first_token_time,
            ended_at=execution.end_time,
            input_tokens=execution.input_tokens,
            output_tokens=execution.output_tokens,
            cost=execution.cost,
            finish_reason=execution.finish_reason,
        ),
        totals=instance.totals,
        run=instance.run_tracking,
        ui=instance.ui,
    )
    stream = (
        StreamView([text], 1, len(text), execution.output_chunks)
        if text
        else StreamView([], 0, 0, execution.output_chunks)
    )
    return InstanceState(core, stream, instance.updated_at)

"""Builders of instance states at each step of a turn, shared by the state tests."""

from __future__ import annotations

from datetime import UTC, datetime

from promptactors.messages import (
    ExecutionConfig,
    ExecutionStarted,
    InstanceCreated,
    PromptDefinition,
    PromptMessage,
    StatusChanged,
    StreamDelta,
    StreamingStarted,
    VariableDefault,
)
from promptactors.state import InstanceState, computed_variables, reduce

NOW = datetime(2024, 1, 15, 14, 30, tzinfo=UTC)


def make_prompt() -> PromptDefinition:
    """A prompt with a system and a user template, one defaulted and one required variable."""
    return PromptDefinition(
        id="prompt-1",
        name="Summariser",
        messages=(
            PromptMessage(
                role="system", content="You are {{ persona }}. Today is {{current_date}}."
            ),
            PromptMessage(role="user", content="Summarise: {{text}}"),
        ),
        variables=(
            VariableDefault(name="persona", default="a careful editor"),
            VariableDefault(name="text", help_text="what to summarise"),
        ),
        settings={"model": "sim-1", "temperature": 0.2},
    )


def make_created(
    prompt: PromptDefinition, config: ExecutionConfig | None = None, **values: str
) -> InstanceState:
    """A new instance of ``prompt`` (status idle) with ``values`` as user values."""
    return reduce(
        None,
        InstanceCreated(
            instance_id="inst-1",
            prompt=prompt,
            execution_config=config or ExecutionConfig(),
            user_values=values,
            computed_values=computed_variables(NOW),
            at=1.0,
        ),
    )


def make_ready(
    prompt: PromptDefinition, config: ExecutionConfig | None = None, **values: str
) -> InstanceState:
    """An instance of ``prompt`` in status ready."""
    state = make_created(prompt, config, **values)
    state = reduce(state, StatusChanged(status="initializing", at=1.1))
    return reduce(state, StatusChanged(status="ready", at=1.2))


def start_turn(
    state: InstanceState, task_id: str = "task-1", user_message: str | None = None, at: float = 2.0
) -> InstanceState:
    """``state`` with a turn started as ``task_id``."""
    return reduce(state, ExecutionStarted(task_id=task_id, user_message=user_message, at=at))


def stream(state: InstanceState, *pieces: str, at: float = 3.0) -> InstanceState:
    """``state`` (executing or streaming) after its first token and ``pieces``."""
    if state.status == "executing":
        state = reduce(state, StreamingStarted(at=at))
    for piece in pieces:
        state = reduce(state, StreamDelta(text=piece, at=at))
    return state

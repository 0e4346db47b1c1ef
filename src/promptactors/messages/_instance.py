"""The execution instance, as data: prompt definitions, variables, conversation, tracking.

These are the seed engine's types in snake_case. :class:`ExecutionInstance` is the whole
snapshot of one instance; the reducer in :mod:`promptactors.state` works on a cheaper
representation and builds this snapshot on demand.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, TypeAlias

from pydantic import Field, JsonValue, field_validator, model_validator

from ._base import Frozen, Id, InputText, Role, Timestamp, VariableName

__all__ = [
    "Conversation",
    "ConversationMessage",
    "ExecutionConfig",
    "ExecutionInstance",
    "ExecutionStatus",
    "ExecutionTracking",
    "ExecutionVariables",
    "FieldChange",
    "InstanceStats",
    "LiveStats",
    "PromptDefinition",
    "PromptMessage",
    "PromptSource",
    "Readiness",
    "RunTracking",
    "ScopedValues",
    "UIState",
    "UsageTotals",
    "VariableDefault",
    "VariableExplanation",
    "VariableSource",
    "VariableValue",
    "Variables",
]

PromptSource: TypeAlias = Literal["prompts", "prompt_builtins"]
"""The table a prompt comes from: user prompts or the system's builtins."""

Variables: TypeAlias = dict[VariableName, InputText]
"""A layer of variable values, by variable name."""

_Count = Annotated[int, Field(ge=0)]
_Amount = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class ExecutionStatus(StrEnum):
    """Where an instance is in its life (see the table in :mod:`promptactors.state`)."""

    IDLE = "idle"
    INITIALIZING = "initializing"
    READY = "ready"
    EXECUTING = "executing"
    STREAMING = "streaming"
    COMPLETED = "completed"
    ERROR = "error"


class ExecutionConfig(Frozen):
    """How an instance behaves.

    ``auto_run`` executes right after start; ``allow_chat`` permits turns after the first;
    ``show_variables`` opens the variables panel; ``apply_variables`` replaces
    ``{{name}}`` in messages (off: messages are sent verbatim); ``track_in_runs`` saves the
    conversation to ``ai_runs``.
    """

    auto_run: bool = False
    allow_chat: bool = True
    show_variables: bool = False
    apply_variables: bool = True
    track_in_runs: bool = True
    on_busy: Literal["reject", "enqueue", "interrupt"] = "reject"
    """What a new turn does while one runs: ``reject`` it (``TurnInProgress``),
    ``enqueue`` it (FIFO of at most ``max_queued_turns``) or ``interrupt`` the running one
    (cancelled, its partial output kept) and run."""
    max_queued_turns: Annotated[int, Field(ge=1, le=10_000)] = 16


class PromptMessage(Frozen):
    """A message of a prompt template, or one resolved from it (variables replaced)."""

    role: Role
    content: InputText


class VariableDefault(Frozen):
    """A variable a prompt declares. ``default`` None means no default: a value must come
    from another layer if a template uses the variable."""

    name: VariableName
    default: InputText | None = None
    help_text: str | None = None


class PromptDefinition(Frozen):
    """A prompt (or prompt builtin): template messages, declared variables, model settings.

    ``settings`` is the model configuration (``model``, ``temperature``, ``max_tokens``...).
    Raises ``InvalidInput`` on an empty id or a variable declared twice.
    """

    id: Id
    name: str = ""
    source: PromptSource = "prompts"
    messages: tuple[PromptMessage, ...] = ()
    variables: tuple[VariableDefault, ...] = ()
    settings: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("variables")
    @classmethod
    def _unique_variables(cls, value: tuple[VariableDefault, ...]) -> tuple[VariableDefault, ...]:
        seen: set[str] = set()
        for variable in value:
            if variable.name in seen:
                raise ValueError(f"variable {variable.name!r} is declared twice")
            seen.add(variable.name)
        return value

    def defaults(self) -> dict[str, str]:
        """The declared variables that have a default, with that default."""
        return {v.name: v.default for v in self.variables if v.default is not None}


class ScopedValues(Frozen):
    """Variable values scoped to a project, an organisation and a user (loaded from the store).

    When one name is in several scopes the project wins, then the organisation, then the user.
    """

    project: Variables = Field(default_factory=dict)
    org: Variables = Field(default_factory=dict)
    user: Variables = Field(default_factory=dict)

    def merged(self) -> dict[str, str]:
        """One map: project over org over user."""
        return {**self.user, **self.org, **self.project}


class ExecutionVariables(Frozen):
    """Every layer of variable values of an instance except the prompt's defaults.

    Precedence, highest first: computed, user, action (hardcoded), broker, scoped
    (project, org, user), prompt defaults.
    """

    user_values: Variables = Field(default_factory=dict)
    action_values: Variables = Field(default_factory=dict)
    broker_values: Variables = Field(default_factory=dict)
    scoped_values: ScopedValues = Field(default_factory=ScopedValues)
    computed_values: Variables = Field(default_factory=dict)


class ConversationMessage(Frozen):
    """A turn of the conversation.

    ``task_id`` links a user message and its answer to the task that produced the answer;
    ``failed`` marks a user message whose turn failed for good (``error`` says why);
    ``partial`` marks an assistant message cut short by a cancelled turn.
    ``content`` has no length limit here: it may be model output or loaded from a run;
    user text is limited where it enters (``InputSet``, ``ExecutionStarted``).
    """

    role: Role
    content: str
    task_id: Id | None = None
    failed: bool = False
    partial: bool = False
    error: str | None = None
    created_at: Timestamp | None = None


class Conversation(Frozen):
    """The conversation of an instance: messages, the input being typed, attached resources."""

    messages: tuple[ConversationMessage, ...] = ()
    current_input: InputText = ""
    resources: tuple[JsonValue, ...] = ()


class ExecutionTracking(Frozen):
    """The current (or last) turn.

    Times are seconds on the instance's clock. ``time_to_first_token``, ``total_time`` and
    ``is_streaming`` are derived: filled in by snapshots, ignored when restoring one.
    """

    current_task_id: Id | None = None
    message_start_time: Timestamp | None = None
    first_token_time: Timestamp | None = None
    end_time: Timestamp | None = None
    streaming_text: str = ""
    output_chunks: _Count = 0
    input_tokens: _Count = 0
    output_tokens: _Count = 0
    cost: _Amount | None = None
    finish_reason: str | None = None
    is_streaming: bool = False
    time_to_first_token: float | None = None
    total_time: float | None = None


class UsageTotals(Frozen):
    """Counters summed over every turn of the instance."""

    executions: _Count = 0
    completed: _Count = 0
    failed: _Count = 0
    input_tokens: _Count = 0
    output_tokens: _Count = 0
    cost: _Amount = 0.0
    total_time: _Amount = 0.0


class RunTracking(Frozen):
    """The ``ai_runs`` row the conversation is saved to, and how much of it is saved."""

    run_id: Id | None = None
    run_name: str | None = None
    saved_message_count: _Count = 0


class UIState(Frozen):
    """What a user interface shows of the instance."""

    expanded_variable: VariableName | None = None
    show_variables: bool = False


class ExecutionInstance(Frozen):
    """The whole state of one execution instance, as one immutable snapshot.

    Round-trips through JSON (``model_dump_json`` / ``model_validate_json``). Its maps
    may be shared with the state it was taken from: treat them as read-only. Raises
    ``InvalidInput`` when ``prompt_id`` or ``prompt_source`` disagree with ``prompt``.
    """

    instance_id: Id
    prompt_id: Id
    prompt_source: PromptSource
    prompt: PromptDefinition
    status: ExecutionStatus
    error: str | None = None
    created_at: Timestamp
    updated_at: Timestamp
    settings: dict[str, JsonValue] = Field(default_factory=dict)
    execution_config: ExecutionConfig = Field(default_factory=ExecutionConfig)
    variables: ExecutionVariables = Field(default_factory=ExecutionVariables)
    conversation: Conversation = Field(default_factory=Conversation)
    execution: ExecutionTracking = Field(default_factory=ExecutionTracking)
    totals: UsageTotals = Field(default_factory=UsageTotals)
    run_tracking: RunTracking = Field(default_factory=RunTracking)
    ui: UIState = Field(default_factory=UIState)

    @model_validator(mode="after")
    def _prompt_matches(self) -> ExecutionInstance:
        if self.prompt_id != self.prompt.id:
            raise ValueError(f"prompt_id {self.prompt_id!r} is not prompt.id {self.prompt.id!r}")
        if self.prompt_source != self.prompt.source:
            raise ValueError(
                f"prompt_source {self.prompt_source!r} is not prompt.source {self.prompt.source!r}"
            )
        return self


class LiveStats(Frozen):
    """Statistics of the current (or last) turn, as it streams.

    ``tokens`` counts content chunks while streaming and the provider's output tokens once
    the turn completed; ``tokens_per_second`` is measured from the first token.
    """

    is_streaming: bool
    time_to_first_token: float | None
    elapsed: float | None
    output_chunks: int
    characters: int
    tokens: int
    tokens_per_second: float | None


class InstanceStats(Frozen):
    """Totals of an instance: messages, turns, tokens, cost, time."""

    message_count: int
    user_messages: int
    assistant_messages: int
    failed_user_messages: int
    executions: int
    completed: int
    failed: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost: float
    total_time: float
    last_time_to_first_token: float | None
    last_total_time: float | None


class Readiness(Frozen):
    """Whether an instance can execute a turn now; true in a boolean context when it can.

    ``missing`` names every variable the messages need that no layer provides (sorted);
    ``reason`` says in words why it is not ready.
    """

    ready: bool
    missing: tuple[str, ...] = ()
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.ready


class VariableSource(StrEnum):
    """The layers a variable value can come from, highest precedence first."""

    COMPUTED = "computed"
    USER = "user"
    ACTION = "action"
    BROKER = "broker"
    SCOPED_PROJECT = "scoped_project"
    SCOPED_ORG = "scoped_org"
    SCOPED_USER = "scoped_user"
    DEFAULT = "default"


class VariableValue(Frozen):
    """A value of a variable in one layer."""

    source: VariableSource
    value: str


class VariableExplanation(Frozen):
    """Which value a variable takes and why: the winning layer, and the values it shadows
    (highest precedence first)."""

    name: str
    value: str
    source: VariableSource
    shadowed: tuple[VariableValue, ...] = ()


class FieldChange(Frozen):
    """One difference between two snapshots.

    ``path`` is dotted, with ``[i]`` for list items (``conversation.messages[2].content``).
    ``before`` is None for an added field, ``after`` None for a removed one.
    """

    path: str
    kind: Literal["added", "removed", "changed"]
    before: JsonValue = None
    after: JsonValue = None

"""The events the instance reducer applies, one frozen model per event.

Every event carries ``at``, the time it happened in seconds on the instance's clock (the
reducer never reads a clock), and a ``type`` tag that makes :data:`Event` a discriminated
union: a list of events round-trips through JSON, so a journal can be exported, imported
and replayed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import Field, JsonValue, TypeAdapter, ValidationError

from promptactors._exceptions import InvalidInput

from ._base import Frozen, Id, InputText, Timestamp, VariableName, describe_validation_error
from ._instance import (
    ConversationMessage,
    ExecutionConfig,
    ExecutionInstance,
    ExecutionStatus,
    PromptDefinition,
    ScopedValues,
    Variables,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "EVENT_TYPES",
    "ActionValuesSet",
    "AttemptRetrying",
    "BrokerValuesSet",
    "ComputedValuesSet",
    "ConversationCleared",
    "Event",
    "EventBase",
    "ExecutionCancelled",
    "ExecutionCompleted",
    "ExecutionFailed",
    "ExecutionStarted",
    "ExpandedVariableSet",
    "InputSet",
    "InstanceCreated",
    "InstanceReset",
    "InstanceRestored",
    "MessageAdded",
    "ResourcesSet",
    "RunLinked",
    "RunSaved",
    "ScopedVariablesSet",
    "SettingsUpdated",
    "ShowVariablesToggled",
    "StatusChanged",
    "StreamDelta",
    "StreamingStarted",
    "UserTurnFailed",
    "VariableCleared",
    "VariableUpdated",
    "VariablesUpdated",
    "parse_event",
]

_Count = Annotated[int, Field(ge=0)]
_Text = Annotated[str, Field(min_length=1)]


class EventBase(Frozen):
    """Base of every event: ``at`` is when it happened (seconds, the instance's clock)."""

    at: Timestamp


# -- lifecycle ----------------------------------------------------------------------------


class InstanceCreated(EventBase):
    """A new instance of ``prompt`` exists, in status ``idle``. Must be the first event.

    ``settings`` are merged over the prompt's settings; the value maps fill the variable
    layers of the same names.
    """

    type: Literal["instance_created"] = "instance_created"
    instance_id: Id
    prompt: PromptDefinition
    execution_config: ExecutionConfig = Field(default_factory=ExecutionConfig)
    settings: dict[str, JsonValue] = Field(default_factory=dict)
    user_values: Variables = Field(default_factory=dict)
    action_values: Variables = Field(default_factory=dict)
    broker_values: Variables = Field(default_factory=dict)
    scoped_values: ScopedValues = Field(default_factory=ScopedValues)
    computed_values: Variables = Field(default_factory=dict)
    current_input: InputText = ""


class StatusChanged(EventBase):
    """A status change that needs no other bookkeeping (``initializing``, ``ready``,
    ``error`` outside a turn). ``error`` is kept with the ``error`` status."""

    type: Literal["status_changed"] = "status_changed"
    status: ExecutionStatus
    error: str | None = None


class InstanceReset(EventBase):
    """Start over: conversation, turn, totals and run link cleared; prompt, configuration
    and variables kept. A started instance goes back to ``ready``."""

    type: Literal["instance_reset"] = "instance_reset"


class InstanceRestored(EventBase):
    """Replace the whole state with ``instance`` (a committed snapshot), e.g. after a crash."""

    type: Literal["instance_restored"] = "instance_restored"
    instance: ExecutionInstance


# -- variables and settings ---------------------------------------------------------------


class VariableUpdated(EventBase):
    """The user set one variable."""

    type: Literal["variable_updated"] = "variable_updated"
    name: VariableName
    value: InputText


class VariablesUpdated(EventBase):
    """The user set several variables at once (merged over the current user values)."""

    type: Literal["variables_updated"] = "variables_updated"
    values: Variables


class VariableCleared(EventBase):
    """The user removed their value of a variable; lower layers apply again."""

    type: Literal["variable_cleared"] = "variable_cleared"
    name: VariableName


class ScopedVariablesSet(EventBase):
    """The project, org and user scoped values were (re)loaded; they replace the old ones."""

    type: Literal["scoped_variables_set"] = "scoped_variables_set"
    scoped_values: ScopedValues


class ActionValuesSet(EventBase):
    """An action's hardcoded values replace the action layer."""

    type: Literal["action_values_set"] = "action_values_set"
    values: Variables


class BrokerValuesSet(EventBase):
    """Values resolved by an action's brokers replace the broker layer."""

    type: Literal["broker_values_set"] = "broker_values_set"
    values: Variables


class ComputedValuesSet(EventBase):
    """Computed values (``current_date``...) replace the computed layer."""

    type: Literal["computed_values_set"] = "computed_values_set"
    values: Variables


class SettingsUpdated(EventBase):
    """Model settings merged over the current ones (``temperature``...)."""

    type: Literal["settings_updated"] = "settings_updated"
    settings: dict[str, JsonValue]


# -- conversation -------------------------------------------------------------------------


class InputSet(EventBase):
    """The text being typed for the next turn changed."""

    type: Literal["input_set"] = "input_set"
    text: InputText


class MessageAdded(EventBase):
    """A message was appended to the conversation outside a turn (e.g. loaded from a run)."""

    type: Literal["message_added"] = "message_added"
    message: ConversationMessage


class ConversationCleared(EventBase):
    """The conversation, its input and its run link were cleared; a finished instance goes
    back to ``ready``."""

    type: Literal["conversation_cleared"] = "conversation_cleared"


class ResourcesSet(EventBase):
    """The resources attached to the conversation were replaced."""

    type: Literal["resources_set"] = "resources_set"
    resources: tuple[JsonValue, ...]


# -- a turn -------------------------------------------------------------------------------


class ExecutionStarted(EventBase):
    """A turn started as task ``task_id``: status ``executing``.

    ``user_message`` (the current input plus any extra input, composed by the caller) is
    appended as the turn's user message; None for a turn without one (a first turn made
    of the template alone, or a retry). The current input is cleared. ``computed_values``,
    when given, replace the computed layer: the values this turn is rendered with.
    """

    type: Literal["execution_started"] = "execution_started"
    task_id: Id
    user_message: InputText | None = None
    computed_values: Variables | None = None


class StreamingStarted(EventBase):
    """The first token arrived: status ``streaming``; ``at`` is the time to first token's end."""

    type: Literal["streaming_started"] = "streaming_started"


class StreamDelta(EventBase):
    """Text received in one read of the stream (``chunks`` content chunks joined)."""

    type: Literal["stream_delta"] = "stream_delta"
    text: str
    chunks: _Count = 1


class ExecutionCompleted(EventBase):
    """The stream ended: the streamed text becomes the assistant message; status
    ``completed``. Usage and cost are the provider's (or estimated)."""

    type: Literal["execution_completed"] = "execution_completed"
    input_tokens: _Count = 0
    output_tokens: _Count = 0
    cost: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] | None = None
    finish_reason: str | None = None


class ExecutionFailed(EventBase):
    """The turn failed: status ``error``. The partial text stays in the streaming text."""

    type: Literal["execution_failed"] = "execution_failed"
    error: _Text


class AttemptRetrying(EventBase):
    """An attempt failed and the turn will be retried as task ``task_id``: status stays
    ``executing`` (the instance is still in its turn) and the streamed text starts again.
    ``error`` says why the attempt failed."""

    type: Literal["attempt_retrying"] = "attempt_retrying"
    task_id: Id
    error: _Text


class ExecutionCancelled(EventBase):
    """The turn was cancelled (a stop, an interrupt): the streamed text becomes an
    assistant message marked ``partial``; status ``error`` with ``error``."""

    type: Literal["execution_cancelled"] = "execution_cancelled"
    error: _Text


class UserTurnFailed(EventBase):
    """The user message of task ``task_id`` will not be answered (e.g. retries exhausted)."""

    type: Literal["user_turn_failed"] = "user_turn_failed"
    task_id: Id
    error: str | None = None


# -- run tracking and UI ------------------------------------------------------------------


class RunLinked(EventBase):
    """The conversation is saved to run ``run_id``, which already holds
    ``saved_message_count`` of its messages (0 for a new run)."""

    type: Literal["run_linked"] = "run_linked"
    run_id: Id
    run_name: str | None = None
    saved_message_count: _Count = 0


class RunSaved(EventBase):
    """The first ``saved_message_count`` messages are committed to the linked run."""

    type: Literal["run_saved"] = "run_saved"
    saved_message_count: _Count


class ExpandedVariableSet(EventBase):
    """The user interface expanded one variable (None: collapsed)."""

    type: Literal["expanded_variable_set"] = "expanded_variable_set"
    name: VariableName | None = None


class ShowVariablesToggled(EventBase):
    """The user interface showed or hid the variables panel."""

    type: Literal["show_variables_toggled"] = "show_variables_toggled"


Event: TypeAlias = Annotated[
    InstanceCreated
    | StatusChanged
    | InstanceReset
    | InstanceRestored
    | VariableUpdated
    | VariablesUpdated
    | VariableCleared
    | ScopedVariablesSet
    | ActionValuesSet
    | BrokerValuesSet
    | ComputedValuesSet
    | SettingsUpdated
    | InputSet
    | MessageAdded
    | ConversationCleared
    | ResourcesSet
    | ExecutionStarted
    | StreamingStarted
    | StreamDelta
    | ExecutionCompleted
    | ExecutionFailed
    | AttemptRetrying
    | ExecutionCancelled
    | UserTurnFailed
    | RunLinked
    | RunSaved
    | ExpandedVariableSet
    | ShowVariablesToggled,
    Field(discriminator="type"),
]
"""Any event, discriminated by its ``type`` field."""

EVENT_TYPES: Mapping[str, type[EventBase]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        InstanceCreated,
        StatusChanged,
        InstanceReset,
        InstanceRestored,
        VariableUpdated,
        VariablesUpdated,
        VariableCleared,
        ScopedVariablesSet,
        ActionValuesSet,
        BrokerValuesSet,
        ComputedValuesSet,
        SettingsUpdated,
        InputSet,
        MessageAdded,
        ConversationCleared,
        ResourcesSet,
        ExecutionStarted,
        StreamingStarted,
        StreamDelta,
        ExecutionCompleted,
        ExecutionFailed,
        UserTurnFailed,
        RunLinked,
        RunSaved,
        ExpandedVariableSet,
        ShowVariablesToggled,
    )
}
"""Every event class, by its ``type`` tag."""

_EVENT: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(data: Mapping[str, Any] | str | bytes) -> Event:
    """Build an event from its JSON text or its dumped dict (``model_dump(mode="json")``).

    Raises ``InvalidInput`` naming the field when the data is not a valid event.
    """
    try:
        if isinstance(data, str | bytes):
            return _EVENT.validate_json(data)
        return _EVENT.validate_python(data)
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error("Event", exc)) from exc

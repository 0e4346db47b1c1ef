"""The instance reducer: ``reduce(state, event) -> state``, pure.

The input state is never changed; an event the state cannot accept raises and leaves it
as it was. The status machine is drawn in :mod:`promptactors.state._machine`.
``StreamDelta`` is the hot path (one per network read of a stream) and costs two small
object allocations; every other event is rare and uses ``dataclasses.replace``.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any

from promptactors._exceptions import (
    ChatNotAllowed,
    IllegalTransition,
    InvalidInput,
    MissingVariables,
)
from promptactors.messages import (
    ActionValuesSet,
    AttemptRetrying,
    BrokerValuesSet,
    ComputedValuesSet,
    ConversationCleared,
    ConversationMessage,
    Event,
    EventBase,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionStarted,
    ExecutionStatus,
    ExecutionVariables,
    ExpandedVariableSet,
    InputSet,
    InstanceCreated,
    InstanceReset,
    InstanceRestored,
    MessageAdded,
    ResourcesSet,
    RunLinked,
    RunSaved,
    RunTracking,
    ScopedVariablesSet,
    SettingsUpdated,
    ShowVariablesToggled,
    StatusChanged,
    StreamDelta,
    StreamingStarted,
    UIState,
    UsageTotals,
    UserTurnFailed,
    VariableCleared,
    VariablesUpdated,
    VariableUpdated,
)

from ._machine import TURN_STATUSES, check_transition
from ._selectors import needed_names
from ._state import InstanceCore, InstanceState, StreamView, Turn, from_snapshot
from ._variables import merge_variables

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["append_stream", "reduce"]

_S = ExecutionStatus
_STREAMING = _S.STREAMING
_FINISHED = frozenset({_S.COMPLETED, _S.ERROR})


def reduce(state: InstanceState | None, event: Event) -> InstanceState:
    """Apply ``event`` to ``state`` and return the new state (``state`` is unchanged).

    ``state`` is None before the first event, which must be ``InstanceCreated`` or
    ``InstanceRestored``. Raises ``IllegalTransition`` when the status machine (or the
    status) refuses the event, ``ChatNotAllowed`` for a further turn without
    ``allow_chat``, ``MissingVariables`` when a turn would need variables no layer
    provides, and ``InvalidInput`` when the event contradicts the state (an unknown task,
    a run already linked...). In every case the state is left as it was.
    """
    if type(event) is StreamDelta and state is not None:
        return append_stream(state, event.text, event.chunks, event.at)
    if state is None:
        if type(event) is InstanceCreated:
            return _created(event)
        if type(event) is InstanceRestored:
            return from_snapshot(event.instance)
        raise InvalidInput(
            f"event {event.type!r}: there is no instance yet; the first event must be "
            "'instance_created' or 'instance_restored'"
        )
    handler = _HANDLERS.get(type(event))
    if handler is None:
        raise InvalidInput(f"event: not an instance event: {event!r}")
    return handler(state, event)


def append_stream(state: InstanceState, text: str, chunks: int, at: float) -> InstanceState:
    """``reduce(state, StreamDelta(at=at, text=text, chunks=chunks))`` without building the
    event: the engine's hot path, one call per network read of a stream.

    Raises ``IllegalTransition`` unless the instance is streaming (the state is unchanged).
    """
    core = state.core
    if core.status is not _STREAMING:
        raise IllegalTransition(
            core.status.value, _STREAMING.value, "stream_delta is accepted only while streaming"
        )
    view = state.stream
    pieces = view.pieces
    if len(pieces) != view.length:
        # A newer state already appended to this list: branch off with a copy.
        pieces = pieces[: view.length]
    pieces.append(text)
    return InstanceState(
        core, StreamView(pieces, view.length + 1, view.chars + len(text), view.chunks + chunks), at
    )


_CORE_FIELDS = tuple(f.name for f in fields(InstanceCore))
_new = object.__new__
_set = object.__setattr__


def _evolve(state: InstanceState, at: float, **changes: Any) -> InstanceState:
    # dataclasses.replace re-runs __init__ over all fields (~5 us); copying the slots of
    # this frozen, validated-elsewhere core is several times cheaper, and a turn takes ~8.
    old = state.core
    core = _new(InstanceCore)
    for name in _CORE_FIELDS:
        _set(core, name, changes[name] if name in changes else getattr(old, name))
    return InstanceState(core, state.stream, at)


def _refuse_during_turn(state: InstanceState, what: str) -> None:
    status = state.core.status
    if status in TURN_STATUSES:
        raise IllegalTransition(status.value, status.value, f"{what} is refused while a turn runs")


def _created(event: InstanceCreated) -> InstanceState:
    config = event.execution_config
    core = InstanceCore(
        instance_id=event.instance_id,
        prompt=event.prompt,
        status=_S.IDLE,
        error=None,
        created_at=event.at,
        settings={**event.prompt.settings, **event.settings},
        config=config,
        variables=ExecutionVariables(
            user_values=event.user_values,
            action_values=event.action_values,
            broker_values=event.broker_values,
            scoped_values=event.scoped_values,
            computed_values=event.computed_values,
        ),
        messages=(),
        current_input=event.current_input,
        resources=(),
        turn=Turn(),
        totals=UsageTotals(),
        run=RunTracking(),
        ui=UIState(show_variables=config.show_variables),
    )
    return InstanceState(core, StreamView([]), event.at)


# -- lifecycle ----------------------------------------------------------------------------


def _instance_created(state: InstanceState, event: InstanceCreated) -> InstanceState:
    raise IllegalTransition(
        state.core.status.value,
        _S.IDLE.value,
        f"instance {state.core.instance_id!r} already exists",
    )


def _status_changed(state: InstanceState, event: StatusChanged) -> InstanceState:
    status = state.core.status
    target = event.status
    if target in (_S.EXECUTING, _S.STREAMING, _S.COMPLETED):
        raise IllegalTransition(
            status.value, target.value, "status_changed cannot start, stream or complete a turn"
        )
    if status in TURN_STATUSES:
        raise IllegalTransition(
            status.value,
            target.value,
            "a running turn ends with execution_completed or execution_failed",
        )
    check_transition(status, target)
    return _evolve(
        state, event.at, status=target, error=event.error if target is _S.ERROR else None
    )


def _instance_reset(state: InstanceState, event: InstanceReset) -> InstanceState:
    _refuse_during_turn(state, "instance_reset")
    status = state.core.status
    return InstanceState(
        replace(
            state.core,
            status=_S.READY if status in _FINISHED else status,
            error=None,
            messages=(),
            current_input="",
            resources=(),
            turn=Turn(),
            totals=UsageTotals(),
            run=RunTracking(),
        ),
        StreamView([]),
        event.at,
    )


def _instance_restored(state: InstanceState, event: InstanceRestored) -> InstanceState:
    if event.instance.instance_id != state.core.instance_id:
        raise InvalidInput(
            f"instance: a snapshot of instance {event.instance.instance_id!r} cannot restore "
            f"instance {state.core.instance_id!r}"
        )
    return from_snapshot(event.instance)


# -- variables and settings ---------------------------------------------------------------


def _with_variables(state: InstanceState, at: float, **layers: Any) -> InstanceState:
    return _evolve(state, at, variables=state.core.variables.model_copy(update=layers))


def _variable_updated(state: InstanceState, event: VariableUpdated) -> InstanceState:
    user = {**state.core.variables.user_values, event.name: event.value}
    return _with_variables(state, event.at, user_values=user)


def _variables_updated(state: InstanceState, event: VariablesUpdated) -> InstanceState:
    user = {**state.core.variables.user_values, **event.values}
    return _with_variables(state, event.at, user_values=user)


def _variable_cleared(state: InstanceState, event: VariableCleared) -> InstanceState:
    user = {k: v for k, v in state.core.variables.user_values.items() if k != event.name}
    return _with_variables(state, event.at, user_values=user)


def _scoped_variables_set(state: InstanceState, event: ScopedVariablesSet) -> InstanceState:
    return _with_variables(state, event.at, scoped_values=event.scoped_values)


def _action_values_set(state: InstanceState, event: ActionValuesSet) -> InstanceState:
    return _with_variables(state, event.at, action_values=dict(event.values))


def _broker_values_set(state: InstanceState, event: BrokerValuesSet) -> InstanceState:
    return _with_variables(state, event.at, broker_values=dict(event.values))


def _computed_values_set(state: InstanceState, event: ComputedValuesSet) -> InstanceState:
    return _with_variables(state, event.at, computed_values=dict(event.values))


def _settings_updated(state: InstanceState, event: SettingsUpdated) -> InstanceState:
    return _evolve(state, event.at, settings={**state.core.settings, **event.settings})


# -- conversation -------------------------------------------------------------------------


def _input_set(state: InstanceState, event: InputSet) -> InstanceState:
    return _evolve(state, event.at, current_input=event.text)


def _message_added(state: InstanceState, event: MessageAdded) -> InstanceState:
    _refuse_during_turn(state, "message_added")
    return _evolve(state, event.at, messages=(*state.core.messages, event.message))


def _conversation_cleared(state: InstanceState, event: ConversationCleared) -> InstanceState:
    _refuse_during_turn(state, "conversation_cleared")
    status = state.core.status
    return InstanceState(
        replace(
            state.core,
            status=_S.READY if status in _FINISHED else status,
            error=None,
            messages=(),
            current_input="",
            resources=(),
            turn=Turn(),
            run=RunTracking(),
        ),
        StreamView([]),
        event.at,
    )


def _resources_set(state: InstanceState, event: ResourcesSet) -> InstanceState:
    return _evolve(state, event.at, resources=event.resources)


# -- a turn -------------------------------------------------------------------------------


def _execution_started(state: InstanceState, event: ExecutionStarted) -> InstanceState:
    core = state.core
    if core.status in TURN_STATUSES:
        raise IllegalTransition(core.status.value, _S.EXECUTING.value, "a turn is running")
    check_transition(core.status, _S.EXECUTING)
    if not core.config.allow_chat and any(
        m.role == "assistant" and not m.partial for m in core.messages
    ):
        raise ChatNotAllowed(
            f"instance {core.instance_id!r} has answered already and its allow_chat is off"
        )
    messages = core.messages
    if event.user_message is not None:
        user = ConversationMessage(
            role="user", content=event.user_message, task_id=event.task_id, created_at=event.at
        )
        messages = (*messages, user)
    variables = core.variables
    if event.computed_values is not None:
        variables = variables.model_copy(update={"computed_values": dict(event.computed_values)})
    if core.config.apply_variables:
        missing = needed_names(core.prompt, messages).difference(
            merge_variables(variables, core.prompt)
        )
        if missing:
            raise MissingVariables(missing)
    return InstanceState(
        replace(
            core,
            status=_S.EXECUTING,
            error=None,
            messages=messages,
            current_input="",
            variables=variables,
            turn=Turn(task_id=event.task_id, started_at=event.at),
            totals=core.totals.model_copy(update={"executions": core.totals.executions + 1}),
        ),
        StreamView([]),
        event.at,
    )


def _streaming_started(state: InstanceState, event: StreamingStarted) -> InstanceState:
    core = state.core
    check_transition(core.status, _STREAMING)
    return _evolve(
        state, event.at, status=_STREAMING, turn=replace(core.turn, first_token_at=event.at)
    )


def _turn_time(turn: Turn, at: float) -> float:
    return max(0.0, at - turn.started_at) if turn.started_at is not None else 0.0


def _execution_completed(state: InstanceState, event: ExecutionCompleted) -> InstanceState:
    core = state.core
    check_transition(core.status, _S.COMPLETED)
    turn = core.turn
    answer = ConversationMessage(
        role="assistant", content=state.stream.text, task_id=turn.task_id, created_at=event.at
    )
    totals = core.totals
    return _evolve(
        state,
        event.at,
        status=_S.COMPLETED,
        messages=(*core.messages, answer),
        turn=replace(
            turn,
            ended_at=event.at,
            input_tokens=event.input_tokens,
            output_tokens=event.output_tokens,
            cost=event.cost,
            finish_reason=event.finish_reason,
        ),
        totals=totals.model_copy(
            update={
                "completed": totals.completed + 1,
                "input_tokens": totals.input_tokens + event.input_tokens,
                "output_tokens": totals.output_tokens + event.output_tokens,
                "cost": totals.cost + (event.cost or 0.0),
                "total_time": totals.total_time + _turn_time(turn, event.at),
            }
        ),
    )


def _execution_failed(state: InstanceState, event: ExecutionFailed) -> InstanceState:
    core = state.core
    if core.status not in TURN_STATUSES:
        raise IllegalTransition(
            core.status.value, _S.ERROR.value, "no turn is running (status_changed sets an error)"
        )
    turn = core.turn
    totals = core.totals
    return _evolve(
        state,
        event.at,
        status=_S.ERROR,
        error=event.error,
        turn=replace(turn, ended_at=event.at),
        totals=totals.model_copy(
            update={
                "failed": totals.failed + 1,
                "total_time": totals.total_time + _turn_time(turn, event.at),
            }
        ),
    )


def _attempt_retrying(state: InstanceState, event: AttemptRetrying) -> InstanceState:
    core = state.core
    if core.status not in TURN_STATUSES:
        raise IllegalTransition(core.status.value, _S.EXECUTING.value, "no turn is running")
    return InstanceState(
        replace(
            core,
            status=_S.EXECUTING,
            error=None,
            turn=Turn(task_id=event.task_id, started_at=event.at),
        ),
        StreamView([]),
        event.at,
    )


def _execution_cancelled(state: InstanceState, event: ExecutionCancelled) -> InstanceState:
    core = state.core
    if core.status not in TURN_STATUSES:
        raise IllegalTransition(core.status.value, _S.ERROR.value, "no turn is running")
    turn = core.turn
    partial = ConversationMessage(
        role="assistant",
        content=state.stream.text,
        task_id=turn.task_id,
        partial=True,
        created_at=event.at,
    )
    totals = core.totals
    return _evolve(
        state,
        event.at,
        status=_S.ERROR,
        error=event.error,
        messages=(*core.messages, partial),
        turn=replace(turn, ended_at=event.at),
        totals=totals.model_copy(
            update={"total_time": totals.total_time + _turn_time(turn, event.at)}
        ),
    )


def _user_turn_failed(state: InstanceState, event: UserTurnFailed) -> InstanceState:
    core = state.core
    if core.status in TURN_STATUSES and core.turn.task_id == event.task_id:
        raise IllegalTransition(
            core.status.value, core.status.value, f"task {event.task_id!r} is still running"
        )
    found = False
    messages = []
    for message in core.messages:
        if message.role == "user" and message.task_id == event.task_id:
            found = True
            message = message.model_copy(update={"failed": True, "error": event.error})
        messages.append(message)
    if not found:
        raise InvalidInput(f"task_id: no user message belongs to task {event.task_id!r}")
    return _evolve(state, event.at, messages=tuple(messages))


# -- run tracking and UI ------------------------------------------------------------------


def _check_saved_count(state: InstanceState, count: int) -> None:
    if count > len(state.core.messages):
        raise InvalidInput(
            f"saved_message_count: {count} is more than the {len(state.core.messages)} "
            "messages of the conversation"
        )


def _run_linked(state: InstanceState, event: RunLinked) -> InstanceState:
    core = state.core
    if not core.config.track_in_runs:
        raise InvalidInput(f"run_id: instance {core.instance_id!r} has track_in_runs off")
    if core.run.run_id not in (None, event.run_id):
        raise InvalidInput(
            f"run_id: instance {core.instance_id!r} is already linked to run {core.run.run_id!r}"
        )
    _check_saved_count(state, event.saved_message_count)
    run = RunTracking(
        run_id=event.run_id,
        run_name=event.run_name,
        saved_message_count=event.saved_message_count,
    )
    return _evolve(state, event.at, run=run)


def _run_saved(state: InstanceState, event: RunSaved) -> InstanceState:
    core = state.core
    if core.run.run_id is None:
        raise InvalidInput(f"run_saved: instance {core.instance_id!r} is not linked to a run")
    _check_saved_count(state, event.saved_message_count)
    run = core.run.model_copy(update={"saved_message_count": event.saved_message_count})
    return _evolve(state, event.at, run=run)


def _expanded_variable_set(state: InstanceState, event: ExpandedVariableSet) -> InstanceState:
    ui = state.core.ui.model_copy(update={"expanded_variable": event.name})
    return _evolve(state, event.at, ui=ui)


def _show_variables_toggled(state: InstanceState, event: ShowVariablesToggled) -> InstanceState:
    ui = state.core.ui
    return _evolve(
        state, event.at, ui=ui.model_copy(update={"show_variables": not ui.show_variables})
    )


_HANDLERS: dict[type[EventBase], Callable[[InstanceState, Any], InstanceState]] = {
    InstanceCreated: _instance_created,
    StatusChanged: _status_changed,
    InstanceReset: _instance_reset,
    InstanceRestored: _instance_restored,
    VariableUpdated: _variable_updated,
    VariablesUpdated: _variables_updated,
    VariableCleared: _variable_cleared,
    ScopedVariablesSet: _scoped_variables_set,
    ActionValuesSet: _action_values_set,
    BrokerValuesSet: _broker_values_set,
    ComputedValuesSet: _computed_values_set,
    SettingsUpdated: _settings_updated,
    InputSet: _input_set,
    MessageAdded: _message_added,
    ConversationCleared: _conversation_cleared,
    ResourcesSet: _resources_set,
    ExecutionStarted: _execution_started,
    StreamingStarted: _streaming_started,
    ExecutionCompleted: _execution_completed,
    ExecutionFailed: _execution_failed,
    AttemptRetrying: _attempt_retrying,
    ExecutionCancelled: _execution_cancelled,
    UserTurnFailed: _user_turn_failed,
    RunLinked: _run_linked,
    RunSaved: _run_saved,
    ExpandedVariableSet: _expanded_variable_set,
    ShowVariablesToggled: _show_variables_toggled,
}

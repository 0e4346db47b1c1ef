"""Properties of the reducer over random sequences of legal and illegal events."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from promptactors import _exceptions as exc
from promptactors.messages import (
    ActionValuesSet,
    BrokerValuesSet,
    ComputedValuesSet,
    ConversationCleared,
    ConversationMessage,
    Event,
    ExecutionCompleted,
    ExecutionConfig,
    ExecutionFailed,
    ExecutionInstance,
    ExecutionStarted,
    ExpandedVariableSet,
    InputSet,
    InstanceCreated,
    InstanceReset,
    InstanceRestored,
    MessageAdded,
    PromptDefinition,
    PromptMessage,
    ResourcesSet,
    RunLinked,
    RunSaved,
    ScopedValues,
    ScopedVariablesSet,
    SettingsUpdated,
    ShowVariablesToggled,
    StatusChanged,
    StreamDelta,
    StreamingStarted,
    UserTurnFailed,
    VariableCleared,
    VariableDefault,
    VariablesUpdated,
    VariableUpdated,
)
from promptactors.state import (
    TURN_STATUSES,
    InstanceState,
    export_journal,
    import_journal,
    reduce,
    replay,
    snapshot,
    streaming_text,
)

PROMPT = PromptDefinition(
    id="prompt-p",
    messages=(
        PromptMessage(role="system", content="You are {{persona}}."),
        PromptMessage(role="user", content="Tell {{name}} about {{ topic }}."),
    ),
    variables=(
        VariableDefault(name="persona", default="terse"),
        VariableDefault(name="topic", default="owls"),
        VariableDefault(name="name"),
    ),
    settings={"model": "sim"},
)

REFUSALS = (exc.IllegalTransition, exc.ChatNotAllowed, exc.MissingVariables, exc.InvalidInput)

NAMES = st.sampled_from(["name", "topic", "persona", "extra"])
VALUES = st.text(alphabet="ab {}", max_size=6)
LAYER = st.dictionaries(NAMES, VALUES, max_size=3)
TASKS = st.sampled_from(["t1", "t2", "t3"])
USER_TEXT = st.sampled_from(["hi", "about {{name}}", "{{missing}}?", ""])
STATUSES = st.sampled_from(["idle", "initializing", "ready", "executing", "error", "completed"])

Spec = tuple[Any, dict[str, Any]]


def _spec(kind: Any, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Spec]:
    return st.tuples(st.just(kind), st.fixed_dictionaries(fields))


TURN = [
    _spec(ExecutionStarted, task_id=TASKS, user_message=st.none() | USER_TEXT),
    _spec(StreamingStarted),
    _spec(StreamDelta, text=st.text(alphabet="xy {}", max_size=4), chunks=st.integers(0, 3)),
    _spec(StreamDelta, text=st.just("tok")),
    _spec(ExecutionCompleted, output_tokens=st.integers(0, 9), cost=st.none() | st.just(0.5)),
]
OTHER = [
    _spec(StatusChanged, status=STATUSES, error=st.none() | st.just("oops")),
    _spec(ExecutionFailed, error=st.just("boom")),
    _spec(UserTurnFailed, task_id=TASKS),
    _spec(VariableUpdated, name=NAMES, value=VALUES),
    _spec(VariablesUpdated, values=LAYER),
    _spec(VariableCleared, name=NAMES),
    _spec(ScopedVariablesSet, scoped_values=st.builds(ScopedValues, project=LAYER, user=LAYER)),
    _spec(ActionValuesSet, values=LAYER),
    _spec(BrokerValuesSet, values=LAYER),
    _spec(ComputedValuesSet, values=LAYER),
    _spec(
        SettingsUpdated, settings=st.dictionaries(st.sampled_from("ab"), st.integers(), max_size=2)
    ),
    _spec(InputSet, text=USER_TEXT),
    _spec(
        MessageAdded,
        message=st.builds(
            ConversationMessage, role=st.sampled_from(["user", "assistant"]), content=USER_TEXT
        ),
    ),
    _spec(ConversationCleared),
    _spec(ResourcesSet, resources=st.lists(st.integers(), max_size=2).map(tuple)),
    _spec(InstanceReset),
    _spec(RunLinked, run_id=st.sampled_from(["r1", "r2"]), saved_message_count=st.integers(0, 3)),
    _spec(RunSaved, saved_message_count=st.integers(0, 4)),
    _spec(ExpandedVariableSet, name=st.none() | NAMES),
    _spec(ShowVariablesToggled),
    _spec(InstanceCreated, instance_id=st.just("again"), prompt=st.just(PROMPT)),
    _spec("restore"),
]
ADVANCE = _spec("advance", finish=st.integers(0, 3))
SPECS = st.one_of(ADVANCE, ADVANCE, ADVANCE, ADVANCE, ADVANCE, *TURN, *OTHER)
CONFIGS = st.builds(
    ExecutionConfig,
    allow_chat=st.booleans(),
    apply_variables=st.booleans(),
    track_in_runs=st.booleans(),
)


def _advance(state: InstanceState, finish: int, at: float) -> Event:
    """The event that moves the current turn (or the setup) one step forward."""
    match state.status:
        case "idle":
            return StatusChanged(status="initializing", at=at)
        case "initializing":
            return StatusChanged(status="ready", at=at)
        case "executing":
            return StreamingStarted(at=at)
        case "streaming":
            if finish == 0:
                return ExecutionCompleted(output_tokens=3, at=at)
            return StreamDelta(text=f"<{at:g}>", at=at)
        case _:
            return ExecutionStarted(task_id=f"t{int(at) % 3 + 1}", user_message="next", at=at)


def _build(spec: Spec, state: InstanceState, at: float) -> Event:
    kind, fields = spec
    if kind == "restore":
        return InstanceRestored(instance=snapshot(state), at=at)
    if kind == "advance":
        return _advance(state, fields["finish"], at)
    event: Event = kind(at=at, **fields)
    return event


def _start(config: ExecutionConfig, name: str | None) -> list[Event]:
    values = {"name": name} if name is not None else {}
    return [
        InstanceCreated(
            instance_id="inst-p",
            prompt=PROMPT,
            execution_config=config,
            user_values=values,
            at=0.0,
        ),
        StatusChanged(status="initializing", at=0.1),
        StatusChanged(status="ready", at=0.2),
    ]


def _expected_text(previous: str, event: Event, state: InstanceState) -> str:
    if isinstance(event, ExecutionStarted | ConversationCleared | InstanceReset):
        return ""
    if isinstance(event, StreamDelta):
        return previous + event.text
    if isinstance(event, InstanceRestored):
        return event.instance.execution.streaming_text
    return previous


def _check_invariants(state: InstanceState, expected_text: str) -> None:
    core = state.core
    assert core.run.saved_message_count <= len(core.messages)
    assert core.totals.executions >= core.totals.completed + core.totals.failed
    if core.status in TURN_STATUSES:
        assert core.turn.task_id is not None
    assert streaming_text(state) == expected_text
    assert state.stream.chars == len(expected_text)


@settings(max_examples=150, deadline=None)
@given(
    config=CONFIGS,
    name=st.sampled_from(["Ada", "Ada", "Ada", None]),
    steps=st.lists(SPECS, min_size=10, max_size=50),
)
def test_random_event_sequences_keep_the_reducer_invariants(
    config: ExecutionConfig, name: str | None, steps: list[Spec]
) -> None:
    """Refused events change nothing, accepted ones never change their input state, every
    past state keeps its snapshot, and the journal replays (also after an export) to the
    same snapshot."""
    journal = _start(config, name)
    state = replay(journal)
    history: list[tuple[InstanceState, ExecutionInstance]] = [(state, snapshot(state))]
    text = ""
    for index, spec in enumerate(steps, start=1):
        event = _build(spec, state, at=float(index))
        before = history[-1][1]
        try:
            new = reduce(state, event)
        except REFUSALS:
            assert snapshot(state) == before
            continue
        assert snapshot(state) == before
        text = _expected_text(text, event, new)
        _check_invariants(new, text)
        journal.append(event)
        state = new
        history.append((state, snapshot(state)))

    final = history[-1][1]
    for past, taken in history:
        assert snapshot(past) == taken
    assert snapshot(replay(journal)) == final
    assert snapshot(replay(import_journal(export_journal(journal)))) == final
    assert snapshot(reduce(None, InstanceRestored(instance=final, at=99.0))) == final
    assert ExecutionInstance.model_validate_json(final.model_dump_json()) == final


@settings(max_examples=100, deadline=None)
@given(
    pieces=st.lists(st.text(max_size=5), min_size=1, max_size=12),
    forks=st.lists(st.tuples(st.integers(0, 11), st.text(max_size=3)), max_size=6),
)
def test_deltas_applied_to_past_states_branch_without_disturbing_them(
    pieces: list[str], forks: list[tuple[int, str]]
) -> None:
    """Applying a delta to any earlier streaming state gives that state's text plus the
    delta, and every other state still reads its own text."""
    state = replay(_start(ExecutionConfig(apply_variables=False), None))
    state = reduce(state, ExecutionStarted(task_id="t1", at=1.0))
    state = reduce(state, StreamingStarted(at=1.1))
    states = [state]
    for piece in pieces:
        states.append(reduce(states[-1], StreamDelta(text=piece, at=2.0)))
    texts = [streaming_text(s) for s in states]
    for position, extra in forks:
        base = states[position % len(states)]
        branch = reduce(base, StreamDelta(text=extra, at=3.0))
        assert streaming_text(branch) == streaming_text(base) + extra
        states.append(branch)
        texts.append(streaming_text(branch))
    assert [streaming_text(s) for s in states] == texts

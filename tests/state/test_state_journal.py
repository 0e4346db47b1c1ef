"""The journal: replay, export and import of events, and snapshot diffs."""

from __future__ import annotations

import json

import pytest

from promptactors import _exceptions as exc
from promptactors.messages import (
    Event,
    ExecutionCompleted,
    ExecutionConfig,
    ExecutionStarted,
    FieldChange,
    InstanceCreated,
    PromptDefinition,
    RunLinked,
    StatusChanged,
    StreamDelta,
    StreamingStarted,
    VariableUpdated,
)
from promptactors.state import (
    JOURNAL_FORMAT,
    JOURNAL_VERSION,
    InstanceState,
    diff,
    export_journal,
    import_journal,
    reduce,
    replay,
    snapshot,
)


def _journal(prompt: PromptDefinition) -> list[Event]:
    return [
        InstanceCreated(
            instance_id="inst-1",
            prompt=prompt,
            execution_config=ExecutionConfig(show_variables=True),
            user_values={"text": "report"},
            computed_values={"current_date": "2024-01-15"},
            at=1.0,
        ),
        StatusChanged(status="initializing", at=1.1),
        StatusChanged(status="ready", at=1.2),
        ExecutionStarted(task_id="t1", user_message="go", at=2.0),
        StreamingStarted(at=2.5),
        StreamDelta(text="Hello", chunks=2, at=2.6),
        StreamDelta(text=" world", at=2.7),
        ExecutionCompleted(input_tokens=5, output_tokens=3, cost=0.01, at=3.0),
        RunLinked(run_id="run-1", saved_message_count=2, at=3.1),
        VariableUpdated(name="text", value="{{not expanded}}", at=4.0),
    ]


def test_replay_yields_the_state_the_events_built(prompt: PromptDefinition) -> None:
    """Replaying a journal gives the same snapshot as reducing the events one by one."""
    events = _journal(prompt)
    state: InstanceState | None = None
    for event in events:
        state = reduce(state, event)
    assert state is not None
    assert snapshot(replay(events)) == snapshot(state)


def test_replay_continues_from_an_initial_state(prompt: PromptDefinition) -> None:
    """A journal's suffix replayed on the state of its prefix gives the whole journal's state."""
    events = _journal(prompt)
    middle = replay(events[:5])
    assert snapshot(replay(events[5:], middle)) == snapshot(replay(events))


def test_an_exported_journal_imports_to_the_same_events(prompt: PromptDefinition) -> None:
    """Export then import round-trips every event, and replays to the same state."""
    events = _journal(prompt)
    text = export_journal(events)
    document = json.loads(text)
    assert (document["format"], document["version"]) == (JOURNAL_FORMAT, JOURNAL_VERSION)
    imported = import_journal(text)
    assert imported == events
    assert snapshot(replay(imported)) == snapshot(replay(events))


def test_importing_a_document_of_another_version_is_invalid(prompt: PromptDefinition) -> None:
    """A journal of an unknown version is refused with InvalidInput naming the field."""
    document = json.loads(export_journal(_journal(prompt)))
    document["version"] = 99
    with pytest.raises(exc.InvalidInput, match="version"):
        import_journal(json.dumps(document))


def test_importing_a_malformed_event_is_invalid(prompt: PromptDefinition) -> None:
    """An invalid event inside a journal is InvalidInput naming where it is."""
    document = json.loads(export_journal(_journal(prompt)))
    document["events"][3]["task_id"] = ""
    with pytest.raises(exc.InvalidInput, match=r"events\.3"):
        import_journal(json.dumps(document))


def test_importing_text_that_is_not_json_is_invalid() -> None:
    """Garbage is InvalidInput, not a pydantic or JSON error."""
    with pytest.raises(exc.InvalidInput):
        import_journal(b"\x00not json")


def test_a_failing_replay_says_which_event_failed(prompt: PromptDefinition) -> None:
    """The exception of a refused event carries a note naming its position and type."""
    events = _journal(prompt)
    events.insert(3, StreamDelta(text="too early", at=1.5))
    with pytest.raises(exc.IllegalTransition) as info:
        replay(events)
    assert "#3 ('stream_delta')" in "".join(info.value.__notes__)


def test_replaying_nothing_is_invalid() -> None:
    """Without events and without an initial state there is no state to return."""
    with pytest.raises(exc.InvalidInput, match="no events"):
        replay([])


def test_diff_reports_the_fields_an_event_changed(prompt: PromptDefinition) -> None:
    """A variable update shows as that variable and updated_at; nothing else."""
    events = _journal(prompt)
    before = snapshot(replay(events[:-1]))
    after = snapshot(replay(events))
    assert diff(before, after) == (
        FieldChange(path="updated_at", kind="changed", before=3.1, after=4.0),
        FieldChange(
            path="variables.user_values.text",
            kind="changed",
            before="report",
            after="{{not expanded}}",
        ),
    )


def test_diff_reports_added_list_items_and_keys(prompt: PromptDefinition) -> None:
    """An appended message is one added item; a new variable one added key."""
    events = _journal(prompt)
    before = snapshot(replay(events[:7]))
    after = snapshot(replay(events[:8]))
    changes = {change.path: change for change in diff(before, after)}
    assert changes["conversation.messages[1]"].kind == "added"
    assert changes["conversation.messages[1]"].after["content"] == "Hello world"  # type: ignore[index,call-overload]
    extra = reduce(replay(events), VariableUpdated(name="tone", value="dry", at=5.0))
    added = diff(after, snapshot(extra))
    assert FieldChange(path="variables.user_values.tone", kind="added", after="dry") in added
    assert diff(before, before) == ()
    removed = diff(snapshot(extra), after)
    assert FieldChange(path="variables.user_values.tone", kind="removed", before="dry") in removed

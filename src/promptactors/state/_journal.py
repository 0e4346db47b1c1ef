"""The journal of an instance: replay, export and import of its events, and snapshot diffs.

Every state of an instance is the replay of its events, so the event list is a complete,
portable record (the Redux DevTools "time travel"): export it to reproduce a bug
elsewhere, replay a prefix to see the state at any step, diff two snapshots to see what
an event changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import JsonValue, ValidationError

from promptactors._exceptions import InvalidInput, PromptActorsError
from promptactors.messages import (
    Event,
    ExecutionInstance,
    FieldChange,
    Frozen,
    describe_validation_error,
)

from ._reducer import reduce

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from ._state import InstanceState

__all__ = [
    "JOURNAL_FORMAT",
    "JOURNAL_VERSION",
    "diff",
    "export_journal",
    "import_journal",
    "replay",
]

JOURNAL_FORMAT = "promptactors.journal"
"""The ``format`` tag of an exported journal."""

JOURNAL_VERSION = 1
"""The version of the exported journal format this code reads and writes."""


class _JournalFile(Frozen):
    format: Literal["promptactors.journal"] = "promptactors.journal"
    version: Literal[1] = 1
    events: tuple[Event, ...]


def replay(events: Iterable[Event], initial: InstanceState | None = None) -> InstanceState:
    """The state after applying ``events`` in order to ``initial`` (None: from nothing).

    Raises what :func:`reduce` raises, with a note saying which event failed, and
    ``InvalidInput`` when there is neither an event nor an initial state.
    """
    state = initial
    for index, event in enumerate(events):
        try:
            state = reduce(state, event)
        except PromptActorsError as exc:
            exc.add_note(f"while replaying event #{index} ({event.type!r})")
            raise
    if state is None:
        raise InvalidInput("events: no events to replay and no initial state")
    return state


def export_journal(events: Iterable[Event], *, indent: int | None = None) -> str:
    """The events as a JSON document ``{"format", "version", "events"}``."""
    return _JournalFile(events=tuple(events)).model_dump_json(indent=indent)


def import_journal(data: str | bytes) -> list[Event]:
    """The events of a JSON document written by :func:`export_journal`.

    Raises ``InvalidInput`` naming the first problems when the document is not a journal
    of this version or an event is invalid.
    """
    try:
        journal = _JournalFile.model_validate_json(data)
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error("journal", exc)) from exc
    return list(journal.events)


def diff(before: ExecutionInstance, after: ExecutionInstance) -> tuple[FieldChange, ...]:
    """Every field that differs between two snapshots, in field order.

    Maps are compared key by key and lists item by item, so appending a message reports
    one added item, and changing a variable reports that variable.
    """
    return tuple(_diff("", before.model_dump(mode="json"), after.model_dump(mode="json")))


def _diff(path: str, before: JsonValue, after: JsonValue) -> Iterator[FieldChange]:
    if before == after:
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in (*before, *(k for k in after if k not in before)):
            where = f"{path}.{key}" if path else key
            if key not in after:
                yield FieldChange(path=where, kind="removed", before=before[key])
            elif key not in before:
                yield FieldChange(path=where, kind="added", after=after[key])
            else:
                yield from _diff(where, before[key], after[key])
    elif isinstance(before, list) and isinstance(after, list):
        for index in range(max(len(before), len(after))):
            where = f"{path}[{index}]"
            if index >= len(after):
                yield FieldChange(path=where, kind="removed", before=before[index])
            elif index >= len(before):
                yield FieldChange(path=where, kind="added", after=after[index])
            else:
                yield from _diff(where, before[index], after[index])
    else:
        yield FieldChange(path=path, kind="changed", before=before, after=after)

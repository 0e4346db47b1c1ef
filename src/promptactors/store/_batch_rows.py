"""What the set-based batch writers of SQLite and PostgreSQL share: the columns of a run
and of a run update as one row each, and the grouping of a batch into rounds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterable

    from ._records import CreateRun, UpdateRun

__all__ = ["in_rounds", "run_row", "update_row"]

T = TypeVar("T")


def run_row(op: CreateRun) -> list[Any]:
    """A new run's id, prompt, source, instance, name, messages, variables, settings (JSON
    text), message count, executor and owner; each writer appends its own columns."""
    return [
        op.run_id,
        op.prompt_id,
        op.prompt_source,
        op.instance_id,
        op.name,
        *op.json,
        len(op.messages),
        op.executor_id,
        op.owner_id,
    ]


def update_row(op: UpdateRun) -> tuple[Any, ...]:
    """A run update's id, status, error, name, messages (JSON text), message count,
    variables (JSON text) and whether it releases the run's claim."""
    return (
        op.run_id,
        op.status,
        op.error,
        op.name,
        op.messages_json,
        None if op.messages is None else len(op.messages),
        op.variables_json,
        op.release,
    )


def in_rounds(items: Iterable[T], key: Callable[[T], Hashable]) -> list[list[T]]:
    """``items`` in rounds that each hold at most one item per ``key``, each key's items
    in their given order: writes of different runs commute, so a round can be written kind
    by kind, one statement each, whatever the order in which the kinds interleave."""
    seen: dict[Hashable, int] = {}
    rounds: list[list[T]] = []
    for item in items:
        k = key(item)
        index = seen[k] = seen.get(k, -1) + 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(item)
    return rounds

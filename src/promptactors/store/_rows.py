"""Turn database rows (``sqlite3.Row`` or ``asyncpg.Record``) into records.

The two drivers differ in how JSON and timestamps arrive: SQLite gives text, asyncpg
decoded values. A :class:`Decoder` hides that difference.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

from promptactors._exceptions import StoreError

from ._records import (
    ActionRecord,
    PromptMessageRow,
    PromptRecord,
    PromptSource,
    RunRecord,
    RunStats,
    RunStatus,
    TaskRecord,
    TaskStatus,
    VariableDefaultRow,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["Decoder", "Row", "action_from_row", "prompt_from_row", "run_from_row", "task_from_row"]


class Row(Protocol):
    """What both drivers' rows offer: lookup by column name."""

    def __getitem__(self, key: str, /) -> Any: ...


class Decoder:
    """How one driver delivers JSON columns and timestamps."""

    __slots__ = ("json", "time")

    def __init__(self, json: Callable[[Any], Any], time: Callable[[Any], datetime | None]) -> None:
        self.json = json
        self.time = time


def _sqlite_time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _same(value: Any) -> Any:
    return value


def _pg_time(value: Any) -> datetime | None:
    return None if value is None else cast("datetime", value).astimezone(UTC)


SQLITE = Decoder(json.loads, _sqlite_time)
POSTGRES = Decoder(_same, _pg_time)


def _guard(kind: str, row: Row, build: Callable[[], Any]) -> Any:
    try:
        return build()
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"malformed {kind} row {row['id']!r} in the database: {exc}") from exc


def prompt_from_row(row: Row, d: Decoder) -> PromptRecord:
    """A prompt or prompt builtin row as a record."""

    def build() -> PromptRecord:
        defaults = d.json(row["variable_defaults"])
        return PromptRecord(
            id=row["id"],
            name=row["name"],
            description=row["description"],
            messages=tuple(
                PromptMessageRow(m["role"], m["content"]) for m in d.json(row["messages"])
            ),
            variable_defaults=tuple(
                VariableDefaultRow(v["name"], v.get("default_value"), v.get("help_text"))
                for v in defaults
            ),
            settings=d.json(row["settings"]),
            created_at=d.time(row["created_at"]),
            updated_at=d.time(row["updated_at"]),
        )

    return cast("PromptRecord", _guard("prompt", row, build))


def action_from_row(row: Row, d: Decoder) -> ActionRecord:
    """A prompt action row as a record."""

    def build() -> ActionRecord:
        return ActionRecord(
            id=row["id"],
            name=row["name"],
            prompt_id=row["prompt_id"],
            prompt_source=cast("PromptSource", row["prompt_source"]),
            broker_mappings=d.json(row["broker_mappings"]),
            optional_variables=frozenset(d.json(row["optional_variables"])),
            hardcoded_values=d.json(row["hardcoded_values"]),
            execution_config=d.json(row["execution_config"]),
            created_at=d.time(row["created_at"]),
            updated_at=d.time(row["updated_at"]),
        )

    return cast("ActionRecord", _guard("action", row, build))


def run_from_row(row: Row, d: Decoder) -> RunRecord:
    """A run row as a record."""

    def build() -> RunRecord:
        return RunRecord(
            id=row["id"],
            status=cast("RunStatus", row["status"]),
            prompt_id=row["prompt_id"],
            prompt_source=cast("PromptSource", row["prompt_source"]),
            instance_id=row["instance_id"],
            name=row["name"],
            messages=tuple(d.json(row["messages"])),
            variables=d.json(row["variables"]),
            settings=d.json(row["settings"]),
            stats=RunStats(
                message_count=row["message_count"],
                task_count=row["task_count"],
                input_tokens=row["input_tokens"],
                output_tokens=row["output_tokens"],
                cached_tokens=row["cached_tokens"],
                total_tokens=row["total_tokens"],
                total_cost=float(row["total_cost"]),
            ),
            error=row["error"],
            executor_id=row["executor_id"],
            version=row["version"],
            owner_id=row["owner_id"],
            fence=row["fence"],
            takeovers=row["takeovers"],
            lease_expires_at=d.time(row["lease_expires_at"]),
            heartbeat_at=d.time(row["heartbeat_at"]),
            created_at=d.time(row["created_at"]),
            updated_at=d.time(row["updated_at"]),
        )

    return cast("RunRecord", _guard("run", row, build))


def task_from_row(row: Row, d: Decoder) -> TaskRecord:
    """A task row as a record."""

    def build() -> TaskRecord:
        return TaskRecord(
            id=row["id"],
            run_id=row["run_id"],
            status=cast("TaskStatus", row["status"]),
            provider=row["provider"],
            model=row["model"],
            attempt=row["attempt"],
            instance_id=row["instance_id"],
            request=tuple(d.json(row["request"])),
            response_text=row["response_text"],
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            cached_tokens=row["cached_tokens"],
            usage_source=row["usage_source"],
            cost=row["cost"],
            time_to_first_token=row["time_to_first_token"],
            total_time=row["total_time"],
            finish_reason=row["finish_reason"],
            error=row["error"],
            created_at=d.time(row["created_at"]),
            updated_at=d.time(row["updated_at"]),
            completed_at=d.time(row["completed_at"]),
        )

    return cast("TaskRecord", _guard("task", row, build))


def prompt_json(
    prompt: PromptRecord,
) -> tuple[list[dict[str, str]], list[dict[str, Any]], dict[str, Any]]:
    """The JSON columns of a prompt: messages, variable defaults, settings."""
    return (
        [{"role": m.role, "content": m.content} for m in prompt.messages],
        [
            {"name": v.name, "default_value": v.default_value, "help_text": v.help_text}
            for v in prompt.variable_defaults
        ],
        dict(prompt.settings),
    )


def broker_pick(
    rows: list[tuple[str, str, str, str]], context: Mapping[str, str]
) -> dict[str, str]:
    """The most specific value per broker of ``(broker_id, kind, scope_id, value)`` rows."""
    standard = ("project", "org", "user")
    order = (
        [k for k in context if k not in standard]
        + [k for k in standard if k in context]
        + ["global"]
    )
    rank = {kind: i for i, kind in enumerate(order)}
    best: dict[str, tuple[int, str]] = {}
    for broker_id, kind, scope_id, value in rows:
        if kind == "global" or context.get(kind) == scope_id:
            r = rank[kind]
            if broker_id not in best or r < best[broker_id][0]:
                best[broker_id] = (r, value)
    return {broker_id: value for broker_id, (_, value) in best.items()}

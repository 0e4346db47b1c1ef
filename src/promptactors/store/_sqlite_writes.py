"""Batched writes on SQLite, run on the store's thread inside one transaction.

SQLite is in-process, so each operation is a few statements; a replay is detected by
``ON CONFLICT DO NOTHING`` (or the task's status) and compared with the stored row.
Fences are checked once the creates are in, before anything else is written: every stale
operation is listed in one ``StaleFence``. The store's single writer (``BEGIN IMMEDIATE``)
keeps a claim from slipping between the check and the writes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from promptactors._exceptions import NotFound, RunInUse, RunNotFound, StaleFence, StoreConflict

from ._records import (
    CreateRun,
    CreateTask,
    FailTask,
    Fenced,
    FinishTurn,
    InterruptTask,
    Ownership,
    Plan,
    UpdateRun,
    plain,
    stale_claim_message,
    task_conflict_message,
    task_op_settled,
)
from ._rows import SQLITE

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterator, Sequence

__all__ = ["CHUNK", "apply_batch", "chunks", "marks", "now", "own_run", "shifted"]


def now() -> str:
    """The current UTC time as stored: ISO-8601 text with microseconds (sorts as text)."""
    return shifted(0.0)


def shifted(seconds: float) -> str:
    """The UTC time ``seconds`` from now (negative: ago), as stored."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="microseconds")


def own_run(conn: sqlite3.Connection, op: Ownership) -> int:
    """Apply a claim (returns the new fence), a release (1 if freed, else 0) or a renewal
    (0) inside the caller's write transaction; see ``Store.claim_run`` for what raises."""
    at = now()
    row = conn.execute(
        "SELECT owner_id, fence, lease_expires_at FROM ai_runs WHERE id = ?", (op.run_id,)
    ).fetchone()
    if op.kind == "release":
        if row is None or (row[0], row[1]) != (op.owner_id, op.fence):
            return 0
        conn.execute(
            "UPDATE ai_runs SET owner_id = NULL, lease_expires_at = NULL, updated_at = ?"
            " WHERE id = ?",
            (at, op.run_id),
        )
        return 1
    if row is None:
        raise RunNotFound(op.run_id)
    owner, fence, expires = row[0], row[1], row[2]
    lease = None if op.lease_seconds is None else shifted(op.lease_seconds)
    if op.kind == "renew":
        if (owner, fence) != (op.owner_id, op.fence):
            raise StoreConflict(stale_claim_message(op, owner, fence))
        conn.execute(
            "UPDATE ai_runs SET lease_expires_at = ?, updated_at = ? WHERE id = ?",
            (lease, at, op.run_id),
        )
        return 0
    if owner is not None and owner != op.owner_id and (expires is None or expires > at):
        raise RunInUse(op.run_id, owner)
    conn.execute(
        "UPDATE ai_runs SET owner_id = ?, fence = fence + 1, lease_expires_at = ?,"
        " updated_at = ? WHERE id = ?",
        (op.owner_id, lease, at, op.run_id),
    )
    return int(fence) + 1


def apply_batch(conn: sqlite3.Connection, batch: Plan, fences: Fenced, now: str) -> None:
    """Apply a planned batch on ``conn``, inside the caller's transaction.

    Raises ``StaleFence`` listing every operation whose fence is not its run's.
    """
    for create_run in batch.create_runs:
        _create_run(conn, create_run, now)
    for create_task in batch.create_tasks:
        _create_task(conn, create_task, now)
    _check_fences(conn, fences)
    for op in batch.rest:
        if isinstance(op, UpdateRun):
            _update_run(conn, op, now)
        else:
            _task_op(conn, op, now)


def _create_run(conn: sqlite3.Connection, op: CreateRun, now: str) -> None:
    inserted = conn.execute(
        "INSERT INTO ai_runs (id, prompt_id, prompt_source, instance_id, name, messages,"
        " variables, settings, message_count, executor_id, heartbeat_at, created_at, updated_at,"
        " owner_id, fence, lease_expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO NOTHING",
        (
            op.run_id,
            op.prompt_id,
            op.prompt_source,
            op.instance_id,
            op.name,
            *op.json,
            len(op.messages),
            op.executor_id,
            now,
            now,
            now,
            op.owner_id,
            0 if op.owner_id is None else 1,
            None if op.lease_seconds is None else shifted(op.lease_seconds),
        ),
    ).rowcount
    if not inserted:
        row = conn.execute(
            "SELECT prompt_id, prompt_source, instance_id FROM ai_runs WHERE id = ?", (op.run_id,)
        ).fetchone()
        if tuple(row) != op.identity():
            raise StoreConflict(f"run {op.run_id!r} already exists with another prompt or instance")


def _check_fences(conn: sqlite3.Connection, fences: Fenced) -> None:
    # A missing run or task is left to its operation (RunNotFound, NotFound); a task
    # without a run has no fence to match.
    stale: list[tuple[int, str | None]] = []
    for index, run_id, fence in fences.by_run:
        row = conn.execute("SELECT fence FROM ai_runs WHERE id = ?", (run_id,)).fetchone()
        if row is not None and row[0] != fence:
            stale.append((index, run_id))
    for index, task_id, fence in fences.by_task:
        row = conn.execute(
            "SELECT t.run_id, r.fence FROM ai_tasks t LEFT JOIN ai_runs r ON r.id = t.run_id"
            " WHERE t.id = ?",
            (task_id,),
        ).fetchone()
        if row is not None and row[1] != fence:
            stale.append((index, row[0]))
    if stale:
        raise StaleFence(sorted(stale, key=lambda pair: pair[0]))


def _create_task(conn: sqlite3.Connection, op: CreateTask, now: str) -> None:
    if (
        op.run_id is not None
        and conn.execute("SELECT 1 FROM ai_runs WHERE id = ?", (op.run_id,)).fetchone() is None
    ):
        raise RunNotFound(op.run_id, f"run {op.run_id!r} of task {op.task_id!r} not found")
    inserted = conn.execute(
        "INSERT INTO ai_tasks (id, run_id, instance_id, attempt, provider, model, request,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        (
            op.task_id,
            op.run_id,
            op.instance_id,
            op.attempt,
            op.provider,
            op.model,
            op.request_json,
            now,
            now,
        ),
    ).rowcount
    if inserted:
        if op.run_id is not None:
            conn.execute(
                "UPDATE ai_runs SET task_count = task_count + 1, version = version + 1,"
                " updated_at = ? WHERE id = ?",
                (now, op.run_id),
            )
        return
    row = conn.execute(
        "SELECT run_id, attempt, provider, model, request FROM ai_tasks WHERE id = ?", (op.task_id,)
    ).fetchone()
    stored = (row[0], row[1], row[2], row[3], plain(SQLITE.json(row[4])))
    if stored != op.identity():
        raise StoreConflict(
            f"task {op.task_id!r} already exists with another run, attempt or request"
        )


def _task_op(conn: sqlite3.Connection, op: FinishTurn | FailTask | InterruptTask, now: str) -> None:
    row = conn.execute(
        "SELECT run_id, status, response_text, error, input_tokens, output_tokens FROM ai_tasks"
        " WHERE id = ?",
        (op.task_id,),
    ).fetchone()
    if row is None:
        raise NotFound(op.task_id, f"task {op.task_id!r} not found")
    run_id, status, text, error = row[0], row[1], row[2], row[3]
    extend = (
        isinstance(op, InterruptTask)
        and status == "interrupted"
        and op.response_text.startswith(text)
    )
    if status != "running" and not extend:
        if task_op_settled(op, status, text, error, (row[4], row[5])):
            return  # an idempotent replay
        raise StoreConflict(task_conflict_message(op, status))
    if isinstance(op, FinishTurn):
        conn.execute(
            "UPDATE ai_tasks SET status = 'completed', response_text = ?, input_tokens = ?,"
            " output_tokens = ?, cached_tokens = ?, usage_source = ?, cost = ?,"
            " time_to_first_token = ?, total_time = ?, finish_reason = ?, updated_at = ?,"
            " completed_at = ? WHERE id = ?",
            (
                op.response_text,
                op.input_tokens,
                op.output_tokens,
                op.cached_tokens,
                op.usage_source,
                op.cost,
                op.time_to_first_token,
                op.total_time,
                op.finish_reason,
                now,
                now,
                op.task_id,
            ),
        )
        if run_id is not None:
            messages = op.run_messages
            conn.execute(
                "UPDATE ai_runs SET messages = coalesce(?, messages),"
                " message_count = coalesce(?, message_count), input_tokens = input_tokens + ?,"
                " output_tokens = output_tokens + ?, cached_tokens = cached_tokens + ?,"
                " total_tokens = total_tokens + ?, total_cost = total_cost + ?,"
                " status = coalesce(?, status), version = version + 1, updated_at = ? WHERE id = ?",
                (
                    op.run_messages_json,
                    None if messages is None else len(messages),
                    op.input_tokens,
                    op.output_tokens,
                    op.cached_tokens,
                    op.input_tokens + op.output_tokens,
                    op.cost,
                    op.run_status,
                    now,
                    run_id,
                ),
            )
    elif isinstance(op, FailTask):
        conn.execute(
            "UPDATE ai_tasks SET status = 'failed', error = ?, response_text = ?, total_time = ?,"
            " updated_at = ?, completed_at = ? WHERE id = ?",
            (op.error, op.response_text, op.total_time, now, now, op.task_id),
        )
    else:
        conn.execute(
            "UPDATE ai_tasks SET status = 'interrupted', error = ?, response_text = ?,"
            " updated_at = ?, completed_at = coalesce(completed_at, ?) WHERE id = ?",
            (op.error, op.response_text, now, now, op.task_id),
        )


def _update_run(conn: sqlite3.Connection, op: UpdateRun, now: str) -> None:
    messages = op.messages
    changed = conn.execute(
        "UPDATE ai_runs SET status = coalesce(?, status), error = coalesce(?, error),"
        " name = coalesce(?, name), messages = coalesce(?, messages),"
        " message_count = coalesce(?, message_count), variables = coalesce(?, variables),"
        " version = version + 1, updated_at = ?,"
        " owner_id = CASE WHEN ? THEN NULL ELSE owner_id END,"
        " lease_expires_at = CASE WHEN ? THEN NULL ELSE lease_expires_at END WHERE id = ?",
        (
            op.status,
            op.error,
            op.name,
            op.messages_json,
            None if messages is None else len(messages),
            op.variables_json,
            now,
            op.release,
            op.release,
            op.run_id,
        ),
    ).rowcount
    if not changed:
        raise RunNotFound(op.run_id)


CHUNK = 500  # ids per IN (...) list, well under SQLite's parameter limit


def marks(n: int) -> str:
    """``n`` SQL parameter marks: ``?,?,?``."""
    return ",".join("?" * n)


def chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    """``items`` in slices of at most ``CHUNK``, for ``IN (...)`` lists."""
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]

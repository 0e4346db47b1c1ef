"""Batched writes on SQLite as a few set-based statements, like PostgreSQL's.

The store's writer is a thread of the runtime's process. Every SQLite step releases the
GIL and takes it back; while the event loop keeps the GIL busy (thousands of streaming
turns), taking it back waits, so a writer that spent a statement or three per operation
spent most of its time waiting, not writing (measured here: 4 s of the writer's CPU in
40 s of commits at 10,000 active turns). So a batch is a fixed handful of statements
whatever its size: each kind of operation is one statement over the batch's rows, passed
as one JSON array and read with ``json_each``; the stored rows an operation depends on
(replays, task states, fences) are read first, each read aggregated into one row.

The checks are the per-operation semantics of ``Store.apply``: a replay of the same
create is a no-op and of a different one ``StoreConflict``; a missing run or task raises
``RunNotFound`` or ``NotFound``; a task operation on a settled task is a no-op when it
repeats the outcome and ``StoreConflict`` otherwise; every stale fence is listed in one
``StaleFence``. They are decided in Python before anything but the creates is written,
following each run's operations in the batch's order, and any error rolls the whole
batch back (the caller's transaction).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from promptactors._exceptions import NotFound, RunNotFound, StaleFence, StoreConflict

from ._batch_rows import in_rounds, run_row, update_row
from ._records import (
    CreateRun,
    CreateTask,
    FailTask,
    Fenced,
    FinishTurn,
    InterruptTask,
    Plan,
    UpdateRun,
    plain,
)
from ._rows import SQLITE
from ._sqlite_writes import shifted
from ._task_outcomes import task_conflict_message, task_op_settled

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Sequence

__all__ = ["apply_batch"]

Rest = FinishTurn | FailTask | InterruptTask | UpdateRun


def _rows(rows: Sequence[Sequence[Any]]) -> str:
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":"))


def _one(conn: sqlite3.Connection, sql: str, params: dict[str, Any]) -> Any:
    """The single value of an aggregating query, decoded from JSON."""
    value = conn.execute(sql, params).fetchone()[0]
    return json.loads(value) if value is not None else None


def _columns(*names: str) -> str:
    """``json_extract(value, '$[i]') AS name, ...`` for the columns of a row array."""
    return ", ".join(f"json_extract(value, '$[{i}]') AS {name}" for i, name in enumerate(names))


def apply_batch(conn: sqlite3.Connection, batch: Plan, fences: Fenced, now: str) -> None:
    """Apply a planned batch on ``conn``, inside the caller's transaction.

    Raises ``StaleFence`` listing every operation whose fence is not its run's.
    """
    if batch.create_runs:
        _create_runs(conn, batch.create_runs, now)
    if batch.create_tasks:
        _create_tasks(conn, batch.create_tasks, now)
    if fences.by_run or fences.by_task:
        _check_fences(conn, fences)
    if batch.rest:
        _rest(conn, batch.rest, now)


# -- creates -----------------------------------------------------------------------------

_RUN_COLUMNS: Final = (
    "id",
    "prompt_id",
    "prompt_source",
    "instance_id",
    "name",
    "messages",
    "variables",
    "settings",
    "message_count",
    "executor_id",
    "owner_id",
    "lease_expires_at",
)
_CREATE_RUNS: Final = f"""
INSERT INTO ai_runs (id, prompt_id, prompt_source, instance_id, name, messages, variables,
                     settings, message_count, executor_id, heartbeat_at, created_at,
                     updated_at, owner_id, fence, lease_expires_at)
SELECT id, prompt_id, prompt_source, instance_id, name, messages, variables, settings,
       message_count, executor_id, :now, :now, :now, owner_id,
       CASE WHEN owner_id IS NULL THEN 0 ELSE 1 END, lease_expires_at
FROM (SELECT {_columns(*_RUN_COLUMNS)} FROM json_each(:rows)) WHERE true
ON CONFLICT (id) DO NOTHING
"""
_STORED_RUNS: Final = """
SELECT json_group_object(id, json_array(prompt_id, prompt_source, instance_id))
FROM ai_runs WHERE id IN (SELECT value FROM json_each(:ids))
"""


def _create_runs(conn: sqlite3.Connection, ops: list[CreateRun], now: str) -> None:
    ids = [op.run_id for op in ops]
    stored = _one(conn, _STORED_RUNS, {"ids": json.dumps(ids)}) or {}
    first: dict[str, CreateRun] = {}
    rows = []
    for op in ops:
        seen = first.get(op.run_id)
        if seen is not None or op.run_id in stored:
            identity = seen.identity() if seen is not None else tuple(stored[op.run_id])
            if identity != op.identity():
                raise StoreConflict(
                    f"run {op.run_id!r} already exists with another prompt or instance"
                )
            continue
        first[op.run_id] = op
        lease = None if op.lease_seconds is None else shifted(op.lease_seconds)
        rows.append([*run_row(op), lease])
    if rows:
        conn.execute(_CREATE_RUNS, {"rows": _rows(rows), "now": now})


_CREATE_TASKS: Final = f"""
INSERT INTO ai_tasks (id, run_id, instance_id, attempt, provider, model, request, created_at,
                      updated_at)
SELECT id, run_id, instance_id, attempt, provider, model, request, :now, :now
FROM (SELECT {_columns("id", "run_id", "instance_id", "attempt", "provider", "model", "request")}
      FROM json_each(:rows)) WHERE true
ON CONFLICT (id) DO NOTHING
"""
_STORED_TASKS: Final = """
SELECT json_group_object(id, json_array(run_id, attempt, provider, model, request))
FROM ai_tasks WHERE id IN (SELECT value FROM json_each(:ids))
"""
_MISSING_RUNS: Final = """
SELECT json_group_array(value) FROM json_each(:ids)
WHERE value NOT IN (SELECT id FROM ai_runs)
"""
_COUNT_TASKS: Final = f"""
UPDATE ai_runs SET task_count = ai_runs.task_count + d.n, version = ai_runs.version + 1,
    updated_at = :now
FROM (SELECT {_columns("id", "n")} FROM json_each(:rows)) AS d
WHERE ai_runs.id = d.id
"""


def _create_tasks(conn: sqlite3.Connection, ops: list[CreateTask], now: str) -> None:
    run_ids = list(dict.fromkeys(op.run_id for op in ops if op.run_id is not None))
    if run_ids and (missing := _one(conn, _MISSING_RUNS, {"ids": json.dumps(run_ids)})):
        gone = set(missing)
        for op in ops:
            if op.run_id is not None and op.run_id in gone:
                raise RunNotFound(op.run_id, f"run {op.run_id!r} of task {op.task_id!r} not found")
    stored = _one(conn, _STORED_TASKS, {"ids": json.dumps([op.task_id for op in ops])}) or {}
    first: dict[str, CreateTask] = {}
    rows = []
    counts: dict[str, int] = {}
    for op in ops:
        seen = first.get(op.task_id)
        if seen is not None or op.task_id in stored:
            if seen is not None:
                identity = seen.identity()
            else:
                run_id, attempt, provider, model, request = stored[op.task_id]
                identity = (run_id, attempt, provider, model, plain(SQLITE.json(request)))
            if identity != op.identity():
                raise StoreConflict(
                    f"task {op.task_id!r} already exists with another run, attempt or request"
                )
            continue
        first[op.task_id] = op
        rows.append(
            [
                op.task_id,
                op.run_id,
                op.instance_id,
                op.attempt,
                op.provider,
                op.model,
                op.request_json,
            ]
        )
        if op.run_id is not None:
            counts[op.run_id] = counts.get(op.run_id, 0) + 1
    if rows:
        conn.execute(_CREATE_TASKS, {"rows": _rows(rows), "now": now})
    if counts:
        conn.execute(_COUNT_TASKS, {"rows": _rows([[k, n] for k, n in counts.items()]), "now": now})


# -- fences ------------------------------------------------------------------------------

# A missing run or task is left to its operation (RunNotFound, NotFound). Only the stale
# operations come back, as one row.
_STALE_BY_RUN: Final = f"""
SELECT json_group_array(json_array(d.i, r.id))
FROM (SELECT {_columns("i", "run_id", "fence")} FROM json_each(:rows)) AS d
JOIN ai_runs r ON r.id = d.run_id
WHERE r.fence IS NOT d.fence
"""
_STALE_BY_TASK: Final = f"""
SELECT json_group_array(json_array(d.i, t.run_id))
FROM (SELECT {_columns("i", "task_id", "fence")} FROM json_each(:rows)) AS d
JOIN ai_tasks t ON t.id = d.task_id
LEFT JOIN ai_runs r ON r.id = t.run_id
WHERE r.fence IS NOT d.fence
"""


def _check_fences(conn: sqlite3.Connection, fences: Fenced) -> None:
    stale: list[tuple[int, str | None]] = []
    for sql, entries in ((_STALE_BY_RUN, fences.by_run), (_STALE_BY_TASK, fences.by_task)):
        if entries:
            found = _one(conn, sql, {"rows": _rows([list(entry) for entry in entries])})
            stale.extend((index, run_id) for index, run_id in found or ())
    if stale:
        raise StaleFence(sorted(stale, key=lambda pair: pair[0]))


# -- the rest: task outcomes and run updates -----------------------------------------------

_TASK_STATES: Final = """
SELECT json_group_object(id, json_array(run_id, status, response_text, error, input_tokens,
                                        output_tokens))
FROM ai_tasks WHERE id IN (SELECT value FROM json_each(:ids))
"""
_FOUND_RUNS: Final = """
SELECT json_group_array(id) FROM ai_runs WHERE id IN (SELECT value FROM json_each(:ids))
"""
_FINISH_TASKS: Final = f"""
UPDATE ai_tasks SET status = 'completed', response_text = d.text, input_tokens = d.input,
    output_tokens = d.output, cached_tokens = d.cached, usage_source = d.source, cost = d.cost,
    time_to_first_token = d.ttft, total_time = d.total, finish_reason = d.reason,
    updated_at = :now, completed_at = :now
FROM (SELECT {
    _columns("id", "text", "input", "output", "cached", "source", "cost", "ttft", "total", "reason")
} FROM json_each(:rows)) AS d
WHERE ai_tasks.id = d.id
"""
# Each run at most once per statement (see ``_round_key``).
_ADD_TURNS: Final = f"""
UPDATE ai_runs SET messages = coalesce(d.messages, ai_runs.messages),
    message_count = coalesce(d.message_count, ai_runs.message_count),
    input_tokens = ai_runs.input_tokens + d.input,
    output_tokens = ai_runs.output_tokens + d.output,
    cached_tokens = ai_runs.cached_tokens + d.cached,
    total_tokens = ai_runs.total_tokens + d.input + d.output,
    total_cost = ai_runs.total_cost + d.cost, status = coalesce(d.status, ai_runs.status),
    version = ai_runs.version + 1, updated_at = :now
FROM (SELECT {
    _columns("id", "messages", "message_count", "input", "output", "cached", "cost", "status")
} FROM json_each(:rows)) AS d
WHERE ai_runs.id = d.id
"""
_FAIL_TASKS: Final = f"""
UPDATE ai_tasks SET status = 'failed', error = d.error, response_text = d.text,
    total_time = d.total, updated_at = :now, completed_at = :now
FROM (SELECT {_columns("id", "error", "text", "total")} FROM json_each(:rows)) AS d
WHERE ai_tasks.id = d.id
"""
_INTERRUPT_TASKS: Final = f"""
UPDATE ai_tasks SET status = 'interrupted', error = d.error, response_text = d.text,
    updated_at = :now, completed_at = coalesce(ai_tasks.completed_at, :now)
FROM (SELECT {_columns("id", "error", "text")} FROM json_each(:rows)) AS d
WHERE ai_tasks.id = d.id
"""
_UPDATE_RUNS: Final = f"""
UPDATE ai_runs SET status = coalesce(d.status, ai_runs.status),
    error = coalesce(d.error, ai_runs.error), name = coalesce(d.name, ai_runs.name),
    messages = coalesce(d.messages, ai_runs.messages),
    message_count = coalesce(d.message_count, ai_runs.message_count),
    variables = coalesce(d.variables, ai_runs.variables), version = ai_runs.version + 1,
    updated_at = :now,
    owner_id = CASE WHEN d.release THEN NULL ELSE ai_runs.owner_id END,
    lease_expires_at = CASE WHEN d.release THEN NULL ELSE ai_runs.lease_expires_at END
FROM (SELECT {
    _columns("id", "status", "error", "name", "messages", "message_count", "variables", "release")
} FROM json_each(:rows)) AS d
WHERE ai_runs.id = d.id
"""


def _rest(conn: sqlite3.Connection, ops: list[Rest], now: str) -> None:
    task_ids = list(dict.fromkeys(op.task_id for op in ops if not isinstance(op, UpdateRun)))
    states: dict[str, list[Any]] = {}
    if task_ids:
        states = _one(conn, _TASK_STATES, {"ids": json.dumps(task_ids)}) or {}
    run_ids = list(dict.fromkeys(op.run_id for op in ops if isinstance(op, UpdateRun)))
    if run_ids:
        found = set(_one(conn, _FOUND_RUNS, {"ids": json.dumps(run_ids)}) or ())
        if missing := [run_id for run_id in run_ids if run_id not in found]:
            raise RunNotFound(missing[0])
    # Decide every operation in the batch's order, following each task's state in
    # memory; then write round by round.
    applied: list[tuple[Rest, str | None]] = []
    for op in ops:
        if isinstance(op, UpdateRun):
            applied.append((op, op.run_id))
            continue
        state = states.get(op.task_id)
        if state is None:
            raise NotFound(op.task_id, f"task {op.task_id!r} not found")
        run_id, status, text, error = state[0], state[1], state[2], state[3]
        extend = (
            isinstance(op, InterruptTask)
            and status == "interrupted"
            and op.response_text.startswith(text)
        )
        if status != "running" and not extend:
            if task_op_settled(op, status, text, error, (state[4], state[5])):
                continue  # an idempotent replay
            raise StoreConflict(task_conflict_message(op, status))
        state[1:6] = _after(op, state)
        applied.append((op, run_id))
    for round_ in in_rounds(applied, _round_key):
        _write_round(conn, round_, now)


def _after(op: FinishTurn | FailTask | InterruptTask, state: list[Any]) -> list[Any]:
    """A task's status, text, error and tokens once ``op`` is applied."""
    if isinstance(op, FinishTurn):
        return ["completed", op.response_text, state[3], op.input_tokens, op.output_tokens]
    if isinstance(op, FailTask):
        return ["failed", op.response_text, op.error, state[4], state[5]]
    return ["interrupted", op.response_text, op.error, state[4], state[5]]


def _round_key(applied: tuple[Rest, str | None]) -> str:
    """A round touches each run (a task without a run: the task) at most once."""
    op, run_id = applied
    if run_id is not None:
        return run_id
    assert not isinstance(op, UpdateRun)  # an update names its run
    return "\0" + op.task_id


def _write_round(conn: sqlite3.Connection, round_: list[tuple[Rest, str | None]], now: str) -> None:
    finish, turns, fail, interrupt, update = [], [], [], [], []
    for op, run_id in round_:
        if isinstance(op, FinishTurn):
            finish.append(
                [
                    op.task_id,
                    op.response_text,
                    op.input_tokens,
                    op.output_tokens,
                    op.cached_tokens,
                    op.usage_source,
                    op.cost,
                    op.time_to_first_token,
                    op.total_time,
                    op.finish_reason,
                ]
            )
            if run_id is not None:
                messages = op.run_messages
                turns.append(
                    [
                        run_id,
                        op.run_messages_json,
                        None if messages is None else len(messages),
                        op.input_tokens,
                        op.output_tokens,
                        op.cached_tokens,
                        op.cost,
                        op.run_status,
                    ]
                )
        elif isinstance(op, FailTask):
            fail.append([op.task_id, op.error, op.response_text, op.total_time])
        elif isinstance(op, InterruptTask):
            interrupt.append([op.task_id, op.error, op.response_text])
        else:
            update.append(update_row(op))
    for sql, rows in (
        (_FINISH_TASKS, finish),
        (_ADD_TURNS, turns),
        (_FAIL_TASKS, fail),
        (_INTERRUPT_TASKS, interrupt),
        (_UPDATE_RUNS, update),
    ):
        if rows:
            conn.execute(sql, {"rows": _rows(rows), "now": now})

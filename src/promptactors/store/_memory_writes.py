"""Batched writes on the memory store: ``_sqlite_writes`` translated to dictionaries.

A batch runs on a :class:`Transaction`: rows it changes are copied into it first, new rows
are made in it, and nothing reaches the store's tables until :meth:`Transaction.commit`, so
a batch that raises part-way leaves the tables as they were. Rows are dicts keyed by the
SQL column names, JSON columns hold JSON text and times are clock seconds, so the record
builders of ``_rows`` read them exactly as they read SQLite rows.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

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
)
from ._task_outcomes import task_conflict_message, task_op_settled

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["Row", "Tables", "Transaction", "apply_batch", "own_run"]

#: One row: column name -> value (str, int, float or None; JSON as text, times in seconds).
Row = dict[str, Any]


class Tables:
    """The runs and tasks of a memory store.

    ``seq`` numbers rows in creation order: it breaks ties between equal timestamps (common
    under a virtual clock), as the insertion order a real clock would have told apart.
    """

    __slots__ = ("runs", "seq", "tasks", "tasks_of_run")

    def __init__(self) -> None:
        self.runs: dict[str, Row] = {}
        self.tasks: dict[str, Row] = {}
        self.tasks_of_run: dict[str, list[str]] = {}
        self.seq = 0

    def tasks_of(self, run_id: str) -> Iterator[Row]:
        """The task rows of a run, in creation order."""
        for task_id in self.tasks_of_run.get(run_id, ()):
            yield self.tasks[task_id]


class Transaction:
    """Copy-on-write changes to :class:`Tables`, applied by :meth:`commit` or dropped."""

    __slots__ = ("_base", "_new_tasks", "_seq", "runs", "tasks")

    def __init__(self, base: Tables) -> None:
        self._base = base
        self._seq = base.seq
        self._new_tasks: list[Row] = []
        self.runs: dict[str, Row] = {}
        self.tasks: dict[str, Row] = {}

    def run(self, run_id: str) -> Row | None:
        """The run as the transaction sees it (read only)."""
        return self.runs.get(run_id) or self._base.runs.get(run_id)

    def task(self, task_id: str) -> Row | None:
        """The task as the transaction sees it (read only)."""
        return self.tasks.get(task_id) or self._base.tasks.get(task_id)

    def run_to_change(self, run_id: str) -> Row | None:
        """The run, copied into the transaction so it can be changed."""
        row = self.runs.get(run_id)
        if row is None and (stored := self._base.runs.get(run_id)) is not None:
            row = self.runs[run_id] = dict(stored)
        return row

    def task_to_change(self, task_id: str) -> Row | None:
        """The task, copied into the transaction so it can be changed."""
        row = self.tasks.get(task_id)
        if row is None and (stored := self._base.tasks.get(task_id)) is not None:
            row = self.tasks[task_id] = dict(stored)
        return row

    def insert_run(self, row: Row) -> None:
        """Add a new run."""
        self._seq += 1
        row["_seq"] = self._seq
        self.runs[row["id"]] = row

    def insert_task(self, row: Row) -> None:
        """Add a new task."""
        self._seq += 1
        row["_seq"] = self._seq
        self.tasks[row["id"]] = row
        self._new_tasks.append(row)

    def commit(self) -> None:
        """Make every change visible in the tables at once."""
        base = self._base
        base.runs.update(self.runs)
        base.tasks.update(self.tasks)
        for row in self._new_tasks:
            if row["run_id"] is not None:
                base.tasks_of_run.setdefault(row["run_id"], []).append(row["id"])
        base.seq = self._seq


def own_run(txn: Transaction, op: Ownership, now: float) -> int:
    """Apply a claim (returns the new fence), a release (1 if freed, else 0) or a renewal
    (0); see ``Store.claim_run`` for what raises."""
    row = txn.run_to_change(op.run_id)
    if op.kind == "release":
        if row is None or (row["owner_id"], row["fence"]) != (op.owner_id, op.fence):
            return 0
        row.update(owner_id=None, lease_expires_at=None, updated_at=now)
        return 1
    if row is None:
        raise RunNotFound(op.run_id)
    owner, fence, expires = row["owner_id"], row["fence"], row["lease_expires_at"]
    lease = None if op.lease_seconds is None else now + op.lease_seconds
    if op.kind == "renew":
        if (owner, fence) != (op.owner_id, op.fence):
            raise StoreConflict(stale_claim_message(op, owner, fence))
        row.update(lease_expires_at=lease, updated_at=now)
        return 0
    if owner is not None and owner != op.owner_id and (expires is None or expires > now):
        raise RunInUse(op.run_id, owner)
    row.update(owner_id=op.owner_id, fence=fence + 1, lease_expires_at=lease, updated_at=now)
    return int(fence) + 1


def apply_batch(txn: Transaction, batch: Plan, fences: Fenced, now: float) -> None:
    """Apply a planned batch on ``txn`` (the caller commits it).

    Raises ``StaleFence`` listing every operation whose fence is not its run's.
    """
    for create_run in batch.create_runs:
        _create_run(txn, create_run, now)
    for create_task in batch.create_tasks:
        _create_task(txn, create_task, now)
    _check_fences(txn, fences)
    for op in batch.rest:
        if isinstance(op, UpdateRun):
            _update_run(txn, op, now)
        else:
            _task_op(txn, op, now)


def _create_run(txn: Transaction, op: CreateRun, now: float) -> None:
    stored = txn.run(op.run_id)
    if stored is not None:
        if (stored["prompt_id"], stored["prompt_source"], stored["instance_id"]) != op.identity():
            raise StoreConflict(f"run {op.run_id!r} already exists with another prompt or instance")
        return
    txn.insert_run(
        {
            "id": op.run_id,
            "prompt_id": op.prompt_id,
            "prompt_source": op.prompt_source,
            "instance_id": op.instance_id,
            "name": op.name,
            "status": "running",
            "error": None,
            "messages": op.json[0],
            "variables": op.json[1],
            "settings": op.json[2],
            "message_count": len(op.messages),
            "task_count": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "cached_tokens": 0,
            "total_tokens": 0,
            "total_cost": 0.0,
            "executor_id": op.executor_id,
            "heartbeat_at": now,
            "version": 1,
            "created_at": now,
            "updated_at": now,
            "owner_id": op.owner_id,
            "fence": 0 if op.owner_id is None else 1,
            "lease_expires_at": None if op.lease_seconds is None else now + op.lease_seconds,
            "takeovers": 0,
        }
    )


def _check_fences(txn: Transaction, fences: Fenced) -> None:
    # A missing run or task is left to its operation (RunNotFound, NotFound); a task
    # without a run has no fence to match.
    stale: list[tuple[int, str | None]] = []
    for index, run_id, fence in fences.by_run:
        run = txn.run(run_id)
        if run is not None and run["fence"] != fence:
            stale.append((index, run_id))
    for index, task_id, fence in fences.by_task:
        task = txn.task(task_id)
        if task is None:
            continue
        run = None if task["run_id"] is None else txn.run(task["run_id"])
        if (None if run is None else run["fence"]) != fence:
            stale.append((index, task["run_id"]))
    if stale:
        raise StaleFence(sorted(stale, key=lambda pair: pair[0]))


def _create_task(txn: Transaction, op: CreateTask, now: float) -> None:
    if op.run_id is not None and txn.run(op.run_id) is None:
        raise RunNotFound(op.run_id, f"run {op.run_id!r} of task {op.task_id!r} not found")
    stored = txn.task(op.task_id)
    if stored is not None:
        identity = (
            stored["run_id"],
            stored["attempt"],
            stored["provider"],
            stored["model"],
            plain(json.loads(stored["request"])),
        )
        if identity != op.identity():
            raise StoreConflict(
                f"task {op.task_id!r} already exists with another run, attempt or request"
            )
        return
    txn.insert_task(
        {
            "id": op.task_id,
            "run_id": op.run_id,
            "instance_id": op.instance_id,
            "attempt": op.attempt,
            "status": "running",
            "provider": op.provider,
            "model": op.model,
            "request": op.request_json,
            "response_text": "",
            "input_tokens": None,
            "output_tokens": None,
            "cached_tokens": None,
            "usage_source": None,
            "cost": None,
            "time_to_first_token": None,
            "total_time": None,
            "finish_reason": None,
            "error": None,
            "created_at": now,
            "updated_at": now,
            "completed_at": None,
        }
    )
    if op.run_id is not None:
        run = txn.run_to_change(op.run_id)
        assert run is not None  # checked above
        run.update(task_count=run["task_count"] + 1, version=run["version"] + 1, updated_at=now)


def _task_op(txn: Transaction, op: FinishTurn | FailTask | InterruptTask, now: float) -> None:
    stored = txn.task(op.task_id)
    if stored is None:
        raise NotFound(op.task_id, f"task {op.task_id!r} not found")
    status, text = stored["status"], stored["response_text"]
    extend = (
        isinstance(op, InterruptTask)
        and status == "interrupted"
        and op.response_text.startswith(text)
    )
    if status != "running" and not extend:
        tokens = (stored["input_tokens"], stored["output_tokens"])
        if task_op_settled(op, status, text, stored["error"], tokens):
            return  # an idempotent replay
        raise StoreConflict(task_conflict_message(op, status))
    task = txn.task_to_change(op.task_id)
    assert task is not None  # read above
    if isinstance(op, FinishTurn):
        task.update(
            status="completed",
            response_text=op.response_text,
            input_tokens=op.input_tokens,
            output_tokens=op.output_tokens,
            cached_tokens=op.cached_tokens,
            usage_source=op.usage_source,
            cost=op.cost,
            time_to_first_token=op.time_to_first_token,
            total_time=op.total_time,
            finish_reason=op.finish_reason,
            updated_at=now,
            completed_at=now,
        )
        if task["run_id"] is not None:
            _add_turn_to_run(txn, task["run_id"], op, now)
    elif isinstance(op, FailTask):
        task.update(
            status="failed",
            error=op.error,
            response_text=op.response_text,
            total_time=op.total_time,
            updated_at=now,
            completed_at=now,
        )
    else:
        task.update(
            status="interrupted",
            error=op.error,
            response_text=op.response_text,
            updated_at=now,
            completed_at=now if task["completed_at"] is None else task["completed_at"],
        )


def _add_turn_to_run(txn: Transaction, run_id: str, op: FinishTurn, now: float) -> None:
    run = txn.run_to_change(run_id)
    if run is None:  # the schema's foreign key keeps a task's run; nothing to update
        return
    if op.run_messages is not None:
        run.update(messages=op.run_messages_json, message_count=len(op.run_messages))
    if op.run_status is not None:
        run["status"] = op.run_status
    run.update(
        input_tokens=run["input_tokens"] + op.input_tokens,
        output_tokens=run["output_tokens"] + op.output_tokens,
        cached_tokens=run["cached_tokens"] + op.cached_tokens,
        total_tokens=run["total_tokens"] + op.input_tokens + op.output_tokens,
        total_cost=run["total_cost"] + op.cost,
        version=run["version"] + 1,
        updated_at=now,
    )


def _update_run(txn: Transaction, op: UpdateRun, now: float) -> None:
    run = txn.run_to_change(op.run_id)
    if run is None:
        raise RunNotFound(op.run_id)
    changes: Row = {
        "status": op.status,
        "error": op.error,
        "name": op.name,
        "variables": op.variables_json,
    }
    if op.messages is not None:
        changes.update(messages=op.messages_json, message_count=len(op.messages))
    run.update({column: value for column, value in changes.items() if value is not None})
    run.update(version=run["version"] + 1, updated_at=now)
    if op.release:
        run.update(owner_id=None, lease_expires_at=None)

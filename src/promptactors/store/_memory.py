"""The memory store: the whole ``Store`` protocol in Python dictionaries, for tests and
simulation (``memory://``). Nothing is persisted.

It lives entirely in the event loop's task: no thread, no I/O. Every method checkpoints
once (a cancellation and scheduling point, as a real await is) and then runs to the end
without awaiting again, so each call, a batch included, is atomic; under trio's
``MockClock(autojump_threshold=0)`` a query never lets virtual time jump, and the same
calls in the same order give the same results. Semantics and exceptions are the SQLite
adapter's, which it mirrors row for row (``_memory_writes``).

Time: heartbeats, staleness (``find_unfinished``, ``claim_stale_runs``) and leases follow
the store's ``clock``, by default the event loop's (``anyio.current_time()``), so under a
``MockClock`` they follow virtual time. Record timestamps are ``epoch`` plus the clock
seconds since the store first used its clock; ``epoch`` defaults to the wall time then
(pass a fixed one for reproducible timestamps). Ties between equal times are broken by
creation order.

Fault injection (for chaos): :meth:`MemoryStore.set_available` switches an outage on and
off (every call raises ``StoreUnavailable`` meanwhile); :meth:`MemoryStore.fail_next` makes
the next ``n`` calls raise a given ``StoreError``. The counters ``reads``, ``writes`` and
``batches`` say how much work the store has served.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from promptactors._exceptions import (
    ActionNotFound,
    InvalidInput,
    NotFound,
    PromptNotFound,
    RunNotFound,
    StoreError,
    StoreUnavailable,
)

from ._base import StoreBase
from ._listings import check_listing
from ._memory_executors import MemoryExecutors
from ._memory_writes import Row, Tables, Transaction, apply_batch, own_run
from ._migrations import latest_version
from ._records import (
    PROMPT_SOURCES,
    SCOPES,
    ActionRecord,
    Ownership,
    PromptRecord,
    PromptSource,
    RunRecord,
    RunStatus,
    Scope,
    ScopedVariables,
    TaskRecord,
    Unfinished,
    WriteOp,
    check_choice,
    check_id,
    dumps,
    fenced,
    plan,
)
from ._rows import (
    Decoder,
    action_from_row,
    broker_pick,
    prompt_from_row,
    run_from_row,
    task_from_row,
)
from ._rows import prompt_json as _prompt_json

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping, Sequence

__all__ = ["MemoryStore"]


class MemoryStore(MemoryExecutors, StoreBase):
    """A store in this process's memory. ``open_store("memory://")`` opens a fresh one.

    ``clock`` gives "now" in seconds (default ``anyio.current_time``, the event loop's
    clock, virtual under a ``MockClock``); ``epoch`` is the datetime of the clock's first
    reading (default: the wall time then). The schema is born migrated: ``migrate``
    returns 0 and ``schema_version`` the latest migration.

    Counters (public, read them freely): ``reads`` counts read calls served, ``writes``
    write calls served (each operation of a committed batch counting one) and ``batches``
    committed ``apply`` transactions. Calls refused by validation, by a fault, or by a
    not-found or conflict error are not counted.
    """

    def __init__(
        self, *, clock: Callable[[], float] | None = None, epoch: datetime | None = None
    ) -> None:
        self._clock: Callable[[], float] = clock or anyio.current_time
        self._epoch = epoch
        self._origin: float | None = None
        self._decoder = Decoder(json.loads, self._datetime)
        self._closed = False
        self._available = True
        self._failures = 0
        self._failure: StoreError = StoreUnavailable("injected fault")
        self._prompts: dict[str, dict[str, Row]] = {source: {} for source in PROMPT_SOURCES}
        self._actions: dict[str, Row] = {}
        self._scoped: dict[str, dict[tuple[str, str], str]] = {scope: {} for scope in SCOPES}
        self._brokers: dict[tuple[str, str, str], str] = {}
        self._tables = Tables()
        self._executors: dict[str, Row] = {}
        self.reads = 0
        self.writes = 0
        self.batches = 0

    @property
    def dialect(self) -> str:
        """``memory``."""
        return "memory"

    # -- faults ----------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """False during an outage (see :meth:`set_available`)."""
        return self._available

    def set_available(self, available: bool) -> None:
        """Start (False) or end (True) an outage: meanwhile every call raises
        ``StoreUnavailable`` and changes nothing."""
        self._available = bool(available)

    def fail_next(self, n: int = 1, error: StoreError | None = None) -> None:
        """Make the next ``n`` calls (replacing any count still pending) raise ``error``
        (the same instance each time; default ``StoreUnavailable``) and change nothing.

        Calls refused by argument validation (``InvalidInput``) do not use up a failure,
        nor does an empty ``apply``, which does no work. Raises ``InvalidInput`` for a
        negative ``n`` or an ``error`` that is not a ``StoreError``.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise InvalidInput(f"n must be a non-negative integer, got {n!r}")
        if error is not None and not isinstance(error, StoreError):
            raise InvalidInput(f"error must be a StoreError, got {error!r}")
        self._failures = n
        self._failure = error or StoreUnavailable(
            "injected fault: the memory store failed this call"
        )

    def _serve(self) -> None:
        """Refuse the call if the store is closed, out or told to fail it."""
        if self._closed:
            raise StoreUnavailable("the memory store is closed")
        if not self._available:
            raise StoreUnavailable("the memory store is unavailable (an injected outage)")
        if self._failures:
            self._failures -= 1
            raise self._failure

    # -- time ------------------------------------------------------------------------

    def _now(self) -> float:
        now = self._clock()
        if self._origin is None:
            self._origin = now
            if self._epoch is None:
                self._epoch = datetime.now(UTC)
        return now

    def _datetime(self, value: Any) -> datetime | None:
        if value is None:
            return None
        # both are set by the first _now(), before any time is stored
        assert self._epoch is not None
        assert self._origin is not None
        return self._epoch + timedelta(seconds=value - self._origin)

    # -- schema and lifetime ---------------------------------------------------------

    async def migrate(self) -> int:
        """Nothing to apply: a memory store is born with the latest schema. Returns 0."""
        await anyio.lowlevel.checkpoint()
        self._serve()
        return 0

    async def schema_version(self) -> int:
        """The latest migration number (the schema a memory store is born with)."""
        await anyio.lowlevel.checkpoint()
        self._serve()
        self.reads += 1
        return latest_version("sqlite")

    async def close(self) -> None:
        """Refuse every later call with ``StoreUnavailable``. Idempotent."""
        await anyio.lowlevel.checkpoint()
        self._closed = True

    # -- prompts and actions ---------------------------------------------------------

    async def get_prompt(self, prompt_id: str, source: PromptSource = "prompts") -> PromptRecord:
        """Read one prompt from ``source``. Raises ``PromptNotFound``."""
        await anyio.lowlevel.checkpoint()
        check_id(prompt_id, "prompt id")
        check_choice(source, PROMPT_SOURCES, "prompt source")
        self._serve()
        row = self._prompts[source].get(prompt_id)
        if row is None:
            raise PromptNotFound(prompt_id, f"prompt {prompt_id!r} not found in {source}")
        self.reads += 1
        return prompt_from_row(row, self._decoder)

    async def list_prompts(
        self, source: PromptSource = "prompts", *, limit: int = 100
    ) -> list[PromptRecord]:
        """The prompts of ``source`` in id order, at most ``limit``."""
        await anyio.lowlevel.checkpoint()
        check_listing(source, limit)
        self._serve()
        table = self._prompts[source]
        self.reads += 1
        return [prompt_from_row(table[key], self._decoder) for key in sorted(table)[:limit]]

    async def count_by_status(self) -> dict[str, dict[str, int]]:
        """How many runs and tasks have each status: ``{"runs": {...}, "tasks": {...}}``."""
        await anyio.lowlevel.checkpoint()
        self._serve()
        counts: dict[str, dict[str, int]] = {"runs": {}, "tasks": {}}
        for name, rows in (("runs", self._tables.runs), ("tasks", self._tables.tasks)):
            for row in rows.values():
                counts[name][row["status"]] = counts[name].get(row["status"], 0) + 1
        self.reads += 1
        return counts

    async def put_prompt(self, prompt: PromptRecord, source: PromptSource = "prompts") -> None:
        """Insert or replace a prompt in ``source``."""
        await anyio.lowlevel.checkpoint()
        check_choice(source, PROMPT_SOURCES, "prompt source")
        messages, defaults, settings = _prompt_json(prompt)
        self._serve()
        now = self._now()
        old = self._prompts[source].get(prompt.id)
        self._prompts[source][prompt.id] = {
            "id": prompt.id,
            "name": prompt.name,
            "description": prompt.description,
            "messages": dumps(messages),
            "variable_defaults": dumps(defaults),
            "settings": dumps(settings),
            "created_at": now if old is None else old["created_at"],
            "updated_at": now,
        }
        self.writes += 1

    async def get_action(self, action_id: str) -> ActionRecord:
        """Read one prompt action. Raises ``ActionNotFound``."""
        await anyio.lowlevel.checkpoint()
        check_id(action_id, "action id")
        self._serve()
        row = self._actions.get(action_id)
        if row is None:
            raise ActionNotFound(action_id)
        self.reads += 1
        return action_from_row(row, self._decoder)

    async def put_action(self, action: ActionRecord) -> None:
        """Insert or replace a prompt action."""
        await anyio.lowlevel.checkpoint()
        self._serve()
        now = self._now()
        old = self._actions.get(action.id)
        self._actions[action.id] = {
            "id": action.id,
            "name": action.name,
            "prompt_id": action.prompt_id,
            "prompt_source": action.prompt_source,
            "broker_mappings": dumps(dict(action.broker_mappings)),
            "optional_variables": dumps(sorted(action.optional_variables)),
            "hardcoded_values": dumps(dict(action.hardcoded_values)),
            "execution_config": dumps(dict(action.execution_config)),
            "created_at": now if old is None else old["created_at"],
            "updated_at": now,
        }
        self.writes += 1

    # -- scoped variables and broker values ------------------------------------------

    async def get_scoped_variables(
        self, user_id: str | None = None, org_id: str | None = None, project_id: str | None = None
    ) -> ScopedVariables:
        """Read the user, org and project variables of a context at once."""
        await anyio.lowlevel.checkpoint()
        self._serve()
        result = ScopedVariables({}, {}, {})
        for scope, owner in (("user", user_id), ("org", org_id), ("project", project_id)):
            if owner is None:
                continue
            found = getattr(result, scope)
            for (owner_id, key), value in self._scoped[scope].items():
                if owner_id == owner:
                    found[key] = value
        self.reads += 1
        return result

    async def set_scoped_variable(self, scope: Scope, owner_id: str, key: str, value: str) -> None:
        """Insert or replace one scoped variable."""
        await anyio.lowlevel.checkpoint()
        check_choice(scope, SCOPES, "scope")
        check_id(owner_id, f"{scope} id")
        check_id(key, "variable key")
        if not isinstance(value, str):
            raise InvalidInput(
                f"the value of {scope} variable {key!r} must be a string, got {value!r}"
            )
        self._serve()
        self._scoped[scope][owner_id, key] = value
        self.writes += 1

    async def delete_scoped_variable(self, scope: Scope, owner_id: str, key: str) -> bool:
        """Delete one scoped variable; return whether it existed."""
        await anyio.lowlevel.checkpoint()
        check_choice(scope, SCOPES, "scope")
        self._serve()
        self.writes += 1
        return self._scoped[scope].pop((owner_id, key), None) is not None

    async def get_broker_values(
        self, broker_ids: Collection[str], context: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Resolve many brokers for a context at once (most specific scope wins)."""
        await anyio.lowlevel.checkpoint()
        ids = set(broker_ids)
        context = dict(context or {})
        if not ids:
            return {}
        self._serve()
        rows = [
            (broker_id, kind, scope_id, value)
            for (broker_id, kind, scope_id), value in self._brokers.items()
            if broker_id in ids and (kind == "global" or context.get(kind) == scope_id)
        ]
        self.reads += 1
        return broker_pick(rows, context)

    async def put_broker_value(
        self, broker_id: str, value: str, *, scope_kind: str = "global", scope_id: str = ""
    ) -> None:
        """Insert or replace the value of a broker for one scope."""
        await anyio.lowlevel.checkpoint()
        check_id(broker_id, "broker id")
        check_id(scope_kind, "scope kind")
        self._serve()
        self._brokers[broker_id, scope_kind, scope_id] = value
        self.writes += 1

    # -- runs and tasks --------------------------------------------------------------

    async def apply(self, ops: Sequence[WriteOp]) -> None:
        """Commit many write operations at once: all of them, or none."""
        await anyio.lowlevel.checkpoint()
        batch, fences = plan(ops), fenced(ops)
        if not ops:
            return
        self._serve()
        txn = Transaction(self._tables)
        apply_batch(txn, batch, fences, self._now())
        txn.commit()
        self.writes += len(ops)
        self.batches += 1

    async def _own(self, op: Ownership) -> int:
        await anyio.lowlevel.checkpoint()
        self._serve()
        txn = Transaction(self._tables)
        result = own_run(txn, op, self._now())
        txn.commit()
        self.writes += 1
        return result

    def _run(self, row: Row) -> RunRecord:
        return run_from_row(row, self._decoder)

    def _task(self, row: Row) -> TaskRecord:
        return task_from_row(row, self._decoder)

    async def get_run(self, run_id: str) -> RunRecord:
        """Read one run. Raises ``RunNotFound``."""
        await anyio.lowlevel.checkpoint()
        check_id(run_id, "run id")
        self._serve()
        row = self._tables.runs.get(run_id)
        if row is None:
            raise RunNotFound(run_id)
        self.reads += 1
        return self._run(row)

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        executor_id: str | None = None,
        instance_id: str | None = None,
        prompt_id: str | None = None,
        limit: int = 100,
    ) -> list[RunRecord]:
        """Runs matching every filter given, newest first."""
        await anyio.lowlevel.checkpoint()
        self._serve()
        filters = {
            "status": status,
            "executor_id": executor_id,
            "instance_id": instance_id,
            "prompt_id": prompt_id,
        }
        wanted = [(name, value) for name, value in filters.items() if value is not None]
        rows = [
            row
            for row in self._tables.runs.values()
            if all(row[name] == value for name, value in wanted)
        ]
        rows.sort(key=lambda row: (row["created_at"], row["_seq"]), reverse=True)
        self.reads += 1
        # SQLite reads LIMIT -1 (or any negative) as no limit
        return [self._run(row) for row in (rows if limit < 0 else rows[:limit])]

    async def get_task(self, task_id: str) -> TaskRecord:
        """Read one task. Raises ``NotFound``."""
        await anyio.lowlevel.checkpoint()
        check_id(task_id, "task id")
        self._serve()
        row = self._tables.tasks.get(task_id)
        if row is None:
            raise NotFound(task_id, f"task {task_id!r} not found")
        self.reads += 1
        return self._task(row)

    async def list_tasks(self, run_id: str) -> list[TaskRecord]:
        """The tasks of a run, oldest first."""
        await anyio.lowlevel.checkpoint()
        self._serve()
        rows = sorted(self._tables.tasks_of(run_id), key=_oldest_first)
        self.reads += 1
        return [self._task(row) for row in rows]

    # -- recovery and scale-out ------------------------------------------------------

    async def heartbeat(self, executor_id: str) -> int:
        """Refresh the heartbeat of the running runs ``executor_id`` owns; return how many."""
        await anyio.lowlevel.checkpoint()
        check_id(executor_id, "executor id")
        self._serve()
        now, count = self._now(), 0
        for row in self._tables.runs.values():
            if row["status"] == "running" and row["executor_id"] == executor_id:
                row["heartbeat_at"] = now
                count += 1
        self.writes += 1
        return count

    def _stale(self, stale_after: float) -> Callable[[Row], bool]:
        # SQLite compares heartbeat_at < now - stale_after; a NULL heartbeat is never older
        before = self._now() - stale_after

        def stale(row: Row) -> bool:
            return row["heartbeat_at"] is not None and row["heartbeat_at"] < before

        return stale

    async def find_unfinished(
        self, *, executor_id: str | None = None, stale_after: float | None = None
    ) -> Unfinished:
        """Runs left running (of one executor, with a stale heartbeat, when given) and
        their running tasks."""
        await anyio.lowlevel.checkpoint()
        self._serve()
        stale = None if stale_after is None else self._stale(stale_after)
        runs = [
            row
            for row in self._tables.runs.values()
            if row["status"] == "running"
            and (executor_id is None or row["executor_id"] == executor_id)
            and (stale is None or stale(row))
        ]
        unfiltered = executor_id is None and stale_after is None
        run_ids = {row["id"] for row in runs}
        tasks = [
            row
            for row in self._tables.tasks.values()
            if row["status"] == "running"
            and (row["run_id"] in run_ids or (unfiltered and row["run_id"] is None))
        ]
        runs.sort(key=_oldest_first)
        tasks.sort(key=_oldest_first)
        self.reads += 1
        return Unfinished(tuple(map(self._run, runs)), tuple(map(self._task, tasks)))

    async def claim_stale_runs(
        self, executor_id: str, stale_after: float, *, limit: int = 100
    ) -> list[RunRecord]:
        """Take over running runs whose heartbeat is older than ``stale_after`` seconds."""
        await anyio.lowlevel.checkpoint()
        check_id(executor_id, "executor id")
        self._serve()
        stale = self._stale(stale_after)
        rows = [row for row in self._tables.runs.values() if row["status"] == "running"]
        rows = sorted(filter(stale, rows), key=lambda row: (row["heartbeat_at"], row["_seq"]))
        rows = rows if limit < 0 else rows[:limit]
        now = self._now()
        for row in rows:
            row.update(
                executor_id=executor_id,
                heartbeat_at=now,
                updated_at=now,
                version=row["version"] + 1,
            )
        self.writes += 1
        return [self._run(row) for row in sorted(rows, key=_oldest_first)]

    async def mark_interrupted(
        self, run_ids: Collection[str], *, error: str = "interrupted", keep_runs: bool = False
    ) -> int:
        """Mark the running tasks of ``run_ids`` (and the runs unless ``keep_runs``)
        interrupted; return how many tasks were marked."""
        await anyio.lowlevel.checkpoint()
        ids = list(dict.fromkeys(run_ids))
        self._serve()
        now, count, tables = self._now(), 0, self._tables
        for run_id in ids:
            for task in tables.tasks_of(run_id):
                if task["status"] == "running":
                    task.update(status="interrupted", error=error, updated_at=now, completed_at=now)
                    count += 1
            run = tables.runs.get(run_id)
            if not keep_runs and run is not None and run["status"] == "running":
                run.update(
                    status="interrupted", error=error, updated_at=now, version=run["version"] + 1
                )
        self.writes += 1
        return count


def _oldest_first(row: Row) -> tuple[float, int]:
    return row["created_at"], row["_seq"]

"""The store port: one protocol both database adapters implement.

Every method is async and safe to call from many tasks at once. Driver errors never escape:
an unreachable database raises ``StoreUnavailable``, a missing or too new schema
``SchemaError``, a write that contradicts an idempotency key ``StoreConflict``, any other
database failure ``StoreError``; bad arguments raise ``InvalidInput`` before any I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence
    from types import TracebackType

    from ._executors import ExecutorRecord
    from ._records import (
        ActionRecord,
        CreateRun,
        CreateTask,
        FailTask,
        FinishTurn,
        InterruptTask,
        PromptRecord,
        PromptSource,
        RunRecord,
        RunStatus,
        Scope,
        ScopedVariables,
        TaskRecord,
        Unfinished,
        UpdateRun,
        WriteOp,
    )

__all__ = ["Store"]


@runtime_checkable
class Store(Protocol):
    """Persistence for prompts, actions, scoped variables, broker values, runs and tasks."""

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        ...

    # -- schema ----------------------------------------------------------------------

    async def migrate(self) -> int:
        """Apply the pending numbered migrations, each in a transaction; return how many.

        Idempotent, and safe to run from several processes at once. Raises ``SchemaError``
        if the database holds a newer schema than this version knows, or a migration fails.
        """
        ...

    async def schema_version(self) -> int:
        """The highest migration applied (0 for an empty database)."""
        ...

    # -- prompts and actions ---------------------------------------------------------

    async def get_prompt(self, prompt_id: str, source: PromptSource = "prompts") -> PromptRecord:
        """Read one prompt from ``source`` (``prompts`` or ``prompt_builtins``).

        Raises ``PromptNotFound`` naming the id and the table.
        """
        ...

    async def put_prompt(self, prompt: PromptRecord, source: PromptSource = "prompts") -> None:
        """Insert or replace a prompt in ``source``."""
        ...

    async def list_prompts(
        self, source: PromptSource = "prompts", *, limit: int = 100
    ) -> list[PromptRecord]:
        """The prompts of ``source`` in id order, at most ``limit`` (a positive integer)."""
        ...

    async def get_action(self, action_id: str) -> ActionRecord:
        """Read one prompt action. Raises ``ActionNotFound`` naming the id."""
        ...

    async def put_action(self, action: ActionRecord) -> None:
        """Insert or replace a prompt action."""
        ...

    # -- scoped variables and broker values ------------------------------------------

    async def get_scoped_variables(
        self, user_id: str | None = None, org_id: str | None = None, project_id: str | None = None
    ) -> ScopedVariables:
        """Read the user, org and project variables of a context in one query.

        A scope whose owner is None comes back empty.
        """
        ...

    async def set_scoped_variable(self, scope: Scope, owner_id: str, key: str, value: str) -> None:
        """Insert or replace one scoped variable (``scope`` is user, org or project)."""
        ...

    async def delete_scoped_variable(self, scope: Scope, owner_id: str, key: str) -> bool:
        """Delete one scoped variable; return whether it existed."""
        ...

    async def get_broker_values(
        self, broker_ids: Collection[str], context: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Resolve many brokers for a context in one query: ``{broker_id: value}``.

        ``context`` maps a scope kind to an id (``{"user": ..., "org": ..., "project": ...}``
        or any other kind). The most specific value wins: kinds other than user/org/project,
        in the context's order, then project, org, user, then the ``global`` value. A
        broker with no value is absent from the result.
        """
        ...

    async def put_broker_value(
        self, broker_id: str, value: str, *, scope_kind: str = "global", scope_id: str = ""
    ) -> None:
        """Insert or replace the value of a broker for one scope (global by default)."""
        ...

    # -- runs and tasks --------------------------------------------------------------

    async def apply(self, ops: Sequence[WriteOp]) -> None:
        """Commit many write operations in ONE transaction (group commit).

        Creates are applied first (runs, then tasks), then the other operations in the
        given order. All or nothing: on ``StoreConflict``, ``RunNotFound`` or ``NotFound``
        (an unknown task) the message names the key and nothing of the batch is kept.

        Operations with a ``fence`` apply only while it is their run's current fencing
        token (the run a task operation writes is its task's). Fences are checked after
        the creates and before anything else; if any is stale the batch is refused with
        ``StaleFence``, whose ``stale`` lists the position in ``ops`` and the run of EVERY
        stale operation, so a group committer can drop exactly those and commit the rest
        again (as the run tracker does). A claim cannot slip between the check and the
        writes: the runs checked stay locked until the commit.
        """
        ...

    async def create_run(self, op: CreateRun) -> None:
        """Create a run (see ``CreateRun``); an idempotent replay is a no-op."""
        ...

    async def create_task(self, op: CreateTask) -> None:
        """Create a running task (see ``CreateTask``); commit it before calling the provider."""
        ...

    async def finish_turn(self, op: FinishTurn) -> None:
        """Complete a task and update its run's messages and totals in one transaction."""
        ...

    async def fail_task(self, op: FailTask) -> None:
        """Mark a task failed (see ``FailTask``)."""
        ...

    async def mark_task_interrupted(self, op: InterruptTask) -> None:
        """Mark a task interrupted, keeping its partial output (see ``InterruptTask``)."""
        ...

    async def update_run(self, op: UpdateRun) -> None:
        """Set fields of a run (see ``UpdateRun``)."""
        ...

    async def get_run(self, run_id: str) -> RunRecord:
        """Read one run. Raises ``RunNotFound`` naming the id."""
        ...

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        executor_id: str | None = None,
        instance_id: str | None = None,
        prompt_id: str | None = None,
        limit: int = 100,
    ) -> list[RunRecord]:
        """Runs matching every filter given, newest first, at most ``limit``."""
        ...

    async def count_by_status(self) -> dict[str, dict[str, int]]:
        """How many runs and tasks have each status: ``{"runs": {...}, "tasks": {...}}``
        (a status nothing has is absent)."""
        ...

    async def get_task(self, task_id: str) -> TaskRecord:
        """Read one task. Raises ``NotFound`` naming the id."""
        ...

    async def list_tasks(self, run_id: str) -> list[TaskRecord]:
        """The tasks of a run, oldest first."""
        ...

    # -- recovery and scale-out ------------------------------------------------------

    async def heartbeat(self, executor_id: str) -> int:
        """Refresh the heartbeat of the running runs ``executor_id`` owns; return how many."""
        ...

    async def find_unfinished(
        self, *, executor_id: str | None = None, stale_after: float | None = None
    ) -> Unfinished:
        """Runs left ``running`` (owned by ``executor_id``, and with a heartbeat older than
        ``stale_after`` seconds, when given) and their running tasks."""
        ...

    async def claim_stale_runs(
        self, executor_id: str, stale_after: float, *, limit: int = 100
    ) -> list[RunRecord]:
        """Take over running runs whose heartbeat is older than ``stale_after`` seconds.

        The runs now name ``executor_id`` with a fresh heartbeat. On PostgreSQL the claim is
        atomic and concurrent claimers never get the same run (``FOR UPDATE SKIP LOCKED``).
        """
        ...

    async def claim_run(
        self, run_id: str, owner_id: str, *, lease_seconds: float | None = None
    ) -> int:
        """Claim run ``run_id`` for ``owner_id`` (an instance or executor id); return the
        new fencing token, larger than any the run had.

        The claim holds until released, or with ``lease_seconds`` until that many seconds
        pass without a renewal. A run that is free, already held by ``owner_id``, or whose
        lease has expired is taken; claiming is atomic, so of many concurrent claimers
        exactly one wins. Raises ``RunInUse`` naming the run and its owner if another
        owner holds it, ``RunNotFound`` for an unknown run, ``InvalidInput`` for a bad id
        or a lease that is not a positive number.
        """
        ...

    async def release_run(self, run_id: str, owner_id: str, fence: int) -> bool:
        """Free run ``run_id`` if ``owner_id`` still holds it with ``fence``; return whether
        it did (False also for an unknown run). The fence is kept: the next claim grows it.
        """
        ...

    async def renew_run(self, run_id: str, owner_id: str, fence: int, lease_seconds: float) -> None:
        """Make the claim of ``owner_id`` on ``run_id`` a lease ending ``lease_seconds`` from
        now. Raises ``StoreConflict`` if the run is no longer held with ``fence`` (another
        owner took it over, or it was released), ``RunNotFound`` for an unknown run.
        """
        ...

    async def mark_interrupted(
        self, run_ids: Collection[str], *, error: str = "interrupted", keep_runs: bool = False
    ) -> int:
        """Mark the running tasks of ``run_ids`` interrupted (their output is kept) and,
        unless ``keep_runs``, the runs themselves; return how many tasks were marked.

        ``keep_runs`` suits a process that claimed the runs and will retry their turns.
        """
        ...

    # -- executors and leases --------------------------------------------------------

    async def register_executor(
        self, executor_id: str, *, lease_seconds: float, pid: int, group: str | None = None
    ) -> None:
        """Insert (or refresh) the heartbeat row of executor ``executor_id`` (a runtime
        process on this host with ``pid``, optionally in a named ``group``)."""
        ...

    async def renew_leases(self, executor_id: str, lease_seconds: float) -> tuple[bool, int]:
        """Beat the executor's heartbeat and make the lease of every running run it holds
        end ``lease_seconds`` from now: one statement on PostgreSQL (one transaction on
        SQLite), however many runs. Return (whether the executor's row exists, how many
        runs were renewed). Runs taken over by another executor are not touched."""
        ...

    async def reclaim_expired(
        self, executor_id: str, lease_seconds: float, *, limit: int = 100
    ) -> list[RunRecord]:
        """Take over at most ``limit`` running runs of other executors whose lease has
        expired: each now names ``executor_id`` (owner and executor) under a fresh lease,
        its fence grown by one (so the previous owner's writes are refused) and its
        ``takeovers`` counted. Concurrent reclaimers never get the same run."""
        ...

    async def remove_executor(self, executor_id: str) -> None:
        """Delete an executor's row and free the ended runs it holds (a clean stop); runs
        still running keep their lease, and live executors reclaim them once it expires."""
        ...

    async def prune_executors(self, older_than: float) -> int:
        """Delete executors silent for more than ``older_than`` seconds that hold no
        running run; return how many."""
        ...

    async def list_executors(self) -> list[ExecutorRecord]:
        """Every executor, oldest first: alive or expired, with the leases it holds."""
        ...

    # -- lifetime --------------------------------------------------------------------

    async def close(self) -> None:
        """Release connections and the store's thread. Idempotent."""
        ...

    async def __aenter__(self) -> Store: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

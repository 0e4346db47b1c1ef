"""The SQLite adapter: the embedded default store.

One ``sqlite3`` connection lives on one dedicated thread; every method hands its work to
that thread and parks the calling task until it is done, so neither trio nor asyncio ever
blocks on the disk. WAL journal, ``synchronous=NORMAL``: a commit survives a process crash,
and an OS crash can lose only the last commits, never corrupt the file.
"""

from __future__ import annotations

import functools
import sqlite3
from typing import TYPE_CHECKING, Any, TypeVar

from promptactors._exceptions import (
    ActionNotFound,
    InvalidInput,
    NotFound,
    PromptNotFound,
    RunNotFound,
    SchemaError,
    StoreConflict,
    StoreError,
    StoreNotWritable,
    StoreUnavailable,
)

from .._backend import WorkerThread, get_backend, wait_for
from ._base import StoreBase
from ._executors import SqliteExecutors
from ._listings import SqlitePromptListing
from ._migrations import latest_version, load_migrations, sql_statements
from ._records import (
    PROMPT_SOURCES,
    SCOPE_COLUMNS,
    SCOPE_TABLES,
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
    SQLITE,
    action_from_row,
    broker_pick,
    prompt_from_row,
    prompt_json,
    run_from_row,
    task_from_row,
)
from ._sqlite_batch import apply_batch
from ._sqlite_writes import chunks as _chunks
from ._sqlite_writes import marks as _marks
from ._sqlite_writes import now as _now
from ._sqlite_writes import own_run, shifted

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping, Sequence

__all__ = ["SqliteStore"]

T = TypeVar("T")


class SqliteStore(SqliteExecutors, SqlitePromptListing, StoreBase):
    """A store in one SQLite file (or ``:memory:``). Open it with :meth:`open`."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        get_backend()  # a store is opened from a trio or asyncio task: fail here if not
        self._worker: WorkerThread | None = WorkerThread("promptactors-sqlite")
        self._conn: sqlite3.Connection | None = None

    @property
    def dialect(self) -> str:
        """``sqlite``."""
        return "sqlite"

    @classmethod
    async def open(cls, path: str, *, busy_timeout: float = 5.0) -> SqliteStore:
        """Open (creating if needed) the database file at ``path``.

        Raises ``StoreUnavailable`` if the file cannot be opened, ``SchemaError`` if it
        holds a newer schema than this version knows.
        """
        store = cls(path, busy_timeout)
        try:
            await store._call("open the database", store._connect)
            await store._call("check the schema version", store._check_not_newer)
        except BaseException:
            await store.close()
            raise
        return store

    # -- the worker thread -----------------------------------------------------------

    async def _call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        worker = self._worker
        if worker is None:
            raise StoreUnavailable(f"the SQLite store at {self._path} is closed")
        job = functools.partial(self._translate, what, fn, *args)
        result: T = await wait_for(worker.submitter(job))
        return result

    def _translate(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the worker thread, turning sqlite3 errors into ours."""
        try:
            return fn(*args)
        except sqlite3.Error as exc:
            conn = self._conn
            if conn is not None and conn.in_transaction:
                conn.rollback()
            raise self._error(what, exc) from exc
        except BaseException:
            conn = self._conn
            if conn is not None and conn.in_transaction:
                conn.rollback()
            raise

    def _error(self, what: str, exc: sqlite3.Error) -> StoreError:
        text = f"SQLite could not {what} ({self._path}): {exc}"
        message = str(exc).lower()
        if isinstance(exc, sqlite3.IntegrityError):
            return StoreConflict(text)
        if "no such table" in message or "no such column" in message:
            return SchemaError(text + " -- is the schema migrated?")
        code = getattr(exc, "sqlite_errorname", "")
        if code.startswith("SQLITE_READONLY"):
            return StoreNotWritable(text + " -- the database file (or its folder) is read-only")
        if code == "SQLITE_FULL":
            return StoreNotWritable(text + " -- the disk or the database's size limit is full")
        if any(
            s in message for s in ("unable to open", "locked", "busy", "disk i/o", "not a database")
        ):
            return StoreUnavailable(text)
        return StoreError(text)

    def _connect(self) -> None:
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,  # made on this thread, but the object is shared
        )
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._conn is not None, "used before open"
        return self._conn

    def _transaction(self, fn: Callable[[sqlite3.Connection], T], *, write: bool = True) -> T:
        conn = self._db
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        result = fn(conn)  # on error _translate rolls back
        conn.execute("COMMIT")
        return result

    async def close(self) -> None:
        """Close the connection and stop the store's thread. Idempotent."""
        worker = self._worker
        if worker is None:
            return

        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        try:
            await wait_for(worker.submitter(shut))
        finally:
            self._worker = None
            worker.stop()

    # -- schema ----------------------------------------------------------------------

    def _version(self) -> int:
        conn = self._db
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
        if exists is None:
            return 0
        row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    def _check_not_newer(self) -> None:
        version, latest = self._version(), latest_version("sqlite")
        if version > latest:
            raise SchemaError(
                f"the database {self._path} has schema version {version}, newer than the "
                f"{latest} this version of promptactors knows: upgrade promptactors"
            )

    async def schema_version(self) -> int:
        """The highest migration applied (0 for an empty database)."""
        return await self._call("read the schema version", self._version)

    async def migrate(self) -> int:
        """Apply the pending migrations, each in one transaction; return how many."""
        return await self._call("migrate the schema", self._migrate)

    def _migrate(self) -> int:
        conn = self._db
        conn.execute("BEGIN IMMEDIATE")  # one migrator at a time, across processes too
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        self._check_not_newer()
        current = self._version()
        applied = 0
        for migration in load_migrations("sqlite"):
            if migration.version <= current:
                continue
            try:
                for statement in sql_statements(migration.sql):
                    conn.execute(statement)
            except sqlite3.Error as exc:
                raise SchemaError(
                    f"SQLite migration {migration.version:04d}_{migration.name} failed on "
                    f"{self._path}: {exc}"
                ) from exc
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, _now()),
            )
            applied += 1
        conn.execute("COMMIT")
        return applied

    # -- prompts and actions ---------------------------------------------------------

    async def get_prompt(self, prompt_id: str, source: PromptSource = "prompts") -> PromptRecord:
        """Read one prompt from ``source``. Raises ``PromptNotFound``."""
        check_id(prompt_id, "prompt id")
        check_choice(source, PROMPT_SOURCES, "prompt source")

        def read() -> PromptRecord:
            row = self._db.execute(f"SELECT * FROM {source} WHERE id = ?", (prompt_id,)).fetchone()
            if row is None:
                raise PromptNotFound(prompt_id, f"prompt {prompt_id!r} not found in {source}")
            return prompt_from_row(row, SQLITE)

        return await self._call(f"read prompt {prompt_id!r}", read)

    async def put_prompt(self, prompt: PromptRecord, source: PromptSource = "prompts") -> None:
        """Insert or replace a prompt in ``source``."""
        check_choice(source, PROMPT_SOURCES, "prompt source")
        messages, defaults, settings = prompt_json(prompt)
        now = _now()
        sql = (
            f"INSERT INTO {source} (id, name, description, messages, variable_defaults, settings,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET"
            " name = excluded.name, description = excluded.description,"
            " messages = excluded.messages, variable_defaults = excluded.variable_defaults,"
            " settings = excluded.settings, updated_at = excluded.updated_at"
        )
        args = (
            prompt.id,
            prompt.name,
            prompt.description,
            dumps(messages),
            dumps(defaults),
            dumps(settings),
            now,
            now,
        )
        await self._call(f"write prompt {prompt.id!r}", self._execute, sql, args)

    def _execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self._db.execute(sql, args).rowcount

    async def get_action(self, action_id: str) -> ActionRecord:
        """Read one prompt action. Raises ``ActionNotFound``."""
        check_id(action_id, "action id")

        def read() -> ActionRecord:
            row = self._db.execute(
                "SELECT * FROM prompt_actions WHERE id = ?", (action_id,)
            ).fetchone()
            if row is None:
                raise ActionNotFound(action_id)
            return action_from_row(row, SQLITE)

        return await self._call(f"read action {action_id!r}", read)

    async def put_action(self, action: ActionRecord) -> None:
        """Insert or replace a prompt action."""
        now = _now()
        sql = (
            "INSERT INTO prompt_actions (id, name, prompt_id, prompt_source, broker_mappings,"
            " optional_variables, hardcoded_values, execution_config, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " name = excluded.name, prompt_id = excluded.prompt_id,"
            " prompt_source = excluded.prompt_source, broker_mappings = excluded.broker_mappings,"
            " optional_variables = excluded.optional_variables,"
            " hardcoded_values = excluded.hardcoded_values,"
            " execution_config = excluded.execution_config, updated_at = excluded.updated_at"
        )
        args = (
            action.id,
            action.name,
            action.prompt_id,
            action.prompt_source,
            dumps(dict(action.broker_mappings)),
            dumps(sorted(action.optional_variables)),
            dumps(dict(action.hardcoded_values)),
            dumps(dict(action.execution_config)),
            now,
            now,
        )
        await self._call(f"write action {action.id!r}", self._execute, sql, args)

    # -- scoped variables and broker values ------------------------------------------

    async def get_scoped_variables(
        self, user_id: str | None = None, org_id: str | None = None, project_id: str | None = None
    ) -> ScopedVariables:
        """Read the user, org and project variables of a context in one query."""
        sql = (
            "SELECT 'user', key, value FROM user_variables WHERE user_id = ?"
            " UNION ALL SELECT 'org', key, value FROM org_variables WHERE org_id = ?"
            " UNION ALL SELECT 'project', key, value FROM project_variables WHERE project_id = ?"
        )

        def read() -> ScopedVariables:
            result = ScopedVariables({}, {}, {})
            for scope, key, value in self._db.execute(sql, (user_id, org_id, project_id)):
                getattr(result, scope)[key] = value
            return result

        return await self._call("read scoped variables", read)

    async def set_scoped_variable(self, scope: Scope, owner_id: str, key: str, value: str) -> None:
        """Insert or replace one scoped variable."""
        check_choice(scope, SCOPES, "scope")
        check_id(owner_id, f"{scope} id")
        check_id(key, "variable key")
        if not isinstance(value, str):
            raise InvalidInput(
                f"the value of {scope} variable {key!r} must be a string, got {value!r}"
            )
        table, column, now = SCOPE_TABLES[scope], SCOPE_COLUMNS[scope], _now()
        sql = (
            f"INSERT INTO {table} ({column}, key, value, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?)"
            f" ON CONFLICT ({column}, key) DO UPDATE SET value = excluded.value,"
            " updated_at = excluded.updated_at"
        )
        await self._call(
            f"write {scope} variable {key!r}", self._execute, sql, (owner_id, key, value, now, now)
        )

    async def delete_scoped_variable(self, scope: Scope, owner_id: str, key: str) -> bool:
        """Delete one scoped variable; return whether it existed."""
        check_choice(scope, SCOPES, "scope")
        sql = f"DELETE FROM {SCOPE_TABLES[scope]} WHERE {SCOPE_COLUMNS[scope]} = ? AND key = ?"
        return (
            await self._call(
                f"delete {scope} variable {key!r}", self._execute, sql, (owner_id, key)
            )
            > 0
        )

    async def get_broker_values(
        self, broker_ids: Collection[str], context: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Resolve many brokers for a context in one query (most specific scope wins)."""
        ids = list(dict.fromkeys(broker_ids))
        context = dict(context or {})
        if not ids:
            return {}
        pairs = " OR ".join(["(scope_kind = ? AND scope_id = ?)"] * len(context))
        sql = (
            "SELECT broker_id, scope_kind, scope_id, value FROM broker_values"
            f" WHERE broker_id IN ({_marks(len(ids))}) AND (scope_kind = 'global'"
            + (f" OR {pairs})" if pairs else ")")
        )
        args = [*ids, *(x for pair in context.items() for x in pair)]

        def read() -> dict[str, str]:
            rows = [tuple(r) for r in self._db.execute(sql, args)]
            return broker_pick(rows, context)

        return await self._call("read broker values", read)

    async def put_broker_value(
        self, broker_id: str, value: str, *, scope_kind: str = "global", scope_id: str = ""
    ) -> None:
        """Insert or replace the value of a broker for one scope."""
        check_id(broker_id, "broker id")
        check_id(scope_kind, "scope kind")
        sql = (
            "INSERT INTO broker_values (broker_id, scope_kind, scope_id, value, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (broker_id, scope_kind, scope_id)"
            " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
        )
        args = (broker_id, scope_kind, scope_id, value, _now())
        await self._call(f"write broker value {broker_id!r}", self._execute, sql, args)

    # -- runs and tasks --------------------------------------------------------------

    async def apply(self, ops: Sequence[WriteOp]) -> None:
        """Commit many write operations in one transaction (BEGIN IMMEDIATE ... COMMIT)."""
        batch, fences = plan(ops), fenced(ops)
        if not ops:
            return

        def run(conn: sqlite3.Connection) -> None:
            apply_batch(conn, batch, fences, _now())

        await self._call(f"commit a batch of {len(ops)} writes", self._transaction, run)

    async def _own(self, op: Ownership) -> int:
        fn = functools.partial(own_run, op=op)
        return await self._call(f"{op.kind} run {op.run_id!r}", self._transaction, fn)

    async def get_run(self, run_id: str) -> RunRecord:
        """Read one run. Raises ``RunNotFound``."""
        check_id(run_id, "run id")

        def read() -> RunRecord:
            row = self._db.execute("SELECT * FROM ai_runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFound(run_id)
            return run_from_row(row, SQLITE)

        return await self._call(f"read run {run_id!r}", read)

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
        filters = {
            "status": status,
            "executor_id": executor_id,
            "instance_id": instance_id,
            "prompt_id": prompt_id,
        }
        where = [f"{name} = ?" for name, value in filters.items() if value is not None]
        args: list[Any] = [value for value in filters.values() if value is not None]
        sql = "SELECT * FROM ai_runs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created_at DESC, id LIMIT ?"

        def read() -> list[RunRecord]:
            return [run_from_row(r, SQLITE) for r in self._db.execute(sql, [*args, limit])]

        return await self._call("list runs", read)

    async def get_task(self, task_id: str) -> TaskRecord:
        """Read one task. Raises ``NotFound``."""
        check_id(task_id, "task id")

        def read() -> TaskRecord:
            row = self._db.execute("SELECT * FROM ai_tasks WHERE id = ?", (task_id,)).fetchone()
            if row is None:
                raise NotFound(task_id, f"task {task_id!r} not found")
            return task_from_row(row, SQLITE)

        return await self._call(f"read task {task_id!r}", read)

    async def list_tasks(self, run_id: str) -> list[TaskRecord]:
        """The tasks of a run, oldest first."""
        sql = "SELECT * FROM ai_tasks WHERE run_id = ? ORDER BY created_at, attempt, id"

        def read() -> list[TaskRecord]:
            return [task_from_row(r, SQLITE) for r in self._db.execute(sql, (run_id,))]

        return await self._call(f"list the tasks of run {run_id!r}", read)

    # -- recovery and scale-out ------------------------------------------------------

    async def heartbeat(self, executor_id: str) -> int:
        """Refresh the heartbeat of the running runs ``executor_id`` owns; return how many."""
        check_id(executor_id, "executor id")
        sql = "UPDATE ai_runs SET heartbeat_at = ? WHERE status = 'running' AND executor_id = ?"
        return await self._call("write a heartbeat", self._execute, sql, (_now(), executor_id))

    async def find_unfinished(
        self, *, executor_id: str | None = None, stale_after: float | None = None
    ) -> Unfinished:
        """Runs left running (of one executor, with a stale heartbeat, when given) and
        their running tasks."""
        where, args = ["status = 'running'"], []
        if executor_id is not None:
            where.append("executor_id = ?")
            args.append(executor_id)
        if stale_after is not None:
            where.append("heartbeat_at < ?")
            args.append(shifted(-stale_after))
        runs_sql = "SELECT * FROM ai_runs WHERE " + " AND ".join(where) + " ORDER BY created_at, id"
        task_sql = (
            "SELECT * FROM ai_tasks WHERE status = 'running' AND (run_id IN"
            f" (SELECT id FROM ai_runs WHERE {' AND '.join(where)})"
            + (" OR run_id IS NULL)" if len(where) == 1 else ")")
            + " ORDER BY created_at, id"
        )

        def read(conn: sqlite3.Connection) -> Unfinished:
            runs = tuple(run_from_row(r, SQLITE) for r in conn.execute(runs_sql, args))
            tasks = tuple(task_from_row(r, SQLITE) for r in conn.execute(task_sql, args))
            return Unfinished(runs, tasks)

        return await self._call(
            "find unfinished runs", functools.partial(self._transaction, read, write=False)
        )

    async def claim_stale_runs(
        self, executor_id: str, stale_after: float, *, limit: int = 100
    ) -> list[RunRecord]:
        """Take over running runs whose heartbeat is older than ``stale_after`` seconds."""
        check_id(executor_id, "executor id")

        def claim(conn: sqlite3.Connection) -> list[RunRecord]:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM ai_runs WHERE status = 'running' AND heartbeat_at < ?"
                    " ORDER BY heartbeat_at LIMIT ?",
                    (shifted(-stale_after), limit),
                )
            ]
            if not ids:
                return []
            marks = _marks(len(ids))
            conn.execute(
                "UPDATE ai_runs SET executor_id = ?, heartbeat_at = ?, updated_at = ?,"
                f" version = version + 1 WHERE id IN ({marks})",
                (executor_id, _now(), _now(), *ids),
            )
            rows = conn.execute(
                f"SELECT * FROM ai_runs WHERE id IN ({marks}) ORDER BY created_at, id", ids
            )
            return [run_from_row(r, SQLITE) for r in rows]

        return await self._call("claim stale runs", self._transaction, claim)

    async def mark_interrupted(
        self, run_ids: Collection[str], *, error: str = "interrupted", keep_runs: bool = False
    ) -> int:
        """Mark the running tasks of ``run_ids`` (and the runs unless ``keep_runs``)
        interrupted; return how many tasks were marked."""
        ids = list(dict.fromkeys(run_ids))

        def mark(conn: sqlite3.Connection) -> int:
            now, count = _now(), 0
            for chunk in _chunks(ids):
                marks = _marks(len(chunk))
                count += conn.execute(
                    "UPDATE ai_tasks SET status = 'interrupted', error = ?, updated_at = ?,"
                    f" completed_at = ? WHERE status = 'running' AND run_id IN ({marks})",
                    (error, now, now, *chunk),
                ).rowcount
                if not keep_runs:
                    conn.execute(
                        "UPDATE ai_runs SET status = 'interrupted', error = ?, updated_at = ?,"
                        f" version = version + 1 WHERE status = 'running' AND id IN ({marks})",
                        (error, now, *chunk),
                    )
            return count

        return await self._call("mark runs interrupted", self._transaction, mark)

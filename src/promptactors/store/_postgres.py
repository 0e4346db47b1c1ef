"""The PostgreSQL adapter, over an asyncpg connection pool.

asyncpg speaks asyncio only. On the asyncio backend the pool lives on the host's loop. On
trio it lives on a private asyncio loop in one dedicated daemon thread that the store
starts and ``close()`` stops; each call submits a coroutine there and the trio task is
rescheduled directly when it finishes (measured: ~4x the instructions of native asyncio
per round trip, against 8.8x for trio-asyncio). Cancelling the trio task cancels the
asyncio task and waits for it, so a cancelled call never leaves work running.

Batches (``apply``) run in one transaction as a few set-based statements (``_pg_writes``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio
import asyncpg
import asyncpg.exceptions as pgerr

from promptactors._exceptions import (
    ActionNotFound,
    InvalidInput,
    NotFound,
    PromptActorsError,
    PromptNotFound,
    RunNotFound,
    SchemaError,
    StoreUnavailable,
)

from .._backend import AsyncioRunner
from ._base import StoreBase
from ._executors import PostgresExecutors
from ._listings import PostgresPromptListing
from ._migrations import ADVISORY_LOCK_KEY, latest_version, load_migrations
from ._pg_errors import DRIVER_ERRORS, translate
from ._pg_writes import apply_batch, own_run
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
    POSTGRES,
    action_from_row,
    broker_pick,
    prompt_from_row,
    prompt_json,
    run_from_row,
    task_from_row,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence

__all__ = ["PostgresStore"]

T = TypeVar("T")
Pool = asyncpg.Pool


_STALE: Final = "heartbeat_at < now() - ${n}::float8 * interval '1 second'"


def redact(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _count(status: str) -> int:
    """The row count of a command status such as ``UPDATE 3``."""
    return int(status.rsplit(" ", 1)[1])


async def _close_pool(pool: Pool, timeout: float) -> None:
    """Close gracefully; connections still busy after ``timeout`` seconds are cut."""
    with anyio.move_on_after(timeout) as scope:
        await pool.close()
    if scope.cancelled_caught:
        pool.terminate()


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=dumps, decoder=json.loads, schema="pg_catalog")


class PostgresStore(PostgresExecutors, PostgresPromptListing, StoreBase):
    """A store in a PostgreSQL database. Open it with :meth:`open`."""

    def __init__(self, url: str, pool_size: int, connect_timeout: float) -> None:
        self._url = url
        self._where = redact(url)
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._runner = AsyncioRunner("promptactors-asyncpg")
        self._pool: Pool | None = None
        self._closed = False

    @property
    def dialect(self) -> str:
        """``postgresql``."""
        return "postgresql"

    @classmethod
    async def open(
        cls, url: str, *, pool_size: int = 10, connect_timeout: float = 10.0
    ) -> PostgresStore:
        """Connect a pool of at most ``pool_size`` connections to the database at ``url``.

        Raises ``StoreUnavailable`` if the server cannot be reached or refuses us,
        ``SchemaError`` if the database holds a newer schema than this version knows.
        """
        if pool_size < 1:
            raise InvalidInput(f"pool_size must be at least 1, got {pool_size}")
        try:
            urlsplit(url).port  # noqa: B018  # parsing the port validates the address
        except ValueError as exc:
            raise InvalidInput(f"malformed PostgreSQL URL: {exc}") from exc
        store = cls(url, pool_size, connect_timeout)
        try:
            await store._call("connect", store._connect)
            await store._call("check the schema version", store._check_not_newer)
        except BaseException:
            await store.close()
            raise
        return store

    # -- running coroutines on the right loop ----------------------------------------

    async def _call(self, what: str, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        if self._closed:
            raise StoreUnavailable(f"the PostgreSQL store at {self._where} is closed")

        async def guarded() -> T:
            try:
                return await fn(*args)
            except PromptActorsError:
                raise
            except DRIVER_ERRORS as exc:
                raise translate(f"PostgreSQL could not {what} ({self._where})", exc) from exc

        return await self._runner.run(guarded)

    @property
    def _db(self) -> Pool:
        if self._pool is None:
            raise StoreUnavailable(f"the PostgreSQL store at {self._where} is not connected")
        return self._pool

    async def _connect(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self._url,
                min_size=1,
                max_size=self._pool_size,
                timeout=self._connect_timeout,
                init=_init_connection,
            )
        except (ValueError, pgerr.ClientConfigurationError) as exc:
            raise InvalidInput(f"unusable PostgreSQL URL {self._where}: {exc}") from exc

    async def close(self) -> None:
        """Close the pool (waiting for connections in use) and stop the store's thread."""
        if self._closed:
            return
        pool, self._pool = self._pool, None
        try:
            if pool is not None:
                with anyio.CancelScope(shield=True):
                    await self._call("close the pool", _close_pool, pool, self._connect_timeout)
        finally:
            self._closed = True
            await self._runner.aclose()

    # -- schema ----------------------------------------------------------------------

    async def _version(self, conn: Any) -> int:
        if not await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
            return 0
        return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))

    async def _check_not_newer(self) -> None:
        version, latest = await self._version(self._db), latest_version("postgres")
        if version > latest:
            raise SchemaError(
                f"the database {self._where} has schema version {version}, newer than the "
                f"{latest} this version of promptactors knows: upgrade promptactors"
            )

    async def schema_version(self) -> int:
        """The highest migration applied (0 for an empty database)."""
        return await self._call("read the schema version", lambda: self._version(self._db))

    async def migrate(self) -> int:
        """Apply the pending migrations in one transaction; return how many."""
        return await self._call("migrate the schema", self._migrate)

    async def _migrate(self) -> int:
        async with self._db.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", ADVISORY_LOCK_KEY)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            current, latest = await self._version(conn), latest_version("postgres")
            if current > latest:
                raise SchemaError(
                    f"the database {self._where} has schema version {current}, newer than the "
                    f"{latest} this version of promptactors knows: upgrade promptactors"
                )
            applied = 0
            for migration in load_migrations("postgres"):
                if migration.version <= current:
                    continue
                try:
                    async with conn.transaction():  # a savepoint: name the failing migration
                        await conn.execute(migration.sql)
                except pgerr.PostgresError as exc:
                    raise SchemaError(
                        f"PostgreSQL migration {migration.version:04d}_{migration.name} failed on "
                        f"{self._where}: {type(exc).__name__}: {exc}"
                    ) from exc
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
                applied += 1
            return applied

    # -- prompts and actions ---------------------------------------------------------

    async def get_prompt(self, prompt_id: str, source: PromptSource = "prompts") -> PromptRecord:
        """Read one prompt from ``source``. Raises ``PromptNotFound``."""
        check_id(prompt_id, "prompt id")
        check_choice(source, PROMPT_SOURCES, "prompt source")

        async def read() -> PromptRecord:
            row = await self._db.fetchrow(f"SELECT * FROM {source} WHERE id = $1", prompt_id)
            if row is None:
                raise PromptNotFound(prompt_id, f"prompt {prompt_id!r} not found in {source}")
            return prompt_from_row(row, POSTGRES)

        return await self._call(f"read prompt {prompt_id!r}", read)

    async def put_prompt(self, prompt: PromptRecord, source: PromptSource = "prompts") -> None:
        """Insert or replace a prompt in ``source``."""
        check_choice(source, PROMPT_SOURCES, "prompt source")
        messages, defaults, settings = prompt_json(prompt)
        sql = (
            f"INSERT INTO {source} (id, name, description, messages, variable_defaults, settings)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET"
            " name = excluded.name, description = excluded.description,"
            " messages = excluded.messages, variable_defaults = excluded.variable_defaults,"
            " settings = excluded.settings, updated_at = now()"
        )
        args = (prompt.id, prompt.name, prompt.description, messages, defaults, settings)
        await self._call(f"write prompt {prompt.id!r}", self._execute, sql, *args)

    async def _execute(self, sql: str, *args: Any) -> int:
        return _count(await self._db.execute(sql, *args))

    async def get_action(self, action_id: str) -> ActionRecord:
        """Read one prompt action. Raises ``ActionNotFound``."""
        check_id(action_id, "action id")

        async def read() -> ActionRecord:
            row = await self._db.fetchrow("SELECT * FROM prompt_actions WHERE id = $1", action_id)
            if row is None:
                raise ActionNotFound(action_id)
            return action_from_row(row, POSTGRES)

        return await self._call(f"read action {action_id!r}", read)

    async def put_action(self, action: ActionRecord) -> None:
        """Insert or replace a prompt action."""
        sql = (
            "INSERT INTO prompt_actions (id, name, prompt_id, prompt_source, broker_mappings,"
            " optional_variables, hardcoded_values, execution_config)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET"
            " name = excluded.name, prompt_id = excluded.prompt_id,"
            " prompt_source = excluded.prompt_source, broker_mappings = excluded.broker_mappings,"
            " optional_variables = excluded.optional_variables,"
            " hardcoded_values = excluded.hardcoded_values,"
            " execution_config = excluded.execution_config, updated_at = now()"
        )
        args = (
            action.id,
            action.name,
            action.prompt_id,
            action.prompt_source,
            dict(action.broker_mappings),
            sorted(action.optional_variables),
            dict(action.hardcoded_values),
            dict(action.execution_config),
        )
        await self._call(f"write action {action.id!r}", self._execute, sql, *args)

    # -- scoped variables and broker values ------------------------------------------

    async def get_scoped_variables(
        self, user_id: str | None = None, org_id: str | None = None, project_id: str | None = None
    ) -> ScopedVariables:
        """Read the user, org and project variables of a context in one query."""
        sql = (
            "SELECT 'user' AS scope, key, value FROM user_variables WHERE user_id = $1"
            " UNION ALL SELECT 'org', key, value FROM org_variables WHERE org_id = $2"
            " UNION ALL SELECT 'project', key, value FROM project_variables WHERE project_id = $3"
        )

        async def read() -> ScopedVariables:
            result = ScopedVariables({}, {}, {})
            for scope, key, value in await self._db.fetch(sql, user_id, org_id, project_id):
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
        table, column = SCOPE_TABLES[scope], SCOPE_COLUMNS[scope]
        sql = (
            f"INSERT INTO {table} ({column}, key, value) VALUES ($1, $2, $3)"
            f" ON CONFLICT ({column}, key) DO UPDATE SET value = excluded.value, updated_at = now()"
        )
        await self._call(
            f"write {scope} variable {key!r}", self._execute, sql, owner_id, key, value
        )

    async def delete_scoped_variable(self, scope: Scope, owner_id: str, key: str) -> bool:
        """Delete one scoped variable; return whether it existed."""
        check_choice(scope, SCOPES, "scope")
        sql = f"DELETE FROM {SCOPE_TABLES[scope]} WHERE {SCOPE_COLUMNS[scope]} = $1 AND key = $2"
        return (
            await self._call(f"delete {scope} variable {key!r}", self._execute, sql, owner_id, key)
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
        sql = (
            "SELECT broker_id, scope_kind, scope_id, value FROM broker_values"
            " WHERE broker_id = ANY($1::text[])"
            " AND (scope_kind = 'global' OR (scope_kind, scope_id)"
            " IN (SELECT * FROM unnest($2::text[], $3::text[])))"
        )

        async def read() -> dict[str, str]:
            rows = await self._db.fetch(sql, ids, list(context), list(context.values()))
            return broker_pick([(r[0], r[1], r[2], r[3]) for r in rows], context)

        return await self._call("read broker values", read)

    async def put_broker_value(
        self, broker_id: str, value: str, *, scope_kind: str = "global", scope_id: str = ""
    ) -> None:
        """Insert or replace the value of a broker for one scope."""
        check_id(broker_id, "broker id")
        check_id(scope_kind, "scope kind")
        sql = (
            "INSERT INTO broker_values (broker_id, scope_kind, scope_id, value)"
            " VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (broker_id, scope_kind, scope_id)"
            " DO UPDATE SET value = excluded.value, updated_at = now()"
        )
        args = (broker_id, scope_kind, scope_id, value)
        await self._call(f"write broker value {broker_id!r}", self._execute, sql, *args)

    # -- runs and tasks --------------------------------------------------------------

    async def apply(self, ops: Sequence[WriteOp]) -> None:
        """Commit many write operations in one transaction, grouped into pipelined statements."""
        batch, fences = plan(ops), fenced(ops)
        if not ops:
            return

        async def run() -> None:
            async with self._db.acquire() as conn, conn.transaction():
                await apply_batch(conn, batch, fences)

        await self._call(f"commit a batch of {len(ops)} writes", run)

    async def _own(self, op: Ownership) -> int:
        return await self._call(f"{op.kind} run {op.run_id!r}", lambda: own_run(self._db, op))

    async def get_run(self, run_id: str) -> RunRecord:
        """Read one run. Raises ``RunNotFound``."""
        check_id(run_id, "run id")

        async def read() -> RunRecord:
            row = await self._db.fetchrow("SELECT * FROM ai_runs WHERE id = $1", run_id)
            if row is None:
                raise RunNotFound(run_id)
            return run_from_row(row, POSTGRES)

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
        given = [(name, value) for name, value in filters.items() if value is not None]
        where = [f"{name} = ${i}" for i, (name, _) in enumerate(given, 1)]
        sql = "SELECT * FROM ai_runs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += f" ORDER BY created_at DESC, id LIMIT ${len(given) + 1}"

        async def read() -> list[RunRecord]:
            rows = await self._db.fetch(sql, *(value for _, value in given), limit)
            return [run_from_row(r, POSTGRES) for r in rows]

        return await self._call("list runs", read)

    async def get_task(self, task_id: str) -> TaskRecord:
        """Read one task. Raises ``NotFound``."""
        check_id(task_id, "task id")

        async def read() -> TaskRecord:
            row = await self._db.fetchrow("SELECT * FROM ai_tasks WHERE id = $1", task_id)
            if row is None:
                raise NotFound(task_id, f"task {task_id!r} not found")
            return task_from_row(row, POSTGRES)

        return await self._call(f"read task {task_id!r}", read)

    async def list_tasks(self, run_id: str) -> list[TaskRecord]:
        """The tasks of a run, oldest first."""
        sql = "SELECT * FROM ai_tasks WHERE run_id = $1 ORDER BY created_at, attempt, id"

        async def read() -> list[TaskRecord]:
            return [task_from_row(r, POSTGRES) for r in await self._db.fetch(sql, run_id)]

        return await self._call(f"list the tasks of run {run_id!r}", read)

    # -- recovery and scale-out ------------------------------------------------------

    async def heartbeat(self, executor_id: str) -> int:
        """Refresh the heartbeat of the running runs ``executor_id`` owns; return how many."""
        check_id(executor_id, "executor id")
        sql = (
            "UPDATE ai_runs SET heartbeat_at = now() WHERE status = 'running' AND executor_id = $1"
        )
        return await self._call("write a heartbeat", self._execute, sql, executor_id)

    async def find_unfinished(
        self, *, executor_id: str | None = None, stale_after: float | None = None
    ) -> Unfinished:
        """Runs left running (of one executor, with a stale heartbeat, when given) and
        their running tasks."""
        where: list[str] = ["status = 'running'"]
        args: list[Any] = []
        if executor_id is not None:
            args.append(executor_id)
            where.append(f"executor_id = ${len(args)}")
        if stale_after is not None:
            args.append(float(stale_after))
            where.append(_STALE.format(n=len(args)))
        runs_sql = "SELECT * FROM ai_runs WHERE " + " AND ".join(where) + " ORDER BY created_at, id"
        task_sql = (
            "SELECT * FROM ai_tasks WHERE status = 'running' AND (run_id IN"
            f" (SELECT id FROM ai_runs WHERE {' AND '.join(where)})"
            + (" OR run_id IS NULL)" if len(where) == 1 else ")")
            + " ORDER BY created_at, id"
        )

        async def read() -> Unfinished:
            async with (
                self._db.acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                runs = tuple(run_from_row(r, POSTGRES) for r in await conn.fetch(runs_sql, *args))
                tasks = tuple(task_from_row(r, POSTGRES) for r in await conn.fetch(task_sql, *args))
            return Unfinished(runs, tasks)

        return await self._call("find unfinished runs", read)

    async def claim_stale_runs(
        self, executor_id: str, stale_after: float, *, limit: int = 100
    ) -> list[RunRecord]:
        """Atomically take over running runs whose heartbeat is older than ``stale_after``
        seconds; concurrent claimers skip each other's rows (``FOR UPDATE SKIP LOCKED``)."""
        check_id(executor_id, "executor id")
        stale = _STALE.format(n=2)
        sql = (
            "UPDATE ai_runs SET executor_id = $1, heartbeat_at = now(), updated_at = now(),"
            " version = version + 1 WHERE id IN (SELECT id FROM ai_runs WHERE status = 'running'"
            f" AND {stale} ORDER BY heartbeat_at LIMIT $3 FOR UPDATE SKIP LOCKED)"
            f" AND status = 'running' AND {stale} RETURNING *"
        )

        async def claim() -> list[RunRecord]:
            rows = await self._db.fetch(sql, executor_id, float(stale_after), limit)
            return sorted(
                (run_from_row(r, POSTGRES) for r in rows), key=lambda r: (r.created_at, r.id)
            )

        return await self._call("claim stale runs", claim)

    async def mark_interrupted(
        self, run_ids: Collection[str], *, error: str = "interrupted", keep_runs: bool = False
    ) -> int:
        """Mark the running tasks of ``run_ids`` (and the runs unless ``keep_runs``)
        interrupted; return how many tasks were marked."""
        ids = list(dict.fromkeys(run_ids))

        async def mark() -> int:
            async with self._db.acquire() as conn, conn.transaction():
                count = _count(
                    await conn.execute(
                        "UPDATE ai_tasks SET status = 'interrupted', error = $2,"
                        " updated_at = now(), completed_at = now()"
                        " WHERE status = 'running' AND run_id = ANY($1::text[])",
                        ids,
                        error,
                    )
                )
                if not keep_runs:
                    await conn.execute(
                        "UPDATE ai_runs SET status = 'interrupted', error = $2, updated_at = now(),"
                        " version = version + 1 WHERE status = 'running' AND id = ANY($1::text[])",
                        ids,
                        error,
                    )
            return count

        return await self._call("mark runs interrupted", mark)

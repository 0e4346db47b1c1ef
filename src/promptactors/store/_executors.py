"""Executors and their leases, for both adapters (mixed into the store classes).

An executor is one runtime process: a row in ``executors`` with a heartbeat. It holds the
runs it runs through leases on ``ai_runs`` (``owner_id``, ``fence``, ``lease_expires_at``)
and renews all of them with its heartbeat in ONE statement (PostgreSQL; one transaction on
SQLite), never one per run. A live executor reclaims the running runs whose lease expired:
the fence grows, so every write the previous owner still carries is refused.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, TypeVar

from ._records import RunRecord, check_id, check_lease
from ._rows import POSTGRES, SQLITE, run_from_row
from ._sqlite_writes import now as _now
from ._sqlite_writes import shifted

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable

__all__ = ["ExecutorRecord", "PostgresExecutors", "SqliteExecutors", "this_host"]

T = TypeVar("T")


def this_host() -> str:
    """The host name an executor row records."""
    return socket.gethostname() or "localhost"


@dataclass(frozen=True, slots=True)
class ExecutorRecord:
    """An executor (table ``executors``) and the leases it holds.

    ``alive`` is whether its heartbeat is younger than its ``lease_seconds``; ``runs`` how
    many running runs it holds, ``expired_leases`` how many of those have a lease that has
    passed (a live reclaimer takes them over).
    """

    id: str
    host: str
    pid: int
    group: str | None
    started_at: datetime
    heartbeat_at: datetime
    lease_seconds: float
    alive: bool
    runs: int = 0
    expired_leases: int = 0


def _record(row: Any, alive: bool, time: Callable[[Any], datetime | None]) -> ExecutorRecord:
    started, beat = time(row["started_at"]), time(row["heartbeat_at"])
    assert started is not None
    assert beat is not None
    return ExecutorRecord(
        id=row["id"],
        host=row["host"],
        pid=row["pid"],
        group=row["group_name"],
        started_at=started,
        heartbeat_at=beat,
        lease_seconds=float(row["lease_seconds"]),
        alive=alive,
        runs=int(row["runs"]),
        expired_leases=int(row["expired_leases"]),
    )


def _checked(executor_id: str, lease_seconds: float) -> float:
    check_id(executor_id, "executor id")
    return check_lease(lease_seconds)


# -- PostgreSQL -------------------------------------------------------------------------

_PG_LEASE: Final = "now() + $2::float8 * interval '1 second'"
_PG_RENEW: Final = f"""
WITH beat AS (
    UPDATE executors SET heartbeat_at = now(), lease_seconds = $2 WHERE id = $1 RETURNING 1
), renewed AS (
    UPDATE ai_runs SET heartbeat_at = now(),
        lease_expires_at = CASE WHEN lease_expires_at IS NULL THEN NULL ELSE {_PG_LEASE} END
    WHERE status = 'running' AND executor_id = $1
    RETURNING 1
)
SELECT (SELECT count(*) FROM beat) AS beat, (SELECT count(*) FROM renewed) AS renewed
"""
_PG_RECLAIM: Final = f"""
UPDATE ai_runs SET owner_id = $1, executor_id = $1, fence = fence + 1,
    takeovers = takeovers + 1, lease_expires_at = {_PG_LEASE}, heartbeat_at = now(),
    updated_at = now(), version = version + 1
WHERE id IN (
    SELECT id FROM ai_runs
    WHERE status = 'running' AND lease_expires_at < now() AND executor_id IS DISTINCT FROM $1
    ORDER BY lease_expires_at LIMIT $3 FOR UPDATE SKIP LOCKED
) AND status = 'running' AND lease_expires_at < now()
RETURNING *
"""
_PG_LIST: Final = """
SELECT e.*, e.heartbeat_at + e.lease_seconds * interval '1 second' > now() AS alive,
    (SELECT count(*) FROM ai_runs r WHERE r.status = 'running' AND r.executor_id = e.id)
        AS runs,
    (SELECT count(*) FROM ai_runs r WHERE r.status = 'running' AND r.executor_id = e.id
        AND r.lease_expires_at < now()) AS expired_leases
FROM executors e ORDER BY e.started_at, e.id
"""


_PG_RELEASE_ALL: Final = (
    "UPDATE ai_runs SET owner_id = NULL, lease_expires_at = NULL, updated_at = now()"
    " WHERE owner_id = $1 AND status <> 'running'"
)


class PostgresExecutors:
    """The executor methods of ``Store`` on PostgreSQL."""

    _db: Any
    _call: Any

    async def register_executor(
        self, executor_id: str, *, lease_seconds: float, pid: int, group: str | None = None
    ) -> None:
        """Insert (or refresh) the heartbeat row of an executor."""
        lease = _checked(executor_id, lease_seconds)
        sql = (
            "INSERT INTO executors (id, host, pid, group_name, lease_seconds)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET host = $2, pid = $3,"
            " group_name = $4, lease_seconds = $5, started_at = now(), heartbeat_at = now()"
        )

        async def run() -> None:
            await self._db.execute(sql, executor_id, this_host(), pid, group, lease)

        await self._call(f"register executor {executor_id!r}", run)

    async def renew_leases(self, executor_id: str, lease_seconds: float) -> tuple[bool, int]:
        """Beat the executor's heartbeat and renew the leases of its running runs, in one
        statement; return (whether its row exists, how many runs were renewed)."""
        lease = _checked(executor_id, lease_seconds)

        async def run() -> tuple[bool, int]:
            row = await self._db.fetchrow(_PG_RENEW, executor_id, lease)
            return bool(row["beat"]), int(row["renewed"])

        result: tuple[bool, int] = await self._call("renew leases", run)
        return result

    async def reclaim_expired(
        self, executor_id: str, lease_seconds: float, *, limit: int = 100
    ) -> list[RunRecord]:
        """Take over running runs of other executors whose lease has expired; concurrent
        reclaimers skip each other's rows (``FOR UPDATE SKIP LOCKED``)."""
        lease = _checked(executor_id, lease_seconds)

        async def run() -> list[RunRecord]:
            rows = await self._db.fetch(_PG_RECLAIM, executor_id, lease, limit)
            return [run_from_row(r, POSTGRES) for r in rows]

        result: list[RunRecord] = await self._call("reclaim expired leases", run)
        return result

    async def remove_executor(self, executor_id: str) -> None:
        """Delete an executor's row and free the ended runs it holds (a clean stop; runs
        still running keep their lease, to be reclaimed once it expires)."""
        check_id(executor_id, "executor id")

        async def run() -> None:
            async with self._db.acquire() as conn, conn.transaction():
                await conn.execute(_PG_RELEASE_ALL, executor_id)
                await conn.execute("DELETE FROM executors WHERE id = $1", executor_id)

        await self._call(f"remove executor {executor_id!r}", run)

    async def prune_executors(self, older_than: float) -> int:
        """Delete the rows of executors silent for more than ``older_than`` seconds (and
        their lease) that hold no running run; return how many."""
        sql = (
            "DELETE FROM executors e WHERE e.heartbeat_at < now() - greatest($1::float8,"
            " e.lease_seconds) * interval '1 second' AND NOT EXISTS (SELECT 1 FROM ai_runs r"
            " WHERE r.status = 'running' AND r.executor_id = e.id)"
        )

        async def run() -> int:
            status = await self._db.execute(sql, float(older_than))
            return int(status.rsplit(" ", 1)[-1])

        result: int = await self._call("prune executors", run)
        return result

    async def list_executors(self) -> list[ExecutorRecord]:
        """Every executor row, oldest first, with the leases it holds."""

        async def run() -> list[ExecutorRecord]:
            rows = await self._db.fetch(_PG_LIST)
            return [_record(r, bool(r["alive"]), POSTGRES.time) for r in rows]

        result: list[ExecutorRecord] = await self._call("list executors", run)
        return result


# -- SQLite -----------------------------------------------------------------------------

_SQLITE_LIST: Final = """
SELECT e.*,
    (SELECT count(*) FROM ai_runs r WHERE r.status = 'running' AND r.executor_id = e.id)
        AS runs,
    (SELECT count(*) FROM ai_runs r WHERE r.status = 'running' AND r.executor_id = e.id
        AND r.lease_expires_at < ?) AS expired_leases
FROM executors e ORDER BY e.started_at, e.id
"""


_SQLITE_RELEASE_ALL: Final = (
    "UPDATE ai_runs SET owner_id = NULL, lease_expires_at = NULL"
    " WHERE owner_id = ? AND status <> 'running'"
)


class SqliteExecutors:
    """The executor methods of ``Store`` on SQLite (each call one transaction)."""

    _call: Any
    _transaction: Any

    async def _tx(self, what: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        result: T = await self._call(what, self._transaction, fn)
        return result

    async def register_executor(
        self, executor_id: str, *, lease_seconds: float, pid: int, group: str | None = None
    ) -> None:
        """Insert (or refresh) the heartbeat row of an executor."""
        lease = _checked(executor_id, lease_seconds)

        def run(conn: sqlite3.Connection) -> None:
            now = _now()
            conn.execute(
                "INSERT INTO executors (id, host, pid, group_name, started_at, heartbeat_at,"
                " lease_seconds) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                " host = excluded.host, pid = excluded.pid, group_name = excluded.group_name,"
                " started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,"
                " lease_seconds = excluded.lease_seconds",
                (executor_id, this_host(), pid, group, now, now, lease),
            )

        await self._tx(f"register executor {executor_id!r}", run)

    async def renew_leases(self, executor_id: str, lease_seconds: float) -> tuple[bool, int]:
        """Beat the executor's heartbeat and renew the leases of its running runs, in one
        transaction; return (whether its row exists, how many runs were renewed)."""
        lease = _checked(executor_id, lease_seconds)

        def run(conn: sqlite3.Connection) -> tuple[bool, int]:
            now, until = _now(), shifted(lease)
            beat = conn.execute(
                "UPDATE executors SET heartbeat_at = ?, lease_seconds = ? WHERE id = ?",
                (now, lease, executor_id),
            ).rowcount
            renewed = conn.execute(
                "UPDATE ai_runs SET heartbeat_at = ?, lease_expires_at = CASE WHEN"
                " lease_expires_at IS NULL THEN NULL ELSE ? END"
                " WHERE status = 'running' AND executor_id = ?",
                (now, until, executor_id),
            ).rowcount
            return bool(beat), renewed

        return await self._tx("renew leases", run)

    async def reclaim_expired(
        self, executor_id: str, lease_seconds: float, *, limit: int = 100
    ) -> list[RunRecord]:
        """Take over running runs of other executors whose lease has expired."""
        lease = _checked(executor_id, lease_seconds)

        def run(conn: sqlite3.Connection) -> list[RunRecord]:
            now = _now()
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM ai_runs WHERE status = 'running' AND lease_expires_at < ?"
                    " AND executor_id IS NOT ? ORDER BY lease_expires_at LIMIT ?",
                    (now, executor_id, limit),
                )
            ]
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            conn.execute(
                "UPDATE ai_runs SET owner_id = ?, executor_id = ?, fence = fence + 1,"
                " takeovers = takeovers + 1, lease_expires_at = ?, heartbeat_at = ?,"
                f" updated_at = ?, version = version + 1 WHERE id IN ({marks})",
                (executor_id, executor_id, shifted(lease), now, now, *ids),
            )
            rows = conn.execute(f"SELECT * FROM ai_runs WHERE id IN ({marks})", ids)
            return [run_from_row(r, SQLITE) for r in rows]

        return await self._tx("reclaim expired leases", run)

    async def remove_executor(self, executor_id: str) -> None:
        """Delete an executor's row and free the ended runs it holds (a clean stop; runs
        still running keep their lease, to be reclaimed once it expires)."""
        check_id(executor_id, "executor id")

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(_SQLITE_RELEASE_ALL, (executor_id,))
            conn.execute("DELETE FROM executors WHERE id = ?", (executor_id,))

        await self._tx(f"remove executor {executor_id!r}", run)

    async def prune_executors(self, older_than: float) -> int:
        """Delete the rows of executors silent for more than ``older_than`` seconds (and
        their lease) that hold no running run; return how many."""

        def run(conn: sqlite3.Connection) -> int:
            silent = conn.execute(
                "SELECT id, heartbeat_at, lease_seconds FROM executors WHERE heartbeat_at < ?"
                " AND NOT EXISTS (SELECT 1 FROM ai_runs r WHERE r.status = 'running'"
                " AND r.executor_id = executors.id)",
                (shifted(-older_than),),
            ).fetchall()
            gone = [r[0] for r in silent if r[1] < shifted(-max(older_than, r[2]))]
            for executor_id in gone:
                conn.execute("DELETE FROM executors WHERE id = ?", (executor_id,))
            return len(gone)

        return await self._tx("prune executors", run)

    async def list_executors(self) -> list[ExecutorRecord]:
        """Every executor row, oldest first, with the leases it holds."""

        def run(conn: sqlite3.Connection) -> list[ExecutorRecord]:
            now = datetime.now(UTC)
            result = []
            for row in conn.execute(_SQLITE_LIST, (_now(),)):
                beat = SQLITE.time(row["heartbeat_at"])
                assert beat is not None
                alive = beat + timedelta(seconds=float(row["lease_seconds"])) > now
                result.append(_record(row, alive, SQLITE.time))
            return result

        return await self._tx("list executors", run)

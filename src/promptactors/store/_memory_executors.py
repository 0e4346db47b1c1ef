"""The executor and lease methods of the memory store (mixed into ``MemoryStore``).

The same semantics as the SQL adapters (``_executors.py``): an executor row with a
heartbeat, leases on running runs renewed in bulk with it, expired leases reclaimed with a
grown fence. Times are the store's clock seconds (virtual under a ``MockClock``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.lowlevel

from ._executors import ExecutorRecord, this_host
from ._records import RunRecord, check_id, check_lease
from ._rows import run_from_row

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from ._memory_writes import Row, Tables

__all__ = ["MemoryExecutors"]


class MemoryExecutors:
    """``Store``'s executor methods on the memory store's tables."""

    if TYPE_CHECKING:
        _tables: Tables
        _decoder: Any
        writes: int
        reads: int

        def _serve(self) -> None: ...

        def _now(self) -> float: ...

        def _datetime(self, value: Any) -> datetime | None: ...

    _executors: dict[str, Row]  # set by the store's __init__

    async def _enter(self) -> float:
        await anyio.lowlevel.checkpoint()
        self._serve()
        return self._now()

    async def register_executor(
        self, executor_id: str, *, lease_seconds: float, pid: int, group: str | None = None
    ) -> None:
        """Insert (or refresh) the heartbeat row of an executor."""
        lease = check_lease(lease_seconds)
        check_id(executor_id, "executor id")
        now = await self._enter()
        self._executors[executor_id] = {
            "id": executor_id,
            "host": this_host(),
            "pid": pid,
            "group_name": group,
            "started_at": now,
            "heartbeat_at": now,
            "lease_seconds": lease,
        }
        self.writes += 1

    async def renew_leases(self, executor_id: str, lease_seconds: float) -> tuple[bool, int]:
        """Beat the executor's heartbeat and renew the leases of its running runs."""
        lease = check_lease(lease_seconds)
        check_id(executor_id, "executor id")
        now = await self._enter()
        row = self._executors.get(executor_id)
        if row is not None:
            row.update(heartbeat_at=now, lease_seconds=lease)
        renewed = 0
        for run in self._running_of(executor_id):
            run["heartbeat_at"] = now
            if run["lease_expires_at"] is not None:
                run["lease_expires_at"] = now + lease
            renewed += 1
        self.writes += 1
        return row is not None, renewed

    async def reclaim_expired(
        self, executor_id: str, lease_seconds: float, *, limit: int = 100
    ) -> list[RunRecord]:
        """Take over running runs of other executors whose lease has expired."""
        lease = check_lease(lease_seconds)
        check_id(executor_id, "executor id")
        now = await self._enter()
        expired = sorted(
            (
                run
                for run in self._tables.runs.values()
                if run["status"] == "running"
                and run["lease_expires_at"] is not None
                and run["lease_expires_at"] < now
                and run["executor_id"] != executor_id
            ),
            key=lambda run: run["lease_expires_at"],
        )[:limit]
        for run in expired:
            run.update(
                owner_id=executor_id,
                executor_id=executor_id,
                fence=run["fence"] + 1,
                takeovers=run.get("takeovers", 0) + 1,
                lease_expires_at=now + lease,
                heartbeat_at=now,
                updated_at=now,
                version=run["version"] + 1,
            )
        self.writes += 1
        return [run_from_row(dict(run), self._decoder) for run in expired]

    async def remove_executor(self, executor_id: str) -> None:
        """Delete an executor's row and free the ended runs it holds."""
        check_id(executor_id, "executor id")
        now = await self._enter()
        for run in self._tables.runs.values():
            if run["owner_id"] == executor_id and run["status"] != "running":
                run.update(owner_id=None, lease_expires_at=None, updated_at=now)
        self._executors.pop(executor_id, None)
        self.writes += 1

    async def prune_executors(self, older_than: float) -> int:
        """Delete executors silent for more than ``older_than`` seconds (and their lease)
        that hold no running run; return how many."""
        now = await self._enter()
        rows = self._executors
        gone = [
            executor_id
            for executor_id, row in rows.items()
            if row["heartbeat_at"] < now - max(older_than, row["lease_seconds"])
            and not any(True for _ in self._running_of(executor_id))
        ]
        for executor_id in gone:
            del rows[executor_id]
        self.writes += 1
        return len(gone)

    async def list_executors(self) -> list[ExecutorRecord]:
        """Every executor, oldest first: alive or expired, with the leases it holds."""
        now = await self._enter()
        result = []
        time: Callable[[Any], datetime | None] = self._datetime
        for row in sorted(self._executors.values(), key=lambda r: (r["started_at"], r["id"])):
            runs = list(self._running_of(row["id"]))
            expired = sum(
                1 for r in runs if r["lease_expires_at"] is not None and r["lease_expires_at"] < now
            )
            started, beat = time(row["started_at"]), time(row["heartbeat_at"])
            assert started is not None
            assert beat is not None
            result.append(
                ExecutorRecord(
                    id=row["id"],
                    host=row["host"],
                    pid=row["pid"],
                    group=row["group_name"],
                    started_at=started,
                    heartbeat_at=beat,
                    lease_seconds=float(row["lease_seconds"]),
                    alive=row["heartbeat_at"] + row["lease_seconds"] > now,
                    runs=len(runs),
                    expired_leases=expired,
                )
            )
        self.reads += 1
        return result

    def _running_of(self, executor_id: str) -> Any:
        return (
            run
            for run in self._tables.runs.values()
            if run["status"] == "running" and run["executor_id"] == executor_id
        )

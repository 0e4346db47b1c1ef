"""Claims on SQLite and the helpers of its writes, run on the store's thread inside one
transaction (batches of runs and tasks: ``_sqlite_batch``). The store's single writer
(``BEGIN IMMEDIATE``) keeps a claim from slipping between its check and its write.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from promptactors._exceptions import RunInUse, RunNotFound, StoreConflict

from ._records import (
    Ownership,
    stale_claim_message,
)

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterator, Sequence

__all__ = ["CHUNK", "chunks", "marks", "now", "own_run", "shifted"]


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


CHUNK = 500  # ids per IN (...) list, well under SQLite's parameter limit


def marks(n: int) -> str:
    """``n`` SQL parameter marks: ``?,?,?``."""
    return ",".join("?" * n)


def chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    """``items`` in slices of at most ``CHUNK``, for ``IN (...)`` lists."""
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]

"""asyncpg's exceptions translated into ours, by what the caller can do about them.

``StoreUnavailable`` means "retry later": the server is unreachable, restarting, shutting
down our connection or out of connections. ``StoreNotWritable`` means "an operator must
act" (disk full, a read-only server): the run tracker fails such writes at once rather
than retrying them forever.
"""

from __future__ import annotations

from typing import Final

import asyncpg
import asyncpg.exceptions as pgerr

from promptactors._exceptions import (
    SchemaError,
    StoreConflict,
    StoreError,
    StoreNotWritable,
    StoreUnavailable,
)

__all__ = ["DRIVER_ERRORS", "translate"]

_UNAVAILABLE: Final = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,  # includes a connection found closed (ConnectionDoesNotExist)
    pgerr.PostgresConnectionError,
    pgerr.InvalidCatalogNameError,
    pgerr.InvalidAuthorizationSpecificationError,
    pgerr.InsufficientResourcesError,
    pgerr.OperatorInterventionError,  # admin shutdown, "the database system is starting up"
)
_CONFLICT: Final = (pgerr.IntegrityConstraintViolationError, pgerr.TransactionRollbackError)
_SCHEMA: Final = (pgerr.UndefinedTableError, pgerr.UndefinedColumnError)

DRIVER_ERRORS: Final = (*_UNAVAILABLE, *_CONFLICT, *_SCHEMA, pgerr.PostgresError)
"""Every exception the PostgreSQL adapter translates."""


def translate(context: str, exc: BaseException) -> StoreError:
    """Our error for the driver's ``exc``; ``context`` starts the message (what failed, where)."""
    text = f"{context}: {type(exc).__name__}: {exc}"
    if isinstance(exc, _CONFLICT):
        return StoreConflict(text)
    if isinstance(exc, _SCHEMA):
        return SchemaError(text + " -- is the schema migrated?")
    # Before _UNAVAILABLE: a full disk is an InsufficientResourcesError, yet no retry helps.
    if isinstance(exc, pgerr.DiskFullError):
        return StoreNotWritable(text + " -- the server's disk is full")
    if isinstance(exc, pgerr.ReadOnlySQLTransactionError):
        return StoreNotWritable(text + " -- the database is read-only (a standby?)")
    if isinstance(exc, _UNAVAILABLE):
        return StoreUnavailable(text)
    return StoreError(text)

"""Persistence behind one protocol: SQLite (the embedded default) and PostgreSQL (asyncpg),
plus an in-memory store for tests and simulation (``memory://``, :class:`MemoryStore`).

Open a store with :func:`open_store` from a trio or asyncio task; everything else goes
through the :class:`Store` protocol. Writes to runs and tasks are operations
(:class:`CreateRun`, :class:`CreateTask`, :class:`FinishTurn`...) that can be applied one
at a time or many in one transaction with ``Store.apply`` (group commit). Run and task ids
are idempotency keys: replaying an operation never duplicates rows or messages.
"""

from __future__ import annotations

from ._executors import ExecutorRecord as ExecutorRecord
from ._memory import MemoryStore as MemoryStore
from ._open import open_store as open_store
from ._protocol import Store as Store
from ._records import ActionRecord as ActionRecord
from ._records import CreateRun as CreateRun
from ._records import CreateTask as CreateTask
from ._records import FailTask as FailTask
from ._records import FinishTurn as FinishTurn
from ._records import InterruptTask as InterruptTask
from ._records import PromptMessageRow as PromptMessageRow
from ._records import PromptRecord as PromptRecord
from ._records import PromptSource as PromptSource
from ._records import RunRecord as RunRecord
from ._records import RunStats as RunStats
from ._records import RunStatus as RunStatus
from ._records import Scope as Scope
from ._records import ScopedVariables as ScopedVariables
from ._records import TaskRecord as TaskRecord
from ._records import TaskStatus as TaskStatus
from ._records import Unfinished as Unfinished
from ._records import UpdateRun as UpdateRun
from ._records import VariableDefaultRow as VariableDefaultRow
from ._records import WriteOp as WriteOp

__all__ = [
    "ActionRecord",
    "CreateRun",
    "CreateTask",
    "ExecutorRecord",
    "FailTask",
    "FinishTurn",
    "InterruptTask",
    "MemoryStore",
    "PromptMessageRow",
    "PromptRecord",
    "PromptSource",
    "RunRecord",
    "RunStats",
    "RunStatus",
    "Scope",
    "ScopedVariables",
    "Store",
    "TaskRecord",
    "TaskStatus",
    "Unfinished",
    "UpdateRun",
    "VariableDefaultRow",
    "WriteOp",
    "open_store",
]

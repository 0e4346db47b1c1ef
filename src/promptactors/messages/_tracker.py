"""The commands the run tracker actor receives, and what it answers.

The tracker batches write operations on runs and tasks (group commit). Callers normally go
through ``RunTrackerClient``; these are the messages underneath. A command that waits for
a commit carries a :class:`CommitWaiter`: the tracker settles it once the commit is done,
so the tracker never blocks its mailbox on one caller.

``ops`` are the store's write operations (``promptactors.store.WriteOp``); they are typed
loosely here because ``messages/`` knows nothing of stores — ``RunTrackerClient`` takes
them typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

__all__ = [
    "CommitWaiter",
    "FlushOps",
    "GetTrackerStats",
    "PersistOps",
    "SubmitOps",
    "TrackerCommand",
    "TrackerStats",
]


class CommitWaiter(Protocol):
    """Settled by the tracker exactly once, from the tracker's task."""

    def committed(self) -> None:
        """Everything the waiter covers is committed."""

    def failed(self, error: BaseException) -> None:
        """The operations were refused for good (``StoreConflict``, ``RunNotFound``...)."""

    def note(self, error: BaseException) -> None:
        """A commit attempt failed and will be retried (the last such error is kept)."""


@dataclass(frozen=True, slots=True)
class SubmitOps:
    """Accept ``ops`` for a later group commit; nobody waits for it."""

    ops: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class PersistOps:
    """Accept ``ops`` and settle ``waiter`` once they are committed (or refused)."""

    ops: tuple[Any, ...]
    waiter: CommitWaiter | None = None  # None: the asker's reply is the waiter
    notes: list[BaseException] | None = None  # retried errors, for the asker's timeout message


@dataclass(frozen=True, slots=True)
class FlushOps:
    """Settle ``waiter`` once everything accepted before this command is committed.

    Operations refused for a conflict count as settled: they never will be committed.
    """

    waiter: CommitWaiter | None = None  # None: the asker's reply is the waiter
    notes: list[BaseException] | None = None


@dataclass(frozen=True, slots=True)
class GetTrackerStats:
    """Ask for the tracker's :class:`TrackerStats`."""


@dataclass(frozen=True, slots=True)
class TrackerStats:
    """Counters of one run tracker since it started.

    ``ops_committed``: operations committed; ``batches``: transactions that committed;
    ``largest_batch``: most operations in one of them; ``pending``: operations accepted and
    not committed yet; ``retries``: commit attempts that failed because the store was
    unavailable; ``conflicts``: operations refused (conflict or unknown run/task);
    ``failed``: operations failed because the store refuses every write (missing schema,
    read-only, disk full); ``heartbeats``: heartbeats written.
    """

    ops_committed: int = 0
    batches: int = 0
    largest_batch: int = 0
    pending: int = 0
    retries: int = 0
    conflicts: int = 0
    failed: int = 0
    heartbeats: int = 0


TrackerCommand: TypeAlias = SubmitOps | PersistOps | FlushOps | GetTrackerStats

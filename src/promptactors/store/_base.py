"""What both adapters share: the single-operation methods, the validation of run ownership
calls, and the async context manager."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Self

from .._exceptions import InvalidInput
from ._records import Ownership, check_id, check_lease

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

    from ._records import (
        CreateRun,
        CreateTask,
        FailTask,
        FinishTurn,
        InterruptTask,
        UpdateRun,
        WriteOp,
    )

__all__ = ["StoreBase"]


class StoreBase(ABC):
    """Implements the single-operation write methods of ``Store`` on top of ``apply``."""

    @abstractmethod
    async def apply(self, ops: Sequence[WriteOp]) -> None:
        """Commit many write operations in one transaction."""

    @abstractmethod
    async def close(self) -> None:
        """Release the store's resources. Idempotent."""

    @abstractmethod
    async def _own(self, op: Ownership) -> int:
        """Apply a claim (the new fence), a release (1 if freed, else 0) or a renewal (0)."""

    async def claim_run(
        self, run_id: str, owner_id: str, *, lease_seconds: float | None = None
    ) -> int:
        """Claim a run for ``owner_id``; return the new fencing token (see ``Store``)."""
        check_id(run_id, "run id")
        check_id(owner_id, "owner id")
        lease = None if lease_seconds is None else check_lease(lease_seconds)
        return await self._own(Ownership("claim", run_id, owner_id, lease_seconds=lease))

    async def release_run(self, run_id: str, owner_id: str, fence: int) -> bool:
        """Free a run still held by ``owner_id`` with ``fence``; return whether it was."""
        check_id(run_id, "run id")
        check_id(owner_id, "owner id")
        _check_token(fence)
        return bool(await self._own(Ownership("release", run_id, owner_id, fence)))

    async def renew_run(self, run_id: str, owner_id: str, fence: int, lease_seconds: float) -> None:
        """Extend the lease of a run held by ``owner_id`` with ``fence`` (see ``Store``)."""
        check_id(run_id, "run id")
        check_id(owner_id, "owner id")
        _check_token(fence)
        lease = check_lease(lease_seconds)
        await self._own(Ownership("renew", run_id, owner_id, fence, lease))

    async def create_run(self, op: CreateRun) -> None:
        """Create a run (see ``CreateRun``)."""
        await self.apply((op,))

    async def create_task(self, op: CreateTask) -> None:
        """Create a running task (see ``CreateTask``)."""
        await self.apply((op,))

    async def finish_turn(self, op: FinishTurn) -> None:
        """Complete a task and update its run in one transaction (see ``FinishTurn``)."""
        await self.apply((op,))

    async def fail_task(self, op: FailTask) -> None:
        """Mark a task failed (see ``FailTask``)."""
        await self.apply((op,))

    async def mark_task_interrupted(self, op: InterruptTask) -> None:
        """Mark a task interrupted, keeping its partial output (see ``InterruptTask``)."""
        await self.apply((op,))

    async def update_run(self, op: UpdateRun) -> None:
        """Set fields of a run (see ``UpdateRun``)."""
        await self.apply((op,))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _check_token(fence: object) -> None:
    if not isinstance(fence, int) or isinstance(fence, bool) or fence < 0:
        raise InvalidInput(f"fence must be a non-negative integer, got {fence!r}")

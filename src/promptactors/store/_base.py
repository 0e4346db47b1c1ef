"""What both adapters share: the single-operation methods and the async context manager."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Self

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

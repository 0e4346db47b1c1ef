"""Running a supervisor for the duration of an ``async with`` block."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ._supervisor import Supervisor

__all__ = ["open_supervisor"]


def _unwrap(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@asynccontextmanager
async def open_supervisor(supervisor: Supervisor) -> AsyncIterator[Supervisor]:
    """Run ``supervisor`` for the duration of the block, then shut it down gracefully.

    If the supervisor escalates (``RestartIntensityExceeded``) the block is cancelled and
    that error is raised out of the ``async with``.
    """
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(supervisor.run)
            try:
                yield supervisor
            finally:
                with anyio.CancelScope(shield=True):
                    await supervisor.shutdown()
    except BaseExceptionGroup as group:
        inner = _unwrap(group)
        if inner is group:
            raise
        # Keep its own __cause__ (e.g. the crash behind an escalation); the group is noise.
        raise inner from inner.__cause__

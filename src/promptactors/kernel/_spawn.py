"""Starting an actor without a supervisor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from ._cell import Cell, run_incarnation
from ._ref import ActorRef
from ._start import Starter, start_and_wait

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from ._actor import Actor

M = TypeVar("M")

__all__ = ["graceful_stop", "spawn"]


async def graceful_stop(cell: Cell[Any], timeout: float | None) -> None:
    """Close ``cell`` to new messages, let it drain and run ``on_stop``; kill it after
    ``timeout`` seconds (``cell.shutdown_timeout`` when None; None there means no limit)."""
    if timeout is None:
        timeout = cell.shutdown_timeout
    if not cell.closed:
        cell.closed = True
        cell.request_stop("drain", reason="normal")
    if timeout is None:
        await cell.wait_terminated()
        return
    with anyio.move_on_after(timeout):
        await cell.wait_terminated()
        return
    cell.kill()
    await cell.wait_terminated()


class _Standalone:
    """The owner of actors started with :func:`spawn`."""

    async def stop_child(self, cell: Cell[Any], timeout: float | None) -> None:
        await graceful_stop(cell, timeout)


_STANDALONE = _Standalone()


async def spawn(
    task_group: TaskGroup,
    actor: Actor[M],
    *,
    name: str | None = None,
    mailbox_size: int | None = None,
    shutdown_timeout: float | None = 5.0,
) -> ActorRef[M]:
    """Start ``actor`` as a task of ``task_group`` and return its reference once its
    ``on_start`` has completed.

    No supervisor: if the actor crashes, its error is raised into ``task_group`` (which,
    as any task group does, cancels its other tasks). Raises what ``on_start`` raised if
    the actor fails to start, ``InvalidInput`` for a mailbox size below 1.
    """
    cell: Cell[M] = Cell(
        type(actor),
        name=name,
        mailbox_size=mailbox_size,
        owner=_STANDALONE,
        task_group=task_group,
        shutdown_timeout=shutdown_timeout,
    )
    await start_and_wait(task_group, _run_standalone, cell, actor)
    return ActorRef(cell)


async def _run_standalone(cell: Cell[M], actor: Actor[M], *, task_status: Starter) -> None:
    try:
        exit = await run_incarnation(cell, actor, task_status)
        if exit.kind == "crash":
            assert exit.error is not None
            if not exit.started:
                task_status.fail(exit.error)
                return
            raise exit.error
    finally:
        cell.terminate()
        task_status.abandon()

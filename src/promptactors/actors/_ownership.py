"""Run ownership for instances: a run is continued by at most one live instance.

The in-memory registry cannot decide this (two starts on one run race past it, and other
processes share the database), so the claim lives in the database: ``Store.claim_run``
is atomic and answers the loser with ``RunInUse``. An instance that continues a run holds
a :class:`RunClaim` in its home (it survives restarts) and releases it when it stops.

Today the claim holds until released. Leases (``lease_seconds`` plus ``renew_run``) and
fences on every write are what the scale-out issue builds on the same columns.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import structlog

from .._exceptions import NotFound, StoreError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ..store import Store

__all__ = ["RunClaim", "released_on_error"]

_log = structlog.get_logger("promptactors.ownership")


class RunClaim:
    """An instance's claim on a run: ``fence`` is the token the store handed out."""

    __slots__ = ("_released", "fence", "owner_id", "run_id", "store")

    def __init__(self, store: Store, run_id: str, owner_id: str, fence: int) -> None:
        self.store = store
        self.run_id = run_id
        self.owner_id = owner_id
        self.fence = fence
        self._released = False

    @classmethod
    async def take(cls, store: Store, run_id: str, owner_id: str) -> RunClaim:
        """Claim ``run_id`` for ``owner_id`` until released.

        Raises ``RunInUse`` naming the owner when another instance holds the run,
        ``RunNotFound`` for an unknown run, and the store's errors.
        """
        return cls(store, run_id, owner_id, await store.claim_run(run_id, owner_id))

    async def release(self) -> None:
        """Free the run (once; later calls do nothing). Does not raise: a failure is
        logged, and the claim stays in the database until a takeover."""
        if self._released:
            return
        self._released = True
        try:
            with anyio.CancelScope(shield=True):
                freed = await self.store.release_run(self.run_id, self.owner_id, self.fence)
        except (StoreError, NotFound) as exc:
            _log.warning("run_release_failed", run_id=self.run_id, error=str(exc))
            return
        if not freed:  # taken over since: nothing of ours to free
            _log.warning("run_claim_lost", run_id=self.run_id, owner_id=self.owner_id)


@asynccontextmanager
async def released_on_error(claim: RunClaim | None) -> AsyncIterator[None]:
    """Release ``claim`` (if any) when the block raises: the instance never started."""
    try:
        yield
    except BaseException:
        if claim is not None:
            await claim.release()
        raise

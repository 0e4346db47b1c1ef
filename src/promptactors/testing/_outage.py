"""A store that goes down on command: outage windows for chaos tests."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import anyio

from .._exceptions import StoreUnavailable

if TYPE_CHECKING:
    from types import TracebackType

    from ..store import Store

__all__ = ["OutageStore"]

# What works during an outage too: closing the store must never hang a shutdown.
_ALWAYS_UP = frozenset({"close", "dialect"})


class OutageStore:
    """A :class:`~promptactors.store.Store` proxy around a real store that refuses every
    call with ``StoreUnavailable`` while an outage lasts, and passes everything through
    otherwise::

        flaky = OutageStore(store)
        async with open_runtime(store=flaky) as rt:
            flaky.begin_outage()        # every store call now raises StoreUnavailable
            ...
            flaky.end_outage()
            await flaky.outage(2.0)     # or: down for 2 seconds (on the loop's clock)

    A call already inside the real store when the outage begins completes normally (an
    outage refuses new calls, as a dropped connection pool would). ``close`` always
    reaches the real store. ``refused`` counts the calls refused so far and ``outages``
    the outages begun.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._down = False
        self.refused = 0
        self.outages = 0

    @property
    def wrapped(self) -> Store:
        """The real store."""
        return self._store

    @property
    def is_down(self) -> bool:
        return self._down

    def begin_outage(self) -> None:
        """From now on every call raises ``StoreUnavailable`` (idempotent)."""
        if not self._down:
            self._down = True
            self.outages += 1

    def end_outage(self) -> None:
        """Calls reach the real store again (idempotent)."""
        self._down = False

    async def outage(self, seconds: float) -> None:
        """An outage of ``seconds`` (ended even if the caller is cancelled)."""
        self.begin_outage()
        try:
            await anyio.sleep(seconds)
        finally:
            self.end_outage()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if name in _ALWAYS_UP or name.startswith("_") or not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        async def call(*args: Any, **kwargs: Any) -> Any:
            if self._down:
                self.refused += 1
                raise StoreUnavailable(f"injected store outage: {name} refused")
            return await attribute(*args, **kwargs)

        return call

    async def __aenter__(self) -> OutageStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._store.close()

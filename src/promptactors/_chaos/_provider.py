"""The chaos provider: the simulated provider, with a FaultPlan script per instance."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Final

from ..providers import SimulatedProvider, Ticker
from ..testing import FaultPlan

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from contextlib import AbstractAsyncContextManager

    from ..providers import ProviderRequest, StreamEvent

__all__ = ["FAULT_KEY", "ChaosProvider"]

#: The request setting that names whose fault script a request plays.
FAULT_KEY: Final = "chaos_key"


class ChaosProvider:
    """Routes each request to the simulated provider of its ``chaos_key`` setting (one
    with that instance's :class:`FaultPlan` script: the first attempt gets the fault, the
    retries stream normally), or to a fault-free one. All share one ticker."""

    def __init__(
        self,
        ticker: Ticker,
        *,
        tokens: int,
        latency: float,
        scripts: dict[str, list[Any]],
        name: str = "simulated",
    ) -> None:
        self._ticker = ticker
        self._tokens = tokens
        self._latency = latency
        self._name = name
        self._scripts = scripts
        self._faulty: dict[str, SimulatedProvider] = {}
        self._plain = self._make(None)
        self.injected: Counter[str] = Counter()  # keys whose fault reached the provider

    def _make(self, plan: FaultPlan | None) -> SimulatedProvider:
        return SimulatedProvider(
            tokens=self._tokens,
            inter_token_latency=self._latency,
            faults=plan,
            ticker=self._ticker,
            name=self._name,
        )

    @property
    def name(self) -> str:
        return self._name

    def stream(
        self, request: ProviderRequest
    ) -> AbstractAsyncContextManager[AsyncIterator[StreamEvent]]:
        key = request.settings.get(FAULT_KEY) if request.settings else None
        if not isinstance(key, str) or key not in self._scripts:
            return self._plain.stream(request)
        provider = self._faulty.get(key)
        if provider is None:
            script = self._scripts[key]
            provider = self._faulty[key] = self._make(
                FaultPlan(script=[tuple(s) if isinstance(s, list) else s for s in script])
            )
            self.injected[key] += 1
        return provider.stream(request)

    async def aclose(self) -> None:
        for provider in (self._plain, *self._faulty.values()):
            await provider.aclose()

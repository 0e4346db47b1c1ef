"""Booting: :func:`open_runtime` wires the supervision tree, providers, prices and store.

The tree (``one_for_one``: a child restarts alone)::

    root
    ├── executor           heartbeat row, bulk lease renewal, reclaim of expired leases
    ├── run_tracker        group commit of runs and tasks (pending writes in a home)
    ├── registry           instances by id, prompt id and run id (indexes in a home)
    ├── prompt_cache       single-flight caches over the store
    ├── action_cache
    ├── scoped_cache       5-minute TTL
    └── instances          dynamic supervisor: one transient child per instance

Why one_for_one: a restarting child's ``ActorRef`` stays valid (messages wait for the next
incarnation) and what the tracker and the registry must not forget lives in homes outside
their incarnations, so nobody needs restarting with them. Under ``rest_for_one`` a crash of
the tracker, the registry or a cache restarted the ``instances`` subtree: every instance
and its turn were lost, and instances stopping on the way waited (until killed) on the
tracker, whose next incarnation was started only after they had stopped.
"""

from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import ValidationError

from .._exceptions import (
    ConfigurationError,
    PromptActorsError,
    RestartIntensityExceeded,
    RuntimeFailed,
)
from .._settings import RuntimeSettings
from ..actors import (
    ActionCache,
    Admission,
    BrokerRegistry,
    EngineContext,
    ExecutorActor,
    ExecutorLeases,
    FencedPersistence,
    InstanceRegistryClient,
    PromptCache,
    RunTrackerClient,
    ScopedVariablesCache,
    StoreBroker,
    TurnRetry,
    instance_registry_actor,
    recover,
    run_tracker_actor,
)
from ..actors._registry import RegistryHome
from ..actors._run_tracker_home import RunTrackerHome
from ..providers import PriceTable, ProviderRegistry, SimulatedProvider
from ..store import open_store
from ..supervisors import ChildSpec, DynamicSupervisor, Supervisor, open_supervisor
from ._runtime import Runtime, child_ref

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping
    from datetime import datetime

    from ..providers import Provider
    from ..store import Store

__all__ = ["open_runtime"]

_log = structlog.get_logger("promptactors.runtime")


@asynccontextmanager
async def open_runtime(
    settings: RuntimeSettings | None = None,
    *,
    provider: Provider | None = None,
    store: Store | None = None,
    brokers: BrokerRegistry | None = None,
    clock: Callable[[], float] | None = None,
    utcnow: Callable[[], datetime] | None = None,
) -> AsyncIterator[Runtime]:
    """Boot a runtime for the duration of the block, then shut it down gracefully.

    ``provider`` replaces the configured default provider (e.g. a ``ScriptedProvider`` in
    tests); ``store`` an already open store (the caller closes it); ``brokers`` adds
    brokers (the store-backed one is the default); ``clock`` / ``utcnow`` make time
    deterministic. Raises ``ConfigurationError`` for invalid settings, ``StoreError`` when
    the database cannot be used, and ``RuntimeFailed`` if the supervision tree gives up.
    """
    settings = settings or RuntimeSettings()
    try:
        async with _open(settings, provider, store, brokers, clock, utcnow) as runtime:
            yield runtime
    except BaseExceptionGroup as group:
        # Task groups inside (the supervision tree, the provider's ticker) wrap what the
        # block raised; a caller should see that error itself.
        inner = _single(group)
        if inner is None:
            raise
        raise inner from inner.__cause__


def _single(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception inside nested single-member groups, or None if there are more."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        if len(exc.exceptions) != 1:
            return None
        exc = exc.exceptions[0]
    return exc


@asynccontextmanager
async def _open(
    settings: RuntimeSettings,
    provider: Provider | None,
    store: Store | None,
    brokers: BrokerRegistry | None,
    clock: Callable[[], float] | None,
    utcnow: Callable[[], datetime] | None,
) -> AsyncIterator[Runtime]:
    async with AsyncExitStack() as stack:
        if store is None:
            store = await stack.enter_async_context(
                await open_store(settings.database_url, migrate=True)
            )
        providers = await _providers(settings, provider, stack)
        prices = _prices(settings)
        recovery = None
        if settings.recover_on_start:
            recovery = await recover(store, settings.executor_id, stale_after=settings.stale_after)
            if recovery.interrupted_tasks or recovery.interrupted_runs:
                _log.warning(
                    "recovered",
                    tasks=len(recovery.interrupted_tasks),
                    runs=len(recovery.interrupted_runs),
                )
        broker_registry = brokers or BrokerRegistry(default=StoreBroker(store))
        tracker_home = RunTrackerHome()
        root = _tree(settings, store, tracker_home)
        # Once the tree is down no tracker incarnation will commit what a kill left.
        stack.callback(tracker_home.abandon, "the runtime stopped before committing them")
        try:
            async with open_supervisor(root):
                engine = EngineContext(
                    provider_for=_router(providers, settings),
                    persistence=FencedPersistence(
                        RunTrackerClient(child_ref(root, "run_tracker")),
                        settings.executor_id,
                        settings.lease_seconds,
                    ),
                    registry=InstanceRegistryClient(child_ref(root, "registry")),
                    prices=prices,
                    executor_id=settings.executor_id,
                    retry=TurnRetry(
                        max_attempts=settings.max_attempts, backoff=settings.retry_backoff
                    ),
                    journal=settings.journal,
                    row_timeout=settings.turn_rows_timeout,
                    admission=Admission(settings.max_active_turns),
                )
                if clock is not None:
                    engine.clock = clock
                if utcnow is not None:
                    engine.utcnow = utcnow
                yield Runtime(settings, store, root, engine, broker_registry, recovery)
        except RestartIntensityExceeded as exc:
            raise RuntimeFailed(f"the runtime's supervision tree gave up: {exc}") from exc


def _tree(settings: RuntimeSettings, store: Store, tracker_home: RunTrackerHome) -> Supervisor:
    leases = ExecutorLeases(
        lease_seconds=settings.lease_seconds,
        heartbeat_interval=settings.heartbeat_interval,
        reclaim_interval=settings.reclaim_interval,
        recovery=settings.recovery,
        recovery_attempts=settings.recovery_attempts,
        group=settings.group,
    )
    registry_home = RegistryHome()
    return Supervisor(
        [
            # First, so it stops last: the leases are renewed until every run has ended.
            ChildSpec("executor", lambda: ExecutorActor(store, settings.executor_id, leases)),
            ChildSpec(
                "run_tracker",
                lambda: run_tracker_actor(store, home=tracker_home),
                shutdown=30.0,
            ),
            ChildSpec("registry", lambda: instance_registry_actor(registry_home)),
            ChildSpec("prompt_cache", lambda: PromptCache(store)),
            ChildSpec("action_cache", lambda: ActionCache(store)),
            ChildSpec("scoped_cache", lambda: ScopedVariablesCache(store, ttl=settings.scoped_ttl)),
            ChildSpec(
                "instances",
                lambda: DynamicSupervisor(
                    max_restarts=settings.instance_restarts,
                    period=settings.instance_restart_period,
                    max_children=settings.max_instances,
                    name="instances",
                ),
                shutdown=None,
            ),
        ],
        strategy="one_for_one",
        max_restarts=5,
        period=10.0,
        name="root",
    )


async def _providers(
    settings: RuntimeSettings, provider: Provider | None, stack: AsyncExitStack
) -> ProviderRegistry:
    try:
        registry = ProviderRegistry.from_mapping(settings.endpoints)
    except (ValidationError, ValueError) as exc:
        raise ConfigurationError(f"endpoints: {exc}") from exc
    stack.push_async_callback(registry.aclose)
    if provider is not None:
        registry.register(settings.provider, provider)
    elif settings.provider == "simulated" or "simulated" not in registry.names:
        simulated = SimulatedProvider(
            tokens=settings.simulated_tokens,
            inter_token_latency=settings.simulated_latency,
            seed=settings.simulated_seed,
        )
        await stack.enter_async_context(simulated)
        registry.register("simulated", simulated)
    if settings.provider not in registry.names:
        raise ConfigurationError(
            f"provider: {settings.provider!r} is not configured "
            f"(known: {', '.join(registry.names) or 'none'})"
        )
    return registry


def _router(
    providers: ProviderRegistry, settings: RuntimeSettings
) -> Callable[[Mapping[str, Any]], tuple[Provider, str]]:
    """The engine's ``provider_for``: the registry's routing, with the defaults of boot."""
    default_provider = settings.provider
    default_model = settings.model

    def provider_for(prompt_settings: Mapping[str, Any]) -> tuple[Provider, str]:
        return providers.route(prompt_settings, default_provider, default_model)

    return provider_for


def _prices(settings: RuntimeSettings) -> PriceTable:
    table = PriceTable.default()
    if settings.prices:
        try:
            table = table.merged(PriceTable.from_mapping(settings.prices))
        except PromptActorsError:
            raise
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"prices: {exc}") from exc
    return table

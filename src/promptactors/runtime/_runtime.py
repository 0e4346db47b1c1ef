"""The runtime: boots the supervision tree and is the facade users call.

::

    async with promptactors.open_runtime() as rt:
        inst = await rt.start_instance("summarise", variables={"text": "..."})
        result = await inst.execute()
        print(result.text)

The tree (``rest_for_one``: a child's restart restarts those started after it)::

    root
    ├── run_tracker        group commit of runs and tasks
    ├── registry           instances by id, prompt id and run id
    ├── prompt_cache       single-flight caches over the store
    ├── action_cache
    ├── scoped_cache       5-minute TTL
    └── instances          dynamic supervisor: one transient child per instance
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from pydantic import ValidationError

from .. import state as selectors
from .._exceptions import (
    ConfigurationError,
    InstanceNotFound,
    InvalidInput,
    PromptActorsError,
    RestartIntensityExceeded,
    RuntimeFailed,
    StoreError,
)
from .._settings import RuntimeSettings
from ..actors import (
    EngineContext,
    InstanceActor,
    InstanceHome,
    InstanceSpec,
    TurnRetry,
)
from ..actors._brokers import BrokerContext, BrokerRegistry, StoreBroker, resolve_brokers
from ..actors._caches import (
    ActionCache,
    ActionCacheClient,
    PromptCache,
    PromptCacheClient,
    ScopedVariablesCache,
    ScopedVariablesCacheClient,
)
from ..actors._recovery import RecoveryReport, recover
from ..actors._registry import InstanceRegistryClient, instance_registry_actor
from ..actors._run_tracker import RunTrackerClient, run_tracker_actor
from ..kernel import ActorRef
from ..messages import (
    MAX_ID_CHARS,
    MAX_INPUT_CHARS,
    ClearConversation,
    ClearVariable,
    ConversationMessage,
    CurrentTurn,
    Execute,
    ExecutionConfig,
    ExecutionInstance,
    ExportJournal,
    GetSnapshot,
    LiveStats,
    PromptDefinition,
    Readiness,
    ScopedValues,
    Select,
    SetExpandedVariable,
    SetInput,
    SetScopedValues,
    Subscribe,
    ToggleShowVariables,
    UpdateVariables,
    VariableExplanation,
)
from ..providers import PriceTable, SimulatedProvider
from ..providers._registry import ProviderRegistry
from ..store import open_store
from ..supervisors import ChildSpec, DynamicSupervisor, Supervisor, open_supervisor

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from datetime import datetime

    from ..actors._turns import Subscription, TurnResult, TurnTicket
    from ..providers import Provider
    from ..store import Store

__all__ = [
    "ActionStart",
    "InstanceHandle",
    "Runtime",
    "TurnStream",
    "open_runtime",
]

T = TypeVar("T")
_log = structlog.get_logger("promptactors.runtime")


# -- instance handles --------------------------------------------------------------------


class TurnStream:
    """A turn being streamed: iterate for :class:`TurnChunk` s, then read ``result``.

    Made by :meth:`InstanceHandle.stream`; iteration raises the turn's error if it failed.
    """

    def __init__(self, subscription: Subscription, ticket: TurnTicket, timeout: float) -> None:
        self._subscription = subscription
        self._ticket = ticket
        self._timeout = timeout

    def __aiter__(self) -> Subscription:
        return self._subscription

    @property
    def task_id(self) -> str:
        return self._ticket.first_task_id

    async def result(self) -> TurnResult:
        """The completed turn (waits for it)."""
        return await self._ticket.wait(self._timeout)


class InstanceHandle:
    """What callers hold for one execution instance: the seed's ``usePromptInstance``.

    Every method reads or changes the instance's current state through its actor (no stale
    copies). Methods raise ``ActorDead`` once the instance is stopped and ``InvalidInput``
    for bad arguments; state changes the status machine forbids raise
    ``IllegalTransition`` and change nothing.
    """

    __slots__ = ("_ref", "_runtime", "instance_id")

    def __init__(self, instance_id: str, ref: ActorRef[Any], runtime: Runtime) -> None:
        self.instance_id = instance_id
        self._ref = ref
        self._runtime = runtime

    def __repr__(self) -> str:
        return f"<InstanceHandle {self.instance_id!r}{'' if self.is_alive else ' stopped'}>"

    @property
    def is_alive(self) -> bool:
        return self._ref.is_alive

    # -- turns -----------------------------------------------------------------------------

    async def execute(
        self, user_input: str | None = None, *, timeout: float | None = None
    ) -> TurnResult:
        """Run a turn and return its result once the answer is committed.

        ``user_input`` is appended to the current input. Raises ``MissingVariables`` (naming
        every missing one), ``ChatNotAllowed``, ``IllegalTransition`` while a turn runs,
        ``ProviderError`` / ``AttemptsExhausted`` when the turn fails for good, and
        ``TimeoutError`` after ``timeout`` (default: the runtime's ``turn_timeout``).
        """
        ticket = await self.start_turn(user_input)
        return await ticket.wait(timeout or self._runtime.settings.turn_timeout)

    async def start_turn(self, user_input: str | None = None) -> TurnTicket:
        """Start a turn and return at once; ``await ticket.wait()`` gives its result."""
        _check_text("user_input", user_input)
        ticket: TurnTicket = await self._ref.ask(Execute(user_input))
        return ticket

    async def current_turn(self) -> TurnTicket | None:
        """The running (or last) turn's ticket — e.g. the first turn of an ``auto_run``
        instance — or None before any turn. ``await ticket.wait()`` gives its result."""
        ticket: TurnTicket | None = await self._ref.ask(CurrentTurn())
        return ticket

    @asynccontextmanager
    async def stream(
        self, user_input: str | None = None, *, timeout: float | None = None
    ) -> AsyncIterator[TurnStream]:
        """Run a turn and stream its text::

            async with inst.stream("Why?") as turn:
                async for chunk in turn:
                    print(chunk.text, end="")
                result = await turn.result()

        A slow reader never slows the instance: each chunk holds everything streamed since
        the previous one. Raises as :meth:`execute`.
        """
        _check_text("user_input", user_input)
        subscription: Subscription = await self._ref.ask(Subscribe())
        try:
            ticket: TurnTicket = await self._ref.ask(Execute(user_input))
            if subscription.ticket is None:
                subscription.attach(ticket)
            yield TurnStream(subscription, ticket, timeout or self._runtime.settings.turn_timeout)
        finally:
            subscription.close()

    # -- changes ---------------------------------------------------------------------------

    async def set_input(self, text: str) -> None:
        """Set the text the next turn sends (``execute``'s input is appended to it)."""
        _check_text("text", text)
        await self._ref.ask(SetInput(text))

    async def update_variable(self, name: str, value: str) -> None:
        """Set one user value (above action, broker, scoped and default values)."""
        await self.update_variables({name: value})

    async def update_variables(self, values: Mapping[str, str]) -> None:
        """Set several user values at once."""
        await self._ref.ask(UpdateVariables(_check_variables("values", values)))

    async def clear_variable(self, name: str) -> None:
        """Remove a user value (a lower layer's value, if any, applies again)."""
        await self._ref.ask(ClearVariable(name))

    async def set_scoped_values(self, scoped: ScopedValues) -> None:
        """Replace the scoped (project, org, user) layer."""
        await self._ref.ask(SetScopedValues(scoped))

    async def clear_conversation(self) -> None:
        await self._ref.ask(ClearConversation())

    async def set_expanded_variable(self, name: str | None) -> None:
        await self._ref.ask(SetExpandedVariable(name))

    async def toggle_show_variables(self) -> None:
        await self._ref.ask(ToggleShowVariables())

    async def stop(self) -> None:
        """Stop the instance for good (a running turn is interrupted and marked so)."""
        await self._ref.stop()

    # -- reads (pure selectors over the instance's current state) --------------------------

    async def select(self, selector: Callable[..., T], *args: Any) -> T:
        """Apply a pure selector of :mod:`promptactors.state` to the current state."""
        result: T = await self._ref.ask(Select(selector, args))
        return result

    async def snapshot(self) -> ExecutionInstance:
        """The whole state as one frozen, JSON-serialisable model."""
        snap: ExecutionInstance = await self._ref.ask(GetSnapshot())
        return snap

    async def export_journal(self) -> str:
        """The instance's events as JSON (replay with ``promptactors.state.replay``)."""
        journal: str = await self._ref.ask(ExportJournal())
        return journal

    async def merged_variables(self) -> dict[str, str]:
        return await self.select(selectors.merged_variables)

    async def explain_variables(self) -> tuple[VariableExplanation, ...]:
        return await self.select(selectors.explain_variables)

    async def template_messages(self) -> tuple[Any, ...]:
        return await self.select(selectors.template_messages)

    async def conversation_messages(self) -> tuple[ConversationMessage, ...]:
        return await self.select(selectors.conversation_messages)

    async def resolved_messages(self) -> tuple[Any, ...]:
        return await self.select(selectors.resolved_messages)

    async def system_message(self) -> str | None:
        return await self.select(selectors.system_message)

    async def display_messages(self) -> tuple[ConversationMessage, ...]:
        return await self.select(selectors.display_messages)

    async def streaming_text(self) -> str:
        return await self.select(selectors.streaming_text)

    async def is_response_ended(self) -> bool:
        return await self.select(selectors.is_response_ended)

    async def live_stats(self) -> LiveStats:
        return await self.select(selectors.live_stats)

    async def is_ready(self) -> Readiness:
        """Whether a turn can start now; if not, why and which variables are missing."""
        return await self.select(selectors.is_ready_to_execute)

    async def has_unsaved_changes(self) -> bool:
        return await self.select(selectors.has_unsaved_changes)

    async def stats(self) -> Any:
        return await self.select(selectors.instance_stats)

    async def model_config(self) -> dict[str, Any]:
        return await self.select(selectors.model_config)


@dataclass(frozen=True, slots=True)
class ActionStart:
    """What :meth:`Runtime.start_action` started: the instance, and what brokers gave."""

    instance: InstanceHandle
    broker_resolved_count: int
    broker_values: Mapping[str, str]
    skipped_brokers: tuple[str, ...]

    @property
    def instance_id(self) -> str:
        return self.instance.instance_id


# -- the runtime -------------------------------------------------------------------------


class Runtime:
    """The running engine. Made by :func:`open_runtime`; valid inside its ``async with``."""

    def __init__(
        self,
        settings: RuntimeSettings,
        store: Store,
        root: Supervisor,
        engine: EngineContext,
        brokers: BrokerRegistry,
        recovery: RecoveryReport | None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.recovery = recovery
        self._root = root
        self._engine = engine
        self._brokers = brokers
        self.registry = InstanceRegistryClient(_ref(root, "registry"))
        self.prompts = PromptCacheClient(_ref(root, "prompt_cache"))
        self.actions = ActionCacheClient(_ref(root, "action_cache"))
        self.scoped = ScopedVariablesCacheClient(_ref(root, "scoped_cache"))
        self.tracker = RunTrackerClient(_ref(root, "run_tracker"))

    def _instances(self) -> DynamicSupervisor:
        tree = self._root.child("instances")
        assert isinstance(tree, DynamicSupervisor)
        return tree

    # -- starting instances ----------------------------------------------------------------

    async def start_instance(
        self,
        prompt_id: str | None = None,
        *,
        prompt: PromptDefinition | Mapping[str, Any] | None = None,
        source: str = "prompts",
        variables: Mapping[str, str] | None = None,
        execution_config: ExecutionConfig | Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
        initial_message: str | None = None,
        run_id: str | None = None,
        scope: BrokerContext | None = None,
        instance_id: str | None = None,
        _action_values: Mapping[str, str] | None = None,
        _broker_values: Mapping[str, str] | None = None,
    ) -> InstanceHandle:
        """Start an execution instance (the seed's ``startPromptInstance``).

        The prompt comes from the prompt cache (``source``: ``prompts`` or
        ``prompt_builtins``), or is given inline as ``prompt``. ``variables`` are user
        values; ``settings`` override the prompt's model settings; ``run_id`` continues an
        existing run (its saved messages become the conversation); ``scope`` loads the
        user/org/project variables (cached 5 minutes). With ``auto_run`` the first turn
        starts at once. Raises ``PromptNotFound``, ``RunNotFound``, ``InvalidInput``.
        """
        if (prompt_id is None) == (prompt is None):
            raise InvalidInput("give exactly one of prompt_id or prompt")
        if source not in ("prompts", "prompt_builtins"):
            raise InvalidInput(f"source must be 'prompts' or 'prompt_builtins', got {source!r}")
        definition = await self._prompt(prompt_id, prompt, source)
        config = _config(execution_config)
        overrides = _check_settings(settings)
        user_values = _check_variables("variables", variables or {})
        _check_text("initial_message", initial_message)
        _check_id("instance_id", instance_id)
        instance_id = instance_id or str(uuid.uuid4())
        history: tuple[ConversationMessage, ...] = ()
        run_name = None
        if run_id is not None:
            _check_id("run_id", run_id)
            if not config.track_in_runs:
                raise InvalidInput("run_id: continuing a run needs track_in_runs on")
            if await self.registry.by_run(run_id) is not None:
                raise InvalidInput(f"run_id: run {run_id!r} is already open in a live instance")
            run = await self.store.get_run(run_id)
            run_name = run.name
            history = tuple(_conversation_message(run_id, m) for m in run.messages)
        scoped = ScopedValues()
        if scope is not None:
            scoped = await self.scoped.get(scope.user_id, scope.org_id, scope.project_id)
        spec = InstanceSpec(
            instance_id=instance_id,
            prompt=definition,
            execution_config=config,
            settings=overrides,
            user_values=user_values,
            action_values=dict(_action_values or {}),
            broker_values=dict(_broker_values or {}),
            scoped_values=scoped,
            initial_message=initial_message,
            run_id=run_id,
            run_name=run_name,
            history=history,
        )
        home = InstanceHome(spec)
        engine = self._engine
        child = ChildSpec(
            instance_id,
            lambda: InstanceActor(home, engine),
            restart="transient",
            shutdown=10.0,
        )
        ref = await self._instances().start_child(child)
        assert isinstance(ref, ActorRef)
        return InstanceHandle(instance_id, ref, self)

    async def _prompt(
        self,
        prompt_id: str | None,
        prompt: PromptDefinition | Mapping[str, Any] | None,
        source: str,
    ) -> PromptDefinition:
        if prompt is None:
            assert prompt_id is not None
            _check_id("prompt_id", prompt_id)
            return await self.prompts.get(prompt_id, source)  # type: ignore[arg-type]
        if isinstance(prompt, PromptDefinition):
            return prompt
        try:
            return PromptDefinition.model_validate(dict(prompt))
        except ValidationError as exc:
            raise InvalidInput(f"prompt: {_first_error(exc)}") from exc

    async def start_action(
        self,
        action_id: str,
        *,
        context: BrokerContext | Mapping[str, Any] | None = None,
        user_provided_variables: Mapping[str, str] | None = None,
        initial_message: str | None = None,
        run_id: str | None = None,
        execution_config: ExecutionConfig | Mapping[str, Any] | None = None,
    ) -> ActionStart:
        """Start the instance a prompt action describes (the seed's ``startPromptAction``).

        Loads the action and its prompt (cached), resolves every mapped broker for the
        context concurrently, applies the action's hardcoded values and the caller's values
        (precedence: computed > user > hardcoded > broker > scoped > defaults), and starts
        the instance. Raises ``ActionNotFound``, ``PromptNotFound``, ``BrokerError`` naming
        the broker, ``InvalidInput``.
        """
        _check_id("action_id", action_id)
        ctx = _context(context)
        action = await self.actions.get(action_id)
        resolution = await resolve_brokers(
            action.broker_mappings,
            ctx,
            self._brokers,
            optional=frozenset(action.optional_variables),
        )
        config = action.execution_config
        if execution_config is not None:
            config = {**dict(config), **_config(execution_config).model_dump(exclude_unset=True)}
        handle = await self.start_instance(
            action.prompt_id,
            source=action.prompt_source,
            variables=user_provided_variables,
            execution_config=dict(config) if config else None,
            initial_message=initial_message,
            run_id=run_id,
            scope=ctx,
            _action_values={k: str(v) for k, v in action.hardcoded_values.items()},
            _broker_values=resolution.values,
        )
        return ActionStart(
            instance=handle,
            broker_resolved_count=resolution.resolved_count,
            broker_values=resolution.values,
            skipped_brokers=resolution.skipped,
        )

    async def fetch_scoped_variables(
        self,
        user_id: str | None = None,
        org_id: str | None = None,
        project_id: str | None = None,
        *,
        force: bool = False,
    ) -> ScopedValues:
        """User, org and project variables (cached for ``scoped_ttl``; ``force`` re-reads)."""
        for name, value in (("user_id", user_id), ("org_id", org_id), ("project_id", project_id)):
            _check_id(name, value)
        return await self.scoped.get(user_id, org_id, project_id, force=force)

    # -- finding instances -----------------------------------------------------------------

    async def instance(self, instance_id: str) -> InstanceHandle:
        """The live instance ``instance_id``. Raises ``InstanceNotFound``."""
        _check_id("instance_id", instance_id)
        ref = await self.registry.get(instance_id)
        return InstanceHandle(instance_id, ref, self)

    async def instances_by_prompt(self, prompt_id: str) -> list[InstanceHandle]:
        ids = await self.registry.by_prompt(prompt_id)
        return [await self.instance(i) for i in ids]

    async def instance_by_run(self, run_id: str) -> InstanceHandle | None:
        instance_id = await self.registry.by_run(run_id)
        if instance_id is None:
            return None
        try:
            return await self.instance(instance_id)
        except InstanceNotFound:
            return None

    async def instance_count(self) -> int:
        return await self.registry.count()


# -- booting -----------------------------------------------------------------------------


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
        root = _tree(settings, store)
        try:
            async with open_supervisor(root):
                engine = EngineContext(
                    provider_for=_router(providers, settings),
                    persistence=RunTrackerClient(_ref(root, "run_tracker")),
                    registry=InstanceRegistryClient(_ref(root, "registry")),
                    prices=prices,
                    executor_id=settings.executor_id,
                    retry=TurnRetry(
                        max_attempts=settings.max_attempts, backoff=settings.retry_backoff
                    ),
                    journal=settings.journal,
                )
                if clock is not None:
                    engine.clock = clock
                if utcnow is not None:
                    engine.utcnow = utcnow
                yield Runtime(settings, store, root, engine, broker_registry, recovery)
        except RestartIntensityExceeded as exc:
            raise RuntimeFailed(f"the runtime's supervision tree gave up: {exc}") from exc


def _tree(settings: RuntimeSettings, store: Store) -> Supervisor:
    return Supervisor(
        [
            ChildSpec(
                "run_tracker",
                lambda: run_tracker_actor(
                    store,
                    executor_id=settings.executor_id,
                    heartbeat_interval=settings.heartbeat_interval,
                ),
                shutdown=30.0,
            ),
            ChildSpec("registry", instance_registry_actor),
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
        strategy="rest_for_one",
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
    default_provider = settings.provider
    default_model = settings.model

    def provider_for(prompt_settings: Mapping[str, Any]) -> tuple[Provider, str]:
        name = str(prompt_settings.get("provider") or default_provider)
        overrides: dict[str, Any] = {"provider": name}
        if not prompt_settings.get("model"):
            overrides["model"] = default_model or (name if name == "simulated" else None)
            if overrides["model"] is None:
                del overrides["model"]
        return providers.resolve(prompt_settings, overrides)

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


def _ref(root: Supervisor, child_id: str) -> ActorRef[Any]:
    ref = root.child(child_id)
    assert isinstance(ref, ActorRef)
    return ref


# -- validation at the boundary ----------------------------------------------------------


def _check_id(name: str, value: str | None) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name} must be a non-empty string")
    if len(value) > MAX_ID_CHARS:
        raise InvalidInput(f"{name} is {len(value)} characters long; the limit is {MAX_ID_CHARS}")


def _check_text(name: str, value: str | None) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string, not {type(value).__name__}")
    if len(value) > MAX_INPUT_CHARS:
        raise InvalidInput(
            f"{name} is {len(value):,} characters long; the limit is {MAX_INPUT_CHARS:,}"
        )


def _check_variables(name: str, values: Mapping[str, str]) -> dict[str, str]:
    from ..messages import VARIABLE_NAME_PATTERN

    checked: dict[str, str] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not re.fullmatch(VARIABLE_NAME_PATTERN, key):
            raise InvalidInput(f"{name}: {key!r} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)")
        if not isinstance(value, str):
            raise InvalidInput(f"{name}: the value of {key!r} must be a string")
        _check_text(f"{name}[{key!r}]", value)
        checked[key] = value
    return checked


def _check_settings(value: Mapping[str, Any] | None) -> dict[str, Any]:
    """Model settings overrides: a mapping of JSON values (they are stored with the run)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidInput("settings must be a mapping with string keys")
    try:
        json.dumps(dict(value), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"settings must hold JSON values only: {exc}") from exc
    return dict(value)


def _config(value: ExecutionConfig | Mapping[str, Any] | None) -> ExecutionConfig:
    if value is None:
        return ExecutionConfig()
    if isinstance(value, ExecutionConfig):
        return value
    try:
        return ExecutionConfig.model_validate(dict(value))
    except ValidationError as exc:
        raise InvalidInput(f"execution_config: {_first_error(exc)}") from exc


def _context(value: BrokerContext | Mapping[str, Any] | None) -> BrokerContext:
    if value is None:
        return BrokerContext()
    if isinstance(value, BrokerContext):
        return value
    data = dict(value)
    # The seed's context names the organisation a workspace.
    if "workspace_id" in data and "org_id" not in data:
        data["org_id"] = data.pop("workspace_id")
    known = {"user_id", "org_id", "project_id"}
    extra = {k: str(v) for k, v in data.items() if k not in known}
    try:
        return BrokerContext(**{k: data.get(k) for k in known}, extra=extra)
    except TypeError as exc:
        raise InvalidInput(f"context: {exc}") from exc


def _conversation_message(run_id: str, row: Mapping[str, Any]) -> ConversationMessage:
    try:
        return ConversationMessage.model_validate(
            {k: row[k] for k in ("role", "content", "task_id", "failed", "error") if k in row}
        )
    except ValidationError as exc:
        raise StoreError(f"run {run_id!r} holds an invalid message: {_first_error(exc)}") from exc


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error.get("loc", ())) or "value"
    return f"{where}: {error.get('msg', 'invalid')}"

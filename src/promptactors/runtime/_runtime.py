"""The facade users call: :class:`Runtime` starts, finds and scopes instances.

::

    async with promptactors.open_runtime() as rt:
        inst = await rt.start_instance("summarise", variables={"text": "..."})
        result = await inst.execute()
        print(result.text)

A ``Runtime`` is made by :func:`open_runtime` (``_boot.py``) over a running supervision
tree; every method checks its arguments at the boundary (``_checks.py``) first.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._exceptions import InstanceNotFound, InvalidInput, RunInUse
from ..actors import (
    ActionCacheClient,
    FencedPersistence,
    InstanceActor,
    InstanceHome,
    InstanceRegistryClient,
    InstanceSpec,
    PromptCacheClient,
    RunClaim,
    RunTrackerClient,
    ScopedVariablesCacheClient,
    released_on_error,
    resolve_brokers,
)
from ..kernel import ActorRef
from ..kernel._entropy import new_id
from ..messages import ConversationMessage, ScopedValues
from ..supervisors import ChildSpec, DynamicSupervisor
from ._checks import (
    check_config,
    check_context,
    check_id,
    check_prompt,
    check_settings,
    check_text,
    check_variables,
    stored_message,
)
from ._handle import InstanceHandle

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .._settings import RuntimeSettings
    from ..actors import BrokerContext, BrokerRegistry, EngineContext, RecoveryReport
    from ..messages import ExecutionConfig, PromptDefinition
    from ..store import Store
    from ..supervisors import Supervisor

__all__ = ["ActionStart", "Runtime", "child_ref"]


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
        self.registry = InstanceRegistryClient(child_ref(root, "registry"))
        self.prompts = PromptCacheClient(child_ref(root, "prompt_cache"))
        self.actions = ActionCacheClient(child_ref(root, "action_cache"))
        self.scoped = ScopedVariablesCacheClient(child_ref(root, "scoped_cache"))
        self.tracker = RunTrackerClient(child_ref(root, "run_tracker"))

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
    ) -> InstanceHandle:
        """Start an execution instance (the seed's ``startPromptInstance``).

        The prompt comes from the prompt cache (``source``: ``prompts`` or
        ``prompt_builtins``), or is given inline as ``prompt``. ``variables`` are user
        values; ``settings`` override the prompt's model settings; ``run_id`` continues an
        existing run (its saved messages become the conversation); ``scope`` loads the
        user/org/project variables (cached 5 minutes). With ``auto_run`` the first turn
        starts at once. Raises ``PromptNotFound``, ``RunNotFound``, ``InvalidInput``, and
        ``RunInUse`` when another live instance continues ``run_id`` (the run is claimed in
        the database until the instance stops).
        """
        return await self._start(
            prompt_id,
            prompt=prompt,
            source=source,
            variables=variables,
            execution_config=execution_config,
            settings=settings,
            initial_message=initial_message,
            run_id=run_id,
            scope=scope,
            instance_id=instance_id,
        )

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
        check_id("action_id", action_id)
        ctx = check_context(context)
        action = await self.actions.get(action_id)
        resolution = await resolve_brokers(
            action.broker_mappings,
            ctx,
            self._brokers,
            optional=frozenset(action.optional_variables),
        )
        config = action.execution_config
        if execution_config is not None:
            given = check_config(execution_config).model_dump(exclude_unset=True)
            config = {**dict(config), **given}
        handle = await self._start(
            action.prompt_id,
            source=action.prompt_source,
            variables=user_provided_variables,
            execution_config=dict(config) if config else None,
            initial_message=initial_message,
            run_id=run_id,
            scope=ctx,
            action_values={k: str(v) for k, v in action.hardcoded_values.items()},
            broker_values=resolution.values,
        )
        return ActionStart(
            instance=handle,
            broker_resolved_count=resolution.resolved_count,
            broker_values=resolution.values,
            skipped_brokers=resolution.skipped,
        )

    async def _start(
        self,
        prompt_id: str | None,
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
        action_values: Mapping[str, str] | None = None,
        broker_values: Mapping[str, str] | None = None,
    ) -> InstanceHandle:
        """Start an instance: :meth:`start_instance`, plus the layers an action brings."""
        if (prompt_id is None) == (prompt is None):
            raise InvalidInput("give exactly one of prompt_id or prompt")
        if source not in ("prompts", "prompt_builtins"):
            raise InvalidInput(f"source must be 'prompts' or 'prompt_builtins', got {source!r}")
        definition = await self._prompt(prompt_id, prompt, source)
        config = check_config(execution_config)
        overrides = check_settings(settings)
        # A prompt naming an unknown provider or no model fails here, not in every turn.
        self._engine.provider_for({**definition.settings, **overrides})
        user_values = check_variables("variables", variables or {})
        check_text("initial_message", initial_message)
        check_id("instance_id", instance_id)
        instance_id = instance_id or new_id()
        history: tuple[ConversationMessage, ...] = ()
        run_name = None
        scoped = ScopedValues()
        if scope is not None:
            scoped = await self.scoped.get(scope.user_id, scope.org_id, scope.project_id)
        claim = None
        if run_id is not None:
            check_id("run_id", run_id)
            if not config.track_in_runs:
                raise InvalidInput("run_id: continuing a run needs track_in_runs on")
            if (live := await self.registry.by_run(run_id)) is not None:
                raise RunInUse(run_id, live, f"run {run_id!r} is open in live instance {live!r}")
            # The database claim is the truth: of concurrent starts on one run, one wins.
            claim = await RunClaim.take(self.store, run_id, instance_id)
            if isinstance(self._engine.persistence, FencedPersistence):
                self._engine.persistence.adopt(run_id, claim.fence)
            async with released_on_error(claim):
                run = await self.store.get_run(run_id)
                run_name = run.name
                history = tuple(stored_message(run_id, m) for m in run.messages)
        spec = InstanceSpec(
            instance_id=instance_id,
            prompt=definition,
            execution_config=config,
            settings=overrides,
            user_values=user_values,
            action_values=dict(action_values or {}),
            broker_values=dict(broker_values or {}),
            scoped_values=scoped,
            initial_message=initial_message,
            run_id=run_id,
            run_name=run_name,
            history=history,
        )
        home = InstanceHome(spec, claim)
        engine = self._engine
        child = ChildSpec(
            instance_id,
            lambda: InstanceActor(home, engine),
            restart="transient",
            shutdown=10.0,
            # Gone for good without a graceful stop: its turns still end, its run closes.
            on_terminated=functools.partial(InstanceActor.close_lost, home, engine),
        )
        async with released_on_error(claim):
            ref = await self._instances().start_child(child)
        assert isinstance(ref, ActorRef)
        return InstanceHandle(instance_id, ref, self.settings)

    async def _prompt(
        self,
        prompt_id: str | None,
        prompt: PromptDefinition | Mapping[str, Any] | None,
        source: str,
    ) -> PromptDefinition:
        if prompt is None:
            assert prompt_id is not None
            check_id("prompt_id", prompt_id)
            return await self.prompts.get(prompt_id, source)  # type: ignore[arg-type]
        return check_prompt(prompt)

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
            check_id(name, value)
        return await self.scoped.get(user_id, org_id, project_id, force=force)

    # -- finding instances -----------------------------------------------------------------

    async def instance(self, instance_id: str) -> InstanceHandle:
        """The live instance ``instance_id``. Raises ``InstanceNotFound``."""
        check_id("instance_id", instance_id)
        ref = await self.registry.get(instance_id)
        return InstanceHandle(instance_id, ref, self.settings)

    async def instance_ids(self) -> list[str]:
        """The ids of the live instances of this runtime, in the order they started.

        Instances live in the process that runs them: another process (the command line,
        say) sees only their runs in the store.
        """
        return await self.registry.all()

    async def instances_by_prompt(self, prompt_id: str) -> list[InstanceHandle]:
        """Handles of the live instances of prompt ``prompt_id`` (empty if none)."""
        ids = await self.registry.by_prompt(prompt_id)
        return [await self.instance(i) for i in ids]

    async def instance_by_run(self, run_id: str) -> InstanceHandle | None:
        """The live instance that has run ``run_id`` open, or None."""
        instance_id = await self.registry.by_run(run_id)
        if instance_id is None:
            return None
        try:
            return await self.instance(instance_id)
        except InstanceNotFound:
            return None

    async def instance_count(self) -> int:
        """How many instances of this runtime are live."""
        return await self.registry.count()


def child_ref(root: Supervisor, child_id: str) -> ActorRef[Any]:
    """The reference of the tree's actor child ``child_id``."""
    ref = root.child(child_id)
    assert isinstance(ref, ActorRef)
    return ref

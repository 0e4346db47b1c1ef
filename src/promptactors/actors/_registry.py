"""The registry actor: the live execution instances, indexed by instance, prompt and run.

One actor owns three indexes — instance id to reference (one each), prompt id to instance
ids (many), run id to instance id (one per run) — so every lookup sees one consistent
state. A restarted instance re-registers under the same ids (its reference is replaced);
a stopped one unregisters. Callers use :class:`InstanceRegistryClient`.

The indexes live in a :class:`RegistryHome` that the supervisor's factory hands to every
incarnation: a crash of the registry forgets no live instance (each handler updates them
without awaiting, so a crash never leaves them half-changed), and messages sent while it
restarts wait in its mailbox for the next incarnation.
"""

from __future__ import annotations

from typing import Any

import structlog

from .._exceptions import InstanceNotFound, InvalidInput, PromptActorsError
from ..kernel import DEFAULT_ASK_TIMEOUT, Actor, ActorRef, handler
from ..messages._registry import (
    AllInstances,
    AnnounceInstance,
    AnnounceRun,
    CountInstances,
    GetInstance,
    InstanceByRun,
    InstancesByPrompt,
    LinkRun,
    PruneInstances,
    RegisterInstance,
    RegistryCommand,
    UnregisterInstance,
)

_log = structlog.get_logger("promptactors.registry")

__all__ = [
    "InstanceRegistry",
    "InstanceRegistryClient",
    "RegistryHome",
    "instance_registry_actor",
]


class _Entry:
    __slots__ = ("prompt_id", "ref", "run_id")

    def __init__(self, prompt_id: str, ref: ActorRef[Any], run_id: str | None) -> None:
        self.prompt_id = prompt_id
        self.ref = ref
        self.run_id = run_id


class RegistryHome:
    """The registry's indexes, kept across its incarnations (only the actor touches them)."""

    __slots__ = ("by_prompt", "by_run", "instances")

    def __init__(self) -> None:
        # dicts keep insertion order: listings come back in registration order.
        self.instances: dict[str, _Entry] = {}
        self.by_prompt: dict[str, dict[str, None]] = {}
        self.by_run: dict[str, str] = {}


class InstanceRegistry(Actor[RegistryCommand]):
    """Indexes live instances by instance id, prompt id and run id.

    The indexes live in ``home``: give every incarnation the same one and a restart keeps
    them (entries of instances stopped meanwhile are dropped when next looked up). Without
    a home, each incarnation starts empty.
    """

    def __init__(self, home: RegistryHome | None = None) -> None:
        home = home if home is not None else RegistryHome()
        self._instances = home.instances
        self._by_prompt = home.by_prompt
        self._by_run = home.by_run

    def _check_run_free(self, run_id: str, instance_id: str) -> None:
        owner = self._by_run.get(run_id)
        if owner is None or owner == instance_id:
            return
        entry = self._instances.get(owner)
        if entry is not None and not entry.ref.is_alive:
            self._drop(owner)  # its actor stopped for good: the run is free
            return
        raise InvalidInput(
            f"run {run_id!r} is already linked to instance {owner!r}; "
            f"cannot link it to {instance_id!r}"
        )

    def _set_run(self, entry: _Entry, instance_id: str, run_id: str) -> None:
        if entry.run_id is not None and entry.run_id != run_id:
            self._by_run.pop(entry.run_id, None)
        entry.run_id = run_id
        self._by_run[run_id] = instance_id

    def _drop(self, instance_id: str) -> bool:
        entry = self._instances.pop(instance_id, None)
        if entry is None:
            return False
        ids = self._by_prompt.get(entry.prompt_id)
        if ids is not None:
            ids.pop(instance_id, None)
            if not ids:
                del self._by_prompt[entry.prompt_id]
        if entry.run_id is not None and self._by_run.get(entry.run_id) == instance_id:
            del self._by_run[entry.run_id]
        return True

    @handler
    async def register(self, message: RegisterInstance) -> None:
        """Raises ``InvalidInput`` when ``run_id`` is linked to another live instance."""
        instance_id = message.instance_id
        if message.run_id is not None:
            self._check_run_free(message.run_id, instance_id)
        entry = self._instances.get(instance_id)
        if entry is None:
            entry = self._instances[instance_id] = _Entry(message.prompt_id, message.ref, None)
        else:
            entry.ref = message.ref
            if entry.prompt_id != message.prompt_id:
                old = self._by_prompt.get(entry.prompt_id)
                if old is not None:
                    old.pop(instance_id, None)
                    if not old:
                        del self._by_prompt[entry.prompt_id]
                entry.prompt_id = message.prompt_id
        self._by_prompt.setdefault(message.prompt_id, {})[instance_id] = None
        if message.run_id is not None:
            self._set_run(entry, instance_id, message.run_id)

    @handler
    async def announce(self, message: AnnounceInstance) -> None:
        try:
            await self.register(
                RegisterInstance(
                    message.instance_id, message.prompt_id, message.ref, message.run_id
                )
            )
        except PromptActorsError as exc:
            _log.error("registry_announce_refused", instance_id=message.instance_id, error=str(exc))

    @handler
    async def announce_run(self, message: AnnounceRun) -> None:
        try:
            await self.link_run(LinkRun(message.instance_id, message.run_id))
        except PromptActorsError as exc:
            _log.error("registry_announce_refused", instance_id=message.instance_id, error=str(exc))

    @handler
    async def unregister(self, message: UnregisterInstance) -> bool:
        return self._drop(message.instance_id)

    @handler
    async def link_run(self, message: LinkRun) -> None:
        """Raises ``InstanceNotFound`` for an unknown instance, ``InvalidInput`` when the run
        is linked to another live instance."""
        entry = self._instances.get(message.instance_id)
        if entry is None:
            raise InstanceNotFound(message.instance_id)
        self._check_run_free(message.run_id, message.instance_id)
        self._set_run(entry, message.instance_id, message.run_id)

    @handler
    async def get(self, message: GetInstance) -> ActorRef[Any]:
        """Raises ``InstanceNotFound`` for an unknown instance, or one whose actor has
        stopped for good (it is dropped on the way)."""
        entry = self._instances.get(message.instance_id)
        if entry is None:
            raise InstanceNotFound(message.instance_id)
        if not entry.ref.is_alive:
            self._drop(message.instance_id)
            raise InstanceNotFound(
                message.instance_id, f"instance {message.instance_id!r} has stopped"
            )
        return entry.ref

    @handler
    async def by_prompt(self, message: InstancesByPrompt) -> list[str]:
        return list(self._by_prompt.get(message.prompt_id, ()))

    @handler
    async def by_run(self, message: InstanceByRun) -> str | None:
        return self._by_run.get(message.run_id)

    @handler
    async def all(self, message: AllInstances) -> list[str]:
        return list(self._instances)

    @handler
    async def count(self, message: CountInstances) -> int:
        return len(self._instances)

    @handler
    async def prune(self, message: PruneInstances) -> list[str]:
        dead = [iid for iid, entry in self._instances.items() if not entry.ref.is_alive]
        for instance_id in dead:
            self._drop(instance_id)
        return dead


def instance_registry_actor(home: RegistryHome | None = None) -> InstanceRegistry:
    """A fresh registry incarnation: the factory to put in a ``ChildSpec`` (with the same
    ``home`` for every incarnation, a restart keeps the indexes)."""
    return InstanceRegistry(home)


class InstanceRegistryClient:
    """The registry's facade: one ask per call, each bounded by ``timeout`` seconds.

    Every method raises ``AskTimeout`` when the registry does not answer in time and
    ``ActorDead`` when it is stopped.
    """

    __slots__ = ("_ref", "_timeout")

    def __init__(self, ref: ActorRef[Any], *, timeout: float | None = DEFAULT_ASK_TIMEOUT) -> None:
        self._ref = ref
        self._timeout = timeout

    @property
    def ref(self) -> ActorRef[Any]:
        return self._ref

    async def register(
        self, instance_id: str, prompt_id: str, ref: ActorRef[Any], run_id: str | None = None
    ) -> None:
        """Index an instance. Re-registering the same id (a restarted incarnation) replaces
        its reference under the same ids; ``run_id`` None keeps its run link.

        Raises ``InvalidInput`` when ``run_id`` is linked to another live instance.
        """
        message = RegisterInstance(instance_id, prompt_id, ref, run_id)
        await self._ref.ask(message, timeout=self._timeout)

    async def unregister(self, instance_id: str) -> None:
        """Drop an instance from every index (sent without waiting: it cannot fail; the
        registry handles it before any later query). Idempotent."""
        await self._ref.tell(UnregisterInstance(instance_id))

    async def announce(
        self, instance_id: str, prompt_id: str, ref: ActorRef[Any], run_id: str | None = None
    ) -> None:
        """:meth:`register` without waiting for the registry (it handles the message
        before any later query); a conflict is logged instead of raised. For instances,
        which must not wait on the registry on their hot path."""
        await self._ref.tell(AnnounceInstance(instance_id, prompt_id, ref, run_id))

    async def announce_run(self, instance_id: str, run_id: str) -> None:
        """:meth:`link_run` without waiting; a conflict is logged instead of raised."""
        await self._ref.tell(AnnounceRun(instance_id, run_id))

    async def link_run(self, instance_id: str, run_id: str) -> None:
        """Link a run to an instance (replacing the instance's previous run link).

        Raises ``InstanceNotFound`` for an unknown instance, ``InvalidInput`` when the run
        is already linked to another live instance.
        """
        await self._ref.ask(LinkRun(instance_id, run_id), timeout=self._timeout)

    async def get(self, instance_id: str) -> ActorRef[Any]:
        """The reference of a live instance. Raises ``InstanceNotFound(instance_id)``."""
        ref: ActorRef[Any] = await self._ref.ask(GetInstance(instance_id), timeout=self._timeout)
        return ref

    async def by_prompt(self, prompt_id: str) -> list[str]:
        """The ids of the instances of a prompt, in registration order (empty if none)."""
        ids: list[str] = await self._ref.ask(InstancesByPrompt(prompt_id), timeout=self._timeout)
        return ids

    async def by_run(self, run_id: str) -> str | None:
        """The id of the instance linked to a run, or None."""
        found: str | None = await self._ref.ask(InstanceByRun(run_id), timeout=self._timeout)
        return found

    async def all(self) -> list[str]:
        """Every registered instance id, in registration order."""
        ids: list[str] = await self._ref.ask(AllInstances(), timeout=self._timeout)
        return ids

    async def count(self) -> int:
        """How many instances are registered."""
        n: int = await self._ref.ask(CountInstances(), timeout=self._timeout)
        return n

    async def prune(self) -> list[str]:
        """Drop the instances whose actors have stopped for good; return their ids."""
        ids: list[str] = await self._ref.ask(PruneInstances(), timeout=self._timeout)
        return ids

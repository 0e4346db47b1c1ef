"""Commands the registry actor receives.

The registry indexes the live execution instances by instance id, prompt id and run id.
These are plain frozen dataclasses: they travel inside the kernel, where arguments were
already validated at the public boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "AllInstances",
    "AnnounceInstance",
    "AnnounceRun",
    "CountInstances",
    "GetInstance",
    "InstanceByRun",
    "InstancesByPrompt",
    "LinkRun",
    "PruneInstances",
    "RegisterInstance",
    "RegistryCommand",
    "UnregisterInstance",
]


@dataclass(frozen=True, slots=True)
class RegisterInstance:
    """Index ``instance_id`` under ``prompt_id`` (and ``run_id``) with its reference.

    Re-registering an id (a restarted incarnation) replaces the reference and keeps the
    run link unless a new ``run_id`` is given. Reply: None.
    """

    instance_id: str
    prompt_id: str
    # An ``ActorRef``; typed loosely because messages/ does not import the kernel.
    ref: Any
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class UnregisterInstance:
    """Drop ``instance_id`` from every index (idempotent). Reply: whether it was there."""

    instance_id: str


@dataclass(frozen=True, slots=True)
class LinkRun:
    """Link ``run_id`` to ``instance_id`` (one run per instance). Reply: None."""

    instance_id: str
    run_id: str


@dataclass(frozen=True, slots=True)
class GetInstance:
    """Reply: the reference of ``instance_id``."""

    instance_id: str


@dataclass(frozen=True, slots=True)
class InstancesByPrompt:
    """Reply: the ids of the live instances of ``prompt_id``, in registration order."""

    prompt_id: str


@dataclass(frozen=True, slots=True)
class InstanceByRun:
    """Reply: the id of the instance linked to ``run_id``, or None."""

    run_id: str


@dataclass(frozen=True, slots=True)
class AllInstances:
    """Reply: every registered instance id, in registration order."""


@dataclass(frozen=True, slots=True)
class CountInstances:
    """Reply: how many instances are registered."""


@dataclass(frozen=True, slots=True)
class PruneInstances:
    """Drop every instance whose actor has stopped for good. Reply: the ids dropped."""


@dataclass(frozen=True, slots=True)
class AnnounceInstance:
    """Fire-and-forget :class:`RegisterInstance`: a conflict is logged, never raised."""

    instance_id: str
    prompt_id: str
    ref: Any
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class AnnounceRun:
    """Fire-and-forget :class:`LinkRun`: a conflict is logged, never raised."""

    instance_id: str
    run_id: str


RegistryCommand = (
    RegisterInstance
    | UnregisterInstance
    | LinkRun
    | GetInstance
    | InstancesByPrompt
    | InstanceByRun
    | AllInstances
    | CountInstances
    | PruneInstances
    | AnnounceInstance
    | AnnounceRun
)

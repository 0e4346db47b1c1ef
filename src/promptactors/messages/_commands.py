"""Commands an execution instance actor receives.

Plain frozen dataclasses: they are built by the runtime's own facade after it validated
the arguments, so the kernel does not pay for validation twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "ClearConversation",
    "ClearVariable",
    "CurrentTurn",
    "Execute",
    "ExportJournal",
    "GetSnapshot",
    "InstanceCommand",
    "PendingTurns",
    "Select",
    "SetExpandedVariable",
    "SetInput",
    "SetScopedValues",
    "Subscribe",
    "ToggleShowVariables",
    "UpdateVariables",
]


@dataclass(frozen=True, slots=True)
class Execute:
    """Start a turn. ``user_input`` is appended to the current input (the seed's rule)."""

    user_input: str | None = None


@dataclass(frozen=True, slots=True)
class SetInput:
    text: str


@dataclass(frozen=True, slots=True)
class UpdateVariables:
    """Set user values (the layer above scoped values and prompt defaults)."""

    values: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ClearVariable:
    name: str


@dataclass(frozen=True, slots=True)
class SetScopedValues:
    """Replace the scoped layer (project, org, user) with freshly fetched values."""

    scoped: Any  # messages.ScopedValues


@dataclass(frozen=True, slots=True)
class ClearConversation:
    pass


@dataclass(frozen=True, slots=True)
class SetExpandedVariable:
    name: str | None


@dataclass(frozen=True, slots=True)
class ToggleShowVariables:
    pass


@dataclass(frozen=True, slots=True)
class GetSnapshot:
    pass


@dataclass(frozen=True, slots=True)
class Select:
    """Apply a pure selector to the actor's current state and reply with its result."""

    selector: Callable[..., Any]
    args: tuple[Any, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Open a subscription to the streamed text of the current or next turn."""


@dataclass(frozen=True, slots=True)
class ExportJournal:
    pass


@dataclass(frozen=True, slots=True)
class CurrentTurn:
    """Reply with the ticket of the running (or last) turn, or None before the first."""


@dataclass(frozen=True, slots=True)
class PendingTurns:
    """Reply with the tickets of the running turn and the queued ones, in order."""


InstanceCommand = (
    Execute
    | SetInput
    | UpdateVariables
    | ClearVariable
    | SetScopedValues
    | ClearConversation
    | SetExpandedVariable
    | ToggleShowVariables
    | GetSnapshot
    | Select
    | Subscribe
    | ExportJournal
    | CurrentTurn
    | PendingTurns
)

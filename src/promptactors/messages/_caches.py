"""Commands the cache actors receive, and their statistics reply.

Plain frozen dataclasses: they travel inside the kernel, where arguments were already
validated at the public boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._instance import PromptSource

__all__ = [
    "CacheStats",
    "GetAction",
    "GetCacheStats",
    "GetPrompt",
    "GetScopedVariables",
    "InvalidateActions",
    "InvalidatePrompts",
    "InvalidateScopedVariables",
]


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters of one cache actor since it started.

    ``hits``: gets answered from a cached entry; ``misses``: gets that waited for a read
    (the one that started it and those that joined it); ``store_reads``: reads started;
    ``failures``: reads that failed (never cached); ``evictions``: entries dropped to stay
    within ``max_entries``; ``entries``: entries held now; ``in_flight``: reads running now.
    """

    hits: int = 0
    misses: int = 0
    store_reads: int = 0
    failures: int = 0
    evictions: int = 0
    entries: int = 0
    in_flight: int = 0


@dataclass(frozen=True, slots=True)
class GetCacheStats:
    """Reply: the cache's :class:`CacheStats`."""


@dataclass(frozen=True, slots=True)
class GetPrompt:
    """Reply: the ``PromptDefinition`` of ``prompt_id`` from ``source``, or a pending read."""

    prompt_id: str
    source: PromptSource = "prompts"


@dataclass(frozen=True, slots=True)
class InvalidatePrompts:
    """Forget cached prompts: ``prompt_id`` (both sources unless ``source`` is given), every
    prompt of ``source``, or everything when both are None. Reply: how many were dropped."""

    prompt_id: str | None = None
    source: PromptSource | None = None


@dataclass(frozen=True, slots=True)
class GetAction:
    """Reply: the ``ActionRecord`` of ``action_id``, or a pending read."""

    action_id: str


@dataclass(frozen=True, slots=True)
class InvalidateActions:
    """Forget ``action_id``, or every action when None. Reply: how many were dropped."""

    action_id: str | None = None


@dataclass(frozen=True, slots=True)
class GetScopedVariables:
    """Reply: the ``ScopedValues`` of a (user, org, project) context, or a pending read.

    ``force`` ignores the cached entry and reads again.
    """

    user_id: str | None = None
    org_id: str | None = None
    project_id: str | None = None
    force: bool = False


@dataclass(frozen=True, slots=True)
class InvalidateScopedVariables:
    """Forget the cached contexts matching every id given (None matches any); with no id,
    forget everything. Reply: how many were dropped."""

    user_id: str | None = None
    org_id: str | None = None
    project_id: str | None = None

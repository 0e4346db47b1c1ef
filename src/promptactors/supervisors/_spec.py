"""Child specifications, restart types and backoff."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from .._exceptions import InvalidInput

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ..kernel import Actor
    from ._supervisor import Supervisor

__all__ = ["Backoff", "ChildSpec", "Restart", "Strategy", "Termination"]

Restart: TypeAlias = Literal["permanent", "transient", "temporary"]
Strategy: TypeAlias = Literal["one_for_one", "one_for_all", "rest_for_one"]
Termination: TypeAlias = Literal["exited", "stopped", "killed", "gave_up"]
"""Why a child stopped for good (see ``ChildSpec.on_terminated``)."""


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to start and restart one child.

    ``start`` builds a fresh incarnation each time it is called: an :class:`Actor` or a
    :class:`Supervisor` (a subtree). ``restart``: ``permanent`` children are always
    restarted, ``transient`` ones only after an abnormal exit (crash or kill),
    ``temporary`` ones never. ``shutdown``: seconds a graceful stop may take before the
    child is killed (``0`` kills at once; ``None`` waits without limit, the usual choice
    for a subtree). Raises ``InvalidInput`` for an empty id or a negative timeout.

    ``on_terminated(why)``, if given, is awaited once each time the child stops for good
    (no incarnation runs and none will follow), with why: ``exited`` (an exit its restart
    type does not restart), ``stopped`` (a graceful stop: ``terminate_child``,
    ``ActorRef.stop``, the supervisor's shutdown, or a stop while it waited to restart),
    ``killed`` (still running after its shutdown timeout), ``gave_up`` (its last
    incarnation crashed and the supervisor escalated instead of restarting it). It is
    where whoever started the child settles what the child's hooks could not (a kill
    skips ``on_stop``). It runs in the supervisor's task, shielded from cancellation but
    bounded by ``shutdown`` (then cancelled); an error it raises is logged, never
    raised. Not called when the child's first start fails (``start_child`` raises).
    """

    id: str
    start: Callable[[], Actor[Any] | Supervisor]
    restart: Restart = "permanent"
    shutdown: float | None = 5.0
    mailbox_size: int | None = None
    on_terminated: Callable[[Termination], Awaitable[None]] | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise InvalidInput("ChildSpec.id must be a non-empty string")
        if self.restart not in ("permanent", "transient", "temporary"):
            raise InvalidInput(
                f"ChildSpec {self.id!r}: restart must be permanent, transient or temporary, "
                f"got {self.restart!r}"
            )
        if self.shutdown is not None and self.shutdown < 0:
            raise InvalidInput(f"ChildSpec {self.id!r}: shutdown must be >= 0 or None")
        if not callable(self.start):
            raise InvalidInput(f"ChildSpec {self.id!r}: start must be a callable factory")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter between restarts of the same child.

    The n-th restart of a child within the supervisor's intensity period waits
    ``min(maximum, initial * multiplier**(n-1))`` seconds, spread by ±``jitter`` (a
    fraction). ``rng`` makes the jitter reproducible in tests.
    """

    initial: float = 0.1
    maximum: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.2
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < self.initial or self.multiplier < 1:
            raise InvalidInput("Backoff needs 0 <= initial <= maximum and multiplier >= 1")
        if not 0 <= self.jitter <= 1:
            raise InvalidInput("Backoff.jitter is a fraction between 0 and 1")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before restart number ``attempt`` (1-based)."""
        try:
            grown = self.initial * self.multiplier ** max(0, attempt - 1)
        except OverflowError:  # a long storm under a generous intensity: capped anyway
            grown = self.maximum if self.initial else 0.0
        base = min(self.maximum, grown)
        if self.jitter:
            base *= 1 + self.rng.uniform(-self.jitter, self.jitter)
        return max(0.0, base)

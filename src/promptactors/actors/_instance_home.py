"""What the engine gives every instance, and what survives its restarts.

:class:`EngineContext` holds the engine's shared services an instance uses (persistence,
registration, providers, prices, clock); :class:`InstanceSpec` is what an instance is
started from; :class:`InstanceHome` is the memory the supervisor's child spec keeps across
incarnations (state, pending turn, subscribers, journal); :class:`TurnRetry` is the
instance's retry policy for turns interrupted by a crash or a retryable provider error.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from ..messages import ExecutionConfig, ScopedValues
from ..state import computed_variables

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .._exceptions import StaleFence
    from ..kernel import ActorRef
    from ..messages import ConversationMessage, Event, PromptDefinition
    from ..providers import PriceTable, Provider
    from ..state import InstanceState
    from ..store import WriteOp
    from ._admission import Admission
    from ._ownership import RunClaim
    from ._turns import ActiveTurn, Subscription, TurnTicket

__all__ = [
    "EngineContext",
    "InstanceHome",
    "InstanceSpec",
    "Persistence",
    "Registration",
    "TurnRetry",
]


# -- what the engine gives every instance ------------------------------------------------


@dataclass(frozen=True, slots=True)
class TurnRetry:
    """How often a turn is attempted, and the pause between attempts (exponential)."""

    max_attempts: int = 3
    backoff: float = 0.25
    max_backoff: float = 5.0

    def delay(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * 2.0 ** max(0, attempt - 1))


class Persistence(Protocol):
    """Where an instance sends its rows: ``persist`` returns once they are committed."""

    async def persist(self, *ops: WriteOp, timeout: float | None = ...) -> None: ...


class Registration(Protocol):
    """How an instance tells the registry about itself and its run."""

    async def announce(
        self, instance_id: str, prompt_id: str, ref: ActorRef[Any], run_id: str | None = None
    ) -> None: ...

    async def announce_run(self, instance_id: str, run_id: str) -> None: ...

    async def unregister(self, instance_id: str) -> None: ...


@dataclass(slots=True)
class EngineContext:
    """The services every instance uses, shared by all of them.

    ``provider_for`` picks the provider and model for a turn from the effective settings;
    ``clock`` gives event times (seconds); ``utcnow`` the wall time for computed variables.
    """

    provider_for: Callable[[Mapping[str, Any]], tuple[Provider, str]]
    persistence: Persistence | None
    registry: Registration | None
    prices: PriceTable | None = None
    executor_id: str | None = None
    retry: TurnRetry = field(default_factory=TurnRetry)
    clock: Callable[[], float] = time.time
    utcnow: Callable[[], datetime] = lambda: datetime.now(UTC)
    journal: bool = True
    admission: Admission | None = None
    """Bounds the turn attempts streaming or committing at once (``max_active_turns``)."""
    row_timeout: float = 30.0
    """Seconds a turn waits for its run and task rows to commit before it fails cleanly
    (and a failed or cancelled turn for its rows before its caller hears; they stay queued).
    The runtime sets it from ``RuntimeSettings.turn_rows_timeout``."""
    _computed: tuple[int, dict[str, str]] = field(default=(-1, {}), repr=False)

    def computed(self) -> dict[str, str]:
        """The computed variables for now (they change once a second: cached for it)."""
        now = self.utcnow()
        second = int(now.timestamp())
        if self._computed[0] != second:
            self._computed = (second, computed_variables(now))
        return self._computed[1]


# -- what survives restarts --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    """How an instance is created (its first event), kept for restarts."""

    instance_id: str
    prompt: PromptDefinition
    execution_config: ExecutionConfig = field(default_factory=ExecutionConfig)
    settings: Mapping[str, Any] = field(default_factory=dict)
    user_values: Mapping[str, str] = field(default_factory=dict)
    action_values: Mapping[str, str] = field(default_factory=dict)
    broker_values: Mapping[str, str] = field(default_factory=dict)
    scoped_values: ScopedValues = field(default_factory=ScopedValues)
    initial_message: str | None = None
    run_id: str | None = None
    run_name: str | None = None
    history: tuple[ConversationMessage, ...] = ()


class InstanceHome:
    """An instance's memory outside its incarnations (the supervisor keeps it)."""

    __slots__ = (
        "claim",
        "closed",
        "crashes",
        "fenced",
        "journal",
        "outbox",
        "queue",
        "run_id",
        "spec",
        "state",
        "stopping",
        "subscribers",
        "ticket",
        "turn",
    )

    def __init__(self, spec: InstanceSpec, claim: RunClaim | None = None) -> None:
        self.spec = spec
        self.claim = claim
        """The database claim on the run this instance continues; released at its stop."""
        self.state: InstanceState | None = None
        self.journal: list[Event] = []
        self.ticket: TurnTicket | None = None
        """The last accepted turn's ticket (``current_turn``)."""
        self.turn: ActiveTurn | None = None
        """The turn running now (any phase before ``done``)."""
        self.queue: deque[tuple[TurnTicket, str | None]] = deque()
        """Accepted turns waiting for the running one (``on_busy="enqueue"``)."""
        self.run_id: str | None = spec.run_id
        """The run this conversation is saved to: chosen once, kept across restarts."""
        self.stopping = False
        self.closed = False
        """Its turns are settled and its run closed (by ``on_stop``, or after a crash
        during a stop, or by the supervisor's ``on_terminated`` hook)."""
        self.outbox: list[WriteOp] = []
        """A settled turn's rows not yet confirmed by the tracker (rewritten after a crash)."""
        self.subscribers: set[Subscription] = set()
        self.crashes = 0
        self.fenced: StaleFence | None = None
        """Set once the store refused a write with a stale fence: another executor took
        the run over. Every turn then ends with this error and nothing more is written."""

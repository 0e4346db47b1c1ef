"""What a chaos driver saw, as data the invariant checker compares with the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "ClaimRace",
    "ConversationSnapshot",
    "Observations",
    "Outcome",
    "TurnObservation",
    "WaitObservation",
]

Outcome: TypeAlias = Literal["answered", "failed", "cancelled", "rejected"]
"""How a turn ended for its caller: ``rejected`` turns were never accepted (no ticket)."""


@dataclass(frozen=True, slots=True)
class TurnObservation:
    """One turn as its caller saw it.

    ``task_id`` is the ticket's first task id (the id the user message carries), None
    for a rejected turn; ``answer_task_id`` the task that answered (a retry's, maybe);
    ``run_id`` the run the turn was written to, if known; ``text`` the answer of an
    answered turn; ``error`` the exception's type name otherwise.
    """

    instance_id: str
    outcome: Outcome
    task_id: str | None = None
    answer_task_id: str | None = None
    run_id: str | None = None
    text: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class WaitObservation:
    """One wait of a caller: ``waited`` seconds against the ``bound`` it was promised
    (``waited`` is ``inf`` for a wait that had to be abandoned)."""

    caller: str
    waited: float
    bound: float


@dataclass(frozen=True, slots=True)
class ConversationSnapshot:
    """An instance's conversation in memory, taken after its turns settled: the
    messages as rows (``role``, ``content``, ``task_id``, ``failed``...), and its run."""

    instance_id: str
    run_id: str | None
    messages: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True, slots=True)
class ClaimRace:
    """Several instances started on one run at once: how many of them won it, and how
    many failed for a reason other than the claim (``RunInUse`` is the loser's answer;
    a store outage or a restarting supervisor is another reason)."""

    run_id: str
    contenders: int
    winners: int
    failed: int = 0


@dataclass(slots=True)
class Observations:
    """Everything a chaos run observed, for :func:`check_invariants`.

    ``run_ids`` names the runs to check (those of ``turns`` and ``snapshots`` are added);
    ``stopped`` the instances stopped for good (the registry must not hold them).
    """

    turns: list[TurnObservation] = field(default_factory=list)
    waits: list[WaitObservation] = field(default_factory=list)
    snapshots: list[ConversationSnapshot] = field(default_factory=list)
    claims: list[ClaimRace] = field(default_factory=list)
    run_ids: set[str] = field(default_factory=set)
    stopped: set[str] = field(default_factory=set)

    def all_run_ids(self) -> list[str]:
        """Every run named anywhere, sorted."""
        ids = set(self.run_ids)
        ids.update(t.run_id for t in self.turns if t.run_id is not None)
        ids.update(s.run_id for s in self.snapshots if s.run_id is not None)
        return sorted(ids)

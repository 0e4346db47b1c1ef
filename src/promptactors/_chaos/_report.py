"""The chaos report: faults injected, outcomes, restarts, retries and each invariant."""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..testing import InvariantReport
    from ._driver import ChaosRun, Trace

__all__ = ["ChaosReport", "SweepReport", "reproduce_command", "trace_hash"]


def trace_hash(trace: Trace) -> str:
    """A short hash of the ordered event log (faults, outcomes, row states)."""
    digest = hashlib.blake2b(digest_size=12)
    for event in trace.events:
        digest.update(repr(event).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def reproduce_command(arguments: Sequence[str]) -> str:
    """The one-line command that runs the same chaos again."""
    return shlex.join(["promptactors", "chaos", *arguments])


@dataclass(frozen=True, slots=True)
class ChaosReport:
    """One chaos run: what was injected, how the turns ended, and the invariants."""

    seed: int
    instances: int
    fault_kinds: tuple[str, ...]
    faults_by_kind: dict[str, int]
    outcomes: dict[str, int]
    restarts: int
    retries: int
    invariants: InvariantReport
    wall_s: float
    trace_hash: str
    reproduce: str
    refused_store_calls: int = 0
    parameters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_run(
        cls, run: ChaosRun, *, instances: int, kinds: tuple[str, ...], reproduce: str, **params: Any
    ) -> ChaosReport:
        return cls(
            seed=run.schedule.seed,
            instances=instances,
            fault_kinds=kinds,
            faults_by_kind=dict(sorted(run.faults.items())),
            outcomes={k: run.outcomes.get(k, 0) for k in _OUTCOMES} | dict(run.outcomes),
            restarts=run.restarts,
            retries=run.retries,
            invariants=run.invariants,
            wall_s=round(run.wall_s, 3),
            trace_hash=trace_hash(run.trace),
            reproduce=reproduce,
            refused_store_calls=run.refused_store_calls,
            parameters=params,
        )

    @property
    def ok(self) -> bool:
        return self.invariants.ok

    @property
    def faults_injected(self) -> int:
        return sum(self.faults_by_kind.values())

    def to_dict(self) -> dict[str, Any]:
        checked = self.invariants.to_dict()
        return {
            "seed": self.seed,
            "instances": self.instances,
            "fault_kinds": list(self.fault_kinds),
            "faults_injected": self.faults_injected,
            "faults_by_kind": self.faults_by_kind,
            "restarts": self.restarts,
            "retries": self.retries,
            "refused_store_calls": self.refused_store_calls,
            "outcomes": self.outcomes,
            "invariants_violated": checked["invariants_violated"],
            "invariants": checked["invariants"],
            "turns_lost": checked["turns_lost"],
            "hung_callers": checked["hung_callers"],
            "ok": self.ok,
            "wall_s": self.wall_s,
            "trace_hash": self.trace_hash,
            "reproduce": self.reproduce,
            "parameters": self.parameters,
        }


_OUTCOMES = ("answered", "failed", "cancelled", "rejected")


@dataclass(frozen=True, slots=True)
class SweepReport:
    """A ``--simulate`` sweep: one virtual-time run per seed."""

    seeds_run: int
    failing_seeds: list[int]
    reproducible: bool | None
    rerun_seed: int | None
    hashes: dict[int, str]
    violations: dict[int, list[str]]
    faults_by_kind: dict[str, int]
    outcomes: dict[str, int]
    turns_lost: int
    hung_callers: int
    wall_s: float
    reproduce: str
    first_failure: dict[str, Any] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    #: The rerun seed's hash in this process (after the sweep) and in a new process.
    rerun_hashes: dict[str, str] = field(default_factory=dict)
    rerun_error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failing_seeds and self.reproducible is not False

    def to_dict(self) -> dict[str, Any]:
        return {
            "seeds_run": self.seeds_run,
            "failing_seeds": self.failing_seeds,
            "reproducible": self.reproducible,
            "rerun_seed": self.rerun_seed,
            "rerun_hashes": self.rerun_hashes,
            "rerun_error": self.rerun_error,
            "faults_injected": sum(self.faults_by_kind.values()),
            "faults_by_kind": self.faults_by_kind,
            "outcomes": self.outcomes,
            "invariants_violated": sorted({n for v in self.violations.values() for n in v}),
            "violations_by_seed": {str(k): v for k, v in self.violations.items()},
            "turns_lost": self.turns_lost,
            "hung_callers": self.hung_callers,
            "first_failure": self.first_failure,
            "trace_hashes": {str(k): v for k, v in self.hashes.items()},
            "ok": self.ok,
            "wall_s": self.wall_s,
            "reproduce": self.reproduce,
            "parameters": self.parameters,
        }

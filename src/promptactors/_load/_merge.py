"""Loads spread over several processes: one :class:`LoadPart` per process, merged into one
report whose percentiles are those of every turn of the whole load (never an average of
per-process percentiles)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._exceptions import InvalidInput
from ._driver import build_report
from ._stats import TurnSample, check_slo

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ._report import LoadReport

__all__ = ["LoadPart", "merge_reports"]


@dataclass(frozen=True, slots=True)
class LoadPart:
    """What one process of a load measured: its turns (indexes from 0, times from its own
    start), every inter-chunk gap, its CPU time, retries and cost. ``offset`` is when it
    started, in seconds after the whole load started; ``first_index`` the index of its
    first instance in the whole load."""

    turns: tuple[TurnSample, ...]
    gaps: tuple[float, ...] = ()
    wall_s: float = 0.0
    cpu_s: float = 0.0
    attempts_retried: int = 0
    cost: float = 0.0
    partial: bool = False
    offset: float = 0.0
    first_index: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_report(
        cls, report: LoadReport, *, offset: float, first_index: int, **info: Any
    ) -> LoadPart:
        """The part a process hands back from its own report."""
        return cls(
            turns=report.turns,
            gaps=report.itl_samples,
            wall_s=report.wall_s,
            cpu_s=report.cpu_s,
            attempts_retried=report.attempts_retried,
            cost=report.cost,
            partial=report.partial,
            offset=offset,
            first_index=first_index,
            info={"completed": report.completed, "errors": report.errors, **info},
        )

    def to_json(self) -> dict[str, Any]:
        """Plain data (JSON) to carry the part between processes."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["turns"] = [dataclasses.asdict(turn) for turn in self.turns]
        data["gaps"] = list(self.gaps)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LoadPart:
        """A part from :meth:`to_json`'s data. Raises ``InvalidInput`` if malformed."""
        try:
            return cls(
                turns=tuple(TurnSample(**turn) for turn in data["turns"]),
                gaps=tuple(float(gap) for gap in data["gaps"]),
                wall_s=float(data["wall_s"]),
                cpu_s=float(data["cpu_s"]),
                attempts_retried=int(data["attempts_retried"]),
                cost=float(data["cost"]),
                partial=bool(data["partial"]),
                offset=float(data["offset"]),
                first_index=int(data["first_index"]),
                info=dict(data.get("info") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"a load part is malformed: {exc!r}") from exc


def _shifted(turn: TurnSample, part: LoadPart, origin: float) -> TurnSample:
    shift = part.offset - origin
    return dataclasses.replace(
        turn,
        index=turn.index + part.first_index,
        started=turn.started + shift,
        sent=None if turn.sent is None else turn.sent + shift,
    )


def merge_reports(
    parts: Sequence[LoadPart],
    *,
    instances: int,
    wall: float | None = None,
    slo: Mapping[str, float] | None = None,
    partial: bool = False,
    parameters: Mapping[str, Any] | None = None,
) -> LoadReport:
    """One report for a load whose ``instances`` ran in ``parts``.

    The load lasts ``wall`` seconds, or by default from the first part's start to the
    last part's end (process start-up excluded, as in a one-process load). The turns of
    every part are put on that time line (by the part's offset) and
    numbered across parts; percentiles, goodput, failures and the time series are then
    computed over all of them. CPU time, retries and cost are summed. The report is
    ``partial`` if asked or if any part was, and a turn no part reported (its process
    died) counts as cancelled.
    """
    origin = min((part.offset for part in parts), default=0.0)
    if wall is None:
        wall = max((part.offset + part.wall_s for part in parts), default=origin) - origin
    samples = [_shifted(turn, part, origin) for part in parts for turn in part.turns]
    seen = {sample.index for sample in samples}
    samples.extend(
        TurnSample(index=i, started=0.0, outcome="cancelled")
        for i in range(instances)
        if i not in seen
    )
    samples.sort(key=lambda s: s.index)
    gaps = [gap for part in parts for gap in part.gaps]
    report = build_report(
        samples=tuple(samples),
        gaps=gaps,
        instances=instances,
        wall=wall,
        cpu=sum(part.cpu_s for part in parts),
        slos=check_slo(slo),
        retried=sum(part.attempts_retried for part in parts),
        cost=sum(part.cost for part in parts),
        partial=partial or len(seen) < instances or any(part.partial for part in parts),
        parameters={**(parameters or {}), "processes": len(parts)},
    )
    report.extra["processes"] = [part.info for part in parts]
    return report

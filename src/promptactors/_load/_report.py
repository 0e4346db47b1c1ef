"""What a load run measured (:class:`LoadReport`) and its JSON and CSV forms."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._format import ReportTable, report_tables
from ._stats import Failure, Goodput, Latency, Second, TurnSample

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["CSV_COLUMNS", "LoadReport"]

#: The columns of :meth:`LoadReport.write_csv`, one row per turn (times in seconds).
CSV_COLUMNS = (
    "turn",
    "outcome",
    "started_s",
    "ttft_s",
    "tpot_s",
    "itl_mean_s",
    "itl_max_s",
    "e2e_s",
    "output_tokens",
    "chunks",
    "attempts",
    "error_kind",
    "error_message",
    "run_id",
)

_LATENCIES = ("ttft", "tpot", "itl", "e2e")


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What a load run measured. Latencies in seconds; CPU figures from process time.

    ``ttft``, ``tpot``, ``itl`` and ``e2e`` summarise the completed turns (see
    :mod:`promptactors._load._stats` for the definitions); ``ttft_p50`` ... ``total_p99``
    repeat some of them under their first names. ``partial`` says the load was stopped
    before every turn finished (``cancelled`` turns were cut short). ``turns`` holds one
    sample per instance, in start order.
    """

    instances: int
    completed: int
    errors: int
    error_kinds: dict[str, int]
    wall_s: float
    cpu_s: float
    turns_per_s: float
    tokens: int
    tokens_per_s: float
    cpu_us_per_token: float | None
    ttft_p50: float | None
    ttft_p95: float | None
    ttft_p99: float | None
    total_p50: float | None
    total_p95: float | None
    total_p99: float | None
    attempts_retried: int
    cost: float
    extra: dict[str, Any] = field(default_factory=dict)
    partial: bool = False
    cancelled: int = 0
    ttft: Latency = field(default_factory=Latency)
    tpot: Latency = field(default_factory=Latency)
    itl: Latency = field(default_factory=Latency)
    e2e: Latency = field(default_factory=Latency)
    goodput: Goodput = field(default_factory=lambda: Goodput({}, 0, 0.0, None))
    failures: tuple[Failure, ...] = ()
    timeseries: tuple[Second, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
    turns: tuple[TurnSample, ...] = field(default=(), repr=False)
    itl_samples: tuple[float, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Every figure as JSON-ready values (the per-turn samples are left to the CSV)."""
        figures: dict[str, Any] = {
            "instances": self.instances,
            "completed": self.completed,
            "errors": self.errors,
            "cancelled": self.cancelled,
            "partial": self.partial,
            "error_kinds": dict(self.error_kinds),
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "turns_per_s": self.turns_per_s,
            "tokens": self.tokens,
            "tokens_per_s": self.tokens_per_s,
            "cpu_us_per_token": self.cpu_us_per_token,
            "ttft_p50": self.ttft_p50,
            "ttft_p95": self.ttft_p95,
            "ttft_p99": self.ttft_p99,
            "total_p50": self.total_p50,
            "total_p95": self.total_p95,
            "total_p99": self.total_p99,
            "attempts_retried": self.attempts_retried,
            "cost": self.cost,
        }
        for name in _LATENCIES:
            figures[name] = getattr(self, name).to_dict()
        figures["goodput"] = self.goodput.to_dict()
        figures["failures"] = [f.to_dict() for f in self.failures]
        figures["timeseries"] = [s.to_dict() for s in self.timeseries]
        figures["parameters"] = dict(self.parameters)
        if self.extra:
            figures["extra"] = dict(self.extra)
        return figures

    def tables(self) -> list[ReportTable]:
        """The report as titled tables of formatted cells (what the terminal and HTML show)."""
        return report_tables(self)

    def csv_rows(self) -> list[list[str]]:
        """One row per turn under :data:`CSV_COLUMNS` (empty cells for what a turn lacks)."""
        return [[_cell(v) for v in _row(turn)] for turn in self.turns]

    def write_csv(self, path: Path) -> None:
        """Write one row per turn, with a header row, to ``path``."""
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_COLUMNS)
            writer.writerows(self.csv_rows())

    def write_html(self, path: Path, *, title: str = "promptactors load") -> None:
        """Write a self-contained HTML report with plots (inline SVG, no network) to
        ``path``. Raises ``ConfigurationError`` when matplotlib (the ``report`` extra) is
        missing."""
        from ._html import render_html

        path.write_text(render_html(self, title=title), encoding="utf-8")


def _row(turn: TurnSample) -> tuple[Any, ...]:
    return (
        turn.index,
        turn.outcome,
        turn.started,
        turn.ttft,
        turn.tpot,
        turn.itl_mean,
        turn.itl_max,
        turn.e2e,
        turn.output_tokens,
        turn.chunks,
        turn.attempts,
        turn.error_kind,
        turn.error_message,
        turn.run_id,
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)

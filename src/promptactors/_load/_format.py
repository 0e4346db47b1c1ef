"""A load report as display tables: one set of number formats for the terminal and HTML.

Latencies in milliseconds with two decimals, rates with one, counts with thousands
separators; a missing figure shows as an en dash, never ``None``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._stats import Second

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._report import LoadReport

__all__ = ["MISSING", "ReportTable", "report_tables"]

MISSING = "\N{EN DASH}"
#: The terminal shows at most this many rows of the time series (buckets are merged).
SERIES_ROWS = 20


@dataclass(frozen=True, slots=True)
class ReportTable:
    """A titled table of formatted cells; ``numeric`` marks right-aligned columns."""

    key: str
    title: str
    columns: tuple[str, ...]
    numeric: tuple[bool, ...]
    rows: tuple[tuple[str, ...], ...]


def ms(seconds: float | None) -> str:
    return MISSING if seconds is None else f"{seconds * 1000:,.2f}"


def rate(value: float | None) -> str:
    return MISSING if value is None else f"{value:,.1f}"


def count(value: int | None) -> str:
    return MISSING if value is None else f"{value:,}"


def secs(value: float | None) -> str:
    return MISSING if value is None else f"{value:,.2f}"


def share(value: float | None) -> str:
    return MISSING if value is None else f"{value * 100:.1f} %"


def report_tables(report: LoadReport, *, series_rows: int = SERIES_ROWS) -> list[ReportTable]:
    """The report's tables: run, throughput, latency, failures (when any), over time."""
    tables = [_run(report), _throughput(report), _latency(report)]
    if report.failures:
        tables.append(
            ReportTable(
                key="failures",
                title="Failures",
                columns=("kind", "message", "count"),
                numeric=(False, False, True),
                rows=tuple((f.kind, f.message or MISSING, count(f.count)) for f in report.failures),
            )
        )
    tables.append(_over_time(report.timeseries, series_rows))
    return tables


def _run(report: LoadReport) -> ReportTable:
    p = report.parameters
    slo = p.get("slo") or {}
    rows = [
        ("status", _status(report)),
        ("prompt", str(p.get("prompt") or MISSING)),
        ("provider", str(p.get("provider") or MISSING)),
        ("model", str(p.get("model") or MISSING)),
        ("instances", count(report.instances)),
        ("rate (instances/s)", "all at once" if p.get("rate") is None else rate(p["rate"])),
        ("processes", count(p.get("processes", 1))),
        ("database", str(p.get("database") or MISSING)),
        ("runs tracked", "yes" if p.get("track", True) else "no"),
        ("SLOs (ms)", ", ".join(f"{k} ≤ {ms(v)}" for k, v in slo.items()) or "none"),
        ("started at (UTC)", str(p.get("started_at") or MISSING)),
    ]
    return ReportTable("run", "Run", ("parameter", "value"), (False, False), tuple(rows))


def _status(report: LoadReport) -> str:
    if not report.partial:
        return "complete"
    return f"PARTIAL: stopped after {secs(report.wall_s)} s, {count(report.cancelled)} cancelled"


def _throughput(report: LoadReport) -> ReportTable:
    g = report.goodput
    rows = [
        ("duration (s)", secs(report.wall_s)),
        ("turns completed", count(report.completed)),
        ("turns failed", count(report.errors)),
        ("turns cancelled", count(report.cancelled)),
        ("turns/s", rate(report.turns_per_s)),
        ("output tokens", count(report.tokens)),
        ("output tokens/s", rate(report.tokens_per_s)),
        ("goodput (turns/s)", rate(g.turns_per_s)),
        ("goodput share of completed" + ("" if g.slo else ", no SLO set"), share(g.share)),
        ("turns retried", count(report.attempts_retried)),
        ("cost (USD)", f"{report.cost:,.4f}"),
        ("CPU (s)", secs(report.cpu_s)),
        ("CPU per output token (µs)", rate(report.cpu_us_per_token)),
    ]
    return ReportTable("throughput", "Throughput", ("figure", "value"), (False, True), tuple(rows))


def _latency(report: LoadReport) -> ReportTable:
    columns = ("metric", "turns", "mean", "p50", "p90", "p95", "p99", "max")
    rows = []
    for label, lat in (
        ("TTFT", report.ttft),
        ("TPOT", report.tpot),
        ("ITL", report.itl),
        ("E2E", report.e2e),
    ):
        cells = (lat.mean, lat.p50, lat.p90, lat.p95, lat.p99, lat.max)
        rows.append((label, count(lat.n), *(ms(v) for v in cells)))
    return ReportTable(
        key="latency",
        title="Latency (ms; ITL counts chunk gaps, not turns)",
        columns=columns,
        numeric=(False, *([True] * 7)),
        rows=tuple(rows),
    )


def merge_seconds(series: Sequence[Second], rows: int) -> tuple[Second, ...]:
    """The series in at most ``rows`` buckets, each a whole number of the original ones."""
    if len(series) <= rows or not series:
        return tuple(series)
    k = math.ceil(len(series) / rows)
    merged = []
    for i in range(0, len(series), k):
        group = series[i : i + k]
        merged.append(
            Second(
                t=group[0].t,
                width=sum(s.width for s in group),
                started=sum(s.started for s in group),
                in_flight=max(s.in_flight for s in group),
                completed=sum(s.completed for s in group),
                errors=sum(s.errors for s in group),
                tokens=sum(s.tokens for s in group),
            )
        )
    return tuple(merged)


def _over_time(series: Sequence[Second], rows: int) -> ReportTable:
    shown = merge_seconds(series, rows)
    width = shown[0].width if shown else 1.0
    per = "per second" if width == 1.0 else f"per {width:g} s"
    return ReportTable(
        key="timeseries",
        title=f"Over time ({per}; in flight at its peak)",
        columns=("t (s)", "started", "in flight", "completed", "errors", "tokens/s"),
        numeric=(True,) * 6,
        rows=tuple(
            (
                f"{s.t:,.0f}",
                count(s.started),
                count(s.in_flight),
                count(s.completed),
                count(s.errors),
                rate(s.tokens_per_s),
            )
            for s in shown
        ),
    )

"""The load report as one self-contained HTML file: tables and matplotlib plots as inline
SVG (text drawn as paths), no script, no stylesheet or font fetched from anywhere."""

from __future__ import annotations

import html
import io
import re
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError
from ._stats import timeseries

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._format import ReportTable
    from ._report import LoadReport

__all__ = ["render_html"]

INSTALL_HINT = "pip install 'prompt-actors[report]'"
_SVG_PROLOGUE = re.compile(r"^.*?(?=<svg\b)", re.DOTALL)
_SVG_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)
_COLOURS = {"ttft": "#1f77b4", "tpot": "#ff7f0e", "itl": "#2ca02c", "e2e": "#9467bd"}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.75rem; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.partial { background: #fff3cd; border: 1px solid #e0c36a; padding: 0.5rem 1rem; }
figure { margin: 1rem 0; } svg { max-width: 100%; height: auto; }
"""


def render_html(report: LoadReport, *, title: str) -> str:
    """The report as an HTML document. Raises ``ConfigurationError`` without matplotlib."""
    try:
        import matplotlib  # noqa: F401 - probe for the optional extra
    except ImportError as exc:
        raise ConfigurationError(f"--html needs matplotlib: {INSTALL_HINT}") from exc
    plots = [_latency_plot(report), _time_plot(report)]
    tables = {t.key: t for t in report.tables()}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if report.partial:
        parts.append('<p class="partial">Partial report: the load was stopped early.</p>')
    parts.extend(
        _table(tables[key]) for key in ("run", "throughput", "latency", "failures") if key in tables
    )
    parts.append("<h2>Latency distributions</h2>")
    parts.append(f"<figure>{plots[0]}</figure>")
    parts.append("<h2>Throughput and turns in flight over time</h2>")
    parts.append(f"<figure>{plots[1]}</figure>")
    parts.append(_table(tables["timeseries"]))
    parts.append("</body></html>")
    return "\n".join(parts)


def _table(table: ReportTable) -> str:
    def cls(numeric: bool) -> str:
        return ' class="n"' if numeric else ""

    head = "".join(
        f"<th{cls(n)}>{html.escape(c)}</th>"
        for c, n in zip(table.columns, table.numeric, strict=True)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{cls(n)}>{html.escape(c)}</td>" for c, n in zip(row, table.numeric, strict=True)
        )
        + "</tr>"
        for row in table.rows
    )
    return f"<h2>{html.escape(table.title)}</h2><table><tr>{head}</tr>{body}</table>"


def _svg(figure: Any) -> str:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "promptactors"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight")
    text = _SVG_PROLOGUE.sub("", buffer.getvalue(), count=1)
    return _SVG_METADATA.sub("", text, count=1)


def _latency_plot(report: LoadReport) -> str:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 6.5), layout="constrained")
    axes = figure.subplots(2, 2)
    series: Sequence[tuple[str, str, Sequence[float | None]]] = (
        ("ttft", "Time to first token", [t.ttft for t in report.turns if t.outcome == "ok"]),
        ("tpot", "Time per output token", [t.tpot for t in report.turns if t.outcome == "ok"]),
        ("itl", "Inter-token latency (chunk gaps)", list(report.itl_samples)),
        ("e2e", "End-to-end latency", [t.e2e for t in report.turns if t.outcome == "ok"]),
    )
    for ax, (key, label, raw) in zip(axes.flat, series, strict=True):
        values = [v * 1000 for v in raw if v is not None]
        ax.set_title(label, fontsize=11)
        ax.set_xlabel("ms")
        ax.set_ylabel("count")
        if not values:
            ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes)
            continue
        ax.hist(values, bins=min(50, max(5, len(set(values)))), color=_COLOURS[key], alpha=0.85)
        summary = getattr(report, key)
        for q, style in (("p50", "-"), ("p99", "--")):
            value = getattr(summary, q)
            if value is not None:
                ax.axvline(value * 1000, color="#333", linestyle=style, linewidth=1, label=q)
        ax.legend(fontsize=8)
    return _svg(figure)


def _time_plot(report: LoadReport) -> str:
    from matplotlib.figure import Figure

    # A short run is drawn in finer buckets than the per-second table, to show its shape.
    wall = report.wall_s
    width = (
        1.0
        if wall >= 20
        else next(w for w in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0) if wall / w <= 40)
    )
    series = timeseries(report.turns, wall, width) if width != 1.0 else report.timeseries
    t = [s.t for s in series]
    figure = Figure(figsize=(11, 6.5), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True)
    top.plot(t, [s.completed / s.width for s in series], marker="o", label="completed turns/s")
    top.plot(t, [s.errors / s.width for s in series], marker="x", color="#d62728", label="errors/s")
    top.plot(t, [s.started / s.width for s in series], linestyle=":", label="started/s")
    top.set_ylabel("turns/s")
    top.set_title("Throughput", fontsize=11)
    tokens = top.twinx()
    tokens.plot(t, [s.tokens_per_s for s in series], color="#9467bd", label="output tokens/s")
    tokens.set_ylabel("tokens/s")
    lines = top.get_legend_handles_labels()
    more = tokens.get_legend_handles_labels()
    top.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper left")
    bottom.step(t, [s.in_flight for s in series], where="post", color="#2ca02c")
    bottom.fill_between(t, [s.in_flight for s in series], step="post", alpha=0.3, color="#2ca02c")
    per = "second" if width == 1.0 else f"{width:g} s"
    bottom.set_title(f"Turns in flight (peak per {per})", fontsize=11)
    bottom.set_ylabel("turns")
    bottom.set_xlabel("seconds since the start")
    return _svg(figure)

"""What ``promptactors load`` shows: a live view while it runs, then the report's tables."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from .. import LoadMonitor, LoadReport

#: Seconds between two progress lines when stderr is not a terminal (logs, CI).
PLAIN_EVERY = 3.0
#: Seconds between two refreshes of the live view on a terminal.
LIVE_EVERY = 0.2


class _Rate:
    """Output tokens per second over the time since the previous reading."""

    def __init__(self) -> None:
        self._at = time.perf_counter()
        self._tokens = 0

    def read(self, tokens: int) -> float:
        now = time.perf_counter()
        span = now - self._at
        value = (tokens - self._tokens) / span if span > 0 else 0.0
        self._at, self._tokens = now, tokens
        return value


def eta(monitor: LoadMonitor, rate: float | None) -> float | None:
    """Seconds left, from the pace so far and the start schedule (None: no pace yet)."""
    left = monitor.instances - monitor.finished
    if left <= 0:
        return 0.0
    if not monitor.finished:
        return None
    by_pace = monitor.elapsed / monitor.finished * left
    by_schedule = (monitor.instances - monitor.started) / rate if rate else 0.0
    return max(by_pace, by_schedule)


def status_line(monitor: LoadMonitor, tokens_per_s: float, rate: float | None) -> str:
    left = eta(monitor, rate)
    return (
        f"started {monitor.started:,}/{monitor.instances:,} · "
        f"in flight {monitor.in_flight:,} · done {monitor.completed:,} · "
        f"errors {monitor.errors:,} · {tokens_per_s:,.1f} tokens/s · "
        f"ETA {'-' if left is None else f'{left:,.0f} s'}"
    )


async def show_progress(monitor: LoadMonitor, err: Console, rate: float | None) -> None:
    """Keep a view of ``monitor`` on stderr until cancelled: a rich progress bar on a
    terminal, else a plain line every :data:`PLAIN_EVERY` seconds."""
    tokens = _Rate()
    if not err.is_terminal:
        while True:
            await anyio.sleep(PLAIN_EVERY)
            line = status_line(monitor, tokens.read(monitor.output_tokens), rate)
            err.print(f"load {monitor.elapsed:,.1f} s: {line}", highlight=False, soft_wrap=True)
    with Progress(
        TextColumn("[bold]load"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("turns", total=monitor.instances, status="")
        while True:
            line = status_line(monitor, tokens.read(monitor.output_tokens), rate)
            bar.update(task, completed=monitor.finished, status=line)
            await anyio.sleep(LIVE_EVERY)


def print_report(report: LoadReport, out: Console) -> None:
    """The report as rich tables (numbers formatted once, by the report)."""
    title = f"promptactors load: {report.instances:,} instances"
    if report.partial:
        title += " (PARTIAL: stopped early)"
    out.print(f"[bold]{title}[/]", highlight=False)
    for spec in report.tables():
        table = Table(title=spec.title, title_justify="left", title_style="bold")
        for column, numeric in zip(spec.columns, spec.numeric, strict=True):
            table.add_column(column, justify="right" if numeric else "left")
        for row in spec.rows:
            table.add_row(*row)
        out.print(table)

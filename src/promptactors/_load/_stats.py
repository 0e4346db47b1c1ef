"""The statistics of a load run, as pure functions of per-turn samples (no I/O, no clock).

Conventions follow vLLM's serving benchmark: TTFT is the time from sending the turn to its
first streamed chunk; TPOT is ``(e2e - ttft) / (output_tokens - 1)``; ITL is every gap
between two streamed chunks of a turn; E2E is the time from sending to the result.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from .._exceptions import InvalidInput

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "SLO_METRICS",
    "Failure",
    "Goodput",
    "Latency",
    "Second",
    "TurnSample",
    "check_slo",
    "count_failures",
    "goodput",
    "percentile",
    "redact_url",
    "summarize",
    "timeseries",
    "tpot",
]

#: The figures an SLO may bound (seconds each): ``--slo ttft=0.5,tpot=0.05,e2e=10``.
SLO_METRICS = ("ttft", "tpot", "itl", "e2e")

Outcome = Literal["ok", "error", "cancelled"]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by nearest rank (always one of the values); None for
    no values."""
    if not values:
        return None
    ordered = sorted(values)
    return _ranked(ordered, q)


def _ranked(ordered: Sequence[float], q: float) -> float:
    # round() first: 7 * 100 / 100 may not land exactly on 7.0 for every q.
    rank = math.ceil(round(q * len(ordered) / 100, 9))
    return ordered[max(1, min(len(ordered), rank)) - 1]


def tpot(e2e: float, ttft: float, output_tokens: int) -> float | None:
    """Time per output token after the first; None for a turn of fewer than two tokens."""
    if output_tokens < 2:
        return None
    return max(0.0, e2e - ttft) / (output_tokens - 1)


@dataclass(frozen=True, slots=True)
class TurnSample:
    """One turn of a load run, as the driver saw it. Times in seconds; ``started`` and
    ``sent`` from the start of the load, the latencies from ``sent``."""

    index: int
    started: float
    outcome: Outcome
    sent: float | None = None
    ttft: float | None = None
    e2e: float | None = None
    output_tokens: int = 0
    chunks: int = 0
    itl_mean: float | None = None
    itl_max: float | None = None
    attempts: int = 0
    run_id: str | None = None
    error_kind: str | None = None
    error_message: str | None = None

    @property
    def tpot(self) -> float | None:
        if self.e2e is None or self.ttft is None:
            return None
        return tpot(self.e2e, self.ttft, self.output_tokens)

    @property
    def ended(self) -> float | None:
        """When the turn ended, from the start of the load (None while unfinished)."""
        if self.sent is None or self.e2e is None:
            return None
        return self.sent + self.e2e


@dataclass(frozen=True, slots=True)
class Latency:
    """Percentiles of one latency over the turns that have it, in seconds (None: no turn)."""

    n: int = 0
    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None

    def to_dict(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 6)

        return {
            "p50": r(self.p50),
            "p90": r(self.p90),
            "p95": r(self.p95),
            "p99": r(self.p99),
            "max": r(self.max),
            "mean": r(self.mean),
            "n": self.n,
        }


def summarize(values: Iterable[float | None]) -> Latency:
    """p50/p90/p95/p99/max and mean of the values that are not None."""
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return Latency()
    return Latency(
        n=len(ordered),
        mean=math.fsum(ordered) / len(ordered),
        p50=_ranked(ordered, 50),
        p90=_ranked(ordered, 90),
        p95=_ranked(ordered, 95),
        p99=_ranked(ordered, 99),
        max=ordered[-1],
    )


@dataclass(frozen=True, slots=True)
class Goodput:
    """Completed turns that met every SLO: how many, per second of the run, and their share
    of the completed turns. With no SLO every completed turn counts."""

    slo: dict[str, float]
    turns: int
    turns_per_s: float
    share: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "slo": dict(self.slo),
            "turns": self.turns,
            "turns_per_s": round(self.turns_per_s, 3),
            "share": None if self.share is None else round(self.share, 4),
        }


def check_slo(slo: Mapping[str, float] | None) -> dict[str, float]:
    """The SLOs as a plain dict; raises ``InvalidInput`` for an unknown metric or a bound
    that is not a positive number of seconds."""
    checked: dict[str, float] = {}
    for name, bound in (slo or {}).items():
        if name not in SLO_METRICS:
            raise InvalidInput(f"unknown SLO {name!r}: choose among {', '.join(SLO_METRICS)}")
        if not (isinstance(bound, int | float) and math.isfinite(bound) and bound > 0):
            raise InvalidInput(f"SLO {name} must be a positive number of seconds, got {bound!r}")
        checked[name] = float(bound)
    return checked


def _meets(sample: TurnSample, slo: Mapping[str, float]) -> bool:
    # A turn too short to have a TPOT or an ITL meets those SLOs (as vLLM counts it).
    figures = {
        "ttft": sample.ttft,
        "tpot": sample.tpot,
        "itl": sample.itl_max,
        "e2e": sample.e2e,
    }
    return all((v := figures[name]) is None or v <= bound for name, bound in slo.items())


def goodput(samples: Iterable[TurnSample], slo: Mapping[str, float], duration: float) -> Goodput:
    """Goodput of the completed samples against ``slo`` over ``duration`` seconds. The ITL
    SLO bounds a turn's largest gap."""
    done = [s for s in samples if s.outcome == "ok"]
    met = sum(_meets(s, slo) for s in done)
    return Goodput(
        slo=dict(slo),
        turns=met,
        turns_per_s=met / duration if duration > 0 else 0.0,
        share=met / len(done) if done else None,
    )


@dataclass(frozen=True, slots=True)
class Failure:
    """Failed turns of one exception class with one message."""

    kind: str
    message: str
    count: int

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "count": self.count}


def count_failures(samples: Iterable[TurnSample]) -> tuple[Failure, ...]:
    """The failed samples grouped by (kind, message), most frequent first."""
    counts = Counter(
        (s.error_kind or "Exception", s.error_message or "")
        for s in samples
        if s.outcome == "error"
    )
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(Failure(kind, message, count) for (kind, message), count in ordered)


@dataclass(frozen=True, slots=True)
class Second:
    """One bucket of the time series, from ``t`` for ``width`` seconds (the last one may be
    shorter: the run ended in it): turns started, completed and failed in it, the most turns
    in flight at once, and the output tokens streamed in it (spread evenly from a turn's
    first chunk to its end)."""

    t: float
    width: float
    started: int = 0
    in_flight: int = 0
    completed: int = 0
    errors: int = 0
    tokens: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.width if self.width > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "t": round(self.t, 3),
            "started": self.started,
            "in_flight": self.in_flight,
            "completed": self.completed,
            "errors": self.errors,
            "tokens_per_s": round(self.tokens_per_s, 1),
        }


def timeseries(
    samples: Sequence[TurnSample], duration: float, width: float = 1.0
) -> tuple[Second, ...]:
    """Bucket the samples into ``width``-second slots covering ``[0, duration)``. A turn
    unfinished at the end (cancelled) is in flight until ``duration``."""
    if width <= 0:
        raise InvalidInput(f"width must be positive, got {width}")
    n = max(1, math.ceil(round(duration / width, 9)))

    def slot(t: float) -> int:
        return max(0, min(n - 1, int(t // width)))

    started = [0] * n
    completed = [0] * n
    errors = [0] * n
    tokens = [0.0] * n
    events: list[tuple[float, int]] = []
    for s in samples:
        started[slot(s.started)] += 1
        end = s.ended
        if end is not None and s.outcome == "ok":
            completed[slot(end)] += 1
        elif end is not None and s.outcome == "error":
            errors[slot(end)] += 1
        elif s.outcome == "error":  # failed before its turn was sent
            errors[slot(s.started)] += 1
            end = s.started
        events.append((s.started, 1))
        events.append((duration if end is None else end, -1))
        if s.outcome == "ok" and s.output_tokens and s.sent is not None and end is not None:
            first = s.sent + (s.ttft if s.ttft is not None else 0.0)
            _spread(tokens, s.output_tokens, first, end, width, slot)
    peak = _peaks(events, n, width)
    return tuple(
        Second(
            t=i * width,
            # The last bucket covers only what is left of the run, for honest rates.
            width=width if i < n - 1 or duration <= 0 else min(width, duration - i * width),
            started=started[i],
            in_flight=peak[i],
            completed=completed[i],
            errors=errors[i],
            tokens=tokens[i],
        )
        for i in range(n)
    )


def _spread(
    buckets: list[float], amount: int, start: float, end: float, width: float, slot: Any
) -> None:
    """Add ``amount`` to the buckets over ``[start, end]`` in proportion to the overlap."""
    if end <= start:
        buckets[slot(start)] += amount
        return
    span = end - start
    first, last = slot(start), slot(end)
    for i in range(first, last + 1):
        lo = max(start, i * width) if i > first else start
        hi = min(end, (i + 1) * width) if i < last else end
        buckets[i] += amount * max(0.0, hi - lo) / span


def _peaks(events: list[tuple[float, int]], n: int, width: float) -> list[int]:
    """The most events open at once in each bucket; at equal times ends go first."""
    events.sort()
    peak = [0] * n
    current = 0
    i = 0
    for b in range(n):
        top = current
        bound = (b + 1) * width
        while i < len(events) and (events[i][0] < bound or b == n - 1):
            current += events[i][1]
            top = max(top, current)
            i += 1
        peak[b] = top
    return peak


def redact_url(url: str) -> str:
    """The URL with its password (if any) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))

"""The statistics of a load report, on hand-made samples: percentiles, TPOT, goodput,
failures, the time series and the display formats."""

from __future__ import annotations

import pytest

from promptactors import InvalidInput
from promptactors._load import percentile
from promptactors._load._format import MISSING, merge_seconds
from promptactors._load._report import LoadReport
from promptactors._load._stats import (
    Second,
    TurnSample,
    check_slo,
    count_failures,
    goodput,
    redact_url,
    summarize,
    timeseries,
    tpot,
)


def ok(
    index: int,
    *,
    started: float = 0.0,
    sent: float | None = None,
    ttft: float = 0.1,
    e2e: float = 1.0,
    tokens: int = 10,
    itl_max: float | None = None,
) -> TurnSample:
    return TurnSample(
        index=index,
        started=started,
        outcome="ok",
        sent=started if sent is None else sent,
        ttft=ttft,
        e2e=e2e,
        output_tokens=tokens,
        itl_max=itl_max,
    )


def failed(index: int, *, at: float, kind: str = "ProviderError", msg: str = "boom") -> TurnSample:
    return TurnSample(
        index=index,
        started=at,
        outcome="error",
        sent=at,
        e2e=0.1,
        error_kind=kind,
        error_message=msg,
    )


# -- percentiles and summaries ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "expected"), [(0, 1), (10, 1), (50, 5), (90, 9), (95, 10), (99, 10), (100, 10)]
)
def test_percentile_is_the_nearest_rank(q: float, expected: float) -> None:
    """The q-th percentile of 1..10 is the value of rank ceil(q/100 * n), at least the first."""
    assert percentile([float(v) for v in range(10, 0, -1)], q) == expected


def test_percentile_of_nothing_is_none() -> None:
    """No values, no percentile."""
    assert percentile([], 50) is None


def test_summary_holds_ordered_percentiles_mean_and_count_skipping_none() -> None:
    """summarize gives p50 <= p90 <= p95 <= p99 <= max over the values that are there."""
    values = [i / 1000 for i in range(1, 201)] + [None]

    s = summarize(values)

    assert s.n == 200
    assert (s.p50, s.p90, s.p95, s.p99, s.max) == (0.1, 0.18, 0.19, 0.198, 0.2)
    assert s.mean == pytest.approx(0.1005)
    assert set(s.to_dict()) == {"p50", "p90", "p95", "p99", "max", "mean", "n"}


def test_summary_of_no_values_has_no_figures() -> None:
    """An empty summary says n=0 and None for every figure (the display shows a dash)."""
    s = summarize([None])
    assert s.n == 0
    assert s.to_dict()["p50"] is None


# -- per-turn figures --------------------------------------------------------------------------


def test_tpot_spreads_the_time_after_the_first_token_over_the_other_tokens() -> None:
    """TPOT = (e2e - ttft) / (output_tokens - 1); undefined below two tokens."""
    assert tpot(1.0, 0.1, 10) == pytest.approx(0.1)
    assert tpot(0.5, 0.5, 2) == 0.0
    assert tpot(1.0, 0.1, 1) is None
    assert ok(0, ttft=0.2, e2e=2.2, tokens=21).tpot == pytest.approx(0.1)


# -- goodput ---------------------------------------------------------------------------------


def test_goodput_counts_the_completed_turns_meeting_every_slo() -> None:
    """Over 2 s, of four completed turns two meet ttft<=0.5 and tpot<=0.05: 1 turn/s, 50 %."""
    samples = [
        ok(0, ttft=0.1, e2e=0.1 + 9 * 0.04),  # meets both
        ok(1, ttft=0.6, e2e=0.6 + 9 * 0.01),  # TTFT too slow
        ok(2, ttft=0.2, e2e=0.2 + 9 * 0.06),  # TPOT too slow
        ok(3, ttft=0.5, e2e=0.5, tokens=1),  # no TPOT: meets it
        failed(4, at=0.0),  # failures never count
    ]

    g = goodput(samples, {"ttft": 0.5, "tpot": 0.05}, duration=2.0)

    assert (g.turns, g.turns_per_s, g.share) == (2, 1.0, 0.5)


def test_goodput_without_slo_counts_every_completed_turn() -> None:
    """With no SLO, goodput is the completed-turn rate and its share is 100 %."""
    g = goodput([ok(0), ok(1), failed(2, at=0)], {}, duration=4.0)
    assert (g.turns, g.turns_per_s, g.share) == (2, 0.5, 1.0)


def test_itl_slo_bounds_a_turns_largest_gap() -> None:
    """An ITL SLO is met when the turn's largest chunk gap is within it."""
    g = goodput([ok(0, itl_max=0.02), ok(1, itl_max=0.2)], {"itl": 0.05}, duration=1.0)
    assert g.turns == 1


@pytest.mark.parametrize(
    ("slo", "message"),
    [
        ({"latency": 1.0}, "unknown SLO 'latency'"),
        ({"ttft": 0.0}, "SLO ttft must be a positive number of seconds"),
        ({"tpot": float("nan")}, "SLO tpot must be a positive number of seconds"),
    ],
)
def test_check_slo_refuses_unknown_metrics_and_bad_bounds(
    slo: dict[str, float], message: str
) -> None:
    """An SLO names one of ttft/tpot/itl/e2e and bounds it by a positive number of seconds."""
    with pytest.raises(InvalidInput, match=message):
        check_slo(slo)


# -- failures --------------------------------------------------------------------------------


def test_failures_are_grouped_by_kind_and_message_most_frequent_first() -> None:
    """Failures count per (exception class, message), the most frequent first."""
    samples = [
        failed(0, at=0, kind="A", msg="x"),
        failed(1, at=0, kind="B", msg="y"),
        failed(2, at=0, kind="B", msg="y"),
        failed(3, at=0, kind="B", msg="z"),
        ok(4),
    ]

    rows = [f.to_dict() for f in count_failures(samples)]

    assert rows == [
        {"kind": "B", "message": "y", "count": 2},
        {"kind": "A", "message": "x", "count": 1},
        {"kind": "B", "message": "z", "count": 1},
    ]


# -- time series -----------------------------------------------------------------------------


def test_timeseries_buckets_starts_ends_errors_and_peak_in_flight_per_second() -> None:
    """Each second counts turns started, completed and failed in it, and the most in flight."""
    samples = [
        ok(0, started=0.1, ttft=0.2, e2e=0.5),  # 0.1 .. 0.6
        ok(1, started=0.2, ttft=0.2, e2e=1.5),  # 0.2 .. 1.7
        ok(2, started=0.3, ttft=0.1, e2e=0.2),  # 0.3 .. 0.5
        ok(3, started=1.2, ttft=0.1, e2e=0.3),  # 1.2 .. 1.5
        failed(4, at=2.5),
    ]

    series = timeseries(samples, duration=3.0)

    assert [s.t for s in series] == [0.0, 1.0, 2.0]
    assert [s.started for s in series] == [3, 1, 1]
    assert [s.completed for s in series] == [2, 2, 0]
    assert [s.errors for s in series] == [0, 0, 1]
    assert [s.in_flight for s in series] == [3, 2, 1]


def test_timeseries_spreads_a_turns_tokens_from_its_first_chunk_to_its_end() -> None:
    """A 10-token turn streaming from 0.5 s to 1.5 s puts 5 tokens in each second."""
    series = timeseries([ok(0, started=0.0, ttft=0.5, e2e=1.5, tokens=10)], duration=2.0)

    assert [s.tokens for s in series] == pytest.approx([5.0, 5.0])
    assert [s.tokens_per_s for s in series] == pytest.approx([5.0, 5.0])


def test_timeseries_last_bucket_is_as_wide_as_what_is_left_of_the_run() -> None:
    """A 1.5 s run has a full first second and a half-second last bucket, for honest rates."""
    series = timeseries([ok(0, started=1.0, ttft=0.0, e2e=0.25, tokens=5)], duration=1.5)

    assert [s.width for s in series] == [1.0, 0.5]
    assert series[1].tokens_per_s == pytest.approx(10.0)


def test_timeseries_keeps_a_cancelled_turn_in_flight_to_the_end() -> None:
    """A turn cut short by a stop is in flight until the end of the run."""
    cancelled = TurnSample(index=0, started=0.5, outcome="cancelled", sent=0.6)
    series = timeseries([cancelled], duration=2.5)
    assert [s.in_flight for s in series] == [1, 1, 1]
    assert sum(s.completed + s.errors for s in series) == 0


def test_merge_seconds_sums_counts_and_keeps_the_peak() -> None:
    """Merged buckets add their counts and tokens and keep the highest in-flight."""
    series = [Second(t=float(i), width=1.0, started=1, in_flight=i, tokens=2.0) for i in range(5)]

    merged = merge_seconds(series, rows=2)

    assert [(s.t, s.width, s.started, s.in_flight) for s in merged] == [
        (0.0, 3.0, 3, 2),
        (3.0, 2.0, 2, 4),
    ]
    assert merged[0].tokens_per_s == pytest.approx(2.0)


# -- parameters and display ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://app:s3cret@db.example:5432/load",
            "postgresql://app:***@db.example:5432/load",
        ),
        ("postgresql://app@db/load", "postgresql://app@db/load"),
        ("sqlite:///tmp/x.db", "sqlite:///tmp/x.db"),
    ],
)
def test_database_url_password_is_redacted(url: str, shown: str) -> None:
    """The report shows the database URL without its password."""
    assert redact_url(url) == shown


def _report(**overrides: object) -> LoadReport:
    figures: dict[str, object] = {
        "instances": 3,
        "completed": 2,
        "errors": 1,
        "error_kinds": {"ProviderError": 1},
        "wall_s": 1.0,
        "cpu_s": 0.1,
        "turns_per_s": 2.0,
        "tokens": 20,
        "tokens_per_s": 20.0,
        "cpu_us_per_token": None,
        "ttft_p50": 0.1,
        "ttft_p95": 0.1,
        "ttft_p99": 0.1,
        "total_p50": 1.0,
        "total_p95": 1.0,
        "total_p99": 1.0,
        "attempts_retried": 0,
        "cost": 0.0,
    }
    figures.update(overrides)
    return LoadReport(**figures)  # type: ignore[arg-type]


def test_tables_show_no_none_or_braces_and_put_units_in_headers() -> None:
    """Every cell is formatted: a dash for a missing figure, never ``None`` or ``{}``."""
    samples = (ok(0), ok(1), failed(2, at=0.5))
    report = _report(
        ttft=summarize([0.1, 0.2]),
        failures=count_failures(samples),
        timeseries=timeseries(samples, 1.0),
        turns=samples,
    )

    tables = {t.key: t for t in report.tables()}

    cells = [c for t in tables.values() for row in t.rows for c in row]
    assert not [c for c in cells if c in ("None", "{}", "") or "{" in c]
    assert MISSING in cells  # TPOT, ITL and E2E have no samples here
    latency = tables["latency"]
    assert "ms" in latency.title
    assert latency.rows[0][:4] == ("TTFT", "2", "150.00", "100.00")
    assert tables["failures"].rows == (("ProviderError", "boom", "1"),)

"""Merging the parts of a multi-process load: true percentiles of every turn."""

from __future__ import annotations

import json

from promptactors import LoadPart, merge_reports
from promptactors._load import TurnSample, percentile


def _turn(index: int, ttft: float, e2e: float, sent: float = 0.0) -> TurnSample:
    return TurnSample(
        index=index, started=sent, outcome="ok", sent=sent, ttft=ttft, e2e=e2e, output_tokens=5
    )


def test_percentiles_are_those_of_every_turn_not_an_average_of_parts() -> None:
    """p50/p99 of the merged report are computed over the union of the parts' turns."""
    fast = LoadPart(turns=tuple(_turn(i, 0.01, 0.1) for i in range(90)), gaps=(0.01,) * 90)
    slow = LoadPart(turns=tuple(_turn(i, 1.0, 2.0) for i in range(10)), offset=0.5, first_index=90)

    report = merge_reports([fast, slow], instances=100, wall=3.0)

    ttfts = [0.01] * 90 + [1.0] * 10
    assert report.ttft.p50 == percentile(sorted(ttfts), 50)
    assert report.ttft.p95 == percentile(sorted(ttfts), 95)
    assert report.completed == 100
    assert report.tokens == 500
    assert report.parameters["processes"] == 2
    assert [t.index for t in report.turns] == list(range(100))
    assert report.turns[95].sent == 0.5  # on the load's time line
    assert report.wall_s == 3.0  # from the first part's start to the last part's end
    assert not report.partial


def test_a_part_survives_json_and_a_missing_part_makes_the_report_partial() -> None:
    """Parts travel as JSON; the turns of a process that handed back nothing are cancelled."""
    part = LoadPart(turns=(_turn(0, 0.1, 0.2),), gaps=(0.05,), cpu_s=1.5, info={"pid": 7})
    again = LoadPart.from_json(json.loads(json.dumps(part.to_json())))
    assert again == part

    report = merge_reports([again], instances=3, wall=1.0)

    assert report.partial
    assert (report.completed, report.cancelled) == (1, 2)
    assert report.extra["processes"] == [{"pid": 7}]

"""``promptactors bench store``: its quick path, at a tiny size."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptactors.cli._bench import load_benchmark

KEYS = {
    "group_commit_exec_per_s",
    "naive_exec_per_s",
    "ratio",
    "lost_writes",
    "executions",
    "concurrency",
    "pool_size",
    "database",
}


@pytest.mark.postgres
def test_bench_store_reports_both_paths_without_losing_writes(postgres_url: str) -> None:
    """Both paths run on PostgreSQL and every row they wrote is there, completed."""
    figures = load_benchmark("store").run(
        quick=True, databases=[postgres_url], executions=20, concurrency=10
    )
    assert figures.keys() >= KEYS
    assert figures["lost_writes"] == 0
    assert figures["executions"] == 20
    assert figures["group_commit_exec_per_s"] > 0
    assert figures["naive_exec_per_s"] > 0


@pytest.mark.postgres
def test_bench_store_also_measures_sqlite(postgres_url: str, tmp_path: Path) -> None:
    """A second database (SQLite) gets its own figures, nested under its dialect."""
    figures = load_benchmark("store").run(
        quick=True,
        databases=[postgres_url, f"sqlite:///{tmp_path / 'bench.db'}"],
        executions=20,
        concurrency=10,
    )
    assert figures["dialect"] == "postgresql"
    assert figures["sqlite"]["lost_writes"] == 0
    assert figures["sqlite"].keys() >= KEYS - {"executions", "concurrency", "pool_size"}

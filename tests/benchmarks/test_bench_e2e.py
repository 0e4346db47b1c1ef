"""``promptactors bench e2e``: its quick path, at a tiny size."""

from __future__ import annotations

import pytest

from promptactors.cli._bench import load_benchmark


@pytest.mark.postgres
def test_bench_e2e_measures_both_sides_without_losing_turns(postgres_url: str) -> None:
    """Both sides stream every turn from the server process and track it in PostgreSQL."""
    figures = load_benchmark("e2e").run(quick=True, databases=[postgres_url], turns=10)
    assert figures.keys() >= {
        "ours_turns_per_cpu_s",
        "peer_turns_per_cpu_s",
        "ratio",
        "lost",
        "peer_config",
        "turns",
    }
    assert figures["lost"] == 0
    assert figures["ours_errors"] == figures["peer_errors"] == 0
    assert figures["ours_chars"] == figures["peer_chars"] == 10 * 50 * len("tok ")
    assert "AsyncOpenAI" in figures["peer_config"]

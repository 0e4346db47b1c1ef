"""``promptactors chaos``: real-time runs through the CLI, and seeded virtual-time sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import structlog.testing

from promptactors import simulate_sweep
from promptactors.cli import main

#: Fault kinds under which every invariant holds today (the others are listed in the
#: README's Chaos section with what they break).
HOLDING = (
    "crash_mid_stream,provider_error_before_first_token,provider_reject,"
    "provider_error_mid_stream,provider_truncate,provider_stall,busy_reject,busy_enqueue,"
    "busy_interrupt,update_variables_mid_turn,store_outage,registry_crash,cache_crash,"
    "tracker_crash"
)
KEYS = {
    "faults_injected",
    "faults_by_kind",
    "invariants_violated",
    "invariants",
    "turns_lost",
    "hung_callers",
    "outcomes",
    "seed",
    "reproduce",
}


def _chaos(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object]]:
    status = main(["chaos", *args, "--json"])
    return status, json.loads(capsys.readouterr().out)


def test_a_real_time_chaos_run_reports_every_key_and_no_hung_caller(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """200 instances on an SQLite file: the report has its keys and no caller hangs."""
    status, report = _chaos(
        capsys,
        *("--instances", "200", "--seed", "7", "--faults", HOLDING),
        *("--database", f"sqlite:///{tmp_path}/c.db"),
    )
    assert report.keys() >= KEYS
    assert report["hung_callers"] == 0, report["invariants"]
    assert report["seed"] == 7
    assert report["reproduce"] == f"promptactors chaos --instances 200 --seed 7 --faults {HOLDING}"
    assert status == (1 if report["invariants_violated"] else 0)


def test_a_real_time_run_of_500_instances_holds_every_invariant_under_the_holding_kinds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CI run: 500 instances, the fault kinds that hold, nothing violated."""
    status, report = _chaos(
        capsys,
        *("--instances", "500", "--seed", "7", "--faults", HOLDING),
        *("--database", f"sqlite:///{tmp_path}/c.db"),
    )
    assert report["invariants_violated"] == [], report["invariants"]
    assert report["faults_injected"] > 100
    assert status == 0


def test_a_simulated_sweep_is_reproducible_seed_by_seed() -> None:
    """20 seeds in virtual time; the sweep's rerun of a seed gives the same trace hash."""
    with structlog.testing.capture_logs():
        report = simulate_sweep(range(1, 21), instances=30)
        other = simulate_sweep([4], instances=30, rerun=False)
    assert report.seeds_run == 20
    assert report.reproducible is True
    assert other.hashes[4] != report.hashes[3]


def test_a_seed_run_alone_reproduces_its_hash_from_a_sweep() -> None:
    """Seed 3 alone gives the hash it had as the third seed of a sweep."""
    with structlog.testing.capture_logs():
        report = simulate_sweep(range(1, 4), instances=30, rerun=False)
        again = simulate_sweep([3], instances=30, rerun=False)
    assert again.hashes[3] == report.hashes[3]


def test_the_ci_sweep_of_200_seeds_holds_under_the_holding_kinds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The CI sweep: 200 seeds of 50 instances, no failing seed, reproducible."""
    status, report = _chaos(
        capsys, "--simulate", "--seeds", "1-200", "--instances", "50", "--faults", HOLDING
    )
    assert report["seeds_run"] == 200
    assert report["failing_seeds"] == [], report["violations_by_seed"]
    assert report["reproducible"] is True
    assert status == 0

"""``promptactors chaos``: real-time runs through the CLI, and seeded virtual-time sweeps."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import structlog.testing

from promptactors import simulate_sweep
from promptactors._chaos import FAULT_KINDS
from promptactors.cli import main

#: Fault kinds under which every invariant holds today (the others are listed in the
#: README's Chaos section with what they break).
# Every fault kind holds: the CI runs draw from all of them.
HOLDING = ",".join(FAULT_KINDS)
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
    # every kind is the default, so the reproduce line need not name them
    assert report["reproduce"] == "promptactors chaos --instances 200 --seed 7"
    assert status == (1 if report["invariants_violated"] else 0)


def test_a_real_time_run_of_500_instances_holds_every_invariant_under_every_fault_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CI run: 500 instances, every fault kind, nothing violated."""
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


def test_a_seed_replayed_in_a_new_process_gives_its_hash_from_a_sweep_in_this_one() -> None:
    """The reproduce line of a seed, run as a new process (another PYTHONHASHSEED, no
    module state of this one), gives the trace hash that seed had inside a sweep here."""
    with structlog.testing.capture_logs():
        report = simulate_sweep(range(1, 4), instances=30, rerun=False)
    command = [sys.executable, "-m", "promptactors", "chaos", "--simulate"]
    command += ["--seeds", "3-3", "--instances", "30", "--json"]
    env = {**os.environ, "PYTHONHASHSEED": "random", "NO_COLOR": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    replayed = json.loads(done.stdout)
    assert replayed["trace_hashes"] == {"3": report.hashes[3]}
    assert replayed["reproducible"] is True, replayed["rerun_hashes"]


def test_the_sweep_reruns_its_seed_here_and_in_a_new_process() -> None:
    """``reproducible`` compares the seed's hash with a rerun after the sweep in this
    process and with a replay in a new process."""
    with structlog.testing.capture_logs():
        report = simulate_sweep(range(1, 3), instances=20)
    assert report.rerun_seed == (report.failing_seeds or [1])[0]
    assert report.rerun_error is None
    assert report.rerun_hashes == {
        "this_process": report.hashes[report.rerun_seed],
        "new_process": report.hashes[report.rerun_seed],
    }
    assert report.reproducible is True


def test_a_trace_that_depends_on_the_runs_before_it_is_reported_not_reproducible(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check is not vacuous: process-wide state leaking into the trace (a counter
    here) makes the sweep's rerun differ, and the sweep is not ok."""
    from promptactors._chaos import _driver

    runs = itertools.count()
    add = _driver.Trace.add

    def leaky_add(self: _driver.Trace, *event: object) -> None:
        add(self, *event, next(runs))

    monkeypatch.setattr(_driver.Trace, "add", leaky_add)
    with structlog.testing.capture_logs():
        report = simulate_sweep([5], instances=10, fault_rate=0.0, faults="provider_reject")
    assert report.reproducible is False
    assert report.rerun_hashes["this_process"] != report.hashes[5]
    assert not report.ok


def test_the_ci_sweep_of_200_seeds_holds_under_every_fault_kind(
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

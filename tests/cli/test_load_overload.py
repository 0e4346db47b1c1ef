"""``promptactors load`` far above capacity: every turn completes through admission
control, and Ctrl-C mid-run closes every run and task row before the process exits."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli import SUBPROCESS_TIMEOUT, Cli

pytestmark = pytest.mark.slow


def _count(db_url: str, sql: str) -> int:
    try:
        with sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=1) as db:
            return int(db.execute(sql).fetchone()[0])
    except sqlite3.Error:  # not created yet, or busy: ask again
        return 0


def _running(db_url: str) -> tuple[int, int]:
    """Runs and tasks whose row says ``running``."""
    runs = _count(db_url, "SELECT count(*) FROM ai_runs WHERE status = 'running'")
    tasks = _count(db_url, "SELECT count(*) FROM ai_tasks WHERE status = 'running'")
    return runs, tasks


def test_a_load_far_above_capacity_completes_every_turn(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """5,000 instances at once through 100 slots: all completed, no error, none running."""
    monkeypatch.setenv("PROMPTACTORS_MAX_ACTIVE_TURNS", "100")
    result = cli("load", "-n", "5000", "--json", *cli.db, "--latency", "0.005", "--tokens", "5")

    assert result.code == 0, result.err
    report = result.json
    assert (report["completed"], report["errors"]) == (5000, 0), report["error_kinds"]
    assert _running(cli.db_url) == (0, 0)
    assert _count(cli.db_url, "SELECT count(*) FROM ai_tasks WHERE status = 'completed'") == 5000


def test_ctrl_c_under_overload_leaves_no_running_row(cli: Cli) -> None:
    """SIGINT with turns streaming and thousands queued: the partial report, exit 130, and
    right after the exit no run or task row is ``running``."""
    script = shutil.which("promptactors", path=str(Path(sys.executable).parent))
    assert script is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTACTORS_")}
    env["PROMPTACTORS_MAX_ACTIVE_TURNS"] = "50"
    args = ["load", "-n", "3000", "--json", *cli.db, "--latency", "0.02", "--tokens", "20"]
    proc = subprocess.Popen(
        [script, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT
        done = "SELECT count(*) FROM ai_tasks WHERE status = 'completed'"
        while not (_count(cli.db_url, done) >= 20 and _running(cli.db_url)[1]):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the load did not get going"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert proc.returncode == 130, err
    assert "Traceback" not in out + err
    report = json.loads(out)
    assert report["partial"] is True
    assert 0 < report["completed"] < 3000
    assert report["errors"] == 0, report["error_kinds"]
    assert report["cancelled"] == 3000 - report["completed"]
    assert _running(cli.db_url) == (0, 0)
    interrupted = "SELECT count(*) FROM ai_tasks WHERE status = 'interrupted'"
    assert _count(cli.db_url, interrupted) > 0  # turns were cut mid-stream, and closed

"""``load --processes N``: one load over N runtime processes sharing PostgreSQL, merged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from test_cli import Cli, assert_explained

from promptactors.store import CreateRun

TIMEOUT = 90


def test_more_than_one_process_on_sqlite_is_refused_in_one_line(cli: Cli) -> None:
    """SQLite has one writing process: N > 1 is refused with a one-line message."""
    result = cli("load", "-n", "4", "--processes", "2", *cli.fast())

    assert_explained(result, "needs PostgreSQL")
    assert len(result.err.strip().splitlines()) == 1


def test_processes_must_be_a_positive_number_or_auto(cli: Cli) -> None:
    """``--processes 0`` names the option and what it takes."""
    assert_explained(cli("load", "-n", "4", "--processes", "0", *cli.fast()), "'auto'")


def test_two_processes_share_the_load_and_merge_their_reports(cli: Cli, postgres_url: str) -> None:
    """Each process runs its share as its own executor; the report counts every turn."""
    db = ("-d", postgres_url, "--latency", "0.001", "--tokens", "4")
    result = cli("load", "-n", "40", "--processes", "2", "--json", *db)

    assert result.code == 0, result
    report = result.json
    assert (report["instances"], report["completed"], report["errors"]) == (40, 40, 0)
    assert report["tokens"] == 160
    assert report["ttft"]["n"] == 40
    assert report["parameters"]["processes"] == 2
    parts = report["extra"]["processes"]
    assert sorted(p["completed"] for p in parts) == [20, 20]
    assert len({p["pid"] for p in parts}) == 2
    assert len({p["executor_id"] for p in parts}) == 2
    assert os.getpid() not in {p["pid"] for p in parts}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _children(pid: int) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-f", "promptactors load-worker"], capture_output=True, text=True, check=False
    )
    return [int(p) for p in found.stdout.split() if int(p) != pid]


def test_ctrl_c_stops_every_child_and_prints_the_merged_partial_report(
    postgres_url: str, tmp_path: Path
) -> None:
    """SIGINT to the parent stops both children; the merged report is partial (exit 130)."""
    args = [sys.executable, "-m", "promptactors", "load", "-n", "2000", "--processes", "2"]
    args += ["--json", "-d", postgres_url, "--latency", "0.2", "--tokens", "100"]
    before = set(_children(0))
    parent = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, start_new_session=True
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        children: list[int] = []
        while len(children) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            children = [p for p in _children(parent.pid) if p not in before]
        assert len(children) == 2
        time.sleep(3)  # the runtimes are up and streaming
        parent.send_signal(signal.SIGINT)
        out, err = parent.communicate(timeout=TIMEOUT)
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
            parent.communicate()
    assert parent.returncode == 130, err.decode()[-2000:]
    report = json.loads(out)
    assert report["partial"] is True
    assert report["instances"] == 2000
    assert report["completed"] + report["errors"] + report["cancelled"] == 2000
    assert len(report["extra"]["processes"]) == 2
    assert not [pid for pid in children if _alive(pid)]


def test_db_status_lists_executors_alive_or_expired_with_their_leases(cli: Cli) -> None:
    """``db status`` shows each executor, whether its heartbeat is within its lease, and
    the leases it holds; ``--json`` says the same as data."""
    assert cli("db", "init", *cli.db).code == 0

    async def seed(store: Any) -> None:
        await store.register_executor("gone", lease_seconds=0.01, pid=1, group="g")
        await store.register_executor("live", lease_seconds=60, pid=2, group="g")
        await store.apply([CreateRun("r", executor_id="gone", owner_id="gone", lease_seconds=0.01)])

    cli.read(seed)
    time.sleep(0.05)

    table = cli("db", "status", *cli.db)
    data = cli("db", "status", "--json", *cli.db).json

    assert table.code == 0, table
    assert "executors 2 (1 alive, 1 expired); leases 1 held, 1 expired" in table.text
    assert {e["id"]: e["alive"] for e in data["executors"]} == {"gone": False, "live": True}
    assert data["leases"] == {"held": 1, "expired": 1}
    assert data["runs"] == {"running": 1}

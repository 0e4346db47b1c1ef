"""``promptactors load``: the report's figures and files, failures, progress and shutdown.

Runs through ``main(argv)`` with the fixtures of ``test_cli.py`` (own directory, own SQLite
file, simulated provider with no latency).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_cli import (
    ADA,
    SUBPROCESS_TIMEOUT,
    Cli,
    assert_explained,
)

# -- load ------------------------------------------------------------------------------------


def test_load_json_reports_every_instance_completed_with_percentiles(cli: Cli) -> None:
    """``load -n 20 --json`` completes 20 turns with no errors and reports latency percentiles."""
    result = cli("load", "-n", "20", "--json", *cli.fast(tokens=3))

    assert result.code == 0, result
    report = result.json
    assert (report["instances"], report["completed"], report["errors"]) == (20, 20, 0)
    assert report["error_kinds"] == {}
    assert report["tokens"] == 60
    for name in ("ttft", "total"):
        p50, p95, p99 = (report[f"{name}_p{q}"] for q in (50, 95, 99))
        assert p50 is not None
        assert 0 <= p50 <= p95 <= p99
    assert len(cli.read(lambda store: store.list_runs(prompt_id="demo"))) == 20


def test_load_shuts_the_runtime_down_gracefully(cli: Cli) -> None:
    """After the load, the runtime stops its actors gracefully: every queued message is
    handled (no dead letters), nothing is killed, and no run is left running."""
    result = cli("load", "-n", "300", "--json", *cli.fast(tokens=2))

    assert result.code == 0, result
    assert "dead_letters" not in result.err
    assert "child_killed" not in result.err
    runs = cli.read(lambda store: store.list_runs(prompt_id="demo", limit=1000))
    assert len(runs) == 300
    assert {run.status for run in runs} == {"completed"}


def test_load_table_shows_failures_by_kind_and_message_and_exits_1(cli: Cli, greet: str) -> None:
    """A load whose prompt lacks a variable reports every turn failed in a failures table
    (kind, message, count), with exit 1."""
    result = cli("load", "-n", "3", "--prompt", greet, *cli.fast(tokens=3))

    assert result.code == 1, result
    assert "Traceback" not in result.out + result.err
    assert "Failures" in result.out
    row = next(line for line in result.out.splitlines() if "MissingVariables" in line)
    assert "customer_name" in row
    assert row.rstrip(" │").endswith("3")
    assert "{" not in result.out
    assert "None" not in result.out


def test_load_json_with_errors_reports_them_by_kind_and_exits_1(cli: Cli, greet: str) -> None:
    """``load --json`` reports failed turns by kind and, like the table, exits 1."""
    result = cli("load", "-n", "3", "--prompt", greet, "--json", *cli.fast(tokens=3))

    report = result.json
    assert (report["completed"], report["errors"]) == (0, 3)
    assert report["error_kinds"] == {"MissingVariables": 3}
    assert result.code == 1


def test_load_runs_a_stored_prompt_by_id_with_variables(cli: Cli, greet: str) -> None:
    """``load --prompt ID --var name=value`` runs the stored prompt on every instance."""
    assert cli("db", "add-prompt", greet, *cli.db).code == 0

    result = cli("load", "-n", "5", "--prompt", "greet", *ADA, "--json", *cli.fast(tokens=3))

    assert result.code == 0, result
    assert (result.json["completed"], result.json["errors"]) == (5, 0)
    assert len(cli.read(lambda store: store.list_runs(prompt_id="greet"))) == 5


@pytest.mark.parametrize(
    ("option", "message"),
    [("-n", "instances must be at least 1, got 0"), ("--rate", "rate must be positive, got 0")],
)
def test_load_refuses_a_non_positive_count_or_rate(cli: Cli, option: str, message: str) -> None:
    """``load`` with zero instances or a zero rate is refused with exit 1."""
    result = cli("load", option, "0", "--json", *cli.fast())

    assert_explained(result, message)


def _ordered(figures: dict[str, Any]) -> list[float]:
    return [figures[q] for q in ("p50", "p90", "p95", "p99", "max")]


def test_load_writes_json_csv_and_a_self_contained_html_report(cli: Cli) -> None:
    """``load -n 200 --json --html --csv`` reports 200 turns with ordered TTFT/TPOT/ITL/E2E
    percentiles, goodput, a time series and its parameters; the CSV has a row per turn and
    the HTML holds inline SVG plots and fetches nothing."""
    pytest.importorskip("matplotlib", reason="--html needs the report extra")
    result = cli(
        "load",
        *("-n", "200", "--json", "--html", "report.html", "--csv", "turns.csv"),
        *("--slo", "ttft=30,tpot=30", *cli.db, "--latency", "0.002", "--tokens", "5"),
    )

    assert result.code == 0, result
    report = result.json
    assert (report["completed"], report["errors"], report["partial"]) == (200, 0, False)
    for name in ("ttft", "tpot", "itl", "e2e"):
        figures = _ordered(report[name])
        assert all(isinstance(v, float) for v in figures), (name, figures)
        assert 0 <= figures[0] <= figures[1] <= figures[2] <= figures[3] <= figures[4], name
    assert report["ttft"]["p50"] <= report["e2e"]["p50"]
    assert report["goodput"] == {
        "slo": {"ttft": 30.0, "tpot": 30.0},
        "turns": 200,
        "turns_per_s": pytest.approx(report["turns_per_s"], rel=0.05),
        "share": 1.0,
    }
    assert report["failures"] == []
    series = report["timeseries"]
    assert sum(s["started"] for s in series) == sum(s["completed"] for s in series) == 200
    assert set(series[0]) == {"t", "started", "in_flight", "completed", "errors", "tokens_per_s"}
    params = report["parameters"]
    assert (params["instances"], params["processes"], params["rate"]) == (200, 1, None)
    assert (params["provider"], params["model"]) == ("simulated", "simulated")
    assert params["database"] == cli.db_url

    with Path("turns.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 200
    assert {row["outcome"] for row in rows} == {"ok"}
    assert all(float(row["ttft_s"]) <= float(row["e2e_s"]) for row in rows)

    page = Path("report.html").read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert "<script" not in page.lower()
    assert page.count("<svg") >= 2
    assert "<path" in page


def test_load_slo_that_is_not_name_equals_seconds_is_refused(cli: Cli) -> None:
    """``--slo`` must read name=seconds, for a known figure."""
    assert_explained(
        cli("load", "-n", "1", "--slo", "ttft", *cli.fast()),
        "--slo 'ttft': write it as name=seconds[,name=seconds]",
    )
    assert_explained(
        cli("load", "-n", "1", "--slo", "speed=1", *cli.fast()),
        "unknown SLO 'speed': choose among ttft, tpot, itl, e2e",
    )


def test_load_html_without_matplotlib_says_how_to_install_it(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without matplotlib, ``--html`` fails at once, in one line naming the extra."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)

    result = cli("load", "-n", "1", "--html", "report.html", *cli.fast())

    assert_explained(result, "pip install 'prompt-actors[report]'")
    assert len(result.err.strip().splitlines()) == 1
    assert not Path("report.html").exists()


def test_load_prints_plain_progress_lines_when_stderr_is_not_a_terminal(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Off a terminal the live view is a line every few seconds on stderr (stdout stays
    the report)."""
    monkeypatch.setattr("promptactors.cli._load_view.PLAIN_EVERY", 0.05)

    result = cli("load", "-n", "60", "--rate", "200", "--json", *cli.fast(tokens=3))

    assert result.code == 0, result
    lines = [line for line in result.err.splitlines() if line.startswith("load ")]
    assert lines, result.err
    for part in ("started", "in flight", "done", "errors", "tokens/s", "ETA"):
        assert part in lines[-1]
    assert result.json["completed"] == 60


CHROMIUM_TIMEOUT = 90


def _screenshot(page: Path, png: Path, profile: Path) -> None:
    """Render ``page`` in headless Chromium to ``png``, or skip/fail saying why not."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        reason = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("PROMPTACTORS_REQUIRE_CHROMIUM") == "1":
            pytest.fail(reason + " and PROMPTACTORS_REQUIRE_CHROMIUM=1")
        pytest.skip(reason + "; set PROMPTACTORS_REQUIRE_CHROMIUM=1 to fail instead")
    args = [chromium, "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={profile}"]
    args += [f"--screenshot={png}", "--window-size=1200,2000", page.resolve().as_uri()]
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        _, err = proc.communicate(timeout=CHROMIUM_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: chromium and its helpers
        proc.communicate()
        pytest.fail(f"chromium took more than {CHROMIUM_TIMEOUT} s to render {page}")
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]


def test_load_html_report_draws_its_plots_in_headless_chromium(cli: Cli, tmp_path: Path) -> None:
    """Rendered offline by Chromium, the HTML report shows coloured plots, not a blank page."""
    pytest.importorskip("matplotlib", reason="--html needs the report extra")
    image = pytest.importorskip("PIL.Image", reason="Pillow (a matplotlib dependency) decodes")
    numpy = pytest.importorskip("numpy", reason="a matplotlib dependency")
    result = cli("load", "-n", "200", "--html", "report.html", *cli.fast(tokens=5))
    assert result.code == 0, result

    _screenshot(Path("report.html"), tmp_path / "out.png", tmp_path / "chromium-profile")

    with image.open(tmp_path / "out.png") as shot:
        assert shot.size == (1200, 2000)
        pixels = numpy.asarray(shot.convert("RGB"), dtype=numpy.int16).reshape(-1, 3)
    # Tables and text are grey on white; only the plots are in colour.
    coloured = int((pixels.max(axis=1) - pixels.min(axis=1) > 60).sum())
    assert coloured > 20_000, coloured
    assert len(numpy.unique(pixels, axis=0)) > 100


def _tracked_runs(db_url: str) -> int:
    try:
        with sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=1) as db:
            return int(db.execute("SELECT count(*) FROM ai_runs").fetchone()[0])
    except sqlite3.Error:  # not created yet, or busy: ask again
        return 0


def test_ctrl_c_stops_the_load_and_prints_a_partial_report(cli: Cli) -> None:
    """SIGINT during ``load`` stops it cleanly: the partial report, marked so, exit 130."""
    script = shutil.which("promptactors", path=str(Path(sys.executable).parent))
    assert script is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTACTORS_")}
    args = ["load", "-n", "100000", "--rate", "200", "--json", "--csv", "turns.csv"]
    proc = subprocess.Popen(
        [script, *args, *cli.db, "--latency", "0.01", "--tokens", "5"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT
        while _tracked_runs(cli.db_url) < 20 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert proc.returncode == 130, err
    assert "Traceback" not in out + err
    assert "stopping the load" in err
    report = json.loads(out)
    assert report["partial"] is True
    assert 0 < report["completed"] < 100000
    assert report["errors"] == 0
    with Path("turns.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == report["completed"] + report["cancelled"]

"""``load --processes N``: one load spread over N runtime processes sharing one database.

The parent starts each child as ``python -m promptactors load-worker SPEC`` (a hidden
command) in its own session, so a terminal's Ctrl-C reaches the parent only: the parent
forwards it to each child by PID, each stops its load and hands back its part, and the
parent merges the parts into one report (per-turn samples merged: the percentiles are
those of the whole load). Children are bounded in time: past ``timeout`` they are asked
to stop, and killed by PID ``STOP_GRACE`` seconds later; none outlives the parent.

Each child is an executor of one group (``RuntimeSettings.group``) with its own executor
id, holding its runs under leases. SQLite allows one writing process: N > 1 needs
PostgreSQL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import typer

from .. import (
    InvalidInput,
    LoadMonitor,
    LoadPart,
    RuntimeSettings,
    load_prompt_file,
    merge_reports,
    open_runtime,
    run_load,
)
from ..store import open_store
from ._common import run_async
from ._output import redact_url

if TYPE_CHECKING:
    from anyio.abc import Process

    from .. import LoadReport, PromptDefinition

__all__ = ["WORKER", "load_worker", "process_count", "run_in_processes"]

#: The hidden command a child runs.
WORKER = "load-worker"
#: Seconds a child has to hand back its part once asked to stop, before it is killed.
STOP_GRACE = 10.0
#: Seconds between two progress lines of a child.
PROGRESS_EVERY = 0.25


def process_count(value: str) -> int:
    """``--processes``: a positive number, or ``auto`` for the number of cores."""
    if value.strip().lower() == "auto":
        return os.cpu_count() or 1
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise InvalidInput(f"--processes {value!r}: give a positive number or 'auto'")
    return count


def resolve_prompt(prompt: str | None) -> tuple[PromptDefinition | None, str | None]:
    """A prompt file (``.yaml``/``.yml``/``.json``) or a stored prompt id."""
    if prompt is None:
        return None, None
    if Path(prompt).suffix in (".yaml", ".yml", ".json"):
        return load_prompt_file(prompt), None
    return None, prompt


def _shares(total: int, n: int) -> list[tuple[int, int]]:
    """(first index, count) of each of ``n`` nearly equal shares of ``total``."""
    base, extra = divmod(total, n)
    shares, first = [], 0
    for i in range(n):
        count = base + (i < extra)
        shares.append((first, count))
        first += count
    return shares


async def run_in_processes(
    settings: RuntimeSettings,
    *,
    processes: int,
    instances: int,
    rate: float | None,
    prompt: str | None,
    variables: dict[str, str],
    track: bool,
    slo: dict[str, float],
    monitor: LoadMonitor,
    timeout: float | None = None,
) -> LoadReport:
    """Run one load over ``processes`` child processes and merge their reports.

    Raises ``InvalidInput`` for SQLite with more than one process (one line: SQLite
    allows a single writing process), and the store's errors if the database cannot be
    migrated. A child that dies hands back nothing: its turns count as cancelled and the
    report is partial.
    """
    if processes > 1 and settings.database_url.startswith("sqlite"):
        raise InvalidInput(
            "load --processes needs PostgreSQL: SQLite allows one writing process "
            "(use --database postgresql://... or --processes 1)"
        )
    processes = min(processes, instances)
    async with await open_store(settings.database_url, migrate=True):
        pass  # migrate once, here, rather than race N children to it
    group = settings.group or f"load-{uuid.uuid4().hex[:8]}"
    folder = Path(tempfile.mkdtemp(prefix="promptactors-load-"))
    children: list[_Child] = []
    epoch = time.time()
    started_at = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
    began = time.perf_counter()
    monitor.instances = instances
    monitor.begin()
    try:
        for i, (first, count) in enumerate(_shares(instances, processes)):
            spec = {
                "settings": {
                    **settings.model_dump(mode="json"),
                    "executor_id": f"{group}-{i}",
                    "group": group,
                },
                "instances": count,
                "first_index": first,
                "rate": None if rate is None else rate * count / instances,
                "prompt": prompt,
                "variables": variables,
                "track": track,
                "slo": slo,
                "epoch": epoch,
                "out": str(folder / f"part-{i}.json"),
            }
            children.append(await _Child.start(i, spec, folder))
        await _supervise(children, monitor, timeout)
        wall = time.perf_counter() - began
        parts = [part for child in children if (part := child.part()) is not None]
        for child in children:
            if child.part() is None:
                _warn(f"load process {child.index} (pid {child.pid}) handed back nothing")
                _warn(child.last_error())
    finally:
        with anyio.CancelScope(shield=True):
            for child in children:
                await child.kill()
        shutil.rmtree(folder, ignore_errors=True)
    definition, prompt_id = resolve_prompt(prompt)
    return merge_reports(
        parts,
        instances=instances,
        # Timed by the parts (start-up excluded) unless a process handed back nothing.
        wall=None if len(parts) == len(children) else wall,
        slo=slo,
        partial=monitor.stopped,
        parameters={
            "prompt": prompt_id or (definition.id if definition else "demo (built in)"),
            "provider": settings.provider,
            "model": settings.model or "default",
            "instances": instances,
            "rate": rate,
            "database": redact_url(settings.database_url),
            "track": track,
            "slo": dict(slo),
            "group": group,
            "started_at": started_at,
        },
    )


def _warn(text: str) -> None:
    if text:
        print(text, file=sys.stderr)


async def _supervise(children: list[_Child], monitor: LoadMonitor, timeout: float | None) -> None:
    """Wait for every child, copying their progress to ``monitor``; forward a stop."""
    deadline = None if timeout is None else anyio.current_time() + timeout
    async with anyio.create_task_group() as tg:
        for child in children:
            tg.start_soon(child.follow)

        async def watch() -> None:
            stopping_since: float | None = None
            while not all(child.exited for child in children):
                await anyio.sleep(0.1)
                _copy_progress(children, monitor)
                now = anyio.current_time()
                if stopping_since is None and (
                    monitor.stopped or (deadline is not None and now >= deadline)
                ):
                    stopping_since = now
                    for child in children:
                        child.signal(signal.SIGINT)
                elif stopping_since is not None and now - stopping_since > STOP_GRACE:
                    for child in children:
                        await child.kill()
            _copy_progress(children, monitor)

        tg.start_soon(watch)


def _copy_progress(children: list[_Child], monitor: LoadMonitor) -> None:
    monitor.started = sum(c.progress[0] for c in children)
    monitor.completed = sum(c.progress[1] for c in children)
    monitor.errors = sum(c.progress[2] for c in children)
    monitor.output_tokens = sum(c.progress[3] for c in children)


class _Child:
    """One child process: its PID, its progress so far, and the part it handed back."""

    def __init__(self, index: int, process: Process, out: Path, errors: Path) -> None:
        self.index = index
        self.process = process
        self.pid = process.pid
        self.out = out
        self.errors = errors
        self.progress = (0, 0, 0, 0)
        self.exited = False

    @classmethod
    async def start(cls, index: int, spec: dict[str, Any], folder: Path) -> _Child:
        path = folder / f"spec-{index}.json"
        # The spec may hold endpoint keys: readable by this user only.
        path.touch(mode=0o600)
        path.write_text(json.dumps(spec), encoding="utf-8")
        errors = folder / f"stderr-{index}.txt"
        with errors.open("wb") as err:
            process = await anyio.open_process(
                [sys.executable, "-m", "promptactors", WORKER, str(path)],
                stdin=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        return cls(index, process, Path(spec["out"]), errors)

    async def follow(self) -> None:
        """Read progress lines until the child closes its output, then reap it."""
        buffer = b""
        stream = self.process.stdout
        if stream is not None:
            with suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                async for data in stream:
                    buffer += data
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines[-1:]:
                        with suppress(ValueError):
                            started, done, errors, tokens = map(int, line.split())
                            self.progress = (started, done, errors, tokens)
        await self.process.wait()
        self.exited = True

    def signal(self, signum: int) -> None:
        if self.process.returncode is None:
            with suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    async def kill(self) -> None:
        """Kill the child by PID if it still runs, and reap it."""
        if self.process.returncode is None:
            self.signal(signal.SIGKILL)
            with anyio.move_on_after(5):
                await self.process.wait()
        self.exited = True

    def part(self) -> LoadPart | None:
        try:
            data = json.loads(self.out.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return LoadPart.from_json(data)

    def last_error(self) -> str:
        try:
            lines = self.errors.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""


# -- the child's side ----------------------------------------------------------------------


def load_worker(
    spec: Annotated[Path, typer.Argument(help="The JSON spec the parent wrote.")],
) -> None:
    """Run one process's share of a multi-process load (started by `load --processes`)."""
    data = json.loads(spec.read_text(encoding="utf-8"))
    settings = RuntimeSettings(**data["settings"])
    definition, prompt_id = resolve_prompt(data["prompt"])

    async def main() -> None:
        monitor = LoadMonitor()
        async with anyio.create_task_group() as tg:
            tg.start_soon(_stop_on_signals, monitor)
            tg.start_soon(_print_progress, monitor)
            offset = time.time() - data["epoch"]
            async with open_runtime(settings) as rt:
                report = await run_load(
                    rt,
                    instances=data["instances"],
                    rate=data["rate"],
                    prompt_id=prompt_id,
                    prompt=definition,
                    variables=data["variables"],
                    track=data["track"],
                    slo=data["slo"],
                    monitor=monitor,
                )
            _progress_line(monitor)
            tg.cancel_scope.cancel()
        part = LoadPart.from_report(
            report,
            offset=offset,
            first_index=data["first_index"],
            pid=os.getpid(),
            executor_id=settings.executor_id,
            tokens_per_s=report.tokens_per_s,
        )
        out = Path(data["out"])
        partial = out.with_suffix(".tmp")
        partial.write_text(json.dumps(part.to_json()), encoding="utf-8")
        partial.replace(out)  # whole or absent: the parent never reads half a part

    run_async(main)


async def _stop_on_signals(monitor: LoadMonitor) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            monitor.stop()


def _progress_line(monitor: LoadMonitor) -> None:
    line = f"{monitor.started} {monitor.completed} {monitor.errors} {monitor.output_tokens}"
    print(line, flush=True)


async def _print_progress(monitor: LoadMonitor) -> None:
    while True:
        _progress_line(monitor)
        await anyio.sleep(PROGRESS_EVERY)

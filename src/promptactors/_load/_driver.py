"""The load driver: many instances, one streamed turn each, timed chunk by chunk."""

from __future__ import annotations

import time
from array import array
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio

from .._exceptions import InvalidInput
from ..kernel import start_soon
from ..messages import PromptDefinition, PromptMessage, VariableDefault
from ._report import LoadReport
from ._stats import (
    TurnSample,
    check_slo,
    count_failures,
    goodput,
    redact_url,
    summarize,
    timeseries,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from ..runtime import InstanceHandle, Runtime

__all__ = ["DEMO_PROMPT", "LoadMonitor", "build_report", "run_load"]

#: Instances a stopped load stops at once, besides those streaming (at most the runtime's
#: ``max_active_turns``): enough to stop 100,000 in seconds, few enough for each stop to
#: finish well within the instance's shutdown timeout.
_STOP_CONCURRENCY = 500

DEMO_PROMPT = PromptDefinition(
    id="demo",
    name="Demo",
    messages=(
        PromptMessage(
            role="system", content="You are a helpful assistant. Today is {{current_date}}."
        ),
        PromptMessage(role="user", content="Write a short note about {{topic}}."),
    ),
    variables=(VariableDefault(name="topic", default="actor runtimes"),),
    settings={"model": "simulated"},
)


class LoadMonitor:
    """Live counters of a running load, for a progress view, and a way to stop it early.

    Pass one to :func:`run_load` and read it from another task of the same event loop
    (the counters change between checkpoints only). :meth:`stop` ends the load at once:
    turns in flight are cancelled and ``run_load`` returns a report marked ``partial``.
    """

    __slots__ = (
        "_began",
        "_scope",
        "completed",
        "errors",
        "instances",
        "output_tokens",
        "started",
        "stopped",
    )

    def __init__(self) -> None:
        self.instances = 0
        self.started = 0
        self.completed = 0
        self.errors = 0
        self.output_tokens = 0
        self.stopped = False
        self._began: float | None = None
        self._scope: anyio.CancelScope | None = None

    @property
    def in_flight(self) -> int:
        """Turns started and not yet finished."""
        return self.started - self.completed - self.errors

    @property
    def finished(self) -> int:
        return self.completed + self.errors

    @property
    def elapsed(self) -> float:
        """Seconds since the load began (0 before)."""
        return 0.0 if self._began is None else time.perf_counter() - self._began

    def begin(self) -> None:
        """Start the clock of :attr:`elapsed` (for a load driven in other processes,
        whose counters are copied here; ``run_load`` starts it itself)."""
        self._began = time.perf_counter()

    def stop(self) -> None:
        """Stop the load: no more instances start and the turns in flight are cancelled."""
        self.stopped = True
        if self._scope is not None:
            self._scope.cancel()


async def run_load(
    runtime: Runtime,
    *,
    instances: int,
    prompt_id: str | None = None,
    prompt: PromptDefinition | None = None,
    rate: float | None = None,
    variables: dict[str, str] | None = None,
    stop_after: bool = True,
    track: bool = True,
    progress: Callable[[int, int, int], None] | None = None,
    slo: Mapping[str, float] | None = None,
    monitor: LoadMonitor | None = None,
) -> LoadReport:
    """Start ``instances`` instances (at ``rate`` per second, or all at once), stream one
    turn on each, and report latencies (TTFT, TPOT, ITL, end to end), throughput, goodput
    against ``slo`` (seconds per metric: ``ttft``, ``tpot``, ``itl``, ``e2e``), failures
    and a per-second time series.

    The prompt is ``prompt_id`` from the store (through the single-flight cache) or the
    inline ``prompt`` (default: a demo prompt). ``progress(started, done, failed)`` is
    called as turns finish; ``monitor`` is updated as they start, stream and finish, and
    its ``stop()`` ends the load early with a partial report. Stopped or cancelled, it
    first stops the instances whose turns are in flight (their turns cancelled, partial
    output kept, no run or task row left ``running``). Errors are counted by kind,
    never raised (a load run reports). Raises ``InvalidInput`` for a non-positive count or
    rate, or an unknown SLO.
    """
    if instances < 1:
        raise InvalidInput(f"instances must be at least 1, got {instances}")
    if rate is not None and rate <= 0:
        raise InvalidInput(f"rate must be positive, got {rate}")
    slos = check_slo(slo)
    if prompt_id is None and prompt is None:
        prompt = DEMO_PROMPT
    live = monitor if monitor is not None else LoadMonitor()
    live.instances = instances
    samples: list[TurnSample] = []
    gaps = array("d")  # every inter-chunk gap of every completed turn, for the ITL figures
    retried = 0
    cost = 0.0
    prompt_settings: dict[str, Any] = dict(prompt.settings) if prompt is not None else {}
    settings_read = prompt is not None
    clock = time.perf_counter
    began = clock()
    stopping = anyio.CapacityLimiter(_STOP_CONCURRENCY)

    async def one(index: int) -> None:
        nonlocal retried, cost, settings_read
        started = clock() - began
        live.started += 1
        sent: float | None = None
        first: float | None = None
        last: float | None = None
        attempt = 0
        n_gaps, gap_sum, gap_max = 0, 0.0, 0.0
        my_gaps = array("d")
        sample: TurnSample | None = None
        cancelled = False
        try:
            handle: InstanceHandle = await runtime.start_instance(
                prompt_id,
                prompt=None if prompt_id is not None else prompt,
                variables=variables,
                execution_config={"track_in_runs": track, "allow_chat": True},
            )
            try:
                if not settings_read:
                    settings_read = True
                    prompt_settings.update(await handle.model_config())
                sent = clock()
                async with handle.stream() as turn:
                    async for chunk in turn:
                        now = clock()
                        if not chunk.text:
                            continue
                        if first is None:
                            first = now
                        elif chunk.attempt == attempt and last is not None:
                            gap = now - last
                            my_gaps.append(gap)
                            n_gaps, gap_sum, gap_max = n_gaps + 1, gap_sum + gap, max(gap_max, gap)
                        attempt, last = chunk.attempt, now
                    result = await turn.result()
                ended = clock()
            except anyio.get_cancelled_exc_class():
                cancelled = True
                raise
            finally:
                if stop_after or cancelled:
                    # Shielded: a stopped load still ends this instance's turn (cancelled,
                    # its partial output kept and its rows closed) before it returns.
                    with anyio.CancelScope(shield=True):
                        if cancelled and first is None:
                            # Not streaming yet (most of them queued for admission): stop
                            # in waves; all at once, stops would outlast their shutdown
                            # timeout and be killed, leaving rows running.
                            async with stopping:
                                await handle.stop()
                        else:
                            await handle.stop()
        except Exception as exc:  # a load run counts failures by kind instead of raising
            live.errors += 1
            at = clock()
            sample = TurnSample(
                index=index,
                started=started,
                outcome="error",
                sent=None if sent is None else sent - began,
                e2e=None if sent is None else at - sent,
                error_kind=type(exc).__name__,
                error_message=" ".join(str(exc).split())[:300],
            )
        else:
            live.completed += 1
            live.output_tokens += result.output_tokens
            retried += result.attempts > 1
            cost += result.cost or 0.0
            gaps.extend(my_gaps)
            e2e = ended - sent
            sample = TurnSample(
                index=index,
                started=started,
                outcome="ok",
                sent=sent - began,
                # A turn with no text streamed has its first token at its end.
                ttft=e2e if first is None else first - sent,
                e2e=e2e,
                output_tokens=result.output_tokens,
                chunks=n_gaps + (first is not None),
                itl_mean=gap_sum / n_gaps if n_gaps else None,
                itl_max=gap_max if n_gaps else None,
                attempts=result.attempts,
                run_id=result.run_id,
            )
        finally:
            if sample is None:  # cancelled: the load was stopped
                sample = TurnSample(
                    index=index,
                    started=started,
                    outcome="cancelled",
                    sent=None if sent is None else sent - began,
                )
            samples.append(sample)
        if progress is not None:
            progress(live.started, live.completed, live.errors)

    cpu_start = time.process_time()
    started_at = datetime.now(UTC)
    live._began = began
    with anyio.CancelScope() as scope:
        live._scope = scope
        if live.stopped:
            scope.cancel()
        async with anyio.create_task_group() as tg:
            interval = 1.0 / rate if rate else 0.0
            next_at = anyio.current_time()
            for index in range(instances):
                start_soon(tg, one, index)  # no per-task handle: thousands of drivers
                if interval:
                    next_at += interval
                    await anyio.sleep(max(0.0, next_at - anyio.current_time()))
    live._scope = None
    wall = clock() - began
    cpu = time.process_time() - cpu_start
    samples.sort(key=lambda s: s.index)
    return build_report(
        samples=tuple(samples),
        gaps=gaps,
        instances=instances,
        wall=wall,
        cpu=cpu,
        slos=slos,
        retried=retried,
        cost=cost,
        partial=scope.cancelled_caught or live.stopped,
        parameters={
            "prompt": prompt_id if prompt_id is not None else _named(prompt),
            "provider": str(prompt_settings.get("provider") or runtime.settings.provider),
            "model": _model(prompt_settings, runtime),
            "instances": instances,
            "rate": rate,
            "database": redact_url(runtime.settings.database_url),
            "processes": 1,
            "track": track,
            "slo": dict(slos),
            "started_at": started_at.isoformat(timespec="seconds"),
        },
    )


def _named(prompt: PromptDefinition | None) -> str | None:
    if prompt is None:
        return None
    return f"{prompt.id} (inline)" if prompt is not DEMO_PROMPT else f"{prompt.id} (built in)"


def _model(prompt_settings: Mapping[str, Any], runtime: Runtime) -> str:
    model = prompt_settings.get("model") or runtime.settings.model
    if model:
        return str(model)
    provider = prompt_settings.get("provider") or runtime.settings.provider
    return "simulated" if provider == "simulated" else "provider default"


def build_report(
    *,
    samples: tuple[TurnSample, ...],
    gaps: Sequence[float],
    instances: int,
    wall: float,
    cpu: float,
    slos: dict[str, float],
    retried: int,
    cost: float,
    partial: bool,
    parameters: dict[str, Any],
) -> LoadReport:
    """The report of a load from its turns (sorted by index) and inter-chunk ``gaps``."""
    done = [s for s in samples if s.outcome == "ok"]
    failures = count_failures(samples)
    kinds: Counter[str] = Counter()
    for failure in failures:
        kinds[failure.kind] += failure.count
    ttft = summarize(s.ttft for s in done)
    e2e = summarize(s.e2e for s in done)
    tokens = sum(s.output_tokens for s in done)
    return LoadReport(
        instances=instances,
        completed=len(done),
        errors=sum(kinds.values()),
        error_kinds=dict(kinds),
        wall_s=round(wall, 4),
        cpu_s=round(cpu, 4),
        turns_per_s=round(len(done) / wall, 2) if wall else 0.0,
        tokens=tokens,
        tokens_per_s=round(tokens / wall, 1) if wall else 0.0,
        cpu_us_per_token=round(cpu / tokens * 1e6, 2) if tokens else None,
        ttft_p50=ttft.p50,
        ttft_p95=ttft.p95,
        ttft_p99=ttft.p99,
        total_p50=e2e.p50,
        total_p95=e2e.p95,
        total_p99=e2e.p99,
        attempts_retried=retried,
        cost=round(cost, 6),
        partial=partial,
        cancelled=sum(s.outcome == "cancelled" for s in samples),
        ttft=ttft,
        tpot=summarize(s.tpot for s in done),
        itl=summarize(gaps),
        e2e=e2e,
        goodput=goodput(samples, slos, wall),
        failures=failures,
        timeseries=timeseries(samples, wall),
        parameters=parameters,
        turns=samples,
        itl_samples=tuple(gaps),
    )

"""Load runs: many instances, one turn each, measured (``promptactors load`` and benchmarks)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from ._exceptions import InvalidInput
from .kernel import start_soon
from .messages import PromptDefinition, PromptMessage, VariableDefault

if TYPE_CHECKING:
    from collections.abc import Callable

    from .runtime import Runtime

__all__ = ["DEMO_PROMPT", "LoadReport", "percentile", "run_load"]

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


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What a load run measured. Latencies in seconds; CPU figures from process time."""

    instances: int
    completed: int
    errors: int
    error_kinds: dict[str, int]
    wall_s: float
    cpu_s: float
    turns_per_s: float
    tokens: int
    tokens_per_s: float
    cpu_us_per_token: float | None
    ttft_p50: float | None
    ttft_p95: float | None
    ttft_p99: float | None
    total_p50: float | None
    total_p95: float | None
    total_p99: float | None
    attempts_retried: int
    cost: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
) -> LoadReport:
    """Start ``instances`` instances (at ``rate`` per second, or all at once), run one
    turn on each, and report throughput and latency percentiles.

    The prompt is ``prompt_id`` from the store (through the single-flight cache) or the
    inline ``prompt`` (default: a demo prompt). ``progress(started, done, failed)`` is
    called as turns finish. Errors are counted by kind, never raised (a load run reports).
    Raises ``InvalidInput`` for a non-positive count or rate.
    """
    if instances < 1:
        raise InvalidInput(f"instances must be at least 1, got {instances}")
    if rate is not None and rate <= 0:
        raise InvalidInput(f"rate must be positive, got {rate}")
    if prompt_id is None and prompt is None:
        prompt = DEMO_PROMPT
    ttfts: list[float] = []
    totals: list[float] = []
    kinds: Counter[str] = Counter()
    counts = {"started": 0, "done": 0, "failed": 0, "tokens": 0, "retried": 0}
    cost = 0.0

    async def one() -> None:
        nonlocal cost
        counts["started"] += 1
        try:
            handle = await runtime.start_instance(
                prompt_id,
                prompt=None if prompt_id is not None else prompt,
                variables=variables,
                execution_config={"track_in_runs": track, "allow_chat": True},
            )
            try:
                result = await handle.execute()
            finally:
                if stop_after:
                    await handle.stop()
        except Exception as exc:  # a load run counts failures by kind instead of raising
            counts["failed"] += 1
            kinds[type(exc).__name__] += 1
        else:
            counts["done"] += 1
            counts["tokens"] += result.output_tokens
            counts["retried"] += result.attempts > 1
            cost += result.cost or 0.0
            if result.time_to_first_token is not None:
                ttfts.append(result.time_to_first_token)
            if result.total_time is not None:
                totals.append(result.total_time)
        if progress is not None:
            progress(counts["started"], counts["done"], counts["failed"])

    wall_start = time.perf_counter()
    cpu_start = time.process_time()
    async with anyio.create_task_group() as tg:
        interval = 1.0 / rate if rate else 0.0
        next_at = anyio.current_time()
        for _ in range(instances):
            start_soon(tg, one)  # no per-task handle: thousands of drivers
            if interval:
                next_at += interval
                await anyio.sleep(max(0.0, next_at - anyio.current_time()))
    wall = time.perf_counter() - wall_start
    cpu = time.process_time() - cpu_start
    tokens = counts["tokens"]
    return LoadReport(
        instances=instances,
        completed=counts["done"],
        errors=counts["failed"],
        error_kinds=dict(kinds),
        wall_s=round(wall, 4),
        cpu_s=round(cpu, 4),
        turns_per_s=round(counts["done"] / wall, 2) if wall else 0.0,
        tokens=tokens,
        tokens_per_s=round(tokens / wall, 1) if wall else 0.0,
        cpu_us_per_token=round(cpu / tokens * 1e6, 2) if tokens else None,
        ttft_p50=percentile(ttfts, 50),
        ttft_p95=percentile(ttfts, 95),
        ttft_p99=percentile(ttfts, 99),
        total_p50=percentile(totals, 50),
        total_p95=percentile(totals, 95),
        total_p99=percentile(totals, 99),
        attempts_retried=counts["retried"],
        cost=round(cost, 6),
    )

"""The simulated provider: deterministic text, pacing on a shared ticker, injected faults."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import trio
import trio.testing

from promptactors import ConfigurationError, InjectedFault, ProviderBadRequest
from promptactors._backend import Ticker
from promptactors.providers._estimate import estimate_request_tokens
from promptactors.providers._protocol import (
    ChatMessage,
    Provider,
    ProviderRequest,
    StreamEnd,
    TextDelta,
)
from promptactors.providers._simulated import FaultOutcome, FaultPlan, SimulatedProvider


def request(text: str = "Tell me a story.", **settings: Any) -> ProviderRequest:
    return ProviderRequest(
        model="simulated", messages=(ChatMessage("user", text),), settings=settings
    )


class Recorded:
    """What one stream yielded, and when (event-loop clock)."""

    def __init__(self) -> None:
        self.deltas: list[TextDelta] = []
        self.times: list[float] = []
        self.end: StreamEnd | None = None
        self.started = 0.0

    @property
    def text(self) -> str:
        return "".join(delta.text for delta in self.deltas)

    @property
    def tokens(self) -> int:
        return sum(delta.chunks for delta in self.deltas)


async def read(
    provider: SimulatedProvider, req: ProviderRequest, into: Recorded | None = None
) -> Recorded:
    got = Recorded() if into is None else into
    got.started = anyio.current_time()
    async with provider.stream(req) as events:
        async for event in events:
            got.times.append(anyio.current_time())
            if isinstance(event, TextDelta):
                got.deltas.append(event)
            else:
                assert got.end is None, "StreamEnd must come once, last"
                got.end = event
    return got


# -- text and usage ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_same_request_gives_the_same_text() -> None:
    """Two providers with the same seed stream identical text for identical requests."""
    first = await read(SimulatedProvider(inter_token_latency=0), request())
    second = await read(SimulatedProvider(inter_token_latency=0), request())
    assert first.text == second.text
    assert len(first.text.split()) == 50


@pytest.mark.anyio
async def test_text_depends_on_the_messages_and_the_seed() -> None:
    """Another prompt or another seed gives other text."""
    base = await read(SimulatedProvider(inter_token_latency=0), request("a"))
    other_prompt = await read(SimulatedProvider(inter_token_latency=0), request("b"))
    other_seed = await read(SimulatedProvider(inter_token_latency=0, seed=7), request("a"))
    assert base.text != other_prompt.text
    assert base.text != other_seed.text


@pytest.mark.anyio
async def test_stream_ends_with_usage_finish_reason_and_model() -> None:
    """The last event reports the output tokens streamed and the estimated input tokens."""
    req = request()
    got = await read(SimulatedProvider(tokens=12, inter_token_latency=0), req)
    assert got.end is not None
    assert got.end.usage.output_tokens == 12 == got.tokens
    assert got.end.usage.input_tokens == estimate_request_tokens(req.messages)
    assert got.end.usage.source == "provider"
    assert got.end.finish_reason == "stop"
    assert got.end.model == "simulated"


def test_simulated_provider_satisfies_the_provider_protocol() -> None:
    """The simulated provider is a Provider (checked by mypy and at runtime)."""
    provider: Provider = SimulatedProvider()
    assert isinstance(provider, Provider)


@pytest.mark.trio
async def test_settings_set_to_none_mean_the_defaults(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Model settings often carry max_tokens=None: that is no override, not an error."""
    async with SimulatedProvider(tokens=3, inter_token_latency=0.1) as provider:
        got = await read(provider, request(max_tokens=None, sim_latency=None))
    assert got.tokens == 3
    assert got.times[-1] - got.started == pytest.approx(0.3)


@pytest.mark.trio
async def test_an_explicit_time_to_first_token_survives_a_latency_override(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """sim_latency moves the first token only when the provider's ttft follows its latency."""
    async with SimulatedProvider(tokens=2, time_to_first_token=1.0) as fixed:
        got = await read(fixed, request(sim_latency=0.5))
    assert got.times[0] - got.started == pytest.approx(1.0)
    async with SimulatedProvider(tokens=2) as following:
        got = await read(following, request(sim_latency=0.5))
    assert got.times[0] - got.started == pytest.approx(0.5)


# -- pacing ------------------------------------------------------------------------------


@pytest.mark.trio
async def test_total_time_is_ttft_plus_one_latency_per_further_token(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Token i arrives at ttft + i * latency, one token per delta when read promptly."""
    async with SimulatedProvider(
        tokens=10, inter_token_latency=0.02, time_to_first_token=0.5
    ) as provider:
        got = await read(provider, request())
    offsets = [t - got.started for t in got.times]
    expected = [0.5 + i * 0.02 for i in range(10)]
    assert offsets[:10] == pytest.approx(expected, abs=1e-9)
    assert offsets[10] == pytest.approx(0.68, abs=1e-9)  # the end follows the last token
    assert [delta.chunks for delta in got.deltas] == [1] * 10


@pytest.mark.anyio
async def test_streams_are_paced_on_both_backends() -> None:
    """On the real clock too, tokens arrive no earlier than their schedule, all of them."""
    async with SimulatedProvider(tokens=5, inter_token_latency=0.004) as provider:
        got = await read(provider, request())
    assert got.tokens == 5
    assert got.end is not None
    assert got.times[-1] - got.started >= 5 * 0.004


@pytest.mark.anyio
async def test_concurrent_streams_complete_and_leave_no_waiters_on_both_backends() -> None:
    """Many concurrent streams on one ticker all complete, and no waiter is left behind."""
    async with Ticker.open() as ticker:
        provider = SimulatedProvider(tokens=5, inter_token_latency=0.002, ticker=ticker)
        results = [Recorded() for _ in range(200)]
        async with anyio.create_task_group() as tg:
            for i, got in enumerate(results):
                tg.start_soon(read, provider, request(f"prompt {i}"), got)
        assert all(got.tokens == 5 and got.end is not None for got in results)
        assert ticker.pending == 0


@pytest.mark.trio
async def test_tokens_due_while_the_reader_was_busy_come_as_one_delta(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A reader that falls behind gets everything due since its last read in one delta."""
    provider = SimulatedProvider(tokens=20, inter_token_latency=0.02)
    async with provider, provider.stream(request()) as events:
        first = await events.__anext__()
        await trio.sleep(0.1)  # five more tokens fall due meanwhile
        caught_up = await events.__anext__()
        rest = [event async for event in events]
    assert isinstance(first, TextDelta)
    assert first.chunks == 1
    assert isinstance(caught_up, TextDelta)
    assert caught_up.chunks == 5
    assert len(caught_up.text.split()) == 5
    assert sum(e.chunks for e in rest if isinstance(e, TextDelta)) == 14


@pytest.mark.trio
async def test_tokens_falling_due_within_one_tick_are_joined(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With ticks coarser than the latency, each tick's tokens come as one delta."""
    async with Ticker.open(resolution=0.01) as ticker:
        provider = SimulatedProvider(
            tokens=30, inter_token_latency=0.001, time_to_first_token=0.01, ticker=ticker
        )
        got = await read(provider, request())
    assert got.tokens == 30
    assert len(got.deltas) <= 4
    assert got.deltas[1].chunks == 10


@pytest.mark.trio
async def test_thousand_concurrent_streams_share_one_ticker_and_finish_together(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """1,000 streams started together end at the same virtual time, one tick wake-up each."""
    async with Ticker.open() as ticker:
        provider = SimulatedProvider(tokens=20, inter_token_latency=0.02, ticker=ticker)
        results = [Recorded() for _ in range(1000)]
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for i, got in enumerate(results):
                nursery.start_soon(read, provider, request(f"prompt {i}"), got)
    ends = {got.times[-1] for got in results}
    assert len(ends) == 1
    assert ends.pop() - start == pytest.approx(0.4)
    assert all(got.tokens == 20 and len(got.deltas) == 20 for got in results)
    assert ticker.wakeups <= 21  # one per token time, not one per stream


@pytest.mark.trio
async def test_cancelling_a_stream_removes_its_waiter_and_spares_the_others(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A cancelled stream leaves the ticker; the streams beside it finish on time."""
    async with Ticker.open() as ticker:
        provider = SimulatedProvider(tokens=10, inter_token_latency=0.1, ticker=ticker)
        survivors = [Recorded() for _ in range(3)]
        victim = Recorded()
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for i, got in enumerate(survivors):
                nursery.start_soon(read, provider, request(f"kept {i}"), got)
            with trio.move_on_after(0.25):
                await read(provider, request("cancelled"), victim)
            await trio.testing.wait_all_tasks_blocked()
            assert ticker.pending == len(survivors)
    assert victim.tokens == 2
    assert victim.end is None
    for got in survivors:
        assert got.tokens == 10
        assert got.times[-1] - start == pytest.approx(1.0)
    assert ticker.pending == 0


@pytest.mark.trio
async def test_zero_latency_streams_without_waiting_but_lets_others_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Latency 0 takes no time at all and still checkpoints so other tasks progress."""
    other_ran = 0

    async def other() -> None:
        nonlocal other_ran
        while True:
            other_ran += 1
            await trio.lowlevel.checkpoint()

    provider = SimulatedProvider(tokens=500, inter_token_latency=0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        start = trio.current_time()
        async with provider.stream(request()) as events:
            ran_during_stream = [
                other_ran async for event in events if isinstance(event, TextDelta)
            ]
        assert trio.current_time() == start
        nursery.cancel_scope.cancel()
    assert len(ran_during_stream) == 500
    assert ran_during_stream[-1] > ran_during_stream[0]


@pytest.mark.trio
async def test_provider_not_entered_still_paces_its_streams(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Without a running ticker the streams fall back to plain sleeps, with the same timing."""
    provider = SimulatedProvider(tokens=5, inter_token_latency=0.1)
    got = await read(provider, request())
    assert got.times[-1] - got.started == pytest.approx(0.5)
    assert got.tokens == 5


@pytest.mark.trio
async def test_zero_tokens_ends_after_the_time_to_first_token(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A stream of no tokens is just its StreamEnd, at the first token's time."""
    async with SimulatedProvider(tokens=0, time_to_first_token=0.3) as provider:
        got = await read(provider, request())
    assert got.deltas == []
    assert got.end is not None
    assert got.end.usage.output_tokens == 0
    assert got.times == [pytest.approx(got.started + 0.3)]


# -- per-request settings ----------------------------------------------------------------


@pytest.mark.trio
async def test_request_settings_override_tokens_and_latency(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """sim_tokens, sim_latency and sim_ttft in the request settings win over the defaults."""
    async with SimulatedProvider() as provider:
        got = await read(provider, request(sim_tokens=4, sim_latency=0.5, sim_ttft=1.0))
    assert got.tokens == 4
    assert got.times[-1] - got.started == pytest.approx(1.0 + 3 * 0.5)


@pytest.mark.anyio
async def test_max_tokens_caps_the_output_with_finish_reason_length() -> None:
    """max_tokens below the configured count stops early with finish_reason 'length'."""
    got = await read(SimulatedProvider(tokens=50, inter_token_latency=0), request(max_tokens=7))
    assert got.end is not None
    assert got.tokens == got.end.usage.output_tokens == 7
    assert got.end.finish_reason == "length"


@pytest.mark.parametrize(
    "settings",
    [{"sim_tokens": -1}, {"sim_tokens": 2.5}, {"sim_latency": "fast"}, {"max_tokens": True}],
)
def test_invalid_request_settings_are_a_bad_request(settings: dict[str, Any]) -> None:
    """A malformed override is rejected as a non-retryable bad request naming the setting."""
    with pytest.raises(ProviderBadRequest, match=next(iter(settings))) as caught:
        SimulatedProvider().stream(request(**settings))
    assert caught.value.retryable is False


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tokens": -1}, "tokens"),
        ({"inter_token_latency": -0.1}, "inter_token_latency"),
        ({"time_to_first_token": float("nan")}, "time_to_first_token"),
        ({"seed": "x"}, "seed"),
        ({"faults": {"truncate": 1}}, "faults"),
        ({"name": ""}, "name"),
    ],
)
def test_invalid_constructor_arguments_are_configuration_errors(
    kwargs: dict[str, Any], match: str
) -> None:
    """Each invalid argument raises ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match=match):
        SimulatedProvider(**kwargs)


# -- lifecycle ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_closed_provider_refuses_new_streams_and_close_is_idempotent() -> None:
    """After aclose, stream() raises; closing again is harmless."""
    async with SimulatedProvider(inter_token_latency=0.001) as provider:
        await read(provider, request())
        await provider.aclose()
        await provider.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            provider.stream(request())


@pytest.mark.anyio
async def test_provider_can_be_entered_only_once() -> None:
    """Entering a provider that is already running is refused."""
    async with SimulatedProvider() as provider:
        with pytest.raises(RuntimeError, match="already"):
            await provider.__aenter__()


# -- faults ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_fault_before_first_token_raises_on_entering_the_stream() -> None:
    """The stream fails on entry with a retryable InjectedFault from this provider."""
    provider = SimulatedProvider(
        inter_token_latency=0, faults=FaultPlan(script=["fail_before_first_token"]), name="sim"
    )
    with pytest.raises(InjectedFault, match="before the first token") as caught:
        await read(provider, request())
    assert caught.value.retryable is True
    assert caught.value.provider == "sim"


@pytest.mark.anyio
async def test_fault_after_k_tokens_keeps_the_partial_text() -> None:
    """('fail_after', k) streams k tokens, then raises InjectedFault."""
    provider = SimulatedProvider(
        inter_token_latency=0, faults=FaultPlan(script=[("fail_after", 10)])
    )
    got = Recorded()
    with pytest.raises(InjectedFault, match="after 10 tokens"):
        await read(provider, request(), got)
    assert got.tokens == 10
    assert got.end is None
    full = await read(provider, request())
    assert full.text.startswith(got.text)


@pytest.mark.anyio
async def test_reading_after_leaving_the_block_stops_without_a_fault() -> None:
    """Once the stream's block is left, iteration ends: no more deltas, no pending fault."""
    provider = SimulatedProvider(
        inter_token_latency=0, faults=FaultPlan(script=[("fail_after", 3)])
    )
    async with provider.stream(request()) as events:
        await events.__anext__()
    with pytest.raises(StopAsyncIteration):
        await events.__anext__()


@pytest.mark.anyio
async def test_truncation_ends_without_stream_end() -> None:
    """'truncate' streams every token, then raises instead of the StreamEnd."""
    provider = SimulatedProvider(
        tokens=8, inter_token_latency=0, faults=FaultPlan(script=["truncate", ("truncate", 3)])
    )
    whole, partial = Recorded(), Recorded()
    with pytest.raises(InjectedFault, match="truncat"):
        await read(provider, request(), whole)
    with pytest.raises(InjectedFault, match="truncat"):
        await read(provider, request(), partial)
    assert (whole.tokens, whole.end) == (8, None)
    assert (partial.tokens, partial.end) == (3, None)


@pytest.mark.trio
async def test_stall_pauses_the_stream_then_it_goes_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """('stall', s, k) adds s seconds after k tokens; ('stall', s) delays the first token."""
    plan = FaultPlan(script=[("stall", 5.0, 3), ("stall", 2.0)])
    async with SimulatedProvider(tokens=6, inter_token_latency=0.1, faults=plan) as provider:
        mid = await read(provider, request())
        first = await read(provider, request())
    offsets = [t - mid.started for t in mid.times]
    assert offsets[:6] == pytest.approx([0.1, 0.2, 0.3, 5.4, 5.5, 5.6])
    assert mid.end is not None
    assert first.times[0] - first.started == pytest.approx(2.1)
    assert provider.fault_counts == {"stall": 2}


@pytest.mark.anyio
async def test_scripted_outcomes_are_used_in_call_order_then_streams_are_normal() -> None:
    """Each stream() call consumes the next scripted outcome; after the script, all is well."""
    script: list[FaultOutcome] = ["ok", "fail_before_first_token", ("fail_after", 2), "truncate"]
    provider = SimulatedProvider(tokens=4, inter_token_latency=0, faults=FaultPlan(script=script))
    outcomes: list[str] = []
    for _ in range(6):
        got = Recorded()
        try:
            await read(provider, request(), got)
        except InjectedFault:
            outcomes.append(f"fault after {got.tokens}")
        else:
            outcomes.append("ok")
    assert outcomes == ["ok", "fault after 0", "fault after 2", "fault after 4", "ok", "ok"]
    assert provider.fault_counts == {
        "fail_before_first_token": 1,
        "fail_after": 1,
        "truncate": 1,
    }


async def _outcomes(plan: FaultPlan, calls: int) -> list[str]:
    provider = SimulatedProvider(tokens=10, inter_token_latency=0, faults=plan)
    outcomes = []
    for i in range(calls):
        got = Recorded()
        try:
            await read(provider, request(f"call {i}"), got)
        except InjectedFault as exc:
            outcomes.append(f"{exc} ({got.tokens})")
        else:
            outcomes.append("ok")
    return outcomes


@pytest.mark.anyio
async def test_seeded_fault_plans_are_reproducible() -> None:
    """The same plan and seed inject the same faults at the same points; another seed differs."""
    plan = FaultPlan(fail_before_first_token=0.2, fail_mid_stream=0.2, truncate=0.2, seed=42)
    first = await _outcomes(plan, 40)
    assert first == await _outcomes(plan, 40)
    assert first != await _outcomes(FaultPlan(**{**_fields(plan), "seed": 43}), 40)
    assert "ok" in first
    assert len(set(first)) > 3


def _fields(plan: FaultPlan) -> dict[str, Any]:
    return {name: getattr(plan, name) for name in plan.__dataclass_fields__}


@pytest.mark.parametrize(
    ("plan", "needle"),
    [
        (FaultPlan(fail_before_first_token=1.0), "before the first token"),
        (FaultPlan(fail_mid_stream=1.0), "injected fault after"),
        (FaultPlan(truncate=1.0), "truncation"),
    ],
)
@pytest.mark.anyio
async def test_each_fault_probability_of_one_always_injects_that_fault(
    plan: FaultPlan, needle: str
) -> None:
    """A probability of 1 injects that fault on every call."""
    outcomes = await _outcomes(plan, 5)
    assert all(needle in outcome for outcome in outcomes)


@pytest.mark.trio
async def test_stall_probability_of_one_stalls_every_stream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A stall probability of 1 adds stall_seconds to every stream, which still completes."""
    plan = FaultPlan(stall=1.0, stall_seconds=3.0)
    async with SimulatedProvider(tokens=5, inter_token_latency=0.1, faults=plan) as provider:
        for _ in range(3):
            got = await read(provider, request())
            assert got.end is not None
            assert got.times[-1] - got.started == pytest.approx(3.5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fail_mid_stream": 1.5}, "fail_mid_stream"),
        ({"truncate": -0.1}, "truncate"),
        ({"stall": True}, "stall"),
        ({"stall_seconds": -1}, "stall_seconds"),
        ({"seed": 1.5}, "seed"),
        ({"script": "ok"}, "script"),
        ({"script": ["explode"]}, r"script\[0\]"),
        ({"script": ["ok", ("fail_after", -1)]}, r"script\[1\]"),
        ({"script": [("stall",)]}, r"script\[0\]"),
    ],
)
def test_invalid_fault_plans_are_configuration_errors(kwargs: dict[str, Any], match: str) -> None:
    """A bad probability, duration or script entry is rejected, naming it."""
    with pytest.raises(ConfigurationError, match=match):
        FaultPlan(**kwargs)

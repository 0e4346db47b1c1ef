"""The scripted provider users put in place of a real one in their tests."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import trio
import trio.testing

from promptactors import InvalidInput, ProviderRateLimited, ProviderServerError
from promptactors.providers._protocol import (
    ChatMessage,
    Provider,
    ProviderRequest,
    StreamEnd,
    StreamEvent,
    TextDelta,
    Usage,
)
from promptactors.testing import Pause, ScriptedProvider


def request(text: str = "hi", model: str = "test-model") -> ProviderRequest:
    return ProviderRequest(model=model, messages=(ChatMessage("user", text),))


async def play(provider: ScriptedProvider, req: ProviderRequest) -> list[StreamEvent]:
    async with provider.stream(req) as events:
        return [event async for event in events]


async def play_into(
    provider: ScriptedProvider, req: ProviderRequest, got: list[StreamEvent]
) -> None:
    async with provider.stream(req) as events:
        async for event in events:
            got.append(event)  # noqa: PERF401 - what came before an error must be kept


@pytest.mark.anyio
async def test_each_call_plays_the_next_script_in_order() -> None:
    """Scripts are used first in, first out, one per stream() call."""
    provider = ScriptedProvider([["Hel", "lo"], ["Bye"]])
    first = await play(provider, request())
    second = await play(provider, request())
    assert first[:2] == [TextDelta("Hel"), TextDelta("lo")]
    assert second[0] == TextDelta("Bye")
    assert provider.remaining == 0


@pytest.mark.anyio
async def test_a_script_without_an_end_gets_an_estimated_stream_end() -> None:
    """Without a Usage or StreamEnd step, the stream ends with estimated usage."""
    provider = ScriptedProvider([["Hello there"]])
    events = await play(provider, request(model="m"))
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert end.usage.source == "estimated"
    assert end.usage.output_tokens == 3
    assert (end.finish_reason, end.model) == ("stop", "m")


@pytest.mark.anyio
async def test_a_usage_step_ends_the_stream_with_that_usage() -> None:
    """A final Usage step becomes the StreamEnd's usage; a StreamEnd step is sent as is."""
    explicit = StreamEnd(Usage(1, 1), finish_reason="length", model="x")
    provider = ScriptedProvider([["a", Usage(10, 2, cached_tokens=4)], ["b", explicit]])
    first = await play(provider, request())
    second = await play(provider, request())
    assert first[-1] == StreamEnd(Usage(10, 2, cached_tokens=4), "stop", "test-model")
    assert second[-1] is explicit


@pytest.mark.anyio
async def test_an_exception_first_fails_on_entering_the_stream() -> None:
    """An error as the first step is raised by the async with, like an HTTP error status."""
    error = ProviderRateLimited("slow down", retry_after=1.0)
    provider = ScriptedProvider([[error]])
    stream = provider.stream(request())
    with pytest.raises(ProviderRateLimited) as caught:
        await stream.__aenter__()
    assert caught.value is error
    assert provider.open_streams == 0


@pytest.mark.anyio
async def test_an_exception_later_fails_mid_stream_after_the_deltas_before_it() -> None:
    """Deltas before the error are delivered, then the error is raised while reading."""
    provider = ScriptedProvider([["Par", "tial", ProviderServerError("boom")]])
    got: list[StreamEvent] = []
    with pytest.raises(ProviderServerError, match="boom"):
        await play_into(provider, request(), got)
    assert got == [TextDelta("Par"), TextDelta("tial")]
    assert provider.open_streams == 0


@pytest.mark.trio
async def test_pauses_take_virtual_time(autojump_clock: trio.testing.MockClock) -> None:
    """A Pause step waits on the event loop's clock before the next step."""
    provider = ScriptedProvider([["a", Pause(2.5), "b"]])
    start = trio.current_time()
    events = await play(provider, request())
    assert trio.current_time() - start == pytest.approx(2.5)
    assert events[:2] == [TextDelta("a"), TextDelta("b")]


@pytest.mark.anyio
async def test_requests_are_recorded_in_call_order() -> None:
    """Every request passed to stream() is kept for assertions."""
    provider = ScriptedProvider([["1"], ["2"]])
    await play(provider, request("first"))
    await play(provider, request("second"))
    assert [r.messages[0].content for r in provider.requests] == ["first", "second"]


@pytest.mark.anyio
async def test_an_unexpected_call_fails_loudly() -> None:
    """With no script left and no default, stream() raises AssertionError."""
    provider = ScriptedProvider([["only"]])
    await play(provider, request())
    with pytest.raises(AssertionError, match="no script left for call 2"):
        provider.stream(request())


@pytest.mark.anyio
async def test_default_script_or_function_answers_once_scripts_run_out() -> None:
    """A default script repeats; a default function answers from the request."""
    repeating = ScriptedProvider(default=["same"])
    echo = ScriptedProvider(default=lambda req: [req.messages[-1].content.upper()])
    assert (await play(repeating, request()))[0] == TextDelta("same")
    assert (await play(repeating, request()))[0] == TextDelta("same")
    assert (await play(echo, request("shout")))[0] == TextDelta("SHOUT")


@pytest.mark.anyio
async def test_open_streams_counts_streams_not_yet_closed() -> None:
    """open_streams lets a test check that the code under test closes its streams."""
    provider = ScriptedProvider(default=["x"])
    async with provider.stream(request()) as events:
        assert provider.open_streams == 1
        await events.__anext__()
    assert provider.open_streams == 0
    await provider.aclose()
    assert provider.closed


def test_scripted_provider_satisfies_the_provider_protocol() -> None:
    """The scripted provider is a Provider (checked by mypy and at runtime)."""
    provider: Provider = ScriptedProvider()
    assert isinstance(provider, Provider)


@pytest.mark.parametrize(
    ("scripts", "match"),
    [
        (["not a list of steps"], "sequence of steps"),
        ([[42]], r"script 0\[0\].*not a step"),
        ([["a"], [Usage(1, 1), "after the end"]], r"script 1\[0\].*must be last"),
    ],
)
def test_malformed_scripts_are_rejected(scripts: Any, match: str) -> None:
    """A step of the wrong kind, or a step after the end, raises InvalidInput."""
    with pytest.raises(InvalidInput, match=match):
        ScriptedProvider(scripts)


@pytest.mark.anyio
async def test_iteration_after_the_end_stops() -> None:
    """Reading past the StreamEnd, or after leaving the block, ends the iteration."""
    provider = ScriptedProvider([["a"]])
    async with provider.stream(request()) as events:
        assert len([event async for event in events]) == 2
        with pytest.raises(StopAsyncIteration):
            await events.__anext__()
    with anyio.fail_after(1), pytest.raises(StopAsyncIteration):
        await events.__anext__()

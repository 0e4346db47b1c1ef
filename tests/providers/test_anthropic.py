"""The Anthropic Messages provider against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import anyio
import pytest

from promptactors import _exceptions as exc
from promptactors.providers._anthropic import AnthropicProvider
from promptactors.providers._http_config import EndpointConfig
from promptactors.providers._http_provider import HTTPProvider
from promptactors.providers._protocol import (
    ChatMessage,
    ProviderRequest,
    StreamEnd,
    StreamEvent,
    TextDelta,
)
from promptactors.providers._retry import ProviderRetry
from promptactors.testing._llm_server import LLMServer, Reply, serve_llm

API_KEY = "sk-ant-test-5ecret"
REQUEST = ProviderRequest(
    model="claude-test",
    messages=(
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Say hello."),
        ChatMessage("assistant", "Hello."),
        ChatMessage("user", "Again."),
    ),
    settings={"temperature": 0.5, "stop": "END"},
)
FAST_RETRY = ProviderRetry(max_attempts=3, base_delay=0.01, max_delay=0.05, rng=random.Random(0))


@pytest.fixture
async def server() -> AsyncIterator[LLMServer]:
    async with serve_llm(Reply(tokens=4)) as running:
        yield running


def make_provider(server: LLMServer, **config: object) -> AnthropicProvider:
    endpoint = EndpointConfig.model_validate(
        {
            "kind": "anthropic",
            "base_url": server.base_url,
            "api_key": API_KEY,
            "read_timeout": 2.0,
            **config,
        }
    )
    return AnthropicProvider(endpoint, retry=FAST_RETRY)


async def collect(provider: AnthropicProvider) -> list[StreamEvent]:
    with anyio.fail_after(10):
        async with provider.stream(REQUEST) as stream:
            return [event async for event in stream]


async def collect_into(provider: HTTPProvider, received: list[StreamEvent]) -> None:
    """Append every event to ``received`` (kept when the stream then raises)."""
    with anyio.fail_after(10):
        async with provider.stream(REQUEST) as stream:
            async for event in stream:
                received.append(event)  # noqa: PERF401 - the list must survive a raise


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


@pytest.mark.anyio
async def test_a_message_stream_yields_text_usage_and_stop_reason(server: LLMServer) -> None:
    """text_delta events become text; message_start/message_delta give the usage."""
    provider = make_provider(server)
    try:
        events = await collect(provider)
    finally:
        await provider.aclose()
    assert text_of(events) == "tok " * 4
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert end.usage.source == "provider"
    assert end.usage.output_tokens == 4
    assert end.usage.input_tokens > 0
    assert end.finish_reason == "end_turn"
    assert end.model == "claude-test"


@pytest.mark.trio
async def test_the_request_uses_the_messages_api_shape(server: LLMServer) -> None:
    """System text goes to ``system``; headers carry the key and version; stop is mapped."""
    provider = make_provider(server)
    try:
        await collect(provider)
    finally:
        await provider.aclose()
    (request,) = server.requests
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == API_KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    body = request.body
    assert body["system"] == "Be brief."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["max_tokens"] == 4096
    assert body["stop_sequences"] == ["END"]
    assert "stop" not in body
    assert body["temperature"] == 0.5
    assert body["stream"] is True


@pytest.mark.trio
async def test_pings_and_cache_usage_are_handled(server: LLMServer) -> None:
    """ping events are ignored; cached input tokens are counted and reported."""
    body = (
        b"event: message_start\n"
        b'data: {"type":"message_start","message":{"model":"claude-x","usage":'
        b'{"input_tokens":5,"cache_read_input_tokens":20,"cache_creation_input_tokens":2,'
        b'"output_tokens":1}}}\n\n'
        b'event: ping\ndata: {"type": "ping"}\n\n'
        b"event: content_block_start\n"
        b'data: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n'
        b"event: content_block_delta\n"
        b'data: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"Hi"}}\n\n'
        b"event: content_block_delta\n"
        b'data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta",'
        b'"partial_json":"{}"}}\n\n'
        b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
        b"event: message_delta\n"
        b'data: {"type":"message_delta","delta":{"stop_reason":"max_tokens"},'
        b'"usage":{"output_tokens":9}}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    server.script(Reply(events=tuple(body[i : i + 11] for i in range(0, len(body), 11))))
    provider = make_provider(server)
    try:
        events = await collect(provider)
    finally:
        await provider.aclose()
    assert text_of(events) == "Hi"
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert (end.usage.input_tokens, end.usage.cached_tokens, end.usage.output_tokens) == (27, 20, 9)
    assert end.finish_reason == "max_tokens"
    assert end.model == "claude-x"


@pytest.mark.anyio
async def test_an_overloaded_error_event_mid_stream_is_classified(server: LLMServer) -> None:
    """``event: error`` with overloaded_error after text raises ProviderOverloaded, no retry."""
    server.script(Reply(tokens=5, error_at=2, error_type="overloaded_error"))
    provider = make_provider(server)
    received: list[StreamEvent] = []
    try:
        with pytest.raises(exc.ProviderOverloaded):
            await collect_into(provider, received)
    finally:
        await provider.aclose()
    assert text_of(received) == "tok tok "
    assert len(server.requests) == 1


@pytest.mark.trio
async def test_an_error_event_before_any_text_is_retried(server: LLMServer) -> None:
    """An overloaded_error before the first token is retried like a 529."""
    server.script(Reply(tokens=5, error_at=0, error_type="overloaded_error"))
    provider = make_provider(server)
    try:
        events = await collect(provider)
    finally:
        await provider.aclose()
    assert text_of(events) == "tok " * 4
    assert len(server.requests) == 2


@pytest.mark.trio
async def test_529_with_retry_after_is_retried(server: LLMServer) -> None:
    """HTTP 529 is overload: retried after the server's delay."""
    server.script(Reply.error(529, retry_after="0.05"))
    provider = make_provider(server)
    try:
        events = await collect(provider)
    finally:
        await provider.aclose()
    assert text_of(events) == "tok " * 4
    assert len(server.requests) == 2


@pytest.mark.trio
async def test_an_authentication_error_is_not_retried(server: LLMServer) -> None:
    """401 raises ProviderAuthenticationError after one request, without the key in it."""
    server.script(Reply.error(401, message=f"invalid x-api-key {API_KEY}"))
    provider = make_provider(server)
    try:
        with pytest.raises(exc.ProviderAuthenticationError) as caught:
            await collect(provider)
    finally:
        await provider.aclose()
    assert len(server.requests) == 1
    assert API_KEY not in str(caught.value)


@pytest.mark.trio
async def test_a_stream_without_message_stop_is_truncated(server: LLMServer) -> None:
    """Ending before message_stop raises StreamTruncated after the partial text."""
    server.script(Reply(tokens=3, end=False))
    provider = make_provider(server)
    received: list[StreamEvent] = []
    try:
        with pytest.raises(exc.StreamTruncated):
            await collect_into(provider, received)
    finally:
        await provider.aclose()
    assert text_of(received) == "tok " * 3


@pytest.mark.trio
async def test_a_stream_without_usage_is_estimated(server: LLMServer) -> None:
    """No usage in the events: the end reports estimated counts."""
    server.script(Reply(tokens=2, usage=False))
    provider = make_provider(server)
    try:
        events = await collect(provider)
    finally:
        await provider.aclose()
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert end.usage.source == "estimated"
    assert end.usage.output_tokens == 2

"""The OpenAI-compatible provider against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest
import structlog

from promptactors import _exceptions as exc
from promptactors.providers._http_config import EndpointConfig
from promptactors.providers._http_provider import HTTPProvider
from promptactors.providers._openai import OpenAICompatibleProvider
from promptactors.providers._protocol import (
    ChatMessage,
    Provider,
    ProviderRequest,
    StreamEnd,
    StreamEvent,
    TextDelta,
)
from promptactors.providers._retry import ProviderRetry
from promptactors.providers._transport import H11Transport
from promptactors.testing._llm_server import LLMServer, Reply, serve_llm

API_KEY = "sk-test-5ecret-never-logged"
REQUEST = ProviderRequest(
    model="gpt-test",
    messages=(ChatMessage("system", "Be brief."), ChatMessage("user", "Say hello.")),
    settings={"temperature": 0.2, "provider": "local", "max_tokens": 64},
)
FAST_RETRY = ProviderRetry(max_attempts=3, base_delay=0.01, max_delay=0.05, rng=random.Random(0))


@pytest.fixture
async def server() -> AsyncIterator[LLMServer]:
    async with serve_llm(Reply(tokens=4)) as running:
        yield running


def make_provider(
    server: LLMServer, *, retry: ProviderRetry = FAST_RETRY, **config: object
) -> OpenAICompatibleProvider:
    endpoint = EndpointConfig.model_validate(
        {"base_url": server.base_url, "api_key": API_KEY, "read_timeout": 2.0, **config}
    )
    return OpenAICompatibleProvider(endpoint, name="local", retry=retry)


async def collect(
    provider: OpenAICompatibleProvider, request: ProviderRequest = REQUEST
) -> list[StreamEvent]:
    with anyio.fail_after(10):
        async with provider.stream(request) as stream:
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
async def test_a_stream_yields_text_then_one_end_with_provider_usage(server: LLMServer) -> None:
    """Text arrives as TextDelta batches, then exactly one StreamEnd with reported usage."""
    provider = make_provider(server)
    try:
        events = await collect(provider)
    finally:
        await provider.aclose()
    assert text_of(events) == "tok " * 4
    assert sum(e.chunks for e in events if isinstance(e, TextDelta)) == 4
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert [e for e in events if isinstance(e, StreamEnd)] == [end]
    assert end.usage.source == "provider"
    assert end.usage.output_tokens == 4
    assert end.usage.input_tokens > 0
    assert end.finish_reason == "stop"
    assert end.model == "gpt-test"


@pytest.mark.anyio
async def test_the_request_carries_model_messages_settings_and_stream_options(
    server: LLMServer,
) -> None:
    """The body asks for a stream with usage and passes the prompt's settings through."""
    provider = make_provider(server)
    try:
        await collect(provider)
    finally:
        await provider.aclose()
    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    body = request.body
    assert body["model"] == "gpt-test"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 64
    assert "provider" not in body
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello."},
    ]


@pytest.mark.anyio
async def test_events_from_one_read_are_joined_into_one_delta(server: LLMServer) -> None:
    """Several content chunks delivered in one read become one TextDelta."""
    chunk = b'data: {"choices":[{"index":0,"delta":{"content":"%s"}}]}\n\n'
    server.script(Reply(events=(chunk % b"a" + chunk % b"b" + chunk % b"c" + b"data: [DONE]\n\n",)))
    provider = make_provider(server)
    try:
        events = await collect(provider)
    finally:
        await provider.aclose()
    assert events[0] == TextDelta("abc", 3)
    assert isinstance(events[1], StreamEnd)


@pytest.mark.anyio
async def test_the_parser_tolerates_what_compatible_servers_send(server: LLMServer) -> None:
    """Null/empty content, repeated roles, odd usage chunks, comments and splits are fine."""
    body = (
        b": keep-alive comment\n\n"
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":null}}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}],"x":1}\n\n'
        b'data: {"choices":[{"index":0,"delta":{"content":"Hel"},"logprobs":null}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}\n\n'
        b'data: {"choices":null,"usage":null}\n\n'
        b'data: {"usage":{"prompt_tokens":7,"completion_tokens":2,'
        b'"prompt_tokens_details":{"cached_tokens":3}}}\n\n'
        b'data: {"choices":[],"usage":null,"unknown":{"nested":true}}\n\n'
        b"data: [DONE]\n\n"
    )
    pieces = tuple(body[i : i + 7] for i in range(0, len(body), 7))
    server.script(Reply(events=pieces))
    provider = make_provider(server)
    try:
        events = await collect(provider)
    finally:
        await provider.aclose()
    assert text_of(events) == "Hello"
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert (end.usage.input_tokens, end.usage.output_tokens, end.usage.cached_tokens) == (7, 2, 3)
    assert end.usage.source == "provider"
    assert end.finish_reason == "stop"


@pytest.mark.anyio
async def test_a_stream_without_usage_ends_with_estimated_usage(server: LLMServer) -> None:
    """No usage from the server: the end says the counts were estimated."""
    server.script(Reply(tokens=3, usage=False))
    provider = make_provider(server, stream_usage=False)
    try:
        events = await collect(provider)
    finally:
        await provider.aclose()
    assert "stream_options" not in server.requests[0].body
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert end.usage.source == "estimated"
    assert end.usage.output_tokens == 3  # "tok tok tok " is 12 bytes
    assert end.usage.input_tokens > 0


@pytest.mark.anyio
async def test_an_error_in_the_stream_raises_even_when_done_follows(server: LLMServer) -> None:
    """An in-stream error object is an error; the text before it stays with the caller."""
    server.script(Reply(tokens=5, error_at=2, error_type="server_error"))
    provider = make_provider(server)
    received: list[StreamEvent] = []
    try:
        with pytest.raises(exc.ProviderServerError, match="scripted failure"):
            await collect_into(provider, received)
    finally:
        await provider.aclose()
    assert text_of(received) == "tok tok "
    assert len(server.requests) == 1  # output had started: no retry


@pytest.mark.anyio
async def test_a_stream_without_done_is_truncated_and_keeps_partial_text(
    server: LLMServer,
) -> None:
    """A body that ends before [DONE] raises StreamTruncated after the partial text."""
    server.script(Reply(tokens=3, end=False))
    provider = make_provider(server)
    received: list[StreamEvent] = []
    try:
        with pytest.raises(exc.StreamTruncated):
            await collect_into(provider, received)
    finally:
        await provider.aclose()
    assert text_of(received) == "tok " * 3


@pytest.mark.anyio
async def test_a_connection_dropped_mid_stream_is_truncation(server: LLMServer) -> None:
    """The server vanishing mid-body after output raises StreamTruncated, not retried."""
    server.script(Reply(tokens=5, disconnect_at=2, interval=0.01))
    provider = make_provider(server)
    try:
        with pytest.raises(exc.StreamTruncated):
            await collect(provider)
    finally:
        await provider.aclose()
    assert len(server.requests) == 1


@pytest.mark.anyio
async def test_429_is_retried_honouring_retry_after_ms(server: LLMServer) -> None:
    """A 429 with retry-after-ms and retry-after waits the ms value, then succeeds."""
    server.script(Reply.error(429, retry_after_ms="50", retry_after="30"))
    provider = make_provider(server)
    try:
        start = anyio.current_time()
        events = await collect(provider)
        waited = anyio.current_time() - start
    finally:
        await provider.aclose()
    assert text_of(events) == "tok " * 4
    assert len(server.requests) == 2
    assert 0.05 <= waited < 5


@pytest.mark.anyio
@pytest.mark.parametrize("status", [408, 409, 500, 503, 529])
async def test_transient_statuses_are_retried(server: LLMServer, status: int) -> None:
    """408, 409, 5xx and 529 are retried before the first token."""
    server.script(Reply.error(status), Reply.error(status))
    provider = make_provider(server)
    try:
        events = await collect(provider)
    finally:
        await provider.aclose()
    assert text_of(events) == "tok " * 4
    assert len(server.requests) == 3


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply.error(400), exc.ProviderBadRequest),
        (Reply.error(401), exc.ProviderAuthenticationError),
        (Reply.error(403), exc.ProviderAuthenticationError),
        (Reply.error(404), exc.ProviderNotFound),
        (Reply.error(429, error_type="insufficient_quota"), exc.ProviderRateLimited),
    ],
)
async def test_permanent_failures_are_not_retried(
    server: LLMServer, reply: Reply, expected: type[exc.ProviderError]
) -> None:
    """400/401/403/404 and a spend-limit 429 raise at once, after one request."""
    server.script(reply)
    provider = make_provider(server)
    try:
        with pytest.raises(expected) as caught:
            await collect(provider)
    finally:
        await provider.aclose()
    assert len(server.requests) == 1
    assert caught.value.status_code == reply.status
    assert caught.value.provider == "local"


@pytest.mark.anyio
async def test_retries_stop_after_max_attempts(server: LLMServer) -> None:
    """When every attempt fails, the last error is raised after max_attempts requests."""
    server.script(*[Reply.error(503)] * 3)
    provider = make_provider(server)
    try:
        with pytest.raises(exc.ProviderServerError):
            await collect(provider)
    finally:
        await provider.aclose()
    assert len(server.requests) == 3


@pytest.mark.anyio
async def test_an_in_stream_error_before_any_text_is_retried(server: LLMServer) -> None:
    """An error event before the first token counts as a failed attempt and is retried."""
    server.script(Reply(tokens=3, error_at=0, error_type="server_error"))
    provider = make_provider(server)
    try:
        events = await collect(provider)
    finally:
        await provider.aclose()
    assert text_of(events) == "tok " * 4
    assert len(server.requests) == 2


@pytest.mark.anyio
async def test_a_stall_raises_provider_timeout(server: LLMServer) -> None:
    """A stream that goes silent past the read timeout raises ProviderTimeout."""
    server.script(Reply(tokens=5, stall_at=2))
    provider = make_provider(server, read_timeout=0.2)
    try:
        with pytest.raises(exc.ProviderTimeout):
            await collect(provider)
    finally:
        await provider.aclose()


@pytest.mark.anyio
async def test_a_refused_connection_is_retried_then_raised() -> None:
    """Connection errors are retried, then raised as ProviderConnectionError."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    endpoint = EndpointConfig(base_url=f"http://127.0.0.1:{port}/v1")
    provider = OpenAICompatibleProvider(endpoint, retry=FAST_RETRY, environ={})
    try:
        with pytest.raises(exc.ProviderConnectionError) as caught:
            await collect(provider)
    finally:
        await provider.aclose()
    assert caught.value.retryable


@pytest.mark.anyio
async def test_leaving_the_block_early_closes_the_connection(server: LLMServer) -> None:
    """Breaking out after the first delta closes the unfinished response's connection."""
    server.script(Reply(tokens=40, interval=0.02))
    provider = make_provider(server)
    try:
        with anyio.fail_after(10):
            async with provider.stream(REQUEST) as stream:
                async for event in stream:
                    assert isinstance(event, TextDelta)
                    break
            await server.wait_for_client_disconnects(1)
        transport = provider.client._transport
        assert isinstance(transport, H11Transport)
        assert transport.idle_connections() == 0
    finally:
        await provider.aclose()


@pytest.mark.anyio
async def test_cancellation_mid_stream_closes_the_connection(server: LLMServer) -> None:
    """Cancelling a reader closes its stream and connection; the provider stays usable."""
    server.script(Reply(tokens=5, stall_at=1))
    provider = make_provider(server, max_connections=1)
    try:
        with anyio.move_on_after(0.3) as scope:
            await collect(provider)
        assert scope.cancelled_caught
        events = await collect(provider)
    finally:
        await provider.aclose()
    assert text_of(events) == "tok " * 4
    assert server.connections == 2


@pytest.mark.anyio
async def test_many_concurrent_streams_share_one_pool(server: LLMServer) -> None:
    """Concurrent streams through one provider lose no token and reuse connections."""
    provider = make_provider(server)
    totals: list[int] = []

    async def one() -> None:
        events = await collect(provider)
        totals.append(sum(e.chunks for e in events if isinstance(e, TextDelta)))

    try:
        for _ in range(2):
            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(one)
    finally:
        await provider.aclose()
    assert totals == [4] * 40
    assert server.connections <= 20


@pytest.mark.anyio
async def test_the_api_key_never_reaches_logs_or_errors(
    server: LLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Retries are logged and errors raised without the key, even when the server echoes it."""
    server.script(
        Reply.error(503, message=f"upstream said {API_KEY}"),
        Reply.error(401, message=f"Incorrect API key provided: {API_KEY}"),
    )
    provider = make_provider(server)
    caplog.set_level(logging.DEBUG)
    try:
        with structlog.testing.capture_logs() as logs, pytest.raises(exc.ProviderError) as caught:
            await collect(provider)
    finally:
        await provider.aclose()
    assert any(entry["event"] == "provider.retry" for entry in logs)
    assert API_KEY not in repr(logs)
    assert API_KEY not in caplog.text
    assert API_KEY not in str(caught.value)
    assert API_KEY not in repr(caught.value)
    assert API_KEY not in repr(provider)
    assert API_KEY not in repr(provider.config)
    assert API_KEY not in str(provider.config)


@pytest.mark.trio
async def test_retry_backoff_sleeps_come_from_the_policy(server: LLMServer) -> None:
    """Without retry-after, the wait before a retry is the policy's backoff."""
    server.script(Reply.error(500))
    policy = ProviderRetry(max_attempts=2, base_delay=0.2, jitter=0.0)
    provider = make_provider(server, retry=policy)
    try:
        start = anyio.current_time()
        await collect(provider)
        waited = anyio.current_time() - start
    finally:
        await provider.aclose()
    assert 0.2 <= waited < 5


@pytest.mark.anyio
async def test_a_client_of_your_own_streams_through_its_own_transport(server: LLMServer) -> None:
    """A stock httpx client passed in (proxies, custom auth) is used as it is."""
    endpoint = EndpointConfig(base_url=server.base_url, api_key=API_KEY)  # type: ignore[arg-type]
    async with httpx.AsyncClient() as client:
        provider = OpenAICompatibleProvider(endpoint, client=client, retry=FAST_RETRY)
        assert isinstance(provider, Provider)
        events = await collect(provider)
        await provider.aclose()
        assert not client.is_closed
    assert text_of(events) == "tok " * 4
    assert isinstance(events[-1], StreamEnd)

"""The h11 transport: keep-alive pool, framing, timeouts, closing on early exit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptactors._exceptions import ConfigurationError
from promptactors.providers._framing import BodyDecoder
from promptactors.providers._transport import (
    BODY_EXTENSION,
    H11Transport,
    ResponseBody,
    TransportLimits,
)
from promptactors.testing._llm_server import LLMServer, Reply, serve_llm

pytestmark = pytest.mark.anyio

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def make_client(
    *, limits: TransportLimits | None = None, read: float = 5.0, pool: float = 5.0
) -> httpx.AsyncClient:
    timeout = httpx.Timeout(5.0, read=read, pool=pool)
    return httpx.AsyncClient(transport=H11Transport(limits=limits), timeout=timeout)


def transport_of(client: httpx.AsyncClient) -> H11Transport:
    transport = client._transport
    assert isinstance(transport, H11Transport)
    return transport


def body_of(response: httpx.Response) -> ResponseBody:
    body = response.extensions[BODY_EXTENSION]
    assert isinstance(body, ResponseBody)
    return body


@pytest.fixture
async def server() -> AsyncIterator[LLMServer]:
    async with serve_llm(Reply(tokens=3)) as running:
        yield running


async def read_all(response: httpx.Response) -> None:
    async for _ in body_of(response):
        pass


async def test_sequential_requests_reuse_one_keep_alive_connection(server: LLMServer) -> None:
    """Responses read to their end give their connection back to the pool."""
    async with make_client() as client:
        url = server.base_url + "/chat/completions"
        with anyio.fail_after(10):
            for _ in range(3):
                response = await client.post(url, json=BODY)
                assert response.status_code == 200
                assert b"data: [DONE]" in response.content
        assert server.connections == 1
        assert transport_of(client).idle_connections() == 1


async def test_concurrent_requests_each_get_a_connection(server: LLMServer) -> None:
    """Concurrent requests open one connection each, all pooled afterwards."""
    async with make_client() as client:
        url = server.base_url + "/chat/completions"
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for _ in range(5):
                    tg.start_soon(client.post, url)
        assert server.connections == 5
        assert transport_of(client).idle_connections() == 5


async def test_each_body_step_is_what_one_read_carried(server: LLMServer) -> None:
    """Events written apart in time arrive as separate steps, each whole."""
    server.script(Reply(events=(b"data: a\n\n", b"data: b\n\n"), interval=0.05))
    async with make_client() as client:
        with anyio.fail_after(10):
            async with client.stream("POST", server.base_url + "/chat/completions") as response:
                steps = [chunk async for chunk in body_of(response)]
    assert steps == [b"data: a\n\n", b"data: b\n\n"]


async def test_closing_a_body_early_closes_its_connection(server: LLMServer) -> None:
    """An unfinished response is not pooled: its connection is closed."""
    server.script(Reply(tokens=50, interval=0.02))
    async with make_client() as client:
        url = server.base_url + "/chat/completions"
        with anyio.fail_after(10):
            async with client.stream("POST", url) as response:
                await body_of(response).__anext__()
            await server.wait_for_client_disconnects(1)
            assert transport_of(client).idle_connections() == 0
            await client.post(url)
        assert server.connections == 2


async def test_cancellation_closes_the_connection_and_frees_its_slot(server: LLMServer) -> None:
    """A cancelled read closes the connection; the pool slot is free again."""
    server.script(Reply(tokens=5, stall_at=1))
    async with make_client(limits=TransportLimits(max_connections=1), pool=1.0) as client:
        url = server.base_url + "/chat/completions"
        with anyio.fail_after(10):
            with anyio.move_on_after(0.2) as scope:
                async with client.stream("POST", url) as response:
                    await read_all(response)
            assert scope.cancelled_caught
            assert transport_of(client).idle_connections() == 0
            response = await client.post(url)
        assert response.status_code == 200
        assert server.connections == 2


async def test_a_stalled_stream_raises_read_timeout(server: LLMServer) -> None:
    """No byte within the read timeout raises httpx.ReadTimeout and drops the connection."""
    server.script(Reply(tokens=5, stall_at=2))
    async with make_client(read=0.2) as client:
        with anyio.fail_after(10):
            async with client.stream("POST", server.base_url + "/chat/completions") as response:
                with pytest.raises(httpx.ReadTimeout):
                    await read_all(response)
        assert transport_of(client).idle_connections() == 0


async def test_a_refused_connection_raises_connect_error() -> None:
    """Nobody listening on the port: httpx.ConnectError."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    async with make_client() as client:
        with anyio.fail_after(10), pytest.raises(httpx.ConnectError):
            await client.post(f"http://127.0.0.1:{port}/v1/chat/completions")


async def test_the_pool_limit_queues_then_times_out(server: LLMServer) -> None:
    """With every slot busy, a request waits for the pool timeout, then PoolTimeout."""
    server.script(Reply(tokens=5, stall_at=1))
    async with make_client(limits=TransportLimits(max_connections=1), pool=0.1) as client:
        url = server.base_url + "/chat/completions"
        with anyio.fail_after(10):
            async with client.stream("POST", url):
                with pytest.raises(httpx.PoolTimeout):
                    await client.post(url)


async def test_an_idle_connection_the_server_closed_is_replaced(server: LLMServer) -> None:
    """A pooled connection found closed by the server is discarded, not used."""
    server.script(Reply(raw=b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"))
    async with make_client() as client:
        url = server.base_url + "/chat/completions"
        with anyio.fail_after(10):
            first = await client.post(url)
            assert first.content == b"ok"
            await anyio.sleep(0.05)  # let the server's close arrive
            second = await client.post(url)
        assert second.status_code == 200
        assert server.connections == 2


async def test_a_body_cut_short_raises_remote_protocol_error(server: LLMServer) -> None:
    """The server closing mid-body is a protocol error, not a clean end."""
    server.script(Reply(tokens=5, disconnect_at=2))
    async with make_client() as client:
        with anyio.fail_after(10), pytest.raises(httpx.RemoteProtocolError):
            await client.post(server.base_url + "/chat/completions")


async def test_malformed_chunked_framing_is_a_protocol_error(server: LLMServer) -> None:
    """A chunk size that is not hex raises RemoteProtocolError."""
    server.script(Reply(raw=b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n"))
    async with make_client() as client:
        with anyio.fail_after(10), pytest.raises(httpx.RemoteProtocolError):
            await client.post(server.base_url + "/chat/completions")


async def test_a_connection_close_response_is_read_then_not_pooled(server: LLMServer) -> None:
    """``Connection: close`` bodies are read whole and their connection is closed."""
    server.script(
        Reply(raw=b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 5\r\n\r\nhello")
    )
    async with make_client() as client:
        with anyio.fail_after(10):
            response = await client.post(server.base_url + "/chat/completions")
        assert response.content == b"hello"
        assert transport_of(client).idle_connections() == 0


async def test_a_body_delimited_by_close_is_read_to_the_end(server: LLMServer) -> None:
    """Without length or chunking, the body runs until the server closes."""
    server.script(Reply(raw=b"HTTP/1.1 200 OK\r\n\r\nuntil the end"))
    async with make_client() as client:
        with anyio.fail_after(10):
            response = await client.post(server.base_url + "/chat/completions")
        assert response.content == b"until the end"


async def test_a_closed_transport_refuses_requests(server: LLMServer) -> None:
    """After aclose the transport raises instead of opening connections."""
    client = make_client()
    with anyio.fail_after(10):
        await client.post(server.base_url + "/chat/completions")
        await client.aclose()
        with pytest.raises(httpx.ConnectError):
            await transport_of(client).handle_async_request(
                httpx.Request("GET", server.base_url + "/chat/completions")
            )


def test_limits_reject_nonsense() -> None:
    """Zero connections or negative keep-alive settings raise ConfigurationError."""
    with pytest.raises(ConfigurationError):
        TransportLimits(max_connections=0)
    with pytest.raises(ConfigurationError):
        TransportLimits(max_keepalive_connections=-1)
    with pytest.raises(ConfigurationError):
        TransportLimits(keepalive_expiry=-1.0)


CHUNKED = b'5\r\nhello\r\n1;ext=1\r\n \r\nb\r\n{"json": 1}\r\n0\r\nx-trailer: y\r\n\r\n'


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(CHUNKED)), max_size=len(CHUNKED)))
def test_chunked_decoding_is_the_same_for_any_split(cuts: list[int]) -> None:
    """However a chunked body is split across reads, the payload and the end are the same."""
    decoder = BodyDecoder("chunked", 0, keep_alive=True)
    out: list[bytes] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(CHUNKED)]:
        out += decoder.feed(CHUNKED[start:cut])
        start = cut
    assert b"".join(out) == b'hello {"json": 1}'
    assert decoder.done
    assert decoder.reusable


async def test_an_expired_idle_connection_is_not_reused(server: LLMServer) -> None:
    """Idle connections older than keepalive_expiry are closed instead of reused."""
    limits = TransportLimits(keepalive_expiry=0.0)
    async with make_client(limits=limits) as client:
        url = server.base_url + "/chat/completions"
        with anyio.fail_after(10):
            await client.post(url)
            await anyio.sleep(0.01)
            await client.post(url)
    assert server.connections == 2


async def test_a_request_waits_for_a_free_slot_then_proceeds(server: LLMServer) -> None:
    """With one slot, a second request waits for the first to finish and reuses its socket."""
    server.script(Reply(tokens=3, interval=0.05))
    async with make_client(limits=TransportLimits(max_connections=1)) as client:
        url = server.base_url + "/chat/completions"
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.post, url)
                await anyio.sleep(0.02)
                response = await client.post(url)
        assert response.status_code == 200
    assert server.connections == 1


async def test_a_fresh_connection_closed_without_response_is_an_error(server: LLMServer) -> None:
    """A new connection the server closes before answering is not silently re-sent."""
    server.script(Reply(raw=b""))
    async with make_client() as client:
        with anyio.fail_after(10), pytest.raises(httpx.RemoteProtocolError):
            await client.post(server.base_url + "/chat/completions")
    assert len(server.requests) == 1

"""A scripted, fault-injecting LLM HTTP server on 127.0.0.1 that plays two protocols.

``POST .../chat/completions`` answers as an OpenAI-compatible server (SSE chunks, a usage
chunk, ``[DONE]``); ``POST .../messages`` answers as the Anthropic Messages API
(``message_start`` ... ``message_stop``). What each request gets is a :class:`Reply`:
queued with :meth:`LLMServer.script` (first in, first out), or the server's default.

Faults a reply can inject: an HTTP error status with ``retry-after-ms`` / ``retry-after``
headers (429, 500, 503, 529...), an error event mid-stream (then ``[DONE]`` anyway),
truncation (no end marker), an abrupt disconnect mid-body, a stall (headers, some
chunks, then silence), a slow drip (a delay between chunks), comment/ping lines, and
events written in pieces of a few bytes. Client disconnects are counted.

Real sockets, any free port (``port=0``; the chosen one is :attr:`LLMServer.port`). From a
test::

    async with serve_llm() as server:
        server.script(Reply.error(429, retry_after_ms=10), Reply.stream(tokens=3))
        ...  # point a provider at server.base_url

As a separate process (the providers benchmark)::

    python -m promptactors.testing._llm_server --port 0 --tokens 50

prints ``LISTENING <port>`` on stdout, serves until SIGTERM/SIGINT or ``--lifetime``
seconds. It runs on asyncio there (the leaner loop for a server); in tests on the test's
backend.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections import deque
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.abc
import anyio.lowlevel
import h11
from anyio.abc import SocketAttribute

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

__all__ = ["LLMServer", "RecordedRequest", "Reply", "main", "serve_llm"]

Dialect = Literal["openai", "anthropic"]


@dataclass(frozen=True, slots=True)
class Reply:
    """What the server does with one request.

    ``status`` other than 200 answers with a JSON error body (``error_type``,
    ``error_message``) and ``headers``. A 200 streams ``tokens`` content chunks of
    ``token_text``; then, in order of precedence: ``disconnect_at`` (close the socket
    after that many chunks, mid-body), ``stall_at`` (stop sending after that many chunks,
    keep the connection open), ``error_at`` (an error event after that many chunks,
    followed by the end marker), ``end=False`` (a clean HTTP end without the end marker).
    ``interval`` is the delay before each chunk (slow drip); ``piece_size`` writes each
    event in pieces of that many bytes; ``comments`` adds keep-alive comments (OpenAI) or
    ``ping`` events (Anthropic); ``usage=False`` omits usage.
    """

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    error_type: str = "server_error"
    error_message: str = "scripted failure"
    tokens: int = 5
    token_text: str = "tok "
    interval: float = 0.0
    usage: bool = True
    end: bool = True
    error_at: int | None = None
    stall_at: int | None = None
    disconnect_at: int | None = None
    piece_size: int | None = None
    comments: bool = False
    events: tuple[bytes, ...] | None = None
    raw: bytes | None = None

    @classmethod
    def stream(cls, tokens: int = 5, **options: Any) -> Reply:
        """A streamed 200 reply of ``tokens`` chunks (see the class for ``options``)."""
        return cls(tokens=tokens, **options)

    @classmethod
    def error(
        cls,
        status: int,
        *,
        error_type: str | None = None,
        message: str = "scripted failure",
        retry_after: str | None = None,
        retry_after_ms: str | None = None,
    ) -> Reply:
        """An HTTP error reply, optionally with ``retry-after`` / ``retry-after-ms``."""
        headers: list[tuple[str, str]] = []
        if retry_after is not None:
            headers.append(("retry-after", retry_after))
        if retry_after_ms is not None:
            headers.append(("retry-after-ms", retry_after_ms))
        return cls(
            status=status,
            headers=tuple(headers),
            error_type=error_type or _default_error_type(status),
            error_message=message,
        )


def _default_error_type(status: int) -> str:
    return {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        429: "rate_limit_error",
        529: "overloaded_error",
    }.get(status, "api_error" if status >= 500 else "invalid_request_error")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request the server received (headers lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass(slots=True)
class _Stats:
    connections: int = 0
    client_disconnects: int = 0
    requests: list[RecordedRequest] = field(default_factory=list)


class _Disconnect(Exception):
    """Close the connection now, mid-response (a scripted fault)."""


class LLMServer:
    """The server. Use :func:`serve_llm` (tests) or :func:`main` (a process).

    ``record`` keeps every request for assertions (turn it off under load).
    """

    def __init__(
        self, default: Reply | None = None, *, host: str = "127.0.0.1", record: bool = True
    ) -> None:
        self.default = default or Reply()
        self.host = host
        self.port = 0
        self._record = record
        self._script: deque[Reply] = deque()
        self._stats = _Stats()
        self._disconnected: anyio.Event | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``: the base URL to give a provider."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        return self._stats.requests

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        return self._stats.connections

    @property
    def client_disconnects(self) -> int:
        """Connections the client closed while a response was still being sent."""
        return self._stats.client_disconnects

    async def wait_for_client_disconnects(self, count: int) -> None:
        """Return once at least ``count`` client disconnects were seen (bound it yourself)."""
        while self._stats.client_disconnects < count:
            if self._disconnected is None:
                self._disconnected = anyio.Event()
            await self._disconnected.wait()

    def _count_disconnect(self) -> None:
        self._stats.client_disconnects += 1
        event, self._disconnected = self._disconnected, None
        if event is not None:
            event.set()

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next requests, in order; the default serves the rest."""
        self._script.extend(replies)

    async def serve(
        self, port: int = 0, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen and serve until cancelled; reports the bound port through ``task_status``."""
        listener = await anyio.create_tcp_listener(
            local_host=self.host, local_port=port, reuse_port=False, backlog=4096
        )
        async with listener:
            self.port = listener.extra(SocketAttribute.local_port)
            task_status.started(self.port)
            await listener.serve(self._handle)

    async def _handle(self, stream: anyio.abc.SocketStream) -> None:
        self._stats.connections += 1
        conn = h11.Connection(h11.SERVER)
        try:
            async with stream:
                while await self._one_exchange(stream, conn):
                    conn.start_next_cycle()
        except (_Disconnect, anyio.EndOfStream, h11.ProtocolError):
            pass
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            self._count_disconnect()

    async def _one_exchange(self, stream: anyio.abc.SocketStream, conn: h11.Connection) -> bool:
        """Serve one request; False when the connection should close."""
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await stream.receive(65536)
                except anyio.EndOfStream:
                    data = b""
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:  # ConnectionClosed, PAUSED
                return False
        assert request is not None
        path = request.target.decode("ascii", "replace")
        try:
            payload: Any = json.loads(body) if body else None
        except ValueError:
            payload = None
        if self._record:
            headers = {k.decode().lower(): v.decode("latin-1") for k, v in request.headers}
            self._stats.requests.append(
                RecordedRequest(request.method.decode(), path, headers, payload)
            )
        reply = self._script.popleft() if self._script else self.default
        protocol: Dialect | None = (
            "openai"
            if path.rstrip("/").endswith("/chat/completions")
            else "anthropic"
            if path.rstrip("/").endswith("/messages")
            else None
        )
        if protocol is None:
            reply = Reply.error(404, message=f"no route {path}")
            protocol = "openai"
        if reply.raw is not None:
            await stream.send(reply.raw)
            return False
        if reply.status != 200:
            await self._send_error(stream, conn, reply, protocol)
        else:
            await self._send_stream(stream, conn, reply, protocol, payload)
        return conn.our_state is h11.DONE and conn.their_state is h11.DONE

    async def _send_error(
        self, stream: anyio.abc.SocketStream, conn: h11.Connection, reply: Reply, protocol: Dialect
    ) -> None:
        error = {"type": reply.error_type, "message": reply.error_message}
        if protocol == "anthropic":
            content = json.dumps({"type": "error", "error": error}).encode()
        else:
            content = json.dumps({"error": {**error, "code": None, "param": None}}).encode()
        headers = [
            ("content-type", "application/json"),
            ("content-length", str(len(content))),
            *reply.headers,
        ]
        out = conn.send(h11.Response(status_code=reply.status, headers=headers)) or b""
        out += conn.send(h11.Data(data=content)) or b""
        out += conn.send(h11.EndOfMessage()) or b""
        await stream.send(out)

    async def _send_stream(
        self,
        stream: anyio.abc.SocketStream,
        conn: h11.Connection,
        reply: Reply,
        protocol: Dialect,
        payload: Any,
    ) -> None:
        head = h11.Response(
            status_code=200,
            headers=[
                ("content-type", "text/event-stream"),
                ("cache-control", "no-cache"),
                ("transfer-encoding", "chunked"),
                *reply.headers,
            ],
        )
        await stream.send(conn.send(head) or b"")
        model = str(payload.get("model", "m")) if isinstance(payload, dict) else "m"
        prompt_tokens = _prompt_tokens(payload)
        if reply.events is not None:
            events = list(reply.events)
        elif protocol == "anthropic":
            events = _anthropic_events(reply, model, prompt_tokens)
        else:
            events = _openai_events(reply, model, prompt_tokens, _wants_usage(payload))
        try:
            for chunk_index, event in enumerate(events):
                if event is _STALL:
                    await anyio.sleep_forever()
                if event is _DISCONNECT:
                    raise _Disconnect
                if reply.interval and chunk_index:
                    await anyio.sleep(reply.interval)
                await self._write(stream, conn, event, reply.piece_size)
            await stream.send(conn.send(h11.EndOfMessage()) or b"")
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            self._count_disconnect()
            raise _Disconnect from None

    @staticmethod
    async def _write(
        stream: anyio.abc.SocketStream, conn: h11.Connection, event: bytes, piece: int | None
    ) -> None:
        if piece is None:
            await stream.send(conn.send(h11.Data(data=event)) or b"")
            return
        for start in range(0, len(event), piece):
            await stream.send(conn.send(h11.Data(data=event[start : start + piece])) or b"")
            await anyio.lowlevel.checkpoint()


_STALL = b"<stall>"
_DISCONNECT = b"<disconnect>"


def _prompt_tokens(payload: Any) -> int:
    if not isinstance(payload, dict):
        return 0
    text = "".join(
        str(m.get("content", "")) for m in payload.get("messages") or () if isinstance(m, dict)
    )
    text += str(payload.get("system", ""))
    return len(text) // 4 + 1


def _wants_usage(payload: Any) -> bool:
    options = payload.get("stream_options") if isinstance(payload, dict) else None
    return isinstance(options, dict) and bool(options.get("include_usage"))


def _data(obj: Any, event: str | None = None) -> bytes:
    text = json.dumps(obj, separators=(",", ":"))
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {text}\n\n".encode()


def _fault(reply: Reply, index: int) -> bytes | None:
    """The fault to inject after ``index`` content chunks, if any."""
    if reply.disconnect_at == index:
        return _DISCONNECT
    if reply.stall_at == index:
        return _STALL
    return None


def _openai_events(reply: Reply, model: str, prompt_tokens: int, usage: bool) -> list[bytes]:
    base = {
        "id": "chatcmpl-scripted",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "system_fingerprint": None,
    }
    keepalive = b": keep-alive\n\n" if reply.comments else b""
    out: list[bytes] = []
    first = {
        **base,
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
    }
    out.append(keepalive + _data(first))
    for index in range(reply.tokens):
        fault = _fault(reply, index)
        if fault is not None:
            out.append(fault)
            return out
        if reply.error_at == index:
            error = {"error": {"type": reply.error_type, "message": reply.error_message}}
            out.append(_data(error) + b"data: [DONE]\n\n")
            return out
        chunk = {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": reply.token_text},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
        }
        out.append(keepalive + _data(chunk))
    fault = _fault(reply, reply.tokens)
    if fault is not None:
        out.append(fault)
        return out
    if reply.error_at == reply.tokens:
        error = {"error": {"type": reply.error_type, "message": reply.error_message}}
        out.append(_data(error) + b"data: [DONE]\n\n")
        return out
    last = {
        **base,
        "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
    }
    tail = _data(last)
    if usage and reply.usage:
        counts = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": reply.tokens,
            "total_tokens": prompt_tokens + reply.tokens,
        }
        tail += _data({**base, "choices": [], "usage": counts})
    if reply.end:
        tail += b"data: [DONE]\n\n"
    out.append(tail)
    return out


def _anthropic_events(reply: Reply, model: str, prompt_tokens: int) -> list[bytes]:
    usage_in = {"input_tokens": prompt_tokens, "output_tokens": 1} if reply.usage else {}
    message: dict[str, Any] = {
        "id": "msg_scripted",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": model,
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage_in,
    }
    out = [
        _data({"type": "message_start", "message": message}, "message_start")
        + _data(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            "content_block_start",
        )
    ]
    ping = _data({"type": "ping"}, "ping") if reply.comments else b""
    for index in range(reply.tokens + 1):
        fault = _fault(reply, index)
        if fault is not None:
            out.append(fault)
            return out
        if reply.error_at == index:
            error = {
                "type": "error",
                "error": {"type": reply.error_type, "message": reply.error_message},
            }
            out.append(_data(error, "error"))
            return out
        if index == reply.tokens:
            break
        delta = {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": reply.token_text},
        }
        out.append(ping + _data(delta, "content_block_delta"))
    tail = _data({"type": "content_block_stop", "index": 0}, "content_block_stop")
    message_delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
    }
    if reply.usage:
        message_delta["usage"] = {"output_tokens": reply.tokens}
    tail += _data(message_delta, "message_delta")
    if reply.end:
        tail += _data({"type": "message_stop"}, "message_stop")
    out.append(tail)
    return out


@asynccontextmanager
async def serve_llm(
    default: Reply | None = None, *, port: int = 0, record: bool = True
) -> AsyncIterator[LLMServer]:
    """Run an :class:`LLMServer` for the duration of the block; it stops on exit."""
    server = LLMServer(default, record=record)
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve, port)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m promptactors.testing._llm_server",
        description="A scripted LLM streaming server on 127.0.0.1 (OpenAI and Anthropic).",
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--tokens", type=int, default=50, help="content chunks per stream")
    parser.add_argument("--token-text", default="tok ", help="the text of each chunk")
    parser.add_argument("--interval", type=float, default=0.0, help="seconds between chunks")
    parser.add_argument("--lifetime", type=float, default=600.0, help="stop after this long")
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until SIGTERM/SIGINT or ``--lifetime``; print ``LISTENING <port>`` first."""
    args = _parse_args(argv)
    default = Reply(tokens=args.tokens, token_text=args.token_text, interval=args.interval)

    async def run() -> None:
        server = LLMServer(default, record=False)
        with anyio.move_on_after(args.lifetime):
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async with anyio.create_task_group() as tg:
                    port = await tg.start(server.serve, args.port)
                    print(f"LISTENING {port}", flush=True)
                    async for _ in signals:
                        break
                    tg.cancel_scope.cancel()

    anyio.run(run, backend=args.backend)
    sys.stdout.flush()


if __name__ == "__main__":
    main()

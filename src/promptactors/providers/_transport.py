"""An httpx transport on h11 and anyio streams, with an O(1) keep-alive pool per origin.

httpx stays the client API (base URL, headers, auth, event hooks, timeouts); this
transport replaces httpcore underneath it on the streaming path. httpcore's pool rescans
every connection on each request and release, which at 1,000 concurrent streams cost most
of the client's CPU; here a request takes the most recently used idle connection of its
origin from a deque (or opens one) and gives it back on a clean end of the response.

- HTTP/1.1 only, plain TCP or TLS; no proxies (configure proxies on an httpx client of
  your own and pass that client to the provider instead). h11 (httpx's own parser)
  writes the request and parses the response head; the body's framing (chunked,
  Content-Length, until close) is decoded here, one network read at a time.
- IP-literal hosts (a local vLLM or llama.cpp server) connect with one non-blocking
  ``connect``; host names go through ``anyio.connect_tcp`` (resolver, happy eyeballs).
- Timeouts come from httpx's ``timeout`` request extension: ``connect``, ``read`` (each
  network read), ``write`` and ``pool`` (waiting for a free connection slot).
- A response whose body was not read to its end is closed with its connection, never
  returned to the pool; so is one whose reader was cancelled.
- Works on trio and asyncio (anyio streams); one transport belongs to one event loop.

Errors are httpx's (``ConnectError``, ``ReadTimeout``, ``RemoteProtocolError``...), as
from any httpx transport; the provider adapters translate them into ours.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import select
import socket
import ssl
import time
from collections import deque
from dataclasses import dataclass

import anyio
import anyio.abc
import h11
import httpx
from anyio.abc import SocketAttribute

from promptactors._exceptions import ConfigurationError

from ._framing import BodyDecoder, framing

__all__ = ["BODY_EXTENSION", "H11Transport", "ResponseBody", "TransportLimits"]

_READ_SIZE = 65536
_poll = getattr(select, "poll", None)
BODY_EXTENSION = "promptactors.body"
_Origin = tuple[bytes, bytes, int]


@dataclass(frozen=True, slots=True)
class TransportLimits:
    """Connection limits, per origin (scheme, host, port).

    ``max_connections``: requests in flight at once (more wait, up to the ``pool``
    timeout); None for no limit. ``max_keepalive_connections``: idle connections kept for
    reuse. ``keepalive_expiry``: seconds an idle connection may be reused after.

    Raises ``ConfigurationError`` on negative values.
    """

    max_connections: int | None = 1000
    max_keepalive_connections: int = 1000
    keepalive_expiry: float | None = 30.0

    def __post_init__(self) -> None:
        if self.max_connections is not None and self.max_connections < 1:
            raise ConfigurationError(f"max_connections must be >= 1, got {self.max_connections}")
        if self.max_keepalive_connections < 0:
            raise ConfigurationError("max_keepalive_connections must be >= 0")
        if self.keepalive_expiry is not None and self.keepalive_expiry < 0:
            raise ConfigurationError("keepalive_expiry must be >= 0")


class _Connection:
    __slots__ = ("h11", "idle_since", "stream")

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)
        self.idle_since = 0.0

    def looks_dead(self) -> bool:
        """True when the idle socket is readable or gone: the server closed it (or sent
        bytes nobody asked for). Either way it must not carry another request."""
        try:
            sock = self.stream.extra(SocketAttribute.raw_socket)
        except anyio.TypedAttributeLookupError:  # pragma: no cover - anyio TCP streams have one
            return False
        fd = sock.fileno()
        if fd < 0:
            return True  # asyncio closes the socket itself when it reads the end of file
        if _poll is None:  # pragma: no cover - platforms without poll()
            return bool(select.select([fd], [], [], 0)[0])
        poller = _poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))

    async def close(self) -> None:
        # Forceful: close the socket now, even inside a cancelled scope.
        await anyio.aclose_forcefully(self.stream)


class _OriginPool:
    __slots__ = ("family", "idle", "slots")

    def __init__(self, max_connections: int | None, host: bytes) -> None:
        self.idle: deque[_Connection] = deque()
        self.slots = anyio.Semaphore(max_connections) if max_connections is not None else None
        self.family = _literal_family(host)


def _literal_family(host: bytes) -> int | None:
    """AF_INET/AF_INET6 when ``host`` is an IP address literal, else None."""
    try:
        address = ipaddress.ip_address(host.decode("ascii"))
    except ValueError:
        return None
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET


async def _connect_literal(family: int, host: str, port: int) -> anyio.abc.SocketStream:
    """Connect to an IP literal: one non-blocking connect, no resolver, no happy eyeballs.

    anyio.connect_tcp starts a task group and a task per attempt even for one address;
    for local servers (vLLM, llama.cpp on 127.0.0.1) that was most of a connection's cost.
    """
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        error = sock.connect_ex((host, port))
        if error in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            await anyio.wait_writable(sock)
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            raise OSError(error, os.strerror(error))
        return await anyio.abc.SocketStream.from_socket(sock)
    except BaseException:
        sock.close()
        raise


def _timeouts(request: httpx.Request) -> dict[str, float | None]:
    value = request.extensions.get("timeout")
    return value if isinstance(value, dict) else {}


class H11Transport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` speaking HTTP/1.1 through h11 over anyio sockets.

    ``ssl_context`` is used for ``https`` origins (httpx's default context when None).
    Share one transport (through one ``httpx.AsyncClient``) per endpoint.
    """

    def __init__(
        self,
        *,
        limits: TransportLimits | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._limits = limits or TransportLimits()
        self._ssl_context = ssl_context
        self._pools: dict[_Origin, _OriginPool] = {}
        self._closed = False

    @property
    def limits(self) -> TransportLimits:
        return self._limits

    def idle_connections(self) -> int:
        """How many idle connections the pool holds, over all origins (for tests and stats)."""
        return sum(len(pool.idle) for pool in self._pools.values())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; return the response once its head arrived (body streamed).

        Raises httpx's ``TransportError`` subclasses (``ConnectError``, ``ConnectTimeout``,
        ``ReadError``, ``ReadTimeout``, ``WriteError``, ``PoolTimeout``,
        ``RemoteProtocolError``...).
        """
        if self._closed:
            raise httpx.ConnectError("the transport is closed", request=request)
        url = request.url
        scheme = url.raw_scheme
        if scheme not in (b"http", b"https"):
            raise httpx.UnsupportedProtocol(
                f"unsupported URL scheme {scheme.decode('ascii', 'replace')!r}", request=request
            )
        port = url.port or (443 if scheme == b"https" else 80)
        origin: _Origin = (scheme, url.raw_host, port)
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = _OriginPool(self._limits.max_connections, url.raw_host)
        timeouts = _timeouts(request)
        if pool.slots is not None:
            try:
                pool.slots.acquire_nowait()
            except anyio.WouldBlock:
                try:
                    with anyio.fail_after(timeouts.get("pool")):
                        await pool.slots.acquire()
                except TimeoutError as exc:
                    raise httpx.PoolTimeout("no free connection slot", request=request) from exc
        try:
            body = await request.aread()
            while True:
                conn = await self._take_idle(pool)
                reused = conn is not None
                if conn is None:
                    conn = await self._connect(origin, pool.family, request, timeouts)
                try:
                    head = await self._send_and_read_head(conn, request, body, timeouts)
                except _StaleConnection as exc:
                    await conn.close()
                    if reused:
                        # The server closed an idle connection as we reused it: the request
                        # was not processed, so it is safe to send it on a fresh one.
                        continue
                    raise httpx.RemoteProtocolError(
                        "the server closed the connection without a response", request=request
                    ) from exc
                except BaseException:
                    await conn.close()
                    raise
                break
        except BaseException:
            if pool.slots is not None:
                pool.slots.release()
            raise
        leftover = conn.h11.trailing_data[0]
        body_stream = ResponseBody(
            self, pool, conn, request, timeouts.get("read"), framing(request, head), leftover
        )
        return httpx.Response(
            status_code=head.status_code,
            headers=head.headers.raw_items(),
            stream=body_stream,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": head.reason,
                BODY_EXTENSION: body_stream,
            },
        )

    async def _take_idle(self, pool: _OriginPool) -> _Connection | None:
        idle = pool.idle
        expiry = self._limits.keepalive_expiry
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to have expired
            if expiry is not None and time.monotonic() - conn.idle_since > expiry:
                # Everything left of it is older still.
                stale = [conn, *idle]
                idle.clear()
                for old in stale:
                    await old.close()
                return None
            if conn.looks_dead():
                await conn.close()
                continue
            return conn
        return None

    async def _connect(
        self,
        origin: _Origin,
        family: int | None,
        request: httpx.Request,
        timeouts: dict[str, float | None],
    ) -> _Connection:
        scheme, host, port = origin
        hostname = host.decode("ascii")
        try:
            with anyio.fail_after(timeouts.get("connect")):
                if scheme == b"http" and family is not None:
                    return _Connection(await _connect_literal(family, hostname, port))
                if scheme == b"https":
                    stream: anyio.abc.ByteStream = await anyio.connect_tcp(
                        hostname,
                        port,
                        ssl_context=self._tls_context(),
                        tls_hostname=hostname,
                        tls_standard_compatible=False,
                    )
                else:
                    stream = await anyio.connect_tcp(hostname, port)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connect to {hostname}:{port} timed out") from exc
        except (OSError, anyio.BrokenResourceError, ssl.SSLError) as exc:
            raise httpx.ConnectError(
                f"cannot connect to {hostname}:{port}: {exc}", request=request
            ) from exc
        try:
            sock: socket.socket = stream.extra(SocketAttribute.raw_socket)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (anyio.TypedAttributeLookupError, OSError):  # pragma: no cover - exotic sockets
            pass
        return _Connection(stream)

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            context = httpx.create_ssl_context()
            context.set_alpn_protocols(["http/1.1"])
            self._ssl_context = context
        return self._ssl_context

    async def _send_and_read_head(
        self,
        conn: _Connection,
        request: httpx.Request,
        body: bytes,
        timeouts: dict[str, float | None],
    ) -> h11.Response:
        protocol = conn.h11
        target = request.url.raw_path
        try:
            out = (
                protocol.send(
                    h11.Request(method=request.method, target=target, headers=request.headers.raw)
                )
                or b""
            )
            if body:
                out += protocol.send(h11.Data(data=body)) or b""
            out += protocol.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc), request=request) from exc
        try:
            with anyio.fail_after(timeouts.get("write")):
                await conn.stream.send(out)
        except TimeoutError as exc:
            raise httpx.WriteTimeout("write timed out", request=request) from exc
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise _StaleConnection from exc
        received_any = False
        read_timeout = timeouts.get("read")
        while True:
            try:
                event = protocol.next_event()
            except h11.RemoteProtocolError as exc:
                if not received_any:
                    raise _StaleConnection from exc
                raise httpx.RemoteProtocolError(str(exc), request=request) from exc
            if event is h11.NEED_DATA:
                data = await _receive(conn, request, read_timeout)
                if not data and not received_any:
                    raise _StaleConnection
                received_any = True
                protocol.receive_data(data)
                continue
            if isinstance(event, h11.Response):
                return event
            if isinstance(event, h11.InformationalResponse):
                continue
            raise httpx.RemoteProtocolError(  # pragma: no cover - h11 yields nothing else here
                f"unexpected {type(event).__name__} before the response", request=request
            )

    async def _release(self, pool: _OriginPool, conn: _Connection, *, reusable: bool) -> None:
        """End a response read to its end: pool a reusable connection, close anything else."""
        try:
            if (
                reusable
                and not self._closed
                and len(pool.idle) < self._limits.max_keepalive_connections
            ):
                conn.h11 = h11.Connection(h11.CLIENT)
                conn.idle_since = time.monotonic()
                pool.idle.append(conn)
            else:
                await conn.close()
        finally:
            if pool.slots is not None:
                pool.slots.release()

    async def aclose(self) -> None:
        """Close every idle connection; responses still open close their own. Idempotent."""
        self._closed = True
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            while pool.idle:
                await pool.idle.pop().close()


class _StaleConnection(Exception):
    """A connection died before any byte of the response arrived."""


async def _receive(conn: _Connection, request: httpx.Request, timeout: float | None) -> bytes:
    """One read: its bytes, or b"" at the end of file. Raises httpx read errors."""
    try:
        if timeout is None:
            return await conn.stream.receive(_READ_SIZE)
        # A bare cancel scope: fail_after's extra context-manager layers cost on every read.
        with anyio.CancelScope(deadline=anyio.current_time() + timeout) as scope:
            return await conn.stream.receive(_READ_SIZE)
    except anyio.EndOfStream:
        return b""
    except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
        raise httpx.ReadError(f"connection broken: {exc}", request=request) from exc
    assert scope.cancelled_caught
    raise httpx.ReadTimeout(f"no data for {timeout:g}s", request=request)


class ResponseBody(httpx.AsyncByteStream):
    """A response body read from its connection; each step is what ONE network read carried.

    Found in ``response.extensions["promptactors.body"]`` so that callers can iterate it
    directly (no async generator in between, nothing left for the garbage collector to
    finalize). Closing it before the end closes its connection.
    """

    __slots__ = (
        "_conn",
        "_decoder",
        "_leftover",
        "_pool",
        "_read_timeout",
        "_request",
        "_transport",
    )

    def __init__(
        self,
        transport: H11Transport,
        pool: _OriginPool,
        conn: _Connection,
        request: httpx.Request,
        read_timeout: float | None,
        decoder: BodyDecoder,
        leftover: bytes,
    ) -> None:
        self._transport = transport
        self._pool = pool
        self._conn: _Connection | None = conn
        self._request = request
        self._read_timeout = read_timeout
        self._decoder = decoder
        self._leftover = leftover

    @property
    def finished(self) -> bool:
        """True once the body was read to its end (or closed)."""
        return self._conn is None

    def __aiter__(self) -> ResponseBody:
        return self

    async def __anext__(self) -> bytes:
        """The body bytes of the next network read (never empty).

        Raises ``StopAsyncIteration`` at the end of the body, httpx's ``ReadTimeout``,
        ``ReadError`` or ``RemoteProtocolError`` (the body was cut short or malformed);
        on any error or cancellation the connection is closed.
        """
        conn = self._conn
        if conn is None:
            raise StopAsyncIteration
        decoder = self._decoder
        try:
            while True:
                if decoder.done:
                    self._conn = None
                    await self._transport._release(self._pool, conn, reusable=decoder.reusable)
                    raise StopAsyncIteration
                if self._leftover:
                    data, self._leftover = self._leftover, b""
                else:
                    data = await _receive(conn, self._request, self._read_timeout)
                    if not data:
                        if decoder.mode != "close":
                            raise httpx.RemoteProtocolError(
                                "the server closed the connection before the end of the body",
                                request=self._request,
                            )
                        decoder.done = True
                        continue
                parts = decoder.feed(data)
                if parts:
                    if self._decoder.done:  # (feed may have ended the body)
                        self._conn = None
                        await self._transport._release(self._pool, conn, reusable=decoder.reusable)
                    return parts[0] if len(parts) == 1 else b"".join(parts)
        except ValueError as exc:
            await self.aclose()
            raise httpx.RemoteProtocolError(
                f"malformed response body: {exc}", request=self._request
            ) from exc
        except StopAsyncIteration:
            raise
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Close the body; an unfinished one takes its connection with it. Idempotent."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        # Not read to the end: the connection is in an unknown state and is closed.
        try:
            await conn.close()
        finally:
            if self._pool.slots is not None:
                self._pool.slots.release()

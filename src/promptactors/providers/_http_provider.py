"""What the HTTP adapters share: one client per endpoint, the retry loop, error translation.

An adapter (OpenAI-compatible, Anthropic) supplies two things: how to build the HTTP
request, and a decoder that turns the bytes of one network read into text (and, at the
end, a :class:`StreamEnd`). Everything else is here:

- one ``httpx.AsyncClient`` per provider object (so per endpoint: share the provider),
  on :class:`H11Transport` unless the caller brings a client of their own;
- retries before the first token (HTTP errors, connection errors, in-stream errors,
  truncation), per :class:`ProviderRetry`;
- httpx's exceptions translated into ours, messages scrubbed of the API key;
- leaving the ``async with`` block closes the response (and a connection whose response
  was not read to its end).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import anyio
import httpx
import structlog

from promptactors._exceptions import (
    ConfigurationError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    StreamTruncated,
)

from ._errors import error_from_response, scrub
from ._http_config import EndpointConfig
from ._protocol import ProviderRequest, StreamEnd, StreamEvent, TextDelta
from ._transport import BODY_EXTENSION, H11Transport, ResponseBody

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping
    from types import TracebackType

    from ._retry import ProviderRetry

__all__ = ["HTTPProvider", "StreamDecoder", "json_body"]

_log = structlog.get_logger("promptactors.providers")

# After the end marker, wait this long for the end of the HTTP body so the connection
# can go back to the pool; a server that keeps it open past that loses the connection.
_DRAIN_TIMEOUT = 1.0
_MAX_ERROR_BODY = 64 * 1024


class StreamDecoder(Protocol):
    """Turns the bytes of one network read into text; knows when the stream ended.

    ``feed`` raises ``ProviderError`` subclasses for errors reported inside the stream.
    ``chunks`` is how many content chunks the last ``feed`` joined. ``error`` holds an
    in-stream error found after text in the same read (raised once that text is out).
    """

    finished: bool
    chunks: int
    error: ProviderError | None

    def feed(self, data: bytes) -> str: ...

    def end(self) -> StreamEnd: ...


class HTTPProvider:
    """Base of the HTTP adapters. Safe to share between any number of instances.

    ``config`` describes the endpoint; ``client`` replaces the client built from it (bring
    your own for proxies or custom auth: limits and timeouts are then the client's, and
    its stock transport is used: on trio, a stream left early through it leaves httpx's
    async generators to the garbage collector, which trio reports as a ResourceWarning);
    ``retry`` replaces the policy built from the config; ``environ`` is where the API key
    is looked up when the config has none inline.

    Raises ``ConfigurationError`` when ``config.kind`` is not this adapter's.
    """

    kind: ClassVar[str]

    def __init__(
        self,
        config: EndpointConfig | None = None,
        *,
        name: str | None = None,
        client: httpx.AsyncClient | None = None,
        retry: ProviderRetry | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        config = config if config is not None else EndpointConfig(kind=self.kind)
        if config.kind != self.kind:
            raise ConfigurationError(
                f"{type(self).__name__} needs an endpoint of kind {self.kind!r}, "
                f"got {config.kind!r}"
            )
        self._config = config
        self._name = name or config.kind
        key = config.resolved_api_key(environ)
        self._api_key = key.get_secret_value() if key is not None else None
        self._secrets: tuple[str, ...] = (self._api_key,) if self._api_key else ()
        self._base_url = config.resolved_base_url()
        self._owns_client = client is None
        if client is None:
            client = httpx.AsyncClient(
                transport=H11Transport(limits=config.transport_limits()),
                timeout=config.timeout(),
                follow_redirects=False,
            )
        self._client = client
        self._retry = retry if retry is not None else config.retry_policy()

    @property
    def name(self) -> str:
        """The provider's name in logs, errors and task rows."""
        return self._name

    @property
    def config(self) -> EndpointConfig:
        return self._config

    @property
    def client(self) -> httpx.AsyncClient:
        """The shared httpx client (one per provider, so one pool per endpoint)."""
        return self._client

    @property
    def retry_policy(self) -> ProviderRetry:
        return self._retry

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r}, base_url={self._base_url!r})"

    def stream(self, request: ProviderRequest) -> _EventStream:
        """Open a streamed completion: ``async with provider.stream(req) as events``.

        Raises (from entering the block or from iterating) ``ProviderError`` subclasses:
        HTTP errors by status, ``ProviderTimeout``, ``ProviderConnectionError``,
        ``StreamTruncated``, or the error the stream itself reported.
        """
        return _EventStream(self, request)

    async def aclose(self) -> None:
        """Close the client this provider built (a client passed in stays open). Idempotent."""
        if self._owns_client:
            await self._client.aclose()

    # -- what adapters provide ------------------------------------------------------------

    def build_request(self, request: ProviderRequest) -> httpx.Request:
        """The HTTP request for ``request``."""
        raise NotImplementedError

    def decoder(self, request: ProviderRequest) -> StreamDecoder:
        """A fresh decoder for one attempt's response body."""
        raise NotImplementedError

    # -- helpers for adapters -------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self._base_url}/{path.lstrip('/')}"

    def scrub(self, text: str) -> str:
        """``text`` with the API key masked."""
        return scrub(text, self._secrets)

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    def translate(self, exc: httpx.HTTPError, *, in_body: bool) -> ProviderError:
        """Our exception for an httpx one (``in_body``: raised while reading the stream)."""
        detail = self.scrub(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, httpx.TimeoutException):
            return ProviderTimeout(f"{self._name}: timed out ({detail})", provider=self._name)
        if in_body and isinstance(exc, httpx.RemoteProtocolError):
            return StreamTruncated(
                f"{self._name}: the stream broke off before its end marker ({detail})",
                provider=self._name,
            )
        if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
            return ProviderConnectionError(
                f"{self._name}: connection failed ({detail})", provider=self._name
            )
        return ProviderConnectionError(
            f"{self._name}: request failed ({detail})", provider=self._name, retryable=False
        )


class _ForeignBody:
    """The body of a response from a transport that is not ours: httpx's raw iterator."""

    __slots__ = ("_iterator",)

    def __init__(self, response: httpx.Response) -> None:
        self._iterator = response.aiter_raw()

    async def __anext__(self) -> bytes:
        return await self._iterator.__anext__()

    async def aclose(self) -> None:
        await self._iterator.aclose()  # type: ignore[attr-defined]


class _EventStream:
    """One streamed completion: its own async context manager and async iterator."""

    __slots__ = (
        "_attempt",
        "_body",
        "_decoder",
        "_done",
        "_provider",
        "_request",
        "_response",
        "_started",
    )

    def __init__(self, provider: HTTPProvider, request: ProviderRequest) -> None:
        self._provider = provider
        self._request = request
        self._attempt = 1
        self._response: httpx.Response | None = None
        self._body: ResponseBody | _ForeignBody | None = None
        self._decoder: StreamDecoder | None = None
        self._started = False
        self._done = False

    async def __aenter__(self) -> AsyncIterator[StreamEvent]:
        await self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done = True
        await self._close_response()

    def __aiter__(self) -> _EventStream:
        return self

    async def __anext__(self) -> StreamEvent:
        """The next batch of text, then one ``StreamEnd``; raises ``ProviderError``s."""
        if self._done:
            raise StopAsyncIteration
        while True:
            decoder = self._decoder
            body = self._body
            if decoder is None or body is None:
                await self._open()
                continue
            if decoder.error is not None:
                error, decoder.error = decoder.error, None
                await self._fail(error)
                continue
            if decoder.finished:
                await self._drain(body)
                self._done = True
                return decoder.end()
            try:
                data: bytes | None = await body.__anext__()
            except StopAsyncIteration:
                data = None
            except httpx.HTTPError as exc:
                await self._fail(self._provider.translate(exc, in_body=True), exc)
                continue
            if data is None:
                # (A finished decoder returned its end above.)
                await self._fail(
                    StreamTruncated(
                        f"{self._provider.name}: the stream ended without its end marker",
                        provider=self._provider.name,
                    )
                )
                continue
            try:
                text = decoder.feed(data)
            except ProviderError as exc:
                await self._fail(exc)
                continue
            if text:
                self._started = True
                return TextDelta(text, decoder.chunks)

    async def _open(self) -> None:
        provider = self._provider
        client = provider.client
        while True:
            http_request = provider.build_request(self._request)
            try:
                response = await client.send(http_request, stream=True)
            except httpx.HTTPError as exc:
                await self._fail(provider.translate(exc, in_body=False), exc)
                continue
            if not 200 <= response.status_code < 300:
                try:
                    content = await _read_capped(response)
                except httpx.HTTPError:
                    content = b""
                finally:
                    await response.aclose()
                await self._fail(
                    error_from_response(
                        provider.name,
                        response.status_code,
                        response.headers,
                        content,
                        secrets=provider.secrets,
                    )
                )
                continue
            self._response = response
            body = response.extensions.get(BODY_EXTENSION)
            self._body = body if isinstance(body, ResponseBody) else _ForeignBody(response)
            self._decoder = provider.decoder(self._request)
            return

    async def _fail(self, error: ProviderError, cause: BaseException | None = None) -> None:
        """Retry (return after the backoff) or raise ``error``, closing the response."""
        await self._close_response()
        self._decoder = None
        if cause is not None:
            error.__cause__ = cause
        policy = self._provider.retry_policy
        if not policy.should_retry(error, attempt=self._attempt, output_started=self._started):
            self._done = True
            raise error
        delay = policy.delay(self._attempt, error)
        _log.info(
            "provider.retry",
            provider=self._provider.name,
            attempt=self._attempt,
            delay=round(delay, 3),
            error=type(error).__name__,
            status_code=error.status_code,
        )
        self._attempt += 1
        await anyio.sleep(delay)

    async def _drain(self, body: ResponseBody | _ForeignBody) -> None:
        # Read the rest of the body (normally just the chunked terminator) so the
        # connection can be reused, and so that a foreign transport's async generators
        # finish instead of being left to the garbage collector; give up after a short wait.
        if isinstance(body, ResponseBody) and body.finished:
            await self._close_response()
            return
        with anyio.move_on_after(_DRAIN_TIMEOUT):
            try:
                while True:
                    await body.__anext__()
            except (StopAsyncIteration, httpx.HTTPError):
                pass
        await self._close_response()

    async def _close_response(self) -> None:
        response, body = self._response, self._body
        self._response = self._body = None
        if isinstance(body, _ForeignBody):
            await body.aclose()
        if response is not None:
            await response.aclose()


async def _read_capped(response: httpx.Response) -> bytes:
    """An error body, up to a cap when it comes through our transport."""
    body = response.extensions.get(BODY_EXTENSION)
    if not isinstance(body, ResponseBody):
        return await response.aread()
    parts: list[bytes] = []
    size = 0
    async for chunk in body:
        parts.append(chunk)
        size += len(chunk)
        if size >= _MAX_ERROR_BODY:
            break
    return b"".join(parts)


def json_body(payload: Mapping[str, Any]) -> bytes:
    """Compact JSON for a request body."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

"""The Anthropic Messages streaming adapter.

It POSTs ``{base_url}/messages`` with ``stream: true`` and reads the named events:
``message_start`` (input usage), ``content_block_start`` / ``content_block_delta``
(``text_delta``) / ``content_block_stop``, ``message_delta`` (stop reason, cumulative
output usage), ``message_stop`` (the end marker) and ``ping``. An ``event: error``
mid-stream is raised, classified by ``error.type`` (``overloaded_error`` is
``ProviderOverloaded``...). A body that ends before ``message_stop`` raises
``StreamTruncated``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from promptactors._exceptions import ProviderError, ProviderServerError

from ._errors import error_from_payload
from ._estimate import estimate_request_tokens, estimate_tokens
from ._http_provider import HTTPProvider, json_body
from ._protocol import ProviderRequest, StreamEnd, Usage
from ._sse import SSEParser

if TYPE_CHECKING:
    import httpx

# raw_decode skips json.loads' type checks and end-of-input regex: ~1 us per chunk.
_decode = json.JSONDecoder().raw_decode

__all__ = ["AnthropicProvider"]

_RESERVED = frozenset({"provider", "model", "messages", "system", "stream", "stop"})


class AnthropicProvider(HTTPProvider):
    """Streams messages from the Anthropic API (or a server speaking its protocol).

    System messages are joined into the ``system`` field; ``max_tokens`` defaults to the
    endpoint's ``default_max_tokens``; a ``stop`` setting becomes ``stop_sequences``.
    See :class:`HTTPProvider` for the constructor and the errors raised.
    """

    kind = "anthropic"

    def build_request(self, request: ProviderRequest) -> httpx.Request:
        """``POST /messages`` with ``stream: true``."""
        settings = request.settings
        payload: dict[str, Any] = {
            key: value for key, value in settings.items() if key not in _RESERVED
        }
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        payload["model"] = request.model
        payload["messages"] = [
            {"role": m.role, "content": m.content} for m in request.messages if m.role != "system"
        ]
        if system:
            payload["system"] = system
        payload.setdefault("max_tokens", self.config.default_max_tokens)
        stop = settings.get("stop")
        if stop:
            payload["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        payload["stream"] = True
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream",
            "anthropic-version": self.config.anthropic_version,
            **self.config.headers,
        }
        if self._api_key:
            headers["x-api-key"] = self._api_key
        return self.client.build_request(
            "POST", self.url("messages"), content=json_body(payload), headers=headers
        )

    def decoder(self, request: ProviderRequest) -> MessagesDecoder:
        """A decoder for one response body."""
        return MessagesDecoder(self.name, request, self.secrets)


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


class MessagesDecoder:
    """Decodes an Anthropic Messages SSE body, one network read at a time."""

    __slots__ = (
        "_cache_read",
        "_cache_write",
        "_input",
        "_model",
        "_output",
        "_parser",
        "_parts",
        "_provider",
        "_reported",
        "_request",
        "_secrets",
        "_stop_reason",
        "chunks",
        "error",
        "finished",
    )

    def __init__(
        self, provider: str, request: ProviderRequest, secrets: tuple[str, ...] = ()
    ) -> None:
        self._provider = provider
        self._request = request
        self._secrets = secrets
        self._parser = SSEParser()
        self._parts: list[str] = []
        self._input = self._output = self._cache_read = self._cache_write = 0
        self._reported = False
        self._stop_reason: str | None = None
        self._model: str | None = None
        self.finished = False
        self.chunks = 0
        self.error: ProviderError | None = None

    def feed(self, data: bytes) -> str:
        """The text of every ``text_delta`` completed by ``data``, joined.

        Raises the classified ``ProviderError`` for an ``error`` event (when text came
        before it in the same read, that text is returned and the error left in
        ``error``), and ``ProviderServerError`` for an event that is not JSON.
        """
        texts: list[str] = []
        for event in self._parser.feed(data):
            if self.finished:
                continue
            try:
                payload = _decode(event.data)[0]
            except ValueError as exc:
                raise ProviderServerError(
                    f"{self._provider}: an event in the stream is not JSON: {event.data[:80]!r}",
                    provider=self._provider,
                ) from exc
            if type(payload) is not dict:
                continue
            kind = payload.get("type") or event.event
            if kind == "content_block_delta":
                delta = payload.get("delta")
                if type(delta) is dict and delta.get("type") == "text_delta":
                    text = delta.get("text")
                    if text:
                        texts.append(text)
            elif kind == "message_delta":
                delta = payload.get("delta")
                if type(delta) is dict and delta.get("stop_reason"):
                    self._stop_reason = delta["stop_reason"]
                self._take_usage(payload.get("usage"))
            elif kind == "message_start":
                message = payload.get("message")
                if type(message) is dict:
                    model = message.get("model")
                    self._model = model if isinstance(model, str) else None
                    self._take_usage(message.get("usage"))
            elif kind == "content_block_start":
                block = payload.get("content_block")
                if type(block) is dict and block.get("type") == "text" and block.get("text"):
                    texts.append(block["text"])
            elif kind == "message_stop":
                self.finished = True
            elif kind == "error" or event.event == "error":
                error = error_from_payload(self._provider, payload, secrets=self._secrets)
                if not texts:
                    raise error
                self.error = error  # raised after the text before it is delivered
                break
            # ping, content_block_stop and unknown events carry nothing we need.
        count = self.chunks = len(texts)
        if not count:
            return ""
        text = texts[0] if count == 1 else "".join(texts)
        self._parts.append(text)
        return text

    def _take_usage(self, usage: Any) -> None:
        # Counts are cumulative: a later event's value replaces an earlier one.
        if type(usage) is not dict:
            return
        if "input_tokens" in usage:
            self._input = _int(usage["input_tokens"])
            self._reported = True
        if "output_tokens" in usage:
            self._output = _int(usage["output_tokens"])
            self._reported = True
        if "cache_read_input_tokens" in usage:
            self._cache_read = _int(usage["cache_read_input_tokens"])
        if "cache_creation_input_tokens" in usage:
            self._cache_write = _int(usage["cache_creation_input_tokens"])

    def end(self) -> StreamEnd:
        """The stream's end: usage as reported (or estimated), stop reason, model."""
        if self._reported:
            # Anthropic's input_tokens excludes cache reads and writes: count them all in.
            usage = Usage(
                input_tokens=self._input + self._cache_read + self._cache_write,
                output_tokens=self._output,
                cached_tokens=self._cache_read,
                source="provider",
            )
        else:
            usage = Usage(
                input_tokens=estimate_request_tokens(self._request.messages),
                output_tokens=estimate_tokens("".join(self._parts)),
                source="estimated",
            )
        return StreamEnd(usage=usage, finish_reason=self._stop_reason, model=self._model)

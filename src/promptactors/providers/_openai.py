"""The OpenAI-compatible chat completions adapter (OpenAI, vLLM, llama.cpp, Ollama, LM Studio).

It POSTs ``{base_url}/chat/completions`` with ``stream: true`` (and
``stream_options.include_usage`` unless the endpoint says not to) and reads the
server-sent events: ``data: {json}`` chunks, then ``data: [DONE]``.

The decoder is lenient where servers differ and strict where it matters:

- tolerated: ``content`` null or ``""``, a repeated ``role``, a usage chunk whose
  ``choices`` is empty, null or missing, unknown fields, ``:`` comment lines, events split
  anywhere across reads;
- an ``{"error": ...}`` object (or an ``event: error``) in the stream is raised even when
  ``[DONE]`` follows; a body that ends without ``[DONE]`` raises ``StreamTruncated`` (the
  text already yielded stays with the caller).

No model object is built per chunk: ``json.loads`` and dictionary lookups only.
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

__all__ = ["OpenAICompatibleProvider"]

# Settings that are ours (or that we set), never passed through to the API.
_RESERVED = frozenset({"provider", "model", "messages", "stream", "stream_options"})


class OpenAICompatibleProvider(HTTPProvider):
    """Streams chat completions from any OpenAI-compatible server.

    Prompt ``settings`` other than ``provider``/``model`` are sent as request fields
    (``temperature``, ``max_tokens``, ``stop``...). See :class:`HTTPProvider` for the
    constructor and the errors raised.
    """

    kind = "openai"

    def build_request(self, request: ProviderRequest) -> httpx.Request:
        """``POST /chat/completions`` with ``stream: true``."""
        payload: dict[str, Any] = {
            key: value for key, value in request.settings.items() if key not in _RESERVED
        }
        payload["model"] = request.model
        payload["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
        payload["stream"] = True
        if self.config.stream_usage:
            payload["stream_options"] = {"include_usage": True}
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream",
            **self.config.headers,
        }
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        return self.client.build_request(
            "POST", self.url("chat/completions"), content=json_body(payload), headers=headers
        )

    def decoder(self, request: ProviderRequest) -> ChatCompletionsDecoder:
        """A decoder for one response body."""
        return ChatCompletionsDecoder(self.name, request, self.secrets)


class ChatCompletionsDecoder:
    """Decodes an OpenAI-compatible SSE body, one network read at a time."""

    __slots__ = (
        "_finish_reason",
        "_model",
        "_parser",
        "_parts",
        "_provider",
        "_request",
        "_secrets",
        "_usage",
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
        self._usage: Any = None
        self._finish_reason: str | None = None
        self._model: str | None = None
        self.finished = False
        self.chunks = 0
        self.error: ProviderError | None = None

    def feed(self, data: bytes) -> str:
        """The text of every content chunk completed by ``data``, joined.

        Raises the classified ``ProviderError`` for an error in the stream (when text came
        before it in the same read, that text is returned and the error left in
        ``error``), and ``ProviderServerError`` for an event that is not JSON.
        """
        events = self._parser.feed(data)
        texts: list[str] = []
        for event in events:
            payload = event.data
            if payload == "[DONE]":
                self.finished = True
                continue
            if self.finished:
                continue  # nothing after [DONE] counts
            try:
                chunk = _decode(payload)[0]
            except ValueError as exc:
                raise ProviderServerError(
                    f"{self._provider}: an event in the stream is not JSON: {payload[:80]!r}",
                    provider=self._provider,
                ) from exc
            if type(chunk) is not dict:
                continue
            if event.event == "error" or chunk.get("error"):
                error = error_from_payload(self._provider, chunk, secrets=self._secrets)
                if not texts:
                    raise error
                self.error = error  # raised after the text before it is delivered
                break
            choices = chunk.get("choices")
            if choices:
                for choice in choices:
                    if type(choice) is not dict or choice.get("index", 0) != 0:
                        continue
                    delta = choice.get("delta")
                    if delta:
                        content = delta.get("content")
                        if content:
                            texts.append(content)
                    reason = choice.get("finish_reason")
                    if reason:
                        self._finish_reason = reason
            usage = chunk.get("usage")
            if usage:
                self._usage = usage
            model = chunk.get("model")
            if model:
                self._model = model
        count = self.chunks = len(texts)
        if not count:
            return ""
        text = texts[0] if count == 1 else "".join(texts)
        self._parts.append(text)
        return text

    def end(self) -> StreamEnd:
        """The stream's end: usage as reported (or estimated), finish reason, model."""
        return StreamEnd(
            usage=self._usage_or_estimate(),
            finish_reason=self._finish_reason,
            model=self._model,
        )

    def _usage_or_estimate(self) -> Usage:
        usage = self._usage
        if isinstance(usage, dict):
            prompt = usage.get("prompt_tokens")
            completion = usage.get("completion_tokens")
            if isinstance(prompt, int) and isinstance(completion, int):
                details = usage.get("prompt_tokens_details")
                cached = details.get("cached_tokens") if isinstance(details, dict) else None
                return Usage(
                    input_tokens=prompt,
                    output_tokens=completion,
                    cached_tokens=cached if isinstance(cached, int) else 0,
                    source="provider",
                )
        return Usage(
            input_tokens=estimate_request_tokens(self._request.messages),
            output_tokens=estimate_tokens("".join(self._parts)),
            source="estimated",
        )

"""The provider port: one protocol every LLM adapter implements.

A provider turns a :class:`ProviderRequest` into a stream of events. The stream is opened
as an async context manager so that leaving the block (normally, by error or by
cancellation) always closes the underlying connection::

    async with provider.stream(request) as events:
        async for event in events:
            if isinstance(event, TextDelta):
                ...          # one batch: everything one network read (or one tick) yielded
            else:            # StreamEnd, always last
                ...

A provider yields what ONE read produced as ONE :class:`TextDelta` (never one event per
token), and ends with exactly one :class:`StreamEnd`. Errors are raised as subclasses of
:class:`promptactors.ProviderError`; partial text already yielded stays with the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping
    from contextlib import AbstractAsyncContextManager

__all__ = [
    "ChatMessage",
    "Provider",
    "ProviderRequest",
    "StreamEnd",
    "StreamEvent",
    "TextDelta",
    "Usage",
]

Role: TypeAlias = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message sent to the model, with its variables already resolved."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    """What to ask the model.

    ``settings`` carries the prompt's model settings (temperature, max_tokens, top_p, stop,
    provider-specific keys...) and is passed through by adapters that understand them.
    ``request_id`` is the task id: adapters may send it as an idempotency key.
    """

    model: str
    messages: tuple[ChatMessage, ...]
    settings: Mapping[str, Any] = field(default_factory=dict)
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Text received in one read. ``chunks`` is how many content chunks it joined."""

    text: str
    chunks: int = 1


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of one completion. ``cached_tokens`` are counted within
    ``input_tokens`` (the part served from the provider's prompt cache). ``source`` says
    whether the provider reported the figures or they were estimated locally."""

    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    source: Literal["provider", "estimated"] = "provider"

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The last event of every successful stream."""

    usage: Usage
    finish_reason: str | None = None
    model: str | None = None


StreamEvent: TypeAlias = TextDelta | StreamEnd


@runtime_checkable
class Provider(Protocol):
    """An LLM backend. Implementations must be safe to share between many instances."""

    @property
    def name(self) -> str:
        """A short name used in logs, errors and the ``ai_tasks`` rows (``openai``...)."""
        ...

    def stream(
        self, request: ProviderRequest
    ) -> AbstractAsyncContextManager[AsyncIterator[StreamEvent]]:
        """Open a streamed completion. Raises ``ProviderError`` subclasses."""
        ...

    async def aclose(self) -> None:
        """Release pooled connections and background tasks. Idempotent."""
        ...

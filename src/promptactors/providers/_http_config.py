"""Configuration of one HTTP LLM endpoint: where, which key, which limits and timeouts.

An endpoint is data (a pydantic model), loadable from the runtime settings or YAML. The
API key is a ``SecretStr``: its ``repr`` and ``str`` are masked, and it is read from the
environment (``api_key_env``) when not given inline, so config files need not hold it.
"""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ._retry import ProviderRetry
from ._transport import TransportLimits

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["EndpointConfig"]

_DEFAULT_BASE_URL = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com/v1",
}
_DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


class EndpointConfig(BaseModel):
    """One HTTP endpoint speaking ``kind``'s protocol.

    ``kind="openai"`` is any OpenAI-compatible chat completions server (OpenAI, vLLM,
    llama.cpp server, Ollama, LM Studio...); ``kind="anthropic"`` the Anthropic Messages
    API. ``base_url`` defaults to the vendor's; ``api_key`` falls back to the environment
    variable ``api_key_env`` (``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` by default); a
    local server may need no key at all.

    Limits are per origin and shared by every instance using the endpoint. Timeouts are
    seconds; ``read_timeout`` bounds each network read (a stalled stream), not the whole
    completion. Retry settings build the :class:`ProviderRetry`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["openai", "anthropic"] = "openai"
    base_url: str | None = None
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    default_model: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    # OpenAI-compatible: ask for a final usage chunk (some old servers reject the option).
    stream_usage: bool = True
    # Anthropic: the API version header, and max_tokens when the prompt sets none.
    anthropic_version: str = "2023-06-01"
    default_max_tokens: int = Field(default=4096, ge=1)

    max_connections: int | None = Field(default=1000, ge=1)
    max_keepalive_connections: int = Field(default=1000, ge=0)
    keepalive_expiry: float | None = Field(default=30.0, ge=0)

    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=120.0, gt=0)
    write_timeout: float = Field(default=30.0, gt=0)
    pool_timeout: float = Field(default=60.0, gt=0)

    max_attempts: int = Field(default=3, ge=1)
    backoff_base: float = Field(default=0.5, ge=0)
    backoff_max: float = Field(default=8.0, ge=0)
    max_retry_after: float = Field(default=60.0, ge=0)

    def resolved_base_url(self) -> str:
        """``base_url``, or the vendor's default for ``kind``, without a trailing slash."""
        return (self.base_url or _DEFAULT_BASE_URL[self.kind]).rstrip("/")

    def resolved_api_key(self, environ: Mapping[str, str] | None = None) -> SecretStr | None:
        """The inline key, else the one in the environment variable, else None."""
        if self.api_key is not None:
            return self.api_key
        env = environ if environ is not None else os.environ
        value = env.get(self.api_key_env or _DEFAULT_KEY_ENV[self.kind])
        return SecretStr(value) if value else None

    def transport_limits(self) -> TransportLimits:
        """The connection limits for :class:`H11Transport`."""
        return TransportLimits(
            max_connections=self.max_connections,
            max_keepalive_connections=self.max_keepalive_connections,
            keepalive_expiry=self.keepalive_expiry,
        )

    def timeout(self) -> httpx.Timeout:
        """The httpx timeout configuration (connect, read, write, pool)."""
        return httpx.Timeout(
            connect=self.connect_timeout,
            read=self.read_timeout,
            write=self.write_timeout,
            pool=self.pool_timeout,
        )

    def retry_policy(self, rng: random.Random | None = None) -> ProviderRetry:
        """The retry policy these settings describe; ``rng`` makes the jitter deterministic."""
        return ProviderRetry(
            max_attempts=self.max_attempts,
            base_delay=self.backoff_base,
            max_delay=self.backoff_max,
            max_retry_after=self.max_retry_after,
            rng=rng or random.Random(),
        )

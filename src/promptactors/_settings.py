"""Runtime settings: one pydantic settings model (env vars ``PROMPTACTORS_*``, or code)."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["RuntimeSettings"]


class RuntimeSettings(BaseSettings):
    """How a runtime is set up. Every field can come from ``PROMPTACTORS_<FIELD>``.

    The defaults need nothing installed: an SQLite file and the simulated provider.
    Invalid values raise ``pydantic.ValidationError`` when built from code; the runtime
    turns them into ``ConfigurationError`` naming the field.
    """

    model_config = SettingsConfigDict(env_prefix="PROMPTACTORS_", extra="forbid")

    database_url: str = Field(
        "sqlite:///promptactors.db",
        description="sqlite:///path.db, sqlite:///:memory:, or postgresql://user@host/db",
    )
    provider: str = Field("simulated", description="the provider prompts without one use")
    model: str | None = Field(None, description="the model prompts without one use")
    endpoints: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="named HTTP endpoints (see providers.EndpointConfig), e.g. "
        '{"openai": {"kind": "openai", "default_model": "gpt-4o-mini"}}',
    )
    prices: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="extra or overriding model prices, USD per 1M tokens: "
        '{"my-model": {"input": 0.1, "output": 0.4}}',
    )

    simulated_tokens: int = Field(50, ge=1, le=100_000)
    simulated_latency: float = Field(0.02, ge=0.0, le=60.0)
    simulated_seed: int = 0

    executor_id: str = Field(default_factory=lambda: f"executor-{uuid.uuid4().hex[:12]}")
    max_instances: int | None = Field(None, ge=1)
    turn_timeout: float = Field(600.0, gt=0)
    max_attempts: int = Field(3, ge=1, le=20)
    retry_backoff: float = Field(0.25, ge=0.0)
    journal: bool = True
    scoped_ttl: float = Field(300.0, ge=0.0)
    recover_on_start: bool = True
    stale_after: float = Field(60.0, gt=0)
    heartbeat_interval: float = Field(10.0, gt=0)
    instance_restarts: int = Field(1000, ge=0, description="restarts allowed per period")
    instance_restart_period: float = Field(10.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

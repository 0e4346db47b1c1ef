"""Runtime settings: one pydantic settings model, and where its values come from.

In code, ``RuntimeSettings(...)`` takes keyword arguments over ``PROMPTACTORS_*``
environment variables. :meth:`RuntimeSettings.load` (what the command line uses) reads
every source with one precedence, highest first:

1. explicit values (the command's flags),
2. ``PROMPTACTORS_<FIELD>`` environment variables,
3. a TOML config file: the one given, else ``PROMPTACTORS_CONFIG``, else
   ``./promptactors.toml`` when it exists,
4. the defaults.

Nothing is silently ignored there: an unknown key in the file or an unknown
``PROMPTACTORS_*`` variable (other than :data:`OTHER_VARIABLES`) is an error naming it with
the closest valid name, and a malformed value names its variable or key.
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ._exceptions import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["CONFIG_FILE", "ENV_PREFIX", "OTHER_VARIABLES", "RuntimeSettings"]

ENV_PREFIX = "PROMPTACTORS_"
#: The config file found in the current directory when none is named.
CONFIG_FILE = "promptactors.toml"
#: ``PROMPTACTORS_*`` variables that are not settings, and what reads them. Any other
#: ``PROMPTACTORS_*`` name that is not a setting is refused as a probable misspelling.
OTHER_VARIABLES: Mapping[str, str] = {
    "PROMPTACTORS_CONFIG": "the config file to read instead of ./promptactors.toml",
    "PROMPTACTORS_DEBUG": "1: the command line shows the traceback of an unexpected error",
    "PROMPTACTORS_TEST_POSTGRES_URL": "the test suite: the PostgreSQL server to test against",
    "PROMPTACTORS_REQUIRE_POSTGRES": "the test suite: 1 fails instead of skipping without it",
    "PROMPTACTORS_REQUIRE_CHROMIUM": "the test suite: 1 fails instead of skipping without it",
}

#: Fields whose environment value is JSON (in the config file they are TOML tables).
_JSON_FIELDS = frozenset({"endpoints", "prices"})


class RuntimeSettings(BaseSettings):
    """How a runtime is set up. Every field can come from ``PROMPTACTORS_<FIELD>``.

    The defaults need nothing installed: an SQLite file and the simulated provider.
    Invalid values and unknown keyword arguments raise ``pydantic.ValidationError`` when
    built from code (an unknown one is named with the closest valid name); the runtime
    turns them into ``ConfigurationError`` naming the field. :meth:`load` reads a config
    file too and raises ``ConfigurationError`` itself.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    database_url: str = Field(
        "sqlite:///promptactors.db",
        description="sqlite:///path.db, sqlite:///:memory:, postgresql://user@host/db, or "
        "memory:// (in memory, for tests and simulation: nothing persisted)",
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
    turn_timeout: float = Field(
        600.0,
        gt=0,
        description="seconds a caller without its own timeout waits for a turn, counted "
        "from the turn's admission (queue time under overload does not count)",
    )
    # 1,000: past it the CPU bounds throughput (measured, see the README), and that many
    # turns writing at once fit the run tracker's mailbox.
    max_active_turns: int = Field(
        1000,
        ge=1,
        description="turn attempts streaming or committing at once across the runtime; "
        "more are accepted and queued first come first served (admission control)",
    )
    max_attempts: int = Field(3, ge=1, le=20)
    retry_backoff: float = Field(0.25, ge=0.0)
    turn_rows_timeout: float = Field(
        30.0,
        gt=0,
        description="seconds a turn waits for its run and task rows to commit before the "
        "provider is called; past it the turn fails with StoreUnavailable",
    )
    journal: bool = True
    scoped_ttl: float = Field(300.0, ge=0.0)
    recover_on_start: bool = True
    stale_after: float = Field(60.0, gt=0)
    heartbeat_interval: float = Field(10.0, gt=0)
    lease_seconds: float = Field(
        30.0, gt=0, le=86_400, description="how long a run's lease outlives its last renewal"
    )
    reclaim_interval: float = Field(
        5.0, gt=0, description="seconds between two reclaims of expired leases"
    )
    recovery: Literal["interrupt", "resume"] = Field(
        "interrupt",
        description="runs taken over from a dead executor: interrupted, or kept running"
        " (their task interrupted) for the application to continue by run id",
    )
    recovery_attempts: int = Field(
        3, ge=0, description="takeovers of a run before it is interrupted"
    )
    group: str | None = Field(None, description="the executor group this runtime joins")
    instance_restarts: int = Field(1000, ge=0, description="restarts allowed per period")
    instance_restart_period: float = Field(10.0, gt=0)

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [key for key in data if key not in cls.model_fields]
            if unknown:
                raise ValueError(
                    "; ".join(
                        _unknown(f"setting {key!r}", key, cls.model_fields) for key in unknown
                    )
                )
        return data

    @field_validator("database_url")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @classmethod
    def load(cls, config_file: str | os.PathLike[str] | None = None, **values: Any) -> Self:
        """Settings from ``values`` > environment > config file > defaults (module docstring).

        ``values`` that are None count as not given. Raises ``ConfigurationError`` in one
        line naming the variable, the file key or the setting at fault: unknown names (with
        the closest valid one), malformed TOML or JSON, invalid values, a named config file
        that is missing.
        """
        path = _config_path(config_file, os.environ)
        from_file = _read_config(path) if path is not None else {}
        from_env = _read_environment(os.environ)
        given = {key: value for key, value in values.items() if value is not None}
        where: dict[str, str] = {key: f"config file {str(path)!r}" for key in from_file}
        where.update({key: _env_name(key) for key in from_env})
        where.update(dict.fromkeys(given, "the command line"))
        try:
            settings = cls(**{**from_file, **from_env, **given})
        except ValidationError as exc:
            raise ConfigurationError(_explain(exc, where)) from exc
        settings._sources = where
        return settings

    def source_of(self, name: str) -> str:
        """Where a setting loaded by :meth:`load` came from: ``the command line``,
        ``PROMPTACTORS_<NAME>``, ``config file '...'``, or ``the default``."""
        return self._sources.get(name, "the default")


def _env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def _unknown(what: str, name: str, known: Iterable[str], *, quote: bool = True) -> str:
    """``unknown <what>``, with the closest known name when one is close."""
    close = difflib.get_close_matches(name, list(known), n=1)
    if not close:
        return f"unknown {what}"
    suggestion = repr(close[0]) if quote else close[0]
    return f"unknown {what} (did you mean {suggestion}?)"


def _config_path(given: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path | None:
    """The config file to read, if any; a file named by option or variable must exist."""
    if given is not None:
        path, named_by = Path(given), "--config"
    elif env.get("PROMPTACTORS_CONFIG"):
        path, named_by = Path(env["PROMPTACTORS_CONFIG"]), "PROMPTACTORS_CONFIG"
    elif Path(CONFIG_FILE).is_file():
        return Path(CONFIG_FILE)
    else:
        return None
    if not path.exists():
        raise ConfigurationError(f"config file {str(path)!r} (from {named_by}) does not exist")
    if not path.is_file():
        raise ConfigurationError(f"config file {str(path)!r} (from {named_by}) is not a file")
    return path


def _read_config(path: Path) -> dict[str, Any]:
    """The top-level table of a TOML config file, every key a setting."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(
            f"config file {str(path)!r} cannot be read: {exc.strerror or exc}"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"config file {str(path)!r} is not UTF-8 text: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"config file {str(path)!r} is not valid TOML: {exc}") from exc
    fields = RuntimeSettings.model_fields
    unknown = [key for key in data if key not in fields]
    if unknown:
        raise ConfigurationError(
            f"config file {str(path)!r}: "
            + "; ".join(_unknown(f"key {key!r}", key, fields) for key in unknown)
        )
    return data


def _read_environment(env: Mapping[str, str]) -> dict[str, Any]:
    """The settings among ``PROMPTACTORS_*`` variables; JSON fields decoded."""
    by_env_name = {_env_name(field): field for field in RuntimeSettings.model_fields}
    values: dict[str, Any] = {}
    unknown: list[str] = []
    for name, value in env.items():
        upper = name.upper()  # pydantic-settings reads the variables case-insensitively
        if not upper.startswith(ENV_PREFIX) or upper in OTHER_VARIABLES:
            continue
        field = by_env_name.get(upper)
        if field is None:
            unknown.append(name)
        elif field in _JSON_FIELDS:
            try:
                values[field] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ConfigurationError(f"{upper}: not valid JSON: {exc}") from exc
        else:
            values[field] = value
    if unknown:
        known = [*by_env_name, *OTHER_VARIABLES]
        raise ConfigurationError(
            "; ".join(
                _unknown(f"environment variable {n}", n.upper(), known, quote=False)
                for n in unknown
            )
        )
    return values


def _explain(exc: ValidationError, where: Mapping[str, str]) -> str:
    """One line for a validation error: each problem with the variable or key at fault."""
    problems: list[str] = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        message = error.get("msg", "invalid").removeprefix("Value error, ")
        if not loc:
            problems.append(message)
            continue
        source = where.get(loc[0], "")
        if source.startswith(ENV_PREFIX):
            name = source + (f": {'.'.join(loc[1:])}" if loc[1:] else "")
        elif source.startswith("config file"):
            name = f"{source}: {'.'.join(loc)}"
        else:
            name = ".".join(loc)
        problems.append(f"{name}: {message}")
    return "; ".join(problems)

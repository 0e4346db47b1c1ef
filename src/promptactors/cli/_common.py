"""Options and helpers the commands share."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio
import typer
from pydantic import ValidationError

from .. import ConfigurationError, InvalidInput, RuntimeSettings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

T = TypeVar("T")

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        "-d",
        help="Database URL (default: PROMPTACTORS_DATABASE_URL or ./promptactors.db).",
    ),
]
ProviderOption = Annotated[str | None, typer.Option("--provider", help="Provider name.")]
ModelOption = Annotated[str | None, typer.Option("--model", help="Model name.")]
TokensOption = Annotated[
    int | None, typer.Option("--tokens", help="Simulated provider: tokens per answer.")
]
LatencyOption = Annotated[
    float | None, typer.Option("--latency", help="Simulated provider: seconds between tokens.")
]


def settings_from(**overrides: Any) -> RuntimeSettings:
    """Runtime settings from the environment, with the command's options on top."""
    values = {k: v for k, v in overrides.items() if v is not None}
    try:
        return RuntimeSettings(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error.get("loc", ())) or "settings"
        raise ConfigurationError(f"{where}: {error.get('msg', 'invalid')}") from exc


def parse_vars(pairs: list[str] | None) -> dict[str, str]:
    """``name=value`` pairs from ``--var`` options."""
    values: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(f"--var {pair!r}: write it as name=value")
        values[name.strip()] = value
    return values


def run_async(fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``fn`` on trio, the CLI's backend."""
    return anyio.run(fn, backend="trio")

"""What the commands that print data share: ``--json``, JSON of records, times, URLs."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import typer

from .. import InvalidInput

__all__ = [
    "JsonOption",
    "LimitOption",
    "existing_database",
    "print_json",
    "redact_url",
    "seconds",
    "to_data",
    "when",
]

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON on stdout (and nothing else there).")
]
LimitOption = Annotated[int, typer.Option("--limit", "-n", metavar="N", help="At most N rows.")]


def to_data(value: Any) -> Any:
    """``value`` (records, dataclasses, mappings, datetimes...) as plain JSON data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_data(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(to_data(v) for v in value)
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "model_dump"):  # pydantic models (the state's stats)
        return to_data(value.model_dump(mode="json"))
    return value


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout."""
    typer.echo(json.dumps(to_data(value), indent=2))


def redact_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def seconds(value: float | None) -> str:
    """A duration for a table: ``0.123s``, or ``-``."""
    return "-" if value is None else f"{value:.3f}s"


def when(value: datetime | None, *, short: bool = False) -> str:
    """A timestamp (UTC) to the second, or to the minute without the year when ``short``;
    ``-`` for none."""
    if value is None:
        return "-"
    return value.strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S")


def existing_database(url: str) -> str:
    """``url``, unless it names an SQLite file that is not there (reading must not create
    one): then ``InvalidInput`` naming the file."""
    if url.startswith("sqlite:///") and ":memory:" not in url:
        path = Path(url.removeprefix("sqlite:///").partition("?")[0])
        if not path.exists():
            raise InvalidInput(
                f"database file '{path}' does not exist (create it with `promptactors db init`)"
            )
    return url

"""Per-model prices and the cost of a completion.

Prices are USD per 1 million tokens. The built-in table is a convenience snapshot of public
list prices; providers change them, so users extend or override it from their own
configuration (``PriceTable.default().merged(PriceTable.from_mapping(data))``). A model the
table does not know has no cost (``None``), never a guessed one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError

if TYPE_CHECKING:
    from ._protocol import Usage

__all__ = ["ModelPrice", "PriceTable"]

_PER_TOKENS = 1_000_000

# What may follow a known model name for a dated snapshot of it to share its price:
# gpt-4o-2024-08-06, claude-3-5-sonnet-20241022, claude-sonnet-4-5@20250929, ...-latest.
# A bare prefix is not enough: o3-pro is not priced like o3, nor gpt-4o-audio like gpt-4o.
_SNAPSHOT_SUFFIX = re.compile(r"(?:-\d{4}-\d{2}-\d{2}|[-@]\d{8}|-latest)(?:$|[-:@.])")


_PRICE_FIELDS = ("input", "output", "cached_input")


def _check_number(where: str, field: str, value: object) -> float:
    # bool is an int, and YAML turns `yes` into True: not a price.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(
            f"{where}: {field!r} must be a number (USD per 1M tokens), got {value!r}"
        )
    if not 0 <= value < math.inf:
        raise ConfigurationError(f"{where}: {field!r} must be a finite number >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per 1M tokens: ``input``, ``output`` and ``cached_input`` (prompt tokens read
    from the provider's cache; ``None`` means they cost the same as ``input``)."""

    input: float
    output: float
    cached_input: float | None = None

    def __post_init__(self) -> None:
        """Raises ``ConfigurationError`` for a price that is not a finite number >= 0."""
        for field in _PRICE_FIELDS:
            value = getattr(self, field)
            if value is not None or field != "cached_input":
                _check_number("ModelPrice", field, value)

    def cost(self, usage: Usage) -> float:
        """The USD cost of ``usage``. ``usage.cached_tokens`` are counted within
        ``usage.input_tokens`` (OpenAI's convention) and priced at ``cached_input``."""
        cached = min(usage.cached_tokens, usage.input_tokens)
        cached_price = self.input if self.cached_input is None else self.cached_input
        return (
            (usage.input_tokens - cached) * self.input
            + cached * cached_price
            + usage.output_tokens * self.output
        ) / _PER_TOKENS


def _price(input: float, output: float, cached_input: float | None = None) -> ModelPrice:
    return ModelPrice(input=input, output=output, cached_input=cached_input)


# USD per 1M tokens (input, output, cached input), list prices of late 2025. Extend or
# override them with PriceTable.merged(); dated snapshots resolve to their family below.
_DEFAULT_PRICES: dict[str, ModelPrice] = {
    # OpenAI
    "gpt-4o": _price(2.50, 10.00, 1.25),
    "gpt-4o-mini": _price(0.15, 0.60, 0.075),
    "gpt-4.1": _price(2.00, 8.00, 0.50),
    "gpt-4.1-mini": _price(0.40, 1.60, 0.10),
    "gpt-4.1-nano": _price(0.10, 0.40, 0.025),
    "gpt-4-turbo": _price(10.00, 30.00),
    "gpt-3.5-turbo": _price(0.50, 1.50),
    "o1": _price(15.00, 60.00, 7.50),
    "o1-mini": _price(1.10, 4.40, 0.55),
    "o3": _price(2.00, 8.00, 0.50),
    "o3-mini": _price(1.10, 4.40, 0.55),
    "o4-mini": _price(1.10, 4.40, 0.275),
    # Anthropic (cached_input = cache reads; cache writes are not modelled)
    "claude-opus-4-5": _price(5.00, 25.00, 0.50),
    "claude-opus-4-1": _price(15.00, 75.00, 1.50),
    "claude-opus-4": _price(15.00, 75.00, 1.50),
    "claude-opus-4-0": _price(15.00, 75.00, 1.50),
    "claude-3-opus": _price(15.00, 75.00, 1.50),
    "claude-sonnet-4-5": _price(3.00, 15.00, 0.30),
    "claude-sonnet-4": _price(3.00, 15.00, 0.30),
    "claude-sonnet-4-0": _price(3.00, 15.00, 0.30),
    "claude-3-7-sonnet": _price(3.00, 15.00, 0.30),
    "claude-3-5-sonnet": _price(3.00, 15.00, 0.30),
    "claude-haiku-4-5": _price(1.00, 5.00, 0.10),
    "claude-3-5-haiku": _price(0.80, 4.00, 0.08),
    "claude-3-haiku": _price(0.25, 1.25, 0.03),
    # Offline
    "simulated": _price(0.0, 0.0, 0.0),
}


def _parse_entry(model: object, entry: object) -> tuple[str, ModelPrice]:
    if not isinstance(model, str) or not model.strip():
        raise ConfigurationError(
            f"price table: model names must be non-empty strings, got {model!r}"
        )
    if isinstance(entry, ModelPrice):
        return model.strip().lower(), entry
    if not isinstance(entry, Mapping):
        raise ConfigurationError(
            f"price table entry {model!r}: expected a mapping with 'input' and 'output' "
            f"(USD per 1M tokens), got {entry!r}"
        )
    unknown = sorted(str(key) for key in entry if key not in _PRICE_FIELDS)
    if unknown:
        raise ConfigurationError(
            f"price table entry {model!r}: unknown field(s) {', '.join(unknown)}; "
            f"expected {', '.join(_PRICE_FIELDS)}"
        )
    for required in ("input", "output"):
        if required not in entry:
            raise ConfigurationError(f"price table entry {model!r}: missing {required!r}")
    where = f"price table entry {model!r}"
    cached = entry.get("cached_input")
    price = ModelPrice(
        input=_check_number(where, "input", entry["input"]),
        output=_check_number(where, "output", entry["output"]),
        cached_input=None if cached is None else _check_number(where, "cached_input", cached),
    )
    return model.strip().lower(), price


class PriceTable(Mapping[str, ModelPrice]):
    """An immutable mapping of model names to :class:`ModelPrice` (USD per 1M tokens).

    Names are case-insensitive. :meth:`lookup` also resolves dated snapshots
    (``gpt-4o-2024-08-06``) to the longest known name they extend.
    """

    __slots__ = ("_prices",)

    def __init__(self, prices: Mapping[str, ModelPrice] | None = None) -> None:
        """Raises ``ConfigurationError`` for a non-string name or a value not a ModelPrice."""
        parsed: dict[str, ModelPrice] = {}
        for model, price in (prices or {}).items():
            if not isinstance(price, ModelPrice):
                raise ConfigurationError(
                    f"price table entry {model!r}: expected a ModelPrice, got {price!r}"
                )
            name, price = _parse_entry(model, price)
            parsed[name] = price
        self._prices = parsed

    @classmethod
    def default(cls) -> PriceTable:
        """The built-in table of common OpenAI and Anthropic models, and ``simulated`` at 0."""
        return _DEFAULT_TABLE

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PriceTable:
        """Build a table from configuration data (parsed YAML or JSON)::

            {"my-model": {"input": 0.5, "output": 1.5, "cached_input": 0.25}}

        ``cached_input`` is optional. Raises ``ConfigurationError`` naming the entry for a
        value that is not a mapping, an unknown or missing field, or a price that is not a
        finite number >= 0.
        """
        if not isinstance(data, Mapping):
            raise ConfigurationError(
                "price table: expected a mapping of model names to prices, "
                f"got {type(data).__name__}"
            )
        table = cls()
        table._prices = dict(_parse_entry(model, entry) for model, entry in data.items())
        return table

    def merged(self, other: Mapping[str, ModelPrice] | Mapping[str, Any]) -> PriceTable:
        """A new table: this one with ``other``'s entries added or replacing ours.

        ``other`` is a ``PriceTable`` or configuration data as for :meth:`from_mapping`.
        """
        extra = other if isinstance(other, PriceTable) else PriceTable.from_mapping(other)
        table = PriceTable()
        table._prices = {**self._prices, **extra._prices}
        return table

    def lookup(self, model: str) -> ModelPrice | None:
        """The price of ``model``: by exact name, else by the longest known name that a dated
        snapshot id extends (``claude-3-5-sonnet-20241022``). ``None`` if unknown."""
        name = model.strip().lower()
        price = self._prices.get(name)
        if price is not None:
            return price
        best: str | None = None
        for known in self._prices:
            if (
                len(name) > len(known)
                and name.startswith(known)
                and (best is None or len(known) > len(best))
                and _SNAPSHOT_SUFFIX.match(name, len(known))
            ):
                best = known
        return None if best is None else self._prices[best]

    def cost(self, model: str, usage: Usage) -> float | None:
        """The USD cost of ``usage`` on ``model``, or ``None`` if the model's price is unknown."""
        price = self.lookup(model)
        return None if price is None else price.cost(usage)

    def __getitem__(self, model: str) -> ModelPrice:
        return self._prices[model.strip().lower()]

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and model.strip().lower() in self._prices

    def __iter__(self) -> Iterator[str]:
        return iter(self._prices)

    def __len__(self) -> int:
        return len(self._prices)

    def __repr__(self) -> str:
        return f"PriceTable({len(self._prices)} models)"


_DEFAULT_TABLE = PriceTable(_DEFAULT_PRICES)

"""Per-model prices and the cost of a completion."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from promptactors import ConfigurationError
from promptactors.providers._pricing import ModelPrice, PriceTable
from promptactors.providers._protocol import Usage


def test_exact_model_names_are_priced_from_the_default_table() -> None:
    """Known models have their list price, USD per 1M tokens."""
    table = PriceTable.default()
    assert table.lookup("gpt-4o") == ModelPrice(2.50, 10.00, 1.25)
    assert table.lookup("claude-sonnet-4-5") == ModelPrice(3.00, 15.00, 0.30)
    assert table.lookup("simulated") == ModelPrice(0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),
        ("GPT-4o-2024-08-06", "gpt-4o"),
    ],
)
def test_dated_snapshots_take_the_price_of_the_longest_known_name(model: str, family: str) -> None:
    """A dated model id resolves to the most specific family it extends."""
    table = PriceTable.default()
    assert table.lookup(model) == table[family]


@pytest.mark.parametrize(
    "model", ["my-local-llama", "o3-pro", "gpt-4o-audio-preview", "claude-opus-4-7", "gpt-4", ""]
)
def test_unknown_models_have_no_price_rather_than_a_guessed_one(model: str) -> None:
    """A model that only shares a prefix with a known one (not a dated snapshot) is unknown."""
    table = PriceTable.default()
    assert table.lookup(model) is None
    assert table.cost(model, Usage(1000, 1000)) is None


def test_cost_prices_input_output_and_cached_tokens() -> None:
    """Cached tokens are part of the input tokens and cost the cached-input price."""
    table = PriceTable.from_mapping({"m": {"input": 2.0, "output": 8.0, "cached_input": 0.5}})
    usage = Usage(input_tokens=1_000_000, output_tokens=500_000, cached_tokens=400_000)
    assert table.cost("m", usage) == pytest.approx(0.6 * 2.0 + 0.4 * 0.5 + 0.5 * 8.0)


def test_cached_tokens_cost_the_input_price_when_no_cached_price_is_set() -> None:
    """Without a cached-input price, cached tokens are priced like other input tokens."""
    price = ModelPrice(input=1.0, output=2.0)
    assert price.cost(Usage(1_000_000, 0, cached_tokens=1_000_000)) == pytest.approx(1.0)


def test_simulated_model_costs_nothing() -> None:
    """The offline provider's model is free."""
    assert PriceTable.default().cost("simulated", Usage(10_000, 10_000)) == 0.0


def test_user_prices_from_yaml_extend_and_override_the_defaults() -> None:
    """merged() adds new models and replaces known ones; the default table is unchanged."""
    data = yaml.safe_load(
        """
        my-model: {input: 0.5, output: 1.5}
        gpt-4o: {input: 1, output: 2, cached_input: 0.25}
        """
    )
    table = PriceTable.default().merged(data)
    assert table.lookup("my-model") == ModelPrice(0.5, 1.5)
    assert table.lookup("gpt-4o-2024-08-06") == ModelPrice(1.0, 2.0, 0.25)
    assert PriceTable.default().lookup("gpt-4o") == ModelPrice(2.50, 10.00, 1.25)
    assert len(table) == len(PriceTable.default()) + 1


def test_merging_another_table_lets_it_win() -> None:
    """Entries of the merged table replace ours."""
    ours = PriceTable({"a": ModelPrice(1, 1), "b": ModelPrice(2, 2)})
    theirs = PriceTable({"b": ModelPrice(3, 3)})
    merged = ours.merged(theirs)
    assert dict(merged) == {"a": ModelPrice(1, 1), "b": ModelPrice(3, 3)}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"bad-model": {"input": -1, "output": 1}}, r"'bad-model'.*'input'.*>= 0"),
        ({"bad-model": {"input": "cheap", "output": 1}}, r"'bad-model'.*'input'.*number"),
        ({"bad-model": {"input": 1, "output": True}}, r"'bad-model'.*'output'.*number"),
        ({"bad-model": {"input": 1, "output": float("inf")}}, r"'bad-model'.*'output'"),
        ({"bad-model": {"input": 1, "output": 1, "cached_input": -2}}, r"'bad-model'.*cached"),
        ({"bad-model": {"input": 1}}, r"'bad-model'.*missing 'output'"),
        ({"bad-model": {"input": 1, "output": 1, "currency": "EUR"}}, r"'bad-model'.*currency"),
        ({"bad-model": [1, 2]}, r"'bad-model'.*mapping"),
        ({"": {"input": 1, "output": 1}}, "model names"),
    ],
)
def test_invalid_price_data_names_the_bad_entry(data: dict[str, Any], match: str) -> None:
    """Configuration data with a bad price raises ConfigurationError naming the entry."""
    with pytest.raises(ConfigurationError, match=match):
        PriceTable.from_mapping(data)


def test_price_data_must_be_a_mapping() -> None:
    """A list where a mapping of models is expected is a configuration error."""
    with pytest.raises(ConfigurationError, match="mapping"):
        PriceTable.from_mapping([("m", {"input": 1, "output": 1})])  # type: ignore[arg-type]


def test_model_price_rejects_negative_prices() -> None:
    """A ModelPrice built in code is validated too."""
    with pytest.raises(ConfigurationError, match="output"):
        ModelPrice(input=1.0, output=-1.0)


def test_price_table_is_a_case_insensitive_read_only_mapping() -> None:
    """Lookups ignore case; the table supports len, iteration and membership."""
    table = PriceTable.from_mapping({"My-Model": {"input": 1, "output": 2}})
    assert "my-model" in table
    assert "MY-MODEL" in table
    assert table["MY-model"] == ModelPrice(1.0, 2.0)
    assert list(table) == ["my-model"]
    not_a_name: object = 42
    assert not_a_name not in table

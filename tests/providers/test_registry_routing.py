"""Routing a turn: which provider and model serve a prompt, given the runtime's defaults."""

from __future__ import annotations

import pytest

from promptactors import ConfigurationError
from promptactors.providers import ProviderRegistry, SimulatedProvider


class Stub:
    """A provider that is never asked anything: routing only picks it."""

    def __init__(self, name: str) -> None:
        self.name = name


@pytest.fixture
def registry() -> ProviderRegistry:
    """Two endpoints (one with a default model) and the simulated provider."""
    providers = ProviderRegistry.from_mapping(
        {
            "openai": {"kind": "openai", "default_model": "gpt-4o-mini"},
            "local": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1"},
        }
    )
    # Registered objects are served before any endpoint client is built.
    for name in ("openai", "local"):
        providers.register(name, Stub(name))  # type: ignore[arg-type]
    providers.register("simulated", SimulatedProvider())
    return providers


def test_the_prompt_s_provider_and_model_win_over_the_defaults(registry: ProviderRegistry) -> None:
    """A prompt that names both gets both, whatever the runtime's defaults are."""
    provider, model = registry.route({"provider": "local", "model": "llama"}, "openai", "gpt-4o")
    assert (provider.name, model) == ("local", "llama")


def test_a_prompt_without_provider_or_model_gets_the_runtime_defaults(
    registry: ProviderRegistry,
) -> None:
    """The default provider and the default model fill what the prompt leaves out."""
    provider, model = registry.route({}, "local", "qwen")
    assert (provider.name, model) == ("local", "qwen")
    provider, model = registry.route({"model": "llama"}, "local", "qwen")
    assert (provider.name, model) == ("local", "llama")


def test_without_any_model_the_endpoint_s_default_model_is_used(
    registry: ProviderRegistry,
) -> None:
    """No model in the prompt nor the runtime: the endpoint's configured default serves."""
    provider, model = registry.route({"provider": "openai"}, "simulated", None)
    assert (provider.name, model) == ("openai", "gpt-4o-mini")


def test_the_simulated_provider_s_model_is_called_simulated(registry: ProviderRegistry) -> None:
    """The simulated provider needs no model configured: its model is its name."""
    provider, model = registry.route({}, "simulated", None)
    assert isinstance(provider, SimulatedProvider)
    assert model == "simulated"
    _, model = registry.route({}, "simulated", "house-model")
    assert model == "house-model"


def test_no_model_anywhere_is_a_configuration_error(registry: ProviderRegistry) -> None:
    """An endpoint without a default model, and no model given, names the provider."""
    with pytest.raises(ConfigurationError, match="no model chosen for provider 'local'"):
        registry.route({"provider": "local"}, "simulated", None)


def test_an_unknown_provider_is_a_configuration_error(registry: ProviderRegistry) -> None:
    """A provider name nobody configured says which ones are known."""
    with pytest.raises(ConfigurationError, match="unknown provider 'nosuch'"):
        registry.route({"provider": "nosuch", "model": "m"}, "simulated", None)

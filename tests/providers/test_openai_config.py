"""Endpoint configuration and the registry that picks provider and model per prompt."""

from __future__ import annotations

import httpx
import pytest

from promptactors._exceptions import ConfigurationError
from promptactors.providers._anthropic import AnthropicProvider
from promptactors.providers._http_config import EndpointConfig
from promptactors.providers._openai import OpenAICompatibleProvider
from promptactors.providers._registry import ProviderRegistry
from promptactors.providers._transport import H11Transport


def test_the_api_key_comes_from_config_or_the_environment() -> None:
    """An inline key wins; otherwise the named (or default) environment variable."""
    inline = EndpointConfig(api_key="sk-inline")  # type: ignore[arg-type]
    assert inline.resolved_api_key({"OPENAI_API_KEY": "sk-env"}).get_secret_value() == "sk-inline"  # type: ignore[union-attr]
    from_env = EndpointConfig(kind="anthropic")
    key = from_env.resolved_api_key({"ANTHROPIC_API_KEY": "sk-ant"})
    assert key is not None
    assert key.get_secret_value() == "sk-ant"
    custom = EndpointConfig(api_key_env="MY_KEY")
    assert custom.resolved_api_key({"MY_KEY": "k"}).get_secret_value() == "k"  # type: ignore[union-attr]
    assert EndpointConfig().resolved_api_key({}) is None


def test_the_key_is_masked_in_reprs() -> None:
    """A SecretStr never shows the key in repr, str or a dump."""
    config = EndpointConfig(api_key="sk-very-secret")  # type: ignore[arg-type]
    assert "sk-very-secret" not in repr(config)
    assert "sk-very-secret" not in str(config)
    assert "sk-very-secret" not in config.model_dump_json()


def test_limits_and_timeouts_reach_the_shared_client() -> None:
    """The provider builds one client on our transport, with the configured limits."""
    config = EndpointConfig(max_connections=7, max_keepalive_connections=3, read_timeout=9.0)
    provider = OpenAICompatibleProvider(config, environ={})
    transport = provider.client._transport
    assert isinstance(transport, H11Transport)
    assert transport.limits.max_connections == 7
    assert transport.limits.max_keepalive_connections == 3
    assert provider.client.timeout.read == 9.0


@pytest.mark.anyio
async def test_a_client_passed_in_is_used_and_left_open() -> None:
    """Bring your own httpx client (proxies, auth): the provider uses it and does not close it."""
    client = httpx.AsyncClient()
    provider = OpenAICompatibleProvider(EndpointConfig(), client=client, environ={})
    assert provider.client is client
    await provider.aclose()
    assert not client.is_closed
    await client.aclose()


def test_invalid_config_is_a_configuration_error() -> None:
    """Bad endpoint data names the endpoint in a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="'local'"):
        ProviderRegistry.from_mapping({"local": {"kind": "nope"}})
    with pytest.raises(ConfigurationError):
        OpenAICompatibleProvider(EndpointConfig(kind="anthropic"))


def test_the_registry_chooses_provider_and_model_from_settings() -> None:
    """Settings name the provider and model; an endpoint supplies a default model."""
    registry = ProviderRegistry.from_mapping(
        {
            "openai": {"kind": "openai", "default_model": "gpt-x"},
            "claude": {"kind": "anthropic", "default_model": "claude-x"},
        },
        default_provider="openai",
        environ={},
    )
    provider, model = registry.resolve({"provider": "claude"})
    assert isinstance(provider, AnthropicProvider)
    assert model == "claude-x"
    provider, model = registry.resolve({"model": "gpt-y"})
    assert isinstance(provider, OpenAICompatibleProvider)
    assert model == "gpt-y"


def test_an_instance_override_wins_over_the_prompt() -> None:
    """Per-instance overrides of provider and model beat the prompt's settings."""
    registry = ProviderRegistry.from_mapping(
        {"a": {"default_model": "m-a"}, "b": {"kind": "anthropic", "default_model": "m-b"}},
        environ={},
    )
    provider, model = registry.resolve(
        {"provider": "a", "model": "m-prompt"}, {"provider": "b", "model": "m-instance"}
    )
    assert provider is registry.get("b")
    assert model == "m-instance"


def test_one_provider_is_shared_per_endpoint() -> None:
    """Every resolve for an endpoint returns the same provider (one pool per endpoint)."""
    registry = ProviderRegistry.from_mapping({"only": {"default_model": "m"}}, environ={})
    first, _ = registry.resolve({})
    second, _ = registry.resolve({"provider": "only"})
    assert first is second


def test_unknown_provider_or_missing_model_is_a_configuration_error() -> None:
    """An unknown name lists the known ones; no model anywhere is an error."""
    registry = ProviderRegistry.from_mapping({"a": {}, "b": {}}, environ={})
    with pytest.raises(ConfigurationError, match="known: a, b"):
        registry.resolve({"provider": "zzz"})
    with pytest.raises(ConfigurationError, match="no default provider"):
        registry.resolve({})
    with pytest.raises(ConfigurationError, match="no model"):
        registry.resolve({"provider": "a"})

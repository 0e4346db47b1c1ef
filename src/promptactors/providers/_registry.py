"""Which provider and model serve a prompt: named endpoints, one shared provider each.

The prompt's settings name a ``provider`` and a ``model``; an instance may override
either. Each named endpoint gets ONE provider object, built on first use and shared by
every instance (so one connection pool per endpoint, never a client per instance).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from promptactors._exceptions import ConfigurationError

from ._anthropic import AnthropicProvider
from ._http_config import EndpointConfig
from ._openai import OpenAICompatibleProvider

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._protocol import Provider

__all__ = ["ProviderRegistry"]


class ProviderRegistry:
    """Named providers: HTTP endpoints from configuration, plus any ``Provider`` object.

    ``default_provider`` serves prompts whose settings name none (with a single provider
    registered, that one). ``environ`` is where endpoint API keys are looked up.
    """

    def __init__(
        self,
        endpoints: Mapping[str, EndpointConfig] | None = None,
        *,
        default_provider: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._endpoints: dict[str, EndpointConfig] = dict(endpoints or {})
        self._providers: dict[str, Provider] = {}
        self._default = default_provider
        self._environ = environ

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, Any],
        *,
        default_provider: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ProviderRegistry:
        """Build from configuration data: ``{name: {kind, base_url, api_key_env, ...}}``.

        Raises ``ConfigurationError`` naming the endpoint whose settings are invalid.
        """
        endpoints: dict[str, EndpointConfig] = {}
        for name, raw in data.items():
            try:
                endpoints[name] = (
                    raw if isinstance(raw, EndpointConfig) else EndpointConfig.model_validate(raw)
                )
            except ValidationError as exc:
                raise ConfigurationError(f"provider endpoint {name!r}: {exc}") from exc
        return cls(endpoints, default_provider=default_provider, environ=environ)

    @property
    def names(self) -> tuple[str, ...]:
        """Every provider name known, sorted."""
        return tuple(sorted(self._endpoints.keys() | self._providers.keys()))

    def register(self, name: str, provider: Provider) -> None:
        """Serve ``name`` with ``provider`` (the simulated one, a test double...)."""
        self._providers[name] = provider

    def get(self, name: str) -> Provider:
        """The shared provider named ``name``; raises ``ConfigurationError`` if unknown."""
        provider = self._providers.get(name)
        if provider is not None:
            return provider
        config = self._endpoints.get(name)
        if config is None:
            known = ", ".join(self.names) or "none"
            raise ConfigurationError(f"unknown provider {name!r} (known: {known})")
        built: Provider
        if config.kind == "anthropic":
            built = AnthropicProvider(config, name=name, environ=self._environ)
        else:
            built = OpenAICompatibleProvider(config, name=name, environ=self._environ)
        self._providers[name] = built
        return built

    def resolve(
        self, settings: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
    ) -> tuple[Provider, str]:
        """The provider and model for a prompt's ``settings``, ``overrides`` winning.

        Raises ``ConfigurationError`` when no provider or no model can be chosen.
        """
        overrides = overrides or {}
        name = overrides.get("provider") or settings.get("provider") or self._default
        if name is None:
            names = self.names
            if len(names) != 1:
                raise ConfigurationError(
                    "the prompt names no provider and there is no default provider"
                )
            name = names[0]
        provider = self.get(str(name))
        model = overrides.get("model") or settings.get("model")
        if not model:
            config = self._endpoints.get(str(name))
            model = config.default_model if config is not None else None
        if not model:
            raise ConfigurationError(f"no model chosen for provider {name!r}")
        return provider, str(model)

    def route(
        self,
        prompt_settings: Mapping[str, Any],
        default_provider: str,
        default_model: str | None = None,
    ) -> tuple[Provider, str]:
        """The provider and model one turn uses: the prompt's, else the runtime's defaults.

        The provider is the prompt's ``provider``, else ``default_provider``. The model is
        the prompt's ``model``, else ``default_model``, else — for the simulated provider,
        whose only model is its name — ``simulated``, else the endpoint's
        ``default_model``. Raises ``ConfigurationError`` for an unknown provider or when
        no model can be chosen.
        """
        name = str(prompt_settings.get("provider") or default_provider)
        overrides: dict[str, Any] = {"provider": name}
        if not prompt_settings.get("model"):
            model = default_model or (name if name == "simulated" else None)
            if model is not None:
                overrides["model"] = model
        return self.resolve(prompt_settings, overrides)

    async def aclose(self) -> None:
        """Close every provider built or registered here. Idempotent."""
        providers = list(self._providers.values())
        for provider in providers:
            await provider.aclose()

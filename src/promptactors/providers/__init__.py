"""LLM providers behind one protocol (see :class:`Provider`).

* :class:`SimulatedProvider` — offline, deterministic, paced by one shared :class:`Ticker`,
  with injectable faults (:class:`FaultPlan`): the embedded default.
* :class:`OpenAICompatibleProvider` (OpenAI, vLLM, llama.cpp, Ollama, LM Studio) and
  :class:`AnthropicProvider`, streaming over httpx on our h11 transport
  (:class:`H11Transport`), retrying before the first token (:class:`ProviderRetry`).
* :class:`EndpointConfig` and :class:`ProviderRegistry`: named endpoints, one shared
  provider (one connection pool) each, chosen from a prompt's settings.
* Prices (:class:`PriceTable`) and token estimates for usage a provider does not report.
"""

from .._backend import Ticker as Ticker
from ._anthropic import AnthropicProvider as AnthropicProvider
from ._estimate import estimate_request_tokens as estimate_request_tokens
from ._estimate import estimate_tokens as estimate_tokens
from ._http_config import EndpointConfig as EndpointConfig
from ._http_provider import HTTPProvider as HTTPProvider
from ._openai import OpenAICompatibleProvider as OpenAICompatibleProvider
from ._pricing import ModelPrice as ModelPrice
from ._pricing import PriceTable as PriceTable
from ._protocol import ChatMessage as ChatMessage
from ._protocol import Provider as Provider
from ._protocol import ProviderRequest as ProviderRequest
from ._protocol import StreamEnd as StreamEnd
from ._protocol import StreamEvent as StreamEvent
from ._protocol import TextDelta as TextDelta
from ._protocol import Usage as Usage
from ._registry import ProviderRegistry as ProviderRegistry
from ._retry import ProviderRetry as ProviderRetry
from ._simulated import FaultOutcome as FaultOutcome
from ._simulated import FaultPlan as FaultPlan
from ._simulated import SimulatedProvider as SimulatedProvider
from ._transport import H11Transport as H11Transport
from ._transport import TransportLimits as TransportLimits

__all__ = [
    "AnthropicProvider",
    "ChatMessage",
    "EndpointConfig",
    "FaultOutcome",
    "FaultPlan",
    "H11Transport",
    "HTTPProvider",
    "ModelPrice",
    "OpenAICompatibleProvider",
    "PriceTable",
    "Provider",
    "ProviderRegistry",
    "ProviderRequest",
    "ProviderRetry",
    "SimulatedProvider",
    "StreamEnd",
    "StreamEvent",
    "TextDelta",
    "Ticker",
    "TransportLimits",
    "Usage",
    "estimate_request_tokens",
    "estimate_tokens",
]

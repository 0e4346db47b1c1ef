"""LLM providers behind one protocol (see :class:`Provider`).

* :class:`SimulatedProvider` — offline, deterministic, paced by one shared :class:`Ticker`,
  with injectable faults (:class:`FaultPlan`): the embedded default.
* Prices (:class:`PriceTable`) and token estimates for usage a provider does not report.
"""

from ._estimate import estimate_request_tokens as estimate_request_tokens
from ._estimate import estimate_tokens as estimate_tokens
from ._pricing import ModelPrice as ModelPrice
from ._pricing import PriceTable as PriceTable
from ._protocol import ChatMessage as ChatMessage
from ._protocol import Provider as Provider
from ._protocol import ProviderRequest as ProviderRequest
from ._protocol import StreamEnd as StreamEnd
from ._protocol import StreamEvent as StreamEvent
from ._protocol import TextDelta as TextDelta
from ._protocol import Usage as Usage
from ._simulated import FaultOutcome as FaultOutcome
from ._simulated import FaultPlan as FaultPlan
from ._simulated import SimulatedProvider as SimulatedProvider
from ._ticker import Ticker as Ticker

__all__ = [
    "ChatMessage",
    "FaultOutcome",
    "FaultPlan",
    "ModelPrice",
    "PriceTable",
    "Provider",
    "ProviderRequest",
    "SimulatedProvider",
    "StreamEnd",
    "StreamEvent",
    "TextDelta",
    "Ticker",
    "Usage",
    "estimate_request_tokens",
    "estimate_tokens",
]

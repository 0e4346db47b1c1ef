"""Helpers for testing code that embeds promptactors.

- :class:`ScriptedProvider` answers each call with a script of deltas, pauses, errors and
  usage, and records the requests it got: unit tests of code that calls a provider.
- :class:`LLMServer` / :func:`serve_llm`: a real HTTP server on 127.0.0.1 that speaks the
  OpenAI and Anthropic streaming protocols and plays scripted faults (:class:`Reply`).
- :class:`FaultPlan` makes the simulated provider inject faults (chaos and retry tests).

For deterministic time, run tests on trio with ``trio.testing.MockClock(autojump_threshold=0)``
(pytest-trio's ``autojump_clock`` fixture): pauses, latencies and timeouts then take no
real time.
"""

from ..providers._simulated import FaultPlan as FaultPlan
from ._llm_server import LLMServer as LLMServer
from ._llm_server import RecordedRequest as RecordedRequest
from ._llm_server import Reply as Reply
from ._llm_server import serve_llm as serve_llm
from ._scripted import Pause as Pause
from ._scripted import ScriptedProvider as ScriptedProvider
from ._scripted import ScriptStep as ScriptStep

__all__ = [
    "FaultPlan",
    "LLMServer",
    "Pause",
    "RecordedRequest",
    "Reply",
    "ScriptStep",
    "ScriptedProvider",
    "serve_llm",
]

"""Helpers for testing code that embeds promptactors.

- :class:`ScriptedProvider` answers each call with a script of deltas, pauses, errors and
  usage, and records the requests it got: unit tests of code that calls a provider.
- :class:`LLMServer` / :func:`serve_llm`: a real HTTP server on 127.0.0.1 that speaks the
  OpenAI and Anthropic streaming protocols and plays scripted faults (:class:`Reply`).
- :class:`FaultPlan` makes the simulated provider inject faults (chaos and retry tests).
- Fault injection beyond the provider: :class:`OutageStore` (a store that goes down on
  command) and :func:`crash_actor` (crash an instance or an engine actor now; its
  supervisor restarts it).
- :func:`check_invariants`: the turn contract checked against the database after chaos,
  from what the callers saw (:class:`Observations`); an :class:`InvariantReport` says
  which invariant held and gives example ids of each violation.

For deterministic time, run tests on trio with ``trio.testing.MockClock(autojump_threshold=0)``
(pytest-trio's ``autojump_clock`` fixture): pauses, latencies and timeouts then take no
real time.
"""

from ..kernel import crash_actor as crash_actor
from ..providers._simulated import FaultPlan as FaultPlan
from ._invariants import INVARIANTS as INVARIANTS
from ._invariants import InvariantReport as InvariantReport
from ._invariants import InvariantResult as InvariantResult
from ._invariants import check_invariants as check_invariants
from ._llm_server import LLMServer as LLMServer
from ._llm_server import RecordedRequest as RecordedRequest
from ._llm_server import Reply as Reply
from ._llm_server import serve_llm as serve_llm
from ._observations import ClaimRace as ClaimRace
from ._observations import ConversationSnapshot as ConversationSnapshot
from ._observations import Observations as Observations
from ._observations import Outcome as Outcome
from ._observations import TurnObservation as TurnObservation
from ._observations import WaitObservation as WaitObservation
from ._outage import OutageStore as OutageStore
from ._scripted import Pause as Pause
from ._scripted import ScriptedProvider as ScriptedProvider
from ._scripted import ScriptStep as ScriptStep

__all__ = [
    "INVARIANTS",
    "ClaimRace",
    "ConversationSnapshot",
    "FaultPlan",
    "InvariantReport",
    "InvariantResult",
    "LLMServer",
    "Observations",
    "OutageStore",
    "Outcome",
    "Pause",
    "RecordedRequest",
    "Reply",
    "ScriptStep",
    "ScriptedProvider",
    "TurnObservation",
    "WaitObservation",
    "check_invariants",
    "crash_actor",
    "serve_llm",
]

"""The engine's actors: the actors of the prompt-execution system, built on the kernel.

:class:`InstanceActor` (one execution instance, with its turns), :class:`InstanceRegistry`
(live instances by id, prompt and run), the single-flight caches (:class:`PromptCache`,
:class:`ActionCache`, :class:`ScopedVariablesCache`), :class:`RunTracker` (group commit),
each with a client facade; plus brokers (variables resolved for an action's context) and
crash recovery (:func:`recover`). The generic kernel they run on is
:mod:`promptactors.kernel`.
"""

from ._admission import Admission as Admission
from ._brokers import BatchBroker as BatchBroker
from ._brokers import Broker as Broker
from ._brokers import BrokerContext as BrokerContext
from ._brokers import BrokerRegistry as BrokerRegistry
from ._brokers import BrokerResolution as BrokerResolution
from ._brokers import StoreBroker as StoreBroker
from ._brokers import resolve_brokers as resolve_brokers
from ._caches import ActionCache as ActionCache
from ._caches import ActionCacheClient as ActionCacheClient
from ._caches import PromptCache as PromptCache
from ._caches import PromptCacheClient as PromptCacheClient
from ._caches import ScopedVariablesCache as ScopedVariablesCache
from ._caches import ScopedVariablesCacheClient as ScopedVariablesCacheClient
from ._caches import prompt_definition_from_record as prompt_definition_from_record
from ._executor import ExecutorActor as ExecutorActor
from ._executor import ExecutorLeases as ExecutorLeases
from ._executor import FencedPersistence as FencedPersistence
from ._instance import InstanceActor as InstanceActor
from ._instance_home import EngineContext as EngineContext
from ._instance_home import InstanceHome as InstanceHome
from ._instance_home import InstanceSpec as InstanceSpec
from ._instance_home import TurnRetry as TurnRetry
from ._ownership import RunClaim as RunClaim
from ._ownership import released_on_error as released_on_error
from ._recovery import ReclaimReport as ReclaimReport
from ._recovery import RecoveryReport as RecoveryReport
from ._recovery import reclaim_expired as reclaim_expired
from ._recovery import recover as recover
from ._registry import InstanceRegistry as InstanceRegistry
from ._registry import InstanceRegistryClient as InstanceRegistryClient
from ._registry import instance_registry_actor as instance_registry_actor
from ._run_tracker import CommitBackoff as CommitBackoff
from ._run_tracker import RunTracker as RunTracker
from ._run_tracker import RunTrackerClient as RunTrackerClient
from ._run_tracker import run_tracker_actor as run_tracker_actor
from ._turns import Subscription as Subscription
from ._turns import TurnChunk as TurnChunk
from ._turns import TurnResult as TurnResult
from ._turns import TurnTicket as TurnTicket

__all__ = [
    "ActionCache",
    "ActionCacheClient",
    "Admission",
    "BatchBroker",
    "Broker",
    "BrokerContext",
    "BrokerRegistry",
    "BrokerResolution",
    "CommitBackoff",
    "EngineContext",
    "ExecutorActor",
    "ExecutorLeases",
    "FencedPersistence",
    "InstanceActor",
    "InstanceHome",
    "InstanceRegistry",
    "InstanceRegistryClient",
    "InstanceSpec",
    "PromptCache",
    "PromptCacheClient",
    "ReclaimReport",
    "RecoveryReport",
    "RunClaim",
    "RunTracker",
    "RunTrackerClient",
    "ScopedVariablesCache",
    "ScopedVariablesCacheClient",
    "StoreBroker",
    "Subscription",
    "TurnChunk",
    "TurnResult",
    "TurnRetry",
    "TurnTicket",
    "instance_registry_actor",
    "prompt_definition_from_record",
    "reclaim_expired",
    "recover",
    "released_on_error",
    "resolve_brokers",
    "run_tracker_actor",
]

"""The actor kernel, and the engine's concrete actors.

Kernel: actors, references, mailboxes, standalone spawning.

An actor owns its state and a bounded mailbox and handles one message at a time in its
own task. Callers hold an :class:`ActorRef` and ``tell`` (fire and forget, with
backpressure) or ``ask`` (wait for the reply). Supervision lives in
:mod:`promptactors.supervisors`.

Engine actors: :class:`InstanceActor` (one execution instance), :class:`Registry`, the
single-flight caches (:class:`PromptCache`, :class:`ActionCache`,
:class:`ScopedVariablesCache`), :class:`RunTracker` (group commit), each with a client
facade, plus brokers and crash recovery (:func:`recover`).
"""

from ._actor import DEFAULT_MAILBOX_SIZE as DEFAULT_MAILBOX_SIZE
from ._actor import Actor as Actor
from ._actor import handler as handler
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
from ._cell import DeferredReply as DeferredReply
from ._cell import Exit as Exit
from ._gc import set_gc_freeze_interval as set_gc_freeze_interval
from ._instance import EngineContext as EngineContext
from ._instance import InstanceActor as InstanceActor
from ._instance import InstanceHome as InstanceHome
from ._instance import InstanceSpec as InstanceSpec
from ._recovery import RecoveryReport as RecoveryReport
from ._recovery import recover as recover
from ._ref import DEFAULT_ASK_TIMEOUT as DEFAULT_ASK_TIMEOUT
from ._ref import ActorRef as ActorRef
from ._ref import PendingReply as PendingReply
from ._registry import Registry as Registry
from ._registry import RegistryClient as RegistryClient
from ._registry import registry_actor as registry_actor
from ._run_tracker import RunTracker as RunTracker
from ._run_tracker import RunTrackerClient as RunTrackerClient
from ._run_tracker import run_tracker_actor as run_tracker_actor
from ._spawn import spawn as spawn
from ._turns import Subscription as Subscription
from ._turns import TurnChunk as TurnChunk
from ._turns import TurnResult as TurnResult
from ._turns import TurnTicket as TurnTicket

__all__ = [
    "DEFAULT_ASK_TIMEOUT",
    "DEFAULT_MAILBOX_SIZE",
    "ActionCache",
    "ActionCacheClient",
    "Actor",
    "ActorRef",
    "BatchBroker",
    "Broker",
    "BrokerContext",
    "BrokerRegistry",
    "BrokerResolution",
    "DeferredReply",
    "EngineContext",
    "Exit",
    "InstanceActor",
    "InstanceHome",
    "InstanceSpec",
    "PendingReply",
    "PromptCache",
    "PromptCacheClient",
    "RecoveryReport",
    "Registry",
    "RegistryClient",
    "RunTracker",
    "RunTrackerClient",
    "ScopedVariablesCache",
    "ScopedVariablesCacheClient",
    "StoreBroker",
    "Subscription",
    "TurnChunk",
    "TurnResult",
    "TurnTicket",
    "handler",
    "prompt_definition_from_record",
    "recover",
    "registry_actor",
    "resolve_brokers",
    "run_tracker_actor",
    "set_gc_freeze_interval",
    "spawn",
]

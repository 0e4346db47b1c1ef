"""promptactors: an actor-model runtime on trio that executes LLM prompts.

Start with :func:`open_runtime`; the kernel (:class:`Actor`, :func:`spawn`) and the
supervisors (:mod:`promptactors.supervisors`) are there for your own actors. The public
API is re-exported here from private modules; ``__all__`` is frozen by a test.
"""

from ._chaos import FAULT_KINDS as FAULT_KINDS
from ._chaos import ChaosReport as ChaosReport
from ._chaos import SweepReport as SweepReport
from ._chaos import run_chaos as run_chaos
from ._chaos import simulate_sweep as simulate_sweep
from ._exceptions import *  # noqa: F403 - the exception names are part of the public API
from ._exceptions import __all__ as _exception_names
from ._load import LoadMonitor as LoadMonitor
from ._load import LoadPart as LoadPart
from ._load import LoadReport as LoadReport
from ._load import merge_reports as merge_reports
from ._load import run_load as run_load
from ._prompt_files import load_prompt_file as load_prompt_file
from ._settings import RuntimeSettings as RuntimeSettings
from ._version import __version__ as __version__
from .actors import Broker as Broker
from .actors import BrokerContext as BrokerContext
from .actors import BrokerRegistry as BrokerRegistry
from .actors import BrokerResolution as BrokerResolution
from .actors import RecoveryReport as RecoveryReport
from .actors import StoreBroker as StoreBroker
from .actors import TurnChunk as TurnChunk
from .actors import TurnResult as TurnResult
from .actors import TurnTicket as TurnTicket
from .kernel import DEFAULT_ASK_TIMEOUT as DEFAULT_ASK_TIMEOUT
from .kernel import DEFAULT_MAILBOX_SIZE as DEFAULT_MAILBOX_SIZE
from .kernel import Actor as Actor
from .kernel import ActorRef as ActorRef
from .kernel import DeferredReply as DeferredReply
from .kernel import PendingReply as PendingReply
from .kernel import handler as handler
from .kernel import set_gc_freeze_interval as set_gc_freeze_interval
from .kernel import spawn as spawn
from .messages import ExecutionConfig as ExecutionConfig
from .messages import ExecutionInstance as ExecutionInstance
from .messages import ExecutionStatus as ExecutionStatus
from .messages import PromptDefinition as PromptDefinition
from .messages import PromptMessage as PromptMessage
from .messages import ScopedValues as ScopedValues
from .messages import VariableDefault as VariableDefault
from .runtime import ActionStart as ActionStart
from .runtime import InstanceHandle as InstanceHandle
from .runtime import Runtime as Runtime
from .runtime import TurnStream as TurnStream
from .runtime import open_runtime as open_runtime

__all__ = [
    "TurnTicket",
    "RecoveryReport",
    "BrokerResolution",
    "PendingReply",
    "DeferredReply",
    "DEFAULT_ASK_TIMEOUT",
    "DEFAULT_MAILBOX_SIZE",
    "ActionStart",
    "Actor",
    "ActorRef",
    "Broker",
    "BrokerContext",
    "BrokerRegistry",
    "ExecutionConfig",
    "ExecutionInstance",
    "ExecutionStatus",
    "InstanceHandle",
    "LoadMonitor",
    "LoadPart",
    "LoadReport",
    "ChaosReport",
    "FAULT_KINDS",
    "SweepReport",
    "PromptDefinition",
    "PromptMessage",
    "Runtime",
    "RuntimeSettings",
    "ScopedValues",
    "StoreBroker",
    "TurnChunk",
    "TurnResult",
    "TurnStream",
    "VariableDefault",
    "__version__",
    "handler",
    "load_prompt_file",
    "merge_reports",
    "open_runtime",
    "run_load",
    "run_chaos",
    "simulate_sweep",
    "set_gc_freeze_interval",
    "spawn",
    *_exception_names,
]

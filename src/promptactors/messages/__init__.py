"""The typed message spec: the execution instance as data, and the events that change it.

Every model is frozen and rejects unknown fields; constructing one with a bad argument
raises :class:`~promptactors.InvalidInput` naming the model and the field.
"""

from __future__ import annotations

from ._base import MAX_ID_CHARS as MAX_ID_CHARS
from ._base import MAX_INPUT_CHARS as MAX_INPUT_CHARS
from ._base import MAX_NAME_CHARS as MAX_NAME_CHARS
from ._base import VARIABLE_NAME_PATTERN as VARIABLE_NAME_PATTERN
from ._base import Frozen as Frozen
from ._base import Id as Id
from ._base import InputText as InputText
from ._base import Role as Role
from ._base import Timestamp as Timestamp
from ._base import VariableName as VariableName
from ._base import describe_validation_error as describe_validation_error
from ._caches import CacheStats as CacheStats
from ._caches import GetAction as GetAction
from ._caches import GetCacheStats as GetCacheStats
from ._caches import GetPrompt as GetPrompt
from ._caches import GetScopedVariables as GetScopedVariables
from ._caches import InvalidateActions as InvalidateActions
from ._caches import InvalidatePrompts as InvalidatePrompts
from ._caches import InvalidateScopedVariables as InvalidateScopedVariables
from ._commands import ClearConversation as ClearConversation
from ._commands import ClearVariable as ClearVariable
from ._commands import CurrentTurn as CurrentTurn
from ._commands import Execute as Execute
from ._commands import ExportJournal as ExportJournal
from ._commands import GetSnapshot as GetSnapshot
from ._commands import InstanceCommand as InstanceCommand
from ._commands import PendingTurns as PendingTurns
from ._commands import Select as Select
from ._commands import SetExpandedVariable as SetExpandedVariable
from ._commands import SetInput as SetInput
from ._commands import SetScopedValues as SetScopedValues
from ._commands import Subscribe as Subscribe
from ._commands import ToggleShowVariables as ToggleShowVariables
from ._commands import UpdateVariables as UpdateVariables
from ._events import EVENT_TYPES as EVENT_TYPES
from ._events import ActionValuesSet as ActionValuesSet
from ._events import AttemptRetrying as AttemptRetrying
from ._events import BrokerValuesSet as BrokerValuesSet
from ._events import ComputedValuesSet as ComputedValuesSet
from ._events import ConversationCleared as ConversationCleared
from ._events import Event as Event
from ._events import EventBase as EventBase
from ._events import ExecutionCancelled as ExecutionCancelled
from ._events import ExecutionCompleted as ExecutionCompleted
from ._events import ExecutionFailed as ExecutionFailed
from ._events import ExecutionStarted as ExecutionStarted
from ._events import ExpandedVariableSet as ExpandedVariableSet
from ._events import InputSet as InputSet
from ._events import InstanceCreated as InstanceCreated
from ._events import InstanceReset as InstanceReset
from ._events import InstanceRestored as InstanceRestored
from ._events import MessageAdded as MessageAdded
from ._events import ResourcesSet as ResourcesSet
from ._events import RunLinked as RunLinked
from ._events import RunSaved as RunSaved
from ._events import ScopedVariablesSet as ScopedVariablesSet
from ._events import SettingsUpdated as SettingsUpdated
from ._events import ShowVariablesToggled as ShowVariablesToggled
from ._events import StatusChanged as StatusChanged
from ._events import StreamDelta as StreamDelta
from ._events import StreamingStarted as StreamingStarted
from ._events import UserTurnFailed as UserTurnFailed
from ._events import VariableCleared as VariableCleared
from ._events import VariablesUpdated as VariablesUpdated
from ._events import VariableUpdated as VariableUpdated
from ._events import parse_event as parse_event
from ._instance import Conversation as Conversation
from ._instance import ConversationMessage as ConversationMessage
from ._instance import ExecutionConfig as ExecutionConfig
from ._instance import ExecutionInstance as ExecutionInstance
from ._instance import ExecutionStatus as ExecutionStatus
from ._instance import ExecutionTracking as ExecutionTracking
from ._instance import ExecutionVariables as ExecutionVariables
from ._instance import FieldChange as FieldChange
from ._instance import InstanceStats as InstanceStats
from ._instance import LiveStats as LiveStats
from ._instance import PromptDefinition as PromptDefinition
from ._instance import PromptMessage as PromptMessage
from ._instance import PromptSource as PromptSource
from ._instance import Readiness as Readiness
from ._instance import RunTracking as RunTracking
from ._instance import ScopedValues as ScopedValues
from ._instance import UIState as UIState
from ._instance import UsageTotals as UsageTotals
from ._instance import VariableDefault as VariableDefault
from ._instance import VariableExplanation as VariableExplanation
from ._instance import Variables as Variables
from ._instance import VariableSource as VariableSource
from ._instance import VariableValue as VariableValue
from ._registry import AllInstances as AllInstances
from ._registry import AnnounceInstance as AnnounceInstance
from ._registry import AnnounceRun as AnnounceRun
from ._registry import CountInstances as CountInstances
from ._registry import GetInstance as GetInstance
from ._registry import InstanceByRun as InstanceByRun
from ._registry import InstancesByPrompt as InstancesByPrompt
from ._registry import LinkRun as LinkRun
from ._registry import PruneInstances as PruneInstances
from ._registry import RegisterInstance as RegisterInstance
from ._registry import RegistryCommand as RegistryCommand
from ._registry import UnregisterInstance as UnregisterInstance
from ._tracker import CommitWaiter as CommitWaiter
from ._tracker import FlushOps as FlushOps
from ._tracker import GetTrackerStats as GetTrackerStats
from ._tracker import PersistOps as PersistOps
from ._tracker import SubmitOps as SubmitOps
from ._tracker import TrackerCommand as TrackerCommand
from ._tracker import TrackerStats as TrackerStats

__all__ = [
    "EVENT_TYPES",
    "MAX_ID_CHARS",
    "MAX_INPUT_CHARS",
    "MAX_NAME_CHARS",
    "VARIABLE_NAME_PATTERN",
    "ActionValuesSet",
    "AllInstances",
    "AnnounceInstance",
    "AnnounceRun",
    "AttemptRetrying",
    "BrokerValuesSet",
    "CacheStats",
    "ClearConversation",
    "ClearVariable",
    "CommitWaiter",
    "ComputedValuesSet",
    "Conversation",
    "ConversationCleared",
    "ConversationMessage",
    "CountInstances",
    "CurrentTurn",
    "Event",
    "EventBase",
    "Execute",
    "ExecutionCancelled",
    "ExecutionCompleted",
    "ExecutionConfig",
    "ExecutionFailed",
    "ExecutionInstance",
    "ExecutionStarted",
    "ExecutionStatus",
    "ExecutionTracking",
    "ExecutionVariables",
    "ExpandedVariableSet",
    "ExportJournal",
    "FieldChange",
    "FlushOps",
    "Frozen",
    "GetAction",
    "GetCacheStats",
    "GetInstance",
    "GetPrompt",
    "GetScopedVariables",
    "GetSnapshot",
    "GetTrackerStats",
    "Id",
    "InputSet",
    "InputText",
    "InstanceByRun",
    "InstanceCommand",
    "InstanceCreated",
    "InstanceReset",
    "InstanceRestored",
    "InstanceStats",
    "InstancesByPrompt",
    "InvalidateActions",
    "InvalidatePrompts",
    "InvalidateScopedVariables",
    "LinkRun",
    "LiveStats",
    "MessageAdded",
    "PendingTurns",
    "PersistOps",
    "PromptDefinition",
    "PromptMessage",
    "PromptSource",
    "PruneInstances",
    "Readiness",
    "RegisterInstance",
    "RegistryCommand",
    "ResourcesSet",
    "Role",
    "RunLinked",
    "RunSaved",
    "RunTracking",
    "ScopedValues",
    "ScopedVariablesSet",
    "Select",
    "SetExpandedVariable",
    "SetInput",
    "SetScopedValues",
    "SettingsUpdated",
    "ShowVariablesToggled",
    "StatusChanged",
    "StreamDelta",
    "StreamingStarted",
    "SubmitOps",
    "Subscribe",
    "Timestamp",
    "ToggleShowVariables",
    "TrackerCommand",
    "TrackerStats",
    "UIState",
    "UnregisterInstance",
    "UpdateVariables",
    "UsageTotals",
    "UserTurnFailed",
    "VariableCleared",
    "VariableDefault",
    "VariableExplanation",
    "VariableName",
    "VariableSource",
    "VariableUpdated",
    "VariableValue",
    "Variables",
    "VariablesUpdated",
    "describe_validation_error",
    "parse_event",
]

"""Pure code of the execution engine: reducer, selectors, variables, templates, journal.

No I/O and no clock: times come in the events, the current time for computed variables
is passed in. The status machine is drawn in :mod:`promptactors.state._machine`.
"""

from __future__ import annotations

from ._journal import JOURNAL_FORMAT as JOURNAL_FORMAT
from ._journal import JOURNAL_VERSION as JOURNAL_VERSION
from ._journal import diff as diff
from ._journal import export_journal as export_journal
from ._journal import import_journal as import_journal
from ._journal import replay as replay
from ._machine import TRANSITIONS as TRANSITIONS
from ._machine import TURN_STATUSES as TURN_STATUSES
from ._machine import can_transition as can_transition
from ._machine import check_transition as check_transition
from ._reducer import append_stream as append_stream
from ._reducer import reduce as reduce
from ._selectors import conversation_messages as conversation_messages
from ._selectors import display_messages as display_messages
from ._selectors import explain_variables as explain_variables
from ._selectors import has_unsaved_changes as has_unsaved_changes
from ._selectors import instance_stats as instance_stats
from ._selectors import is_ready_to_execute as is_ready_to_execute
from ._selectors import is_response_ended as is_response_ended
from ._selectors import live_stats as live_stats
from ._selectors import merged_variables as merged_variables
from ._selectors import missing_variables as missing_variables
from ._selectors import model_config as model_config
from ._selectors import required_variables as required_variables
from ._selectors import resolved_messages as resolved_messages
from ._selectors import streaming_text as streaming_text
from ._selectors import system_message as system_message
from ._selectors import template_messages as template_messages
from ._state import InstanceCore as InstanceCore
from ._state import InstanceState as InstanceState
from ._state import StreamView as StreamView
from ._state import Turn as Turn
from ._state import from_snapshot as from_snapshot
from ._state import snapshot as snapshot
from ._templates import PLACEHOLDER as PLACEHOLDER
from ._templates import find_variables as find_variables
from ._templates import render as render
from ._templates import render_messages as render_messages
from ._turn import TurnLife as TurnLife
from ._turn import TurnOutcome as TurnOutcome
from ._turn import TurnPhase as TurnPhase
from ._turn import TurnSignal as TurnSignal
from ._turn import advance as advance_turn
from ._variables import COMPUTED_VARIABLES as COMPUTED_VARIABLES
from ._variables import computed_variables as computed_variables
from ._variables import explain_variable_layers as explain_variable_layers
from ._variables import merge_variables as merge_variables
from ._variables import variable_layers as variable_layers

__all__ = [
    "COMPUTED_VARIABLES",
    "JOURNAL_FORMAT",
    "JOURNAL_VERSION",
    "PLACEHOLDER",
    "TRANSITIONS",
    "TURN_STATUSES",
    "InstanceCore",
    "InstanceState",
    "StreamView",
    "Turn",
    "TurnLife",
    "TurnOutcome",
    "TurnPhase",
    "TurnSignal",
    "advance_turn",
    "append_stream",
    "can_transition",
    "check_transition",
    "computed_variables",
    "conversation_messages",
    "diff",
    "display_messages",
    "explain_variable_layers",
    "explain_variables",
    "export_journal",
    "find_variables",
    "from_snapshot",
    "has_unsaved_changes",
    "import_journal",
    "instance_stats",
    "is_ready_to_execute",
    "is_response_ended",
    "live_stats",
    "merge_variables",
    "merged_variables",
    "missing_variables",
    "model_config",
    "reduce",
    "render",
    "render_messages",
    "replay",
    "required_variables",
    "resolved_messages",
    "snapshot",
    "streaming_text",
    "system_message",
    "template_messages",
    "variable_layers",
]

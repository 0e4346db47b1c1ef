"""The status machine of an execution instance.

Legal transitions, and the event that makes each one::

    from          to             by
    idle          initializing   StatusChanged
    idle          error          StatusChanged
    initializing  ready          StatusChanged
    initializing  error          StatusChanged
    ready         executing      ExecutionStarted
    ready         error          StatusChanged
    executing     streaming      StreamingStarted
    executing     completed      ExecutionCompleted (a turn whose stream carried no text)
    executing     error          ExecutionFailed, ExecutionCancelled
    streaming     completed      ExecutionCompleted
    streaming     error          ExecutionFailed, ExecutionCancelled
    executing     executing      AttemptRetrying (a failed attempt; the turn goes on)
    streaming     executing      AttemptRetrying
    completed     executing      ExecutionStarted (a further turn: needs allow_chat)
    completed     ready          StatusChanged, ConversationCleared, InstanceReset
    error         executing      ExecutionStarted (a retry; a further turn needs allow_chat)
    error         ready          StatusChanged, ConversationCleared, InstanceReset

``ConversationCleared`` and ``InstanceReset`` leave ``idle``, ``initializing`` and
``ready`` as they are and are refused while a turn runs (``executing``, ``streaming``).

A further turn needs ``allow_chat``: when the conversation already holds an answer and
``allow_chat`` is off, ``ExecutionStarted`` raises ``ChatNotAllowed`` whatever the status.
A failed first turn may be retried (``error -> executing``) without ``allow_chat``.

``InstanceRestored`` is not a transition: it replaces the whole state with a committed
snapshot. Every other transition raises ``IllegalTransition`` and leaves the state as it
was; so does an event a status does not accept (a ``StreamDelta`` outside ``streaming``,
a ``MessageAdded`` during a turn...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from promptactors._exceptions import IllegalTransition
from promptactors.messages import ExecutionStatus

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["TRANSITIONS", "TURN_STATUSES", "can_transition", "check_transition"]

_S = ExecutionStatus

TRANSITIONS: Mapping[ExecutionStatus, frozenset[ExecutionStatus]] = {
    _S.IDLE: frozenset({_S.INITIALIZING, _S.ERROR}),
    _S.INITIALIZING: frozenset({_S.READY, _S.ERROR}),
    _S.READY: frozenset({_S.EXECUTING, _S.ERROR}),
    _S.EXECUTING: frozenset({_S.EXECUTING, _S.STREAMING, _S.COMPLETED, _S.ERROR}),
    _S.STREAMING: frozenset({_S.EXECUTING, _S.COMPLETED, _S.ERROR}),
    _S.COMPLETED: frozenset({_S.EXECUTING, _S.READY}),
    _S.ERROR: frozenset({_S.EXECUTING, _S.READY}),
}
"""For each status, the statuses it may move to."""

TURN_STATUSES = frozenset({_S.EXECUTING, _S.STREAMING})
"""The statuses in which a turn is running."""


def can_transition(current: ExecutionStatus, requested: ExecutionStatus) -> bool:
    """Whether the table allows ``current -> requested``."""
    return requested in TRANSITIONS[current]


def check_transition(
    current: ExecutionStatus, requested: ExecutionStatus, detail: str | None = None
) -> None:
    """Raise ``IllegalTransition`` unless the table allows ``current -> requested``."""
    if requested not in TRANSITIONS[current]:
        raise IllegalTransition(current.value, requested.value, detail)

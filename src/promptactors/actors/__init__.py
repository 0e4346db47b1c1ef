"""The actor kernel: actors, references, mailboxes, standalone spawning.

An actor owns its state and a bounded mailbox and handles one message at a time in its
own task. Callers hold an :class:`ActorRef` and ``tell`` (fire and forget, with
backpressure) or ``ask`` (wait for the reply). Supervision lives in
:mod:`promptactors.supervisors`.
"""

from ._actor import DEFAULT_MAILBOX_SIZE as DEFAULT_MAILBOX_SIZE
from ._actor import Actor as Actor
from ._actor import handler as handler
from ._cell import DeferredReply as DeferredReply
from ._cell import Exit as Exit
from ._gc import set_gc_freeze_interval as set_gc_freeze_interval
from ._ref import DEFAULT_ASK_TIMEOUT as DEFAULT_ASK_TIMEOUT
from ._ref import ActorRef as ActorRef
from ._ref import PendingReply as PendingReply
from ._spawn import spawn as spawn

__all__ = [
    "DEFAULT_ASK_TIMEOUT",
    "DEFAULT_MAILBOX_SIZE",
    "Actor",
    "ActorRef",
    "DeferredReply",
    "Exit",
    "PendingReply",
    "handler",
    "set_gc_freeze_interval",
    "spawn",
]

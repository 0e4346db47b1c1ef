"""The generic actor kernel: actors, references, bounded mailboxes, spawning.

An actor owns its state and a bounded mailbox and handles one message at a time in its
own task. Callers hold an :class:`ActorRef` and ``tell`` (fire and forget, with
backpressure) or ``ask`` (wait for the reply). The kernel knows nothing of prompts: it
builds on the concurrency seam (``promptactors._backend``) alone. Supervision lives in
:mod:`promptactors.supervisors`, the engine's actors in :mod:`promptactors.actors`.

The second group of names is the seam the supervisors build on (a cell is one actor's
mailbox and lifecycle; ``run_incarnation`` runs one incarnation of it) and two helpers
for code that answers waiters itself: :func:`reply_slot` and :func:`start_soon`.
"""

from ._actor import DEFAULT_MAILBOX_SIZE as DEFAULT_MAILBOX_SIZE
from ._actor import Actor as Actor
from ._actor import handler as handler
from ._cell import Cell as Cell
from ._cell import DeferredReply as DeferredReply
from ._cell import Exit as Exit
from ._cell import run_incarnation as run_incarnation
from ._gc import set_gc_freeze_interval as set_gc_freeze_interval
from ._ref import DEFAULT_ASK_TIMEOUT as DEFAULT_ASK_TIMEOUT
from ._ref import ActorRef as ActorRef
from ._ref import PendingReply as PendingReply
from ._ref import crash_actor as crash_actor
from ._spawn import spawn as spawn
from ._start import Reply as Reply
from ._start import Starter as Starter
from ._start import reply_slot as reply_slot
from ._start import start_and_wait as start_and_wait
from ._start import start_soon as start_soon

__all__ = [
    "DEFAULT_ASK_TIMEOUT",
    "DEFAULT_MAILBOX_SIZE",
    "Actor",
    "ActorRef",
    "Cell",
    "DeferredReply",
    "Exit",
    "PendingReply",
    "Reply",
    "Starter",
    "crash_actor",
    "handler",
    "reply_slot",
    "run_incarnation",
    "set_gc_freeze_interval",
    "spawn",
    "start_and_wait",
    "start_soon",
]

"""The one concurrency seam: the only package that imports trio, asyncio, sniffio or outcome.

Everything above it (the kernel, the providers, the stores) is written against anyio plus
the few primitives here, each implemented once per backend and chosen once per event loop
by :func:`get_backend`:

* park/wake mailboxes and one-shot reply slots (:class:`Mailbox`, :class:`Reply`);
* the one deadline service (:class:`Ticker` and its :class:`Timer` entries) that paces
  simulated streams and expires ask timeouts without a cancel scope per wait;
* the worker threads that run blocking or asyncio-only work and wake a trio or asyncio
  caller (:class:`WorkerThread` for SQLite, :class:`LoopThread` for asyncpg on trio);
* virtual time with a seeded scheduler, seeded ids and seeded jitter for chaos sweeps
  (:func:`run_virtual`, :func:`new_id`, :func:`jitter_rng`).
"""

from ._bridge import AsyncioRunner as AsyncioRunner
from ._bridge import LoopThread as LoopThread
from ._bridge import WorkerThread as WorkerThread
from ._bridge import wait_for as wait_for
from ._deterministic import deterministic_scheduling as deterministic_scheduling
from ._deterministic import run_virtual as run_virtual
from ._entropy import VIRTUAL_EPOCH as VIRTUAL_EPOCH
from ._entropy import jitter_rng as jitter_rng
from ._entropy import new_id as new_id
from ._entropy import seeded_entropy as seeded_entropy
from ._primitives import NO_ITEMS as NO_ITEMS
from ._primitives import TIMEOUT_RESOLUTION as TIMEOUT_RESOLUTION
from ._primitives import Backend as Backend
from ._primitives import Mailbox as Mailbox
from ._primitives import Reply as Reply
from ._primitives import Timer as Timer
from ._primitives import get_backend as get_backend
from ._ticker import Ticker as Ticker

__all__ = [
    "NO_ITEMS",
    "TIMEOUT_RESOLUTION",
    "VIRTUAL_EPOCH",
    "AsyncioRunner",
    "Backend",
    "LoopThread",
    "Mailbox",
    "Reply",
    "Ticker",
    "Timer",
    "WorkerThread",
    "deterministic_scheduling",
    "get_backend",
    "jitter_rng",
    "new_id",
    "run_virtual",
    "seeded_entropy",
    "wait_for",
]

"""Garbage-collector policy for mass spawns.

Spawning thousands of actors is dominated by CPython's full (generation 2) collections,
each of which rescans every object the process holds: measured here, 10,000 spawns took
0.86 s with the default collector and 0.35 s when ``gc.freeze()`` ran after every 1,000
spawns (frozen objects are no longer rescanned).
current objects after every ``interval`` actors it creates.

Spawning is not the only source of long-lived objects: every completed turn leaves its
events, messages and results behind, and at 10,000 instances full collections rescanning
them took 7 of 18 s of CPU. So the kernel also freezes after every ``GEN1_PER_FREEZE``
collection of generation 1 (a gc callback): what survived it is long-lived, and the full
collections that follow only see the objects created since. Every
``FREEZES_PER_UNFREEZE`` freezes it unfreezes instead, once.

Young collections: CPython collects its youngest generation every 700 net allocations of
container objects. An actor runtime allocates a few per message (replies, outcomes,
records), and each young collection also walks the big transient containers alive at
that moment (a batch being committed, say): measured here, the run tracker's group commit
spent 0.53 s in 709 young collections for 20,000 tracked executions, and 0.08 s in 23 with
the threshold at 10,000, which made it 12-17% faster; the engine's per-token CPU did not
change. So the first actor raises the young threshold to ``YOUNG_THRESHOLD`` (when it is
still CPython's default: an application's own tuning is left alone).

The trade-off: a frozen object that later becomes part of a garbage *cycle* is not
reclaimed until ``gc.unfreeze()``. The kernel breaks the reference cycles of its own
objects when an actor stops, so stopped actors are freed by reference counting. An
embedding application that wants none of this calls ``set_gc_freeze_interval(None)``
(which also puts the young threshold back).
"""

from __future__ import annotations

import gc

from .._exceptions import InvalidInput

__all__ = ["DEFAULT_GC_FREEZE_INTERVAL", "note_actor_started", "set_gc_freeze_interval"]

DEFAULT_GC_FREEZE_INTERVAL = 100

_interval: int | None = DEFAULT_GC_FREEZE_INTERVAL
_since_freeze = 0

#: The young generation's threshold once actors run (CPython's default: 700).
YOUNG_THRESHOLD = 10_000
_CPYTHON_YOUNG = 700
_raised_from: int | None = None  # the threshold replaced, while ours is in place


def set_gc_freeze_interval(interval: int | None) -> None:
    """Freeze the collector after every ``interval`` actors created; ``None`` turns it off.

    Raises ``InvalidInput`` for an interval below 1.
    """
    global _interval, _since_freeze, _raised_from
    if interval is not None and interval < 1:
        raise InvalidInput(f"gc freeze interval must be >= 1 or None, got {interval}")
    _interval = interval
    _since_freeze = 0
    if interval is None and _raised_from is not None:
        young, older, oldest = gc.get_threshold()
        if young == YOUNG_THRESHOLD:
            gc.set_threshold(_raised_from, older, oldest)
        _raised_from = None


#: Generation-1 collections between two freezes of what survived them (measured: every
#: one, 19.5 us of CPU per token at 10,000 streaming instances; every fourth, 22.3).
GEN1_PER_FREEZE = 1
#: Freezes after which everything is unfrozen once, so that the next full collection
#: reclaims cyclic garbage that was frozen (a failed turn's traceback, say) — rarely
#: enough to cost little, often enough that such garbage cannot pile up for long.
FREEZES_PER_UNFREEZE = 10_000

_gen1_collections = 0
_freezes = 0
_watching = False


def _after_collection(phase: str, info: dict[str, int]) -> None:
    global _gen1_collections
    if phase != "stop" or info["generation"] != 1 or _interval is None:
        return
    _gen1_collections += 1
    if _gen1_collections >= GEN1_PER_FREEZE:
        _gen1_collections = 0
        _freeze()


def _freeze() -> None:
    global _freezes
    _freezes += 1
    if _freezes >= FREEZES_PER_UNFREEZE:
        _freezes = 0
        gc.unfreeze()
    else:
        gc.freeze()


def note_actor_started() -> None:
    global _since_freeze, _watching, _raised_from
    if _interval is None:
        return
    if not _watching:
        _watching = True
        gc.callbacks.append(_after_collection)
        young, older, oldest = gc.get_threshold()
        if young == _CPYTHON_YOUNG:
            _raised_from = young
            gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    _since_freeze += 1
    if _since_freeze >= _interval:
        _since_freeze = 0
        _freeze()

"""The runtime's randomness, made a function of the seed inside a virtual run.

Ids (runs, tasks, tickets) and backoff jitter are random. In production they come from
``uuid4()`` and unseeded ``random.Random()`` generators. Inside :func:`run_virtual` they
must not: a seed's run has to be a pure function of the seed, in this process after any
other runs and in a new one. So :func:`seeded_entropy` installs one generator, seeded from
the seed, in a context variable for the duration of the run (``trio.run`` copies the
caller's context into every task), and :func:`new_id` / :func:`jitter_rng` draw from it.
The draws happen in task order, which the seeded scheduler fixes.
"""

from __future__ import annotations

import random
import uuid
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["VIRTUAL_EPOCH", "jitter_rng", "new_id", "seeded_entropy"]

#: The wall time that virtual time 0 stands for in a virtual run (no wall clock there).
VIRTUAL_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)

_entropy: ContextVar[random.Random | None] = ContextVar("promptactors_entropy", default=None)


@contextmanager
def seeded_entropy(seed: int) -> Iterator[None]:
    """Within the block (and the ``trio.run`` started in it), ids and jitter are drawn
    from a generator seeded by ``seed``."""
    # A str seed is hashed with SHA-512 by random.Random: the same in every process, and
    # a stream apart from trio's shuffle, which is seeded with the int itself.
    token = _entropy.set(random.Random(f"promptactors-entropy-{seed}"))
    try:
        yield
    finally:
        _entropy.reset(token)


def new_id() -> str:
    """A new random id (a UUID4 string); drawn from the seeded generator in a virtual
    run."""
    source = _entropy.get()
    if source is None:
        return str(uuid.uuid4())
    return str(uuid.UUID(int=source.getrandbits(128), version=4))


def jitter_rng() -> random.Random:
    """A generator for backoff jitter: unseeded, or a child of the seeded generator in a
    virtual run (usable as a dataclass ``default_factory``)."""
    source = _entropy.get()
    if source is None:
        return random.Random()
    return random.Random(source.getrandbits(64))

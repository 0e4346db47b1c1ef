"""Ids and backoff jitter for the layers above the seam (the engine's actors, the runtime).

Drawn from a generator seeded by the run's seed inside ``run_virtual`` (so a simulated run
is a function of its seed), else random; see ``promptactors._backend._entropy``.
"""

from .._backend import jitter_rng as jitter_rng
from .._backend import new_id as new_id

__all__ = ["jitter_rng", "new_id"]

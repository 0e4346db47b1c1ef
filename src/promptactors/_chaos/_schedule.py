"""The fault schedule of a chaos run: which fault hits which instance, and when the
runtime-wide faults (store outages, crashes of the engine's actors) happen, drawn from
one seed."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from .._exceptions import InvalidInput

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "FAULT_KINDS",
    "GLOBAL_KINDS",
    "INSTANCE_KINDS",
    "PROVIDER_KINDS",
    "GlobalFault",
    "InstanceFault",
    "Schedule",
    "draw_schedule",
    "parse_kinds",
]

#: Faults that hit one instance's turn through the provider (a FaultPlan script).
PROVIDER_KINDS: Final[dict[str, str]] = {
    "provider_error_before_first_token": "a retryable provider error before the first token",
    "provider_reject": "a non-retryable provider error before the first token",
    "provider_error_mid_stream": "a provider error after some tokens",
    "provider_truncate": "a stream that ends without its end event",
    "provider_stall": "a stream that stalls mid-way (longer than the inter-token pace)",
}

#: Faults that hit one instance through the public API or a crash.
INSTANCE_KINDS: Final[dict[str, str]] = {
    "crash_on_entry": "the instance crashes as its turn starts",
    "crash_mid_stream": "the instance crashes while its turn streams",
    **PROVIDER_KINDS,
    "stop_mid_turn": "the instance is stopped while its turn streams",
    "busy_reject": "a second turn while one runs, on_busy=reject (TurnInProgress)",
    "busy_enqueue": "a second turn while one runs, on_busy=enqueue (it runs next)",
    "busy_interrupt": "a second turn while one runs, on_busy=interrupt (the first is cancelled)",
    "clear_conversation_mid_turn": "the conversation is cleared while a turn streams",
    "update_variables_mid_turn": "variables are updated while a turn streams",
    "run_in_use": "two instances are started at once on the instance's run afterwards",
}

#: Faults of the whole runtime, at times drawn from the seed.
GLOBAL_KINDS: Final[dict[str, str]] = {
    "store_outage": "every store call fails with StoreUnavailable for a window",
    "registry_crash": "the instance registry actor crashes",
    "cache_crash": "a cache actor (prompts, actions or scoped variables) crashes",
    "tracker_crash": "the run tracker actor crashes",
}

FAULT_KINDS: Final[dict[str, str]] = {**INSTANCE_KINDS, **GLOBAL_KINDS}

_CACHES: Final = ("prompt_cache", "action_cache", "scoped_cache")


@dataclass(frozen=True, slots=True)
class InstanceFault:
    """The fault of one instance: its kind, and the token it strikes at (if it matters)."""

    kind: str
    at_token: int = 1

    def script(self, stall_seconds: float) -> list[Any] | None:
        """The FaultPlan script of a provider fault (then the retries stream normally)."""
        k = self.at_token
        scripts: dict[str, list[Any]] = {
            "provider_error_before_first_token": ["fail_before_first_token"],
            "provider_reject": ["reject"],
            "provider_error_mid_stream": [("fail_after", k)],
            "provider_truncate": [("truncate", k)],
            "provider_stall": [("stall", stall_seconds, k)],
        }
        return scripts.get(self.kind)


@dataclass(frozen=True, slots=True)
class GlobalFault:
    """A runtime-wide fault at ``at`` seconds into the run; ``target`` names the actor
    crashed, ``seconds`` is an outage's length."""

    kind: str
    at: float
    target: str = ""
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Schedule:
    seed: int
    instance_faults: tuple[InstanceFault | None, ...]
    global_faults: tuple[GlobalFault, ...]


def parse_kinds(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """``kind1,kind2`` (or an iterable; None or ``all``: every kind) as known kinds in
    their canonical order. Raises ``InvalidInput`` naming an unknown kind."""
    if value is None:
        return tuple(FAULT_KINDS)
    names = value.split(",") if isinstance(value, str) else list(value)
    wanted = {name.strip() for name in names if name.strip()}
    if wanted in ({"all"}, set()):
        return tuple(FAULT_KINDS)
    unknown = sorted(wanted - set(FAULT_KINDS))
    if unknown:
        raise InvalidInput(
            f"unknown fault kind(s) {', '.join(unknown)}; known: {', '.join(FAULT_KINDS)}"
        )
    return tuple(kind for kind in FAULT_KINDS if kind in wanted)


def draw_schedule(
    seed: int,
    instances: int,
    kinds: Iterable[str],
    *,
    fault_rate: float = 0.5,
    tokens: int = 20,
    window: float = 2.0,
    outage_seconds: float = 0.5,
) -> Schedule:
    """Draw the faults of a run from ``seed``: each instance gets one of the selected
    instance kinds with probability ``fault_rate``; each selected global kind strikes at
    times drawn in ``[0.05, window]`` seconds (store outages twice, one crash of each
    actor kind: three crashes stay below the root supervisor's restart intensity)."""
    rng = random.Random(seed)
    chosen = list(kinds)
    local = [k for k in chosen if k in INSTANCE_KINDS]
    faults: list[InstanceFault | None] = []
    for _ in range(instances):
        hit, pick, position = rng.random(), rng.random(), rng.random()
        if local and hit < fault_rate:
            kind = local[int(pick * len(local))]
            faults.append(InstanceFault(kind, at_token=1 + int(position * max(1, tokens - 1))))
        else:
            faults.append(None)
    global_faults: list[GlobalFault] = []
    for kind in (k for k in chosen if k in GLOBAL_KINDS):
        count = 2 if kind == "store_outage" else 1
        for _ in range(count):
            at = round(0.05 + rng.random() * max(0.0, window - 0.05), 4)
            target = {
                "registry_crash": "registry",
                "tracker_crash": "run_tracker",
                "cache_crash": _CACHES[int(rng.random() * len(_CACHES))],
            }.get(kind, "")
            seconds = outage_seconds if kind == "store_outage" else 0.0
            global_faults.append(GlobalFault(kind, at, target, seconds))
    global_faults.sort(key=lambda f: f.at)
    return Schedule(seed, tuple(faults), tuple(global_faults))

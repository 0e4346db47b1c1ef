"""When and how long to wait before sending a failed request again.

A request is retried only while no output has reached the caller: once the first token is
out, a failure is the caller's (the instance's own retry policy decides about the turn).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from promptactors._exceptions import ConfigurationError, ProviderError

__all__ = ["ProviderRetry"]


@dataclass(frozen=True, slots=True)
class ProviderRetry:
    """Exponential backoff with jitter, honouring the provider's ``retry-after``.

    ``max_attempts`` counts the first try (1 means never retry). The n-th retry waits
    ``min(max_delay, base_delay * multiplier ** (n - 1))`` reduced by up to ``jitter`` (a
    fraction) at random, unless the error carries ``retry_after``: then that delay, capped
    at ``max_retry_after``. ``rng`` is injectable so tests are deterministic.

    Raises ``ConfigurationError`` on out-of-range settings.
    """

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    multiplier: float = 2.0
    jitter: float = 0.25
    max_retry_after: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ConfigurationError("retry delays must be >= 0")
        if self.multiplier < 1:
            raise ConfigurationError(f"multiplier must be >= 1, got {self.multiplier}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ConfigurationError(f"jitter must be within [0, 1], got {self.jitter}")

    def should_retry(self, error: BaseException, *, attempt: int, output_started: bool) -> bool:
        """Whether to send again after ``attempt`` (1-based) failed with ``error``.

        Only our ``ProviderError`` marked ``retryable`` is retried, only before any output,
        and only while attempts remain.
        """
        return (
            not output_started
            and attempt < self.max_attempts
            and isinstance(error, ProviderError)
            and error.retryable
        )

    def delay(self, attempt: int, error: BaseException | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        retry_after = error.retry_after if isinstance(error, ProviderError) else None
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        backoff = min(self.max_delay, self.base_delay * self.multiplier ** (attempt - 1))
        return backoff * (1.0 - self.jitter * self.rng.random())

"""The retry policy: which failures are retried, and how long to wait."""

from __future__ import annotations

import random

import anyio
import pytest
import trio
import trio.testing

from promptactors._exceptions import (
    ConfigurationError,
    ProviderBadRequest,
    ProviderRateLimited,
    ProviderServerError,
)
from promptactors.providers._retry import ProviderRetry


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    """Without jitter the delays double from the base and stop at ``max_delay``."""
    policy = ProviderRetry(max_attempts=10, base_delay=0.5, max_delay=3.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_comes_from_the_injected_random_source() -> None:
    """Two policies with equally seeded generators wait exactly the same."""
    first = ProviderRetry(jitter=0.5, rng=random.Random(7))
    second = ProviderRetry(jitter=0.5, rng=random.Random(7))
    delays = [first.delay(n) for n in range(1, 4)]
    assert delays == [second.delay(n) for n in range(1, 4)]
    for n, delay in enumerate(delays, start=1):
        full = 0.5 * 2 ** (n - 1)
        assert full * 0.5 <= delay <= full


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    """The server's delay replaces the backoff, but never exceeds ``max_retry_after``."""
    policy = ProviderRetry(max_retry_after=5.0)
    assert policy.delay(1, ProviderRateLimited("x", retry_after=1.5)) == 1.5
    assert policy.delay(1, ProviderRateLimited("x", retry_after=600.0)) == 5.0


def test_only_retryable_errors_before_the_first_token_are_retried() -> None:
    """Retry needs a retryable error, attempts left, and no output yet."""
    policy = ProviderRetry(max_attempts=3)
    server = ProviderServerError("x")
    assert policy.should_retry(server, attempt=1, output_started=False)
    assert policy.should_retry(server, attempt=2, output_started=False)
    assert not policy.should_retry(server, attempt=3, output_started=False)
    assert not policy.should_retry(server, attempt=1, output_started=True)
    assert not policy.should_retry(ProviderBadRequest("x"), attempt=1, output_started=False)
    spend = ProviderRateLimited("x", retryable=False)
    assert not policy.should_retry(spend, attempt=1, output_started=False)
    assert not policy.should_retry(ValueError("x"), attempt=1, output_started=False)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base_delay": -1}, {"multiplier": 0.5}, {"jitter": 2}],
)
def test_out_of_range_settings_are_rejected(kwargs: dict[str, float]) -> None:
    """Nonsense settings raise ConfigurationError at construction."""
    with pytest.raises(ConfigurationError):
        ProviderRetry(**kwargs)  # type: ignore[arg-type]


@pytest.mark.trio
async def test_a_backoff_schedule_sleeps_the_computed_delays(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Sleeping each computed delay under a virtual clock takes exactly their sum."""
    policy = ProviderRetry(max_attempts=4, base_delay=1.0, max_delay=10.0, rng=random.Random(1))
    expected = [policy.delay(n) for n in (1, 2, 3)]
    replay = ProviderRetry(max_attempts=4, base_delay=1.0, max_delay=10.0, rng=random.Random(1))
    start = trio.current_time()
    for attempt in (1, 2, 3):
        await anyio.sleep(replay.delay(attempt))
    assert trio.current_time() - start == pytest.approx(sum(expected))

"""The simulated provider: offline, deterministic, paced by one shared ticker, with faults.

It is the embedded default (demo, ``load`` and ``chaos`` commands, the engine's benchmark),
so its own cost per token must stay small next to the engine's: every stream of a provider
waits on one :class:`~promptactors.providers.Ticker` instead of a timer per token.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

import anyio
import anyio.lowlevel

from .._backend import Ticker
from .._exceptions import ConfigurationError, InjectedFault, ProviderBadRequest
from ._estimate import estimate_request_tokens
from ._protocol import ProviderRequest, StreamEnd, StreamEvent, TextDelta, Usage

if TYPE_CHECKING:
    from types import TracebackType

    from anyio.abc import TaskGroup, TaskStatus

__all__ = ["FaultOutcome", "FaultPlan", "SimulatedProvider"]

# Short common words: the text reads like (meaningless) prose and one word is one token.
_WORD_LIST: Final = (
    "the of and to in is that for it as with was on be by this are from at or an have not "
    "which but all can one more time some will also data model state actor message stream "
    "token prompt system value task run each when there their new other into only over after "
    "first two may way could then these than most well made work even back through where "
    "much before right three too here must because does part while might small large every "
    "next world order point light clear quick quiet bright simple future question"
)
_SPACED_WORDS: Final = tuple(" " + word for word in _WORD_LIST.split())

# With no latency a stream never waits, so it checkpoints every this many deltas to let
# other tasks run.
_CHECKPOINT_EVERY: Final = 32
# Tolerance when counting how many tokens are due: float schedules such as 0.02 * 3 must
# not lose a token to rounding.
_DUE_SLACK: Final = 1e-6

FaultOutcome: TypeAlias = (
    Literal["ok", "fail_before_first_token", "reject", "truncate"]
    | tuple[Literal["fail_after", "truncate"], int]
    | tuple[Literal["stall"], float]
    | tuple[Literal["stall"], float, int]
)
"""One scripted outcome of a ``stream()`` call:

- ``"ok"``: a normal stream;
- ``"fail_before_first_token"``: ``InjectedFault`` on entering the stream;
- ``"reject"``: ``InjectedFault`` with ``retryable=False`` on entering the stream (a
  request the provider refuses for good: the turn fails without a retry);
- ``("fail_after", k)``: ``k`` tokens, then ``InjectedFault``;
- ``"truncate"`` / ``("truncate", k)``: all (or ``k``) tokens, then ``InjectedFault`` instead
  of the ``StreamEnd``;
- ``("stall", seconds)`` / ``("stall", seconds, k)``: a pause of ``seconds`` before the first
  token (or after ``k`` tokens), then the stream goes on normally.
"""

_Kind: TypeAlias = Literal[
    "ok", "fail_before_first_token", "reject", "fail_after", "truncate", "stall"
]


@dataclass(frozen=True, slots=True)
class _Outcome:
    kind: _Kind
    after: int | None = None  # tokens delivered first; None: all of them (truncate)
    seconds: float = 0.0


_OK: Final = _Outcome("ok")


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_seconds(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < math.inf


def _parse_outcome(index: int, item: object) -> _Outcome:
    if item in ("ok", "fail_before_first_token", "reject", "truncate"):
        return _Outcome(item)
    if isinstance(item, tuple) and item:
        kind, *args = item
        if kind in ("fail_after", "truncate") and len(args) == 1 and _is_count(args[0]):
            return _Outcome(kind, after=args[0])
        if kind == "stall" and len(args) in (1, 2) and _is_seconds(args[0]):
            after = args[1] if len(args) == 2 else 0
            if _is_count(after):
                return _Outcome("stall", after=after, seconds=float(args[0]))
    raise ConfigurationError(
        f"FaultPlan.script[{index}]: {item!r} is not an outcome; expected 'ok', "
        "'fail_before_first_token', 'reject', 'truncate', ('truncate', k), ('fail_after', k), "
        "('stall', seconds) or ('stall', seconds, k) with k >= 0 and seconds >= 0"
    )


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Which faults a :class:`SimulatedProvider` injects, as data.

    First, each ``stream()`` call consumes one outcome of ``script`` (see
    :data:`FaultOutcome`), in call order. When the script is used up, each call draws from
    ``random.Random(seed)``: with probability ``fail_before_first_token`` it fails on
    entry, else ``fail_mid_stream`` after a random number of tokens (at least one),
    else ``truncate`` ends without ``StreamEnd`` after a random number of tokens, else
    ``stall`` pauses ``stall_seconds`` before a random token. Each call draws the same
    amount of randomness, so the same calls in the same order get the same faults (trio
    varies the order of tasks made runnable together, so a concurrent run is reproducible
    as a sequence of faults, not as which task got which).

    Faults raise ``InjectedFault(retryable=True)``, except a scripted ``"reject"``.
    Raises ``ConfigurationError`` for a probability outside [0, 1], a negative
    ``stall_seconds`` or a malformed script entry.
    """

    fail_before_first_token: float = 0.0
    fail_mid_stream: float = 0.0
    truncate: float = 0.0
    stall: float = 0.0
    stall_seconds: float = 5.0
    seed: int = 0
    script: Sequence[FaultOutcome] = ()

    def __post_init__(self) -> None:
        for name in ("fail_before_first_token", "fail_mid_stream", "truncate", "stall"):
            value = getattr(self, name)
            if not _is_seconds(value) or value > 1:
                raise ConfigurationError(
                    f"FaultPlan.{name} must be a probability in [0, 1], got {value!r}"
                )
        if not _is_seconds(self.stall_seconds):
            raise ConfigurationError(
                f"FaultPlan.stall_seconds must be a number >= 0, got {self.stall_seconds!r}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigurationError(f"FaultPlan.seed must be an int, got {self.seed!r}")
        if isinstance(self.script, str | bytes) or not isinstance(self.script, Sequence):
            raise ConfigurationError(
                f"FaultPlan.script must be a sequence of outcomes, got {self.script!r}"
            )
        object.__setattr__(self, "script", tuple(self.script))
        for index, item in enumerate(self.script):
            _parse_outcome(index, item)

    @property
    def injects_faults(self) -> bool:
        """Whether any call can get a fault (a script, or a non-zero probability)."""
        return bool(self.script) or any(
            (self.fail_before_first_token, self.fail_mid_stream, self.truncate, self.stall)
        )


class _FaultSource:
    """The mutable side of a plan: the script position and the random generator."""

    __slots__ = ("_plan", "_random", "_script")

    def __init__(self, plan: FaultPlan) -> None:
        self._plan = plan
        self._script = [_parse_outcome(i, item) for i, item in enumerate(plan.script)]
        self._script.reverse()  # popped from the end
        self._random = random.Random(plan.seed)

    def next(self, tokens: int) -> _Outcome:
        if self._script:
            return self._script.pop()
        plan = self._plan
        draw = self._random.random
        before, mid, truncate, stall = draw(), draw(), draw(), draw()
        # A position in [1, tokens - 1] for a fault after some output, in [0, tokens) for a
        # stall; drawn always so that every call uses the same amount of randomness.
        position = draw()
        if before < plan.fail_before_first_token:
            return _Outcome("fail_before_first_token")
        after = 1 + int(position * (tokens - 1)) if tokens > 1 else tokens
        if mid < plan.fail_mid_stream:
            return _Outcome("fail_after", after=after)
        if truncate < plan.truncate:
            return _Outcome("truncate", after=after)
        if stall < plan.stall:
            return _Outcome("stall", after=int(position * tokens), seconds=plan.stall_seconds)
        return _OK


def _text_seed(seed: int, request: ProviderRequest) -> int:
    # hash() of a str changes between processes; the text must not.
    digest = hashlib.blake2b(str(seed).encode(), digest_size=8)
    for message in request.messages:
        digest.update(b"\x00" + message.role.encode() + b"\x00")
        digest.update(message.content.encode("utf-8", "surrogatepass"))
    return int.from_bytes(digest.digest(), "big")


def _generate_tokens(seed: int, count: int) -> list[str]:
    if count == 0:
        return []
    rng = random.Random(seed)
    tokens = rng.choices(_SPACED_WORDS, k=count)
    # Sentences of 6 to 17 words, capitalised, each ending with a full stop.
    start = 0
    while start < count:
        tokens[start] = " " + tokens[start][1:].capitalize()
        start += 6 + int(rng.random() * 12)
        tokens[min(start, count) - 1] += "."
    tokens[0] = tokens[0][1:]
    return tokens


def _setting(
    provider: str,
    settings: Mapping[str, Any],
    key: str,
    default: float,
    check: Callable[[object], bool],
) -> Any:
    value = settings.get(key)
    if value is None:
        return default
    if not check(value):
        kind = "an int" if check is _is_count else "a number"
        raise ProviderBadRequest(
            f"request setting {key!r} must be {kind} >= 0, got {value!r}",
            provider=provider,
            retryable=False,
        )
    return value


class SimulatedProvider:
    """An offline provider that streams generated text at a configured pace.

    Each stream yields ``tokens`` words: the first after ``time_to_first_token`` seconds
    (default: ``inter_token_latency``), then one every ``inter_token_latency`` seconds, and
    ends with a ``StreamEnd`` whose usage counts them (input tokens are estimated). The text
    depends only on ``seed`` and the request's messages. Tokens that fall due at the same
    tick (or while the reader was busy) come as one ``TextDelta``. A latency of 0 streams
    as fast as the reader takes it.

    Per-request overrides in ``request.settings`` (``None`` means unset): ``sim_tokens``,
    ``sim_latency``, ``sim_ttft`` (which follows ``sim_latency`` unless the provider was
    given a ``time_to_first_token``); ``max_tokens`` caps the output (finish reason
    ``"length"``). An invalid override raises ``ProviderBadRequest``.

    All streams of a provider are paced by one :class:`Ticker`: pass a running one, or use
    the provider as an async context manager (``async with SimulatedProvider() as p:``),
    which runs its own. Without either, streams fall back to one sleep per delta, which is
    correct but costs far more CPU with thousands of concurrent streams.

    ``faults`` is a :class:`FaultPlan`. The constructor raises ``ConfigurationError`` for
    invalid arguments.
    """

    def __init__(
        self,
        *,
        tokens: int = 50,
        inter_token_latency: float = 0.02,
        time_to_first_token: float | None = None,
        seed: int = 0,
        faults: FaultPlan | None = None,
        ticker: Ticker | None = None,
        name: str = "simulated",
    ) -> None:
        if not _is_count(tokens):
            raise ConfigurationError(f"tokens must be an int >= 0, got {tokens!r}")
        if not _is_seconds(inter_token_latency):
            raise ConfigurationError(
                f"inter_token_latency must be a number >= 0 (seconds), got {inter_token_latency!r}"
            )
        if time_to_first_token is not None and not _is_seconds(time_to_first_token):
            raise ConfigurationError(
                f"time_to_first_token must be a number >= 0 (seconds), got {time_to_first_token!r}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigurationError(f"seed must be an int, got {seed!r}")
        if faults is not None and not isinstance(faults, FaultPlan):
            raise ConfigurationError(f"faults must be a FaultPlan, got {faults!r}")
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"name must be a non-empty string, got {name!r}")
        self._tokens = tokens
        self._latency = float(inter_token_latency)
        self._ttft = self._latency if time_to_first_token is None else float(time_to_first_token)
        self._ttft_follows_latency = time_to_first_token is None
        self._seed = seed
        self._faults = (
            _FaultSource(faults) if faults is not None and faults.injects_faults else None
        )
        self._fault_counts: dict[str, int] = {}
        self._name = name
        self._ticker = ticker
        self._own_ticker: Ticker | None = None
        self._task_group: TaskGroup | None = None
        self._ticker_scope: anyio.CancelScope | None = None
        self._closed = False

    @property
    def name(self) -> str:
        """The provider name given to the constructor (``simulated`` by default)."""
        return self._name

    @property
    def fault_counts(self) -> Mapping[str, int]:
        """How many faults of each kind were injected so far (``fail_after``, ``stall``...)."""
        return dict(self._fault_counts)

    async def __aenter__(self) -> SimulatedProvider:
        """Start the provider's own ticker, unless one was given. Raises ``RuntimeError``
        if the provider is already entered or closed."""
        if self._task_group is not None or self._closed:
            raise RuntimeError("this SimulatedProvider is already in use or closed")
        if self._ticker is not None:
            return self
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        try:
            await task_group.start(self._run_ticker)
        except BaseException as exc:
            self._task_group = None
            await task_group.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        # No checkpoint before the task group is left: a cancelled body must still exit it.
        self._close()
        task_group, self._task_group = self._task_group, None
        if task_group is not None:
            return await task_group.__aexit__(exc_type, exc, tb)
        return None

    async def _run_ticker(self, *, task_status: TaskStatus[None]) -> None:
        ticker = Ticker()
        # Its own scope, so that aclose() stops the ticker but not the provider's user.
        with anyio.CancelScope() as scope:
            self._ticker_scope = scope
            self._own_ticker = ticker
            try:
                await ticker.run(task_status=task_status)
            finally:
                self._own_ticker = None

    async def aclose(self) -> None:
        """Stop the provider's own ticker; later ``stream()`` calls raise ``RuntimeError``.

        Streams still waiting on that ticker raise ``RuntimeError``. Idempotent.
        """
        self._close()

    def _close(self) -> None:
        self._closed = True
        if self._ticker_scope is not None:
            self._ticker_scope.cancel()

    def stream(self, request: ProviderRequest) -> _SimulatedStream:
        """Open a simulated completion of ``request`` (an async context manager).

        Raises ``ProviderBadRequest`` for an invalid ``sim_*`` or ``max_tokens`` setting,
        ``RuntimeError`` if the provider is closed; entering or reading the stream raises
        ``InjectedFault`` where the fault plan says so.
        """
        if self._closed:
            raise RuntimeError("this SimulatedProvider is closed")
        settings = request.settings
        tokens = self._tokens
        latency = self._latency
        ttft = self._ttft
        finish_reason = "stop"
        if settings:
            name = self._name
            tokens = _setting(name, settings, "sim_tokens", tokens, _is_count)
            latency = float(_setting(name, settings, "sim_latency", latency, _is_seconds))
            default_ttft = latency if self._ttft_follows_latency else ttft
            ttft = float(_setting(name, settings, "sim_ttft", default_ttft, _is_seconds))
            max_tokens = _setting(name, settings, "max_tokens", tokens, _is_count)
            if max_tokens < tokens:
                tokens, finish_reason = max_tokens, "length"
        outcome = _OK if self._faults is None else self._faults.next(tokens)
        if outcome.kind != "ok":
            self._fault_counts[outcome.kind] = self._fault_counts.get(outcome.kind, 0) + 1
        ticker = self._ticker or self._own_ticker
        return _SimulatedStream(
            provider=self._name,
            request=request,
            words=_generate_tokens(_text_seed(self._seed, request), tokens),
            ttft=ttft,
            latency=latency,
            finish_reason=finish_reason,
            outcome=outcome,
            ticker=ticker if ticker is not None and ticker.running else None,
        )


async def _sleep_until_without_ticker(deadline: float) -> float:
    await anyio.sleep_until(deadline)
    return anyio.current_time()


class _SimulatedStream:
    """One stream: an async context manager that is its own async iterator of events."""

    __slots__ = (
        "_clock",
        "_count",
        "_emitted",
        "_finish_reason",
        "_first",
        "_inv_latency",
        "_latency",
        "_mark",
        "_outcome",
        "_provider",
        "_request",
        "_sleep_until",
        "_ttft",
        "_words",
    )

    def __init__(
        self,
        *,
        provider: str,
        request: ProviderRequest,
        words: list[str],
        ttft: float,
        latency: float,
        finish_reason: str,
        outcome: _Outcome,
        ticker: Ticker | None,
    ) -> None:
        self._provider = provider
        self._request = request
        self._words = words
        self._count = len(words)
        self._ttft = ttft
        self._latency = latency
        self._inv_latency = 1.0 / latency if latency > 0 else 0.0
        self._finish_reason: str | None = finish_reason
        self._outcome = outcome
        self._emitted = 0
        self._first = 0.0  # when token 0 is due; set on entry
        # The index at which something other than a plain delta happens (a fault, a stall,
        # the end): the hot path only compares against it.
        after = outcome.after
        self._mark = self._count if after is None else min(after, self._count)
        if ticker is not None:
            self._clock: Callable[[], float] = ticker.current_time
            self._sleep_until: Callable[[float], Awaitable[float]] = ticker.sleep_until
        else:
            self._clock = anyio.current_time
            self._sleep_until = _sleep_until_without_ticker

    def _fault(self, message: str, *, retryable: bool = True) -> InjectedFault:
        return InjectedFault(message, provider=self._provider, retryable=retryable)

    async def __aenter__(self) -> AsyncIterator[StreamEvent]:
        kind = self._outcome.kind
        if kind == "fail_before_first_token":
            await anyio.lowlevel.checkpoint()
            raise self._fault("injected fault before the first token")
        if kind == "reject":
            await anyio.lowlevel.checkpoint()
            raise self._fault("injected permanent refusal of the request", retryable=False)
        self._first = self._clock() + self._ttft
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Iteration after the block ends at once, with no pending fault.
        self._finish_reason = None
        self._outcome = _OK
        self._emitted = self._mark = self._count

    def __aiter__(self) -> _SimulatedStream:
        return self

    async def __anext__(self) -> StreamEvent:
        start = self._emitted
        if start >= self._mark:
            return await self._at_mark()
        latency = self._latency
        if latency > 0.0:
            first = self._first
            # Returns at once (after a checkpoint) when the reader is already late.
            now = await self._sleep_until(first + start * latency)
            # Everything due by now comes in one delta (a late reader catches up at once).
            end = int((now - first) * self._inv_latency + _DUE_SLACK) + 1
            if end > self._mark:
                end = self._mark
            elif end <= start:
                end = start + 1
        else:
            if start == 0 and self._ttft > 0.0:
                await self._sleep_until(self._first)
            elif start % _CHECKPOINT_EVERY == 0:
                await anyio.lowlevel.checkpoint()
            end = start + 1
        self._emitted = end
        if end == start + 1:
            return TextDelta(self._words[start])
        return TextDelta("".join(self._words[start:end]), chunks=end - start)

    async def _at_mark(self) -> StreamEvent:
        outcome = self._outcome
        emitted = self._emitted
        if outcome.kind == "stall":
            self._outcome = _OK
            self._mark = self._count
            if self._latency > 0.0:
                self._first += outcome.seconds  # the rest of the schedule moves with it
            else:
                await self._sleep_until(max(self._first, self._clock()) + outcome.seconds)
            return await self.__anext__()
        if outcome.kind == "fail_after":
            raise self._fault(f"injected fault after {emitted} tokens")
        if outcome.kind == "truncate":
            raise self._fault(f"injected truncation: the stream ended after {emitted} tokens")
        if self._finish_reason is None:
            raise StopAsyncIteration
        if emitted == 0:
            # No tokens: the end comes when the first token would have.
            if self._ttft > 0.0:
                await self._sleep_until(self._first)
            else:
                await anyio.lowlevel.checkpoint()
        finish_reason, self._finish_reason = self._finish_reason, None
        return StreamEnd(
            usage=Usage(
                input_tokens=estimate_request_tokens(self._request.messages),
                output_tokens=self._count,
                source="provider",
            ),
            finish_reason=finish_reason,
            model=self._request.model,
        )

"""The lifecycle of one accepted turn, as a pure state machine.

A turn is *accepted* when its ticket is handed out; from then on it moves through
phases until it is ``done`` with exactly one :class:`TurnOutcome`::

    phase       signal          to                      rule
    starting    first_token     streaming
    starting    stream_ended    committing              (an answer without text)
    streaming   stream_ended    committing
    starting,   attempt_failed  backoff | done(failed)  backoff while attempts are left
    streaming   crashed         backoff | done(failed)  (a crash is a failed attempt)
                failed          done(failed)            not retryable (bad request, config)
                stop            stopping                the attempt is cancelled
    starting,   refused         done(failed)            the store refuses the run's writes for
    streaming,                                          good (taken over by another executor):
    backoff                                             no attempt can follow
    backoff     backoff_over    starting                the next attempt (attempt + 1)
    backoff     stop            done(cancelled)         nothing runs: cancelled at once
    backoff     crashed         backoff                 the retry is still due
    backoff     failed          done(failed)
    committing  committed       done(answered)
    committing  refused         done(failed)            the answer's commit was refused: the
                                                        turn is not answered
    committing  stop, crashed   committing              the answer's commit started: it wins
    stopping    stopped,crashed done(cancelled)         the stop wins over a crash
    stopping    first_token,    stopping                late news of a cancelled attempt
                stream_ended,
                attempt_failed,
                failed, stop,
                refused

Every other pair raises ``IllegalTransition`` and changes nothing; ``done`` accepts no
signal. The instance actor owns one :class:`TurnLife` per running turn and changes it only
through :func:`advance`, so every race (a token after a stop, a stop during a commit, a
crash during a stop) is a row of this table.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from promptactors._exceptions import IllegalTransition, InvalidInput

__all__ = ["TurnLife", "TurnOutcome", "TurnPhase", "TurnSignal", "advance"]


class TurnPhase(StrEnum):
    """Where a turn is in its life."""

    STARTING = "starting"
    STREAMING = "streaming"
    BACKOFF = "backoff"
    COMMITTING = "committing"
    STOPPING = "stopping"
    DONE = "done"


class TurnOutcome(StrEnum):
    """How a turn ended: exactly one of these."""

    ANSWERED = "answered"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TurnSignal(StrEnum):
    """What happened to a turn."""

    FIRST_TOKEN = "first_token"
    STREAM_ENDED = "stream_ended"
    ATTEMPT_FAILED = "attempt_failed"
    CRASHED = "crashed"
    FAILED = "failed"
    BACKOFF_OVER = "backoff_over"
    STOP = "stop"
    STOPPED = "stopped"
    COMMITTED = "committed"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class TurnLife:
    """A turn's phase, its attempt number (1-based) and, once done, its outcome."""

    max_attempts: int = 3
    attempt: int = 1
    phase: TurnPhase = TurnPhase.STARTING
    outcome: TurnOutcome | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or not 1 <= self.attempt <= self.max_attempts:
            raise InvalidInput(
                f"turn: attempt {self.attempt} of {self.max_attempts} is not a valid attempt"
            )
        if (self.phase is TurnPhase.DONE) != (self.outcome is not None):
            raise InvalidInput("turn: an outcome exactly when the turn is done")

    @property
    def done(self) -> bool:
        return self.phase is TurnPhase.DONE

    @property
    def attempt_running(self) -> bool:
        """Whether an attempt is under way (the provider may be called or streaming)."""
        return self.phase in _RUNNING

    @property
    def attempts_left(self) -> bool:
        return self.attempt < self.max_attempts


_P = TurnPhase
_S = TurnSignal
_RUNNING = frozenset({_P.STARTING, _P.STREAMING})
_LATE = frozenset(
    {_S.FIRST_TOKEN, _S.STREAM_ENDED, _S.ATTEMPT_FAILED, _S.FAILED, _S.STOP, _S.REFUSED}
)


def _end(life: TurnLife, outcome: TurnOutcome) -> TurnLife:
    return replace(life, phase=_P.DONE, outcome=outcome)


def _failed_attempt(life: TurnLife) -> TurnLife:
    if life.attempts_left:
        return replace(life, phase=_P.BACKOFF)
    return _end(life, TurnOutcome.FAILED)


def advance(life: TurnLife, signal: TurnSignal) -> TurnLife:
    """The turn after ``signal`` (``life`` is unchanged). Raises ``IllegalTransition``
    for a signal the phase does not accept (see the table in the module docstring)."""
    phase = life.phase
    if phase in _RUNNING:
        if signal is _S.FIRST_TOKEN and phase is _P.STARTING:
            return replace(life, phase=_P.STREAMING)
        if signal is _S.STREAM_ENDED:
            return replace(life, phase=_P.COMMITTING)
        if signal in (_S.ATTEMPT_FAILED, _S.CRASHED):
            return _failed_attempt(life)
        if signal in (_S.FAILED, _S.REFUSED):
            return _end(life, TurnOutcome.FAILED)
        if signal is _S.STOP:
            return replace(life, phase=_P.STOPPING)
    elif phase is _P.BACKOFF:
        if signal is _S.BACKOFF_OVER:
            return replace(life, phase=_P.STARTING, attempt=life.attempt + 1)
        if signal is _S.STOP:
            return _end(life, TurnOutcome.CANCELLED)
        if signal is _S.CRASHED:
            return life
        if signal in (_S.FAILED, _S.REFUSED):
            return _end(life, TurnOutcome.FAILED)
    elif phase is _P.COMMITTING:
        if signal is _S.COMMITTED:
            return _end(life, TurnOutcome.ANSWERED)
        if signal is _S.REFUSED:
            return _end(life, TurnOutcome.FAILED)
        if signal in (_S.STOP, _S.CRASHED):
            return life
    elif phase is _P.STOPPING:
        if signal in (_S.STOPPED, _S.CRASHED):
            return _end(life, TurnOutcome.CANCELLED)
        if signal in _LATE:
            return life
    raise IllegalTransition(phase.value, signal.value, "the turn's phase does not accept it")

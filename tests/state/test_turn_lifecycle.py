"""The turn lifecycle table (state/_turn.py), exhaustively and as a property."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promptactors import IllegalTransition, InvalidInput
from promptactors.state import TurnLife, TurnOutcome, TurnPhase, TurnSignal, advance_turn

P = TurnPhase
S = TurnSignal
O = TurnOutcome  # noqa: E741 - short names keep the table readable

# (phase, signal) -> (phase after, outcome) with attempts left (attempt 1 of 3).
TABLE = {
    (P.STARTING, S.FIRST_TOKEN): (P.STREAMING, None),
    (P.STARTING, S.STREAM_ENDED): (P.COMMITTING, None),
    (P.STREAMING, S.STREAM_ENDED): (P.COMMITTING, None),
    **{(p, S.ATTEMPT_FAILED): (P.BACKOFF, None) for p in (P.STARTING, P.STREAMING)},
    **{(p, S.CRASHED): (P.BACKOFF, None) for p in (P.STARTING, P.STREAMING)},
    **{(p, S.FAILED): (P.DONE, O.FAILED) for p in (P.STARTING, P.STREAMING)},
    **{(p, S.STOP): (P.STOPPING, None) for p in (P.STARTING, P.STREAMING)},
    (P.BACKOFF, S.BACKOFF_OVER): (P.STARTING, None),
    (P.BACKOFF, S.STOP): (P.DONE, O.CANCELLED),
    (P.BACKOFF, S.CRASHED): (P.BACKOFF, None),
    (P.BACKOFF, S.FAILED): (P.DONE, O.FAILED),
    **{(p, S.REFUSED): (P.DONE, O.FAILED) for p in (P.STARTING, P.STREAMING, P.BACKOFF)},
    (P.COMMITTING, S.COMMITTED): (P.DONE, O.ANSWERED),
    (P.COMMITTING, S.REFUSED): (P.DONE, O.FAILED),
    (P.COMMITTING, S.STOP): (P.COMMITTING, None),
    (P.COMMITTING, S.CRASHED): (P.COMMITTING, None),
    (P.STOPPING, S.STOPPED): (P.DONE, O.CANCELLED),
    (P.STOPPING, S.CRASHED): (P.DONE, O.CANCELLED),
    **{
        (P.STOPPING, s): (P.STOPPING, None)
        for s in (S.FIRST_TOKEN, S.STREAM_ENDED, S.ATTEMPT_FAILED, S.FAILED, S.STOP, S.REFUSED)
    },
}


def _life(phase: TurnPhase, attempt: int = 1, max_attempts: int = 3) -> TurnLife:
    outcome = O.ANSWERED if phase is P.DONE else None
    return TurnLife(max_attempts=max_attempts, attempt=attempt, phase=phase, outcome=outcome)


@pytest.mark.parametrize(("phase", "signal"), list(itertools.product(P, S)))
def test_every_phase_and_signal_follows_the_documented_table(
    phase: TurnPhase, signal: TurnSignal
) -> None:
    """Each pair does what the table says; any other pair is refused and changes nothing."""
    life = _life(phase)
    if (phase, signal) not in TABLE:
        with pytest.raises(IllegalTransition):
            advance_turn(life, signal)
        return
    after = advance_turn(life, signal)
    assert (after.phase, after.outcome) == TABLE[phase, signal]
    expected_attempt = 2 if signal is S.BACKOFF_OVER else 1
    assert after.attempt == expected_attempt


@pytest.mark.parametrize("signal", [S.ATTEMPT_FAILED, S.CRASHED])
@pytest.mark.parametrize("phase", [P.STARTING, P.STREAMING])
def test_a_failed_last_attempt_fails_the_turn(phase: TurnPhase, signal: TurnSignal) -> None:
    """On the last attempt a failure or a crash ends the turn failed, not in backoff."""
    after = advance_turn(_life(phase, attempt=3), signal)
    assert (after.phase, after.outcome, after.attempt) == (P.DONE, O.FAILED, 3)


def test_a_turn_life_must_be_consistent() -> None:
    """Attempts within bounds; an outcome exactly when done."""
    with pytest.raises(InvalidInput):
        TurnLife(max_attempts=2, attempt=3)
    with pytest.raises(InvalidInput):
        TurnLife(phase=P.DONE)
    with pytest.raises(InvalidInput):
        TurnLife(outcome=O.FAILED)


@given(
    max_attempts=st.integers(1, 5),
    signals=st.lists(st.sampled_from(list(S)), max_size=60),
)
def test_any_sequence_of_signals_gives_at_most_one_outcome_within_the_attempts(
    max_attempts: int, signals: list[TurnSignal]
) -> None:
    """Whatever happens, in whatever order: the attempt never passes the limit, an outcome
    once reached never changes, and a stop always leads to cancelled unless the answer's
    commit had started."""
    life = TurnLife(max_attempts=max_attempts)
    outcome = None
    committing_seen = False
    for signal in signals:
        try:
            after = advance_turn(life, signal)
        except IllegalTransition:
            continue
        assert 1 <= after.attempt <= max_attempts
        assert after.attempt >= life.attempt
        if outcome is not None:
            pytest.fail("a done turn accepted a signal")
        if after.phase is P.COMMITTING:
            committing_seen = True
        if signal is S.STOP and after.phase is not P.COMMITTING:
            assert after.phase in (P.STOPPING, P.DONE)
            assert after.outcome in (None, O.CANCELLED)
        if after.outcome is O.ANSWERED:
            assert committing_seen
        outcome = after.outcome
        life = after

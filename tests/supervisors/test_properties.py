"""Random exit storms against invariants (a model-free check of every strategy): one live
incarnation per child, every message handled exactly once and in order, and the restart
counts each strategy implies."""

from __future__ import annotations

import random
from collections import Counter

import anyio
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptactors import ActorDead
from promptactors.supervisors import Backoff, Restart, Strategy, Supervisor, open_supervisor

from ._helpers import (
    Crash,
    CrashLinked,
    Journal,
    Msg,
    Note,
    Ping,
    StopSelf,
    ref,
    wait_until,
    worker,
)

LABELS = "abcde"

_ops = st.lists(
    st.tuples(
        st.integers(0, len(LABELS) - 1),
        st.sampled_from(["crash", "linked", "stop", "note", "ask", "pause"]),
    ),
    min_size=1,
    max_size=16,
)


def _lifecycle(journal: Journal, label: str) -> list[str]:
    ends = {f"stop:{label}": "end", f"crash:{label}": "end", f"start:{label}": "start"}
    return [ends[e] for e in journal.events if e in ends]


def _one_incarnation_at_a_time(life: list[str]) -> bool:
    """Starts and ends alternate, beginning with a start: never two live incarnations."""
    return all(event == ("start", "end")[n % 2] for n, event in enumerate(life))


def _notes(journal: Journal, label: str) -> list[int]:
    return [int(e.split(":")[2]) for e in journal.events if e.startswith(f"note:{label}:")]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    strategy=st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"]),
    size=st.integers(2, len(LABELS)),
    ops=_ops,
    backoff=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_exit_storms_keep_every_invariant(
    strategy: Strategy, size: int, ops: list[tuple[int, str]], backoff: bool, seed: int
) -> None:
    """Whatever exits happen in whatever order, each child ends with exactly one live
    incarnation, every message sent to it is handled once and in order, and every ask is
    answered."""
    labels = LABELS[:size]
    plan = [(labels[index % size], op) for index, op in ops]
    journal = Journal()
    sent_notes: dict[str, list[int]] = {label: [] for label in labels}
    sent_crashes: Counter[str] = Counter()
    exits: Counter[str] = Counter()
    linked: Counter[str] = Counter()
    answers: dict[str, list[int]] = {label: [] for label in labels}

    async def scenario() -> None:
        sup = Supervisor(
            [worker(label, journal) for label in labels],
            strategy=strategy,
            max_restarts=1000,
            period=1.0,
            backoff=Backoff(initial=0.2, jitter=0.5, rng=random.Random(seed)) if backoff else None,
        )

        async def ask(label: str) -> None:
            answers[label].append((await ref(sup, label).ask(Ping()))[1])

        async with open_supervisor(sup), anyio.create_task_group() as askers:
            for n, (label, op) in enumerate(plan):
                target = ref(sup, label)
                if op == "crash":
                    sent_crashes[label] += 1
                    exits[label] += 1
                    await target.tell(Crash(str(n)))
                elif op == "linked":
                    linked[label] += 1
                    await target.tell(CrashLinked(str(n)))
                elif op == "stop":
                    exits[label] += 1
                    await target.tell(StopSelf())
                elif op == "note":
                    sent_notes[label].append(n)
                    await target.tell(Note(n))
                elif op == "ask":
                    askers.start_soon(ask, label)
                else:
                    await anyio.sleep(0.3)

            def settled() -> bool:
                return all(
                    _lifecycle(journal, label)[-1] == "start" and ref(sup, label).queued == 0
                    for label in labels
                ) and sum(e.startswith("handled_crash") for e in journal.events) == sum(
                    sent_crashes.values()
                )

            await wait_until(settled, timeout=60.0)
            for label in labels:
                answer = await ref(sup, label).ask(Ping())
                assert answer == (label, journal.count(f"start:{label}"))
                assert answers[label] == sorted(answers[label])

        for label in labels:
            life = _lifecycle(journal, label)
            assert _one_incarnation_at_a_time(life), f"{label}: {life}"
            prefix = f"handled_crash:{label}:"
            assert sum(e.startswith(prefix) for e in journal.events) == sent_crashes[label]
            assert _notes(journal, label) == sent_notes[label]
        starts = [journal.count(f"start:{label}") for label in labels]
        assert sum(map(len, answers.values())) == sum(op == "ask" for _, op in plan)
        if strategy == "one_for_one":
            # A linked task's crash is lost if its incarnation crashed first.
            for label, count in zip(labels, starts, strict=True):
                assert 1 + exits[label] <= count <= 1 + exits[label] + linked[label]
        elif strategy == "one_for_all":
            assert len(set(starts)) == 1
        else:
            assert starts == sorted(starts)

    trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    strategy=st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"]),
    restarts=st.lists(
        st.sampled_from(["permanent", "transient", "temporary"]), min_size=2, max_size=5
    ),
    ops=_ops,
    seed=st.integers(0, 2**32 - 1),
)
def test_random_exits_respect_every_restart_type(
    strategy: Strategy, restarts: list[Restart], ops: list[tuple[int, str]], seed: int
) -> None:
    """With mixed restart types, no child ever runs two incarnations at once, a temporary
    child never restarts, and no message is handled twice or out of order."""
    labels = LABELS[: len(restarts)]
    plan = [(labels[index % len(labels)], op) for index, op in ops if op != "ask"]
    journal = Journal()
    sent_notes: dict[str, list[int]] = {label: [] for label in labels}

    async def scenario() -> None:
        sup = Supervisor(
            [
                worker(label, journal, restart=restart)
                for label, restart in zip(labels, restarts, strict=True)
            ],
            strategy=strategy,
            max_restarts=1000,
            period=1.0,
            backoff=Backoff(initial=0.2, jitter=0.5, rng=random.Random(seed)),
        )
        async with open_supervisor(sup):
            refs = {label: ref(sup, label) for label in labels}
            for n, (label, op) in enumerate(plan):
                messages: dict[str, Msg] = {
                    "crash": Crash(str(n)),
                    "linked": CrashLinked(str(n)),
                    "stop": StopSelf(),
                    "note": Note(n),
                }
                message = messages.get(op)
                if message is None:
                    await anyio.sleep(0.3)
                    continue
                try:
                    await refs[label].tell(message)
                except ActorDead:
                    continue
                if op == "note":
                    sent_notes[label].append(n)

            def settled() -> bool:
                return all(
                    not refs[label].is_alive
                    or (_lifecycle(journal, label)[-1] == "start" and refs[label].queued == 0)
                    for label in labels
                )

            await wait_until(settled, timeout=60.0)
            for label in labels:
                if refs[label].is_alive:
                    answer = await refs[label].ask(Ping())
                    assert answer == (label, journal.count(f"start:{label}"))

        for label, restart in zip(labels, restarts, strict=True):
            life = _lifecycle(journal, label)
            assert _one_incarnation_at_a_time(life), f"{label}: {life}"
            if restart == "temporary":
                assert journal.count(f"start:{label}") == 1
            notes = _notes(journal, label)
            assert len(set(notes)) == len(notes)
            assert notes == [n for n in sent_notes[label] if n in notes]

    trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))

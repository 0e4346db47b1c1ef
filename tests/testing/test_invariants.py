"""The invariant checker: it holds on consistent data and names each violation it is shown."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from promptactors import NotFound, RunNotFound
from promptactors.store import RunRecord, RunStats, TaskRecord, Unfinished
from promptactors.testing import (
    ClaimRace,
    ConversationSnapshot,
    Observations,
    TurnObservation,
    WaitObservation,
    check_invariants,
)


class RowsStore:
    """Just the reads the checker makes, over hand-made rows."""

    def __init__(self, runs: list[RunRecord], tasks: list[TaskRecord]) -> None:
        self.runs = {run.id: run for run in runs}
        self.tasks = tasks

    async def get_run(self, run_id: str) -> RunRecord:
        if run_id not in self.runs:
            raise RunNotFound(f"no run {run_id!r}")
        return self.runs[run_id]

    async def list_tasks(self, run_id: str) -> list[TaskRecord]:
        return [t for t in self.tasks if t.run_id == run_id]

    async def get_task(self, task_id: str) -> TaskRecord:
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise NotFound(task_id)

    async def find_unfinished(self, **_: Any) -> Unfinished:
        return Unfinished(
            runs=tuple(r for r in self.runs.values() if r.status == "running"),
            tasks=tuple(t for t in self.tasks if t.status == "running"),
        )


ANSWER = "Hello there."


def _task(task_id: str, run_id: str = "r1", **fields: Any) -> TaskRecord:
    values: dict[str, Any] = {
        "status": "completed",
        "response_text": "Hello there.",
        "input_tokens": 10,
        "output_tokens": 3,
        "cost": 0.5,
    }
    values.update(fields)
    return TaskRecord(id=task_id, run_id=run_id, provider="simulated", model="m", **values)


def _messages(*extra: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    return (
        {"role": "user", "content": "hi", "task_id": "t1"},
        {"role": "assistant", "content": "Hello there.", "task_id": "t1"},
        *extra,
    )


def _run(messages: tuple[Mapping[str, Any], ...] | None = None, **fields: Any) -> RunRecord:
    values: dict[str, Any] = {
        "status": "completed",
        "stats": RunStats(input_tokens=10, output_tokens=3, total_cost=0.5),
    }
    values.update(fields)
    return RunRecord(id="r1", messages=_messages() if messages is None else messages, **values)


def _observations(**fields: Any) -> Observations:
    values: dict[str, Any] = {
        "turns": [
            TurnObservation(
                "i1",
                "answered",
                task_id="t1",
                answer_task_id="t1",
                run_id="r1",
                text="Hello there.",
            )
        ],
        "waits": [WaitObservation("i1 turn", waited=0.2, bound=5.0)],
        "snapshots": [ConversationSnapshot("i1", "r1", _messages())],
    }
    values.update(fields)
    return Observations(**values)


async def _check(store: RowsStore, observations: Observations | None = None) -> Any:
    return await check_invariants(
        store,  # type: ignore[arg-type]  # the reads the checker makes are enough
        observations=observations or _observations(),
    )


@pytest.mark.anyio
async def test_consistent_rows_hold_every_invariant() -> None:
    """One answered turn, stored as observed: nothing is violated."""
    report = await _check(RowsStore([_run()], [_task("t1")]))
    assert report.ok, report.to_dict()
    assert report.violated == []
    assert report.turns_lost == 0
    assert report.hung_callers == 0


@pytest.mark.anyio
async def test_a_running_task_and_a_running_run_are_violations() -> None:
    """Rows left 'running' after the run settled are named by id."""
    store = RowsStore([_run(status="running")], [_task("t1"), _task("t2", status="running")])
    report = await _check(store)
    result = report["no_running_rows"]
    assert not result.held
    assert result.violations == 2
    assert any("run r1" in e for e in result.examples)
    assert any("task t2" in e for e in result.examples)


@pytest.mark.anyio
async def test_a_stored_conversation_unlike_memory_is_a_violation() -> None:
    """The database lost the answer the instance holds in memory."""
    stored = _run(messages=_messages()[:1])
    report = await _check(RowsStore([stored], [_task("t1")]))
    assert report.violated[:1] == ["conversations_match"]
    assert "first difference at message 1" in report["conversations_match"].examples[0]
    assert report["one_outcome_per_turn"].violations == 1
    assert report.turns_lost == 1


@pytest.mark.anyio
async def test_a_failed_turn_without_a_marker_is_lost() -> None:
    """A turn that failed for its caller must leave a failed (or cancelled) marker."""
    messages = _messages({"role": "user", "content": "again", "task_id": "t2"})
    turns = [
        TurnObservation("i1", "answered", task_id="t1", answer_task_id="t1", run_id="r1"),
        TurnObservation("i1", "failed", task_id="t2", run_id="r1", error="AttemptsExhausted"),
    ]
    failed = _task("t2", status="failed", input_tokens=None, output_tokens=None, cost=None)
    store = RowsStore([_run(messages)], [_task("t1"), failed])
    report = await _check(
        store, _observations(turns=turns, snapshots=[ConversationSnapshot("i1", "r1", messages)])
    )
    assert report.violated == ["one_outcome_per_turn"]
    assert report.turns_lost == 1
    marked = ({**messages[2], "failed": True, "error": "boom"},)
    store = RowsStore([_run(_messages(*marked))], [_task("t1"), failed])
    fixed = await _check(
        store,
        _observations(
            turns=turns, snapshots=[ConversationSnapshot("i1", "r1", _messages(*marked))]
        ),
    )
    assert fixed.ok, fixed.to_dict()


@pytest.mark.anyio
async def test_a_duplicated_answer_and_a_wrong_response_text_are_violations() -> None:
    """The same answer stored twice; an answer that is not its task's response_text."""
    doubled = _messages({"role": "assistant", "content": "Hello there.", "task_id": "t1"})
    report = await _check(
        RowsStore([_run(doubled)], [_task("t1", response_text="Something else.")]),
        _observations(snapshots=[]),
    )
    assert "no_duplicate_answers" in report.violated
    assert "answers_match_tasks" in report.violated
    assert "answered 2 times" in report["one_outcome_per_turn"].examples[0]


@pytest.mark.anyio
async def test_run_totals_unlike_the_sum_of_task_rows_are_a_violation() -> None:
    """A task's tokens counted twice in its run (or not at all) is caught."""
    store = RowsStore(
        [_run(stats=RunStats(input_tokens=20, output_tokens=6, total_cost=1.0))], [_task("t1")]
    )
    report = await _check(store)
    assert report.violated == ["run_totals_match"]
    assert report["run_totals_match"].examples == (
        "run r1: 20/6/1 stored vs 10/3/0.5 in its tasks",
    )


@pytest.mark.anyio
async def test_a_caller_waiting_past_its_bound_is_hung() -> None:
    """A wait longer than its bound, or abandoned (inf), counts as a hung caller."""
    waits = [
        WaitObservation("i1 turn", waited=6.0, bound=5.0),
        WaitObservation("i2 stop", waited=float("inf"), bound=5.0),
        WaitObservation("i3 turn", waited=1.0, bound=5.0),
    ]
    report = await _check(RowsStore([_run()], [_task("t1")]), _observations(waits=waits))
    assert report.violated == ["no_hung_callers"]
    assert report.hung_callers == 2
    assert report["no_hung_callers"].examples[1] == "i2 stop waited forever > 5s"


@pytest.mark.anyio
async def test_two_winners_of_one_run_and_a_missing_run_are_violations() -> None:
    """Two instances continuing one run, and a turn whose run does not exist."""
    turns = [TurnObservation("i9", "answered", task_id="t9", run_id="nope")]
    report = await _check(
        RowsStore([_run()], [_task("t1")]),
        _observations(turns=turns, claims=[ClaimRace("r1", contenders=2, winners=2)]),
    )
    assert report["one_winner_per_claim"].examples == ("run r1: 2 of 2 won",)
    assert "run nope is missing" in report["one_outcome_per_turn"].examples
    assert report.to_dict()["invariants_violated"] == report.violated
    assert len(report.to_dict()["invariants"]) == len(report.invariants)


@pytest.mark.anyio
async def test_a_claim_race_whose_other_contender_failed_otherwise_is_no_violation() -> None:
    """One contender refused (RunInUse), the other failed for another reason after its
    claim (e.g. ``ActorDead`` while the instances' supervisor restarted) and released it:
    no claim race was lost. Only a claim left held by nobody live is then a violation."""
    race = ClaimRace("r1", contenders=2, winners=0, failed=1)
    report = await _check(RowsStore([_run()], [_task("t1")]), _observations(claims=[race]))
    assert report["one_winner_per_claim"].held
    leaked = RowsStore([_run(owner_id="i-claim1", fence=2)], [_task("t1")])
    report = await _check(leaked, _observations(claims=[race]))
    assert report["one_winner_per_claim"].examples == (
        "run r1: 0 of 2 won, 1 failed otherwise, and it is still claimed by 'i-claim1'",
    )
    report = await _check(
        RowsStore([_run()], [_task("t1")]),
        _observations(claims=[ClaimRace("r1", contenders=2, winners=0)]),
    )
    assert report["one_winner_per_claim"].examples == ("run r1: 0 of 2 won",)


@pytest.mark.anyio
async def test_examples_are_capped_at_ten() -> None:
    """Many violations of one invariant keep ten example ids and the full count."""
    tasks = [_task("t1")] + [_task(f"x{i}", status="running") for i in range(25)]
    report = await _check(RowsStore([_run()], tasks))
    assert report["no_running_rows"].violations == 25
    assert len(report["no_running_rows"].examples) == 10

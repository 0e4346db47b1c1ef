"""The invariant checker: what must hold after any chaos, checked against the database.

The invariants are the turn contract of DESIGN.md, written as checks over the store's rows
and what the callers observed (:class:`Observations`). Each one is reported held or
violated, with up to :data:`MAX_EXAMPLES` ids of what broke it.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from .._exceptions import InstanceNotFound, NotFound

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..runtime import Runtime
    from ..store import RunRecord, Store, TaskRecord
    from ._observations import ClaimRace, Observations, TurnObservation

__all__ = ["INVARIANTS", "MAX_EXAMPLES", "InvariantReport", "InvariantResult", "check_invariants"]

#: Examples kept per violated invariant.
MAX_EXAMPLES: Final = 10

#: Every invariant, by name, with what it promises.
INVARIANTS: Final[Mapping[str, str]] = {
    "no_running_rows": "no task or run is left 'running' (a run open in a live instance aside)",
    "conversations_match": "each run's messages in the database equal its instance's in memory",
    "one_outcome_per_turn": "each accepted turn has exactly one answer, or a failed or "
    "cancelled marker",
    "no_duplicate_answers": "no assistant message is stored twice",
    "answers_match_tasks": "each answer equals the response_text of its completed task",
    "run_totals_match": "each run's input_tokens, output_tokens and cost equal the sums of its "
    "task rows",
    "no_hung_callers": "no caller waited past its bound",
    "registry_live_only": "the registry holds live incarnations only",
    "one_winner_per_claim": "of instances started on one run at once, exactly one won it "
    "(none, if the others failed for another reason: then the run is not left claimed)",
}

# Keys of a message row that mark a turn that did not answer (failed, or cancelled).
_MARKERS: Final = ("failed", "cancelled", "partial")


@dataclass(frozen=True, slots=True)
class InvariantResult:
    """One invariant: whether it held, how often it was broken, and example ids."""

    name: str
    held: bool
    violations: int = 0
    examples: tuple[str, ...] = ()
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "held": self.held,
            "violations": self.violations,
            "examples": list(self.examples),
            "description": self.description,
        }


@dataclass(frozen=True, slots=True)
class InvariantReport:
    """The checker's verdict: every invariant, in :data:`INVARIANTS` order."""

    invariants: tuple[InvariantResult, ...]
    turns_lost: int = 0
    hung_callers: int = 0

    @property
    def ok(self) -> bool:
        return all(result.held for result in self.invariants)

    @property
    def violated(self) -> list[str]:
        return [result.name for result in self.invariants if not result.held]

    def __getitem__(self, name: str) -> InvariantResult:
        for result in self.invariants:
            if result.name == name:
                return result
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "invariants_violated": self.violated,
            "invariants": [result.to_dict() for result in self.invariants],
            "turns_lost": self.turns_lost,
            "hung_callers": self.hung_callers,
        }


@dataclass(slots=True)
class _Tally:
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, example: str) -> None:
        self.counts[name] += 1
        kept = self.examples.setdefault(name, [])
        if len(kept) < MAX_EXAMPLES:
            kept.append(example)


def _plain(row: Mapping[str, Any]) -> dict[str, Any]:
    """A message row without its timestamp and unset fields: what both sides must agree on."""
    return {k: v for k, v in row.items() if k != "created_at" and v is not None and v is not False}


def _marked(row: Mapping[str, Any]) -> bool:
    return any(row.get(key) for key in _MARKERS)


def _check_claim(
    race: ClaimRace, run: RunRecord | None, live_runs: set[str], tally: _Tally
) -> None:
    """One winner; or none when a contender failed for another reason (it may have
    claimed the run first, and must have released it: the others were refused)."""
    won = f"run {race.run_id}: {race.winners} of {race.contenders} won"
    if race.winners > 1 or (race.winners == 0 and race.failed == 0):
        tally.add("one_winner_per_claim", won)
        return
    held = run is not None and run.owner_id is not None and run.status != "running"
    if race.winners == 0 and held and race.run_id not in live_runs:
        assert run is not None
        tally.add(
            "one_winner_per_claim",
            f"{won}, {race.failed} failed otherwise, and it is still claimed by {run.owner_id!r}",
        )


async def check_invariants(
    store: Store, *, observations: Observations, runtime: Runtime | None = None
) -> InvariantReport:
    """Check the invariants of the turn contract after a chaos run.

    Reads the runs named in ``observations`` (and every run or task the store still has
    ``running``) and compares them with what the callers observed: the conversations
    snapshotted in memory, each accepted turn's outcome, each wait against its bound.
    With ``runtime`` (still open), also checks its registry, and a run still open in one
    of its live instances may be ``running``. Never raises for a violation: read the
    report. Raises ``StoreError`` if the store cannot be read.
    """
    tally = _Tally()
    runs: dict[str, RunRecord] = {}
    tasks: dict[str, TaskRecord] = {}
    for run_id in observations.all_run_ids():
        try:
            runs[run_id] = await store.get_run(run_id)
        except NotFound:
            tally.add("one_outcome_per_turn", f"run {run_id} is missing")
            continue
        for task in await store.list_tasks(run_id):
            tasks[task.id] = task
    live_runs: set[str] = set()
    if runtime is not None:
        live_runs = await _check_registry(runtime, observations, tally)
    await _check_running(store, runs, tasks, live_runs, tally)
    _check_conversations(observations, runs, tally)
    lost = _check_turns(observations, runs, tally)
    _check_answers(runs, tasks, tally)
    _check_totals(runs, tasks, tally)
    hung = 0
    for wait in observations.waits:
        if not wait.waited <= wait.bound:
            hung += 1
            waited = "forever" if math.isinf(wait.waited) else f"{wait.waited:.3f}s"
            tally.add("no_hung_callers", f"{wait.caller} waited {waited} > {wait.bound:g}s")
    for race in observations.claims:
        _check_claim(race, runs.get(race.run_id), live_runs, tally)
    results = tuple(
        InvariantResult(
            name=name,
            held=tally.counts[name] == 0,
            violations=tally.counts[name],
            examples=tuple(tally.examples.get(name, ())),
            description=description,
        )
        for name, description in INVARIANTS.items()
    )
    return InvariantReport(results, turns_lost=lost, hung_callers=hung)


async def _check_registry(runtime: Runtime, observations: Observations, tally: _Tally) -> set[str]:
    """Registry entries must be live and not stopped; returns the runs open in them."""
    live_runs: set[str] = set()
    for instance_id in await runtime.instance_ids():
        if instance_id in observations.stopped:
            tally.add("registry_live_only", f"instance {instance_id} was stopped")
            continue
        try:
            handle = await runtime.instance(instance_id)
        except InstanceNotFound:
            continue  # gone between the two reads: not held any more
        if not handle.is_alive:
            tally.add("registry_live_only", f"instance {instance_id} is dead")
            continue
        snap = await handle.snapshot()
        if snap.run_tracking.run_id is not None:
            live_runs.add(snap.run_tracking.run_id)
    return live_runs


async def _check_running(
    store: Store,
    runs: Mapping[str, RunRecord],
    tasks: Mapping[str, TaskRecord],
    live_runs: set[str],
    tally: _Tally,
) -> None:
    seen: set[str] = set()
    unfinished = await store.find_unfinished()
    for run in (*runs.values(), *unfinished.runs):
        if run.status == "running" and run.id not in live_runs and run.id not in seen:
            seen.add(run.id)
            tally.add("no_running_rows", f"run {run.id}")
    for task in (*tasks.values(), *unfinished.tasks):
        if task.status == "running" and task.id not in seen:
            seen.add(task.id)
            tally.add("no_running_rows", f"task {task.id} (run {task.run_id})")


def _check_conversations(
    observations: Observations, runs: Mapping[str, RunRecord], tally: _Tally
) -> None:
    for snap in observations.snapshots:
        if snap.run_id is None or snap.run_id not in runs:
            continue
        stored = [_plain(m) for m in runs[snap.run_id].messages]
        memory = [_plain(m) for m in snap.messages]
        if stored != memory:
            at = next(
                (i for i, (a, b) in enumerate(zip(stored, memory, strict=False)) if a != b),
                min(len(stored), len(memory)),
            )
            tally.add(
                "conversations_match",
                f"run {snap.run_id} (instance {snap.instance_id}): {len(stored)} stored vs "
                f"{len(memory)} in memory, first difference at message {at}",
            )


def _check_turns(observations: Observations, runs: Mapping[str, RunRecord], tally: _Tally) -> int:
    """Each accepted turn: one answer, or one marker. Returns how many left no trace."""
    memory = {snap.instance_id: snap.messages for snap in observations.snapshots}
    lost = 0
    for turn in observations.turns:
        if turn.outcome == "rejected" or turn.task_id is None:
            continue
        if turn.run_id is not None and turn.run_id in runs:
            messages: tuple[Mapping[str, Any], ...] = runs[turn.run_id].messages
            where = f"run {turn.run_id}"
        elif turn.instance_id in memory:  # no run was written: the marker lives in memory
            messages = memory[turn.instance_id]
            where = f"instance {turn.instance_id} (no run)"
        else:
            lost += 1
            tally.add("one_outcome_per_turn", f"turn {turn.task_id}: no run and no snapshot")
            continue
        problem = _turn_problem(turn, messages)
        if problem is not None:
            lost += problem.startswith("lost")
            tally.add("one_outcome_per_turn", f"turn {turn.task_id} in {where}: {problem}")
    return lost


def _turn_problem(turn: TurnObservation, messages: tuple[Mapping[str, Any], ...]) -> str | None:
    ids = {turn.task_id, turn.answer_task_id} - {None}
    own = [m for m in messages if m.get("task_id") in ids]
    answers = [m for m in own if m.get("role") == "assistant" and not _marked(m)]
    markers = [m for m in own if _marked(m)]
    if turn.outcome == "answered":
        if not answers:
            return "lost: answered, but no answer is stored"
        if len(answers) > 1:
            return f"answered {len(answers)} times"
        if markers:
            return "answered and marked failed or cancelled"
        if turn.text is not None and answers[0].get("content") != turn.text:
            return "the stored answer differs from the one the caller got"
        return None
    if answers:
        return f"{turn.outcome} for its caller, but answered in the database"
    if not markers:
        return f"lost: {turn.outcome}, but no failed or cancelled marker is stored"
    return None


def _check_answers(
    runs: Mapping[str, RunRecord], tasks: Mapping[str, TaskRecord], tally: _Tally
) -> None:
    for run in runs.values():
        seen: Counter[tuple[object, str]] = Counter()
        previous: Mapping[str, Any] | None = None
        for index, message in enumerate(run.messages):
            if message.get("role") != "assistant":
                previous = message
                continue
            task_id = message.get("task_id")
            key = (task_id, str(message.get("content", "")))
            seen[key] += 1
            if seen[key] == 2 or (
                previous is not None
                and previous.get("role") == "assistant"
                and previous.get("task_id") == task_id
            ):
                tally.add("no_duplicate_answers", f"run {run.id} message {index} (task {task_id})")
            previous = message
            if task_id is None or _marked(message):
                continue
            task = tasks.get(str(task_id))
            if task is None:
                tally.add("answers_match_tasks", f"run {run.id}: task {task_id} has no row")
            elif task.status != "completed":
                tally.add("answers_match_tasks", f"task {task_id} is {task.status}, not completed")
            elif task.response_text != message.get("content"):
                tally.add("answers_match_tasks", f"task {task_id}: response_text differs")


def _check_totals(
    runs: Mapping[str, RunRecord], tasks: Mapping[str, TaskRecord], tally: _Tally
) -> None:
    by_run: dict[str, list[TaskRecord]] = {}
    for task in tasks.values():
        if task.run_id is not None:
            by_run.setdefault(task.run_id, []).append(task)
    for run in runs.values():
        rows = by_run.get(run.id, [])
        inputs = sum(t.input_tokens or 0 for t in rows)
        outputs = sum(t.output_tokens or 0 for t in rows)
        cost = sum(t.cost or 0.0 for t in rows)
        stats = run.stats
        if (
            stats.input_tokens != inputs
            or stats.output_tokens != outputs
            or not math.isclose(stats.total_cost, cost, rel_tol=1e-9, abs_tol=1e-12)
        ):
            tally.add(
                "run_totals_match",
                f"run {run.id}: {stats.input_tokens}/{stats.output_tokens}/"
                f"{stats.total_cost:g} stored vs {inputs}/{outputs}/{cost:g} in its tasks",
            )

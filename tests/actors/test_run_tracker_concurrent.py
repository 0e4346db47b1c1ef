"""Two batches committing at once (``commit_concurrency``): never two on the same run.

With one commit in flight the callers of a batch all wait for it and the process and the
database take turns; a second batch overlaps them. These tests hold commits open on a
real store and check what may start beside them: operations on other runs, cut at the
first one on a run in flight; a task's operations follow its run; an operation on a task
the tracker never saw commits with nothing beside it; flushes and crashes still cover
every batch in flight. A seeded interleaving checks the order of each run's operations.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from promptactors._exceptions import InvalidInput
from promptactors.actors._run_tracker import (
    COMMIT_CONCURRENCY,
    RunTracker,
    RunTrackerClient,
    run_tracker_actor,
)
from promptactors.actors._run_tracker_home import RunTrackerHome
from promptactors.kernel import ActorRef, spawn
from promptactors.store import (
    CreateRun,
    CreateTask,
    FailTask,
    FinishTurn,
    Store,
    UpdateRun,
    WriteOp,
    open_store,
)
from promptactors.supervisors import ChildSpec, Supervisor, open_supervisor
from promptactors.testing import crash_actor

pytestmark = pytest.mark.anyio

TIMEOUT = 15


def _run_of(op: WriteOp, task_runs: dict[str, str]) -> str:
    if isinstance(op, (CreateRun, UpdateRun)):
        return op.run_id
    if isinstance(op, CreateTask):
        assert op.run_id is not None
        task_runs[op.task_id] = op.run_id
        return op.run_id
    return task_runs.get(op.task_id, "?")


class GatedStore:
    """A real store whose ``apply`` waits for its gate before committing (when ``gated``),
    recording each batch and which runs are being committed at the same time."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.gated = True
        self.gates: list[anyio.Event] = []
        self.batches: list[list[WriteOp]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.overlaps: list[str] = []
        self._busy: dict[str, int] = {}
        self._task_runs: dict[str, str] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def apply(self, ops: Sequence[WriteOp]) -> None:
        runs = {_run_of(op, self._task_runs) for op in ops}
        for run in runs:
            if self._busy.get(run):
                self.overlaps.append(run)
            self._busy[run] = self._busy.get(run, 0) + 1
        self.batches.append(list(ops))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.gated:
                gate = anyio.Event()
                self.gates.append(gate)
                await gate.wait()
            await self.store.apply(ops)
        finally:
            self.in_flight -= 1
            for run in runs:
                self._busy[run] -= 1

    def open_gate(self, index: int) -> None:
        self.gates[index].set()


async def until(condition: Callable[[], bool]) -> None:
    """Let the other tasks run until ``condition`` holds (at most 5 s)."""
    for _ in range(5000):
        if condition():
            return
        await anyio.sleep(0.001)
    raise AssertionError("condition never held")


async def accepted(tracker: RunTrackerClient, pending: int) -> None:
    """Wait until the tracker holds ``pending`` operations (in flight or waiting; 5 s)."""
    for _ in range(5000):
        if (await tracker.stats()).pending >= pending:
            return
        await anyio.sleep(0.001)
    raise AssertionError(f"the tracker never held {pending} operations")


@asynccontextmanager
async def tracker_on(store: Any, **options: Any) -> AsyncIterator[tuple[RunTrackerClient, Any]]:
    async with anyio.create_task_group() as tg:
        ref = await spawn(tg, run_tracker_actor(store, commit_concurrency=2, **options))
        try:
            yield RunTrackerClient(ref), ref
        finally:
            store.gated = False
            for gate in store.gates:
                gate.set()
            await ref.stop()


@asynccontextmanager
async def gated_store() -> AsyncIterator[GatedStore]:
    async with await open_store("memory://", migrate=True) as real:
        yield GatedStore(real)


async def test_a_second_batch_on_other_runs_commits_beside_the_first() -> None:
    with anyio.fail_after(TIMEOUT):
        async with gated_store() as store, tracker_on(store) as (tracker, _):
            async with anyio.create_task_group() as tg:
                tg.start_soon(tracker.persist, CreateRun("r-a"))
                await until(lambda: len(store.batches) == 1)
                tg.start_soon(tracker.persist, CreateRun("r-b"))
                await until(lambda: len(store.batches) == 2)
                assert store.in_flight == 2
                store.open_gate(1)  # the second ends first: the first is still answered
                await until(lambda: store.in_flight == 1)
                store.open_gate(0)
            assert (await store.store.get_run("r-a")).id == "r-a"
            assert (await store.store.get_run("r-b")).id == "r-b"
            assert store.overlaps == []


async def test_an_operation_on_a_run_in_flight_waits_and_cuts_the_second_batch() -> None:
    with anyio.fail_after(TIMEOUT):
        async with gated_store() as store, tracker_on(store) as (tracker, _):
            async with anyio.create_task_group() as tg:
                tg.start_soon(tracker.persist, CreateRun("r-a"))
                await until(lambda: len(store.batches) == 1)
                # r-c may go beside r-a's batch, r-a's update may not, and nothing accepted
                # after it (r-d) jumps ahead of it.
                tg.start_soon(tracker.persist, CreateRun("r-c"), UpdateRun("r-a", name="x"))
                await until(lambda: len(store.batches) == 2)
                assert store.batches[1] == [CreateRun("r-c")]
                tg.start_soon(tracker.persist, CreateRun("r-d"))
                await accepted(tracker, 4)  # r-a, r-c, the update, r-d
                store.open_gate(1)
                await until(lambda: store.in_flight == 1)
                assert len(store.batches) == 2  # UpdateRun(r-a) still waits for r-a's batch
                store.open_gate(0)
                await until(lambda: len(store.batches) == 3)
                assert store.batches[2] == [UpdateRun("r-a", name="x"), CreateRun("r-d")]
                store.open_gate(2)
            assert store.overlaps == []
            assert (await store.store.get_run("r-a")).name == "x"
            assert (await store.store.get_run("r-d")).id == "r-d"


async def test_a_task_operation_follows_its_run_and_an_unknown_task_commits_alone() -> None:
    with anyio.fail_after(TIMEOUT):
        async with gated_store() as store, tracker_on(store) as (tracker, _):
            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    tracker.persist, CreateRun("r-a"), CreateTask("t-a", "r-a", "sim", "m", [])
                )
                await until(lambda: len(store.batches) == 1)
                store.open_gate(0)
                await until(lambda: store.in_flight == 0)
                # r-a's task is known: finishing it waits while an update of r-a commits.
                tg.start_soon(tracker.persist, UpdateRun("r-a", name="busy"))
                await until(lambda: len(store.batches) == 2)
                tg.start_soon(tracker.persist, FinishTurn("t-a", "done", run_messages=[]))
                await accepted(tracker, 2)
                assert len(store.batches) == 2
                store.open_gate(1)
                await until(lambda: len(store.batches) == 3)
                store.open_gate(2)
                await until(lambda: store.in_flight == 0)

                # A task the tracker never saw (created elsewhere): nothing beside it.
                await store.store.apply([CreateTask("t-x", "r-a", "sim", "m", [])])
                tg.start_soon(tracker.persist, FailTask("t-x", "boom"))
                await until(lambda: len(store.batches) == 4)
                tg.start_soon(tracker.persist, CreateRun("r-z"))
                await accepted(tracker, 2)
                assert len(store.batches) == 4  # r-z waits behind the unknown task
                store.open_gate(3)
                await until(lambda: len(store.batches) == 5)
                store.open_gate(4)
            assert store.overlaps == []
            assert (await store.store.get_task("t-a")).status == "completed"
            assert (await store.store.get_task("t-x")).status == "failed"


async def test_a_flush_waits_for_every_batch_in_flight_whichever_ends_first() -> None:
    with anyio.fail_after(TIMEOUT):
        async with gated_store() as store, tracker_on(store) as (tracker, _):
            flushed = anyio.Event()

            async def flush() -> None:
                await tracker.flush()
                flushed.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(tracker.persist, CreateRun("r-a"))
                await until(lambda: len(store.batches) == 1)
                tg.start_soon(tracker.persist, CreateRun("r-b"))
                await until(lambda: len(store.batches) == 2)
                tg.start_soon(flush)
                store.open_gate(1)
                await until(lambda: store.in_flight == 1)
                await tracker.stats()  # answered after the flush (one mailbox, in order)
                assert not flushed.is_set()  # r-a is still committing
                store.open_gate(0)
                await flushed.wait()


async def test_a_crash_with_two_batches_in_flight_commits_both_and_answers_each_once() -> None:
    with anyio.fail_after(TIMEOUT):
        async with gated_store() as store:
            home = RunTrackerHome()
            answered: list[str] = []
            spec = ChildSpec(
                "run_tracker",
                lambda: run_tracker_actor(store, home=home, commit_concurrency=2),
            )
            async with open_supervisor(Supervisor([spec], name="root")) as sup:
                ref = sup.child("run_tracker")
                assert isinstance(ref, ActorRef)
                tracker = RunTrackerClient(ref)

                async def persist(run_id: str) -> None:
                    await tracker.persist(CreateRun(run_id))
                    answered.append(run_id)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(persist, "r-a")
                    await until(lambda: len(store.batches) == 1)
                    tg.start_soon(persist, "r-b")
                    await until(lambda: len(store.batches) == 2)
                    assert crash_actor(ref)
                    # The next incarnation commits both again; let every commit through.
                    store.gated = False
                    for gate in store.gates:
                        gate.set()
                assert sorted(answered) == ["r-a", "r-b"]
                assert home.pending == []
            assert {run.id for run in await store.store.list_runs()} == {"r-a", "r-b"}


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_each_runs_operations_commit_in_the_order_accepted(seed: int) -> None:
    rng = random.Random(seed)
    with anyio.fail_after(TIMEOUT):
        async with gated_store() as store:
            store.gated = False
            inner_apply = store.apply

            async def slow_apply(ops: Sequence[WriteOp]) -> None:
                await anyio.sleep(rng.random() * 0.003)
                await inner_apply(ops)

            store.apply = slow_apply  # type: ignore[method-assign]
            accepted: dict[str, list[str]] = {}
            async with tracker_on(store, max_batch=7) as (tracker, _):

                async def conversation(run_id: str) -> None:
                    names = [f"{run_id}-{n}" for n in range(6)]
                    accepted[run_id] = names
                    await tracker.persist(
                        CreateRun(run_id), CreateTask(f"t-{run_id}", run_id, "sim", "m", [])
                    )
                    for name in names[:-1]:
                        await tracker.submit(UpdateRun(run_id, name=name))  # unawaited writes
                        if rng.random() < 0.5:
                            await anyio.lowlevel.checkpoint()
                    await tracker.persist(
                        FinishTurn(f"t-{run_id}", "ok", run_messages=[]),
                        UpdateRun(run_id, name=names[-1]),
                    )

                async with anyio.create_task_group() as tg:
                    for n in range(20):
                        tg.start_soon(conversation, f"r{n}")
                await tracker.flush()
            assert store.overlaps == []
            assert store.most_in_flight == 2
            committed: dict[str, list[str]] = {}
            for batch in store.batches:
                for op in batch:
                    if isinstance(op, UpdateRun) and op.name is not None:
                        committed.setdefault(op.run_id, []).append(op.name)
            assert committed == accepted
            for run_id, names in accepted.items():
                assert (await store.store.get_run(run_id)).name == names[-1]


class _Dialect:
    def __init__(self, dialect: str) -> None:
        self.dialect = dialect


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite", "memory"])
def test_commit_concurrency_defaults_by_dialect_and_refuses_zero(dialect: str) -> None:
    tracker = run_tracker_actor(_Dialect(dialect))  # type: ignore[arg-type]
    assert isinstance(tracker, RunTracker)
    assert tracker._concurrency == COMMIT_CONCURRENCY.get(dialect, 1)
    assert COMMIT_CONCURRENCY.get("postgresql") == 2
    with pytest.raises(InvalidInput, match="commit_concurrency must be at least 1, got 0"):
        run_tracker_actor(_Dialect(dialect), commit_concurrency=0)  # type: ignore[arg-type]

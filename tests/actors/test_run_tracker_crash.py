"""A crash of the run tracker loses nothing it accepted.

The tracker runs under a supervisor whose factory hands every incarnation the same
``RunTrackerHome``. A crash while a batch commits leaves that batch (and what was accepted
behind it) to the next incarnation, which commits it again — the store already holds part
of it, a replay is a no-op — and answers every waiter exactly once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from promptactors._exceptions import StoreUnavailable
from promptactors.actors._run_tracker import RunTrackerClient, run_tracker_actor
from promptactors.actors._run_tracker_home import RunTrackerHome
from promptactors.kernel import ActorRef
from promptactors.messages import FlushOps, PersistOps
from promptactors.store import CreateRun, Store, UpdateRun, WriteOp, open_store
from promptactors.supervisors import ChildSpec, Supervisor, open_supervisor
from promptactors.testing import crash_actor

pytestmark = pytest.mark.anyio

TIMEOUT = 15


class HeldStore:
    """A real store whose ``apply`` commits, then holds its answer while ``hold`` is set:
    a crash then strikes a batch that is in the database but not yet acknowledged."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.hold: anyio.Event | None = None
        self.holding = 0
        self.applied: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def apply(self, ops: Sequence[WriteOp]) -> None:
        await self.store.apply(ops)
        self.applied.append(len(ops))
        hold = self.hold
        if hold is not None:
            self.holding += 1
            try:
                await hold.wait()
            finally:
                self.holding -= 1


class CountingWaiter:
    """A ``CommitWaiter`` that counts how often it is settled."""

    def __init__(self) -> None:
        self.committed_calls = 0
        self.failures: list[BaseException] = []

    def committed(self) -> None:
        self.committed_calls += 1

    def failed(self, error: BaseException) -> None:
        self.failures.append(error)

    def note(self, error: BaseException) -> None:
        pass


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(2000):
        if condition():
            return
        await anyio.sleep(0.005)
    raise AssertionError("condition never held")


@asynccontextmanager
async def supervised_tracker(
    store: Any, home: RunTrackerHome, **options: Any
) -> AsyncIterator[ActorRef[Any]]:
    spec = ChildSpec("run_tracker", lambda: run_tracker_actor(store, home=home, **options))
    async with open_supervisor(Supervisor([spec], name="root")) as sup:
        ref = sup.child("run_tracker")
        assert isinstance(ref, ActorRef)
        yield ref


async def test_a_crash_mid_batch_loses_nothing_and_answers_every_waiter_once(
    tmp_path: Path,
) -> None:
    async with await open_store(f"sqlite:///{tmp_path / 't.db'}", migrate=True) as real:
        store = HeldStore(real)
        store.hold = anyio.Event()
        home = RunTrackerHome()
        returned: dict[str, int] = {}
        errors: list[BaseException] = []
        waiters = [CountingWaiter() for _ in range(3)]
        flush = CountingWaiter()
        with anyio.fail_after(TIMEOUT), capture_logs() as logs:
            async with supervised_tracker(store, home, max_batch=16) as ref:
                tracker = RunTrackerClient(ref)

                async def persist(run_id: str) -> None:
                    try:
                        await tracker.persist(
                            CreateRun(run_id), UpdateRun(run_id, name=f"name of {run_id}")
                        )
                    except Exception as exc:
                        errors.append(exc)
                    else:
                        returned[run_id] = returned.get(run_id, 0) + 1

                async with anyio.create_task_group() as tg:
                    tg.start_soon(persist, "r-0")
                    await until(lambda: store.holding == 1)  # r-0 committed, unanswered
                    for n in range(1, 8):
                        tg.start_soon(persist, f"r-{n}")
                    for n, waiter in enumerate(waiters):
                        await ref.tell(PersistOps((CreateRun(f"w-{n}"),), waiter))
                    await ref.tell(FlushOps(flush))
                    await until(lambda: len(home.pending) == 2 + 14 + 3 and ref.queued == 0)

                    assert crash_actor(ref)  # mid-batch: the batch of r-0 is in flight
                    # The next incarnation commits the crashed batch again (held in turn):
                    # nobody was answered by the crashed one.
                    await until(lambda: len(store.applied) == 2 and store.holding == 1)
                    assert returned == {}
                    assert [w.committed_calls for w in waiters] == [0, 0, 0]
                    held, store.hold = store.hold, None
                    held.set()

                stats = await tracker.stats()

            assert errors == []
            assert returned == {f"r-{n}": 1 for n in range(8)}
            assert [(w.committed_calls, w.failures) for w in waiters] == [(1, [])] * 3
            assert (flush.committed_calls, flush.failures) == (1, [])
            assert home.pending == []
            assert home.flushes == []
            # The crashed batch was committed again (a no-op replay) by the next incarnation.
            assert stats.ops_committed == 2 + 14 + 3
            assert store.applied[0] == 2
            assert sum(store.applied) == 2 + stats.ops_committed
        for n in range(8):
            run = await real.get_run(f"r-{n}")
            assert run.name == f"name of r-{n}"
        for n in range(3):
            await real.get_run(f"w-{n}")
        events = [e["event"] for e in logs]
        assert "run_tracker_resumes" in events
        assert "run_tracker_ops_uncommitted" not in events


async def test_a_crash_while_the_store_is_down_keeps_retrying_in_the_next_incarnation(
    tmp_path: Path,
) -> None:
    """Accepted writes survive crashes during an outage and commit once the store is back."""
    from promptactors.testing import OutageStore

    async with await open_store(f"sqlite:///{tmp_path / 't.db'}", migrate=True) as real:
        store = OutageStore(real)
        home = RunTrackerHome()
        with anyio.fail_after(TIMEOUT), capture_logs():
            async with supervised_tracker(store, home) as ref:
                tracker = RunTrackerClient(ref)
                store.begin_outage()
                done: list[str] = []

                async def persist(run_id: str) -> None:
                    await tracker.persist(CreateRun(run_id), timeout=None)
                    done.append(run_id)

                async with anyio.create_task_group() as tg:
                    for n in range(5):
                        tg.start_soon(persist, f"r-{n}")
                    await until(lambda: len(home.pending) == 5 and store.refused >= 1)
                    assert crash_actor(ref)
                    await until(lambda: store.refused >= 3)  # the next incarnation retries
                    assert crash_actor(ref)
                    await anyio.sleep(0.05)
                    assert done == []
                    store.end_outage()
                assert sorted(done) == [f"r-{n}" for n in range(5)]
        for n in range(5):
            await real.get_run(f"r-{n}")


async def test_the_owner_of_a_home_fails_what_no_incarnation_will_commit() -> None:
    """``abandon`` (the runtime calls it once its tree is down) settles every waiter."""
    home = RunTrackerHome()
    waiter, flush = CountingWaiter(), CountingWaiter()
    from promptactors.actors._run_tracker_home import Group

    home.accept((CreateRun("r-1"), CreateRun("r-2")), Group(waiter, 2))
    home.flushes.append((home.seq, flush))
    with capture_logs() as logs:
        home.abandon("the runtime stopped before committing them")
        home.abandon("again")  # idempotent
    assert waiter.committed_calls == 0
    assert len(waiter.failures) == 1
    assert isinstance(waiter.failures[0], StoreUnavailable)
    assert "2 operations not committed: the runtime stopped" in str(waiter.failures[0])
    assert len(flush.failures) == 1
    assert [e["event"] for e in logs] == ["run_tracker_ops_uncommitted"]

"""Behaviour of the actor kernel: messages, replies, backpressure, lifecycle, failures."""

from __future__ import annotations

import gc
import weakref
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from promptactors import (
    Actor,
    ActorDead,
    AskTimeout,
    InvalidInput,
    MailboxFull,
    handler,
    spawn,
)


@dataclass(frozen=True)
class Inc:
    n: int = 1


@dataclass(frozen=True)
class Get:
    pass


@dataclass(frozen=True)
class Fail:
    text: str = "boom"


@dataclass(frozen=True)
class Block:
    """Handled by waiting on an event the test holds."""

    event: anyio.Event


@dataclass(frozen=True)
class Record:
    value: Any


class Counter(Actor[Inc | Get | Fail | Block | Record]):
    def __init__(self) -> None:
        self.count = 0
        self.seen: list[Any] = []
        self.stopped = False

    @handler
    async def inc(self, message: Inc) -> None:
        self.count += message.n

    @handler
    async def get(self, message: Get) -> int:
        return self.count

    @handler
    async def fail(self, message: Fail) -> None:
        raise ValueError(message.text)

    @handler
    async def block(self, message: Block) -> str:
        await message.event.wait()
        return "unblocked"

    @handler
    async def record(self, message: Record) -> list[Any]:
        self.seen.append(message.value)
        return list(self.seen)

    async def on_stop(self) -> None:
        self.stopped = True


pytestmark = pytest.mark.anyio


async def test_tell_then_ask_sees_every_told_message() -> None:
    """Messages told before an ask are handled before it, in order."""
    async with anyio.create_task_group() as tg:
        ref = await spawn(tg, Counter())
        for i in range(1, 101):
            await ref.tell(Inc(i))
        assert await ref.ask(Get()) == 5050
        await ref.stop()


async def test_ask_raises_the_handler_error_and_the_actor_keeps_running() -> None:
    """An exception while answering an ask goes to the caller; the actor survives it."""
    async with anyio.create_task_group() as tg:
        ref = await spawn(tg, Counter())
        with pytest.raises(ValueError, match="bad thing"):
            await ref.ask(Fail("bad thing"))
        await ref.tell(Inc())
        assert await ref.ask(Get()) == 1
        assert ref.is_alive
        await ref.stop()


async def test_a_crash_in_a_told_message_is_raised_into_the_task_group() -> None:
    """Without a supervisor, a told message that raises crashes the actor into its task group."""
    counter = Counter()
    with pytest.RaisesGroup(pytest.RaisesExc(ValueError, match="crash!")):
        async with anyio.create_task_group() as tg:
            ref = await spawn(tg, counter)
            await ref.tell(Fail("crash!"))
    assert not ref.is_alive
    with pytest.raises(ActorDead):
        await ref.tell(Inc())


async def test_try_tell_on_a_full_mailbox_raises_mailbox_full_and_sends_nothing() -> None:
    """try_tell refuses, with MailboxFull, a message the bounded mailbox has no room for."""
    async with anyio.create_task_group() as tg:
        ref = await spawn(tg, Counter(), mailbox_size=2)
        gate = anyio.Event()
        tg.start_soon(ref.ask, Block(gate))
        await anyio.wait_all_tasks_blocked()  # the actor now waits inside the Block handler
        ref.try_tell(Inc())
        ref.try_tell(Inc())
        with pytest.raises(MailboxFull, match="full"):
            ref.try_tell(Inc(100))
        gate.set()
        assert await ref.ask(Get()) == 2
        await ref.stop()


async def test_tell_waits_for_room_and_parked_senders_are_served_in_order() -> None:
    """A sender to a full mailbox waits (backpressure) and nothing it sent is lost or reordered."""
    async with anyio.create_task_group() as tg:
        ref = await spawn(tg, Counter(), mailbox_size=1)
        gate = anyio.Event()
        tg.start_soon(ref.ask, Block(gate))
        await anyio.wait_all_tasks_blocked()
        await ref.tell(Record(0))  # fills the single slot

        async def send(value: int) -> None:
            await ref.tell(Record(value))

        for value in range(1, 6):
            tg.start_soon(send, value)
            await anyio.wait_all_tasks_blocked()  # each sender parks in turn
        assert ref._cell.mailbox.blocked_senders == 5
        gate.set()
        assert await ref.ask(Record("end")) == [0, 1, 2, 3, 4, 5, "end"]
        await ref.stop()


async def test_a_message_type_without_a_handler_is_refused_at_the_sender() -> None:
    """Telling a message nobody handles raises InvalidInput naming it, before it is queued."""
    async with anyio.create_task_group() as tg:
        ref = await spawn(tg, Counter())
        with pytest.raises(InvalidInput, match="no handler for str"):
            await ref.tell("hello")  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="no handler for int"):
            await ref.ask(42)  # type: ignore[arg-type]
        assert ref.queued == 0
        await ref.stop()


async def test_stop_handles_queued_messages_runs_on_stop_and_refuses_new_ones() -> None:
    """A graceful stop drains what was accepted, runs on_stop, then refuses messages."""
    counter = Counter()
    async with anyio.create_task_group() as tg:
        ref = await spawn(tg, counter)
        for _ in range(50):
            ref.try_tell(Inc())
        await ref.stop()
        assert counter.count == 50
        assert counter.stopped
        assert not ref.is_alive
        with pytest.raises(ActorDead, match="stopped"):
            await ref.tell(Inc())
        with pytest.raises(ActorDead):
            await ref.ask(Get())
        await ref.stop()  # idempotent


async def test_pending_asks_fail_with_actor_dead_when_the_actor_is_killed() -> None:
    """Asks queued behind a handler that outlives the shutdown timeout fail with ActorDead."""
    async with anyio.create_task_group() as tg:
        ref = await spawn(tg, Counter(), shutdown_timeout=0.05)
        gate = anyio.Event()
        results: list[BaseException] = []

        async def ask_blocked() -> None:
            try:
                await ref.ask(Block(gate))
            except ActorDead as exc:
                results.append(exc)

        async def ask_get() -> None:
            try:
                await ref.ask(Get())
            except ActorDead as exc:
                results.append(exc)

        tg.start_soon(ask_blocked)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(ask_get)
        await anyio.wait_all_tasks_blocked()
        with anyio.fail_after(5):
            await ref.stop()
    assert len(results) == 2
    assert all(isinstance(exc, ActorDead) for exc in results)


async def test_cancelling_the_task_group_is_not_a_crash() -> None:
    """Cancellation ends the actor without on_crash, and a pending outside ask gets ActorDead."""
    crashed: list[BaseException] = []

    class Watcher(Counter):
        async def on_crash(self, error: BaseException) -> None:
            crashed.append(error)

    outcome: list[BaseException] = []
    async with anyio.create_task_group() as outer, anyio.create_task_group() as inner:
        ref = await spawn(inner, Watcher())
        gate = anyio.Event()

        async def ask_from_outside() -> None:
            try:
                await ref.ask(Block(gate))
            except ActorDead as exc:
                outcome.append(exc)

        outer.start_soon(ask_from_outside)
        await anyio.wait_all_tasks_blocked()
        inner.cancel_scope.cancel()
    assert crashed == []
    assert len(outcome) == 1
    assert not ref.is_alive


async def test_on_start_failure_is_raised_out_of_spawn() -> None:
    """An actor whose on_start raises never starts: spawn raises that error."""

    class Broken(Counter):
        async def on_start(self) -> None:
            raise RuntimeError("no database")

    async with anyio.create_task_group() as tg:
        with pytest.raises(RuntimeError, match="no database"):
            await spawn(tg, Broken())


async def test_on_crash_runs_with_the_error_and_its_own_failure_is_only_logged() -> None:
    """on_crash sees the crash; if on_crash raises, the log says so and the crash stands."""
    seen: list[BaseException] = []

    class Clumsy(Counter):
        async def on_crash(self, error: BaseException) -> None:
            seen.append(error)
            raise KeyError("in on_crash")

    with structlog.testing.capture_logs() as logs, pytest.RaisesGroup(ValueError):
        async with anyio.create_task_group() as tg:
            ref = await spawn(tg, Clumsy())
            await ref.tell(Fail("original"))
    assert [str(e) for e in seen] == ["original"]
    events = [entry["event"] for entry in logs]
    assert "actor_crashed" in events
    assert "on_crash_failed" in events


async def test_a_linked_task_failure_crashes_its_actor() -> None:
    """A task started with start_soon that raises crashes the actor that started it."""

    @dataclass(frozen=True)
    class StartWorker:
        pass

    class Parent(Actor[StartWorker]):
        @handler(StartWorker)
        async def start_worker(self, message: StartWorker) -> None:
            self.start_soon(self.worker)

        async def worker(self) -> None:
            await anyio.lowlevel.checkpoint()
            raise OSError("worker died")

    with pytest.RaisesGroup(pytest.RaisesExc(OSError, match="worker died")):
        async with anyio.create_task_group() as tg:
            ref = await spawn(tg, Parent())
            await ref.ask(StartWorker())
            with anyio.fail_after(5):
                await ref.wait_stopped()


async def test_linked_tasks_are_cancelled_and_awaited_when_the_actor_stops() -> None:
    """Stopping an actor cancels its linked tasks and waits for them before it is stopped."""
    log: list[str] = []

    @dataclass(frozen=True)
    class Go:
        pass

    class Parent(Actor[Go]):
        @handler(Go)
        async def go(self, message: Go) -> None:
            self.start_soon(self.forever)

        async def forever(self) -> None:
            try:
                await anyio.sleep_forever()
            finally:
                log.append("worker cancelled")

        async def on_stop(self) -> None:
            log.append("on_stop")

    async with anyio.create_task_group() as tg:
        ref = await spawn(tg, Parent())
        await ref.ask(Go())
        await anyio.wait_all_tasks_blocked()
        await ref.stop()
        assert log == ["on_stop", "worker cancelled"]


async def test_a_busy_actor_yields_to_others_after_its_message_budget() -> None:
    """An actor with a long queue lets other tasks run between batches of messages."""
    counter = Counter()
    observed: list[int] = []
    async with anyio.create_task_group() as tg:
        ref = await spawn(tg, counter, mailbox_size=10_000)
        for _ in range(5_000):
            ref.try_tell(Inc())
        with anyio.fail_after(10):
            while counter.count < 5_000:
                observed.append(counter.count)
                await anyio.lowlevel.checkpoint()
        await ref.stop()
    # This task ran while the actor still had messages queued: it saw partial counts.
    partial = [count for count in observed if 0 < count < 5_000]
    assert len(partial) >= 5_000 // 128 - 2


async def test_handlers_resolve_message_subclasses_and_unions() -> None:
    """A handler for a base class takes its subclasses; a union annotation registers each member."""

    @dataclass(frozen=True)
    class Base:
        pass

    @dataclass(frozen=True)
    class Child(Base):
        pass

    class Either(Actor[Any]):
        @handler(Base)
        async def base(self, message: Base) -> str:
            return type(message).__name__

        @handler(Inc, Get)
        async def many(self, message: Inc | Get) -> str:
            return "many"

    async with anyio.create_task_group() as tg:
        ref = await spawn(tg, Either())
        assert await ref.ask(Child()) == "Child"
        assert await ref.ask(Inc()) == "many"
        assert await ref.ask(Get()) == "many"
        await ref.stop()


async def test_an_actor_that_overrides_receive_takes_every_message() -> None:
    """Overriding receive replaces handler dispatch: any message type is accepted."""

    class Echo(Actor[object]):
        async def receive(self, message: object) -> object:
            return message

    async with anyio.create_task_group() as tg:
        ref = await spawn(tg, Echo())
        assert await ref.ask("anything") == "anything"
        assert await ref.ask(3) == 3
        await ref.stop()


def test_a_non_async_handler_is_refused_at_class_creation() -> None:
    """@handler on a plain function fails when the class is created, naming the method."""
    with pytest.raises(TypeError, match="must be `async def`"):

        class Wrong(Actor[Inc]):
            @handler(Inc)
            def inc(self, message: Inc) -> None:  # type: ignore[type-var]
                pass


def test_an_unannotated_handler_is_refused_with_advice() -> None:
    """A bare @handler whose message parameter has no annotation asks for an explicit type."""
    with pytest.raises(TypeError, match="annotate"):

        class Wrong(Actor[Inc]):
            @handler
            async def inc(self, message) -> None:  # type: ignore[no-untyped-def]
                pass


async def test_a_zero_mailbox_size_is_invalid_input() -> None:
    """A mailbox must hold at least one message."""
    async with anyio.create_task_group() as tg:
        with pytest.raises(InvalidInput, match="mailbox_size"):
            await spawn(tg, Counter(), mailbox_size=0)


async def test_stopped_actors_are_freed_by_reference_counting() -> None:
    """Once stopped and unreferenced, actors are freed at once: the kernel leaves no cycles."""
    refs: list[weakref.ref[Counter]] = []
    gc.disable()
    try:
        async with anyio.create_task_group() as tg:
            for _ in range(50):
                counter = Counter()
                refs.append(weakref.ref(counter))
                ref = await spawn(tg, counter)
                await ref.tell(Inc())
                await ref.stop()
            del counter, ref
        assert [r for r in refs if r() is not None] == []
    finally:
        gc.enable()


async def test_ask_timeout_on_a_real_clock() -> None:
    """An ask that gets no reply in time raises AskTimeout naming the actor and message."""
    async with anyio.create_task_group() as tg:
        ref = await spawn(tg, Counter(), name="slowpoke")
        gate = anyio.Event()
        with pytest.raises(AskTimeout, match=r"'slowpoke' did not answer Block within 0\.05s"):
            await ref.ask(Block(gate), timeout=0.05)
        gate.set()
        assert await ref.ask(Get()) == 0  # still alive; the late reply was discarded
        await ref.stop()


@pytest.mark.parametrize("anyio_backend", ["trio"])
@settings(max_examples=30, deadline=None)
@given(
    capacity=st.integers(min_value=1, max_value=8),
    plan=st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=1, max_size=60),
)
async def test_each_senders_messages_arrive_in_the_order_sent(
    anyio_backend: str, capacity: int, plan: list[tuple[int, bool]]
) -> None:
    """Whatever the capacity and interleaving, no message is lost and each sender's order holds."""
    async with anyio.create_task_group() as tg:
        ref = await spawn(tg, Counter(), mailbox_size=capacity)
        per_sender: dict[int, list[tuple[int, int]]] = {}
        for index, (sender, _) in enumerate(plan):
            per_sender.setdefault(sender, []).append((sender, index))

        async def run_sender(messages: list[tuple[int, int]]) -> None:
            for sender, index in messages:
                if plan[index][1]:
                    await ref.tell(Record((sender, index)))
                else:
                    await ref.ask(Record((sender, index)))

        async with anyio.create_task_group() as senders:
            for messages in per_sender.values():
                senders.start_soon(run_sender, messages)
        seen = await ref.ask(Record("end"))
        await ref.stop()
    assert seen[-1] == "end"
    delivered = seen[:-1]
    assert sorted(delivered, key=lambda m: m[1]) == sorted(
        ((s, i) for i, (s, _) in enumerate(plan)), key=lambda m: m[1]
    )
    for sender, messages in per_sender.items():
        assert [m for m in delivered if m[0] == sender] == messages


async def test_ask_soon_pipelines_many_asks_from_one_caller() -> None:
    """Asks sent with ask_soon are answered in order, awaited after all were sent."""
    async with anyio.create_task_group() as tg:
        ref = await spawn(tg, Counter())
        pending = [ref.ask_soon(Record(i)) for i in range(50)]
        answers = [await p.result(timeout=5) for p in pending]
        assert answers[-1] == list(range(50))
        assert answers[0] == [0]
        failing = ref.ask_soon(Fail("late"))
        with pytest.raises(ValueError, match="late"):
            await failing.result()
        await ref.stop()


async def test_ask_soon_on_a_full_mailbox_raises_and_sends_nothing() -> None:
    """ask_soon never waits: with no room it raises MailboxFull and nothing is queued."""
    async with anyio.create_task_group() as tg:
        ref = await spawn(tg, Counter(), mailbox_size=1)
        gate = anyio.Event()
        tg.start_soon(ref.ask, Block(gate))
        await anyio.wait_all_tasks_blocked()
        first = ref.ask_soon(Get())
        with pytest.raises(MailboxFull):
            ref.ask_soon(Get())
        gate.set()
        assert await first.result() == 0
        await ref.stop()


async def test_a_pending_reply_fails_with_actor_dead_when_the_actor_is_killed() -> None:
    """A pipelined ask still queued when its actor is killed gets ActorDead, not a hang."""
    async with anyio.create_task_group() as tg:
        ref = await spawn(tg, Counter(), shutdown_timeout=0.01)
        gate = anyio.Event()
        blocked: list[BaseException] = []

        async def ask_blocked() -> None:
            try:
                await ref.ask(Block(gate))
            except ActorDead as exc:
                blocked.append(exc)

        tg.start_soon(ask_blocked)
        await anyio.wait_all_tasks_blocked()
        queued = ref.ask_soon(Get())
        await ref.stop()
        with pytest.raises(ActorDead):
            await queued.result(timeout=5)
    assert len(blocked) == 1

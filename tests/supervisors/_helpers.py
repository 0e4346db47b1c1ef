"""Test actors, a shared journal of lifecycle events, and small waiting helpers."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from promptactors import Actor, ActorRef, RestartIntensityExceeded, handler
from promptactors.supervisors import ChildSpec, Restart, Supervisor, open_supervisor

WAIT = 5.0
"""Bound (seconds) on every wait for an observable condition."""


class Boom(Exception):
    """What a crashing test actor raises; ``args[0]`` names the crash."""


class StartFailed(Exception):
    """What a test actor's ``on_start`` raises when told to fail."""


@dataclass(frozen=True)
class Ping:
    """Ask: answered with ``(label, incarnation)``."""


@dataclass(frozen=True)
class Crash:
    """Tell: the handler raises ``Boom(tag)``."""

    tag: str = "boom"


@dataclass(frozen=True)
class CrashLinked:
    """Tell: starts a linked task that raises ``Boom(tag)``."""

    tag: str = "linked"


@dataclass(frozen=True)
class StopSelf:
    """Tell: the actor stops itself (a normal exit)."""


@dataclass(frozen=True)
class Hang:
    """Tell or ask: the handler never returns."""


@dataclass(frozen=True)
class Busy:
    """Tell or ask: the handler sleeps ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class Note:
    """Tell: recorded as ``note:<label>:<value>:<incarnation>``."""

    value: int


Msg = Ping | Crash | CrashLinked | StopSelf | Hang | Busy | Note


class Journal:
    """An ordered record of lifecycle events (with their times) that tests can wait on."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.times: list[float] = []
        self.attempts: dict[str, int] = {}
        self._changed: anyio.Event | None = None

    def add(self, event: str) -> None:
        self.events.append(event)
        self.times.append(anyio.current_time())
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def count(self, event: str) -> int:
        return self.events.count(event)

    def since(self, mark: int) -> list[str]:
        return self.events[mark:]

    def time_of(self, event: str, nth: int = 1) -> float:
        """The time of the ``nth`` (1-based) occurrence of ``event``."""
        seen = 0
        for name, at in zip(self.events, self.times, strict=True):
            if name == event:
                seen += 1
                if seen == nth:
                    return at
        raise LookupError(f"{event!r} occurred {seen} times, not {nth}")

    async def wait_for(self, predicate: Callable[[], bool], *, timeout: float = WAIT) -> None:
        with anyio.fail_after(timeout):
            while not predicate():
                if self._changed is None:
                    self._changed = anyio.Event()
                await self._changed.wait()

    async def wait_count(self, event: str, n: int, *, timeout: float = WAIT) -> None:
        await self.wait_for(lambda: self.count(event) >= n, timeout=timeout)


class Worker(Actor[Msg]):
    """A test actor that records its lifecycle in a journal.

    ``fail_start(attempt)`` (1-based over the life of the label) makes ``on_start`` raise;
    ``start_seconds(attempt)`` is how long ``on_start`` takes (``math.inf``: hang);
    ``stop_seconds`` makes ``on_stop`` take that long (``math.inf``: hang); ``fail_stop``
    makes ``on_stop`` raise; ``crash_seconds`` is how long ``on_crash`` takes.
    """

    def __init__(
        self,
        label: str,
        journal: Journal,
        *,
        fail_start: Callable[[int], bool] | None = None,
        start_seconds: Callable[[int], float] | None = None,
        stop_seconds: float = 0.0,
        fail_stop: bool = False,
        crash_seconds: float = 0.0,
    ) -> None:
        self.label = label
        self.journal = journal
        self.fail_start = fail_start
        self.start_seconds = start_seconds
        self.stop_seconds = stop_seconds
        self.fail_stop = fail_stop
        self.crash_seconds = crash_seconds
        self.incarnation = 0

    async def on_start(self) -> None:
        attempt = self.journal.attempts.get(self.label, 0) + 1
        self.journal.attempts[self.label] = attempt
        seconds = self.start_seconds(attempt) if self.start_seconds is not None else 0.0
        if seconds:
            self.journal.add(f"starting:{self.label}")
            if math.isinf(seconds):
                await anyio.sleep_forever()
            await anyio.sleep(seconds)
        if self.fail_start is not None and self.fail_start(attempt):
            self.journal.add(f"start_failed:{self.label}")
            raise StartFailed(f"{self.label} attempt {attempt}")
        self.incarnation = self.journal.count(f"start:{self.label}") + 1
        self.journal.add(f"start:{self.label}")

    async def on_stop(self) -> None:
        self.journal.add(f"stop:{self.label}")
        if self.fail_stop:
            raise Boom(f"{self.label} on_stop")
        if self.stop_seconds:
            if math.isinf(self.stop_seconds):
                await anyio.sleep_forever()
            await anyio.sleep(self.stop_seconds)
            self.journal.add(f"stopped:{self.label}")

    async def on_crash(self, error: BaseException) -> None:
        self.journal.add(f"crash:{self.label}")
        if self.crash_seconds:
            await anyio.sleep(self.crash_seconds)
            self.journal.add(f"crashed:{self.label}")

    @handler
    async def ping(self, message: Ping) -> tuple[str, int]:
        return self.label, self.incarnation

    @handler
    async def crash(self, message: Crash) -> None:
        self.journal.add(f"handled_crash:{self.label}:{message.tag}")
        raise Boom(message.tag)

    @handler
    async def crash_linked(self, message: CrashLinked) -> None:
        async def fail() -> None:
            raise Boom(message.tag)

        self.start_soon(fail)

    @handler
    async def stop(self, message: StopSelf) -> None:
        self.stop_self()

    @handler
    async def hang(self, message: Hang) -> None:
        self.journal.add(f"hanging:{self.label}")
        await anyio.sleep_forever()

    @handler
    async def busy(self, message: Busy) -> None:
        await anyio.sleep(message.seconds)

    @handler
    async def note(self, message: Note) -> None:
        self.journal.add(f"note:{self.label}:{message.value}:{self.incarnation}")


def worker(
    label: str,
    journal: Journal,
    *,
    restart: Restart = "permanent",
    shutdown: float | None = 5.0,
    mailbox_size: int | None = None,
    **options: Any,
) -> ChildSpec:
    """The spec of a :class:`Worker` child labelled ``label``."""
    return ChildSpec(
        label,
        lambda: Worker(label, journal, **options),
        restart=restart,
        shutdown=shutdown,
        mailbox_size=mailbox_size,
    )


def ref(supervisor: Supervisor, child_id: str) -> ActorRef[Msg]:
    """The ``ActorRef`` of an actor child."""
    found = supervisor.child(child_id)
    assert isinstance(found, ActorRef)
    return found


def subtree(supervisor: Supervisor, child_id: str) -> Supervisor:
    """The current supervisor of a subtree child."""
    found = supervisor.child(child_id)
    assert isinstance(found, Supervisor)
    return found


async def wait_until(predicate: Callable[[], bool], *, timeout: float = WAIT) -> None:
    """Poll ``predicate`` (for state no event announces, e.g. a mailbox length)."""
    with anyio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110 - the kernel offers no event for these
            await anyio.sleep(0.001)


async def expect_escalation(
    supervisor: Supervisor, body: Callable[[], Awaitable[None]]
) -> RestartIntensityExceeded:
    """Run ``body`` inside ``open_supervisor``, wait for the escalation that must follow,
    and return the ``RestartIntensityExceeded`` raised out of the block."""

    async def scenario() -> None:
        async with open_supervisor(supervisor):
            await body()
            with anyio.fail_after(WAIT):
                await anyio.sleep_forever()

    with pytest.raises(RestartIntensityExceeded) as raised:
        await scenario()
    return raised.value

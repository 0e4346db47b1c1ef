"""Run blocking or asyncio-only work off the caller's event loop, and wake the caller.

Two workers: :class:`WorkerThread` runs plain callables one after another on one dedicated
thread (the SQLite connection lives there), :class:`LoopThread` runs coroutines on a private
asyncio loop in one dedicated thread (asyncpg under trio). A caller waits with
:func:`wait_for`, which parks the task without blocking its loop: on trio the worker
reschedules the task directly (``run_sync_soon`` + ``reschedule``), on asyncio it resolves a
future with ``call_soon_threadsafe``.

Cancellation: on trio the wait cancels the work and stays parked until the worker has
stopped (an asyncio task is cancelled and awaited; a callable that has not started is
skipped, one that has is finished), then raises ``Cancelled``. On asyncio the work is
cancelled the same way but the caller does not wait for it to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar, cast

import anyio.to_thread
import outcome
import trio

from ._primitives import context_without_async_library, get_backend

__all__ = ["AsyncioRunner", "LoopThread", "WorkerThread", "wait_for"]

T = TypeVar("T")
Wake = Callable[[outcome.Outcome[Any]], None]
Cancel = Callable[[], None]
Submit = Callable[[Wake], Cancel]


class _Cancelled:
    """Delivered instead of a result when the work was cancelled before it finished."""


CANCELLED: Final = _Cancelled()


async def wait_for(submit: Submit) -> Any:
    """Start work with ``submit(wake)`` and wait, without blocking the loop, for its result.

    ``submit`` must return a thread-safe function that cancels the work; the worker calls
    ``wake`` exactly once with the outcome (``Value(CANCELLED)`` if it was cancelled).
    Raises ``RuntimeError`` outside a trio or asyncio task.
    """
    if get_backend().name == "trio":
        return await _wait_trio(submit)
    return await _wait_asyncio(submit)


async def _wait_trio(submit: Submit) -> Any:
    task = trio.lowlevel.current_task()
    token = trio.lowlevel.current_trio_token()
    aborted = False

    def wake(result: outcome.Outcome[Any]) -> None:
        # The result travels wrapped so that an error of a cancelled call can be replaced
        # by trio's own Cancelled below.
        token.run_sync_soon(trio.lowlevel.reschedule, task, outcome.Value(result))

    cancel = submit(wake)

    def abort(_: Any) -> trio.lowlevel.Abort:
        nonlocal aborted
        aborted = True
        cancel()
        return trio.lowlevel.Abort.FAILED  # stay parked until the worker wakes us

    result = cast("outcome.Outcome[Any]", await trio.lowlevel.wait_task_rescheduled(abort))
    cancelled = isinstance(result, outcome.Value) and result.value is CANCELLED
    if aborted and (cancelled or isinstance(result, outcome.Error)):
        await trio.lowlevel.checkpoint()  # cancellation is level-triggered: this raises
    if cancelled:
        raise RuntimeError("store work was cancelled without a cancelled caller")
    return result.unwrap()


def _resolve(fut: asyncio.Future[outcome.Outcome[Any]], result: outcome.Outcome[Any]) -> None:
    if not fut.done():
        fut.set_result(result)


async def _wait_asyncio(submit: Submit) -> Any:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[outcome.Outcome[Any]] = loop.create_future()

    def wake(result: outcome.Outcome[Any]) -> None:
        # RuntimeError: the caller's loop is closed, so nobody is waiting any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve, fut, result)

    cancel = submit(wake)
    try:
        result = await fut
    except asyncio.CancelledError:
        cancel()
        raise
    if isinstance(result, outcome.Value) and result.value is CANCELLED:
        raise asyncio.CancelledError
    return result.unwrap()


class _Job:
    __slots__ = ("cancelled", "fn", "wake")

    def __init__(self, fn: Callable[[], Any], wake: Wake) -> None:
        self.fn = fn
        self.wake = wake
        self.cancelled = False


class WorkerThread:
    """One daemon thread that runs submitted callables in order."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            if job.cancelled:
                job.wake(outcome.Value(CANCELLED))
                continue
            job.wake(outcome.capture(job.fn))

    def submitter(self, fn: Callable[[], Any]) -> Submit:
        """A ``submit`` for :func:`wait_for` that runs ``fn`` on this thread."""

        def submit(wake: Wake) -> Cancel:
            job = _Job(fn, wake)
            self._queue.put(job)

            def cancel() -> None:
                job.cancelled = True  # checked before the job starts; a started job finishes

            return cancel

        return submit

    def stop(self) -> None:
        """Ask the thread to exit after the jobs already queued."""
        self._queue.put(None)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to exit (blocking: call it from a worker thread)."""
        self._thread.join(timeout)


class LoopThread:
    """One daemon thread running a private asyncio event loop."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

    def submitter(self, make: Callable[[], Coroutine[Any, Any, Any]]) -> Submit:
        """A ``submit`` for :func:`wait_for` that runs ``make()`` as a task on this loop."""
        loop = self.loop

        def submit(wake: Wake) -> Cancel:
            state: dict[str, Any] = {"task": None, "cancelled": False}

            def done(task: asyncio.Task[Any]) -> None:
                if task.cancelled():
                    wake(outcome.Value(CANCELLED))
                elif (exc := task.exception()) is not None:
                    wake(outcome.Error(exc))
                else:
                    wake(outcome.Value(task.result()))

            def start() -> None:
                if state["cancelled"]:
                    wake(outcome.Value(CANCELLED))
                    return
                # The caller's context travels along (log bindings), less its async
                # library marker: code on this loop must see asyncio, not trio.
                task = loop.create_task(make(), context=context_without_async_library())
                state["task"] = task
                task.add_done_callback(done)

            def cancel_now() -> None:
                state["cancelled"] = True
                if state["task"] is not None:
                    state["task"].cancel()

            def cancel() -> None:
                loop.call_soon_threadsafe(cancel_now)

            loop.call_soon_threadsafe(start)
            return cancel

        return submit

    def stop(self) -> None:
        """Stop the loop (its leftover tasks are cancelled) and let the thread exit."""
        with contextlib.suppress(RuntimeError):  # already closed
            self.loop.call_soon_threadsafe(self.loop.stop)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to exit (blocking: call it from a worker thread)."""
        self._thread.join(timeout)


class AsyncioRunner:
    """Runs asyncio-only coroutines (asyncpg) for tasks of the loop that created it.

    Created inside an asyncio task, it runs each coroutine right there, on the host loop
    (no thread hop). Created inside a trio task, it starts a :class:`LoopThread` and runs
    each coroutine on that private loop, waking the trio caller directly. Raises
    ``RuntimeError`` outside a trio or asyncio task.
    """

    def __init__(self, name: str) -> None:
        self._thread = LoopThread(name) if get_backend().name == "trio" else None

    @property
    def threaded(self) -> bool:
        """Whether coroutines run on a private loop thread (the caller is on trio)."""
        return self._thread is not None

    async def run(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``make()`` to completion and return its result (or raise its error)."""
        if self._thread is None:
            return await make()
        result: T = await wait_for(self._thread.submitter(make))
        return result

    async def aclose(self) -> None:
        """Stop the private loop thread, if any (its leftover tasks are cancelled)."""
        if self._thread is not None:
            thread, self._thread = self._thread, None
            thread.stop()
            await anyio.to_thread.run_sync(thread.join, 5.0)

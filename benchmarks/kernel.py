"""The actor kernel against its floor (a bare trio channel) and its peer (pykka), in one run.

Figures (``run`` returns them as one dict):

* ``tell_per_cpu_s``: messages a second of CPU through ``ActorRef.tell`` into an actor
  whose handler counts them; ``raw_channel_per_cpu_s``: the same through a bare trio
  memory channel (``send_nowait`` + draining ``receive_nowait``), the floor. Each is the
  best of 3 runs (5 without ``--quick``).
* ``ask_per_s``: completed asks a wall-clock second, the better of 100 concurrent
  callers and one caller pipelining 100 asks at a time (``ask_soon``);
  ``ask_sequential_per_s``: one caller, one ask at a time. pykka's figures are its best
  configuration for each: the better of ``ask(block=False)`` futures in batches of 100
  and 100 caller threads, and blocking ``ask`` for the sequential one.
* ``spawn_10k_s``: starting 10,000 actors under a dynamic supervisor (the path execution
  instances take), ``spawn_10k_bare_s`` with ``spawn``; ``pykka_spawn_10k_s``: 10,000
  ``ThreadingActor.start()`` (``--quick`` measures 2,000 and scales, saying so).
* ``kb_per_idle_actor`` / ``pykka_kb_per_actor``: resident memory per idle actor, each
  measured in a fresh process.
* ``spawn_100k_s`` / ``stop_100k_s``: 100,000 actors under one dynamic supervisor, then a
  graceful shutdown; ``spawn_100k_clean`` says every one started and stopped.
* ``asyncio``: ``tell_per_cpu_s`` and ``ask_per_s`` on the asyncio backend.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import anyio
import trio

from promptactors import Actor, ActorRef, handler, spawn
from promptactors.supervisors import ChildSpec, DynamicSupervisor, open_supervisor

CALLERS = 100


@dataclass(frozen=True, slots=True)
class Inc:
    pass


@dataclass(frozen=True, slots=True)
class Get:
    pass


class Counter(Actor[Inc | Get]):
    def __init__(self) -> None:
        self.count = 0

    @handler
    async def inc(self, message: Inc) -> None:
        self.count += 1

    @handler
    async def get(self, message: Get) -> int:
        return self.count


class Idle(Actor[Get]):
    @handler
    async def get(self, message: Get) -> int:
        return 0


# -- tell vs the raw channel -------------------------------------------------------------


async def _raw_channel(n: int) -> float:
    send, receive = trio.open_memory_channel[Inc](1024)
    received = 0
    done = trio.Event()

    async def consumer() -> None:
        nonlocal received
        while True:
            try:
                receive.receive_nowait()
            except trio.WouldBlock:
                if received >= n:
                    done.set()
                    return
                await receive.receive()
            received += 1

    message = Inc()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        start = time.process_time()
        for _ in range(n):
            try:
                send.send_nowait(message)
            except trio.WouldBlock:
                await send.send(message)
        await done.wait()
        elapsed = time.process_time() - start
    return n / elapsed


async def _tell(n: int) -> float:
    message = Inc()
    async with anyio.create_task_group() as tg:
        ref = await spawn(tg, Counter(), mailbox_size=1024)
        start = time.process_time()
        for _ in range(n):
            await ref.tell(message)
        count = await ref.ask(Get())
        elapsed = time.process_time() - start
        await ref.stop()
    assert count == n, (count, n)
    return n / elapsed


# -- ask ---------------------------------------------------------------------------------


async def _ask(n: int) -> tuple[float, float]:
    message = Get()
    async with anyio.create_task_group() as tg:
        ref = await spawn(tg, Counter())
        start = time.perf_counter()
        for _ in range(n):
            await ref.ask(message)
        sequential = n / (time.perf_counter() - start)

        async def caller(count: int) -> None:
            for _ in range(count):
                await ref.ask(message)

        per_caller = n // CALLERS
        start = time.perf_counter()
        async with anyio.create_task_group() as callers:
            for _ in range(CALLERS):
                callers.start_soon(caller, per_caller)
        concurrent = per_caller * CALLERS / (time.perf_counter() - start)
        # Pipelined, as pykka's futures: batches of CALLERS asks in flight from one caller.
        start = time.perf_counter()
        for _ in range(n // CALLERS):
            pending = [ref.ask_soon(message) for _ in range(CALLERS)]
            for reply in pending:
                await reply.result()
        pipelined = (n // CALLERS) * CALLERS / (time.perf_counter() - start)
        await ref.stop()
    return max(concurrent, pipelined), sequential


def _pykka_ask(n: int) -> tuple[float, float]:
    import pykka

    class Echo(pykka.ThreadingActor):
        def on_receive(self, message: Any) -> Any:
            return message

    ref = Echo.start()
    try:
        start = time.perf_counter()
        for i in range(n):
            ref.ask(i)
        sequential = n / (time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(n // CALLERS):
            futures = [ref.ask(i, block=False) for i in range(CALLERS)]
            for future in futures:
                future.get(timeout=30)
        pipelined = (n // CALLERS) * CALLERS / (time.perf_counter() - start)
        # Many blocking caller threads, the other way to ask concurrently.
        per_thread = n // CALLERS

        def caller() -> None:
            for i in range(per_thread):
                ref.ask(i)

        threads = [threading.Thread(target=caller) for _ in range(CALLERS)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        threaded = per_thread * CALLERS / (time.perf_counter() - start)
    finally:
        ref.stop()
    return max(pipelined, threaded), sequential


# -- spawning ----------------------------------------------------------------------------


async def _spawn_supervised(n: int) -> tuple[float, float, bool]:
    supervisor = DynamicSupervisor(name="bench")
    async with open_supervisor(supervisor):
        start = time.perf_counter()
        refs: list[ActorRef[Any]] = [
            await supervisor.start_child(ChildSpec(f"a{i}", Idle, restart="temporary"))  # type: ignore[misc]
            for i in range(n)
        ]
        spawned = time.perf_counter() - start
        started = supervisor.count_children() == n and all(r.is_alive for r in refs)
        start = time.perf_counter()
    stopped = time.perf_counter() - start
    return spawned, stopped, started and not any(r.is_alive for r in refs)


async def _spawn_bare(n: int) -> float:
    async with anyio.create_task_group() as tg:
        start = time.perf_counter()
        refs = [await spawn(tg, Idle()) for _ in range(n)]
        elapsed = time.perf_counter() - start
        tg.cancel_scope.cancel()
    del refs
    return elapsed


def _pykka_spawn(n: int) -> float:
    import pykka

    class Nop(pykka.ThreadingActor):
        pass

    start = time.perf_counter()
    refs = [Nop.start() for _ in range(n)]
    elapsed = time.perf_counter() - start
    for ref in refs:
        ref.stop(block=False)
    pykka.ActorRegistry.stop_all()
    return elapsed


# -- memory (each in a fresh process) ----------------------------------------------------


def _rss_kb() -> float:
    with open("/proc/self/statm", encoding="ascii") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 1024


def _memory_ours(n: int) -> float:
    async def main() -> float:
        supervisor = DynamicSupervisor(name="memory")
        async with open_supervisor(supervisor):
            # warm up the allocator and code paths before the baseline
            await supervisor.start_child(ChildSpec("warm", Idle, restart="temporary"))
            gc.collect()
            before = _rss_kb()
            for i in range(n):
                await supervisor.start_child(ChildSpec(f"a{i}", Idle, restart="temporary"))
            gc.collect()
            after = _rss_kb()
        return (after - before) / n

    return trio.run(main)


def _memory_pykka(n: int) -> float:
    import pykka

    class Nop(pykka.ThreadingActor):
        pass

    Nop.start().stop()
    gc.collect()
    before = _rss_kb()
    refs = [Nop.start() for _ in range(n)]
    gc.collect()
    after = _rss_kb()
    for ref in refs:
        ref.stop(block=False)
    pykka.ActorRegistry.stop_all()
    return (after - before) / n


def _in_fresh_process(fn: Any, *args: Any) -> Any:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(fn, *args).result(timeout=300)


# -- the run -----------------------------------------------------------------------------


def run(*, quick: bool) -> dict[str, Any]:
    """Measure everything once and return the figures (see the module docstring)."""
    n_tell = 300_000 if quick else 1_000_000
    n_ask = 30_000 if quick else 100_000
    n_pykka_spawn = 2_000 if quick else 10_000

    # Best of a few runs for both sides: single runs on a shared machine swing by ~5%.
    repeats = 3 if quick else 5
    raw = max(trio.run(_raw_channel, n_tell) for _ in range(repeats))
    tell = max(trio.run(_tell, n_tell) for _ in range(repeats))
    ask, ask_sequential = trio.run(_ask, n_ask)
    pykka_ask, pykka_sequential = _pykka_ask(n_ask)
    spawn_10k, _, _ = trio.run(_spawn_supervised, 10_000)
    spawn_bare = trio.run(_spawn_bare, 10_000)
    pykka_spawn = _pykka_spawn(n_pykka_spawn) * (10_000 / n_pykka_spawn)
    kb_ours = _in_fresh_process(_memory_ours, 10_000)
    kb_pykka = _in_fresh_process(_memory_pykka, 1_000)
    spawn_100k, stop_100k, clean = trio.run(_spawn_supervised, 100_000)
    asyncio_tell = max(anyio.run(_tell, n_tell, backend="asyncio") for _ in range(repeats))
    asyncio_ask, asyncio_sequential = anyio.run(_ask, n_ask, backend="asyncio")

    return {
        "tell_per_cpu_s": round(tell),
        "raw_channel_per_cpu_s": round(raw),
        "tell_vs_raw": round(tell / raw, 3),
        "ask_per_s": round(ask),
        "pykka_ask_per_s": round(pykka_ask),
        "ask_vs_pykka": round(ask / pykka_ask, 2),
        "ask_sequential_per_s": round(ask_sequential),
        "pykka_ask_sequential_per_s": round(pykka_sequential),
        "ask_sequential_vs_pykka": round(ask_sequential / pykka_sequential, 2),
        "spawn_10k_s": round(spawn_10k, 3),
        "spawn_10k_bare_s": round(spawn_bare, 3),
        "pykka_spawn_10k_s": round(pykka_spawn, 3),
        "pykka_spawn_measured": n_pykka_spawn,
        "spawn_vs_pykka": round(pykka_spawn / spawn_10k, 1),
        "kb_per_idle_actor": round(kb_ours, 2),
        "pykka_kb_per_actor": round(kb_pykka, 2),
        "spawn_100k_s": round(spawn_100k, 3),
        "stop_100k_s": round(stop_100k, 3),
        "spawn_100k_clean": clean,
        "asyncio": {
            "tell_per_cpu_s": round(asyncio_tell),
            "ask_per_s": round(asyncio_ask),
            "ask_sequential_per_s": round(asyncio_sequential),
        },
        "quick": quick,
    }

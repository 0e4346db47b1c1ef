"""The chaos driver: a load run with a seeded fault schedule, observed for the checker.

Each instance runs one streamed turn and may get one fault (see ``_schedule``); the
runtime-wide faults strike on their own timeline. Every caller wait is timed against its
bound, every turn's outcome recorded, every settled conversation snapshotted; then the
invariant checker reads the database.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import anyio

from .._backend import VIRTUAL_EPOCH
from .._exceptions import NotFound, PromptActorsError, RunInUse
from ..kernel import start_soon
from ..messages import PromptDefinition, PromptMessage, VariableDefault
from ..runtime import open_runtime
from ..testing import (
    ClaimRace,
    ConversationSnapshot,
    Observations,
    OutageStore,
    TurnObservation,
    WaitObservation,
    check_invariants,
    crash_actor,
)
from ._provider import FAULT_KEY, ChaosProvider

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .._settings import RuntimeSettings
    from ..runtime import InstanceHandle, Runtime
    from ..store import Store
    from ..testing import InvariantReport, Outcome
    from ._schedule import GlobalFault, InstanceFault, Schedule

__all__ = ["CHAOS_PROMPT", "ChaosRun", "Trace", "drive"]

CHAOS_PROMPT: Final = PromptDefinition(
    id="chaos",
    name="Chaos",
    messages=(PromptMessage(role="system", content="You answer questions about {{topic}}."),),
    variables=(VariableDefault(name="topic", default="actor runtimes"),),
    settings={"model": "simulated"},
)

#: Exception type names that mean a turn was cancelled (by stop() or an interrupt).
_CANCELLED: Final = frozenset({"TurnCancelled"})


@dataclass(slots=True)
class Trace:
    """The ordered event log of a run; its hash identifies a run under virtual time."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    virtual: bool = False

    def add(self, *event: Any) -> None:
        if self.virtual:
            event = (round(anyio.current_time(), 6), *event)
        self.events.append(event)


@dataclass(slots=True)
class ChaosRun:
    """What a driven run produced (``_report`` turns it into a ``ChaosReport``)."""

    schedule: Schedule
    observations: Observations
    invariants: InvariantReport
    faults: Counter[str]
    outcomes: Counter[str]
    restarts: int
    retries: int
    trace: Trace
    wall_s: float
    refused_store_calls: int


@dataclass(slots=True)
class _Context:
    runtime: Runtime
    store: OutageStore
    schedule: Schedule
    bound: float
    trace: Trace
    obs: Observations = field(default_factory=Observations)
    faults: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    restarts: int = 0
    retries: int = 0

    def fault(self, kind: str, index: int | str) -> None:
        self.faults[kind] += 1
        self.trace.add("fault", kind, index)

    async def timed(self, caller: str, work: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``work`` as a caller would, timing it against the bound (abandoned, and
        recorded as waiting forever, at twice the bound)."""
        began = anyio.current_time()
        result: Any = None
        with anyio.move_on_after(self.bound * 2) as scope:
            result = await work()
        waited = math.inf if scope.cancelled_caught else anyio.current_time() - began
        self.obs.waits.append(WaitObservation(caller, waited, self.bound))
        return result

    async def crash(self, ref: Any, kind: str, index: int | str) -> None:
        if crash_actor(ref):
            self.restarts += 1
            self.fault(kind, index)


async def drive(
    settings: RuntimeSettings,
    schedule: Schedule,
    *,
    store: Store,
    tokens: int,
    latency: float,
    bound: float,
    stall_seconds: float,
    virtual: bool = False,
) -> ChaosRun:
    """Run the schedule on a runtime over ``store`` (not closed here) and check it."""
    outage = OutageStore(store)
    trace = Trace(virtual=virtual)
    scripts: dict[str, list[Any]] = {}
    for index, fault in enumerate(schedule.instance_faults):
        script = fault.script(stall_seconds) if fault is not None else None
        if script is not None:
            scripts[_instance_id(schedule.seed, index)] = script
    began = time.perf_counter()
    async with anyio.create_task_group() as ticking:
        from ..providers import Ticker  # the provider package's public ticker

        ticker = Ticker()
        await ticking.start(ticker.run)
        provider = ChaosProvider(ticker, tokens=tokens, latency=latency, scripts=scripts)
        clock = anyio.current_time if virtual else None
        utcnow = _virtual_utcnow if virtual else None
        async with open_runtime(
            settings, provider=provider, store=outage, clock=clock, utcnow=utcnow
        ) as rt:
            ctx = _Context(rt, outage, schedule, bound, trace)
            async with anyio.create_task_group() as tg:
                tg.start_soon(_global_faults, ctx)
                for index, fault in enumerate(schedule.instance_faults):
                    start_soon(tg, _instance, ctx, index, fault)
            await _settle(ctx)
            report = await check_invariants(outage, observations=ctx.obs, runtime=rt)
            await _trace_rows(ctx)
        ticking.cancel_scope.cancel()
    for key in provider.injected:
        index = int(key.rsplit("-", 1)[1])
        fault = schedule.instance_faults[index]
        assert fault is not None
        ctx.fault(fault.kind, index)
    return ChaosRun(
        schedule=schedule,
        observations=ctx.obs,
        invariants=report,
        faults=ctx.faults,
        outcomes=ctx.outcomes,
        restarts=ctx.restarts,
        retries=ctx.retries,
        trace=trace,
        wall_s=time.perf_counter() - began,
        refused_store_calls=outage.refused,
    )


async def _trace_rows(ctx: _Context) -> None:
    """The final row states, in instance order, close the trace."""
    store = ctx.store
    for snap in sorted(ctx.obs.snapshots, key=lambda s: s.instance_id):
        if snap.run_id is None:
            ctx.trace.add("rows", snap.instance_id, None)
            continue
        try:
            run = await store.get_run(snap.run_id)
        except NotFound:
            ctx.trace.add("rows", snap.instance_id, "missing")
            continue
        tasks = await store.list_tasks(snap.run_id)
        messages = tuple((m.get("role"), bool(m.get("failed"))) for m in run.messages)
        statuses = tuple(sorted(t.status for t in tasks))
        ctx.trace.add("rows", snap.instance_id, run.status, messages, statuses)


def _virtual_utcnow() -> datetime:
    """The wall time of a virtual run: ``VIRTUAL_EPOCH`` plus the virtual clock."""
    return VIRTUAL_EPOCH + timedelta(seconds=anyio.current_time())


def _instance_id(seed: int, index: int) -> str:
    return f"chaos-{seed}-{index}"


async def _settle(ctx: _Context) -> None:
    """Every outage is over (their tasks ended with the drivers'); one round trip to the
    registry lets it handle the unregistrations sent before, so the checker reads a
    settled registry."""
    ctx.store.end_outage()
    await ctx.timed("settle: runtime.instance_ids", ctx.runtime.instance_ids)


async def _global_faults(ctx: _Context) -> None:
    began = anyio.current_time()
    async with anyio.create_task_group() as tg:
        for fault in ctx.schedule.global_faults:
            await anyio.sleep_until(began + fault.at)
            tg.start_soon(_global_fault, ctx, fault)


async def _global_fault(ctx: _Context, fault: GlobalFault) -> None:
    rt = ctx.runtime
    if fault.kind == "store_outage":
        ctx.fault(fault.kind, "store")
        await ctx.store.outage(fault.seconds)
        return
    refs = {
        "registry": rt.registry.ref,
        "run_tracker": rt.tracker.ref,
        "prompt_cache": rt.prompts.ref,
        "action_cache": rt.actions.ref,
        "scoped_cache": rt.scoped.ref,
    }
    await ctx.crash(refs[fault.target], fault.kind, fault.target)


async def _instance(ctx: _Context, index: int, fault: InstanceFault | None) -> None:
    rt = ctx.runtime
    instance_id = _instance_id(ctx.schedule.seed, index)
    kind = fault.kind if fault is not None else None
    settings = {FAULT_KEY: instance_id}
    config: dict[str, Any] = {"track_in_runs": True, "allow_chat": True}
    if kind is not None and kind.startswith("busy_"):
        config["on_busy"] = kind.removeprefix("busy_")
    try:
        handle: InstanceHandle | None = await ctx.timed(
            f"{instance_id} start",
            lambda: rt.start_instance(
                prompt=CHAOS_PROMPT,
                instance_id=instance_id,
                settings=settings,
                execution_config=config,
            ),
        )
    except PromptActorsError as exc:  # e.g. the registry or the store is down
        ctx.outcomes["not_started"] += 1
        ctx.trace.add("not_started", index, type(exc).__name__)
        return
    if handle is None:  # abandoned: recorded as a hung wait
        return
    stopped = False
    try:
        stopped = await _turn(ctx, handle, index, kind, f"question {index}")
        run_id = await _snapshot(ctx, handle)
    finally:
        if not stopped:
            await ctx.timed(f"{instance_id} stop", lambda: _stop(handle))
        ctx.obs.stopped.add(instance_id)
    if kind == "run_in_use" and run_id is not None:
        await _claim_race(ctx, index, run_id)


async def _stop(handle: InstanceHandle) -> None:
    # Already gone (a crash of the tree took it): nothing to stop.
    with contextlib.suppress(PromptActorsError):
        await handle.stop()


async def _snapshot(ctx: _Context, handle: InstanceHandle) -> str | None:
    """Record the settled conversation; returns the instance's run id."""
    try:
        snap = await handle.snapshot()
    except PromptActorsError:
        return None  # the instance died with its supervisor: nothing in memory to compare
    rows = tuple(
        m.model_dump(mode="json", exclude={"created_at"}, exclude_defaults=True)
        for m in snap.conversation.messages
    )
    run_id = snap.run_tracking.run_id
    ctx.obs.snapshots.append(ConversationSnapshot(handle.instance_id, run_id, rows))
    if run_id is not None:
        ctx.obs.run_ids.add(run_id)
    return run_id


async def _turn(
    ctx: _Context, handle: InstanceHandle, index: int, kind: str | None, text: str
) -> bool:
    """One streamed turn with its fault; returns whether the instance was stopped."""
    rt = ctx.runtime
    instance_id = handle.instance_id
    state: dict[str, Any] = {"stopped": False, "task_id": None}

    async def mid_turn() -> None:
        if kind in ("crash_mid_stream", "crash_on_entry"):
            ref = await rt.registry.get(instance_id)
            await ctx.crash(ref, kind, index)
        elif kind == "stop_mid_turn":
            ctx.fault(kind, index)
            state["run_id"] = await _run_of(handle)  # the handle says nothing once stopped
            state["stopped"] = True
            await ctx.timed(f"{instance_id} stop mid-turn", lambda: _stop(handle))
        elif kind is not None and kind.startswith("busy_"):
            ctx.fault(kind, index)
            await _busy_turn(ctx, handle, index)
        elif kind == "clear_conversation_mid_turn":
            ctx.fault(kind, index)
            await _quietly(ctx, f"{instance_id} clear", handle.clear_conversation)
        elif kind == "update_variables_mid_turn":
            ctx.fault(kind, index)
            await _quietly(
                ctx, f"{instance_id} update", lambda: handle.update_variables({"topic": "chaos"})
            )

    async def turn() -> None:
        async with handle.stream(text) as stream:
            state["task_id"] = stream.task_id
            if kind == "crash_on_entry":
                await mid_turn()
            acted = kind == "crash_on_entry"
            async for chunk in stream:
                if chunk.text and not acted:
                    acted = True
                    await mid_turn()
            state["result"] = await stream.result()

    try:
        await ctx.timed(f"{instance_id} turn", turn)
    except Exception as exc:
        error = type(exc).__name__
        if state["task_id"] is None:
            _outcome(ctx, TurnObservation(instance_id, "rejected", error=error), index)
        else:
            outcome: Outcome = "cancelled" if error in _CANCELLED else "failed"
            run_id = state.get("run_id") or await _run_of(handle)
            turn_obs = TurnObservation(
                instance_id, outcome, task_id=state["task_id"], run_id=run_id, error=error
            )
            _outcome(ctx, turn_obs, index)
        return bool(state["stopped"])
    result = state.get("result")
    if result is not None:
        ctx.retries += result.attempts - 1
        turn_obs = TurnObservation(
            instance_id,
            "answered",
            task_id=state["task_id"],
            answer_task_id=result.task_id,
            run_id=result.run_id,
            text=result.text,
        )
        _outcome(ctx, turn_obs, index)
    return bool(state["stopped"])


def _outcome(ctx: _Context, turn: TurnObservation, index: int) -> None:
    ctx.obs.turns.append(turn)
    ctx.outcomes[turn.outcome] += 1
    ctx.trace.add("outcome", index, turn.outcome, turn.error)


async def _run_of(handle: InstanceHandle) -> str | None:
    try:
        return (await handle.snapshot()).run_tracking.run_id
    except PromptActorsError:
        return None


async def _quietly(ctx: _Context, caller: str, work: Callable[[], Awaitable[Any]]) -> None:
    """A call the engine may refuse mid-turn (a refusal is an answer, not a failure)."""
    try:
        await ctx.timed(caller, work)
    except PromptActorsError as exc:
        ctx.trace.add("refused", caller, type(exc).__name__)


async def _busy_turn(ctx: _Context, handle: InstanceHandle, index: int) -> None:
    instance_id = handle.instance_id
    try:
        ticket = await ctx.timed(f"{instance_id} busy start", lambda: handle.start_turn("again"))
    except PromptActorsError as exc:
        _outcome(ctx, TurnObservation(instance_id, "rejected", error=type(exc).__name__), index)
        return
    if ticket is None:
        return
    try:
        result = await ctx.timed(f"{instance_id} busy turn", lambda: ticket.wait())
    except Exception as exc:
        error = type(exc).__name__
        outcome: Outcome = "cancelled" if error in _CANCELLED else "failed"
        run_id = await _run_of(handle)
        obs = TurnObservation(
            instance_id, outcome, task_id=ticket.first_task_id, run_id=run_id, error=error
        )
    else:
        obs = TurnObservation(
            instance_id,
            "answered",
            task_id=ticket.first_task_id,
            answer_task_id=result.task_id,
            run_id=result.run_id,
            text=result.text,
        )
    _outcome(ctx, obs, index)


async def _claim_race(ctx: _Context, index: int, run_id: str) -> None:
    """Two instances start on one run at once: exactly one may win it."""
    rt = ctx.runtime
    ctx.fault("run_in_use", index)
    winners: list[InstanceHandle] = []
    failed: list[PromptActorsError] = []  # for another reason than the claim (RunInUse)
    base = _instance_id(ctx.schedule.seed, index)

    async def contend(n: int) -> None:
        try:
            handle = await ctx.timed(
                f"{base}-claim{n} start",
                lambda: rt.start_instance(
                    prompt=CHAOS_PROMPT,
                    instance_id=f"{base}-claim{n}",
                    run_id=run_id,
                    execution_config={"track_in_runs": True, "allow_chat": True},
                ),
            )
        except RunInUse:
            ctx.trace.add("claim_refused", index)
            return
        except PromptActorsError as exc:
            ctx.trace.add("claim_failed", index, type(exc).__name__)
            failed.append(exc)
            return
        if handle is not None:
            winners.append(handle)

    async with anyio.create_task_group() as tg:
        for n in (1, 2):
            tg.start_soon(contend, n)
    ctx.obs.claims.append(ClaimRace(run_id, 2, winners=len(winners), failed=len(failed)))
    if winners:  # the run goes on: the first instance's snapshot no longer describes it
        ctx.obs.snapshots = [s for s in ctx.obs.snapshots if s.instance_id != base]
    for handle in winners:
        stopped = await _turn(ctx, handle, index, None, f"follow-up {index}")
        await _snapshot(ctx, handle)
        if not stopped:
            await ctx.timed(f"{handle.instance_id} stop", handle.stop)
        ctx.obs.stopped.add(handle.instance_id)

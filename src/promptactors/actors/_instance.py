"""The execution instance actor: one prompt execution session.

State changes only through the pure reducer (:func:`promptactors.state.reduce`); the actor
is mailbox + reducer + effects. A turn runs in a task linked to the actor: it commits the
task row *before* calling the provider, applies what each network read yields as ONE
``StreamDelta`` (no per-token message, no extra task hop), and commits the answer, the
task completion and the run update together.

What survives a crash lives in an :class:`InstanceHome` that the supervisor's child spec
keeps across restarts: the latest state, the pending turn tickets, the subscribers, the
journal. A restarted incarnation finds the interrupted turn there, marks its task
``interrupted`` (partial output kept) and retries it within the retry policy — so the
caller awaiting the turn gets the answer or a clear error, never a hang.

The turn's lifecycle (the turn contract of DESIGN.md) is in :mod:`._instance_turn`; a new
turn while one runs follows the instance's ``on_busy`` policy.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import structlog

from .._exceptions import (
    ActorError,
    AttemptsExhausted,
    InvalidInput,
    StaleFence,
    StoreError,
    TurnCancelled,
    TurnInProgress,
)
from ..kernel import handler
from ..kernel._entropy import new_id
from ..messages import (
    ClearConversation,
    ClearVariable,
    ConversationCleared,
    CurrentTurn,
    Event,
    Execute,
    ExecutionFailed,
    ExecutionStarted,
    ExecutionStatus,
    ExpandedVariableSet,
    ExportJournal,
    GetSnapshot,
    InputSet,
    InstanceCreated,
    MessageAdded,
    PendingTurns,
    RunLinked,
    ScopedVariablesSet,
    Select,
    SetExpandedVariable,
    SetInput,
    SetScopedValues,
    ShowVariablesToggled,
    StatusChanged,
    Subscribe,
    ToggleShowVariables,
    UpdateVariables,
    VariableCleared,
    VariablesUpdated,
)
from ..state import InstanceState, TurnLife, TurnPhase, TurnSignal, export_journal, reduce, snapshot
from ..store import InterruptTask, UpdateRun
from ._instance_turn import TurnRunner
from ._turns import ActiveTurn, Subscription, TurnTicket

if TYPE_CHECKING:
    from ..messages import ExecutionInstance
    from ..store import RunStatus, WriteOp
    from ..supervisors import Termination
    from ._instance_home import EngineContext, InstanceHome, InstanceSpec

__all__ = ["InstanceActor"]

_log = structlog.get_logger("promptactors.instance")
_TURN = frozenset({ExecutionStatus.EXECUTING, ExecutionStatus.STREAMING})


def _uncommitted(reason: str) -> AttemptsExhausted:
    return AttemptsExhausted(f"the answer of the turn could not be committed: {reason}")


# -- the actor ---------------------------------------------------------------------------


class InstanceActor(TurnRunner):
    """One execution instance. Commands arrive as messages; turns run in linked tasks."""

    mailbox_size = 256

    def __init__(self, home: InstanceHome, engine: EngineContext) -> None:
        self.home = home
        self.engine = engine

    # -- state plumbing ----------------------------------------------------------------

    def _apply(self, event: Event) -> InstanceState:
        """Reduce ``event`` into the state (raises, leaving it unchanged, if refused)."""
        home = self.home
        home.state = state = reduce(home.state, event)
        if self.engine.journal:
            home.journal.append(event)
        return state

    def _now(self) -> float:
        now: float = self.engine.clock()
        return now

    # -- lifecycle ---------------------------------------------------------------------

    async def on_start(self) -> None:
        home = self.home
        if home.state is None:
            spec = home.spec
            # Every field was validated at the runtime's boundary (start_instance).
            self._apply(
                InstanceCreated.model_construct(
                    at=self._now(),
                    instance_id=spec.instance_id,
                    prompt=spec.prompt,
                    execution_config=spec.execution_config,
                    settings=dict(spec.settings),
                    user_values=dict(spec.user_values),
                    action_values=dict(spec.action_values),
                    broker_values=dict(spec.broker_values),
                    scoped_values=spec.scoped_values,
                    computed_values=self.engine.computed(),
                    current_input=spec.initial_message or "",
                )
            )
            self._apply(
                StatusChanged.model_construct(at=self._now(), status=ExecutionStatus.INITIALIZING)
            )
            if spec.run_id is not None:
                self._restore_history(spec)
                if spec.execution_config.track_in_runs:
                    await self._persist_quietly(UpdateRun(run_id=spec.run_id, status="running"))
            self._apply(StatusChanged.model_construct(at=self._now(), status=ExecutionStatus.READY))
        else:
            home.crashes += 1
            await self._recover_interrupted_turn()
        registry = self.engine.registry
        if registry is not None:
            state = self.state
            await registry.announce(
                state.instance_id, state.core.prompt.id, self.ref, state.core.run.run_id
            )
        if home.crashes == 0 and home.spec.execution_config.auto_run and home.fenced is None:
            await self._start_turn(None)

    async def on_stop(self) -> None:
        """Ends the running turn (cancelled, or answered if its commit started), cancels
        the queued ones, and says how the run ended. Persistence errors are logged."""
        home = self.home
        home.stopping = True
        await self._cancel_all("the instance was stopped")
        self.cancel_linked()
        await self._close_run()
        registry = self.engine.registry
        if registry is not None:
            await registry.unregister(self.state.instance_id)
        home.closed = True

    @classmethod
    async def close_lost(cls, home: InstanceHome, engine: EngineContext, why: Termination) -> None:
        """An instance's ``on_terminated`` hook: no incarnation of it runs or will run.

        When its last incarnation did not close it (a kill skips ``on_stop``; a crash the
        supervisor gave up restarting, or a stop while it waited to restart, leaves its
        turn to no one), this unregisters it, ends its queued turns (cancelled) and its
        running turn — failed with ``AttemptsExhausted`` when the supervisor gave up,
        cancelled otherwise — closes its run and releases its claim. Runs in the
        supervisor's task, bounded by the instance's shutdown timeout.
        """
        if not home.closed and home.state is not None:
            await cls(home, engine).close_for_good(why)

    async def close_for_good(self, why: Termination) -> None:
        """See :meth:`close_lost` (this object is no incarnation: it only settles)."""
        home = self.home
        home.stopping = True
        if why == "gave_up":
            reason = "its supervisor gave up restarting it (restart intensity exceeded)"
        elif why == "killed":
            reason = "the instance was killed after its shutdown timeout"
        else:
            reason = "the instance was stopped"
        while home.queue:  # first: nothing below may keep a caller waiting
            ticket, _ = home.queue.popleft()
            ticket.fail(TurnCancelled(f"a queued turn was cancelled: {reason}"))
        turn = home.turn
        if turn is not None and not turn.life.done:
            phase = turn.life.phase
            if phase is TurnPhase.COMMITTING:
                assert turn.commit is not None  # its commit task died: replay it (idempotent)
                try:
                    await self._finish_commit(turn, self.state.core.run.run_id, "provider")
                except (ActorError, StoreError) as exc:  # the tracker is gone or failing
                    _log.warning(
                        "turn_commit_lost", instance_id=self.state.instance_id, error=str(exc)
                    )
                finally:
                    if not turn.life.done and self._refuse(turn, _uncommitted(reason)):
                        turn.ticket.fail(_uncommitted(reason))
            elif why == "gave_up" and phase is not TurnPhase.STOPPING:
                await self._fail_for_good(turn, reason)
            else:
                await self._cancel_and_write(turn, reason)
        registry = self.engine.registry
        if registry is not None:  # before the run's writes, which may wait for the store
            with contextlib.suppress(ActorError):  # a registry restarting forgets it anyway
                await registry.unregister(self.state.instance_id)
        await self._close_run()
        home.closed = True

    async def _fail_for_good(self, turn: ActiveTurn, reason: str) -> None:
        """No attempt of ``turn`` can follow: it fails, its running attempt interrupted."""
        life = turn.life
        partial = self.state.stream.text
        ops: list[WriteOp] = []
        if life.attempt_running and turn.rows:
            ops.append(InterruptTask(task_id=turn.task_id, response_text=partial))
        self._signal(turn, TurnSignal.FAILED)
        self._journal_stream()
        if self.state.core.status in _TURN:
            self._apply(ExecutionFailed(at=self._now(), error=f"interrupted: {reason}"))
        error = AttemptsExhausted(
            f"turn of instance {self.state.instance_id!r} cannot be attempted again after "
            f"attempt {life.attempt} of {life.max_attempts}: {reason}"
        )
        await self._give_up(turn, error, ops)

    async def _close_run(self) -> None:
        """The conversation is over: its run says how it ended (continuing it later by run
        id marks it running again): ``completed``, ``failed`` when its last turn failed, or
        ``interrupted`` when its last turn was cancelled (the error says why). Recovery
        only handles runs whose process died."""
        outbox = self.home.outbox
        if self.home.fenced is not None:  # the run is another executor's now: hands off
            outbox.clear()
            return
        ops = list(outbox)  # one hand-over with the status: no second wait on the tracker
        kept = len(ops)
        core = self.state.core
        run_id = core.run.run_id
        if run_id is not None and core.config.track_in_runs:
            status: RunStatus = "completed"
            if core.status is ExecutionStatus.ERROR:
                # A cancelled turn leaves its partial output as the last message.
                last = core.messages[-1] if core.messages else None
                cancelled = last is not None and last.partial and last.task_id == core.turn.task_id
                status = "interrupted" if cancelled else "failed"
            error = core.error if status != "completed" else None
            ops.append(UpdateRun(run_id=run_id, status=status, error=error))
        if ops:
            await self._persist_quietly(*ops)
        del outbox[:kept]
        claim = self.home.claim
        if claim is not None and self.home.fenced is None:  # after the run's last write
            await claim.release()

    async def _flush_outbox(self) -> None:
        outbox = self.home.outbox
        if outbox:
            ops = list(outbox)
            await self._persist_quietly(*ops)
            del outbox[: len(ops)]

    async def on_crash(self, error: BaseException) -> None:
        """Runs after a crash. During a stop (no incarnation follows) the turn ends here,
        cancelled: its caller never waits for a restart that will not come."""
        if self.home.stopping:
            await self._cancel_all("the instance was stopped (and crashed)")
            await self._close_run()
            registry = self.engine.registry
            if registry is not None:
                await registry.unregister(self.state.instance_id)
            self.home.closed = True

    async def _cancel_all(self, why: str) -> None:
        home = self.home
        turn = home.turn
        if turn is not None:
            if turn.life.phase is TurnPhase.COMMITTING:
                await turn.settled.wait()  # the answer wins; the shutdown timeout bounds it
            else:
                await self._cancel_and_write(turn, why)
        while home.queue:
            ticket, _ = home.queue.popleft()
            ticket.fail(TurnCancelled(f"a queued turn was cancelled: {why}"))

    def _restore_history(self, spec: InstanceSpec) -> None:
        """Continue an existing run: its saved messages become the conversation."""
        for message in spec.history:
            self._apply(MessageAdded(at=self._now(), message=message))
        assert spec.run_id is not None
        self._apply(
            RunLinked.model_construct(
                at=self._now(),
                run_id=spec.run_id,
                run_name=spec.run_name,
                saved_message_count=len(spec.history),
            )
        )

    async def _recover_interrupted_turn(self) -> None:
        """After a crash: settle the attempt the last incarnation left running."""
        await self._flush_outbox()
        state = self.state
        turn = self.home.turn
        if turn is None:
            if state.core.status in _TURN:  # not expected: a turn status without a turn
                self._apply(ExecutionFailed(at=self._now(), error="interrupted: crashed"))
            return
        phase = turn.life.phase
        if phase is TurnPhase.COMMITTING:
            assert turn.commit is not None
            self.start_soon(self._finish_commit, turn, state.core.run.run_id, "provider")
            return
        if phase is TurnPhase.BACKOFF:
            turn.gen += 1
            self.start_soon(self._drive, turn, 0.0)
            return
        task_id = turn.task_id
        partial = state.stream.text
        _log.warning(
            "turn_interrupted", instance_id=state.instance_id, task_id=task_id, chars=len(partial)
        )
        rows = turn.rows
        life = self._signal(turn, TurnSignal.CRASHED)
        self._journal_stream()
        interrupted: list[WriteOp] = []
        if rows and state.core.config.track_in_runs:
            interrupted.append(InterruptTask(task_id=task_id, response_text=partial))
        if life.phase is TurnPhase.BACKOFF:
            self._retry(turn, "interrupted: the instance crashed", 0.0)
            await self._persist_quietly(*interrupted)
            return
        self._apply(ExecutionFailed(at=self._now(), error="interrupted: the instance crashed"))
        error = AttemptsExhausted(
            f"turn of instance {state.instance_id!r} was interrupted on each of "
            f"{life.attempt} attempts"
        )
        self.start_soon(self._give_up, turn, error, interrupted)

    # -- commands ----------------------------------------------------------------------

    @handler
    async def execute(self, message: Execute) -> TurnTicket:
        """Start a turn; while one runs, follow ``on_busy``. The ticket resolves when the
        turn ends (answered, failed or cancelled)."""
        return await self._start_turn(message.user_input)

    async def _start_turn(self, user_input: str | None) -> TurnTicket:
        home = self.home
        state = self.state
        if home.fenced is not None:
            raise StaleFence(home.fenced.stale, str(home.fenced))
        if home.stopping:
            raise TurnInProgress(f"instance {state.instance_id!r} is stopping")
        turn = home.turn
        if turn is None:
            return self._begin(user_input, None)
        config = state.core.config
        busy = f"instance {state.instance_id!r} is in a turn ({turn.life.phase.value})"
        if config.on_busy == "reject":
            raise TurnInProgress(f"{busy}; its on_busy is 'reject'")
        ticket = TurnTicket(new_id(), None)
        if config.on_busy == "enqueue":
            if len(home.queue) >= config.max_queued_turns:
                raise TurnInProgress(
                    f"{busy} and its turn queue is full ({config.max_queued_turns} turns)"
                )
            home.queue.append((ticket, user_input))
            return ticket
        # interrupt: cancel the running turn (unless its answer is being committed: then
        # the new turn runs right after it) and start this one now.
        ops = self._cancel(turn, "interrupted by a new turn")
        if ops is None:
            home.queue.appendleft((ticket, user_input))
            return ticket
        error = self._cancel_error(turn, "interrupted by a new turn")
        try:
            self._begin(user_input, ticket)
        except BaseException as exc:
            await self._write_outcome(turn, ops, error)
            self._start_next()
            raise exc from None
        await self._write_outcome(turn, ops, error)
        return ticket

    def _begin(self, user_input: str | None, ticket: TurnTicket | None) -> TurnTicket:
        """Start a turn now (no await: nothing can start in between)."""
        state = self.state
        current = state.core.current_input
        parts = [p for p in (current, user_input) if p]
        user_message = "\n".join(parts) if parts else None
        if user_message is None and not state.core.prompt.messages and not state.core.messages:
            raise InvalidInput(
                f"instance {state.instance_id!r} has nothing to send: its prompt has no "
                "messages and there is no user input"
            )
        task_id = ticket.first_task_id if ticket is not None else new_id()
        self._apply(
            ExecutionStarted.model_construct(
                at=self._now(),
                task_id=task_id,
                user_message=user_message,
                computed_values=self.engine.computed(),
            )
        )
        if ticket is None:
            ticket = TurnTicket(task_id, user_message)
        else:
            ticket.user_message = user_message
        ticket.pieces = self.state.stream.pieces
        turn = ActiveTurn(ticket, TurnLife(max_attempts=self.engine.retry.max_attempts), task_id)
        self.home.turn = turn
        self.home.ticket = ticket
        for subscriber in list(self.home.subscribers):
            if subscriber.ticket is None:  # subscribed before any turn: it follows this one
                subscriber.attach(ticket)
        self.start_soon(self._drive, turn, 0.0)
        return ticket

    def _start_next(self) -> None:
        """Start the next queued turn, if any (one that cannot start fails its ticket)."""
        home = self.home
        while home.queue and home.turn is None and not home.stopping:
            ticket, user_input = home.queue.popleft()
            try:
                self._begin(user_input, ticket)
            except Exception as exc:
                ticket.fail(exc)

    @handler
    async def pending_turns(self, message: PendingTurns) -> tuple[TurnTicket, ...]:
        home = self.home
        running = (home.turn.ticket,) if home.turn is not None else ()
        return running + tuple(ticket for ticket, _ in home.queue)

    @handler
    async def set_input(self, message: SetInput) -> None:
        self._apply(InputSet(at=self._now(), text=message.text))

    @handler
    async def update_variables(self, message: UpdateVariables) -> None:
        self._apply(VariablesUpdated(at=self._now(), values=dict(message.values)))

    @handler
    async def clear_variable(self, message: ClearVariable) -> None:
        self._apply(VariableCleared(at=self._now(), name=message.name))

    @handler
    async def set_scoped(self, message: SetScopedValues) -> None:
        self._apply(ScopedVariablesSet(at=self._now(), scoped_values=message.scoped))

    @handler
    async def clear_conversation(self, message: ClearConversation) -> None:
        self._apply(ConversationCleared(at=self._now()))

    @handler
    async def set_expanded(self, message: SetExpandedVariable) -> None:
        self._apply(ExpandedVariableSet(at=self._now(), name=message.name))

    @handler
    async def toggle_show(self, message: ToggleShowVariables) -> None:
        self._apply(ShowVariablesToggled(at=self._now()))

    @handler
    async def get_snapshot(self, message: GetSnapshot) -> ExecutionInstance:
        return snapshot(self.state)

    @handler
    async def select(self, message: Select) -> Any:
        return message.selector(self.state, *message.args)

    @handler
    async def subscribe(self, message: Subscribe) -> Subscription:
        turn = self.home.turn
        subscription = Subscription(self.home, turn.ticket if turn is not None else None)
        self.home.subscribers.add(subscription)
        return subscription

    @handler
    async def current_turn(self, message: CurrentTurn) -> TurnTicket | None:
        return self.home.ticket

    @handler
    async def export(self, message: ExportJournal) -> str:
        if not self.engine.journal:
            raise InvalidInput("this runtime keeps no journal (journal=False in its settings)")
        return export_journal(self.home.journal)

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
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from .._exceptions import (
    AttemptsExhausted,
    IllegalTransition,
    InvalidInput,
    ProviderError,
    StreamTruncated,
)
from ..kernel import Actor, handler
from ..messages import (
    ClearConversation,
    ClearVariable,
    ConversationCleared,
    CurrentTurn,
    Event,
    Execute,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionStarted,
    ExecutionStatus,
    ExpandedVariableSet,
    ExportJournal,
    GetSnapshot,
    InputSet,
    InstanceCommand,
    InstanceCreated,
    MessageAdded,
    RunLinked,
    RunSaved,
    ScopedVariablesSet,
    Select,
    SetExpandedVariable,
    SetInput,
    SetScopedValues,
    ShowVariablesToggled,
    StatusChanged,
    StreamDelta,
    StreamingStarted,
    Subscribe,
    ToggleShowVariables,
    UpdateVariables,
    UserTurnFailed,
    VariableCleared,
    VariablesUpdated,
)
from ..providers import ChatMessage, ProviderRequest, StreamEnd, TextDelta
from ..state import (
    InstanceState,
    append_stream,
    export_journal,
    reduce,
    resolved_messages,
    snapshot,
)
from ..store import CreateRun, CreateTask, FailTask, FinishTurn, InterruptTask, UpdateRun
from ._instance_home import EngineContext, InstanceHome, InstanceSpec
from ._turns import Subscription, TurnResult, TurnTicket

if TYPE_CHECKING:
    from ..messages import ConversationMessage, ExecutionInstance
    from ..providers import Provider
    from ..store import WriteOp
    from ._instance_home import EngineContext, InstanceHome, InstanceSpec

__all__ = ["InstanceActor"]

_log = structlog.get_logger("promptactors.instance")
_TURN = frozenset({ExecutionStatus.EXECUTING, ExecutionStatus.STREAMING})


# -- the actor ---------------------------------------------------------------------------


class InstanceActor(Actor[InstanceCommand]):
    """One execution instance. Commands arrive as messages; turns run in linked tasks."""

    mailbox_size = 256

    def __init__(self, home: InstanceHome, engine: EngineContext) -> None:
        self.home = home
        self.engine = engine

    # -- state plumbing ----------------------------------------------------------------

    @property
    def state(self) -> InstanceState:
        state = self.home.state
        assert state is not None
        return state

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
                    await self._persist(UpdateRun(run_id=spec.run_id, status="running"))
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
        if home.crashes == 0 and home.spec.execution_config.auto_run:
            await self._start_turn(None)

    async def on_stop(self) -> None:
        home = self.home
        state = self.state
        self.cancel_linked()  # a running turn ends here; its task is marked below
        if state.core.status in _TURN:
            # Stopped mid-turn: the task row says so and keeps what was streamed.
            task_id = state.core.turn.task_id
            partial = state.stream.text
            self._journal_stream()
            self._apply(ExecutionFailed(at=self._now(), error="interrupted: instance stopped"))
            if task_id is not None and state.core.config.track_in_runs:
                await self._persist(InterruptTask(task_id=task_id, response_text=partial))
        ticket = home.ticket
        if ticket is not None and not ticket.done:
            await self._give_up(
                ticket, AttemptsExhausted(f"instance {state.instance_id!r} was stopped")
            )
        # The conversation is over: its run says how it ended (continuing it later by run
        # id marks it running again). Recovery only handles runs whose process died.
        state = self.state
        run_id = state.core.run.run_id
        if run_id is not None and state.core.config.track_in_runs:
            failed = state.core.status is ExecutionStatus.ERROR
            await self._persist(
                UpdateRun(
                    run_id=run_id,
                    status="failed" if failed else "completed",
                    error=state.core.error if failed else None,
                )
            )
        if home.claim is not None:  # after the run's last write: the next owner sees it
            await home.claim.release()
        registry = self.engine.registry
        if registry is not None:
            await registry.unregister(self.state.instance_id)

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
        """After a crash: settle the turn the last incarnation left running."""
        state = self.state
        ticket = self.home.ticket
        if state.core.status not in _TURN:
            return
        task_id = state.core.turn.task_id
        partial = state.stream.text
        _log.warning(
            "turn_interrupted", instance_id=state.instance_id, task_id=task_id, chars=len(partial)
        )
        self._journal_stream()
        self._apply(ExecutionFailed(at=self._now(), error="interrupted: the instance crashed"))
        if task_id is not None and state.core.config.track_in_runs:
            await self._persist(InterruptTask(task_id=task_id, response_text=partial))
        if ticket is None or ticket.done:
            return
        if ticket.attempts < self.engine.retry.max_attempts:
            ticket.attempts += 1
            self.start_soon(self._retry_turn, ticket, 0.0)
        else:
            await self._give_up(
                ticket,
                AttemptsExhausted(
                    f"turn of instance {state.instance_id!r} was interrupted on each of "
                    f"{ticket.attempts} attempts"
                ),
            )

    # -- commands ----------------------------------------------------------------------

    @handler
    async def execute(self, message: Execute) -> TurnTicket:
        """Start a turn now (refused while one runs); the ticket resolves when it ends."""
        return await self._start_turn(message.user_input)

    async def _start_turn(self, user_input: str | None) -> TurnTicket:
        state = self.state
        if state.core.status in _TURN:
            raise IllegalTransition(
                state.core.status.value, ExecutionStatus.EXECUTING.value, "a turn is running"
            )
        current = state.core.current_input
        parts = [p for p in (current, user_input) if p]
        user_message = "\n".join(parts) if parts else None
        if user_message is None and not state.core.prompt.messages and not state.core.messages:
            raise InvalidInput(
                f"instance {state.instance_id!r} has nothing to send: its prompt has no "
                "messages and there is no user input"
            )
        task_id = str(uuid.uuid4())
        self._apply(
            ExecutionStarted.model_construct(
                at=self._now(),
                task_id=task_id,
                user_message=user_message,
                computed_values=self.engine.computed(),
            )
        )
        ticket = TurnTicket(task_id, user_message)
        self.home.ticket = ticket
        for subscriber in list(self.home.subscribers):
            if subscriber.ticket is None:
                subscriber.attach(ticket)
        self.start_soon(self._run_turn, ticket, task_id)
        return ticket

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
        ticket = self.home.ticket
        state = self.state
        live = ticket if ticket is not None and state.core.status in _TURN else None
        subscription = Subscription(self.home, live)
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

    # -- the turn ----------------------------------------------------------------------

    def _notify(self) -> None:
        for subscriber in self.home.subscribers:
            subscriber.notify()

    async def _persist(self, *ops: WriteOp) -> None:
        persistence = self.engine.persistence
        if persistence is not None:
            await persistence.persist(*ops)

    async def _run_turn(self, ticket: TurnTicket, task_id: str) -> None:
        """One attempt of a turn, in a task linked to this actor."""
        engine = self.engine
        state = self.state
        core = state.core
        tracking = core.config.track_in_runs and engine.persistence is not None
        messages = resolved_messages(state)
        provider, model = engine.provider_for(core.settings)
        request = ProviderRequest(
            model=model,
            messages=tuple(ChatMessage(m.role, m.content) for m in messages),
            settings=dict(core.settings),
            request_id=task_id,
        )
        run_id = core.run.run_id
        if tracking:
            ops: list[WriteOp] = []
            if run_id is None:
                run_id = str(uuid.uuid4())
                ops.append(
                    CreateRun(
                        run_id=run_id,
                        prompt_id=core.prompt.id,
                        prompt_source=core.prompt.source,
                        instance_id=core.instance_id,
                        name=core.prompt.name or None,
                        variables=dict(core.variables.user_values),
                        settings=dict(core.settings),
                        executor_id=engine.executor_id,
                    )
                )
            ops.append(
                CreateTask(
                    task_id=task_id,
                    run_id=run_id,
                    provider=provider.name,
                    model=model,
                    request=[{"role": m.role, "content": m.content} for m in messages],
                    attempt=ticket.attempts,
                    instance_id=core.instance_id,
                )
            )
            # Durability: the task row is committed before the provider is called.
            await self._persist(*ops)
            if core.run.run_id is None:
                self._apply(
                    RunLinked.model_construct(
                        at=self._now(), run_id=run_id, run_name=core.prompt.name or None
                    )
                )
                if engine.registry is not None:
                    await engine.registry.announce_run(core.instance_id, run_id)
        try:
            end = await self._stream(provider, request)
        except ProviderError as exc:
            await self._attempt_failed(ticket, task_id, exc)
            return
        await self._complete(ticket, task_id, run_id, model, end, tracking)

    async def _stream(self, provider: Provider, request: ProviderRequest) -> StreamEnd:
        clock = self.engine.clock
        home = self.home
        streaming = False
        end: StreamEnd | None = None
        async with provider.stream(request) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    now = clock()
                    if not streaming:
                        self._apply(StreamingStarted.model_construct(at=now))
                        streaming = True
                    # One network read, one state change: the engine's hot path. No event
                    # object per read: the journal gets the turn's text in one delta.
                    # Read home.state afresh: a command may have changed it since the last read.
                    state = home.state
                    assert state is not None
                    home.state = append_stream(state, event.text, event.chunks, now)
                    if home.subscribers:
                        self._notify()
                elif isinstance(event, StreamEnd):
                    end = event
        if end is None:
            raise StreamTruncated(
                f"provider {provider.name!r} ended the stream without its end",
                provider=provider.name,
            )
        return end

    async def _complete(
        self,
        ticket: TurnTicket,
        task_id: str,
        run_id: str | None,
        model: str,
        end: StreamEnd,
        tracking: bool,
    ) -> None:
        usage = end.usage
        prices = self.engine.prices
        cost = prices.cost(model, usage) if prices is not None else None
        self._journal_stream()
        state = self._apply(
            ExecutionCompleted.model_construct(
                at=self._now(),
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cost=cost,
                finish_reason=end.finish_reason,
            )
        )
        turn = state.core.turn
        text = state.core.messages[-1].content
        if tracking:
            await self._persist(
                FinishTurn(
                    task_id=task_id,
                    response_text=text,
                    run_messages=[_message_row(m) for m in state.core.messages],
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    cached_tokens=usage.cached_tokens,
                    usage_source=usage.source,
                    cost=cost or 0.0,
                    time_to_first_token=turn.time_to_first_token,
                    total_time=turn.total_time,
                    finish_reason=end.finish_reason,
                )
            )
            self._apply(
                RunSaved.model_construct(
                    at=self._now(), saved_message_count=len(state.core.messages)
                )
            )
        ticket.resolve(
            TurnResult(
                task_id=task_id,
                run_id=run_id,
                text=text,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                usage_source=usage.source,
                cost=cost,
                time_to_first_token=turn.time_to_first_token,
                total_time=turn.total_time,
                finish_reason=end.finish_reason,
                attempts=ticket.attempts,
            )
        )
        self._notify()

    async def _attempt_failed(self, ticket: TurnTicket, task_id: str, error: ProviderError) -> None:
        partial = self.state.stream.text
        self._journal_stream()
        state = self._apply(
            ExecutionFailed(at=self._now(), error=str(error) or type(error).__name__)
        )
        if state.core.config.track_in_runs:
            await self._persist(
                FailTask(
                    task_id=task_id,
                    error=f"{type(error).__name__}: {error}",
                    response_text=partial,
                    total_time=state.core.turn.total_time,
                )
            )
        if error.retryable and ticket.attempts < self.engine.retry.max_attempts:
            delay = error.retry_after or self.engine.retry.delay(ticket.attempts)
            ticket.attempts += 1
            _log.info(
                "turn_retrying",
                instance_id=state.instance_id,
                attempt=ticket.attempts,
                error=type(error).__name__,
                delay=delay,
            )
            await self._retry_turn(ticket, delay)
            return
        if error.retryable:
            final: BaseException = AttemptsExhausted(
                f"turn of instance {state.instance_id!r} failed on each of its "
                f"{ticket.attempts} attempts; last error: {type(error).__name__}: {error}"
            )
            final.__cause__ = error
        else:
            final = error
        await self._give_up(ticket, final)

    async def _retry_turn(self, ticket: TurnTicket, delay: float) -> None:
        if delay > 0:
            await anyio.sleep(delay)
        task_id = str(uuid.uuid4())
        self._apply(
            ExecutionStarted.model_construct(
                at=self._now(),
                task_id=task_id,
                user_message=None,
                computed_values=self.engine.computed(),
            )
        )
        self._notify()
        await self._run_turn(ticket, task_id)

    async def _give_up(self, ticket: TurnTicket, error: BaseException) -> None:
        """The turn failed for good: mark its user message failed, fail the ticket."""
        if ticket.user_message is not None:
            self._apply(
                UserTurnFailed(at=self._now(), task_id=ticket.first_task_id, error=str(error))
            )
        ticket.fail(error)
        self._notify()

    def _journal_stream(self) -> None:
        """Record the turn's streamed text as one delta, before the event that ends the
        turn: replaying the journal gives the same state as the reads did one by one."""
        state = self.home.state
        if not self.engine.journal or state is None or state.stream.length == 0:
            return
        stream = state.stream
        self.home.journal.append(
            StreamDelta.model_construct(at=state.updated_at, text=stream.text, chunks=stream.chunks)
        )


def _message_row(message: ConversationMessage) -> dict[str, Any]:
    row: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.task_id is not None:
        row["task_id"] = message.task_id
    if message.failed:
        row["failed"] = True
        row["error"] = message.error
    return row

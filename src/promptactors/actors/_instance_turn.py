"""The turn half of the instance actor: attempts, backoff, commit, cancellation.

Every change of a turn's phase goes through :func:`promptactors.state.advance_turn` (the
pure table in :mod:`promptactors.state._turn`). A decision and the state change it makes
happen with no ``await`` between them, and an attempt task re-checks that it is still the
current attempt (``ActiveTurn.gen``) after each ``await``: so a token, a failure or an
answer arriving after a stop or an interrupt changes nothing. The ticket is settled only
after the outcome's rows are handed to the run tracker, and always (``finally``).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from .._exceptions import (
    ActorDead,
    AttemptsExhausted,
    ConfigurationError,
    NotFound,
    ProviderError,
    SchemaError,
    StaleFence,
    StoreConflict,
    StoreError,
    StoreNotWritable,
    StreamTruncated,
    TurnCancelled,
)
from ..kernel import Actor
from ..kernel._entropy import new_id
from ..messages import (
    AttemptRetrying,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    InstanceCommand,
    RunLinked,
    RunSaved,
    StreamDelta,
    StreamingStarted,
    UserTurnFailed,
)
from ..providers import ChatMessage, ProviderRequest, StreamEnd, TextDelta
from ..state import (
    TURN_STATUSES,
    TurnPhase,
    TurnSignal,
    advance_turn,
    append_stream,
    reduce,
    resolved_messages,
)
from ..store import CreateRun, CreateTask, FailTask, FinishTurn, InterruptTask, UpdateRun
from ._turns import ActiveTurn, TurnResult

if TYPE_CHECKING:
    from ..messages import ConversationMessage, Event
    from ..providers import Provider
    from ..state import InstanceState, TurnLife
    from ..store import WriteOp
    from ._instance_home import EngineContext, InstanceHome

__all__ = ["TurnRunner", "message_row"]

_log = structlog.get_logger("promptactors.instance")


class TurnRunner(Actor[InstanceCommand]):
    """The instance actor's turn machinery (see :class:`InstanceActor`)."""

    home: InstanceHome
    engine: EngineContext

    # -- provided by the instance ----------------------------------------------------------

    @property
    def state(self) -> InstanceState:
        state = self.home.state
        assert state is not None
        return state

    def _apply(self, event: Event) -> InstanceState:
        raise NotImplementedError

    def _now(self) -> float:
        raise NotImplementedError

    def _start_next(self) -> None:
        raise NotImplementedError

    # -- helpers ---------------------------------------------------------------------------

    def _signal(self, turn: ActiveTurn, signal: TurnSignal) -> TurnLife:
        turn.life = life = advance_turn(turn.life, signal)
        turn.ticket.attempts = life.attempt
        return life

    def _current(self, turn: ActiveTurn, gen: int) -> bool:
        return self.home.turn is turn and turn.gen == gen

    def _notify(self) -> None:
        for subscriber in self.home.subscribers:
            subscriber.notify()

    def _tracking(self) -> bool:
        return self.state.core.config.track_in_runs and self.engine.persistence is not None

    async def _persist(self, *ops: WriteOp, timeout: float | None = None) -> None:
        """Hand ``ops`` to the tracker and wait for their commit. Once the store refused a
        write with a stale fence (the run was taken over) nothing more is written: this
        raises ``StaleFence`` saying so, and the instance is fenced out (see ``_fence_out``)."""
        persistence = self.engine.persistence
        if persistence is None or not ops:
            return
        if (fenced := self.home.fenced) is not None:
            raise StaleFence(fenced.stale, str(fenced))
        try:
            await persistence.persist(*ops, timeout=timeout)
        except StaleFence as exc:
            raise self._fence_out(exc) from exc

    def _fence_out(self, refusal: StaleFence) -> StaleFence:
        """Another executor took the run over (no await): the running turn ends failed and
        the queued ones too, with ``StaleFence`` saying so; nothing more is written with
        the stale fence, and the instance stops (it no longer owns its run)."""
        home = self.home
        if home.fenced is None:
            state = self.state
            run_id = state.core.run.run_id
            home.fenced = StaleFence(
                refusal.stale,
                f"instance {state.instance_id!r} no longer owns run {run_id!r}: the run was "
                f"taken over by another executor, which refuses its writes ({refusal})",
            )
            _log.warning("run_taken_over", instance_id=state.instance_id, run_id=run_id)
            turn = home.turn
            if turn is not None and not turn.life.done and self._refuse(turn, home.fenced):
                turn.ticket.fail(home.fenced)
            while home.queue:
                ticket, _ = home.queue.popleft()
                ticket.fail(home.fenced)
            self._notify()
            self.stop_self()
        return StaleFence(home.fenced.stale, str(home.fenced))

    def _refuse(self, turn: ActiveTurn, error: BaseException) -> bool:
        """The store refuses ``turn``'s writes for good (no await): it ends failed, its
        answer (if it was committing) not given. Returns whether it ended (a stopping turn
        ends cancelled by its stop); the caller settles its ticket."""
        life = self._signal(turn, TurnSignal.REFUSED)
        if not life.done:
            return False
        self._journal_stream()
        if self.state.core.status in TURN_STATUSES:
            self._apply(ExecutionFailed.model_construct(at=self._now(), error=str(error)))
        if turn.ticket.user_message is not None:
            with contextlib.suppress(ValueError):  # the message is gone (not expected)
                self._apply(
                    UserTurnFailed.model_construct(
                        at=self._now(), task_id=turn.ticket.first_task_id, error=str(error)
                    )
                )
        if turn.scope is not None:
            turn.scope.cancel()
        self._end(turn, start_next=False)
        return True

    async def _persist_quietly(self, *ops: WriteOp) -> None:
        """Hand ``ops`` to the tracker; a refusal or an outage is logged, never raised
        (persistence never crashes an instance; accepted ops are retried by the tracker).
        A fenced-out instance writes nothing."""
        if self.home.fenced is not None:
            return
        try:
            await self._persist(*ops, timeout=self.engine.row_timeout)
        except (StoreError, NotFound, ActorDead) as exc:
            _log.warning(
                "turn_write_not_confirmed",
                instance_id=self.state.instance_id,
                error_type=type(exc).__name__,
                error=str(exc),
            )

    def _run_rows(self) -> UpdateRun | None:
        core = self.state.core
        if core.run.run_id is None or not self._tracking():
            return None
        return UpdateRun(run_id=core.run.run_id, messages=[message_row(m) for m in core.messages])

    def _journal_stream(self) -> None:
        """Record the turn's streamed text as one delta, before the event that ends the
        attempt: replaying the journal gives the same state as the reads did one by one."""
        state = self.home.state
        if not self.engine.journal or state is None or state.stream.length == 0:
            return
        stream = state.stream
        self.home.journal.append(
            StreamDelta.model_construct(at=state.updated_at, text=stream.text, chunks=stream.chunks)
        )

    def _end(self, turn: ActiveTurn, *, start_next: bool = True) -> None:
        """The turn is done in memory: free the instance for the next turn."""
        assert turn.life.done
        turn.gen += 1
        if self.home.turn is turn:
            self.home.turn = None
        turn.settled.set()
        self._notify()
        if start_next:
            self._start_next()

    async def _write_outcome(
        self, turn: ActiveTurn, ops: list[WriteOp], error: BaseException
    ) -> None:
        """Hand a failed or cancelled turn's rows to the tracker, then fail its ticket."""
        try:
            run_rows = self._run_rows()
            if run_rows is not None:
                ops.append(run_rows)
            if ops and self._tracking():
                # Kept until confirmed: a crash meanwhile rewrites them (they are idempotent).
                outbox = self.home.outbox
                outbox.extend(ops)
                await self._persist_quietly(*ops)
                del outbox[: len(ops)]
                if run_rows is not None and self.home.state is not None:
                    self._apply(
                        RunSaved.model_construct(
                            at=self._now(), saved_message_count=len(self.state.core.messages)
                        )
                    )
        finally:
            turn.ticket.fail(error)
            self._notify()

    # -- cancelling ------------------------------------------------------------------------

    def _cancel(self, turn: ActiveTurn, why: str) -> list[WriteOp] | None:
        """Cancel ``turn`` now (no await): its partial output becomes an assistant message
        marked partial. Returns the rows to write, or None when the turn cannot be
        cancelled (its answer's commit started: the answer wins)."""
        life = turn.life
        if life.done or life.phase is TurnPhase.COMMITTING:
            return None
        running = life.attempt_running
        life = self._signal(turn, TurnSignal.STOP)
        if life.phase is TurnPhase.STOPPING:
            life = self._signal(turn, TurnSignal.STOPPED)
        partial = self.state.stream.text
        self._journal_stream()
        self._apply(ExecutionCancelled.model_construct(at=self._now(), error=f"cancelled: {why}"))
        ops: list[WriteOp] = []
        if running and turn.rows:
            ops.append(InterruptTask(task_id=turn.task_id, response_text=partial, error=why))
        if turn.scope is not None:
            turn.scope.cancel()
        self._end(turn, start_next=False)
        return ops

    def _cancel_error(self, turn: ActiveTurn, why: str) -> TurnCancelled:
        messages = self.state.core.messages
        partial = messages[-1].content if messages and messages[-1].partial else ""
        return TurnCancelled(
            f"turn of instance {self.state.instance_id!r} was cancelled: {why}", partial
        )

    async def _cancel_and_write(self, turn: ActiveTurn, why: str) -> bool:
        ops = self._cancel(turn, why)
        if ops is None:
            return False
        await self._write_outcome(turn, ops, self._cancel_error(turn, why))
        return True

    # -- attempts --------------------------------------------------------------------------

    async def _drive(self, turn: ActiveTurn, delay: float) -> None:
        """One attempt of ``turn`` (after its backoff), in a task linked to the actor.

        With admission control the attempt first waits for a slot (FIFO); the slot is
        given back however the attempt ends: answered, failed, retried, cancelled (the
        scope), or the instance crashed (linked tasks are cancelled)."""
        gen = turn.gen
        if self.home.turn is not turn:  # ended before this task started (fenced out)
            return
        with anyio.CancelScope() as scope:
            turn.scope = scope
            if turn.life.phase is TurnPhase.BACKOFF:
                if delay > 0:
                    await anyio.sleep(delay)
                if not self._current(turn, gen):
                    return
                self._signal(turn, TurnSignal.BACKOFF_OVER)
                turn.rows = False
                self._notify()
            if not self._current(turn, gen):
                return  # ended before this task ran (a stop, an interrupt)
            admission = self.engine.admission
            if admission is not None and not admission.try_acquire():
                await admission.acquire()  # queued in phase starting (cancellable)
            try:
                if self._current(turn, gen):
                    turn.ticket.admit()
                    await self._attempt(turn, gen)
            finally:
                if admission is not None:
                    admission.release()

    async def _attempt(self, turn: ActiveTurn, gen: int) -> None:
        engine = self.engine
        state = self.state
        core = state.core
        tracking = self._tracking()
        messages = resolved_messages(state)
        try:
            provider, model = engine.provider_for(core.settings)
        except ConfigurationError as exc:
            await self._attempt_failed(turn, exc, retryable=False)
            return
        task_id = turn.task_id
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
                # Chosen once and linked at once: a stop from now on ends this run, and a
                # retry after an outage creates no second run.
                run_id = self.home.run_id = self.home.run_id or new_id()
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
                self._apply(
                    RunLinked.model_construct(
                        at=self._now(), run_id=run_id, run_name=core.prompt.name or None
                    )
                )
            ops.append(
                CreateTask(
                    task_id=task_id,
                    run_id=run_id,
                    provider=provider.name,
                    model=model,
                    request=[{"role": m.role, "content": m.content} for m in messages],
                    attempt=turn.life.attempt,
                    instance_id=core.instance_id,
                )
            )
            turn.rows = True
            try:
                # Durability: the task row is committed before the provider is called.
                await self._persist(*ops, timeout=engine.row_timeout)
            except (StoreError, NotFound) as exc:
                if self._current(turn, gen):
                    await self._attempt_failed(turn, exc, retryable=False)
                return
            if not self._current(turn, gen):
                return
            if engine.registry is not None and isinstance(ops[0], CreateRun):
                await engine.registry.announce_run(core.instance_id, run_id)
                if not self._current(turn, gen):
                    return
        try:
            end = await self._stream(turn, gen, provider, request)
        except ProviderError as exc:
            if self._current(turn, gen):
                await self._attempt_failed(turn, exc, retryable=exc.retryable)
            return
        if end is not None:
            await self._commit(turn, run_id, model, end, tracking)

    async def _stream(
        self, turn: ActiveTurn, gen: int, provider: Provider, request: ProviderRequest
    ) -> StreamEnd | None:
        clock = self.engine.clock
        home = self.home
        end: StreamEnd | None = None
        async with provider.stream(request) as events:
            async for event in events:
                if turn.gen != gen or home.turn is not turn:
                    return None  # cancelled while this read was on its way: drop it
                if isinstance(event, TextDelta):
                    now = clock()
                    if turn.life.phase is TurnPhase.STARTING:
                        self._signal(turn, TurnSignal.FIRST_TOKEN)
                        self._apply(StreamingStarted.model_construct(at=now))
                    # One network read, one state change: the engine's hot path. Read
                    # home.state afresh: a command may have changed it since the last read.
                    state = home.state
                    assert state is not None
                    home.state = append_stream(state, event.text, event.chunks, now)
                    if home.subscribers:
                        self._notify()
                elif isinstance(event, StreamEnd):
                    end = event
        if turn.gen != gen or home.turn is not turn:
            return None
        if end is None:
            raise StreamTruncated(
                f"provider {provider.name!r} ended the stream without its end",
                provider=provider.name,
            )
        return end

    async def _attempt_failed(self, turn: ActiveTurn, error: Exception, *, retryable: bool) -> None:
        partial = self.state.stream.text
        task_id = turn.task_id
        fail = FailTask(
            task_id=task_id,
            error=f"{type(error).__name__}: {error}",
            response_text=partial,
            total_time=max(0.0, self._now() - (self.state.core.turn.started_at or self._now())),
        )
        rows = turn.rows
        life = self._signal(turn, TurnSignal.ATTEMPT_FAILED if retryable else TurnSignal.FAILED)
        self._journal_stream()
        if life.phase is TurnPhase.BACKOFF:
            retry_after = error.retry_after if isinstance(error, ProviderError) else None
            delay = retry_after or self.engine.retry.delay(life.attempt)
            self._retry(turn, str(error) or type(error).__name__, delay)
            _log.info(
                "turn_retrying",
                instance_id=self.state.instance_id,
                attempt=life.attempt + 1,
                error=type(error).__name__,
                delay=delay,
            )
            if rows and self._tracking():
                await self._persist_quietly(fail)
            return
        final: BaseException = error
        if retryable:
            final = AttemptsExhausted(
                f"turn of instance {self.state.instance_id!r} failed on each of its "
                f"{life.attempt} attempts; last error: {type(error).__name__}: {error}"
            )
            final.__cause__ = error
        self._apply(
            ExecutionFailed.model_construct(
                at=self._now(), error=str(error) or type(error).__name__
            )
        )
        await self._give_up(turn, final, [fail] if rows else [])

    def _retry(self, turn: ActiveTurn, why: str, delay: float) -> None:
        """The attempt failed; the turn goes on in ``backoff`` (status stays executing)."""
        turn.gen += 1
        turn.task_id = new_id()
        state = self._apply(
            AttemptRetrying.model_construct(at=self._now(), task_id=turn.task_id, error=why)
        )
        turn.ticket.pieces = state.stream.pieces
        self._notify()
        self.start_soon(self._drive, turn, delay)

    async def _give_up(self, turn: ActiveTurn, error: BaseException, ops: list[WriteOp]) -> None:
        """The turn failed for good: its user message is marked failed, in the run too."""
        if turn.ticket.user_message is not None:
            # (ValueError: the message is gone; not expected, clearing is refused in a turn)
            with contextlib.suppress(ValueError):
                self._apply(
                    UserTurnFailed.model_construct(
                        at=self._now(), task_id=turn.ticket.first_task_id, error=str(error)
                    )
                )
        self._end(turn)
        await self._write_outcome(turn, ops, error)

    # -- the answer ------------------------------------------------------------------------

    async def _commit(
        self, turn: ActiveTurn, run_id: str | None, model: str, end: StreamEnd, tracking: bool
    ) -> None:
        usage = end.usage
        prices = self.engine.prices
        cost = prices.cost(model, usage) if prices is not None else None
        self._signal(turn, TurnSignal.STREAM_ENDED)
        completed = ExecutionCompleted.model_construct(
            at=self._now(),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost=cost,
            finish_reason=end.finish_reason,
        )
        # The status stays in the turn until the answer is committed; only turn commands
        # are refused meanwhile, so the conversation after the commit is this one.
        before = self.state
        after = reduce(before, completed)
        turn.reduced = (before, after)
        finish = None
        if tracking:
            finish = FinishTurn(
                task_id=turn.task_id,
                response_text=after.core.messages[-1].content,
                run_messages=[message_row(m) for m in after.core.messages],
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cached_tokens=usage.cached_tokens,
                usage_source=usage.source,
                cost=cost or 0.0,
                time_to_first_token=after.core.turn.time_to_first_token,
                total_time=after.core.turn.total_time,
                finish_reason=end.finish_reason,
            )
        turn.commit = (completed, finish)
        await self._finish_commit(turn, run_id, usage.source)

    async def _finish_commit(self, turn: ActiveTurn, run_id: str | None, source: str) -> None:
        """Commit the answer (again, after a crash: it is idempotent) and answer."""
        assert turn.commit is not None
        completed, finish = turn.commit
        if finish is not None:
            try:
                # No timeout: the tracker retries while the store is down, and the turn
                # is answered when its answer is committed. Cancelled with its incarnation
                # (or the tracker gone), the turn stays committing: the next incarnation,
                # or the close after the last one, replays the commit.
                await self._persist(finish, timeout=None)
            except StaleFence:
                return  # fenced out: the turn ended failed with it, and the instance stops
            except (StoreConflict, NotFound, StoreNotWritable, SchemaError) as exc:
                # Refused for good: the answer is not in the run: the turn is not answered.
                if turn.life.phase is TurnPhase.COMMITTING and self._refuse(turn, exc):
                    await self._write_outcome(turn, [], exc)
                    self._start_next()
                return
        if turn.life.phase is TurnPhase.COMMITTING:
            self._answer(turn, completed, run_id, source, saved=finish is not None)

    def _answer(
        self, turn: ActiveTurn, completed: Any, run_id: str | None, source: str, *, saved: bool
    ) -> None:
        self._journal_stream()
        reduced, turn.reduced = turn.reduced, None
        home = self.home
        if reduced is not None and reduced[0] is home.state:
            # Nothing changed the state since _commit reduced the answer (pure): reuse it.
            home.state = state = reduced[1]
            if self.engine.journal:
                home.journal.append(completed)
        else:
            state = self._apply(completed)
        if saved:
            state = self._apply(
                RunSaved.model_construct(
                    at=self._now(), saved_message_count=len(state.core.messages)
                )
            )
        life = self._signal(turn, TurnSignal.COMMITTED)
        core = state.core
        t = core.turn
        turn.ticket.resolve(
            TurnResult(
                task_id=turn.task_id,
                run_id=run_id or core.run.run_id,
                text=core.messages[-1].content,
                input_tokens=t.input_tokens,
                output_tokens=t.output_tokens,
                usage_source=source,
                cost=t.cost,
                time_to_first_token=t.time_to_first_token,
                total_time=t.total_time,
                finish_reason=t.finish_reason,
                attempts=life.attempt,
            )
        )
        self._end(turn)


def message_row(message: ConversationMessage) -> dict[str, Any]:
    row: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.task_id is not None:
        row["task_id"] = message.task_id
    if message.failed:
        row["failed"] = True
        row["error"] = message.error
    if message.partial:
        row["partial"] = True
    return row

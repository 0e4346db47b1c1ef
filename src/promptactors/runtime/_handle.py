"""What callers hold for one instance: :class:`InstanceHandle`, and :class:`TurnStream`."""

from __future__ import annotations

import contextlib
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import promptactors.state as selectors

from .._exceptions import ActorDead, PromptActorsError
from ..messages import (
    ClearConversation,
    ClearVariable,
    ConversationMessage,
    CurrentTurn,
    Execute,
    ExecutionInstance,
    ExportJournal,
    GetSnapshot,
    LiveStats,
    PendingTurns,
    Readiness,
    ScopedValues,
    Select,
    SetExpandedVariable,
    SetInput,
    SetScopedValues,
    Subscribe,
    ToggleShowVariables,
    UpdateVariables,
    VariableExplanation,
)
from ._checks import check_text, check_variables

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping

    from .._settings import RuntimeSettings
    from ..actors import Subscription, TurnResult, TurnTicket
    from ..kernel import ActorRef

__all__ = ["InstanceHandle", "TurnStream"]

T = TypeVar("T")


class TurnStream:
    """A turn being streamed: iterate for :class:`TurnChunk` s, then read ``result``.

    Made by :meth:`InstanceHandle.stream`; iteration raises the turn's error if it failed.
    """

    def __init__(
        self, subscription: Subscription, ticket: TurnTicket, timeout: float | None, default: float
    ) -> None:
        self._subscription = subscription
        self._ticket = ticket
        self._timeout = timeout
        self._default = default

    def __aiter__(self) -> Subscription:
        return self._subscription

    @property
    def task_id(self) -> str:
        return self._ticket.first_task_id

    async def result(self) -> TurnResult:
        """The completed turn (waits for it, as :meth:`InstanceHandle.execute`)."""
        return await _outcome(self._ticket, self._timeout, self._default)


class InstanceHandle:
    """What callers hold for one execution instance: the seed's ``usePromptInstance``.

    Every method reads or changes the instance's current state through its actor (no stale
    copies). Methods raise ``ActorDead`` once the instance is stopped and ``InvalidInput``
    for bad arguments; state changes the status machine forbids raise
    ``IllegalTransition`` and change nothing.
    """

    __slots__ = ("_ref", "_settings", "instance_id")

    def __init__(self, instance_id: str, ref: ActorRef[Any], settings: RuntimeSettings) -> None:
        self.instance_id = instance_id
        self._ref = ref
        self._settings = settings

    def __repr__(self) -> str:
        return f"<InstanceHandle {self.instance_id!r}{'' if self.is_alive else ' stopped'}>"

    @property
    def is_alive(self) -> bool:
        return self._ref.is_alive

    # -- turns -----------------------------------------------------------------------------

    async def execute(
        self, user_input: str | None = None, *, timeout: float | None = None
    ) -> TurnResult:
        """Run a turn and return its result once the answer is committed.

        ``user_input`` is appended to the current input. Raises ``MissingVariables`` (naming
        every missing one), ``ChatNotAllowed``, ``TurnInProgress`` while a turn runs (per
        the instance's ``on_busy``), ``ProviderError`` / ``AttemptsExhausted`` when the turn
        fails for good, ``TurnCancelled`` when it is stopped or interrupted, and
        ``TimeoutError`` after ``timeout`` seconds (the turn goes on:
        ``await (await inst.current_turn()).wait()`` gives its outcome).

        Under overload a turn is queued (admission control, ``max_active_turns``) before
        it streams. A ``timeout`` given here bounds the whole wait, queue time included;
        without one, the runtime's ``turn_timeout`` counts from the turn's admission, so
        queueing alone never times a turn out.
        """
        ticket = await self.start_turn(user_input)
        return await _outcome(ticket, timeout, self._settings.turn_timeout)

    async def start_turn(self, user_input: str | None = None) -> TurnTicket:
        """Start a turn and return at once; ``await ticket.wait()`` gives its result."""
        check_text("user_input", user_input)
        ticket: TurnTicket = await self._ref.ask(Execute(user_input))
        return ticket

    async def current_turn(self) -> TurnTicket | None:
        """The running (or last) turn's ticket — e.g. the first turn of an ``auto_run``
        instance — or None before any turn. ``await ticket.wait()`` gives its result."""
        ticket: TurnTicket | None = await self._ref.ask(CurrentTurn())
        return ticket

    @asynccontextmanager
    async def stream(
        self, user_input: str | None = None, *, timeout: float | None = None
    ) -> AsyncIterator[TurnStream]:
        """Run a turn and stream its text::

            async with inst.stream("Why?") as turn:
                async for chunk in turn:
                    print(chunk.text, end="")
                result = await turn.result()

        A slow reader never slows the instance: each chunk holds everything streamed since
        the previous one. Raises as :meth:`execute`.
        """
        check_text("user_input", user_input)
        subscription: Subscription = await self._ref.ask(Subscribe())
        try:
            ticket: TurnTicket = await self._ref.ask(Execute(user_input))
            if subscription.ticket is not ticket:
                subscription.attach(ticket)
            yield TurnStream(subscription, ticket, timeout, self._settings.turn_timeout)
        finally:
            subscription.close()

    # -- changes ---------------------------------------------------------------------------

    async def set_input(self, text: str) -> None:
        """Set the text the next turn sends (``execute``'s input is appended to it)."""
        check_text("text", text)
        await self._ref.ask(SetInput(text))

    async def update_variable(self, name: str, value: str) -> None:
        """Set one user value (above action, broker, scoped and default values)."""
        await self.update_variables({name: value})

    async def update_variables(self, values: Mapping[str, str]) -> None:
        """Set several user values at once."""
        await self._ref.ask(UpdateVariables(check_variables("values", values)))

    async def clear_variable(self, name: str) -> None:
        """Remove a user value (a lower layer's value, if any, applies again)."""
        await self._ref.ask(ClearVariable(name))

    async def set_scoped_values(self, scoped: ScopedValues) -> None:
        """Replace the scoped (project, org, user) layer."""
        await self._ref.ask(SetScopedValues(scoped))

    async def clear_conversation(self) -> None:
        await self._ref.ask(ClearConversation())

    async def set_expanded_variable(self, name: str | None) -> None:
        await self._ref.ask(SetExpandedVariable(name))

    async def toggle_show_variables(self) -> None:
        await self._ref.ask(ToggleShowVariables())

    async def stop(self, *, drain: bool = False) -> None:
        """Stop the instance for good.

        A running turn is cancelled (its caller gets ``TurnCancelled``; the partial output
        is kept as an assistant message marked partial, its task row says
        ``interrupted``) unless its answer's commit started (then it is answered); queued
        turns are cancelled. With ``drain=True`` the running and queued turns finish
        first. Idempotent.
        """
        if drain and self._ref.is_alive:
            try:
                tickets: tuple[TurnTicket, ...] = await self._ref.ask(PendingTurns())
            except ActorDead:
                tickets = ()
            for ticket in tickets:
                with contextlib.suppress(PromptActorsError):
                    await ticket.wait()
        await self._ref.stop()

    # -- reads (pure selectors over the instance's current state) --------------------------

    async def select(self, selector: Callable[..., T], *args: Any) -> T:
        """Apply a pure selector of :mod:`promptactors.state` to the current state."""
        result: T = await self._ref.ask(Select(selector, args))
        return result

    async def snapshot(self) -> ExecutionInstance:
        """The whole state as one frozen, JSON-serialisable model."""
        snap: ExecutionInstance = await self._ref.ask(GetSnapshot())
        return snap

    async def export_journal(self) -> str:
        """The instance's events as JSON (replay with ``promptactors.state.replay``)."""
        journal: str = await self._ref.ask(ExportJournal())
        return journal

    async def merged_variables(self) -> dict[str, str]:
        return await self.select(selectors.merged_variables)

    async def explain_variables(self) -> tuple[VariableExplanation, ...]:
        return await self.select(selectors.explain_variables)

    async def template_messages(self) -> tuple[Any, ...]:
        return await self.select(selectors.template_messages)

    async def conversation_messages(self) -> tuple[ConversationMessage, ...]:
        return await self.select(selectors.conversation_messages)

    async def resolved_messages(self) -> tuple[Any, ...]:
        return await self.select(selectors.resolved_messages)

    async def system_message(self) -> str | None:
        return await self.select(selectors.system_message)

    async def display_messages(self) -> tuple[ConversationMessage, ...]:
        return await self.select(selectors.display_messages)

    async def streaming_text(self) -> str:
        return await self.select(selectors.streaming_text)

    async def is_response_ended(self) -> bool:
        return await self.select(selectors.is_response_ended)

    async def live_stats(self) -> LiveStats:
        return await self.select(selectors.live_stats)

    async def is_ready(self) -> Readiness:
        """Whether a turn can start now; if not, why and which variables are missing."""
        return await self.select(selectors.is_ready_to_execute)

    async def has_unsaved_changes(self) -> bool:
        return await self.select(selectors.has_unsaved_changes)

    async def stats(self) -> Any:
        return await self.select(selectors.instance_stats)

    async def model_config(self) -> dict[str, Any]:
        return await self.select(selectors.model_config)


async def _outcome(ticket: TurnTicket, timeout: float | None, default: float) -> TurnResult:
    """The turn's result within the caller's ``timeout``, else within ``default`` seconds
    of its admission (queue time does not count against the runtime's own bound)."""
    if timeout is None:
        await ticket.wait_admitted()
        timeout = default
    return await ticket.wait(timeout)

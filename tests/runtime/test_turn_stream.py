"""Readers of a streamed turn: coalesced reads, cancellable waits, readers that come early,
the turn's end and its error (virtual time: trio's MockClock with autojump)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any, cast

import pytest
import trio
import trio.testing

from promptactors import InjectedFault, ProviderBadRequest, Runtime, RuntimeSettings, open_runtime
from promptactors.actors import Subscription, TurnResult, TurnTicket
from promptactors.messages import Subscribe
from promptactors.providers import Usage
from promptactors.testing import Pause, ScriptedProvider

from ._turn_helpers import PROMPT

# One delta, then the others a second apart: a reader gets the first one alone.
SCRIPT = ["a", Pause(1), "b", Pause(1), "c", Pause(1), "d", Usage(3, 4)]


@asynccontextmanager
async def _runtime(provider: ScriptedProvider) -> AsyncIterator[Runtime]:
    settings = RuntimeSettings(database_url="memory://", retry_backoff=0.0)
    with trio.fail_after(600):
        async with open_runtime(settings, provider=provider) as rt:
            yield rt


@pytest.mark.trio
async def test_a_slow_reader_gets_everything_since_its_last_read_in_one_chunk(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A reader that waits for the whole turn after its first chunk is not waited for:
    its next read holds the rest of the text at once, and nothing is lost."""
    async with _runtime(ScriptedProvider([SCRIPT])) as rt:
        inst = await rt.start_instance(prompt=PROMPT)
        async with inst.stream("go") as turn:
            chunks = [(await anext(aiter(turn))).text]
            result = await turn.result()  # the turn ends while nobody reads
            chunks += [chunk.text async for chunk in turn]
        assert chunks == ["a", "bcd"]
        assert "".join(chunks) == result.text == "abcd"


@pytest.mark.trio
async def test_a_reader_cancelled_while_it_waits_can_read_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Cancelling a reader parked for the next chunk leaves the turn and the subscription
    intact: reading again gives the rest of the text, and the turn ends as usual."""
    async with _runtime(ScriptedProvider([SCRIPT])) as rt:
        inst = await rt.start_instance(prompt=PROMPT)
        async with inst.stream("go") as turn:
            chunks = [(await anext(aiter(turn))).text]
            with trio.move_on_after(0.5) as waited:
                await anext(aiter(turn))  # parked: the next delta is a second away
            assert waited.cancelled_caught
            assert chunks == ["a"]
            chunks += [chunk.text async for chunk in turn]
            result = await turn.result()
        assert "".join(chunks) == result.text == "abcd"
        assert result.output_tokens == 4


@pytest.mark.trio
async def test_a_reader_waiting_before_the_turn_starts_follows_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A subscription opened while no turn runs waits; the next turn wakes it, and it
    reads that turn's text until the turn ends."""
    async with _runtime(ScriptedProvider([SCRIPT])) as rt:
        inst = await rt.start_instance(prompt=PROMPT)
        subscription: Subscription = await inst._ref.ask(Subscribe())
        assert subscription.ticket is None
        chunks: list[str] = []

        async def read() -> None:
            chunks.extend([chunk.text async for chunk in subscription])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            await trio.sleep(5)  # virtual: the reader has long been parked
            assert chunks == []
            ticket = await inst.start_turn("go")
            result = await ticket.wait()
        assert "".join(chunks) == result.text == "abcd"


@pytest.mark.trio
async def test_a_waiting_reader_gets_the_turns_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A turn that fails for good ends its readers' iteration with its error, after the
    text streamed before the failure."""
    script = ["a", Pause(1), ProviderBadRequest("bad request", retryable=False)]
    async with _runtime(ScriptedProvider([script])) as rt:
        inst = await rt.start_instance(prompt=PROMPT)
        async with inst.stream("go") as turn:
            chunks = aiter(turn)
            assert (await anext(chunks)).text == "a"
            with pytest.raises(ProviderBadRequest, match="bad request"):
                await anext(chunks)


def _result() -> TurnResult:
    return TurnResult("t1", None, "", 0, 0, "provider", None, None, None, "stop", 1)


@pytest.mark.trio
@pytest.mark.parametrize("ends", ["resolve", "fail"])
async def test_the_end_of_a_followed_turn_wakes_its_reader_without_a_notify(
    ends: str, autojump_clock: trio.testing.MockClock
) -> None:
    """However a turn ends (whoever settles its ticket), a reader parked on it wakes and
    its iteration ends: with the turn's error if it failed."""
    home = cast("Any", SimpleNamespace(state=None, subscribers=set()))
    ticket = TurnTicket("t1", None)
    subscription = Subscription(home, ticket)
    home.subscribers.add(subscription)
    outcome: list[str] = []

    async def read() -> None:
        try:
            outcome.extend(["chunk" async for _ in subscription])
        except RuntimeError as exc:
            outcome.append(f"error {exc}")
        else:
            outcome.append("ended")

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            await trio.sleep(1)  # virtual: the reader has long been parked
            assert outcome == []
            if ends == "resolve":
                ticket.resolve(_result())
            else:
                ticket.fail(RuntimeError("gone"))
    assert outcome == (["ended"] if ends == "resolve" else ["error gone"])
    assert subscription not in home.subscribers  # the ended reader closed itself


@pytest.mark.trio
async def test_a_reader_of_a_queued_turn_gets_that_turns_text_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A turn streamed while another runs (``on_busy="enqueue"``) waits in the queue: its
    reader gets none of the running turn's text, then its own."""
    provider = ScriptedProvider(
        [["first ", Pause(1), "turn", Usage(1, 2)], ["second ", Pause(1), "turn", Usage(1, 2)]]
    )
    async with _runtime(provider) as rt:
        inst = await rt.start_instance(prompt=PROMPT, execution_config={"on_busy": "enqueue"})
        first = await inst.start_turn("one")
        async with inst.stream("two") as turn:
            chunks = [chunk.text async for chunk in turn]
            result = await turn.result()
        assert (await first.wait()).text == "first turn"
        assert chunks == ["second ", "turn"]
        assert result.text == "second turn"


@pytest.mark.trio
async def test_a_slow_reader_keeps_its_turns_text_after_the_next_turn_began(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A reader that stops reading while its turn is retried, answered and followed by a
    queued turn still gets the rest of its own turn's answer (the last attempt's text),
    none of the next turn's."""
    provider = ScriptedProvider(
        [
            ["lost ", Pause(1), InjectedFault("boom", retryable=True)],
            ["first ", Pause(1), "turn", Usage(1, 2)],
            ["second ", Pause(1), "turn", Usage(1, 2)],
        ]
    )
    async with _runtime(provider) as rt:
        inst = await rt.start_instance(prompt=PROMPT, execution_config={"on_busy": "enqueue"})
        async with inst.stream("one") as turn:
            first = await anext(aiter(turn))
            second = await inst.start_turn("two")
            result = await turn.result()
            assert (await second.wait()).text == "second turn"
            chunks = [(first.text, first.attempt)]
            chunks += [(chunk.text, chunk.attempt) async for chunk in turn]
        assert result.text == "first turn"
        assert chunks == [("lost ", 1), ("first turn", 2)]

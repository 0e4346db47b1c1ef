"""A provider that plays scripts: a test double for code that embeds the runtime."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import anyio
import anyio.lowlevel

from .._exceptions import InvalidInput
from ..providers._estimate import estimate_request_tokens, estimate_tokens
from ..providers._protocol import ProviderRequest, StreamEnd, StreamEvent, TextDelta, Usage

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["Pause", "ScriptStep", "ScriptedProvider"]


@dataclass(frozen=True, slots=True)
class Pause:
    """A script step that waits ``seconds`` (on the event loop's clock) before the next step."""

    seconds: float


ScriptStep: TypeAlias = str | TextDelta | Pause | Usage | StreamEnd | BaseException
"""One step of a script: text (one delta), a ``TextDelta``, a ``Pause``, an exception to
raise there, or the end (a ``Usage`` or a whole ``StreamEnd``)."""

_Script: TypeAlias = tuple[ScriptStep, ...]
_Responder: TypeAlias = Callable[[ProviderRequest], Sequence[ScriptStep]]


def _check_script(script: object, where: str) -> _Script:
    if isinstance(script, str | bytes) or not isinstance(script, Sequence):
        raise InvalidInput(f"{where}: a script is a sequence of steps, got {script!r}")
    steps = tuple(script)
    for index, step in enumerate(steps):
        if not isinstance(step, str | TextDelta | Pause | Usage | StreamEnd | BaseException):
            raise InvalidInput(
                f"{where}[{index}]: {step!r} is not a step; expected text, a TextDelta, "
                "a Pause, a Usage, a StreamEnd or an exception"
            )
        if isinstance(step, Usage | StreamEnd | BaseException) and index != len(steps) - 1:
            raise InvalidInput(f"{where}[{index}]: {step!r} ends the stream; it must be last")
    return steps


class ScriptedProvider:
    """A :class:`~promptactors.providers.Provider` that answers each ``stream()`` call with
    the next script, and records the requests it received.

    A script is a sequence of steps::

        provider = ScriptedProvider([
            ["Hel", "lo"],                               # two deltas, then a StreamEnd
            ["Par", "tial", ProviderServerError("boom")],  # two deltas, then that error
            [ProviderRateLimited("slow down", retry_after=1.0)],  # fails on entry
            ["Hi", Pause(2.0), "there", Usage(12, 2)],   # a pause; the end reports Usage
        ])

    An exception as the first step is raised on entering the stream (as an HTTP error
    status would be), later ones while reading. Without a final ``Usage`` or ``StreamEnd``
    the stream ends with usage estimated from the request and the text (``source`` is
    ``"estimated"``). When the scripts run out, ``default`` is played: a script, or a
    function of the request returning one; with no default, ``stream()`` raises
    ``AssertionError`` (an unexpected call fails the test).

    Raises ``InvalidInput`` for a malformed script.
    """

    def __init__(
        self,
        scripts: Iterable[Sequence[ScriptStep]] = (),
        *,
        default: Sequence[ScriptStep] | _Responder | None = None,
        name: str = "scripted",
    ) -> None:
        self._scripts: deque[_Script] = deque()
        self.add(*scripts)
        self._default: _Script | _Responder | None = (
            default if default is None or callable(default) else _check_script(default, "default")
        )
        self._name = name
        self.requests: list[ProviderRequest] = []
        """Every request passed to ``stream()``, in call order."""
        self.open_streams = 0
        """How many streams are entered and not yet exited (0 once callers closed them all)."""
        self.closed = False
        """Whether :meth:`aclose` was called."""

    @property
    def name(self) -> str:
        """The name given to the constructor (``scripted`` by default)."""
        return self._name

    @property
    def remaining(self) -> int:
        """How many queued scripts have not been played yet."""
        return len(self._scripts)

    def add(self, *scripts: Sequence[ScriptStep]) -> None:
        """Queue more scripts after those already queued. Raises ``InvalidInput``."""
        start = len(self._scripts)
        checked = [_check_script(s, f"script {start + i}") for i, s in enumerate(scripts)]
        self._scripts.extend(checked)

    def stream(self, request: ProviderRequest) -> _ScriptedStream:
        """Record ``request`` and open a stream playing the next script.

        Raises ``AssertionError`` when no script is left and there is no default, and
        ``InvalidInput`` if a default function returns a malformed script.
        """
        self.requests.append(request)
        if self._scripts:
            script = self._scripts.popleft()
        elif self._default is None:
            raise AssertionError(
                f"ScriptedProvider {self._name!r} has no script left for call "
                f"{len(self.requests)} (model {request.model!r})"
            )
        elif callable(self._default):
            script = _check_script(self._default(request), "default(request)")
        else:
            script = self._default
        return _ScriptedStream(self, request, script)

    async def aclose(self) -> None:
        """Mark the provider closed (see :attr:`closed`). Idempotent."""
        self.closed = True


class _ScriptedStream:
    __slots__ = ("_ended", "_entered", "_index", "_owner", "_parts", "_request", "_script")

    def __init__(self, owner: ScriptedProvider, request: ProviderRequest, script: _Script) -> None:
        self._owner = owner
        self._request = request
        self._script = script
        self._index = 0
        self._parts: list[str] = []
        self._ended = False
        self._entered = False

    async def __aenter__(self) -> AsyncIterator[StreamEvent]:
        await anyio.lowlevel.checkpoint()
        if self._script and isinstance(self._script[0], BaseException):
            raise self._script[0]
        self._entered = True
        self._owner.open_streams += 1
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._entered:
            self._entered = False
            self._owner.open_streams -= 1
        self._ended = True

    def __aiter__(self) -> _ScriptedStream:
        return self

    async def __anext__(self) -> StreamEvent:
        while not self._ended:
            if self._index == len(self._script):
                self._ended = True
                return self._end(None)
            step = self._script[self._index]
            self._index += 1
            if isinstance(step, Pause):
                await anyio.sleep(step.seconds)
                continue
            await anyio.lowlevel.checkpoint()
            if isinstance(step, str):
                self._parts.append(step)
                return TextDelta(step)
            if isinstance(step, TextDelta):
                self._parts.append(step.text)
                return step
            self._ended = True
            if isinstance(step, BaseException):
                raise step
            if isinstance(step, StreamEnd):
                return step
            return self._end(step)
        raise StopAsyncIteration

    def _end(self, usage: Usage | None) -> StreamEnd:
        if usage is None:
            usage = Usage(
                input_tokens=estimate_request_tokens(self._request.messages),
                output_tokens=estimate_tokens("".join(self._parts)),
                source="estimated",
            )
        return StreamEnd(usage=usage, finish_reason="stop", model=self._request.model)

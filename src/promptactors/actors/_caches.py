"""Cache actors for prompts, actions and scoped variables, with single-flight reads.

Each cache is an actor that owns its entries. A hit is answered from the actor's state in
one ask round trip. A miss never makes the actor wait on the database: the store read runs
in a linked task (``start_soon``) and its outcome comes back to the actor as a message,
which settles every caller waiting on that key. Meanwhile the actor keeps answering hits.

Single-flight: however many callers miss the same key at once, exactly one store read
runs; the others join it. A failed read (``PromptNotFound``, ``StoreUnavailable``...) is
raised in every caller of that flight and is not cached: the next get reads again. A read
is bounded by ``read_timeout`` (then it fails with ``StoreUnavailable``), so a stuck
database cannot hold a key for ever.

Memory: prompts and actions are cached until invalidated (as the seed engine does), but
each cache holds at most ``max_entries`` entries and evicts the least recently used one
beyond that. Scoped variables also expire ``ttl`` seconds after their read began, measured
with ``anyio.current_time()`` (so trio's ``MockClock`` drives it); expired entries are
dropped when next looked up, not by a timer.

Values are shared between callers: treat them as read-only.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio

from .._exceptions import ActorDead, InvalidInput, StoreUnavailable
from ..kernel import DEFAULT_ASK_TIMEOUT, Actor, Reply, handler, reply_slot
from ..messages import PromptDefinition, PromptMessage, ScopedValues, VariableDefault
from ..messages._caches import (
    CacheStats,
    GetAction,
    GetCacheStats,
    GetPrompt,
    GetScopedVariables,
    InvalidateActions,
    InvalidatePrompts,
    InvalidateScopedVariables,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Hashable, Iterable

    from ..kernel import ActorRef
    from ..store import ActionRecord, PromptRecord, Store

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_SCOPED_TTL",
    "ActionCache",
    "ActionCacheClient",
    "PromptCache",
    "PromptCacheClient",
    "ScopedVariablesCache",
    "ScopedVariablesCacheClient",
    "prompt_definition_from_record",
]

#: Entries a cache holds before it evicts the least recently used one.
DEFAULT_MAX_ENTRIES = 10_000
#: Seconds a store read may take before its flight fails with ``StoreUnavailable``.
DEFAULT_READ_TIMEOUT = 30.0
#: Seconds a scoped-variables entry stays fresh (the seed's session cache: 5 minutes).
DEFAULT_SCOPED_TTL = 300.0

_SOURCES = ("prompts", "prompt_builtins")
_SOURCE_NAMES = ", ".join(_SOURCES)

V = TypeVar("V")


def prompt_definition_from_record(
    record: PromptRecord, source: Literal["prompts", "prompt_builtins"] = "prompts"
) -> PromptDefinition:
    """The engine's :class:`PromptDefinition` of a stored prompt.

    A declared variable's ``default_value`` becomes its default (None: no default, so a
    value must come from another layer). Raises ``InvalidInput``
    when the stored prompt is malformed (an unknown role, a bad variable name, a variable
    declared twice).
    """
    return PromptDefinition(
        id=record.id,
        name=record.name,
        source=source,
        messages=tuple(PromptMessage(role=m.role, content=m.content) for m in record.messages),
        variables=tuple(
            VariableDefault(name=v.name, default=v.default_value, help_text=v.help_text)
            for v in record.variable_defaults
        ),
        settings=dict(record.settings),
    )


# -- single-flight machinery ------------------------------------------------------------


class _Flight:
    """One store read in progress and the callers waiting for it."""

    __slots__ = ("key", "started_at", "waiters")

    def __init__(self, key: Hashable, started_at: float) -> None:
        self.key = key
        self.started_at = started_at
        self.waiters: list[Reply] = []

    def join(self) -> Reply:
        reply = reply_slot()
        self.waiters.append(reply)
        return reply

    def succeed(self, value: Any) -> None:
        waiters, self.waiters = self.waiters, []
        for reply in waiters:
            reply.set_result(value)

    def fail(self, error: BaseException) -> None:
        waiters, self.waiters = self.waiters, []
        for reply in waiters:
            reply.set_exception(error)


@dataclass(frozen=True, slots=True)
class _Pending:
    """The reply to a miss: the caller waits on its own slot of the flight."""

    reply: Reply
    what: str


@dataclass(frozen=True, slots=True)
class _Loaded:
    """A linked read reporting back to its cache actor (value, or the error it raised)."""

    flight: _Flight
    value: Any
    error: Exception | None


@dataclass(slots=True)
class _Entry:
    value: Any
    fetched_at: float


class _CacheActor(Actor[Any]):
    """What the three caches share: LRU entries, optional TTL, single-flight reads."""

    what = "entry"

    def __init__(
        self, store: Store, *, max_entries: int, ttl: float | None, read_timeout: float | None
    ) -> None:
        if not isinstance(max_entries, int) or max_entries < 1:
            raise InvalidInput(f"max_entries must be a positive integer, got {max_entries!r}")
        if ttl is not None and not ttl > 0:
            raise InvalidInput(f"ttl must be a positive number of seconds or None, got {ttl!r}")
        if read_timeout is not None and not read_timeout > 0:
            raise InvalidInput(
                f"read_timeout must be a positive number of seconds or None, got {read_timeout!r}"
            )
        self._store = store
        self._max_entries = max_entries
        self._ttl = ttl
        self._read_timeout = read_timeout
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._flights: dict[Hashable, _Flight] = {}
        self._hits = 0
        self._misses = 0
        self._reads = 0
        self._failures = 0
        self._evictions = 0

    def _get(
        self,
        key: Hashable,
        read: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        *,
        force: bool = False,
    ) -> Any:
        """The cached value of ``key``, or a ``_Pending`` slot of the (new or running) read."""
        entry = self._entries.get(key)
        now = anyio.current_time() if self._ttl is not None else 0.0
        if entry is not None and not force:
            if self._ttl is None or now - entry.fetched_at < self._ttl:
                self._entries.move_to_end(key)
                self._hits += 1
                return entry.value
            del self._entries[key]  # expired
        self._misses += 1
        flight = self._flights.get(key)
        if flight is None:
            # A forced get joins a running read too: it began after the entry it bypasses.
            flight = self._flights[key] = _Flight(key, now)
            self._reads += 1
            self.start_soon(self._read, flight, read, args)
        return _Pending(flight.join(), f"{self.what} {key!r}")

    async def _read(
        self, flight: _Flight, read: Callable[..., Awaitable[Any]], args: tuple[Any, ...]
    ) -> None:
        # Runs in a linked task: it must never raise, or it would crash the cache.
        delivered = False
        try:
            report: _Loaded | None = None
            # A read that never returns would hold its key for ever: bound it.
            with anyio.move_on_after(self._read_timeout or math.inf):
                try:
                    value = await read(*args)
                except Exception as exc:
                    report = _Loaded(flight, None, exc)
                else:
                    report = _Loaded(flight, value, None)
            if report is None:
                report = _Loaded(flight, None, self._timed_out(flight))
            await self.ref.tell(report)
            delivered = True
        except ActorDead:
            pass
        finally:
            if not delivered:  # cancelled or refused: nobody may wait for ever
                flight.fail(ActorDead(f"{self.name} stopped before reading {flight.key!r}"))

    def _timed_out(self, flight: _Flight) -> StoreUnavailable:
        return StoreUnavailable(
            f"{self.name}: reading {self.what} {flight.key!r} took more than {self._read_timeout}s"
        )

    @handler
    async def _loaded(self, message: _Loaded) -> None:
        flight = message.flight
        # Invalidated meanwhile (or a report to a previous incarnation): answer, don't keep.
        current = self._flights.get(flight.key) is flight
        if current:
            del self._flights[flight.key]
        if message.error is not None:
            self._failures += 1
            flight.fail(message.error)
            return
        if current:
            self._entries[flight.key] = _Entry(message.value, flight.started_at)
            self._entries.move_to_end(flight.key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
                self._evictions += 1
        flight.succeed(message.value)

    def _invalidate(self, matches: Callable[[Any], bool]) -> int:
        """Drop the entries (and detach the running reads) whose key ``matches``."""
        return self._invalidate_keys(
            [key for key in self._entries if matches(key)],
            [key for key in self._flights if matches(key)],
        )

    def _invalidate_keys(self, keys: Iterable[Hashable], flights: Iterable[Hashable] = ()) -> int:
        """Drop the entries and detach the running reads of these exact keys."""
        dropped = 0
        for key in keys:
            if self._entries.pop(key, None) is not None:
                dropped += 1
            # A read already running may return what was just invalidated: its callers get
            # it, but the cache does not keep it, and the next get starts a fresh read.
            self._flights.pop(key, None)
        for key in flights:
            self._flights.pop(key, None)
        return dropped

    @handler
    async def _stats(self, message: GetCacheStats) -> CacheStats:
        return CacheStats(
            hits=self._hits,
            misses=self._misses,
            store_reads=self._reads,
            failures=self._failures,
            evictions=self._evictions,
            entries=len(self._entries),
            in_flight=len(self._flights),
        )

    def _fail_flights(self) -> None:
        flights, self._flights = self._flights, {}
        for flight in flights.values():
            flight.fail(ActorDead(f"{self.name} stopped before reading {flight.key!r}"))

    async def on_stop(self) -> None:
        """Fails the callers of reads still running with ``ActorDead``. Never raises."""
        self._fail_flights()

    async def on_crash(self, error: BaseException) -> None:
        """Fails the callers of reads still running with ``ActorDead``. Never raises."""
        self._fail_flights()


class PromptCache(_CacheActor):
    """Caches prompts by (source, id) as :class:`PromptDefinition`; see the module doc.

    A read taking longer than ``read_timeout`` seconds fails its flight with
    ``StoreUnavailable``. Raises ``InvalidInput`` for ``max_entries`` below 1 or a
    ``read_timeout`` that is not positive.
    """

    what = "prompt"

    def __init__(
        self,
        store: Store,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        read_timeout: float | None = DEFAULT_READ_TIMEOUT,
    ) -> None:
        super().__init__(store, max_entries=max_entries, ttl=None, read_timeout=read_timeout)

    async def _read_prompt(
        self, prompt_id: str, source: Literal["prompts", "prompt_builtins"]
    ) -> PromptDefinition:
        record = await self._store.get_prompt(prompt_id, source)
        return prompt_definition_from_record(record, source)

    @handler
    async def get(self, message: GetPrompt) -> Any:
        key = (message.source, message.prompt_id)
        return self._get(key, self._read_prompt, (message.prompt_id, message.source))

    @handler
    async def invalidate(self, message: InvalidatePrompts) -> int:
        prompt_id, source = message.prompt_id, message.source
        if prompt_id is not None:  # exact keys: no scan
            sources = _SOURCES if source is None else (source,)
            return self._invalidate_keys((s, prompt_id) for s in sources)
        return self._invalidate(lambda key: source is None or key[0] == source)


class ActionCache(_CacheActor):
    """Caches prompt actions by id as the store's ``ActionRecord``; see the module doc.

    A read taking longer than ``read_timeout`` seconds fails its flight with
    ``StoreUnavailable``. Raises ``InvalidInput`` for ``max_entries`` below 1 or a
    ``read_timeout`` that is not positive.
    """

    what = "action"

    def __init__(
        self,
        store: Store,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        read_timeout: float | None = DEFAULT_READ_TIMEOUT,
    ) -> None:
        super().__init__(store, max_entries=max_entries, ttl=None, read_timeout=read_timeout)

    @handler
    async def get(self, message: GetAction) -> Any:
        return self._get(message.action_id, self._store.get_action, (message.action_id,))

    @handler
    async def invalidate(self, message: InvalidateActions) -> int:
        if message.action_id is not None:
            return self._invalidate_keys((message.action_id,))
        return self._invalidate(lambda key: True)


class ScopedVariablesCache(_CacheActor):
    """Caches the scoped variables of (user, org, project) contexts for ``ttl`` seconds.

    A read taking longer than ``read_timeout`` seconds fails its flight with
    ``StoreUnavailable``. Raises ``InvalidInput`` for ``max_entries`` below 1, or a ``ttl``
    or ``read_timeout`` that is not positive.
    """

    what = "scoped variables of"

    def __init__(
        self,
        store: Store,
        *,
        ttl: float = DEFAULT_SCOPED_TTL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        read_timeout: float | None = DEFAULT_READ_TIMEOUT,
    ) -> None:
        super().__init__(store, max_entries=max_entries, ttl=ttl, read_timeout=read_timeout)

    async def _read_scoped(
        self, user_id: str | None, org_id: str | None, project_id: str | None
    ) -> ScopedValues:
        found = await self._store.get_scoped_variables(user_id, org_id, project_id)
        return ScopedValues(user=found.user, org=found.org, project=found.project)

    @handler
    async def get(self, message: GetScopedVariables) -> Any:
        key = (message.user_id, message.org_id, message.project_id)
        return self._get(key, self._read_scoped, key, force=message.force)

    @handler
    async def invalidate(self, message: InvalidateScopedVariables) -> int:
        wanted = (message.user_id, message.org_id, message.project_id)
        return self._invalidate(
            lambda key: all(w is None or w == k for w, k in zip(wanted, key, strict=True))
        )


# -- clients ----------------------------------------------------------------------------


async def _ask_cache(ref: ActorRef[Any], message: object, timeout: float | None) -> Any:
    """Ask a cache; on a miss, wait for the read within what is left of ``timeout``.

    A cache that crashes fails the reads in flight with ``ActorDead`` and restarts (its
    reference stays valid): the ask is sent once more, to the next incarnation, within
    the same deadline. A second ``ActorDead``, or one from a cache stopped for good, is
    raised.
    """
    deadline = None if timeout is None else anyio.current_time() + timeout
    try:
        return await _ask_cache_once(ref, message, timeout, deadline)
    except ActorDead:
        if not ref.is_alive:
            raise
    return await _ask_cache_once(ref, message, timeout, deadline)


async def _ask_cache_once(
    ref: ActorRef[Any], message: object, timeout: float | None, deadline: float | None
) -> Any:
    left = None if deadline is None else max(0.0, deadline - anyio.current_time())
    result = await ref.ask(message, timeout=left)
    if type(result) is not _Pending:
        return result
    try:
        if deadline is None:
            return await result.reply.wait()
        remaining = max(0.0, deadline - anyio.current_time())
        return await result.reply.wait_for(
            remaining, lambda: f"{ref.name}: reading {result.what} took more than {timeout:g}s"
        )
    except Exception as exc:
        # One error object is raised in every caller of a flight; without this reset each
        # raise would prepend its frames to the same, ever longer, traceback.
        raise exc.with_traceback(None) from exc.__cause__


class _CacheClient:
    __slots__ = ("_ref", "_timeout")

    def __init__(self, ref: ActorRef[Any], *, timeout: float | None = DEFAULT_ASK_TIMEOUT) -> None:
        self._ref = ref
        self._timeout = timeout

    @property
    def ref(self) -> ActorRef[Any]:
        return self._ref

    async def stats(self) -> CacheStats:
        """The cache's counters. Raises ``AskTimeout`` or ``ActorDead``."""
        stats: CacheStats = await self._ref.ask(GetCacheStats(), timeout=self._timeout)
        return stats


class PromptCacheClient(_CacheClient):
    """Reads prompts through a :class:`PromptCache` actor.

    Every method raises ``AskTimeout`` when no answer comes within ``timeout`` seconds (a
    read included) and ``ActorDead`` when the cache is stopped.
    """

    __slots__ = ()

    async def get(
        self, prompt_id: str, source: Literal["prompts", "prompt_builtins"] = "prompts"
    ) -> PromptDefinition:
        """The prompt ``prompt_id`` of ``source``, read from the store on a miss.

        Raises ``PromptNotFound`` (not cached: the next call reads again), ``StoreError``
        when the read fails, ``InvalidInput`` for an unknown source or a malformed prompt.
        """
        if source not in _SOURCES:
            raise InvalidInput(f"prompt source must be one of {_SOURCE_NAMES}, got {source!r}")
        found: PromptDefinition = await _ask_cache(
            self._ref, GetPrompt(prompt_id, source), self._timeout
        )
        return found

    async def invalidate(self, prompt_id: str | None = None, source: str | None = None) -> int:
        """Forget ``prompt_id`` (in ``source``, or both sources), every prompt of ``source``,
        or everything when both are None. Returns how many entries were dropped.

        Raises ``InvalidInput`` for an unknown source.
        """
        if source is not None and source not in _SOURCES:
            raise InvalidInput(f"prompt source must be one of {_SOURCE_NAMES}, got {source!r}")
        dropped: int = await self._ref.ask(
            InvalidatePrompts(prompt_id, source),  # type: ignore[arg-type]  # checked above
            timeout=self._timeout,
        )
        return dropped


class ActionCacheClient(_CacheClient):
    """Reads prompt actions through an :class:`ActionCache` actor.

    Every method raises ``AskTimeout`` when no answer comes within ``timeout`` seconds (a
    read included) and ``ActorDead`` when the cache is stopped.
    """

    __slots__ = ()

    async def get(self, action_id: str) -> ActionRecord:
        """The action ``action_id``, read from the store on a miss.

        Raises ``ActionNotFound`` (not cached: the next call reads again) or ``StoreError``
        when the read fails.
        """
        found: ActionRecord = await _ask_cache(self._ref, GetAction(action_id), self._timeout)
        return found

    async def invalidate(self, action_id: str | None = None) -> int:
        """Forget ``action_id``, or every action when None. Returns how many were dropped."""
        dropped: int = await self._ref.ask(InvalidateActions(action_id), timeout=self._timeout)
        return dropped


class ScopedVariablesCacheClient(_CacheClient):
    """Reads scoped variables through a :class:`ScopedVariablesCache` actor.

    Every method raises ``AskTimeout`` when no answer comes within ``timeout`` seconds (a
    read included) and ``ActorDead`` when the cache is stopped.
    """

    __slots__ = ()

    async def get(
        self,
        user_id: str | None,
        org_id: str | None,
        project_id: str | None,
        *,
        force: bool = False,
    ) -> ScopedValues:
        """The user, org and project variables of a context (a None id: that scope is empty).

        Fresh for the cache's ``ttl`` after a read; ``force`` reads again (concurrent
        forced gets of one context still share one read). Raises ``StoreError`` when the
        read fails (not cached), ``InvalidInput`` for a stored variable name that is not a
        valid variable name.
        """
        found: ScopedValues = await _ask_cache(
            self._ref, GetScopedVariables(user_id, org_id, project_id, force), self._timeout
        )
        return found

    async def invalidate(
        self,
        user_id: str | None = None,
        org_id: str | None = None,
        project_id: str | None = None,
    ) -> int:
        """Forget every cached context matching all the ids given (after a scoped variable
        of that user, org or project changed); with no id, forget everything. Returns how
        many entries were dropped."""
        dropped: int = await self._ref.ask(
            InvalidateScopedVariables(user_id, org_id, project_id), timeout=self._timeout
        )
        return dropped

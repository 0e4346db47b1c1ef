"""The cache actors: single-flight reads, failures not cached, TTL, invalidation, LRU.

The stores are real (SQLite, and PostgreSQL for the contract tests); a counting proxy
around them counts reads and can hold a read until the test releases it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import trio
import trio.testing

from promptactors import (
    ActionNotFound,
    ActorDead,
    ActorRef,
    AskTimeout,
    InvalidInput,
    PromptNotFound,
    StoreUnavailable,
    spawn,
)
from promptactors.actors._caches import (
    ActionCache,
    ActionCacheClient,
    PromptCache,
    PromptCacheClient,
    ScopedVariablesCache,
    ScopedVariablesCacheClient,
)
from promptactors.messages import PromptDefinition, ScopedValues
from promptactors.store import (
    ActionRecord,
    PromptMessageRow,
    PromptRecord,
    Store,
    VariableDefaultRow,
    open_store,
)

TIMEOUT = 15
#: Virtual seconds bounding a MockClock test: above every TTL it sleeps through.
VIRTUAL_TIMEOUT = 3600


class CountingStore:
    """A real store behind a proxy that counts reads, can hold them, and can fail them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: Counter[str] = Counter()
        self.gate: anyio.Event | None = None
        self.fail_with: Exception | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def _enter(self, what: str) -> None:
        self.calls[what] += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with

    async def get_prompt(self, prompt_id: str, source: Any = "prompts") -> PromptRecord:
        await self._enter("get_prompt")
        return await self.store.get_prompt(prompt_id, source)

    async def get_action(self, action_id: str) -> ActionRecord:
        await self._enter("get_action")
        return await self.store.get_action(action_id)

    async def get_scoped_variables(
        self, user_id: str | None = None, org_id: str | None = None, project_id: str | None = None
    ) -> Any:
        await self._enter("get_scoped_variables")
        return await self.store.get_scoped_variables(user_id, org_id, project_id)


@pytest.fixture(params=["sqlite", "postgres"])
def cache_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database for the cache contract: SQLite, or PostgreSQL when reachable."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'caches.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def sqlite_cache_url(tmp_path: Path) -> str:
    """An empty SQLite database for the cache tests that need only one backend."""
    return f"sqlite:///{tmp_path / 'caches.db'}"


@pytest.fixture
def ttl_mock_clock() -> trio.testing.MockClock:
    """Virtual time that jumps after 0.1 s of real idleness.

    Not ``autojump_clock`` (threshold 0): the store reads on a worker thread, and a zero
    threshold would jump over pending deadlines while the thread works.
    """
    return trio.testing.MockClock(autojump_threshold=0.1)


PROMPT = PromptRecord(
    id="p1",
    name="Greeter",
    messages=(PromptMessageRow("system", "You greet."), PromptMessageRow("user", "Hi {{ name }}")),
    variable_defaults=(VariableDefaultRow("name", "World", "who to greet"),),
    settings={"model": "m-1", "temperature": 0.2},
)
ACTION = ActionRecord(
    id="a1",
    name="Brief",
    prompt_id="p1",
    broker_mappings={"name": "crm.client_name"},
    hardcoded_values={"tone": "dry"},
)


@asynccontextmanager
async def cache_on(
    url: str, make: Any, **options: Any
) -> AsyncIterator[tuple[CountingStore, ActorRef[Any]]]:
    """A migrated store at ``url`` holding PROMPT and ACTION, and a cache actor over it."""
    store = await open_store(url, migrate=True)
    try:
        await store.put_prompt(PROMPT)
        await store.put_prompt(PROMPT.__class__(id="b1", name="Builtin"), "prompt_builtins")
        await store.put_action(ACTION)
        counting = CountingStore(store)
        async with anyio.create_task_group() as tg:
            ref = await spawn(tg, make(counting, **options))
            try:
                yield counting, ref
            finally:
                await ref.stop()
    finally:
        await store.close()


# -- the contract, on both stores and both backends -----------------------------------------


@pytest.mark.anyio
async def test_a_thousand_concurrent_gets_of_one_uncached_prompt_cause_one_store_read(
    cache_store_url: str,
) -> None:
    """1,000 concurrent misses of one prompt share a single store read and its result."""
    n = 1000
    with anyio.fail_after(TIMEOUT):
        async with cache_on(cache_store_url, PromptCache) as (store, ref):
            cache = PromptCacheClient(ref, timeout=TIMEOUT)
            store.gate = anyio.Event()
            results: list[PromptDefinition | None] = [None] * n
            sent = [0]
            all_sent = anyio.Event()

            async def getter(i: int) -> None:
                sent[0] += 1
                if sent[0] == n:
                    all_sent.set()
                results[i] = await cache.get("p1")  # enqueued before this task first yields

            async with anyio.create_task_group() as tg:
                for i in range(n):
                    tg.start_soon(getter, i)
                await all_sent.wait()
                stats = await cache.stats()  # FIFO: every get was handled before this
                assert (stats.misses, stats.store_reads, stats.in_flight) == (n, 1, 1)
                store.gate.set()

            assert store.calls["get_prompt"] == 1
            first = results[0]
            assert first is not None
            assert first.id == "p1"
            assert all(r is first for r in results)
            stats = await cache.stats()
            assert (stats.store_reads, stats.entries, stats.in_flight) == (1, 1, 0)


@pytest.mark.anyio
async def test_a_failed_read_reaches_every_waiter_and_is_not_cached(cache_store_url: str) -> None:
    """Every caller of a flight that hits PromptNotFound gets it; the next get reads again."""
    n = 50
    with anyio.fail_after(TIMEOUT):
        async with cache_on(cache_store_url, PromptCache) as (store, ref):
            cache = PromptCacheClient(ref, timeout=TIMEOUT)
            store.gate = anyio.Event()
            errors: list[BaseException] = []

            async def getter() -> None:
                try:
                    await cache.get("missing")
                except PromptNotFound as exc:
                    errors.append(exc)

            async with anyio.create_task_group() as tg:
                for _ in range(n):
                    tg.start_soon(getter)
                while (await cache.stats()).misses < n:
                    await anyio.lowlevel.checkpoint()
                store.gate.set()

            assert len(errors) == n
            assert all("missing" in str(e) for e in errors)
            stats = await cache.stats()
            assert (stats.store_reads, stats.failures, stats.entries) == (1, 1, 0)
            with pytest.raises(PromptNotFound):
                await cache.get("missing")
            assert store.calls["get_prompt"] == 2


@pytest.mark.anyio
async def test_cached_prompt_is_served_without_another_read(cache_store_url: str) -> None:
    """After one read, gets of the same prompt are hits; the other source is its own key."""
    with anyio.fail_after(TIMEOUT):
        async with cache_on(cache_store_url, PromptCache) as (_, ref):
            cache = PromptCacheClient(ref, timeout=TIMEOUT)
            first = await cache.get("p1")
            assert await cache.get("p1") is first
            builtin = await cache.get("b1", "prompt_builtins")
            assert builtin.source == "prompt_builtins"
            with pytest.raises(PromptNotFound):
                await cache.get("p1", "prompt_builtins")
            stats = await cache.stats()
            assert (stats.hits, stats.store_reads, stats.entries) == (1, 3, 2)


# -- behaviour, on SQLite and both backends -----------------------------------------------------


@pytest.mark.anyio
async def test_store_unavailable_reaches_every_waiter_and_a_later_get_recovers(
    sqlite_cache_url: str,
) -> None:
    """A database that is down fails the whole flight; once it is back, the get succeeds."""
    with anyio.fail_after(TIMEOUT):
        async with cache_on(sqlite_cache_url, ActionCache) as (store, ref):
            cache = ActionCacheClient(ref, timeout=TIMEOUT)
            store.gate = anyio.Event()
            store.fail_with = StoreUnavailable("database is down")
            failures: list[str] = []

            async def getter() -> None:
                with pytest.raises(StoreUnavailable) as info:
                    await cache.get("a1")
                failures.append(str(info.value))

            async with anyio.create_task_group() as tg:
                for _ in range(10):
                    tg.start_soon(getter)
                while (await cache.stats()).misses < 10:
                    await anyio.lowlevel.checkpoint()
                store.gate.set()
            assert failures == ["database is down"] * 10

            store.fail_with = None
            assert await cache.get("a1") == ACTION
            assert store.calls["get_action"] == 2


@pytest.mark.anyio
async def test_a_hit_is_answered_while_another_key_is_being_read(sqlite_cache_url: str) -> None:
    """A slow read of one key does not hold up a hit on another."""
    with anyio.fail_after(TIMEOUT):
        async with cache_on(sqlite_cache_url, PromptCache) as (store, ref):
            cache = PromptCacheClient(ref, timeout=TIMEOUT)
            await cache.get("p1")
            store.gate = anyio.Event()
            done = anyio.Event()

            async def slow() -> None:
                with pytest.raises(PromptNotFound):
                    await cache.get("other")
                done.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(slow)
                assert (await cache.get("p1")).id == "p1"
                assert not done.is_set()
                assert (await cache.stats()).in_flight == 1
                store.gate.set()


@pytest.mark.anyio
async def test_action_cache_single_flight_and_not_found(sqlite_cache_url: str) -> None:
    """Concurrent gets of one action cost one read; an unknown action raises ActionNotFound."""
    with anyio.fail_after(TIMEOUT):
        async with cache_on(sqlite_cache_url, ActionCache) as (store, ref):
            cache = ActionCacheClient(ref, timeout=TIMEOUT)
            found: list[ActionRecord] = []

            async def getter() -> None:
                found.append(await cache.get("a1"))

            async with anyio.create_task_group() as tg:
                for _ in range(100):
                    tg.start_soon(getter)
            assert found == [ACTION] * 100
            assert store.calls["get_action"] == 1
            with pytest.raises(ActionNotFound, match="nope"):
                await cache.get("nope")
            with pytest.raises(ActionNotFound):
                await cache.get("nope")
            assert store.calls["get_action"] == 3


@pytest.mark.anyio
async def test_invalidating_prompts_by_id_source_or_all(sqlite_cache_url: str) -> None:
    """Invalidation drops one prompt, one source, or everything; the next get reads again."""
    with anyio.fail_after(TIMEOUT):
        async with cache_on(sqlite_cache_url, PromptCache) as (store, ref):
            cache = PromptCacheClient(ref, timeout=TIMEOUT)
            await cache.get("p1")
            await cache.get("b1", "prompt_builtins")
            assert await cache.invalidate("p1") == 1
            assert (await cache.stats()).entries == 1
            await store.put_prompt(PromptRecord(id="p1", name="Renamed"))
            assert (await cache.get("p1")).name == "Renamed"
            assert await cache.invalidate(source="prompt_builtins") == 1
            assert await cache.invalidate() == 1
            assert (await cache.stats()).entries == 0
            with pytest.raises(InvalidInput, match="source"):
                await cache.invalidate(source="elsewhere")
            assert store.calls["get_prompt"] == 3


@pytest.mark.anyio
async def test_invalidating_actions(sqlite_cache_url: str) -> None:
    """An invalidated action is read again; invalidating everything empties the cache."""
    with anyio.fail_after(TIMEOUT):
        async with cache_on(sqlite_cache_url, ActionCache) as (store, ref):
            cache = ActionCacheClient(ref, timeout=TIMEOUT)
            await cache.get("a1")
            assert await cache.invalidate("a1") == 1
            assert await cache.invalidate("a1") == 0
            await cache.get("a1")
            assert await cache.invalidate() == 1
            assert store.calls["get_action"] == 2


@pytest.mark.anyio
async def test_a_read_invalidated_while_in_flight_answers_its_callers_but_is_not_kept(
    sqlite_cache_url: str,
) -> None:
    """Callers of a flight invalidated mid-read get its result; the cache reads afresh after."""
    with anyio.fail_after(TIMEOUT):
        async with cache_on(sqlite_cache_url, PromptCache) as (store, ref):
            cache = PromptCacheClient(ref, timeout=TIMEOUT)
            store.gate = anyio.Event()
            got: list[PromptDefinition] = []

            async def getter() -> None:
                got.append(await cache.get("p1"))

            async with anyio.create_task_group() as tg:
                tg.start_soon(getter)
                while (await cache.stats()).in_flight < 1:
                    await anyio.lowlevel.checkpoint()
                assert await cache.invalidate("p1") == 0
                store.gate.set()
            assert [g.id for g in got] == ["p1"]
            assert (await cache.stats()).entries == 0
            await cache.get("p1")
            assert store.calls["get_prompt"] == 2


@pytest.mark.anyio
async def test_lru_bound_evicts_the_least_recently_used_entry(sqlite_cache_url: str) -> None:
    """With max_entries=2, a third prompt evicts the one used longest ago."""
    with anyio.fail_after(TIMEOUT):
        async with cache_on(sqlite_cache_url, PromptCache, max_entries=2) as (store, ref):
            for pid in ("x1", "x2", "x3"):
                await store.put_prompt(PromptRecord(id=pid, name=pid))
            cache = PromptCacheClient(ref, timeout=TIMEOUT)
            await cache.get("x1")
            await cache.get("x2")
            await cache.get("x1")  # x1 is now the most recently used
            await cache.get("x3")  # evicts x2
            stats = await cache.stats()
            assert (stats.entries, stats.evictions, stats.store_reads) == (2, 1, 3)
            await cache.get("x1")
            assert store.calls["get_prompt"] == 3
            await cache.get("x2")
            assert store.calls["get_prompt"] == 4


@pytest.mark.anyio
async def test_stopping_the_cache_fails_callers_of_a_running_read(sqlite_cache_url: str) -> None:
    """A cache stopped mid-read answers its waiting callers with ActorDead, never a hang."""
    with anyio.fail_after(TIMEOUT):
        async with cache_on(sqlite_cache_url, PromptCache) as (store, ref):
            cache = PromptCacheClient(ref, timeout=TIMEOUT)
            store.gate = anyio.Event()
            errors: list[BaseException] = []

            async def getter() -> None:
                try:
                    await cache.get("p1")
                except ActorDead as exc:
                    errors.append(exc)

            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(getter)
                while (await cache.stats()).misses < 3:
                    await anyio.lowlevel.checkpoint()
                await ref.stop()
            assert len(errors) == 3
            with pytest.raises(ActorDead):
                await cache.get("p1")


@pytest.mark.anyio
async def test_a_read_slower_than_the_client_timeout_raises_ask_timeout(
    sqlite_cache_url: str,
) -> None:
    """The client's timeout bounds the wait for a read, not only the ask."""
    with anyio.fail_after(TIMEOUT):
        async with cache_on(sqlite_cache_url, PromptCache) as (store, ref):
            store.gate = anyio.Event()
            with pytest.raises(AskTimeout, match="prompt"):
                await PromptCacheClient(ref, timeout=0.05).get("p1")
            store.gate.set()
            assert (await PromptCacheClient(ref, timeout=TIMEOUT).get("p1")).id == "p1"
            assert store.calls["get_prompt"] == 1


@pytest.mark.anyio
async def test_a_stuck_read_fails_its_flight_after_the_read_timeout(sqlite_cache_url: str) -> None:
    """A read past read_timeout fails every waiter with StoreUnavailable; the key reads again."""
    with anyio.fail_after(TIMEOUT):
        async with cache_on(sqlite_cache_url, ActionCache, read_timeout=0.05) as (store, ref):
            cache = ActionCacheClient(ref, timeout=TIMEOUT)
            store.gate = anyio.Event()
            errors: list[str] = []

            async def getter() -> None:
                with pytest.raises(StoreUnavailable) as info:
                    await cache.get("a1")
                errors.append(str(info.value))

            async with anyio.create_task_group() as tg:
                tg.start_soon(getter)
                tg.start_soon(getter)
            assert len(errors) == 2
            assert "took more than 0.05s" in errors[0]
            store.gate.set()
            assert await cache.get("a1") == ACTION
            assert (await cache.stats()).failures == 1


# -- scoped variables: TTL and force under trio's MockClock ------------------------------------


async def _scoped_store(url: str) -> Store:
    store = await open_store(url, migrate=True)
    await store.set_scoped_variable("user", "u1", "user_name", "Ada")
    await store.set_scoped_variable("org", "o1", "org_name", "Acme")
    await store.set_scoped_variable("project", "pr1", "project_name", "Apollo")
    return store


@asynccontextmanager
async def scoped_cache(
    url: str, **options: Any
) -> AsyncIterator[tuple[CountingStore, ScopedVariablesCacheClient]]:
    store = await _scoped_store(url)
    try:
        counting = CountingStore(store)
        async with anyio.create_task_group() as tg:
            ref = await spawn(tg, ScopedVariablesCache(counting, **options))
            try:
                yield counting, ScopedVariablesCacheClient(ref, timeout=TIMEOUT)
            finally:
                await ref.stop()
    finally:
        await store.close()


@pytest.mark.trio
async def test_scoped_variables_expire_after_their_ttl(
    ttl_mock_clock: trio.testing.MockClock, sqlite_cache_url: str
) -> None:
    """A context's variables are served from the cache for 5 minutes, then read again."""
    with trio.fail_after(VIRTUAL_TIMEOUT):
        async with scoped_cache(sqlite_cache_url) as (store, cache):
            values = await cache.get("u1", "o1", "pr1")
            assert values == ScopedValues(
                user={"user_name": "Ada"},
                org={"org_name": "Acme"},
                project={"project_name": "Apollo"},
            )
            await trio.sleep(299)
            assert await cache.get("u1", "o1", "pr1") is values
            assert store.calls["get_scoped_variables"] == 1
            await store.set_scoped_variable("user", "u1", "user_name", "Grace")
            await trio.sleep(2)
            fresh = await cache.get("u1", "o1", "pr1")
            assert fresh.user == {"user_name": "Grace"}
            assert store.calls["get_scoped_variables"] == 2


@pytest.mark.trio
async def test_force_rereads_and_concurrent_forced_gets_share_one_read(
    ttl_mock_clock: trio.testing.MockClock, sqlite_cache_url: str
) -> None:
    """force=True bypasses a fresh entry; forced gets running together cost one read."""
    with trio.fail_after(VIRTUAL_TIMEOUT):
        async with scoped_cache(sqlite_cache_url) as (store, cache):
            await cache.get("u1", None, None)
            await store.set_scoped_variable("user", "u1", "user_name", "Grace")
            assert (await cache.get("u1", None, None)).user == {"user_name": "Ada"}
            store.gate = anyio.Event()
            got: list[ScopedValues] = []

            async def forced() -> None:
                got.append(await cache.get("u1", None, None, force=True))

            async with trio.open_nursery() as nursery:
                for _ in range(20):
                    nursery.start_soon(forced)
                while (await cache.stats()).misses < 21:
                    await trio.lowlevel.checkpoint()
                store.gate.set()
            assert [g.user for g in got] == [{"user_name": "Grace"}] * 20
            assert store.calls["get_scoped_variables"] == 2
            assert (await cache.get("u1", None, None)).user == {"user_name": "Grace"}
            assert store.calls["get_scoped_variables"] == 2


@pytest.mark.trio
async def test_a_forced_read_restarts_the_ttl(
    ttl_mock_clock: trio.testing.MockClock, sqlite_cache_url: str
) -> None:
    """The entry a forced get reads is fresh for a full TTL from then on."""
    with trio.fail_after(VIRTUAL_TIMEOUT):
        async with scoped_cache(sqlite_cache_url, ttl=60.0) as (store, cache):
            await cache.get("u1", None, None)
            await trio.sleep(50)
            await cache.get("u1", None, None, force=True)
            await trio.sleep(50)
            await cache.get("u1", None, None)
            assert store.calls["get_scoped_variables"] == 2
            await trio.sleep(11)
            await cache.get("u1", None, None)
            assert store.calls["get_scoped_variables"] == 3


@pytest.mark.anyio
async def test_invalidating_scoped_variables_by_any_id(sqlite_cache_url: str) -> None:
    """Invalidation drops the contexts matching every id given; none given drops all."""
    with anyio.fail_after(TIMEOUT):
        async with scoped_cache(sqlite_cache_url) as (store, cache):
            await cache.get("u1", "o1", None)
            await cache.get("u2", "o1", None)
            await cache.get("u1", None, "pr1")
            assert await cache.invalidate(org_id="o1") == 2
            assert await cache.invalidate(user_id="u1", project_id="pr2") == 0
            assert await cache.invalidate(user_id="u1") == 1
            await cache.get("u1", "o1", None)
            assert await cache.invalidate() == 1
            assert store.calls["get_scoped_variables"] == 4

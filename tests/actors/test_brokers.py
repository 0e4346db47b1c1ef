"""Broker resolution: concurrent, store reads batched, failures named, optional skips."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
import trio
import trio.testing

from promptactors import BrokerError, InvalidInput, StoreUnavailable
from promptactors.actors._brokers import (
    BatchBroker,
    Broker,
    BrokerContext,
    BrokerRegistry,
    BrokerResolution,
    StoreBroker,
    resolve_brokers,
)
from promptactors.store import Store, open_store

TIMEOUT = 15
CONTEXT = BrokerContext(user_id="u1", org_id="ws1", project_id="pr1")


class StaticBroker:
    """Answers from a dict; counts its calls."""

    def __init__(self, values: Mapping[str, str | None]) -> None:
        self.values = dict(values)
        self.calls: list[str] = []

    async def resolve(self, broker_id: str, context: BrokerContext) -> str | None:
        self.calls.append(broker_id)
        return self.values.get(broker_id)


class FailingBroker:
    async def resolve(self, broker_id: str, context: BrokerContext) -> str | None:
        raise RuntimeError(f"upstream refused {broker_id}")


class StuckBroker:
    async def resolve(self, broker_id: str, context: BrokerContext) -> str | None:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


class CountingStore:
    """A real store whose broker reads are counted."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.broker_reads: list[tuple[list[str], dict[str, str]]] = []

    async def get_broker_values(
        self, broker_ids: Sequence[str], context: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        self.broker_reads.append((list(broker_ids), dict(context or {})))
        return await self.store.get_broker_values(broker_ids, context)


@pytest.fixture(params=["sqlite", "postgres"])
def broker_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database for the store-backed broker: SQLite, or PostgreSQL when reachable."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'brokers.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.mark.anyio
async def test_store_backed_brokers_resolve_in_one_store_read(broker_store_url: str) -> None:
    """Many variables fed by database-kept values cost one store read, most specific scope wins."""
    with anyio.fail_after(TIMEOUT):
        store = await open_store(broker_store_url, migrate=True)
        try:
            await store.put_broker_value("workspace_name", "Acme", scope_kind="org", scope_id="ws1")
            await store.put_broker_value("project_name", "Global default")
            await store.put_broker_value(
                "project_name", "Apollo", scope_kind="project", scope_id="pr1"
            )
            await store.put_broker_value(
                "client_name", "Initech", scope_kind="client", scope_id="c9"
            )
            await store.put_broker_value("tone", "dry")
            counting = CountingStore(store)
            registry = BrokerRegistry(default=StoreBroker(counting))  # type: ignore[arg-type]
            context = BrokerContext(
                user_id="u1", org_id="ws1", project_id="pr1", extra={"client": "c9"}
            )
            result = await resolve_brokers(
                {
                    "workspace_name": "workspace_name",
                    "project_name": "project_name",
                    "client_name": "client_name",
                    "tone": "tone",
                    "voice": "tone",
                },
                context,
                registry,
            )
        finally:
            await store.close()
    assert result == BrokerResolution(
        values={
            "client_name": "Initech",
            "project_name": "Apollo",
            "tone": "dry",
            "voice": "dry",
            "workspace_name": "Acme",
        },
        resolved_count=5,
        skipped=(),
    )
    assert len(counting.broker_reads) == 1
    ids, scopes = counting.broker_reads[0]
    assert sorted(ids) == ["client_name", "project_name", "tone", "workspace_name"]
    assert list(scopes) == ["client", "project", "org", "user"]


@pytest.mark.anyio
async def test_mapped_brokers_resolve_concurrently() -> None:
    """Two brokers that each wait for the other to start both finish: they run together."""
    started = {"a": anyio.Event(), "b": anyio.Event()}

    class Rendezvous:
        async def resolve(self, broker_id: str, context: BrokerContext) -> str | None:
            started[broker_id].set()
            await started["b" if broker_id == "a" else "a"].wait()
            return broker_id.upper()

    registry = BrokerRegistry()
    registry.register("a", Rendezvous())
    registry.register("b", Rendezvous())
    with anyio.fail_after(TIMEOUT):
        result = await resolve_brokers({"x": "a", "y": "b"}, CONTEXT, registry)
    assert result.values == {"x": "A", "y": "B"}


@pytest.mark.anyio
async def test_a_failing_required_broker_raises_broker_error_naming_it() -> None:
    """A broker that raises fails the resolution with BrokerError naming broker and variable."""
    registry = BrokerRegistry(default=StaticBroker({"ok": "fine"}))
    registry.register("crm.client", FailingBroker())
    with anyio.fail_after(TIMEOUT), pytest.raises(BrokerError) as info:
        await resolve_brokers({"client_name": "crm.client", "other": "ok"}, CONTEXT, registry)
    assert info.value.broker_id == "crm.client"
    assert info.value.variable == "client_name"
    assert "upstream refused crm.client" in str(info.value)


@pytest.mark.anyio
async def test_several_failures_name_the_first_variable_and_count_the_others() -> None:
    """Several failed required variables: the error names the first by name, counts the rest."""
    registry = BrokerRegistry(default=StaticBroker({}))
    registry.register("bad.*", FailingBroker())
    with anyio.fail_after(TIMEOUT), pytest.raises(BrokerError) as info:
        await resolve_brokers(
            {"zeta": "bad.z", "alpha": "bad.a", "mid": "absent"}, CONTEXT, registry
        )
    assert (info.value.variable, info.value.broker_id) == ("alpha", "bad.a")
    assert "2 more" in str(info.value)
    assert "mid, zeta" in str(info.value)


@pytest.mark.anyio
async def test_a_required_variable_without_a_value_raises_broker_error() -> None:
    """A broker answering None for a required variable is a failure that says so."""
    registry = BrokerRegistry(default=StaticBroker({"known": None}))
    with anyio.fail_after(TIMEOUT), pytest.raises(BrokerError, match="no value") as info:
        await resolve_brokers({"name": "known"}, CONTEXT, registry)
    assert (info.value.variable, info.value.broker_id) == ("name", "known")


@pytest.mark.anyio
async def test_optional_variables_whose_broker_fails_or_has_no_value_are_skipped() -> None:
    """Optional variables are left out and listed when their broker fails or has nothing."""
    registry = BrokerRegistry(default=StaticBroker({"ok": "fine", "empty": None}))
    registry.register("bad", FailingBroker())
    with anyio.fail_after(TIMEOUT):
        result = await resolve_brokers(
            {"a": "ok", "b": "bad", "c": "empty"},
            CONTEXT,
            registry,
            optional=frozenset({"b", "c"}),
        )
    assert result == BrokerResolution(values={"a": "fine"}, resolved_count=1, skipped=("b", "c"))


@pytest.mark.anyio
async def test_a_store_that_is_down_fails_every_variable_it_feeds() -> None:
    """A failed batch read fails each variable mapped to it; the error names the first one."""

    class DownStore:
        async def get_broker_values(self, *args: Any) -> dict[str, str]:
            raise StoreUnavailable("database is down")

    registry = BrokerRegistry(default=StoreBroker(DownStore()))  # type: ignore[arg-type]
    with anyio.fail_after(TIMEOUT), pytest.raises(BrokerError, match="database is down") as info:
        await resolve_brokers({"b": "x", "a": "y"}, CONTEXT, registry)
    assert (info.value.variable, info.value.broker_id) == ("a", "y")


@pytest.mark.trio
async def test_a_broker_that_does_not_answer_in_time_raises_broker_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A broker still running at the deadline fails its required variable with a timeout."""
    registry = BrokerRegistry(default=StaticBroker({"ok": "fine"}))
    registry.register("slow", StuckBroker())
    with pytest.raises(BrokerError, match=r"within 10s") as info:
        await resolve_brokers({"late": "slow", "on_time": "ok"}, CONTEXT, registry)
    assert (info.value.variable, info.value.broker_id) == ("late", "slow")
    assert trio.current_time() == pytest.approx(10.0)


@pytest.mark.trio
async def test_an_optional_broker_that_times_out_is_skipped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The deadline skips an optional stuck broker and keeps what the others resolved."""
    registry = BrokerRegistry(default=StaticBroker({"ok": "fine"}))
    registry.register("slow", StuckBroker())
    result = await resolve_brokers(
        {"late": "slow", "on_time": "ok"},
        CONTEXT,
        registry,
        optional=frozenset({"late"}),
        timeout=2.5,
    )
    assert result == BrokerResolution(
        values={"on_time": "fine"}, resolved_count=1, skipped=("late",)
    )
    assert trio.current_time() == pytest.approx(2.5)


@pytest.mark.anyio
async def test_a_broker_id_mapped_by_several_variables_is_resolved_once() -> None:
    """Two variables fed by one broker id cost one resolve call and share its value."""
    broker = StaticBroker({"crm.name": "Initech"})
    registry = BrokerRegistry(default=broker)
    with anyio.fail_after(TIMEOUT):
        result = await resolve_brokers({"a": "crm.name", "b": "crm.name"}, CONTEXT, registry)
    assert result.values == {"a": "Initech", "b": "Initech"}
    assert broker.calls == ["crm.name"]


def test_registry_routes_exact_ids_then_longest_prefix_then_default() -> None:
    """An exact id beats prefixes, a longer prefix beats a shorter one, the rest go to default."""
    default, crm, crm_deep, exact = (StaticBroker({}) for _ in range(4))
    registry = BrokerRegistry(default=default)
    registry.register("crm.*", crm)
    registry.register("crm.deep.*", crm_deep)
    registry.register("crm.deep.name", exact)
    assert registry.lookup("crm.deep.name") is exact
    assert registry.lookup("crm.deep.other") is crm_deep
    assert registry.lookup("crm.x") is crm
    assert registry.lookup("weather") is default
    registry.unregister("crm.deep.*")
    assert registry.lookup("crm.deep.other") is crm
    assert BrokerRegistry().lookup("anything") is None


@pytest.mark.anyio
async def test_an_id_no_broker_claims_raises_broker_error() -> None:
    """Without a default broker, an unclaimed id fails its variable with a clear reason."""
    with anyio.fail_after(TIMEOUT), pytest.raises(BrokerError, match="no broker is registered"):
        await resolve_brokers({"v": "nobody"}, CONTEXT, BrokerRegistry())


@pytest.mark.anyio
async def test_no_mappings_resolve_to_nothing() -> None:
    """An action without broker mappings resolves nothing and touches no broker."""
    result = await resolve_brokers({}, CONTEXT, BrokerRegistry())
    assert result == BrokerResolution(values={}, resolved_count=0, skipped=())


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("mappings", "timeout"),
    [({"": "b"}, 10.0), ({"v": ""}, 10.0), ({"v": "b"}, 0.0)],
)
async def test_bad_mappings_or_timeout_raise_invalid_input(
    mappings: dict[str, str], timeout: float
) -> None:
    """Empty names or ids and a non-positive timeout are refused before anything runs."""
    with pytest.raises(InvalidInput):
        await resolve_brokers(mappings, CONTEXT, BrokerRegistry(), timeout=timeout)


def test_registering_something_that_is_not_a_broker_raises_invalid_input() -> None:
    """The registry refuses an empty pattern and an object without resolve()."""
    registry = BrokerRegistry()
    with pytest.raises(InvalidInput):
        registry.register("", StaticBroker({}))
    with pytest.raises(InvalidInput, match="not a broker"):
        registry.register("x", object())  # type: ignore[arg-type]


def test_store_broker_is_a_batch_broker_and_context_lists_scopes_most_specific_first() -> None:
    """StoreBroker batches; the context maps extra kinds, project, org, user in that order."""
    assert isinstance(StoreBroker(object()), BatchBroker)  # type: ignore[arg-type]
    assert isinstance(StaticBroker({}), Broker)
    assert not isinstance(StaticBroker({}), BatchBroker)
    context = BrokerContext(user_id="u", org_id=None, project_id="p", extra={"doc": "d1"})
    assert list(context.scope_ids().items()) == [("doc", "d1"), ("project", "p"), ("user", "u")]

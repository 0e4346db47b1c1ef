"""The registry actor: instances indexed by instance id, prompt id and run id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from promptactors import Actor, ActorRef, InstanceNotFound, InvalidInput, handler, spawn
from promptactors.actors._registry import InstanceRegistryClient, instance_registry_actor

pytestmark = pytest.mark.anyio

TIMEOUT = 5


@dataclass(frozen=True)
class Ping:
    pass


class Dummy(Actor[Ping]):
    """Stands for an execution instance: only its reference matters here."""

    @handler
    async def ping(self, message: Ping) -> str:
        return "pong"


@asynccontextmanager
async def registry_with_instances(
    n: int,
) -> AsyncIterator[tuple[InstanceRegistryClient, list[ActorRef[Any]]]]:
    """A running registry and ``n`` running dummy instances, all stopped afterwards."""
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            registry = await spawn(tg, instance_registry_actor())
            refs = [await spawn(tg, Dummy()) for _ in range(n)]
            try:
                yield InstanceRegistryClient(registry, timeout=TIMEOUT), refs
            finally:
                everyone: list[ActorRef[Any]] = [registry, *refs]
                for ref in everyone:
                    await ref.stop()


async def test_registered_instance_is_found_by_id_prompt_and_run() -> None:
    """An instance registered with a run is found by its id, its prompt and its run."""
    async with registry_with_instances(1) as (registry, [ref]):
        await registry.register("i1", "p1", ref, run_id="r1")
        assert await registry.get("i1") == ref
        assert await registry.by_prompt("p1") == ["i1"]
        assert await registry.by_run("r1") == "i1"
        assert await registry.all() == ["i1"]
        assert await registry.count() == 1


async def test_prompt_index_lists_many_instances_in_registration_order() -> None:
    """Several instances of one prompt are listed in the order they registered."""
    async with registry_with_instances(3) as (registry, refs):
        for i, ref in enumerate(refs):
            await registry.register(f"i{i}", "shared", ref)
        await registry.register("other", "p2", refs[0])
        assert await registry.by_prompt("shared") == ["i0", "i1", "i2"]
        assert await registry.by_prompt("p2") == ["other"]
        assert await registry.by_prompt("nobody") == []
        assert await registry.count() == 4


async def test_unknown_instance_raises_instance_not_found_naming_it() -> None:
    """Looking up an id nobody registered raises InstanceNotFound with that id."""
    async with registry_with_instances(0) as (registry, _):
        with pytest.raises(InstanceNotFound, match="ghost") as info:
            await registry.get("ghost")
        assert info.value.key == "ghost"
        assert await registry.by_run("no-run") is None


async def test_re_registering_replaces_the_ref_and_keeps_the_run_link() -> None:
    """A restarted incarnation re-registers: same ids, new reference, run link kept."""
    async with registry_with_instances(2) as (registry, [old, new]):
        await registry.register("i1", "p1", old, run_id="r1")
        await registry.register("i1", "p1", new)
        assert await registry.get("i1") == new
        assert await registry.by_prompt("p1") == ["i1"]
        assert await registry.by_run("r1") == "i1"
        assert await registry.count() == 1


async def test_unregister_drops_every_index_entry_and_is_idempotent() -> None:
    """Unregistering removes the instance from the id, prompt and run indexes; twice is fine."""
    async with registry_with_instances(2) as (registry, [a, b]):
        await registry.register("a", "p1", a, run_id="ra")
        await registry.register("b", "p1", b)
        await registry.unregister("a")
        await registry.unregister("a")
        with pytest.raises(InstanceNotFound):
            await registry.get("a")
        assert await registry.by_prompt("p1") == ["b"]
        assert await registry.by_run("ra") is None
        assert await registry.all() == ["b"]
        await registry.unregister("b")
        assert await registry.by_prompt("p1") == []
        assert await registry.count() == 0


async def test_link_run_indexes_the_run_and_replaces_the_previous_link() -> None:
    """Linking a run makes it findable; linking another run to the same instance moves it."""
    async with registry_with_instances(1) as (registry, [ref]):
        await registry.register("i1", "p1", ref)
        await registry.link_run("i1", "r1")
        assert await registry.by_run("r1") == "i1"
        await registry.link_run("i1", "r1")  # idempotent
        await registry.link_run("i1", "r2")
        assert await registry.by_run("r2") == "i1"
        assert await registry.by_run("r1") is None


async def test_link_run_of_an_unknown_instance_raises_instance_not_found() -> None:
    """A run cannot be linked to an instance that is not registered."""
    async with registry_with_instances(0) as (registry, _):
        with pytest.raises(InstanceNotFound, match="ghost"):
            await registry.link_run("ghost", "r1")
        assert await registry.by_run("r1") is None


async def test_a_run_linked_to_another_live_instance_is_refused() -> None:
    """One run belongs to one instance: linking or registering it elsewhere is InvalidInput."""
    async with registry_with_instances(2) as (registry, [a, b]):
        await registry.register("a", "p1", a, run_id="r1")
        await registry.register("b", "p1", b)
        with pytest.raises(InvalidInput, match=r"'r1'.*'a'"):
            await registry.link_run("b", "r1")
        with pytest.raises(InvalidInput, match="r1"):
            await registry.register("c", "p1", b, run_id="r1")
        assert await registry.by_run("r1") == "a"
        assert await registry.all() == ["a", "b"]
        await registry.unregister("a")
        await registry.link_run("b", "r1")  # free again once its instance is gone
        assert await registry.by_run("r1") == "b"


async def test_re_registering_under_another_prompt_moves_the_prompt_index() -> None:
    """An instance registered again with a new prompt id leaves the old prompt's list."""
    async with registry_with_instances(1) as (registry, [ref]):
        await registry.register("i1", "p1", ref)
        await registry.register("i1", "p2", ref)
        assert await registry.by_prompt("p1") == []
        assert await registry.by_prompt("p2") == ["i1"]


async def test_a_stopped_instance_is_not_returned_and_prune_drops_it() -> None:
    """get raises InstanceNotFound for an instance whose actor stopped; prune sweeps the rest."""
    async with registry_with_instances(3) as (registry, [a, b, c]):
        await registry.register("a", "p1", a, run_id="ra")
        await registry.register("b", "p1", b)
        await registry.register("c", "p1", c)
        await a.stop()
        await b.stop()
        with pytest.raises(InstanceNotFound, match="stopped"):
            await registry.get("a")
        assert await registry.by_run("ra") is None
        assert await registry.prune() == ["b"]
        assert await registry.all() == ["c"]


async def test_a_run_held_by_a_stopped_instance_can_be_linked_again() -> None:
    """A run whose instance's actor stopped for good is free for another instance."""
    async with registry_with_instances(2) as (registry, [old, new]):
        await registry.register("old", "p1", old, run_id="r1")
        await old.stop()
        await registry.register("new", "p1", new, run_id="r1")
        assert await registry.by_run("r1") == "new"
        assert await registry.all() == ["new"]

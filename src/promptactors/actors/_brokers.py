"""Brokers: pluggable async resolvers of action variables for a context.

An action maps variable names to broker ids. :func:`resolve_brokers` resolves every mapped
broker for one context concurrently, in one task group, under one deadline. A broker that
can resolve many ids at once (:class:`BatchBroker`, such as the store-backed
:class:`StoreBroker`) gets all of its ids in one call, so the database-kept values of an
action cost one store read however many variables they feed.

Precedence between brokers and the other variable layers is not decided here: the
instance applies it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio

from .._exceptions import BrokerError, InvalidInput

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ..store import Store

__all__ = [
    "BatchBroker",
    "Broker",
    "BrokerContext",
    "BrokerRegistry",
    "BrokerResolution",
    "StoreBroker",
    "resolve_brokers",
]


@dataclass(frozen=True, slots=True)
class BrokerContext:
    """Who and where an action runs for: the ids brokers resolve against.

    ``org_id`` is the seed's ``workspaceId``. ``extra`` carries any other ids (a client, a
    document...) by kind; for the store those kinds are more specific than the project.
    """

    user_id: str | None = None
    org_id: str | None = None
    project_id: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> BrokerContext:
        """A context from plain data: ``user_id``, ``org_id``, ``project_id``, and any other
        ids (kept as text in ``extra``). The seed's ``workspace_id`` is taken as the
        ``org_id`` when no ``org_id`` is given.
        """
        values = dict(data)
        # The seed's context names the organisation a workspace.
        if "workspace_id" in values and "org_id" not in values:
            values["org_id"] = values.pop("workspace_id")
        known = {"user_id", "org_id", "project_id"}
        extra = {k: str(v) for k, v in values.items() if k not in known}
        return cls(**{k: values.get(k) for k in known}, extra=extra)

    def scope_ids(self) -> dict[str, str]:
        """The context as ``{scope kind: id}``, most specific first (extra kinds, then
        project, org, user); kinds without an id are left out."""
        named = {"project": self.project_id, "org": self.org_id, "user": self.user_id}
        scopes = {kind: value for kind, value in self.extra.items() if kind not in named}
        scopes.update({kind: value for kind, value in named.items() if value is not None})
        return scopes


@runtime_checkable
class Broker(Protocol):
    """Resolves one broker id for a context: its value, or None when it has none.

    Raising means the broker failed (the error's text becomes the ``BrokerError`` reason).
    """

    async def resolve(self, broker_id: str, context: BrokerContext) -> str | None: ...


@runtime_checkable
class BatchBroker(Broker, Protocol):
    """A broker that also resolves many ids in one call (one round trip).

    ``resolve_many`` returns ``{broker_id: value}``; an id without a value is absent.
    """

    async def resolve_many(
        self, broker_ids: Sequence[str], context: BrokerContext
    ) -> Mapping[str, str]: ...


class StoreBroker:
    """Resolves broker ids from values kept in the database (``store.get_broker_values``).

    The most specific scope of the context wins (see the store protocol). Many ids cost
    one store read. Raises what the store raises (``StoreUnavailable``...).
    """

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    async def resolve(self, broker_id: str, context: BrokerContext) -> str | None:
        found = await self.resolve_many((broker_id,), context)
        return found.get(broker_id)

    async def resolve_many(
        self, broker_ids: Sequence[str], context: BrokerContext
    ) -> Mapping[str, str]:
        return await self._store.get_broker_values(broker_ids, context.scope_ids())


class BrokerRegistry:
    """Which broker resolves which broker id.

    ``register("crm.client_name", broker)`` claims one id; a pattern ending in ``*``
    (``"crm.*"``) claims every id with that prefix. An exact id wins over prefixes, a
    longer prefix over a shorter one, and ids nobody claimed go to ``default`` (usually a
    :class:`StoreBroker`).
    """

    __slots__ = ("_exact", "_prefixes", "default")

    def __init__(self, default: Broker | None = None) -> None:
        self.default = default
        self._exact: dict[str, Broker] = {}
        self._prefixes: dict[str, Broker] = {}

    def register(self, broker_id_or_prefix: str, broker: Broker) -> None:
        """Route an id (or, ending in ``*``, a prefix) to ``broker``, replacing any earlier
        route. Raises ``InvalidInput`` for an empty pattern or an object with no
        ``resolve`` coroutine method."""
        if not isinstance(broker_id_or_prefix, str) or not broker_id_or_prefix:
            raise InvalidInput(
                f"a broker id or prefix must be a non-empty string, got {broker_id_or_prefix!r}"
            )
        if not isinstance(broker, Broker):
            raise InvalidInput(f"{broker!r} is not a broker: it has no resolve() method")
        if broker_id_or_prefix.endswith("*"):
            self._prefixes[broker_id_or_prefix[:-1]] = broker
        else:
            self._exact[broker_id_or_prefix] = broker

    def unregister(self, broker_id_or_prefix: str) -> None:
        """Remove a route (idempotent)."""
        if broker_id_or_prefix.endswith("*"):
            self._prefixes.pop(broker_id_or_prefix[:-1], None)
        else:
            self._exact.pop(broker_id_or_prefix, None)

    def lookup(self, broker_id: str) -> Broker | None:
        """The broker for ``broker_id``, or None when nothing (not even a default) claims it."""
        found = self._exact.get(broker_id)
        if found is not None:
            return found
        best = -1
        for prefix, broker in self._prefixes.items():
            if len(prefix) > best and broker_id.startswith(prefix):
                found, best = broker, len(prefix)
        return found if found is not None else self.default


@dataclass(frozen=True, slots=True)
class BrokerResolution:
    """What brokers resolved: ``values`` by variable name, how many, and the optional
    variables left out (their broker failed or had no value), sorted by name."""

    values: dict[str, str]
    resolved_count: int
    skipped: tuple[str, ...] = ()


async def resolve_brokers(
    mappings: Mapping[str, str],
    context: BrokerContext,
    registry: BrokerRegistry,
    *,
    optional: frozenset[str] = frozenset(),
    timeout: float = 10.0,
) -> BrokerResolution:
    """Resolve every ``{variable: broker_id}`` mapping for ``context``, concurrently.

    Each distinct broker id is resolved once; a :class:`BatchBroker` gets all of its ids in
    one call. Everything runs under one deadline of ``timeout`` seconds. A variable in
    ``optional`` whose broker fails, times out or has no value is skipped (and listed).

    Raises ``BrokerError(broker_id, variable, reason)`` for a required variable whose
    broker failed, timed out, had no value or is unknown — for the first such variable by
    name, the reason counting the others. Raises ``InvalidInput`` for an empty variable
    name or broker id, or a timeout that is not positive.
    """
    if not timeout > 0:
        raise InvalidInput(f"broker timeout must be a positive number of seconds, got {timeout!r}")
    for variable, broker_id in mappings.items():
        if not isinstance(variable, str) or not variable:
            raise InvalidInput(f"a broker mapping names an empty variable: {variable!r}")
        if not isinstance(broker_id, str) or not broker_id:
            raise InvalidInput(f"variable {variable!r} is mapped to an empty broker id")

    # Group the distinct broker ids by the broker that resolves them.
    routes: dict[int, tuple[Broker, list[str]]] = {}
    failed: dict[str, str] = {}  # broker id -> reason
    for broker_id in dict.fromkeys(mappings.values()):
        broker = registry.lookup(broker_id)
        if broker is None:
            failed[broker_id] = "no broker is registered for this id"
            continue
        routes.setdefault(id(broker), (broker, []))[1].append(broker_id)

    found: dict[str, str] = {}  # broker id -> value
    answered: set[str] = set()  # broker ids whose broker answered, value or not

    async def run_batch(broker: BatchBroker, ids: list[str]) -> None:
        try:
            values = await broker.resolve_many(ids, context)
        except Exception as exc:
            for broker_id in ids:
                failed[broker_id] = _reason(exc)
        else:
            answered.update(ids)
            for broker_id in ids:
                value = values.get(broker_id)
                if value is not None:
                    found[broker_id] = value

    async def run_one(broker: Broker, broker_id: str) -> None:
        try:
            value = await broker.resolve(broker_id, context)
        except Exception as exc:
            failed[broker_id] = _reason(exc)
        else:
            answered.add(broker_id)
            if value is not None:
                found[broker_id] = value

    with anyio.move_on_after(timeout) as scope:
        async with anyio.create_task_group() as tg:
            for broker, ids in routes.values():
                if isinstance(broker, BatchBroker):
                    tg.start_soon(run_batch, broker, ids)
                else:
                    for broker_id in ids:
                        tg.start_soon(run_one, broker, broker_id)
    timed_out = scope.cancelled_caught

    values: dict[str, str] = {}
    skipped: list[str] = []
    errors: list[tuple[str, str, str]] = []  # (variable, broker id, reason)
    for variable, broker_id in sorted(mappings.items()):
        if broker_id in found:
            values[variable] = found[broker_id]
            continue
        if broker_id in failed:
            reason = failed[broker_id]
        elif timed_out and broker_id not in answered:
            reason = f"no answer within {timeout:g}s"
        else:
            reason = "it has no value for this context"
        if variable in optional:
            skipped.append(variable)
        else:
            errors.append((variable, broker_id, reason))
    if errors:
        variable, broker_id, reason = errors[0]
        if len(errors) > 1:
            others = ", ".join(v for v, _, _ in errors[1:])
            reason += f" (and {len(errors) - 1} more required variable(s) failed: {others})"
        raise BrokerError(broker_id, variable, reason)
    return BrokerResolution(values=values, resolved_count=len(values), skipped=tuple(skipped))


def _reason(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

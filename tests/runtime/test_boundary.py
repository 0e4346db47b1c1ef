"""What the runtime's public surface takes from callers, and how seed-shaped input maps."""

from __future__ import annotations

import inspect

from promptactors import BrokerContext, Runtime


def test_start_instance_shows_only_public_parameters() -> None:
    """Callers see no private keyword arguments: actions start instances another way."""
    parameters = inspect.signature(Runtime.start_instance).parameters
    assert [name for name in parameters if name.startswith("_")] == []


def test_a_seed_context_names_the_organisation_a_workspace() -> None:
    """``workspace_id`` becomes ``org_id``; other ids are kept, as text, in ``extra``."""
    context = BrokerContext.from_mapping({"user_id": "u1", "workspace_id": "o1", "client": 7})
    assert context == BrokerContext(user_id="u1", org_id="o1", extra={"client": "7"})


def test_an_explicit_org_id_wins_over_a_workspace_id() -> None:
    """Given both, ``org_id`` is the organisation and ``workspace_id`` an extra id."""
    context = BrokerContext.from_mapping({"org_id": "o1", "workspace_id": "w1"})
    assert context.org_id == "o1"
    assert context.extra == {"workspace_id": "w1"}

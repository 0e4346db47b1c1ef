"""Fixtures of the state tests: an instance at each step of a turn."""

from __future__ import annotations

import pytest

from promptactors.messages import PromptDefinition
from promptactors.state import InstanceState

from ._helpers import make_prompt, make_ready, start_turn, stream


@pytest.fixture
def prompt() -> PromptDefinition:
    """A prompt with a system and a user template, one defaulted and one required variable."""
    return make_prompt()


@pytest.fixture
def ready(prompt: PromptDefinition) -> InstanceState:
    """An instance in status ready with every variable it needs."""
    return make_ready(prompt, text="the report")


@pytest.fixture
def streaming(ready: InstanceState) -> InstanceState:
    """An instance streaming its first turn, ``Hello world`` received so far."""
    return stream(start_turn(ready), "Hello ", "world")

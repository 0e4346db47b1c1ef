"""Variable layers, their precedence, and the computed variables.

Precedence, highest first; every value keeps the layer it came from:

1. computed: ``current_date``, ``current_time``, ``current_datetime`` (UTC)
2. user values
3. action hardcoded values
4. broker-resolved values
5. scoped values: project, then org, then user
6. prompt defaults
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from promptactors.messages import (
    ExecutionVariables,
    PromptDefinition,
    VariableExplanation,
    VariableSource,
    VariableValue,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "COMPUTED_VARIABLES",
    "computed_variables",
    "explain_variable_layers",
    "merge_variables",
    "variable_layers",
]

COMPUTED_VARIABLES = ("current_date", "current_time", "current_datetime")
"""The names :func:`computed_variables` provides."""


def computed_variables(now: datetime) -> dict[str, str]:
    """The computed variables at ``now``, in UTC (a naive ``now`` is taken as UTC).

    ``{"current_date": "2024-01-15", "current_time": "14:30:00",
    "current_datetime": "2024-01-15T14:30:00.000Z"}``
    """
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    return {
        "current_date": now.strftime("%Y-%m-%d"),
        "current_time": now.strftime("%H:%M:%S"),
        "current_datetime": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
    }


def variable_layers(
    variables: ExecutionVariables, prompt: PromptDefinition
) -> tuple[tuple[VariableSource, Mapping[str, str]], ...]:
    """Every layer with its values, highest precedence first."""
    scoped = variables.scoped_values
    return (
        (VariableSource.COMPUTED, variables.computed_values),
        (VariableSource.USER, variables.user_values),
        (VariableSource.ACTION, variables.action_values),
        (VariableSource.BROKER, variables.broker_values),
        (VariableSource.SCOPED_PROJECT, scoped.project),
        (VariableSource.SCOPED_ORG, scoped.org),
        (VariableSource.SCOPED_USER, scoped.user),
        (VariableSource.DEFAULT, prompt.defaults()),
    )


def merge_variables(variables: ExecutionVariables, prompt: PromptDefinition) -> dict[str, str]:
    """One value per variable: the one from the highest layer that has it."""
    merged: dict[str, str] = {}
    for _, values in reversed(variable_layers(variables, prompt)):
        merged.update(values)
    return merged


def explain_variable_layers(
    variables: ExecutionVariables, prompt: PromptDefinition
) -> tuple[VariableExplanation, ...]:
    """For each variable (sorted by name): its value, the layer it came from, and the
    values of lower layers it shadows."""
    found: dict[str, list[VariableValue]] = {}
    for source, values in variable_layers(variables, prompt):
        for name, value in values.items():
            found.setdefault(name, []).append(VariableValue(source=source, value=value))
    return tuple(
        VariableExplanation(
            name=name,
            value=candidates[0].value,
            source=candidates[0].source,
            shadowed=tuple(candidates[1:]),
        )
        for name, candidates in sorted(found.items())
    )

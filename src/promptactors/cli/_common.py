"""Options and helpers the commands share."""

from __future__ import annotations

import difflib
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio
import typer
from pydantic import ValidationError

from .. import ConfigurationError, InvalidInput, NotFound, RuntimeSettings, load_prompt_file
from ..providers import EndpointConfig
from ..state import find_variables

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping

    from .. import InstanceHandle, PromptDefinition, Runtime
    from ..store import PromptSource

T = TypeVar("T")

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        "-d",
        help="Database URL (default: PROMPTACTORS_DATABASE_URL or ./promptactors.db).",
    ),
]
ProviderOption = Annotated[str | None, typer.Option("--provider", help="Provider name.")]
ModelOption = Annotated[str | None, typer.Option("--model", help="Model name.")]
TokensOption = Annotated[
    int | None, typer.Option("--tokens", help="Simulated provider: tokens per answer.")
]
LatencyOption = Annotated[
    float | None, typer.Option("--latency", help="Simulated provider: seconds between tokens.")
]

PromptArgument = Annotated[
    str,
    typer.Argument(metavar="PROMPT", help="A prompt file (.yaml/.json) or a stored prompt id."),
]
VarOption = Annotated[
    list[str] | None,
    typer.Option("--var", "-v", metavar="NAME=VALUE", help="A variable (repeatable)."),
]
BuiltinOption = Annotated[
    bool, typer.Option("--builtin", help="Read a stored prompt from prompt_builtins.")
]

# The global --config FILE, set by the root callback before any command runs.
_config_file: ContextVar[Path | None] = ContextVar("config_file", default=None)


def use_config_file(path: Path | None) -> None:
    """Read settings from ``path`` (the global ``--config``) instead of the usual file."""
    _config_file.set(path)


def settings_from(**flags: Any) -> RuntimeSettings:
    """Runtime settings: the command's flags > ``PROMPTACTORS_*`` > config file > defaults.

    A command that runs prompts (it passes ``provider``) also has its endpoints checked
    and a model refused with the simulated provider, which has none. Raises
    ``ConfigurationError`` in one line naming the flag, variable or file key at fault.
    """
    settings = RuntimeSettings.load(_config_file.get(), **flags)
    if "provider" in flags:
        _check_endpoints(settings)
        _check_model(settings)
    return settings


def _check_endpoints(settings: RuntimeSettings) -> None:
    for name, config in settings.endpoints.items():
        try:
            EndpointConfig.model_validate(config)
        except ValidationError as exc:
            problems = "; ".join(_problem(error) for error in exc.errors())
            source = settings.source_of("endpoints")
            raise ConfigurationError(f"{source}: endpoints.{name}: {problems}") from exc


def _problem(error: Any) -> str:
    loc = ".".join(str(part) for part in error.get("loc", ()))
    if error.get("type") == "extra_forbidden":
        close = difflib.get_close_matches(loc, list(EndpointConfig.model_fields), n=1)
        return f"unknown key {loc!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    return f"{loc}: {error.get('msg', 'invalid')}"


def _check_model(settings: RuntimeSettings) -> None:
    if settings.provider != "simulated" or settings.model in (None, "simulated"):
        return
    source = settings.source_of("model")
    source = "--model" if source == "the command line" else source
    endpoints = ", ".join(settings.endpoints) or "none configured"
    raise ConfigurationError(
        f"model {settings.model!r} (from {source}) needs a real provider: the simulated "
        f"provider has no models; choose one with --provider (endpoints: {endpoints})"
    )


def parse_vars(pairs: list[str] | None) -> dict[str, str]:
    """``name=value`` pairs from ``--var`` options."""
    values: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(f"--var {pair!r}: write it as name=value")
        values[name.strip()] = value
    return values


def check_vars(
    values: Mapping[str, str], prompt_id: str, texts: Iterable[str], declared: Iterable[str]
) -> None:
    """Refuse ``--var`` names the prompt neither declares nor uses in its ``texts``."""
    known = list(dict.fromkeys([*declared, *(name for t in texts for name in find_variables(t))]))
    unknown = [name for name in values if name not in known]
    if not unknown:
        return
    problems = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(f"--var {name!r}: prompt {prompt_id!r} has no such variable{hint}")
    raise InvalidInput(f"{'; '.join(problems)}; its variables: {', '.join(known) or 'none'}")


def prompt_file(prompt: str) -> PromptDefinition | None:
    """The definition in ``prompt`` if it names a prompt file (.yaml/.yml/.json), else None
    (it is then a stored prompt's id)."""
    path = Path(prompt)
    return load_prompt_file(path) if path.suffix in (".yaml", ".yml", ".json") else None


async def start_prompt(
    rt: Runtime,
    prompt: str,
    definition: PromptDefinition | None,
    *,
    builtin: bool,
    variables: Mapping[str, str],
    **options: Any,
) -> InstanceHandle:
    """Start an instance of a prompt file's ``definition`` or of the stored prompt ``prompt``,
    refusing ``--var`` names the prompt does not know (``InvalidInput``)."""
    source: PromptSource = "prompt_builtins" if builtin else "prompts"
    if definition is not None:
        texts = [m.content for m in definition.messages]
        check_vars(variables, definition.id, texts, [v.name for v in definition.variables])
    else:
        try:
            stored = await rt.store.get_prompt(prompt, source)
        except NotFound:
            pass  # start_instance says which prompt is missing
        else:
            texts = [m.content for m in stored.messages]
            check_vars(variables, prompt, texts, [v.name for v in stored.variable_defaults])
    return await rt.start_instance(
        None if definition else prompt,
        prompt=definition,
        source=source,
        variables=variables,
        **options,
    )


def run_async(fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``fn`` on trio, the CLI's backend."""
    return anyio.run(fn, backend="trio")

"""``promptactors run``: execute one prompt and stream the answer."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .. import InvalidInput, open_runtime
from ._common import (
    BuiltinOption,
    DatabaseOption,
    LatencyOption,
    ModelOption,
    PromptArgument,
    ProviderOption,
    TokensOption,
    VarOption,
    parse_vars,
    prompt_file,
    run_async,
    settings_from,
    start_prompt,
)

_err = Console(stderr=True)


def run(
    prompt: PromptArgument,
    var: VarOption = None,
    user_input: Annotated[
        str | None,
        typer.Option(
            "--input",
            "-i",
            metavar="TEXT|@FILE|-",
            help="User input appended to the prompt: the text, @FILE for a file's content, "
            "- for stdin.",
        ),
    ] = None,
    builtin: BuiltinOption = False,
    no_track: Annotated[bool, typer.Option("--no-track", help="Do not record the run.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    database: DatabaseOption = None,
    provider: ProviderOption = None,
    model: ModelOption = None,
    tokens: TokensOption = None,
    latency: LatencyOption = None,
) -> None:
    """Execute a prompt once and stream the answer to the terminal."""
    variables = parse_vars(var)
    user_input = read_input(user_input)
    settings = settings_from(
        database_url=database,
        provider=provider,
        model=model,
        simulated_tokens=tokens,
        simulated_latency=latency,
    )
    definition = prompt_file(prompt)

    async def main() -> None:
        async with open_runtime(settings) as rt:
            handle = await start_prompt(
                rt,
                prompt,
                definition,
                builtin=builtin,
                variables=variables,
                execution_config={"track_in_runs": not no_track},
            )
            if as_json:
                result = await handle.execute(user_input)
            else:
                async with handle.stream(user_input) as turn:
                    attempt = 1
                    async for chunk in turn:
                        if chunk.attempt != attempt:
                            attempt = chunk.attempt
                            sys.stdout.write(f"\n[retrying, attempt {attempt}]\n")
                        sys.stdout.write(chunk.text)
                        sys.stdout.flush()
                    result = await turn.result()
                sys.stdout.write("\n")
            await handle.stop()
        if as_json:
            typer.echo(json.dumps(_result_dict(result), indent=2))
        else:
            ttft = f"{result.time_to_first_token:.3f}s" if result.time_to_first_token else "-"
            total = f"{result.total_time:.3f}s" if result.total_time else "-"
            cost = f"${result.cost:.6f}" if result.cost is not None else "unpriced"
            _err.print(
                f"[dim]{result.output_tokens} tokens · first token {ttft} · total {total} · "
                f"{cost} · run {result.run_id or 'not tracked'}[/]",
                highlight=False,
                soft_wrap=True,
            )

    run_async(main)


def read_input(value: str | None) -> str | None:
    """``--input``'s text: as given, the content of ``@FILE``, or stdin for ``-``.

    Raises ``InvalidInput`` naming a file that cannot be read.
    """
    if value == "-":
        return sys.stdin.read()
    if value is None or not value.startswith("@"):
        return value
    path = Path(value[1:])
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InvalidInput(f"--input: file '{path}' does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"--input: cannot read '{path}': {exc}") from exc


def _result_dict(result: object) -> dict[str, object]:
    from dataclasses import asdict, is_dataclass

    assert is_dataclass(result)
    assert not isinstance(result, type)
    return asdict(result)

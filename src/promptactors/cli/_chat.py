"""``promptactors chat``: a multi-turn conversation with one instance, streamed in a terminal.

Each line typed is a turn; lines starting with ``/`` are commands (``/help``). The instance
lives as long as the chat: ``/quit``, end of input (Ctrl-D) or Ctrl-C stop it, and stopping
it ends its run (``completed``, or ``failed`` after a failed last turn), so a chat never
leaves a run ``running``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import anyio
import typer
from rich.console import Console

from .. import MissingVariables, PromptActorsError, open_runtime
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
from ._output import seconds

if TYPE_CHECKING:
    from .. import InstanceHandle

_err = Console(stderr=True)

HELP = """\
commands:
  /set NAME=VALUE  set a variable (for the next turns)
  /stats           tokens, cost and timings of this chat so far
  /help            this help
  /quit            end the chat (so do Ctrl-D and Ctrl-C)
anything else is sent as your next message; an empty first line runs the prompt as it is"""


def _read_line(prompt: str) -> str | None:
    """One line from stdin, or None at its end. Runs in a worker thread."""
    try:
        return input(prompt)
    except EOFError:
        return None


async def _ask(prompt: str) -> str | None:
    # A thread, so the runtime (heartbeats of the run, the instance) runs while we wait.
    return await anyio.to_thread.run_sync(_read_line, prompt, abandon_on_cancel=True)


async def _turn(handle: InstanceHandle, text: str | None) -> str | None:
    """Stream one turn to stdout; return its run id. Errors of the turn are printed."""
    try:
        async with handle.stream(text) as turn:
            attempt = 1
            async for chunk in turn:
                if chunk.attempt != attempt:
                    attempt = chunk.attempt
                    sys.stdout.write(f"\n[retrying, attempt {attempt}]\n")
                sys.stdout.write(chunk.text)
                sys.stdout.flush()
            result = await turn.result()
    except PromptActorsError as exc:
        sys.stdout.write("\n")
        hint = " (set them with /set NAME=VALUE)" if isinstance(exc, MissingVariables) else ""
        _err.print(f"[bold red]error:[/] {exc}{hint}", highlight=False, soft_wrap=True)
        return None
    sys.stdout.write("\n")
    sys.stdout.flush()
    return result.run_id


async def _command(handle: InstanceHandle, line: str) -> bool:
    """Run a ``/`` command; return False when the chat should end."""
    name, _, rest = line[1:].partition(" ")
    if name in ("quit", "exit", "q"):
        return False
    if name == "help":
        _err.print(HELP, highlight=False, markup=False)
    elif name == "set":
        try:
            values = parse_vars(rest.split()) if rest.strip() else {}
            if not values:
                _err.print("usage: /set NAME=VALUE", highlight=False)
                return True
            await handle.update_variables(values)
        except PromptActorsError as exc:
            _err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        else:
            _err.print("set " + ", ".join(values), highlight=False)
    elif name == "stats":
        stats = await handle.stats()
        cost = f"${stats.cost:.6f}"
        _err.print(
            f"{stats.executions} turns ({stats.completed} completed, {stats.failed} failed) · "
            f"{stats.input_tokens} in / {stats.output_tokens} out tokens · {cost} · "
            f"last TTFT {seconds(stats.last_time_to_first_token)} · "
            f"last total {seconds(stats.last_total_time)} · "
            f"{stats.message_count} messages",
            highlight=False,
            soft_wrap=True,
        )
    else:
        _err.print(f"unknown command /{name}: try /help", highlight=False)
    return True


def chat(
    prompt: PromptArgument,
    var: VarOption = None,
    run_id: Annotated[
        str | None,
        typer.Option("--run-id", metavar="RUN_ID", help="Continue this run's conversation."),
    ] = None,
    builtin: BuiltinOption = False,
    database: DatabaseOption = None,
    provider: ProviderOption = None,
    model: ModelOption = None,
    tokens: TokensOption = None,
    latency: LatencyOption = None,
) -> None:
    """Talk with a prompt, turn after turn, answers streamed (/help inside for commands)."""
    variables = parse_vars(var)
    settings = settings_from(
        database_url=database,
        provider=provider,
        model=model,
        simulated_tokens=tokens,
        simulated_latency=latency,
    )
    definition = prompt_file(prompt)
    if sys.stdin.isatty():
        import readline  # noqa: F401  (line editing and history for input())

    async def main() -> None:
        async with open_runtime(settings) as rt:
            handle = await start_prompt(
                rt, prompt, definition, builtin=builtin, variables=variables, run_id=run_id
            )
            run = run_id
            try:
                _err.print(
                    f"[dim]chat with {prompt}"
                    + (f", run {run}" if run else "")
                    + " · /help for commands, /quit or Ctrl-D to end[/]",
                    highlight=False,
                    soft_wrap=True,
                )
                turns = 0
                while True:
                    line = await _ask("> ")
                    if line is None:
                        sys.stdout.write("\n")
                        break
                    line = line.strip()
                    if line.startswith("/"):
                        if not await _command(handle, line):
                            break
                        continue
                    if not line and turns:
                        continue
                    turns += 1
                    run = await _turn(handle, line or None) or run
            finally:
                with anyio.CancelScope(shield=True):
                    await handle.stop()
            if run:
                _err.print(f"[dim]run {run}[/]", highlight=False, soft_wrap=True)

    run_async(main)

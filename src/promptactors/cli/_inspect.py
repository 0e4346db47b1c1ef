"""``runs``, ``tasks``, ``prompts``, ``recover``, ``instances``: look inside the database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .. import InvalidInput, open_runtime
from ..store import PromptRecord, PromptSource, RunRecord, TaskRecord, open_store
from ._common import DatabaseOption, run_async, settings_from
from ._db import add_prompt
from ._help import Command, Group
from ._output import (
    JsonOption,
    LimitOption,
    existing_database,
    print_json,
    seconds,
    to_data,
    when,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ..store import Store

_out = Console()
# Compact: full ids must fit in 80 columns, to be copied into `show`.
TABLE: dict[str, Any] = {"box": None, "padding": (0, 1, 0, 0), "header_style": "bold underline"}
STATUSES = ("running", "completed", "failed", "interrupted")

runs_app = typer.Typer(cls=Group, help="Runs: the tracked conversations.", no_args_is_help=True)
tasks_app = typer.Typer(cls=Group, help="Tasks: one model call each.", no_args_is_help=True)
prompts_app = typer.Typer(cls=Group, help="Stored prompts.", no_args_is_help=True)

StatusOption = Annotated[
    str | None,
    typer.Option(
        "--status", "-s", metavar="STATUS", help=f"Only this status: {', '.join(STATUSES)}."
    ),
]
BuiltinOption = Annotated[
    bool, typer.Option("--builtin", help="The prompt_builtins table instead of prompts.")
]


def _read(database: str | None, read: Callable[[Store], Awaitable[Any]]) -> Any:
    """Open the database (without migrating it) and read something from it."""
    url = existing_database(settings_from(database_url=database).database_url)

    async def main() -> Any:
        async with await open_store(url) as store:
            return await read(store)

    return run_async(main)


def _status(status: str | None) -> Any:
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"--status {status!r}: choose one of {', '.join(STATUSES)}")
    return status


def _positive(limit: int) -> int:
    if limit < 1:
        raise InvalidInput(f"--limit must be at least 1, got {limit}")
    return limit


def _cost(value: float | None) -> str:
    return "-" if value is None else f"${value:.4g}"


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


# -- runs ----------------------------------------------------------------------------------


@runs_app.command("list", cls=Command)
def runs_list(
    status: StatusOption = None,
    prompt: Annotated[
        str | None, typer.Option("--prompt", "-p", metavar="PROMPT_ID", help="Only this prompt.")
    ] = None,
    limit: LimitOption = 20,
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """List runs, newest first."""
    wanted, _ = _status(status), _positive(limit)
    runs: list[RunRecord] = _read(
        database, lambda store: store.list_runs(status=wanted, prompt_id=prompt, limit=limit)
    )
    if as_json:
        print_json(runs)
        return
    table = Table(title=f"runs ({len(runs)})", title_justify="left", **TABLE)
    table.add_column("id", no_wrap=True)
    for column in ("status", "prompt", "tokens", "created"):
        table.add_column(column, justify="right" if column == "tokens" else "left", no_wrap=True)
    for run in runs:
        table.add_row(
            run.id,
            run.status,
            run.prompt_id or "-",
            str(run.stats.total_tokens),
            when(run.created_at, short=True),
        )
    _out.print(table)


@runs_app.command("show", cls=Command)
def runs_show(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """One run: its fields, totals, conversation and tasks."""

    async def read(store: Store) -> tuple[RunRecord, list[TaskRecord]]:
        return await store.get_run(run_id), await store.list_tasks(run_id)

    run, tasks = _read(database, read)
    if as_json:
        print_json({**to_data(run), "tasks": tasks})
        return
    stats = run.stats
    _out.print(f"[bold]run {run.id}[/]  {run.status}", highlight=False)
    for label, value in (
        ("prompt", f"{run.prompt_id or '-'} ({run.prompt_source})"),
        ("name", run.name or "-"),
        ("instance", run.instance_id or "-"),
        ("executor", run.executor_id or "-"),
        ("created", when(run.created_at)),
        ("updated", when(run.updated_at)),
        ("variables", ", ".join(f"{k}={v}" for k, v in run.variables.items()) or "-"),
        (
            "totals",
            f"{stats.task_count} tasks · {stats.message_count} messages · "
            f"{stats.input_tokens} in / {stats.output_tokens} out tokens · "
            f"{_cost(stats.total_cost)}",
        ),
        ("error", run.error or "-"),
    ):
        _out.print(f"  {label:<10} {value}", highlight=False, soft_wrap=True)
    _out.print("[bold]conversation[/]")
    for message in run.messages:
        marker = (
            f" [red](failed: {message.get('error') or 'error'})[/]" if message.get("failed") else ""
        )
        _out.print(f"  [cyan]{message.get('role')}[/]{marker}:", highlight=False)
        _out.print(f"    {message.get('content', '')}", highlight=False, markup=False)
    _print_tasks(tasks, title="tasks")


# -- tasks ---------------------------------------------------------------------------------


def _print_tasks(tasks: list[TaskRecord], *, title: str) -> None:
    table = Table(title=f"{title} ({len(tasks)})", title_justify="left", **TABLE)
    table.add_column("id", no_wrap=True)
    for column in ("status", "try", "tokens", "cost", "ttft", "total"):
        table.add_column(column, no_wrap=True)
    for task in tasks:
        table.add_row(
            task.id,
            task.status,
            str(task.attempt),
            f"{task.input_tokens or 0}/{task.output_tokens or 0}",
            _cost(task.cost),
            seconds(task.time_to_first_token),
            seconds(task.total_time),
        )
    _out.print(table)


@tasks_app.command("list", cls=Command)
def tasks_list(
    run: Annotated[
        str | None, typer.Option("--run", "-r", metavar="RUN_ID", help="Only this run's tasks.")
    ] = None,
    status: StatusOption = None,
    limit: LimitOption = 20,
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """List tasks: a run's oldest first, or those of the newest runs, newest first."""
    wanted, _ = _status(status), _positive(limit)

    async def read(store: Store) -> list[TaskRecord]:
        if run is not None:
            await store.get_run(run)  # an unknown run is an error, not an empty list
            tasks = await store.list_tasks(run)
        else:
            tasks = []
            for record in await store.list_runs(limit=limit):
                tasks.extend(await store.list_tasks(record.id))
            tasks.sort(key=lambda t: (t.created_at is not None, t.created_at), reverse=True)
        return [t for t in tasks if wanted is None or t.status == wanted][:limit]

    tasks: list[TaskRecord] = _read(database, read)
    if as_json:
        print_json(tasks)
    else:
        _print_tasks(tasks, title="tasks")


@tasks_app.command("show", cls=Command)
def tasks_show(
    task_id: Annotated[str, typer.Argument(help="The task's id.")],
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """One task: its request, response, timings, tokens, cost, attempt and error."""
    task: TaskRecord = _read(database, lambda store: store.get_task(task_id))
    if as_json:
        print_json(task)
        return
    _out.print(f"[bold]task {task.id}[/]  {task.status}", highlight=False)
    for label, value in (
        ("run", task.run_id or "-"),
        ("instance", task.instance_id or "-"),
        ("model", f"{task.provider}/{task.model}"),
        ("attempt", str(task.attempt)),
        (
            "tokens",
            f"{task.input_tokens or 0} in / {task.output_tokens or 0} out"
            f" / {task.cached_tokens or 0} cached ({task.usage_source or 'unknown'})",
        ),
        ("cost", _cost(task.cost)),
        ("ttft", seconds(task.time_to_first_token)),
        ("total", seconds(task.total_time)),
        ("finish", task.finish_reason or "-"),
        ("created", when(task.created_at)),
        ("error", task.error or "-"),
    ):
        _out.print(f"  {label:<9} {value}", highlight=False, soft_wrap=True)
    _out.print("[bold]request[/]")
    for message in task.request:
        _out.print(f"  [cyan]{message.get('role')}[/]:", highlight=False)
        _out.print(f"    {message.get('content', '')}", highlight=False, markup=False)
    _out.print("[bold]response[/]")
    _out.print(f"  {task.response_text}", highlight=False, markup=False)


# -- prompts -------------------------------------------------------------------------------


def _source(builtin: bool) -> PromptSource:
    return "prompt_builtins" if builtin else "prompts"


@prompts_app.command("list", cls=Command)
def prompts_list(
    builtin: BuiltinOption = False,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """List stored prompts, by id."""
    source = _source(builtin)
    _positive(limit)
    prompts: list[PromptRecord] = _read(
        database, lambda store: store.list_prompts(source, limit=limit)
    )
    if as_json:
        print_json(prompts)
        return
    table = Table(title=f"{source} ({len(prompts)})", title_justify="left", **TABLE)
    for column in ("id", "name", "messages", "variables", "updated"):
        table.add_column(column)
    for prompt in prompts:
        table.add_row(
            prompt.id,
            prompt.name,
            str(len(prompt.messages)),
            ", ".join(v.name for v in prompt.variable_defaults) or "-",
            when(prompt.updated_at),
        )
    _out.print(table)


@prompts_app.command("show", cls=Command)
def prompts_show(
    prompt_id: Annotated[str, typer.Argument(help="The prompt's id.")],
    builtin: BuiltinOption = False,
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """One stored prompt: its messages, variables and settings."""
    source = _source(builtin)
    prompt: PromptRecord = _read(database, lambda store: store.get_prompt(prompt_id, source))
    if as_json:
        print_json(prompt)
        return
    _out.print(f"[bold]prompt {prompt.id}[/]  {prompt.name} ({source})", highlight=False)
    if prompt.description:
        _out.print(f"  {prompt.description}", highlight=False, markup=False)
    _out.print("[bold]messages[/]")
    for message in prompt.messages:
        _out.print(f"  [cyan]{message.role}[/]:", highlight=False)
        _out.print(f"    {message.content}", highlight=False, markup=False)
    _out.print("[bold]variables[/]")
    for variable in prompt.variable_defaults:
        default = "" if variable.default_value is None else f" = {variable.default_value!r}"
        help_text = f"  ({variable.help_text})" if variable.help_text else ""
        _out.print(f"  {variable.name}{default}{help_text}", highlight=False, markup=False)
    if prompt.settings:
        settings = ", ".join(f"{k}={v}" for k, v in prompt.settings.items())
        _out.print(f"[bold]settings[/] {settings}", highlight=False)


prompts_app.command("add", cls=Command)(add_prompt)


# -- recover and instances -----------------------------------------------------------------


def recover(
    stale_after: Annotated[
        float | None,
        typer.Option(
            "--stale-after",
            metavar="SECONDS",
            help="Take over running runs whose heartbeat is older than this (default 60).",
        ),
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor",
            metavar="EXECUTOR_ID",
            help="Also recover every running run of this executor, whatever its heartbeat "
            "(only for a process you know is dead).",
        ),
    ] = None,
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Recover now: mark interrupted the runs and tasks dead processes left running."""
    settings = settings_from(
        database_url=database,
        stale_after=stale_after,
        executor_id=executor,
        recover_on_start=True,
    )
    existing_database(settings.database_url)

    async def main() -> Any:
        async with open_runtime(settings) as rt:
            return rt.recovery

    report = run_async(main)
    data = {
        "interrupted_runs": list(report.interrupted_runs) if report else [],
        "interrupted_tasks": list(report.interrupted_tasks) if report else [],
        "taken_over": list(report.taken_over) if report else [],
    }
    if as_json:
        print_json(data)
        return
    runs, tasks = data["interrupted_runs"], data["interrupted_tasks"]
    if not runs and not tasks:
        _out.print("nothing to recover: no run is left running by a dead process")
        return
    _out.print(
        f"recovered {len(runs)} run{'s' if len(runs) != 1 else ''} and {len(tasks)} "
        f"task{'s' if len(tasks) != 1 else ''}, marked interrupted "
        "(partial output kept):",
        highlight=False,
    )
    for run_id in runs:
        _out.print(f"  run {run_id}", highlight=False)
    for task_id in tasks:
        _out.print(f"  task {task_id}", highlight=False)


def instances(as_json: JsonOption = False, database: DatabaseOption = None) -> None:
    """The runs open in live instances, as the database sees them (status running)."""
    runs: list[RunRecord] = _read(database, lambda store: store.list_runs(status="running"))
    note = (
        "live instances exist inside the process that runs them (library: "
        "Runtime.instance_ids()); listed here: runs still running in the database"
    )
    if as_json:
        print_json(
            [
                {
                    "run_id": r.id,
                    "instance_id": r.instance_id,
                    "executor_id": r.executor_id,
                    "prompt_id": r.prompt_id,
                    "heartbeat_at": r.heartbeat_at,
                }
                for r in runs
            ]
        )
        return
    Console(stderr=True).print(f"[dim]{note}[/]", highlight=False, soft_wrap=True)
    table = Table(title=f"running runs ({len(runs)})", title_justify="left", **TABLE)
    table.add_column("instance", no_wrap=True)
    table.add_column("run", no_wrap=True)
    for column in ("executor", "prompt", "heartbeat"):
        table.add_column(column)
    for run in runs:
        table.add_row(
            run.instance_id or "-",
            run.id,
            run.executor_id or "-",
            run.prompt_id or "-",
            when(run.heartbeat_at, short=True),
        )
    _out.print(table)

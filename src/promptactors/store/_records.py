"""Records read from the store and the write operations applied to it.

Records are frozen dataclasses; their timestamps do not take part in equality, so a record
read back equals the record that was written. Write operations validate their arguments
when built (``InvalidInput``), so a bad operation never reaches a transaction.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeAlias, get_args

from .._exceptions import InvalidInput
from ..messages import MAX_ID_CHARS

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

__all__ = [
    "ActionRecord",
    "CreateRun",
    "CreateTask",
    "FailTask",
    "FinishTurn",
    "InterruptTask",
    "PromptMessageRow",
    "PromptRecord",
    "PromptSource",
    "RunRecord",
    "RunStats",
    "RunStatus",
    "Scope",
    "ScopedVariables",
    "TaskRecord",
    "TaskStatus",
    "Unfinished",
    "UpdateRun",
    "VariableDefaultRow",
    "WriteOp",
]

PromptSource: TypeAlias = Literal["prompts", "prompt_builtins"]
RunStatus: TypeAlias = Literal["running", "completed", "failed", "interrupted"]
TaskStatus: TypeAlias = Literal["running", "completed", "failed", "interrupted"]
Scope: TypeAlias = Literal["user", "org", "project"]

PROMPT_SOURCES: tuple[str, ...] = get_args(PromptSource)
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)
SCOPES: tuple[str, ...] = get_args(Scope)
SCOPE_TABLES: dict[str, str] = {
    "user": "user_variables",
    "org": "org_variables",
    "project": "project_variables",
}
SCOPE_COLUMNS: dict[str, str] = {"user": "user_id", "org": "org_id", "project": "project_id"}


def check_id(value: object, what: str) -> str:
    """Return ``value`` if it is a usable id, else raise ``InvalidInput`` naming ``what``."""
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
        raise InvalidInput(
            f"{what} must be a non-empty string of at most {MAX_ID_CHARS} characters, got {value!r}"
        )
    return value


def _check_optional_id(value: object, what: str) -> None:
    if value is not None:
        check_id(value, what)


def check_choice(value: object, choices: tuple[str, ...], what: str) -> None:
    """Raise ``InvalidInput`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise InvalidInput(f"{what} must be one of {', '.join(choices)}; got {value!r}")


def _check_count(value: object, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInput(f"{what} must be a non-negative integer, got {value!r}")


def _check_fence(value: object, what: str) -> None:
    if value is not None:
        _check_count(value, what)


def check_lease(value: object, what: str = "lease_seconds") -> float:
    """Return ``value`` if it is a usable lease length in seconds, else ``InvalidInput``."""
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not value > 0
        or math.isinf(value)
    ):
        raise InvalidInput(f"{what} must be a positive number of seconds, got {value!r}")
    return float(value)


def _check_json(value: object, what: str) -> str:
    """``value`` as compact JSON text (:func:`dumps`); ``InvalidInput`` naming ``what`` if
    it cannot be. Write operations keep the text: a store writes it as it is, encoded
    once, where the operation was made, not again in the store's thread."""
    try:
        return dumps(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} is not JSON-serialisable: {exc}") from exc


def _keep(op: object, name: str, text: object) -> None:
    object.__setattr__(op, name, text)  # a computed field of a frozen dataclass


def dumps(value: object) -> str:
    """Serialise ``value`` to compact JSON text."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def plain(value: object) -> Any:
    """``value`` as JSON would give it back: lists for sequences, dicts for mappings."""
    return json.loads(dumps(value))


# -- reference data ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PromptMessageRow:
    """One template message of a prompt; ``content`` may hold ``{{variables}}``."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class VariableDefaultRow:
    """A variable a prompt declares, with its default value and help text.

    ``default_value`` None means the prompt gives no default: a value must come from
    another layer, or execution is blocked naming the variable.
    """

    name: str
    default_value: str | None = None
    help_text: str | None = None


@dataclass(frozen=True, slots=True)
class PromptRecord:
    """A prompt (table ``prompts``) or a prompt builtin (table ``prompt_builtins``)."""

    id: str
    name: str
    messages: tuple[PromptMessageRow, ...] = ()
    variable_defaults: tuple[VariableDefaultRow, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    description: str | None = None
    created_at: datetime | None = field(default=None, compare=False)
    updated_at: datetime | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        check_id(self.id, "prompt id")
        _check_json(dict(self.settings), f"settings of prompt {self.id!r}")


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """A prompt action (table ``prompt_actions``).

    ``broker_mappings`` maps a variable name to the broker that resolves it;
    ``optional_variables`` names the mapped variables whose broker may fail without failing
    the action.
    """

    id: str
    name: str
    prompt_id: str
    prompt_source: PromptSource = "prompts"
    broker_mappings: Mapping[str, str] = field(default_factory=dict)
    optional_variables: frozenset[str] = frozenset()
    hardcoded_values: Mapping[str, str] = field(default_factory=dict)
    execution_config: Mapping[str, Any] = field(default_factory=dict)
    created_at: datetime | None = field(default=None, compare=False)
    updated_at: datetime | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        check_id(self.id, "action id")
        check_id(self.prompt_id, f"prompt id of action {self.id!r}")
        check_choice(self.prompt_source, PROMPT_SOURCES, f"prompt source of action {self.id!r}")
        _check_json(dict(self.execution_config), f"execution config of action {self.id!r}")


class ScopedVariables(NamedTuple):
    """The scoped variables of one context, one dict per scope."""

    user: dict[str, str]
    org: dict[str, str]
    project: dict[str, str]


# -- runs and tasks ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunStats:
    """Totals of a run, accumulated as its tasks complete."""

    message_count: int = 0
    task_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    total_tokens: int = 0
    total_cost: float = 0.0


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run (table ``ai_runs``): one tracked conversation and its totals.

    ``executor_id`` is the runtime process that owns the run and ``heartbeat_at`` when it
    last said it was alive; ``version`` grows by one with every change of its content.
    ``owner_id`` is who continues the run (None when free), ``fence`` its fencing token
    (grows with every claim; 0 if never claimed) and ``lease_expires_at`` when the claim
    may be taken over (None: held until released); ``takeovers`` counts the reclaims of
    the run from executors whose lease expired.
    """

    id: str
    status: RunStatus
    prompt_id: str | None = None
    prompt_source: PromptSource = "prompts"
    instance_id: str | None = None
    name: str | None = None
    messages: tuple[Mapping[str, Any], ...] = ()
    variables: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    stats: RunStats = RunStats()
    error: str | None = None
    executor_id: str | None = None
    version: int = 1
    owner_id: str | None = None
    fence: int = 0
    takeovers: int = 0
    lease_expires_at: datetime | None = field(default=None, compare=False)
    heartbeat_at: datetime | None = field(default=None, compare=False)
    created_at: datetime | None = field(default=None, compare=False)
    updated_at: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """A task (table ``ai_tasks``): one attempt at one model call.

    ``request`` is the resolved messages sent; ``response_text`` the output (partial for an
    interrupted task). Times are in seconds.
    """

    id: str
    run_id: str | None
    status: TaskStatus
    provider: str
    model: str
    attempt: int = 1
    instance_id: str | None = None
    request: tuple[Mapping[str, Any], ...] = ()
    response_text: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    usage_source: str | None = None
    cost: float | None = None
    time_to_first_token: float | None = None
    total_time: float | None = None
    finish_reason: str | None = None
    error: str | None = None
    created_at: datetime | None = field(default=None, compare=False)
    updated_at: datetime | None = field(default=None, compare=False)
    completed_at: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Unfinished:
    """What a crashed or stalled process left behind: runs and tasks still ``running``."""

    runs: tuple[RunRecord, ...]
    tasks: tuple[TaskRecord, ...]


# -- write operations --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateRun:
    """Create a run with status ``running``.

    ``run_id`` is an idempotency key: replaying the operation is a no-op, but a replay
    naming another prompt, prompt source or instance raises ``StoreConflict``. With an
    ``owner_id`` the new run is claimed by it with fence 1 (see ``Store.claim_run``), held
    until released or, with ``lease_seconds``, under a lease that long.
    """

    run_id: str
    prompt_id: str | None = None
    prompt_source: PromptSource = "prompts"
    instance_id: str | None = None
    name: str | None = None
    messages: Sequence[Mapping[str, Any]] = ()
    variables: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    executor_id: str | None = None
    owner_id: str | None = None
    lease_seconds: float | None = None
    #: ``messages``, ``variables`` and ``settings`` as JSON text (computed).
    json: tuple[str, str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_id(self.run_id, "run id")
        _check_optional_id(self.owner_id, f"owner id of run {self.run_id!r}")
        if self.lease_seconds is not None:
            check_lease(self.lease_seconds)
        _check_optional_id(self.prompt_id, f"prompt id of run {self.run_id!r}")
        _check_optional_id(self.instance_id, f"instance id of run {self.run_id!r}")
        _check_optional_id(self.executor_id, f"executor id of run {self.run_id!r}")
        check_choice(self.prompt_source, PROMPT_SOURCES, f"prompt source of run {self.run_id!r}")
        what = f"run {self.run_id!r}"
        texts = (
            _check_json(list(self.messages), what),
            _check_json(dict(self.variables), what),
            _check_json(dict(self.settings), what),
        )
        _keep(self, "json", texts)

    def identity(self) -> tuple[object, ...]:
        """What a replay must repeat to be the same operation."""
        return (self.prompt_id, self.prompt_source, self.instance_id)


@dataclass(frozen=True, slots=True)
class CreateTask:
    """Create a task with status ``running``; commit it before calling the provider.

    ``task_id`` is an idempotency key: a replay with the same run, attempt, provider, model
    and request is a no-op, any other raises ``StoreConflict``. ``run_id`` must name an
    existing run (``RunNotFound``) or be None for an untracked call (then without a fence).
    With a ``fence``, the operation applies only while it is its run's current fencing
    token; otherwise ``Store.apply`` refuses its batch with ``StaleFence``.
    """

    task_id: str
    run_id: str | None
    provider: str
    model: str
    request: Sequence[Mapping[str, Any]] = ()
    attempt: int = 1
    instance_id: str | None = None
    fence: int | None = None
    #: ``request`` as JSON text (computed).
    request_json: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_id(self.task_id, "task id")
        _check_optional_id(self.run_id, f"run id of task {self.task_id!r}")
        _check_fence(self.fence, f"fence of task {self.task_id!r}")
        if self.fence is not None and self.run_id is None:
            raise InvalidInput(f"task {self.task_id!r} has a fence but no run to fence")
        _check_optional_id(self.instance_id, f"instance id of task {self.task_id!r}")
        if not isinstance(self.attempt, int) or self.attempt < 1:
            raise InvalidInput(
                f"attempt of task {self.task_id!r} must be >= 1, got {self.attempt!r}"
            )
        _keep(
            self,
            "request_json",
            _check_json(list(self.request), f"request of task {self.task_id!r}"),
        )

    def identity(self) -> tuple[object, ...]:
        """What a replay must repeat to be the same operation."""
        return (self.run_id, self.attempt, self.provider, self.model, plain(list(self.request)))


@dataclass(frozen=True, slots=True)
class FinishTurn:
    """Complete a task and update its run, in one transaction.

    ``run_messages`` is the run's whole conversation after the turn (the final assistant
    message included); None leaves the run's messages alone. The task's tokens and cost are
    added to the run's totals once: finishing a completed task again with the same output
    is a no-op, with another output (or finishing a failed or interrupted task) raises
    ``StoreConflict``. ``run_status`` optionally ends the run too.
    With a ``fence``, the operation applies only while it is its run's current fencing
    token; otherwise ``Store.apply`` refuses its batch with ``StaleFence``.
    """

    task_id: str
    response_text: str
    run_messages: Sequence[Mapping[str, Any]] | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    usage_source: str = "provider"
    cost: float = 0.0
    time_to_first_token: float | None = None
    total_time: float | None = None
    finish_reason: str | None = None
    run_status: RunStatus | None = None
    fence: int | None = None
    #: ``run_messages`` as JSON text, or None (computed).
    run_messages_json: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_id(self.task_id, "task id")
        _check_fence(self.fence, f"fence of task {self.task_id!r}")
        for name in ("input_tokens", "output_tokens", "cached_tokens"):
            _check_count(getattr(self, name), f"{name} of task {self.task_id!r}")
        if self.run_status is not None:
            check_choice(self.run_status, RUN_STATUSES, f"run status for task {self.task_id!r}")
        text = None
        if self.run_messages is not None:
            text = _check_json(list(self.run_messages), f"run messages for task {self.task_id!r}")
        _keep(self, "run_messages_json", text)


@dataclass(frozen=True, slots=True)
class FailTask:
    """Mark a running task ``failed`` with its error (and any output received).

    A replay with the same error is a no-op; failing a completed or interrupted task, or
    with another error, raises ``StoreConflict``.
    With a ``fence``, the operation applies only while it is its run's current fencing
    token; otherwise ``Store.apply`` refuses its batch with ``StaleFence``.
    """

    task_id: str
    error: str
    response_text: str = ""
    total_time: float | None = None
    fence: int | None = None

    def __post_init__(self) -> None:
        check_id(self.task_id, "task id")
        _check_fence(self.fence, f"fence of task {self.task_id!r}")


@dataclass(frozen=True, slots=True)
class InterruptTask:
    """Mark a running task ``interrupted``, keeping its partial output.

    Interrupting an interrupted task again is a no-op when its stored output is a prefix of
    ``response_text`` (the longer output is kept), and ``StoreConflict`` otherwise, as is
    interrupting a completed or failed task.
    With a ``fence``, the operation applies only while it is its run's current fencing
    token; otherwise ``Store.apply`` refuses its batch with ``StaleFence``.
    """

    task_id: str
    response_text: str = ""
    error: str | None = "interrupted"
    fence: int | None = None

    def __post_init__(self) -> None:
        check_id(self.task_id, "task id")
        _check_fence(self.fence, f"fence of task {self.task_id!r}")


@dataclass(frozen=True, slots=True)
class UpdateRun:
    """Set the given fields of a run (None leaves a field alone). ``RunNotFound`` if absent.

    ``release`` frees the run's claim too (its owner and lease; the fence is kept).
    With a ``fence``, the operation applies only while it is its run's current fencing
    token; otherwise ``Store.apply`` refuses its batch with ``StaleFence``.
    """

    run_id: str
    status: RunStatus | None = None
    error: str | None = None
    name: str | None = None
    messages: Sequence[Mapping[str, Any]] | None = None
    variables: Mapping[str, Any] | None = None
    fence: int | None = None
    release: bool = False
    #: ``messages`` and ``variables`` as JSON text, or None (computed).
    messages_json: str | None = field(init=False, repr=False, compare=False)
    variables_json: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_id(self.run_id, "run id")
        _check_fence(self.fence, f"fence of run {self.run_id!r}")
        if self.status is not None:
            check_choice(self.status, RUN_STATUSES, f"status of run {self.run_id!r}")
        what = f"update of run {self.run_id!r}"
        messages = None if self.messages is None else list(self.messages)
        variables = None if self.variables is None else dict(self.variables)
        _keep(self, "messages_json", None if messages is None else _check_json(messages, what))
        _keep(self, "variables_json", None if variables is None else _check_json(variables, what))


WriteOp: TypeAlias = CreateRun | CreateTask | FinishTurn | FailTask | InterruptTask | UpdateRun

TaskOp: TypeAlias = FinishTurn | FailTask | InterruptTask


class Plan(NamedTuple):
    """A batch in the order adapters apply it: creates first, the rest in given order."""

    create_runs: list[CreateRun]
    create_tasks: list[CreateTask]
    rest: list[FinishTurn | FailTask | InterruptTask | UpdateRun]


def plan(ops: Sequence[WriteOp]) -> Plan:
    """Split ``ops`` into the order every adapter applies a batch in.

    Creating is insert-if-absent and commutes with everything else, so creates go first
    (runs, then tasks); that lets a batch group its rows into a few statements.
    """
    result = Plan([], [], [])
    for op in ops:
        if isinstance(op, CreateRun):
            result.create_runs.append(op)
        elif isinstance(op, CreateTask):
            result.create_tasks.append(op)
        elif isinstance(op, FinishTurn | FailTask | InterruptTask | UpdateRun):
            result.rest.append(op)
        else:
            raise InvalidInput(f"not a write operation: {op!r}")
    return result


@dataclass(frozen=True, slots=True)
class Ownership:
    """A claim, release or renewal of a run's ownership, as adapters apply it.

    Built by ``StoreBase`` from the arguments of ``claim_run``, ``release_run`` and
    ``renew_run`` once they are validated; ``fence`` is None for a claim.
    """

    kind: Literal["claim", "release", "renew"]
    run_id: str
    owner_id: str
    fence: int | None = None
    lease_seconds: float | None = None


def stale_claim_message(op: Ownership, owner: str | None, fence: int) -> str:
    """Why renewing with ``op`` is refused: the run is held by ``owner`` with ``fence``."""
    held = "it is free" if owner is None else f"it is held by {owner!r} with fence {fence}"
    return f"cannot renew run {op.run_id!r} for {op.owner_id!r} with stale fence {op.fence}: {held}"


class Fenced(NamedTuple):
    """The operations of a batch that carry a fence, by where their run is found.

    ``by_run`` holds ``(index, run_id, fence)`` (the run is named by the operation),
    ``by_task`` holds ``(index, task_id, fence)`` (the run is the task's). ``index`` is the
    operation's position in the sequence given to ``apply``.
    """

    by_run: list[tuple[int, str, int]]
    by_task: list[tuple[int, str, int]]


def fenced(ops: Sequence[WriteOp]) -> Fenced:
    """The fenced operations of ``ops`` (see :class:`Fenced`)."""
    result = Fenced([], [])
    for index, op in enumerate(ops):
        if isinstance(op, CreateRun) or op.fence is None:
            continue
        if isinstance(op, UpdateRun | CreateTask):
            assert op.run_id is not None  # a fenced CreateTask names its run
            result.by_run.append((index, op.run_id, op.fence))
        else:
            result.by_task.append((index, op.task_id, op.fence))
    return result

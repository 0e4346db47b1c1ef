"""Whether a task operation repeats what is stored (a replay) or conflicts with it: the
rule every store adapter applies to ``FinishTurn``, ``FailTask`` and ``InterruptTask``."""

from __future__ import annotations

from typing import Any

from ._records import FailTask, FinishTurn, InterruptTask, TaskOp

__all__ = ["task_conflict_message", "task_op_settled"]


def task_op_settled(
    op: TaskOp, status: str, response_text: str, error: str | None, tokens: tuple[Any, Any]
) -> bool:
    """Whether a task stored as given is what ``op`` leaves behind (an idempotent replay)."""
    if isinstance(op, FinishTurn):
        return (
            status == "completed"
            and response_text == op.response_text
            and tokens == (op.input_tokens, op.output_tokens)
        )
    if isinstance(op, FailTask):
        return status == "failed" and error == op.error
    return status == "interrupted" and response_text.startswith(op.response_text)


def task_conflict_message(op: TaskOp, status: str) -> str:
    """Why ``op`` conflicts with a task stored with ``status``."""
    verb = {FinishTurn: "finish", FailTask: "fail", InterruptTask: "interrupt"}[type(op)]
    if status == "running":  # only reachable through a later op of the same batch
        return f"cannot {verb} task {op.task_id!r}: it is still running after the batch"
    if (status, type(op)) in {
        ("completed", FinishTurn),
        ("failed", FailTask),
        ("interrupted", InterruptTask),
    }:
        return f"cannot {verb} task {op.task_id!r} again with a different outcome"
    return f"cannot {verb} task {op.task_id!r}: it is already {status}"

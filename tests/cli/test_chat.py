"""``promptactors chat``: turns typed on stdin, answers streamed, the run ended cleanly."""

from __future__ import annotations

import io

import pytest
from test_cli import ADA, RUN_ID, Cli, Result

from promptactors.store import RunRecord


def chat(cli: Cli, monkeypatch: pytest.MonkeyPatch, lines: str, *args: str) -> Result:
    """``chat ARGS...`` with ``lines`` as what the user types."""
    monkeypatch.setattr("sys.stdin", io.StringIO(lines))
    return cli("chat", *args, *cli.fast())


def run_of(cli: Cli, result: Result) -> RunRecord:
    match = RUN_ID.search(" ".join(result.err.split()))
    assert match is not None, result
    return cli.read(lambda store: store.get_run(match.group(1)))


def test_each_line_is_a_turn_and_quit_completes_the_run(
    cli: Cli, greet: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two lines make two streamed turns; ``/quit`` stops the instance and the run completes."""
    result = chat(cli, monkeypatch, "hello\nand again\n/quit\n", greet, *ADA)

    assert result.code == 0, result
    run = run_of(cli, result)
    assert run.status == "completed"
    assert [(m["role"], m["content"]) for m in run.messages if m["role"] == "user"] == [
        ("user", "hello"),
        ("user", "and again"),
    ]
    answers = [m["content"] for m in run.messages if m["role"] == "assistant"]
    assert len(answers) == 2
    for answer in answers:
        assert answer in result.out


def test_end_of_input_ends_the_chat_like_quit(
    cli: Cli, greet: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-D (end of stdin) ends the chat with exit 0 and the run not left running."""
    result = chat(cli, monkeypatch, "hello\n", greet, *ADA)

    assert result.code == 0, result
    assert run_of(cli, result).status == "completed"


def test_set_gives_a_missing_variable_and_stats_reports_tokens(
    cli: Cli, greet: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A turn missing a variable says so and the chat goes on; ``/set`` supplies it;
    ``/stats`` reports the turns, tokens, cost and TTFT."""
    lines = "hi\n/set customer_name=Ada\nhi\n/stats\n/quit\n"

    result = chat(cli, monkeypatch, lines, greet)

    assert result.code == 0, result
    assert "error: missing variables: customer_name (set them with /set NAME=VALUE)" in (
        result.text
    )
    assert "set customer_name" in result.text
    assert "1 turns (1 completed, 0 failed)" in result.text
    assert "5 out tokens" in result.text
    assert "last TTFT" in result.text
    run = run_of(cli, result)
    assert run.variables["customer_name"] == "Ada"


def test_help_and_unknown_commands_are_answered(
    cli: Cli, greet: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``/help`` lists the commands; an unknown one points to ``/help``."""
    result = chat(cli, monkeypatch, "/help\n/frobnicate\n/set oops\n/quit\n", greet, *ADA)

    assert result.code == 0, result
    for command in ("/set NAME=VALUE", "/stats", "/help", "/quit"):
        assert command in result.text
    assert "unknown command /frobnicate: try /help" in result.text
    assert "--var 'oops': write it as name=value" in result.text


def test_run_id_continues_a_run(cli: Cli, greet: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--run-id`` resumes a run's conversation; the new turns add to it."""
    first = chat(cli, monkeypatch, "one\n", greet, *ADA)
    run = run_of(cli, first)

    second = chat(cli, monkeypatch, "two\n", greet, *ADA, "--run-id", run.id)

    assert second.code == 0, second
    again = run_of(cli, second)
    assert again.id == run.id
    assert again.status == "completed"
    assert [m["content"] for m in again.messages if m["role"] == "user"] == ["one", "two"]


def test_an_unknown_run_id_is_one_line(
    cli: Cli, greet: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Continuing a run that is not there fails before the chat starts."""
    assert cli("db", "init", *cli.db).code == 0

    result = chat(cli, monkeypatch, "", greet, *ADA, "--run-id", "no-such-run")

    assert result.code == 1
    assert "Traceback" not in result.out + result.err
    assert result.text.startswith("error:")
    assert "no-such-run" in result.text


def test_an_unknown_variable_is_refused_before_the_chat_starts(
    cli: Cli, greet: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--var`` naming a variable the prompt does not have is one line, as for ``run``."""
    result = chat(cli, monkeypatch, "hello\n", greet, "--var", "customer_nam=Ada")

    assert result.code == 1
    assert "Traceback" not in result.out + result.err
    assert "'customer_nam'" in result.text
    assert "did you mean 'customer_name'" in result.text

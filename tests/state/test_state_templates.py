"""``{{name}}`` templates: finding, rendering in one pass, reporting what is missing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptactors import _exceptions as exc
from promptactors.messages import PromptMessage
from promptactors.state import PLACEHOLDER, find_variables, render, render_messages

_FIRST = "abcxyzABZ_"
NAMES = st.builds("".join, st.tuples(st.sampled_from(_FIRST), st.text(_FIRST + "019", max_size=6)))
PLAIN = st.text(alphabet=st.characters(exclude_characters="{}"), max_size=12)
ANY_TEXT = st.text(alphabet=st.sampled_from("ab {}x_1\n"), max_size=16)


Segment = tuple[str, str]  # ("text", literal) or ("name", variable name)


@st.composite
def templates(draw: st.DrawFn) -> tuple[str, list[Segment]]:
    """A template made of plain text and placeholders, and the segments it was built from."""
    segments: list[Segment] = []
    parts: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        literal = draw(PLAIN)
        name = draw(NAMES)
        spaces = draw(st.sampled_from(["", " ", "  "]))
        segments += [("text", literal), ("name", name)]
        parts += [literal, "{{" + spaces + name + spaces + "}}"]
    tail = draw(PLAIN)
    segments.append(("text", tail))
    parts.append(tail)
    return "".join(parts), segments


def _names(segments: list[Segment]) -> list[str]:
    return [value for kind, value in segments if kind == "name"]


def test_find_variables_lists_each_name_once_in_order_of_use() -> None:
    """Spaces inside the braces are allowed; repeats are reported once."""
    assert find_variables("{{b}} {{ a }} {{b}} {{  c}}") == ("b", "a", "c")


@pytest.mark.parametrize(
    "text", ["{{1x}}", "{{a-b}}", "{ {a}}", "{{a}", "{a}}", "{{}}", "{{a b}}", "plain"]
)
def test_text_that_is_not_a_placeholder_is_ignored(text: str) -> None:
    """Only {{name}} with a valid name is a placeholder; the rest is plain text."""
    assert find_variables(text) == ()
    assert render(text, {}) == text


def test_render_replaces_every_occurrence() -> None:
    """Each placeholder, spaced or not, is replaced by its value."""
    assert render("{{a}}+{{ a }}={{b}}", {"a": "1", "b": "2"}) == "1+1=2"


def test_a_value_containing_a_placeholder_is_inserted_literally() -> None:
    """Replacement is single-pass: a value's own {{x}} is never expanded."""
    assert render("{{a}}", {"a": "{{b}}", "b": "no"}) == "{{b}}"


def test_strict_render_names_every_missing_variable() -> None:
    """A strict render raises MissingVariables listing all the names without values."""
    with pytest.raises(exc.MissingVariables) as info:
        render("{{z}} {{a}} {{known}} {{z}}", {"known": "k"})
    assert info.value.names == ("a", "z")


def test_lenient_render_keeps_unknown_placeholders() -> None:
    """With strict off, names without values stay as written."""
    assert render("{{a}} {{ b }}", {"a": "1"}, strict=False) == "1 {{ b }}"


def test_render_messages_reports_missing_variables_across_all_messages() -> None:
    """One MissingVariables names what every message lacks, and nothing is rendered."""
    messages = [
        PromptMessage(role="system", content="{{a}}"),
        PromptMessage(role="user", content="{{b}} {{c}}"),
    ]
    with pytest.raises(exc.MissingVariables) as info:
        render_messages(messages, {"c": "1"})
    assert info.value.names == ("a", "b")
    assert render_messages(messages, {"a": "A", "b": "B", "c": "C"}) == (
        PromptMessage(role="system", content="A"),
        PromptMessage(role="user", content="B C"),
    )


def test_render_messages_are_verbatim_when_variables_are_not_applied() -> None:
    """apply_variables off returns the messages unchanged, missing names or not."""
    messages = (PromptMessage(role="user", content="{{nothing}}"),)
    assert render_messages(messages, {}, apply_variables=False) == messages


@settings(max_examples=150, deadline=None)
@given(templates(), st.data())
def test_rendering_with_all_values_leaves_no_known_placeholder(
    template: tuple[str, list[Segment]], data: st.DataObject
) -> None:
    """With a value for every name (values free of braces), no placeholder of a known name
    is left."""
    text, segments = template
    values = {name: data.draw(PLAIN, label=name) for name in _names(segments)}
    rendered = render(text, values)
    assert not [m for m in PLACEHOLDER.findall(rendered) if m in values]


@settings(max_examples=150, deadline=None)
@given(templates(), st.data())
def test_values_with_braces_are_inserted_literally(
    template: tuple[str, list[Segment]], data: st.DataObject
) -> None:
    """Rendering equals splicing each value in place of its placeholder, braces and all."""
    text, segments = template
    values = {name: data.draw(ANY_TEXT, label=name) for name in _names(segments)}
    expected = "".join(value if kind == "text" else values[value] for kind, value in segments)
    assert render(text, values) == expected


@settings(max_examples=150, deadline=None)
@given(st.lists(templates(), min_size=1, max_size=4), st.data())
def test_missing_names_are_exactly_those_without_a_value(
    messages: list[tuple[str, list[Segment]]], data: st.DataObject
) -> None:
    """The names MissingVariables reports are the used names minus the provided ones."""
    used = {name for _, segments in messages for name in _names(segments)}
    provided = data.draw(st.sets(st.sampled_from(sorted(used))) if used else st.just(set()))
    values = dict.fromkeys(provided, "v")
    prompt_messages = [PromptMessage(role="user", content=text) for text, _ in messages]
    missing = used - provided
    if missing:
        with pytest.raises(exc.MissingVariables) as info:
            render_messages(prompt_messages, values)
        assert set(info.value.names) == missing
    else:
        render_messages(prompt_messages, values)

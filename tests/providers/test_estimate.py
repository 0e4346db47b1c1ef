"""Token estimates for usage a provider did not report."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from promptactors.providers._estimate import (
    MESSAGE_OVERHEAD_TOKENS,
    REPLY_PRIMING_TOKENS,
    estimate_request_tokens,
    estimate_tokens,
)
from promptactors.providers._protocol import ChatMessage


def test_empty_text_is_zero_tokens() -> None:
    """No text, no tokens."""
    assert estimate_tokens("") == 0


def test_english_text_is_about_four_characters_per_token() -> None:
    """ASCII text counts one token per four characters, rounded up."""
    assert estimate_tokens("a") == 1
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("x" * 400) == 100


def test_multibyte_scripts_count_their_utf8_bytes() -> None:
    """CJK text, three bytes a character, is not undercounted as four characters a token."""
    assert estimate_tokens("日本語のテキスト") == 6  # 8 characters, 24 bytes
    assert estimate_tokens("\ud800") == 1  # a lone surrogate does not raise


@given(st.text(min_size=1))
def test_any_non_empty_text_is_at_least_one_token(text: str) -> None:
    """Every non-empty text has at least one token, and never more than its UTF-8 bytes."""
    assert 1 <= estimate_tokens(text) <= len(text.encode("utf-8", "surrogatepass"))


@given(st.text(), st.text())
def test_longer_text_never_has_fewer_tokens(text: str, more: str) -> None:
    """Appending text never lowers the estimate."""
    assert estimate_tokens(text + more) >= estimate_tokens(text)


def test_request_estimate_adds_framing_per_message_and_for_the_reply() -> None:
    """A request costs its messages' text plus per-message framing and the reply priming."""
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hello there!")]
    expected = (
        estimate_tokens("Be brief.")
        + estimate_tokens("Hello there!")
        + 2 * MESSAGE_OVERHEAD_TOKENS
        + REPLY_PRIMING_TOKENS
    )
    assert estimate_request_tokens(messages) == expected


def test_request_without_messages_is_zero_tokens() -> None:
    """No messages, no tokens."""
    assert estimate_request_tokens([]) == 0

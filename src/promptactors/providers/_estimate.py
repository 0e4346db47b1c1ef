"""Token estimates for when a provider reports no usage (and for the simulated provider).

The heuristic is OpenAI's rule of thumb, "one token is about four characters of English",
counted in UTF-8 bytes so that scripts whose characters are several bytes (CJK, emoji),
which also take more tokens per character, are not undercounted. It is an estimate:
:class:`~promptactors.providers.Usage` built from it says ``source="estimated"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._protocol import ChatMessage

__all__ = [
    "MESSAGE_OVERHEAD_TOKENS",
    "REPLY_PRIMING_TOKENS",
    "estimate_request_tokens",
    "estimate_tokens",
]

BYTES_PER_TOKEN = 4
# Chat formats wrap each message in role markers, and prime the reply: OpenAI documents
# about 3 tokens per message and 3 for the reply.
MESSAGE_OVERHEAD_TOKENS = 3
REPLY_PRIMING_TOKENS = 3


def estimate_tokens(text: str) -> int:
    """Estimate how many tokens ``text`` takes: its UTF-8 length / 4, rounded up.

    ``""`` is 0 tokens; any other text at least 1.
    """
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    return -(-size // BYTES_PER_TOKEN)


def estimate_request_tokens(messages: Iterable[ChatMessage]) -> int:
    """Estimate the input tokens of a chat request: its messages' text plus per-message framing.

    No messages is 0 tokens.
    """
    total = 0
    count = 0
    for message in messages:
        total += estimate_tokens(message.content) + MESSAGE_OVERHEAD_TOKENS
        count += 1
    return total + REPLY_PRIMING_TOKENS if count else 0

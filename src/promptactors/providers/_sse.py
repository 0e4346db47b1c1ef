"""An incremental server-sent events parser over raw bytes.

Bytes arrive as the network delivers them, split anywhere (inside a field, between ``\\r``
and ``\\n``, inside a multi-byte UTF-8 character). :meth:`SSEParser.feed` takes each read
and returns the events it completed; the rest waits for the next read. It follows the
WHATWG event-stream rules: ``\\r\\n``, ``\\n`` or ``\\r`` end a line, a blank line dispatches,
``:`` starts a comment, ``data`` lines join with ``\\n``, one leading space after the colon
is dropped, a leading byte-order mark is skipped.

No object is built per line: one small tuple per dispatched event.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["SSEParser", "ServerSentEvent"]

_BOM = b"\xef\xbb\xbf"


class ServerSentEvent(NamedTuple):
    """One dispatched event. ``event`` is ``"message"`` when the stream named none."""

    event: str
    data: str
    id: str | None = None
    retry: int | None = None


class SSEParser:
    """Feed it bytes; it returns complete events. One parser per stream; not thread-safe."""

    __slots__ = ("_data", "_event", "_id", "_pending", "_retry", "_started")

    def __init__(self) -> None:
        self._pending = b""  # an unterminated line (and a trailing b"\r" held back)
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None
        self._started = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Parse one read; return the events it completed, in order (often none)."""
        buffer = self._pending + chunk if self._pending else chunk
        if not self._started:
            if len(buffer) < len(_BOM) and _BOM.startswith(buffer):
                self._pending = buffer
                return []
            self._started = True
            if buffer.startswith(_BOM):
                buffer = buffer[len(_BOM) :]
        if b"\r" in buffer:
            hold = b""
            if buffer.endswith(b"\r"):
                # It may be the first half of "\r\n": decide when the next byte arrives.
                buffer, hold = buffer[:-1], b"\r"
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            lines = buffer.split(b"\n")
            self._pending = lines.pop() + hold
        else:
            lines = buffer.split(b"\n")
            self._pending = lines.pop()
        if not lines:
            return []
        events: list[ServerSentEvent] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(
                        ServerSentEvent(
                            self._event or "message", "\n".join(self._data), self._id, self._retry
                        )
                    )
                    self._data = []
                self._event = ""
                continue
            if line.startswith(b"data:"):
                # The hot path: OpenAI-compatible streams are almost only data lines.
                value = line[6:] if line.startswith(b"data: ") else line[5:]
                self._data.append(value.decode("utf-8", "replace"))
                continue
            if line[0] == 0x3A:  # b":" starts a comment (keep-alive pings)
                continue
            self._field(line)
        return events

    def _field(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        text = value.decode("utf-8", "replace")
        if name == b"event":
            self._event = text
        elif name == b"data":
            self._data.append(text)
        elif name == b"id":
            if "\0" not in text:
                self._id = text
        elif name == b"retry" and text.isascii() and text.isdigit():
            self._retry = int(text)
        # Unknown fields are ignored, as the spec says.

    @property
    def pending(self) -> bytes:
        """Bytes received but not yet part of a complete line."""
        return self._pending

"""HTTP/1.1 response body framing, decoded by hand on the streaming hot path.

h11 parses the response head; the body is decoded here because h11 builds and validates
an event object per chunk, which at one SSE event per chunk was the largest single cost
of a stream. Modes: ``chunked``, ``length`` (Content-Length), ``close`` (until the server
closes the connection; never reusable), ``none`` (no body).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import h11
    import httpx

__all__ = ["BodyDecoder", "framing"]


def framing(request: httpx.Request, head: h11.Response) -> BodyDecoder:
    """How the body of ``head`` is delimited, and whether its connection may be reused."""
    keep_alive = head.http_version == b"1.1"
    chunked = False
    length: int | None = None
    for name, value in head.headers:
        if name == b"connection" and b"close" in value.lower():
            keep_alive = False
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"content-length":
            length = int(value)  # h11 validated it
    status = head.status_code
    if request.method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return BodyDecoder("none", 0, keep_alive)
    if chunked:
        return BodyDecoder("chunked", 0, keep_alive)
    if length is not None:
        return BodyDecoder("length", length, keep_alive)
    return BodyDecoder("close", 0, False)


class BodyDecoder:
    """Decodes one response body incrementally; ``done`` at its end, ``reusable`` when the
    connection may carry another request afterwards."""

    __slots__ = ("buffer", "done", "mode", "remaining", "reusable", "state")

    # chunked states
    _SIZE, _DATA, _DATA_END, _TRAILER = 0, 1, 2, 3

    def __init__(self, mode: str, length: int, keep_alive: bool) -> None:
        self.mode = mode
        self.remaining = length
        self.state = self._SIZE
        self.buffer = b""
        self.done = mode == "none" or (mode == "length" and length == 0)
        self.reusable = keep_alive and mode != "close"

    def feed(self, data: bytes) -> list[bytes]:
        """The body bytes in ``data``; sets ``done`` at the end of the body.

        Raises ``ValueError`` on malformed chunked framing.
        """
        mode = self.mode
        if mode == "length":
            if len(data) >= self.remaining:
                if len(data) > self.remaining:
                    self.reusable = False  # bytes beyond the body: the stream is out of step
                data = data[: self.remaining]
                self.remaining = 0
                self.done = True
            else:
                self.remaining -= len(data)
            return [data] if data else []
        if mode == "close":
            return [data] if data else []
        if mode == "none":
            return []
        return self._chunked(data)

    def _chunked(self, data: bytes) -> list[bytes]:
        buf = self.buffer + data if self.buffer else data
        size = len(buf)
        pos = 0
        out: list[bytes] = []
        state = self.state
        remaining = self.remaining
        while pos < size:
            if state == 1:  # _DATA
                take = min(remaining, size - pos)
                out.append(buf[pos : pos + take])
                pos += take
                remaining -= take
                if not remaining:
                    state = 2
            elif state == 0:  # _SIZE
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    if size - pos > 4096:
                        raise ValueError("chunk size line too long")
                    break
                line = buf[pos:end]
                semi = line.find(b";")
                if semi >= 0:
                    line = line[:semi]
                chunk = int(line.strip(), 16)  # ValueError when malformed
                if chunk < 0:
                    raise ValueError("negative chunk size")
                pos = end + 2
                if chunk:
                    remaining = chunk
                    state = 1
                else:
                    state = 3
            elif state == 2:  # _DATA_END
                if size - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise ValueError("missing CRLF after chunk data")
                pos += 2
                state = 0
            else:  # _TRAILER: header lines until an empty one
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    if size - pos > 65536:
                        raise ValueError("trailer too long")
                    break
                empty = end == pos
                pos = end + 2
                if empty:
                    self.done = True
                    if pos < size:
                        self.reusable = False  # bytes beyond the body
                    pos = size
                    break
        self.buffer = buf[pos:] if pos < size else b""
        self.state = state
        self.remaining = remaining
        return out

"""The incremental server-sent events parser."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from promptactors.providers._sse import ServerSentEvent, SSEParser

STREAM = (
    b"\xef\xbb\xbf: comment at the start\r\n"
    b'data: {"a": "h\xc3\xa9llo"}\n\n'
    b"event: update\r\n"
    b"id: 7\r\n"
    b"retry: 1500\r\n"
    b"data: line one\r\n"
    b"data:line two\r\n"
    b"\r\n"
    b"data: carriage\r\r"
    b"data\n\n"
    b"unknown: ignored\n"
    b"data: [DONE]\n\n"
)

EXPECTED = [
    ServerSentEvent("message", '{"a": "h\u00e9llo"}'),
    ServerSentEvent("update", "line one\nline two", "7", 1500),
    ServerSentEvent("message", "carriage", "7", 1500),
    ServerSentEvent("message", "", "7", 1500),
    ServerSentEvent("message", "[DONE]", "7", 1500),
]


def parse_in_pieces(data: bytes, cuts: list[int]) -> list[ServerSentEvent]:
    parser = SSEParser()
    events: list[ServerSentEvent] = []
    start = 0
    for cut in sorted(set(cuts)):
        events += parser.feed(data[start:cut])
        start = cut
    events += parser.feed(data[start:])
    return events


def test_a_whole_stream_parses_into_its_events() -> None:
    """Comments, a BOM, CRLF/CR/LF line ends, ids, retry and multi-line data are handled."""
    assert SSEParser().feed(STREAM) == EXPECTED


def test_an_event_is_dispatched_only_at_its_blank_line() -> None:
    """A data line without the blank line that ends the event yields nothing yet."""
    parser = SSEParser()
    assert parser.feed(b"data: x\n") == []
    assert parser.feed(b"\n") == [ServerSentEvent("message", "x")]


def test_a_carriage_return_split_from_its_line_feed_ends_one_line() -> None:
    """``\\r`` at the end of one read and ``\\n`` at the start of the next are one line end."""
    parser = SSEParser()
    assert parser.feed(b"data: x\r") == []
    assert parser.feed(b"\n\r") == []
    assert parser.feed(b"\n") == [ServerSentEvent("message", "x")]


def test_a_multibyte_character_split_across_reads_is_decoded_whole() -> None:
    """UTF-8 split inside a character is joined before decoding."""
    text = "d\u00e9j\u00e0 \U0001f600".encode()
    data = b"data: " + text + b"\n\n"
    events = parse_in_pieces(data, [8, 9, len(data) - 4])
    assert events == [ServerSentEvent("message", text.decode())]


def test_an_event_with_no_data_is_not_dispatched() -> None:
    """An event name followed by a blank line, with no data, dispatches nothing."""
    assert SSEParser().feed(b"event: ping\n\n: keep-alive\n\n") == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=len(STREAM)))
def test_any_split_into_byte_chunks_yields_the_same_events(cuts: list[int]) -> None:
    """However the bytes are split across reads, the same events come out in order."""
    assert parse_in_pieces(STREAM, cuts) == EXPECTED


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.text(
            alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)),
            max_size=20,
        ),
        min_size=1,
        max_size=10,
    ),
    st.data(),
)
def test_any_payloads_split_anywhere_round_trip(payloads: list[str], data: st.DataObject) -> None:
    """Arbitrary payloads, encoded as data events and split anywhere, come back unchanged."""
    stream = b"".join(b"data: " + p.encode() + b"\n\n" for p in payloads)
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=30))
    events = parse_in_pieces(stream, cuts)
    assert [e.data for e in events] == payloads

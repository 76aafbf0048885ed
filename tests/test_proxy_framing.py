"""Cutting byte streams into messages without changing a byte."""

from __future__ import annotations

import random

from collector.proxy.framing import NOT_JSON, LineSplitter, SseSplitter, parse_json, sse_message


def chunked(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    chunks, i = [], 0
    while i < len(data):
        n = rng.randint(1, 7)
        chunks.append(data[i : i + n])
        i += n
    return chunks


def test_lines_come_out_exactly_as_they_went_in_whatever_the_chunking():
    stream = b'{"a":1}\n\n  {"b": "caf\xc3\xa9"}\r\n{"c":[1,2]}\nunterminated'
    for seed in range(20):
        splitter = LineSplitter()
        lines = [line for chunk in chunked(stream, seed) for line in splitter.feed(chunk)]
        assert lines == [b'{"a":1}\n', b"\n", b'  {"b": "caf\xc3\xa9"}\r\n', b'{"c":[1,2]}\n']
        assert splitter.rest() == b"unterminated"
        assert splitter.buffered() == 0


def test_a_long_line_in_many_chunks_is_scanned_once():
    splitter = LineSplitter()
    line = b"x" * 5_000_000
    for i in range(0, len(line), 65536):
        assert splitter.feed(line[i : i + 65536]) == []
    assert splitter.feed(b"\n") == [line + b"\n"]


def test_sse_events_keep_their_bytes_whatever_the_line_endings_and_chunking():
    events = [
        b'event: message\r\nid: 1\r\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\r\n\r\n',
        b": keep-alive comment\n\n",
        b'data: {"jsonrpc":\ndata: "2.0"}\n\n',
        b"event: other\rdata: x\r\r",
        b"retry: 100\n\n",
    ]
    stream = b"".join(events)
    for seed in range(30):
        splitter = SseSplitter()
        got = [e for chunk in chunked(stream, seed) for e in splitter.feed(chunk)]
        assert [e.raw for e in got] == events
        assert [e.data for e in got] == ['{"jsonrpc":"2.0","id":1,"result":{}}', None, '{"jsonrpc":\n"2.0"}', "x", None]
        assert [e.event for e in got] == ["message", "message", "message", "other", "message"]
        assert got[0].id == "1"
        assert splitter.rest() == b""


def test_a_cr_at_the_end_of_a_chunk_waits_for_a_possible_lf():
    splitter = SseSplitter()
    assert splitter.feed(b"data: a\r") == []
    assert splitter.feed(b"\n\r") == []
    assert [e.raw for e in splitter.feed(b"\n")] == [b"data: a\r\n\r\n"]
    assert [e.data for e in SseSplitter().feed(b"data: b\r\r", eof=True)] == ["b"]


def test_an_unfinished_event_is_left_over():
    splitter = SseSplitter()
    assert splitter.feed(b"data: 1\n\ndata: 2\n") != []
    assert splitter.rest() == b"data: 2\n"


def test_parse_json_never_raises():
    assert parse_json(b'{"a": [1]}') == {"a": [1]}
    assert parse_json(b"{nope") is NOT_JSON
    assert parse_json(b"\xff\xfe\x00") is NOT_JSON
    assert parse_json(b"[" * 100_000) is NOT_JSON
    assert parse_json(b"null") is None


def test_the_proxys_own_events():
    event = SseSplitter().feed(sse_message(b'{"id":1}'))[0]
    assert (event.event, event.data) == ("message", '{"id":1}')

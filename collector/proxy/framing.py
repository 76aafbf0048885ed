"""Splitting byte streams into messages without altering them.

Both splitters hand back the exact bytes they were fed, cut at message
boundaries, so the proxy forwards what it received and parses only a copy.
They remember how far they already searched, so a very large message arriving
in many chunks is scanned once (linear, not quadratic).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

# Not a JSON value: returned by `parse_json` instead of raising.
NOT_JSON = object()


def parse_json(data: bytes | str) -> object:
    """The JSON value in `data`, or `NOT_JSON`."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return NOT_JSON


# A message larger than this (one stdio line, without its newline) is not
# relayed: its bytes are dropped as they arrive, so the proxy never holds more
# than about this much of one message. The MCP SDK's default bound on an HTTP
# request body is the same 4 MiB.
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024

# What is kept of a line too long to relay: enough of both ends to find its
# JSON-RPC envelope (id, method), whichever order the SDK wrote the keys in.
KEEP_BYTES = 4096


@dataclass
class Oversized:
    """A line longer than the splitter's bound, dropped as it arrived."""

    size: int  # bytes of the whole line, with its newline if it had one
    head: bytes  # its first KEEP_BYTES bytes
    tail: bytes  # its last KEEP_BYTES bytes, without the newline


class LineSplitter:
    """MCP stdio framing: one message per line, lines end with `\\n`.

    With `max_line`, a line longer than that (not counting its newline) comes
    out as an `Oversized` instead, and is never buffered past the bound.
    """

    def __init__(self, max_line: int | None = None) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf known to hold no newline
        self._dropping: Oversized | None = None  # the oversized line being skipped

    def feed(self, data: bytes) -> list[bytes | Oversized]:
        """Complete lines (each with its `\\n`) made available by `data`."""
        lines: list[bytes | Oversized] = []
        if self._dropping is not None:
            end = data.find(b"\n")
            self._drop(data if end < 0 else data[: end + 1])
            if end < 0:
                return lines
            lines.append(self._dropped())
            data = data[end + 1 :]
        buf = self._buf
        buf += data
        start = 0
        search = self._scanned
        while (end := buf.find(b"\n", search)) >= 0:
            if self._too_long(end - start):
                lines.append(_oversized(buf, start, end + 1))
            else:
                lines.append(bytes(buf[start : end + 1]))
            start = search = end + 1
        if self._too_long(len(buf) - start):
            self._drop(bytes(buf[start:]))  # no newline yet: skip the rest as it arrives
            start = len(buf)
        if start:
            del buf[:start]
        self._scanned = len(buf)
        return lines

    def rest(self) -> bytes | Oversized:
        """What is left after the last newline (at end of stream: an unterminated line)."""
        if self._dropping is not None:
            return self._dropped()
        rest = bytes(self._buf)
        self._buf.clear()
        self._scanned = 0
        return rest

    def buffered(self) -> int:
        return len(self._buf)

    def _too_long(self, length: int) -> bool:
        return self.max_line is not None and length > self.max_line

    def _drop(self, data: bytes) -> None:
        """Skip `data`, part of a line too long to relay, keeping only its ends."""
        over = self._dropping
        if over is None:
            over = self._dropping = Oversized(0, b"", b"")
        over.size += len(data)
        if len(over.head) < KEEP_BYTES:
            over.head += data[: KEEP_BYTES - len(over.head)]
        over.tail = (over.tail + data[-KEEP_BYTES:])[-KEEP_BYTES:]

    def _dropped(self) -> Oversized:
        over: Oversized = self._dropping  # type: ignore[assignment]
        self._dropping = None
        over.tail = over.tail.rstrip(b"\r\n")
        return over


def _oversized(buf: bytearray, start: int, end: int) -> Oversized:
    """The whole line buf[start:end], too long to relay (only its ends are copied)."""
    head = bytes(buf[start : min(end, start + KEEP_BYTES)])
    tail = bytes(buf[max(start, end - KEEP_BYTES) : end]).rstrip(b"\r\n")
    return Oversized(end - start, head, tail)


# -- the envelope of a dropped line ------------------------------------------------

_decoder = json.JSONDecoder()
_SPACE = " \t\r\n"
_LITERAL = frozenset("0123456789+-.eEtrufalsn")  # characters of numbers, true, false, null


def partial_message(line: Oversized) -> dict:
    """The JSON-RPC envelope of a line too long to parse, as far as its ends tell.

    The top-level members with scalar values (id, method, jsonrpc) read forward
    from the start and backward from the end; `params` as `{"name": ...}` when
    the tool name comes first in it (else `{}`); the first member too long to
    read from the start (a result, an error) as None. A member is only taken
    when everything between it and the end it was read from is at the top
    level, so for valid JSON nothing nested is mistaken for the envelope.
    """
    head = line.head.decode("utf-8", errors="replace")
    tail = line.tail.decode("utf-8", errors="replace")
    found = _trailing_members(tail)
    leading, stop_key, stop_pos = _scalar_members(head, 0)
    found.update(leading)
    if stop_key == "params":
        params, _, _ = _scalar_members(head, stop_pos)
        found["params"] = {"name": params["name"]} if "name" in params else {}
    elif stop_key is not None:
        found[stop_key] = None
    return found


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _SPACE:
        pos += 1
    return pos


def _scalar_members(text: str, pos: int) -> tuple[dict, str | None, int]:
    """The members of the object at text[pos] read forward while their values
    are scalars; then the key whose value is an object or array, and where that
    value starts (None, -1 when reading stopped otherwise)."""
    found: dict = {}
    pos = _skip_space(text, pos)
    if not text.startswith("{", pos):
        return found, None, -1
    pos = _skip_space(text, pos + 1)
    while text.startswith('"', pos):
        try:
            key, pos = _decoder.raw_decode(text, pos)
        except ValueError:
            break
        pos = _skip_space(text, pos)
        if not text.startswith(":", pos):
            break
        pos = _skip_space(text, pos + 1)
        if text.startswith(("{", "["), pos):
            return found, key, pos
        try:
            value, pos = _decoder.raw_decode(text, pos)
        except ValueError:
            break
        pos = _skip_space(text, pos)
        if not text.startswith((",", "}"), pos):  # cut off: the value may go on
            break
        found[key] = value
        if text[pos] == "}":
            break
        pos = _skip_space(text, pos + 1)
    return found, None, -1


def _trailing_members(text: str) -> dict:
    """The members at the end of the object that closes text, read backward
    while their values are scalars."""
    found: dict = {}
    pos = len(text.rstrip(_SPACE)) - 1  # the closing brace
    if pos < 0 or text[pos] != "}":
        return found
    while True:
        value = _token_before(text, pos)
        if value is None:
            return found
        colon = _back_over_space(text, value[0] - 1)
        if colon < 0 or text[colon] != ":":
            return found
        key = _token_before(text, colon)
        if key is None or not isinstance(key[1], str):
            return found
        before = _back_over_space(text, key[0] - 1)
        if before < 0 or text[before] not in ",{":
            return found  # the start of the tail, or not JSON
        found.setdefault(key[1], value[1])
        if text[before] == "{":
            return found
        pos = before


def _back_over_space(text: str, pos: int) -> int:
    while pos >= 0 and text[pos] in _SPACE:
        pos -= 1
    return pos


def _backslashes_before(text: str, pos: int) -> int:
    count = 0
    while pos - count > 0 and text[pos - count - 1] == "\\":
        count += 1
    return count


def _token_before(text: str, pos: int) -> tuple[int, object] | None:
    """The scalar that ends just before text[pos] (spaces aside): (where it
    starts, its value); None if it is not a whole scalar."""
    end = _back_over_space(text, pos - 1)
    if end < 0:
        return None
    if text[end] == '"':
        start = end - 1
        while True:  # back to the opening quote: the first one not escaped
            start = text.rfind('"', 0, start + 1)
            if start < 0:
                return None
            if _backslashes_before(text, start) % 2 == 0:
                break
            start -= 1
    elif text[end] in _LITERAL:
        start = end
        while start > 0 and text[start - 1] in _LITERAL:
            start -= 1
    else:
        return None  # an object or array: not read backward
    try:
        return start, json.loads(text[start : end + 1])
    except ValueError:
        return None


@dataclass
class SseEvent:
    raw: bytes  # the event's bytes as received, through its terminating blank line
    event: str  # the `event:` field, "message" when absent
    data: str | None  # the `data:` lines joined with "\n"; None when there was none
    id: str | None


_LINE_END = re.compile(rb"\r\n|\r|\n")


class SseSplitter:
    """text/event-stream framing (WHATWG HTML, server-sent events): fields on
    lines ending with CRLF, LF or CR; a blank line ends an event."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._line_start = 0  # start of the line being assembled
        self._scanned = 0  # position up to which no line end was found
        self._fields: list[tuple[str, str]] = []

    def feed(self, data: bytes, *, eof: bool = False) -> list[SseEvent]:
        """Complete events made available by `data` (`eof`: no more data follows)."""
        buf = self._buf
        buf += data
        events = []
        event_start = 0
        while True:
            match = _LINE_END.search(buf, self._scanned)
            if match is None:
                self._scanned = len(buf)
                break
            if match.group() == b"\r" and match.end() == len(buf) and not eof:
                # Could be the first half of a CRLF split across chunks.
                self._scanned = match.start()
                break
            line = bytes(buf[self._line_start : match.start()])
            self._line_start = self._scanned = match.end()
            if line:
                self._fields.append(_field(line))
                continue
            events.append(self._event(bytes(buf[event_start : match.end()])))
            event_start = match.end()
        if event_start:
            del buf[:event_start]
            self._line_start -= event_start
            self._scanned -= event_start
        return events

    def rest(self) -> bytes:
        """Bytes of an event the stream ended in the middle of (a client discards it)."""
        rest = bytes(self._buf)
        self._buf.clear()
        self._line_start = self._scanned = 0
        self._fields = []
        return rest

    def _event(self, raw: bytes) -> SseEvent:
        event, data, event_id = "message", [], None
        for name, value in self._fields:
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value or "message"
            elif name == "id":
                event_id = value
        self._fields = []
        return SseEvent(raw=raw, event=event, data="\n".join(data) if data else None, id=event_id)


def _field(line: bytes) -> tuple[str, str]:
    text = line.decode("utf-8", errors="replace")
    if text.startswith(":"):
        return "", text[1:]  # a comment (keep-alive)
    name, sep, value = text.partition(":")
    if sep and value.startswith(" "):
        value = value[1:]
    return name, value


def sse_message(message: bytes) -> bytes:
    """One `message` event carrying a JSON message (no newlines in it)."""
    return b"event: message\ndata: " + message + b"\n\n"

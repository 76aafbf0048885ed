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


class LineSplitter:
    """MCP stdio framing: one message per line, lines end with `\\n`."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf known to hold no newline

    def feed(self, data: bytes) -> list[bytes]:
        """Complete lines (each with its `\\n`) made available by `data`."""
        buf = self._buf
        buf += data
        lines = []
        start = 0
        search = self._scanned
        while (end := buf.find(b"\n", search)) >= 0:
            lines.append(bytes(buf[start : end + 1]))
            start = search = end + 1
        if start:
            del buf[:start]
        self._scanned = len(buf)
        return lines

    def rest(self) -> bytes:
        """What is left after the last newline (at end of stream: an unterminated line)."""
        rest = bytes(self._buf)
        self._buf.clear()
        self._scanned = 0
        return rest

    def buffered(self) -> int:
        return len(self._buf)


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

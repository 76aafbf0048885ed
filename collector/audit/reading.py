"""Reading audit trail files back: records in chain order, and the filters `mcp-slo audit query`
and the dashboard's Audit page share.

    skipped = Skipped()
    for record in records(paths, skipped):      # a rotated set, given in any order
        if matches(record, Filters(user="ana", status="error")):
            ...
    skipped.damaged, skipped.oversized          # lines left out, counted

Memory stays bounded whatever the files hold: lines are streamed, and a line longer than
`max_line_bytes` (1 MiB by default; a record is a few KB) is skipped without being read whole.
A line that is not a JSON object (torn by a crash, edited) is counted and skipped: reading
shows what is there, `chain.verify` says whether it is intact.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector.audit.chain import (
    MAX_LINE_BYTES,
    bounded_lines,
    chain_order,
    parse_line,
    skip_rest_of_line,
)
from collector.audit.chain import last_record as last_sealed_record
from collector.audit.config import parse_time


@dataclass
class Skipped:
    """Lines left out while reading: `damaged` (not a JSON object), `oversized` (over the limit)."""

    damaged: int = 0
    oversized: int = 0

    @property
    def total(self) -> int:
        return self.damaged + self.oversized


@dataclass(frozen=True)
class Filters:
    """What a record must match; None matches anything. `user` is the identity's user, e-mail
    or subject; `text` a part of the request id or the session id; `since` and `until` are
    seconds since the epoch, inclusive."""

    user: str | None = None
    service: str | None = None
    tool: str | None = None
    status: str | None = None
    since: float | None = None
    until: float | None = None
    text: str | None = None


def read_file(path: str | os.PathLike[str], skipped: Skipped | None = None,
              max_line_bytes: int = MAX_LINE_BYTES, start: int = 0) -> Iterator[dict[str, Any]]:
    """The records of one file, in file order; damaged and oversized lines counted in `skipped`.
    From byte `start` on, when given: the line it falls in is left out (its start is not read)."""
    skipped = skipped if skipped is not None else Skipped()
    with open(path, "rb") as file:
        if start > 0:
            file.seek(start - 1)
            skip_rest_of_line(file)  # from the byte before: `start` may be where a line begins
        for raw in bounded_lines(file, max_line_bytes):
            if raw is None:
                skipped.oversized += 1
                continue
            if not raw.strip():
                continue
            record = parse_line(raw, sealed=False)
            if record is None:
                skipped.damaged += 1
            else:
                yield record


def records(paths: Sequence[str | os.PathLike[str]], skipped: Skipped | None = None,
            max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[dict[str, Any]]:
    """The records of a set of files (rotated ones in any order), in chain order."""
    for path in chain_order([Path(p) for p in paths]):
        yield from read_file(path, skipped, max_line_bytes)


def last_record(path: str | os.PathLike[str], max_line_bytes: int = MAX_LINE_BYTES) -> dict[str, Any] | None:
    """The last sealed record of a file (damaged or oversized lines after it skipped); None when
    there is none."""
    return last_sealed_record(Path(path), max_line_bytes=max_line_bytes)


def record_time(record: Mapping[str, Any]) -> float | None:
    """A record's `time` in seconds since the epoch; None when missing or unreadable."""
    value = record.get("time")
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def identity_of(record: Mapping[str, Any]) -> Mapping[str, Any]:
    identity = record.get("identity")
    return identity if isinstance(identity, Mapping) else {}


def user_of(record: Mapping[str, Any]) -> str | None:
    """Who made the request, as shown: the user, else the e-mail, else the subject."""
    identity = identity_of(record)
    for name in ("user", "email", "subject"):
        if isinstance(identity.get(name), str) and identity[name]:
            return identity[name]
    return None


def matches(record: Mapping[str, Any], filters: Filters) -> bool:
    """Whether `record` passes every filter of `filters`."""
    for name in ("service", "tool", "status"):
        wanted = getattr(filters, name)
        if wanted is not None and record.get(name) != wanted:
            return False
    if filters.user is not None:
        identity = identity_of(record)
        if filters.user not in (identity.get("user"), identity.get("email"), identity.get("subject")):
            return False
    if filters.text:
        ids = (record.get("request_id"), record.get("session_id"))
        if not any(isinstance(i, str) and filters.text.lower() in i.lower() for i in ids):
            return False
    if filters.since is not None or filters.until is not None:
        moment = record_time(record)
        if moment is None:
            return False  # a record without a readable time is outside every time range
        if (filters.since is not None and moment < filters.since) or (
                filters.until is not None and moment > filters.until):
            return False
    return True

"""The Audit page's data: the audit trail's files (`--audit-file`, globs for a rotated set),
whether their chains are intact, and the newest records that match the page's filters, with a
summary per status and per user. No Dash here; the page (dashboard.pages.audit) draws these.

    trail = Trail(("audit/*.jsonl",))
    checks = Verifier(trail).check()        # chain -> chain.verify's verdict, with the time span
    found = search_all(trail.chains(), filters_from_query(query, range_seconds("24h"), now))
    found.rows, found.matched, found.statuses, found.users

Each writer (a server's `instrument`, each `mcp-slo proxy` process) has a chain of its own: the
files are grouped into chains by the file sink's names (`NAME.jsonl` and its rotated
`NAME-<start>-<seq>.jsonl`), each verified on its own; the records of all are listed together,
newest first.

Reading is bounded for big trails: files are read newest first and line by line (records
come from collector.audit.reading, shared with `mcp-slo audit query`: damaged lines and lines
over 1 MiB are counted and skipped), only the newest `limit` matches are kept, files written
before the time range are not opened, and at most `max_scan_bytes` are read per search (the
page says when older records were left out). The verdict is recomputed when the files change,
at most once a minute: `chain.verify` reads the whole trail.
"""

from __future__ import annotations

import glob
import os
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collector.audit.chain import (
    DEFAULT_KEY_ENV,
    Verdict,
    chain_order,
    key_from_env,
    verify,
)
from collector.audit.reading import (
    Filters,
    Skipped,
    identity_of,
    last_record,
    matches,
    read_file,
    record_time,
    user_of,
)
from dashboard.formatting import NONE

STATUSES = ("success", "error", "timeout", "cancelled")
QUERY_KEYS = ("user", "service", "tool", "status", "q")  # the page's own keys in the URL
ROWS = 500  # the newest matching records listed
MAX_SCAN_BYTES = 256 << 20  # read per search at most; older records are left out, and the page says so
SLACK = 3600.0  # a record's time is its request's start, written at its end: files overlap by a request
VERIFY_EVERY = 60.0  # seconds between two verifications of a changing trail
TORN_RETRY = 0.2  # seconds before verifying again a chain whose last line is cut
MAX_OPTIONS = 200  # values offered per filter
MAX_USERS = 1000  # users counted one by one in the summary; the others together
# a rotated file of collector.audit.sinks.JsonlFileSink: NAME-<UTC start>-<first seq>.SUFFIX
_ROTATED = re.compile(r"(?P<name>.+)-[0-9]{8}T[0-9]{6}Z-[0-9]+(?P<suffix>\.[^.]+)")


@dataclass(frozen=True)
class Trail:
    """Where the audit files are: paths or globs (a rotated set: `audit/mcp*.jsonl`), and the
    environment variable of the chain's HMAC key, if any."""

    patterns: tuple[str, ...]
    key_env: str = DEFAULT_KEY_ENV

    def paths(self) -> list[Path]:
        """The files the patterns match now (rotation adds and retention deletes files)."""
        found: dict[str, Path] = {}
        for pattern in self.patterns:
            for name in sorted(glob.glob(os.path.expanduser(pattern))):
                if os.path.isfile(name):
                    found.setdefault(os.path.realpath(name), Path(name))
        return list(found.values())

    def chains(self) -> dict[str, list[Path]]:
        """The files by chain (`chains`)."""
        return chains(self.paths())

    def unmatched(self) -> list[str]:
        """The patterns that match no file."""
        return [p for p in self.patterns if not any(os.path.isfile(n) for n in glob.glob(os.path.expanduser(p)))]


def chains(paths: Sequence[Path]) -> dict[str, list[Path]]:
    """`paths` grouped by chain, each named by its current file: a rotated file goes with the
    file it was rotated from (the sink's naming), any other file is a chain of its own."""
    out: dict[str, list[Path]] = {}
    for path in paths:
        match = _ROTATED.fullmatch(path.name)
        name = path.with_name(match["name"] + match["suffix"]) if match else path
        out.setdefault(str(name), []).append(path)
    return dict(sorted(out.items()))


def trail_from(patterns: Sequence[str] | None, key_env: str = DEFAULT_KEY_ENV) -> Trail | None:
    """The Trail of `--audit-file` values (None without any); ValueError for an empty one."""
    patterns = tuple(patterns or ())
    if any(not p.strip() for p in patterns):
        raise ValueError("--audit-file needs a path or a glob (e.g. audit/mcp*.jsonl)")
    return Trail(patterns, key_env) if patterns else None


# --- the chain's verification ---------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """chain.verify's verdict on the files, the time of their first and last record, and when
    it was made (time.time())."""

    verdict: Verdict
    first_time: float | None = None
    last_time: float | None = None
    checked_at: float = 0.0


def check_trail(paths: Sequence[Path], key: bytes | None, now: float | None = None) -> Check:
    """Verify the chain across `paths`; when intact, the time span of its records."""
    verdict = verify(paths, key)
    if not verdict.ok and "a truncated last line" in verdict.message:
        # most likely the writer's batch half-way to disk, not a crash: a moment later it is whole
        time.sleep(TORN_RETRY)
        verdict = verify(paths, key)
    now = time.time() if now is None else now
    if not verdict.ok or not verdict.records:
        return Check(verdict, checked_at=now)
    first = next((record_time(r) for r in read_file(verdict.files[0])), None)
    last = None
    for path in reversed(verdict.files):  # the current file may have just been rotated: empty
        record = last_record(path)
        if record is not None:
            last = record_time(record)
            break
    return Check(verdict, first, last, now)


class Verifier:
    """Each chain's Check, made again when its files change but at most every `every` seconds
    (a full verification reads every record); thread-safe, one per app."""

    def __init__(self, trail: Trail, every: float = VERIFY_EVERY, clock: Callable[[], float] = time.monotonic):
        self.trail, self.every, self.clock = trail, every, clock
        self._lock = threading.Lock()
        self._last: dict[str, tuple[tuple, float, Check]] = {}  # chain -> (files' signature, when, check)

    def check(self) -> dict[str, Check]:
        """chain -> its Check, for the chains there are now."""
        out = {}
        key = key_from_env(self.trail.key_env)
        with self._lock:  # one verification at a time; the others wait for its answer
            for name, paths in self.trail.chains().items():
                signature = _signature(paths)
                seen = self._last.get(name)
                if seen is not None and (seen[0] == signature or self.clock() - seen[1] < self.every):
                    out[name] = seen[2]
                    continue
                out[name] = check_trail(paths, key)
                self._last[name] = (signature, self.clock(), out[name])
            for gone in set(self._last) - set(out):
                del self._last[gone]
        return out


def _signature(paths: Sequence[Path]) -> tuple:
    out = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        out.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(out)


# --- the records ----------------------------------------------------------------------------


@dataclass
class Found:
    """What a search found: `rows` (shaped by `row`, newest first, at most the limit) of
    `matched` records, counts per status and per user (user -> status -> count), the values
    seen in the time range for the filters' choices, and what was not read."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    matched: int = 0
    statuses: Counter = field(default_factory=Counter)
    users: dict[str, Counter] = field(default_factory=dict)
    options: dict[str, set[str]] = field(default_factory=lambda: {"user": set(), "service": set(), "tool": set()})
    skipped: Skipped = field(default_factory=Skipped)
    files: int = 0  # files read, in part or whole
    cut: bool = False  # older records were left out: over max_scan_bytes
    error: str | None = None  # a file could not be read


OTHER_USERS = "(other users)"
NO_USER = "(no identity)"


def search(paths: Sequence[Path], filters: Filters, limit: int = ROWS,
           max_scan_bytes: int = MAX_SCAN_BYTES) -> Found:
    """The records of `paths` that match `filters`, newest first (see the module's docstring)."""
    found = Found()
    try:
        ordered = chain_order(paths)
    except OSError as exc:
        found.error = f"cannot read {exc.filename}: {exc.strerror}"
        return found
    in_range = Filters(since=filters.since, until=filters.until)
    others = replace(filters, since=None, until=None)
    budget = max_scan_bytes
    newer_start: float | None = None  # the first record's time of the file after this one
    for path in reversed(ordered):
        if filters.since is not None and newer_start is not None and newer_start < filters.since - SLACK:
            break  # this file, and the ones before it, were written before the range
        if budget <= 0:
            found.cut = True
            break
        # the newest matches only: a file's rows are kept as long as there is room for them
        kept: deque[dict[str, Any]] = deque(maxlen=max(0, limit - len(found.rows)))
        try:
            size = path.stat().st_size
            start = max(0, size - budget)  # over the budget: only the file's newest records
            budget -= size - start
            found.files += 1
            newer_start = None
            for record in read_file(path, found.skipped, start=start):
                if newer_start is None:
                    newer_start = record_time(record)
                if not matches(record, in_range):
                    continue
                _offer(found.options, record)
                if matches(record, others):
                    found.matched += 1
                    _count(found, record)
                    if kept.maxlen:
                        kept.append(row(record))
        except FileNotFoundError:
            continue  # deleted by retention since the listing
        except OSError as exc:
            found.error = f"cannot read {path}: {exc.strerror}"
            break
        found.rows.extend(reversed(kept))
        if start:
            found.cut = True
            break
    return found


def search_all(by_chain: Mapping[str, Sequence[Path]], filters: Filters, limit: int = ROWS,
               max_scan_bytes: int = MAX_SCAN_BYTES) -> Found:
    """`search` over each chain (the budget shared between them), merged: the newest `limit`
    rows of all, the counts of all."""
    found = Found()
    budget = max_scan_bytes // max(1, len(by_chain))
    for paths in by_chain.values():
        one = search(paths, filters, limit, budget)
        found.rows = sorted([*found.rows, *one.rows], key=lambda r: r["moment"] or 0.0, reverse=True)[:limit]
        found.matched += one.matched
        found.statuses.update(one.statuses)
        for user, counts in one.users.items():
            if user not in found.users and len(found.users) >= MAX_USERS:
                user = OTHER_USERS
            found.users.setdefault(user, Counter()).update(counts)
        for key, values in one.options.items():
            found.options[key] |= set(sorted(values)[:MAX_OPTIONS - len(found.options[key])])
        found.skipped.damaged += one.skipped.damaged
        found.skipped.oversized += one.skipped.oversized
        found.files += one.files
        found.cut = found.cut or one.cut
        found.error = found.error or one.error
    return found


def _offer(options: dict[str, set[str]], record: Mapping[str, Any]) -> None:
    for key, value in (("user", user_of(record)), ("service", record.get("service")), ("tool", record.get("tool"))):
        if isinstance(value, str) and value and len(options[key]) < MAX_OPTIONS:
            options[key].add(value)


def _count(found: Found, record: Mapping[str, Any]) -> None:
    status = str(record.get("status") or "unknown")
    found.statuses[status] += 1
    user = user_of(record) or NO_USER
    if user not in found.users and len(found.users) >= MAX_USERS:
        user = OTHER_USERS
    found.users.setdefault(user, Counter())[status] += 1


def top_users(found: Found, n: int = 10) -> list[tuple[str, Counter]]:
    """The `n` users with the most matching records, most first."""
    return sorted(found.users.items(), key=lambda item: (-sum(item[1].values()), item[0]))[:n]


def row(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as the table shows it: text for each column (NONE for what it does not have)."""
    identity = identity_of(record)
    error = record.get("error")
    message = error.get("message") if isinstance(error, Mapping) else None
    moment = record_time(record)
    seconds = record.get("duration_seconds")
    method, tool = _text(record.get("method")), _text(record.get("tool"))
    return {
        "moment": moment,  # seconds, to merge chains by
        "time": fmt_moment(moment) if moment is not None else _text(record.get("time")),
        "user": user_of(record) or NONE,
        "verified": identity.get("verified") is True,
        "service": _text(record.get("service")),
        "version": _text(record.get("version")),
        "operation": f"{method} {tool}" if tool != NONE else method,
        "status": _text(record.get("status")),
        "duration": (f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s")
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) else NONE,
        "client_ip": _text(record.get("client_ip")),
        "error": _cut(str(message)) if message else "",
        "request_id": _text(record.get("request_id")),
        "session_id": _text(record.get("session_id")),
        "seq": record.get("seq") if isinstance(record.get("seq"), int) else None,
    }


def _text(value: Any) -> str:
    return NONE if value in (None, "") else _cut(str(value))


def _cut(text: str, limit: int = 300) -> str:
    """At most `limit` characters: a row stays small whatever a record holds."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def fmt_moment(seconds: float) -> str:
    """A record's time to the second, in UTC: "2027-01-15 08:00:05"."""
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


# --- the URL --------------------------------------------------------------------------------


def filters_from_query(query: Mapping[str, Any], range_seconds: float | None, now: float) -> Filters:
    """The Filters of the page's URL keys (QUERY_KEYS) over the last `range_seconds` (the
    shell's range); unknown statuses and empty values are no filter."""
    def value(key: str) -> str | None:
        v = query.get(key)
        return v.strip() if isinstance(v, str) and v.strip() else None

    status = value("status")
    return Filters(user=value("user"), service=value("service"), tool=value("tool"),
                   status=status if status in STATUSES else None, text=value("q"),
                   since=now - range_seconds if range_seconds else None)


def query_updates(user: str | None, service: str | None, tool: str | None, status: str | None,
                  q: str | None) -> dict[str, str | None]:
    """The page's URL keys for the filters' values (None removes a key)."""
    values = {"user": user, "service": service, "tool": tool, "status": status if status in STATUSES else None,
              "q": q}
    return {k: (v.strip() or None) if isinstance(v, str) else None for k, v in values.items()}

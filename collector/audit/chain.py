"""Tamper evidence: every audit record is chained to the one before it.

A sealed record has `seq` (1, 2, 3... across files and restarts), `prev` (the previous record's
`hash`; GENESIS for the first record ever) and `hash`: SHA-256, or HMAC-SHA256 when a key is
configured, in hex, over the canonical JSON of the record without `hash` (sorted keys, compact
separators, UTF-8). Removing, changing or reordering a record breaks the chain at that record;
without the key, a chain cannot be rewritten from a changed record on.

`verify` reads JSON Lines files in chain order and names the first problem with file and line.

Reading is bounded whatever a file holds (a damaged one may hold anything): a line longer than
MAX_LINE_BYTES (a record is a few KB) is never read whole, here nor by `collector.audit.reading`,
which uses these primitives.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
DEFAULT_KEY_ENV = "MCP_SLO_AUDIT_KEY"
MAX_LINE_BYTES = 1 << 20
_CHUNK = 64 * 1024  # how much is read at a time while skipping an oversized line, or reading backwards


# Built once: json.dumps with any non-default option builds an encoder per call
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes hashed: the record without `hash`, sorted keys, compact, UTF-8. A value that is
    not JSON is hashed as its text, as the sinks write it."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return _CANONICAL.encode(body).encode()


class Sealed(dict):
    """A sealed record, and `line`: the JSON the sinks write for it, made while sealing (the
    canonical text with the hash added last), so a record is serialized once, not twice."""

    __slots__ = ("line",)


def digest(record: Mapping[str, Any], key: bytes | None = None) -> str:
    data = canonical(record)
    if key:
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def key_from_env(name: str = DEFAULT_KEY_ENV, environ: Mapping[str, str] | None = None) -> bytes | None:
    """The HMAC key in environment variable `name` (UTF-8), or None when it is unset or empty."""
    value = (os.environ if environ is None else environ).get(name)
    return value.encode() if value else None


class Chain:
    """Seals records in order; thread-safe. Resume a chain with `Chain.resume(last_record)`."""

    def __init__(self, key: bytes | None = None, last_seq: int = 0, last_hash: str = GENESIS):
        self.key = key or None
        self.last_seq = last_seq
        self.last_hash = last_hash
        self._lock = threading.Lock()

    @classmethod
    def resume(cls, last: Mapping[str, Any] | None, key: bytes | None = None) -> Chain:
        """The chain continuing after `last` (the last record written), or a new one when None."""
        if last is None:
            return cls(key)
        seq, hash_ = last.get("seq"), last.get("hash")
        if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(hash_, str):
            raise TypeError("cannot resume the audit chain: the last record has no seq or hash")
        return cls(key, seq, hash_)

    def seal(self, record: Mapping[str, Any]) -> Sealed:
        """A copy of `record` with `seq`, `prev` and `hash` (any given are replaced), and its line."""
        sealed = Sealed(record)  # a copy; a dict comprehension filtering the keys costs 3x more
        sealed.pop("hash", None)
        with self._lock:
            sealed["seq"] = self.last_seq + 1
            sealed["prev"] = self.last_hash
            text = _CANONICAL.encode(sealed)
            data = text.encode()
            hash_ = hmac.new(self.key, data, hashlib.sha256).hexdigest() if self.key else \
                hashlib.sha256(data).hexdigest()
            sealed["hash"] = hash_
            sealed.line = f'{text[:-1]},"hash":"{hash_}"}}'  # verify sorts the keys again
            self.last_seq, self.last_hash = sealed["seq"], hash_
        return sealed


def last_record(path: Path, chunk: int = _CHUNK, max_line_bytes: int = MAX_LINE_BYTES) -> dict[str, Any] | None:
    """The last complete sealed record of a JSON Lines file (a torn or damaged line after it is
    skipped, an oversized one without being held whole), or None."""
    try:
        with open(path, "rb") as file:
            end = file.seek(0, os.SEEK_END)
            tail = b""
            oversized = False  # in a line over the bound: its bytes are dropped until its start
            while end > 0:
                start = max(0, end - chunk)
                file.seek(start)
                data = file.read(end - start)
                end = start
                if oversized:
                    cut = data.rfind(b"\n")
                    if cut < 0:
                        continue
                    data, oversized = data[:cut], False
                tail = data + tail
                lines = tail.split(b"\n")
                # lines[0] may be cut at the chunk's start unless the file starts there
                for line in reversed(lines if end == 0 else lines[1:]):
                    record = parse_line(line)
                    if record is not None:
                        return record
                tail = lines[0] if end > 0 else b""
                if len(tail) > max_line_bytes:
                    tail, oversized = b"", True
    except FileNotFoundError:
        return None
    return None


def parse_line(line: bytes, *, sealed: bool = True) -> dict[str, Any] | None:
    """The JSON object on a line (with `sealed`: only one with a seq), or None."""
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict):
        return None
    return record if not sealed or isinstance(record.get("seq"), int) else None


def bounded_lines(file: Any, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[bytes | None]:
    """The lines of a binary file, each with its newline; None for a line over `max_line_bytes`,
    skipped without being read whole."""
    while True:
        raw = file.readline(max_line_bytes + 1)
        if not raw:
            return
        if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
            skip_rest_of_line(file)
            yield None
        else:
            yield raw


def skip_rest_of_line(file: Any) -> None:
    while True:
        chunk = file.readline(_CHUNK)
        if not chunk or chunk.endswith(b"\n"):
            return


# --- verification ---------------------------------------------------------------------------


@dataclass
class Verdict:
    """ok, or the first problem: `kind` (removed, changed, reordered, not_json, malformed,
    wrong_key, unreadable), `message`, and where: `path`, `line` (1-based), `seq`."""

    ok: bool
    records: int = 0  # records verified before the problem (all of them when ok)
    first_seq: int | None = None
    last_seq: int | None = None
    files: list[Path] = field(default_factory=list)  # in chain order
    kind: str | None = None
    message: str = ""
    path: Path | None = None
    line: int | None = None
    seq: int | None = None

    @property
    def starts_after_retention(self) -> bool:
        """The chain starts after seq 1: older files were deleted (by retention) before these."""
        return self.first_seq is not None and self.first_seq > 1

    def summary(self) -> str:
        if not self.ok:
            return self.message
        files = f"{len(self.files)} file{'s' if len(self.files) != 1 else ''}"
        if not self.records:
            return f"intact: 0 records, {files}"
        text = f"intact: {self.records} records, seq {self.first_seq}..{self.last_seq}, {files}"
        if self.starts_after_retention:
            text += f" (starts at seq {self.first_seq}: the records before it are not in these files)"
        return text


@dataclass
class _Line:
    path: Path
    number: int
    record: dict[str, Any] | None  # None: not a JSON object with a seq
    error: str | None = None


def _lines(path: Path) -> Iterator[_Line]:
    with open(path, "rb") as file:
        for number, raw in enumerate(bounded_lines(file, MAX_LINE_BYTES), 1):
            if raw is None:
                yield _Line(path, number, None, f"is longer than {MAX_LINE_BYTES} bytes: not a record")
                continue
            if not raw.strip():
                if raw.endswith(b"\n"):
                    yield _Line(path, number, None, "is empty")
                continue
            try:
                record = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                torn = "" if raw.endswith(b"\n") else " (a truncated last line)"
                yield _Line(path, number, None, f"is not JSON{torn}")
                continue
            if not isinstance(record, dict):
                yield _Line(path, number, None, "is not a JSON object")
            elif not (isinstance(record.get("seq"), int) and isinstance(record.get("prev"), str)
                      and isinstance(record.get("hash"), str)):
                yield _Line(path, number, None, "has no seq, prev or hash")
            else:
                yield _Line(path, number, record)


def chain_order(paths: Sequence[Path]) -> list[Path]:
    """`paths` sorted by their first record's seq (rotated files may be given in any order);
    a file without a readable first record goes last."""
    def first_seq(path: Path) -> tuple[float, str]:
        for line in _lines(path):
            if line.record is not None:
                return (line.record["seq"], str(path))
            break
        return (float("inf"), str(path))
    return sorted((Path(p) for p in paths), key=first_seq)


def verify(paths: Sequence[Path], key: bytes | None = None) -> Verdict:
    """Check the chain across `paths`; the first problem ends the check and is named."""
    try:
        ordered = chain_order(paths)
    except OSError as exc:
        return Verdict(False, kind="unreadable", message=f"cannot read {exc.filename}: {exc.strerror}")
    verdict = Verdict(True, files=ordered)
    previous: dict[str, Any] | None = None
    try:
        stream = (line for path in ordered for line in _lines(path))
        for line in stream:
            where = f"{line.path}:{line.number}"
            if line.record is None:
                return _fail(verdict, "not_json" if "JSON" in (line.error or "") else "malformed",
                             f"{where} {line.error}", line)
            record = line.record
            seq = record["seq"]
            if digest(record, key) != record["hash"]:
                if previous is None or verdict.records < 2:
                    wrong = _wrong_key(record, key, stream)
                    if wrong:
                        return _fail(verdict, "wrong_key", f"{where} (seq {seq}): {wrong}", line)
                return _fail(verdict, "changed", f"{where} (seq {seq}) was changed: its hash does not match "
                             "its content", line)
            if previous is not None:
                expected = previous["seq"] + 1
                if seq <= previous["seq"]:
                    return _fail(verdict, "reordered", f"{where} (seq {seq}) is out of order: it comes after "
                                 f"seq {previous['seq']}", line)
                if seq > expected:
                    later = _find(ordered, line, expected)
                    if later:
                        return _fail(verdict, "reordered", f"{where} (seq {seq}) is out of order: seq {expected} "
                                     f"comes later, at {later}", line)
                    missing = f"seq {expected}" if seq == expected + 1 else f"seq {expected}..{seq - 1}"
                    return _fail(verdict, "removed", f"{where} (seq {seq}): {missing} removed before it", line)
                if record["prev"] != previous["hash"]:
                    return _fail(verdict, "changed", f"{where} (seq {seq}): prev does not match the hash of seq "
                                 f"{previous['seq']}: that record was replaced or this one was", line)
            elif seq == 1 and record["prev"] != GENESIS:
                return _fail(verdict, "changed", f"{where} (seq 1): prev is not the genesis hash", line)
            if verdict.first_seq is None:
                verdict.first_seq = seq
            verdict.last_seq = seq
            verdict.records += 1
            previous = record
    except OSError as exc:
        return _fail(verdict, "unreadable", f"cannot read {exc.filename}: {exc.strerror}", None)
    return verdict


def _fail(verdict: Verdict, kind: str, message: str, line: _Line | None) -> Verdict:
    verdict.ok, verdict.kind, verdict.message = False, kind, message
    if line is not None:
        verdict.path, verdict.line = line.path, line.number
        verdict.seq = line.record["seq"] if line.record else None
    return verdict


def _wrong_key(record: dict[str, Any], key: bytes | None, rest: Iterator[_Line]) -> str | None:
    """Why the chain's first records do not verify, when it is the key rather than an edit: the
    first record sealed without a key (or with none given), and the next one failing too."""
    if key and digest(record, None) == record["hash"]:
        return "the records were sealed without a key, but a key was given"
    following = next(rest, None)
    if following is None or following.record is None:
        return None
    if digest(following.record, key) == following.record["hash"]:
        return None  # the next one verifies: this record was changed
    if key is None:
        return "the records were sealed with a key: give it"
    return "wrong key: the records were sealed with another one"


def _find(ordered: list[Path], after: _Line, seq: int) -> str | None:
    """file:line of the record with `seq` after `after`, or None."""
    seen = False
    for path in ordered:
        for line in _lines(path):
            if not seen:
                seen = line.path == after.path and line.number == after.number
                continue
            if line.record is not None and line.record["seq"] == seq:
                return f"{line.path}:{line.number}"
    return None

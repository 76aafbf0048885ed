"""Where sealed audit records go: a JSON Lines file with rotation and retention, or stdout.

A sink has `name` (a metric label), `write(records)` (all of them or raise: the writer keeps
the records of a failed write for a retry), `close()`, and `last_record()` (the last record it
holds, for the chain to resume after a restart; None when it keeps nothing). An OTLP logs sink
needs only these.

The file sink writes `<dir>/<stem>.jsonl` and rotates it into
`<dir>/<stem>-<UTC start yyyymmddTHHMMSSZ>-<first seq, 12 digits>.jsonl`: the time its first
record was written and the seq of that record, so the names sort in chain order.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from collector.audit.chain import last_record

log = logging.getLogger(__name__)

MiB = 1024 * 1024
DEFAULT_MAX_BYTES = 100 * MiB
DEFAULT_ROTATE_EVERY = 86400.0


class Sink(Protocol):
    name: str

    def write(self, records: Sequence[Mapping[str, Any]]) -> None: ...

    def close(self) -> None: ...

    def last_record(self) -> dict[str, Any] | None: ...


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def dumps(record: Mapping[str, Any]) -> str:
    """One record as one line of JSON (no newline): the line it was sealed with (`chain.Sealed`),
    else its JSON; a value that is not JSON is written as its text, as the chain hashes it."""
    line = getattr(record, "line", None)
    return line if isinstance(line, str) else _ENCODER.encode(record)


class StdoutSink:
    """One JSON line per record on `stream` (a log collector reads the process's output)."""

    name = "stdout"

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream if stream is not None else sys.stdout

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.stream.write("".join(dumps(r) + "\n" for r in records))
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()

    def last_record(self) -> dict[str, Any] | None:
        return None


class JsonlFileSink:
    """Appends records to `path`, one JSON object a line, flushed per batch; rotates by size
    (`max_bytes`) and by age (`rotate_every` seconds since the file's first record, at the first
    write after), and deletes rotated files last written more than `retention` seconds ago (at
    start and at each rotation). Not thread-safe: the writer's thread is its only caller.

    One process writes a file: a chain has one writer. The sink holds an exclusive lock on
    `PATH.lock` for its life, and a second sink on the same path (another proxy, another server)
    is refused with ValueError rather than interleave two chains."""

    name = "jsonl"

    def __init__(self, path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES,
                 rotate_every: float | None = DEFAULT_ROTATE_EVERY, retention: float | None = None,
                 clock: Callable[[], float] = time.time):
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.rotate_every = rotate_every
        self.retention = retention
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _lock(self.path)
        self._pattern = re.compile(re.escape(self.path.stem) + r"-([0-9]{8}T[0-9]{6}Z)-([0-9]+)"
                                   + re.escape(self.path.suffix or ".jsonl"))
        self._repair_tail()
        self._file = open(self.path, "ab")  # noqa: SIM115 - open for the sink's life
        self._size = self._file.tell()
        first = _first_record(self.path) if self._size else None
        self._started: float | None = _record_time(first) if first else None
        if first and self._started is None:
            self._started = self.clock()  # a first record without a readable time: its age counts from now
        self._first_seq: int | None = first.get("seq") if first else None
        self._committed: int | None = None  # the seq of the last record known to be in a file
        self.delete_expired()

    # --- the sink interface ---

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        # A retry after a failure gets the whole batch again: skip what already reached a
        # rotated file (the current file's part of a failed batch is truncated away).
        records = [r for r in records if self._committed is None or not isinstance(r.get("seq"), int)
                   or r["seq"] > self._committed]
        if not records:
            return
        if self._file.closed:  # a rotation that failed half-way: start again on the current path
            self._file = open(self.path, "ab")  # noqa: SIM115
            self._size = self._file.tell()
        start, last_seq = self._size, self._committed
        try:
            for record in records:
                line = (dumps(record) + "\n").encode()
                if self._size and (self._size + len(line) > self.max_bytes or self._too_old()):
                    self._file.flush()
                    self.rotate()
                    self._committed, start = last_seq, 0
                if not self._size:
                    self._started = self.clock()
                    self._first_seq = record.get("seq") if isinstance(record.get("seq"), int) else None
                self._file.write(line)
                self._size += len(line)
                last_seq = record.get("seq") if isinstance(record.get("seq"), int) else last_seq
            self._file.flush()
            self._committed = last_seq
        except (OSError, ValueError):
            self._undo(start)
            raise

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            self._file.close()
        if self._lock is not None:
            self._lock.close()  # releases the lock
            self._lock = None

    def last_record(self) -> dict[str, Any] | None:
        """The last record of the current file, or of the newest rotated file when it is empty."""
        record = last_record(self.path)
        if record is not None:
            return record
        for path in reversed(self.rotated()):
            record = last_record(path)
            if record is not None:
                return record
        return None

    # --- rotation and retention ---

    def rotated(self) -> list[Path]:
        """The rotated files beside the current one, oldest first (by their first seq)."""
        found = []
        for path in self.path.parent.iterdir():
            match = self._pattern.fullmatch(path.name)
            if match:
                found.append((int(match.group(2)), match.group(1), path))
        return [path for *_, path in sorted(found)]

    def rotate(self) -> Path | None:
        """Close the current file under its rotated name and start an empty one; None when empty."""
        if not self._size:
            return None
        self._file.close()
        started = datetime.fromtimestamp(self._started if self._started is not None else self.clock(), UTC)
        name = f"{self.path.stem}-{started:%Y%m%dT%H%M%SZ}-{self._first_seq or 0:012d}{self.path.suffix or '.jsonl'}"
        target = self.path.with_name(name)
        try:
            os.replace(self.path, target)
        finally:
            self._file = open(self.path, "ab")  # noqa: SIM115 - a fresh file, or the same one again on failure
        self._size, self._started, self._first_seq = 0, None, None
        now = self.clock()
        os.utime(target, (now, now))  # its age for retention, on the sink's clock
        self.delete_expired()
        return target

    def delete_expired(self) -> list[Path]:
        """Delete the rotated files last written more than `retention` seconds ago."""
        if self.retention is None:
            return []
        deadline = self.clock() - self.retention
        deleted = []
        for path in self.rotated():
            try:
                if path.stat().st_mtime < deadline:
                    path.unlink()
                    deleted.append(path)
            except FileNotFoundError:
                continue  # another process's retention got there first
        return deleted

    def _too_old(self) -> bool:
        return (self.rotate_every is not None and self._started is not None
                and self.clock() - self._started >= self.rotate_every)

    def _undo(self, size: int) -> None:
        # a failed batch leaves nothing behind: its retry must not write a record twice
        try:
            self._file.flush()
        except OSError:
            pass
        try:
            os.truncate(self.path, size)
            self._size = size
        except OSError as exc:
            log.warning("audit file %s: cannot undo a partial write (%s)", self.path, exc)

    def _repair_tail(self) -> None:
        """A crash can leave a torn last line: drop it (its record was never wholly written), or
        end it when it is complete, so that the next line starts on a line of its own."""
        try:
            with open(self.path, "rb+") as file:
                end = file.seek(0, os.SEEK_END)
                if not end:
                    return
                file.seek(max(0, end - 1))
                if file.read(1) == b"\n":
                    return
                pos = end
                while pos > 0:
                    step = min(65536, pos)
                    file.seek(pos - step)
                    newline = file.read(step).rfind(b"\n")
                    if newline >= 0:
                        pos = pos - step + newline + 1
                        break
                    pos -= step
                file.seek(pos)
                tail = file.read()
                try:
                    json.loads(tail)
                    file.write(b"\n")
                except (ValueError, UnicodeDecodeError):
                    log.warning("audit file %s: dropping a torn last line of %d bytes", self.path, len(tail))
                    file.truncate(pos)
        except FileNotFoundError:
            return


def _lock(path: Path) -> IO[bytes] | None:
    """An exclusive lock on `path`.lock, held while the returned file stays open; ValueError when
    another process holds it. None where locks are not available (not POSIX)."""
    try:
        import fcntl
    except ImportError:
        return None
    lock = open(path.with_name(path.name + ".lock"), "ab")  # noqa: SIM115 - held for the sink's life
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise ValueError(f"audit file {path} is being written by another process: give each process its own "
                         "file (a chain has one writer)") from None
    return lock


def _first_record(path: Path) -> dict[str, Any] | None:
    with open(path, "rb") as file:
        try:
            record = json.loads(file.readline())
        except (ValueError, UnicodeDecodeError):
            return None
    return record if isinstance(record, dict) else None


def _record_time(record: Mapping[str, Any]) -> float | None:
    value = record.get("time")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()

"""The engine's store: the latest snapshot, SLO history and canary decisions in one SQLite file.

    store = Store("mcp-slo.db", retention_seconds=30 * 86400)
    tick = store.write_tick(time.time(), slos=[...], tools=[...], meta={"duration": 0.4})
    store.latest()                                        # Snapshot of the newest tick, or None
    store.slo_history("filesystem", "availability")      # [Evaluated(SLOResult, evaluated_at), ...]
    store.write_canary(time.time(), decision)             # a slo.results.CanaryDecision
    store.canary_latest()                                 # [Evaluated(CanaryDecision, ...)], one per pair
    store.canary_history("filesystem", since=t, limit=1000)  # its decisions since t, oldest first
    store.canary_times(since, until)                      # when canaries were judged, oldest first
    store.open_maintenance(...)                           # a run-time maintenance window (kept forever)
    store.end_maintenance(window_id, at, by)              # ends it early
    store.maintenance_records(active_at=t)                # the windows, newest first (active at t)

One writer (the engine), any number of readers (the HTTP API in threads, the dashboard in
another process). The file is in WAL mode: readers never block the writer and each read runs
in one transaction, so it sees whole ticks only (every tick is written in one transaction).

Results are stored as their JSON form (slo.results) next to indexed columns (service, slo,
tool, tick, time), and read back typed: a row that does not read is a StoreError naming it.
The JSON is Python's dialect: NaN and +/-Infinity are written as `NaN`, `Infinity` and
`-Infinity` so float values round-trip; tuples come back as lists and dict keys as strings.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, TypeVar

from slo.maintenance import Window
from slo.results import CanaryDecision, Evaluated, SLOResult, ToolTraffic

T = TypeVar("T")


class StoreError(Exception):
    """The store file cannot be used (newer schema, not a store, closed) or a write was refused."""


@dataclass(frozen=True)
class Snapshot:
    """One complete tick: every SLO result and per-tool row the engine wrote together."""

    tick_id: int
    evaluated_at: float  # unix seconds, the tick's evaluation time
    slos: list[dict]  # one dict per SLO result as stored (SLOResult.to_json): "service", "slo", optional "tool"
    tools: list[dict]  # one dict per tool as stored (ToolTraffic.to_json): "service", "tool", ...
    meta: dict  # free-form tick info (duration, queries, errors, backend url, ...)

    @cached_property
    def results(self) -> list[SLOResult]:
        """The SLO results typed, read once per snapshot; StoreError for a row that is not one."""
        return self._typed(self.slos, SLOResult.from_json, "SLO result")

    @cached_property
    def tool_traffic(self) -> list[ToolTraffic]:
        """The per-tool rows typed, as `results`."""
        return self._typed(self.tools, ToolTraffic.from_json, "tool row")

    def _typed(self, rows: list[dict], read: Callable[[dict], Any], what: str) -> list:
        out = []
        for i, row in enumerate(rows):
            try:
                out.append(read(row))
            except ValueError as exc:
                raise StoreError(f"tick {self.tick_id}: {what} {i} is not readable: {exc}") from None
        return out


@dataclass(frozen=True)
class MaintenanceRecord:
    """A run-time maintenance window as kept: its scope and mode, who opened it, when and why,
    when it ends (or was ended, and by whom), and the Alertmanager silence made for it
    (`silence`: {"id": ..., "error": ...})."""

    id: int
    services: tuple[str, ...]
    tools: tuple[str, ...]
    slos: tuple[str, ...]
    mode: str
    reason: str
    opened_by: str
    opened_at: float
    starts_at: float
    ends_at: float
    ended_at: float | None = None
    ended_by: str | None = None
    silence: dict | None = None

    @property
    def until(self) -> float:
        """When it stops: its planned end, or when it was ended early."""
        return self.ends_at if self.ended_at is None else min(self.ends_at, self.ended_at)

    def active(self, at: float) -> bool:
        return self.starts_at <= at < self.until

    def window(self) -> Window:
        """The record as a slo.maintenance.Window, for an active record (its end is after its
        start); named unplanned-ID."""
        return Window(name=f"unplanned-{self.id}", reason=self.reason, mode=self.mode, services=self.services,
                      tools=self.tools, slos=self.slos, start=_utc(self.starts_at), end=_utc(self.until))

    def to_json(self) -> dict:
        return {"id": self.id, "services": list(self.services), "tools": list(self.tools), "slos": list(self.slos),
                "mode": self.mode, "reason": self.reason, "opened_by": self.opened_by, "opened_at": self.opened_at,
                "starts_at": self.starts_at, "ends_at": self.ends_at, "ended_at": self.ended_at,
                "ended_by": self.ended_by, "silence": self.silence}


# Schema migrations: step i takes the file from version i to i + 1 (PRAGMA user_version).
# Append a step to change the schema; never edit a released one. A new file runs them all.
_MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE ticks (
            id INTEGER PRIMARY KEY,
            evaluated_at REAL NOT NULL,
            meta TEXT NOT NULL
        )""",
        "CREATE INDEX ticks_by_time ON ticks (evaluated_at)",
        # evaluated_at is copied from the tick (immutable) so history is one index range scan.
        # tool is '' at service level: NULL would not match with = in queries.
        """CREATE TABLE slo_results (
            id INTEGER PRIMARY KEY,
            tick_id INTEGER NOT NULL,
            evaluated_at REAL NOT NULL,
            service TEXT NOT NULL,
            slo TEXT NOT NULL,
            tool TEXT NOT NULL,
            body TEXT NOT NULL
        )""",
        "CREATE INDEX slo_results_by_tick ON slo_results (tick_id)",
        "CREATE INDEX slo_results_by_key ON slo_results (service, slo, tool, evaluated_at)",
        """CREATE TABLE tool_results (
            id INTEGER PRIMARY KEY,
            tick_id INTEGER NOT NULL,
            service TEXT NOT NULL,
            tool TEXT NOT NULL,
            body TEXT NOT NULL
        )""",
        "CREATE INDEX tool_results_by_tick ON tool_results (tick_id)",
        """CREATE TABLE canary_decisions (
            id INTEGER PRIMARY KEY,
            evaluated_at REAL NOT NULL,
            service TEXT NOT NULL,
            baseline TEXT NOT NULL,
            canary TEXT NOT NULL,
            verdict TEXT NOT NULL,
            body TEXT NOT NULL
        )""",
        "CREATE INDEX canary_by_pair ON canary_decisions (service, baseline, canary, evaluated_at)",
        "CREATE INDEX canary_by_time ON canary_decisions (evaluated_at)",
    ),
    (
        # Run-time maintenance windows (`mcp-slo maintenance start`): every one is kept, never
        # pruned, with who opened and ended it and why; body holds the scope, mode, reason and
        # the Alertmanager silence made for it.
        """CREATE TABLE maintenance (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            opened_at REAL NOT NULL,
            opened_by TEXT NOT NULL,
            starts_at REAL NOT NULL,
            ends_at REAL NOT NULL,
            ended_at REAL,
            ended_by TEXT,
            body TEXT NOT NULL
        )""",
        "CREATE INDEX maintenance_by_end ON maintenance (ends_at)",
    ),
]
SCHEMA_VERSION = len(_MIGRATIONS)

BUSY_TIMEOUT = 10.0  # seconds a connection waits for a lock (sqlite3 sets busy_timeout from it)
_MAX_IDLE_READERS = 8  # pooled reader connections kept open; more concurrent readers open extra ones


class Store:
    """SQLite store of engine ticks and canary decisions; share one object between threads.

    Writes (`write_tick`, `write_canary`) go through one connection under a lock; reads take a
    pooled connection of their own (pooled rather than thread-local, so a thread-per-request
    server does not leave one open connection per thread it ever ran).
    """

    def __init__(self, path: str | os.PathLike, *, retention_seconds: float = 30 * 86400):
        if not retention_seconds > 0:
            raise StoreError(f"retention_seconds must be positive, not {retention_seconds!r}")
        self.path = os.fspath(path)
        self.retention_seconds = float(retention_seconds)
        self._write_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False
        self._writer = self._connect()
        try:
            self._check_version(self._writer)  # before touching the file: a newer one stays as it is
            # WAL: readers keep reading the last committed state while the writer appends.
            # NORMAL sync is safe in WAL (no corruption); a power cut may lose the last ticks.
            mode = self._writer.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"{self.path}: cannot switch to WAL journal mode (got {mode!r})")
            self._writer.execute("PRAGMA synchronous = NORMAL")
            self._open_schema()
        except sqlite3.Error as exc:
            self._writer.close()
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from exc
        except BaseException:
            self._writer.close()
            raise

    # -- writer side (one thread or process) ---------------------------------------------------

    def write_tick(self, evaluated_at: float, slos: list[SLOResult | dict], tools: list[ToolTraffic | dict],
                   meta: dict | None = None) -> int:
        """Write one tick atomically and return its id; prunes ticks older than retention.
        An SLOResult or a ToolTraffic is stored as its JSON form.

        Everything is encoded before the transaction starts, so a bad row raises StoreError
        without taking the write lock, and nothing of the tick is written.
        """
        at = _finite_time(evaluated_at)
        slo_rows = []
        for i, row in enumerate(slos):
            where = f"slos[{i}]"
            if isinstance(row, SLOResult):
                row = row.to_json()
            slo_rows.append((at, _text(row, "service", where), _text(row, "slo", where), _tool(row, where), _dumps(row, where)))
        tool_rows = []
        for i, row in enumerate(tools):
            where = f"tools[{i}]"
            if isinstance(row, ToolTraffic):
                row = row.to_json()
            tool_rows.append((_text(row, "service", where), _tool(row, where), _dumps(row, where)))
        meta_text = _dumps({} if meta is None else meta, "meta")
        with self._write() as db:
            tick_id = db.execute("INSERT INTO ticks (evaluated_at, meta) VALUES (?, ?)", (at, meta_text)).lastrowid
            db.executemany(
                "INSERT INTO slo_results (tick_id, evaluated_at, service, slo, tool, body) VALUES (?, ?, ?, ?, ?, ?)",
                [(tick_id, *r) for r in slo_rows],
            )
            db.executemany(
                "INSERT INTO tool_results (tick_id, service, tool, body) VALUES (?, ?, ?, ?)",
                [(tick_id, *r) for r in tool_rows],
            )
            # Same transaction: readers never see a tick whose rows are half deleted.
            self._prune(db, at - self.retention_seconds)
        return tick_id

    def write_canary(self, evaluated_at: float, decision: CanaryDecision | Mapping) -> int:
        """Record one canary decision (or its JSON form, which must read as one) as its JSON
        form; returns its id."""
        at = _finite_time(evaluated_at)
        if not isinstance(decision, CanaryDecision):
            try:
                decision = CanaryDecision.from_json(decision)
            except ValueError as exc:
                raise StoreError(f"decision: {exc}") from None
        row = decision.to_json()
        key = tuple(_text(row, name, "decision") for name in ("service", "baseline", "canary", "verdict"))
        body = _dumps(row, "decision")
        with self._write() as db:
            decision_id = db.execute(
                "INSERT INTO canary_decisions (evaluated_at, service, baseline, canary, verdict, body)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (at, *key, body),
            ).lastrowid
            self._prune(db, at - self.retention_seconds)
        return decision_id

    # -- reader side (any thread or process) ---------------------------------------------------

    def latest_tick(self) -> tuple[int, float] | None:
        """(tick id, evaluated_at) of the newest tick, without reading its results: what a
        reader needs to tell whether its copy of the latest snapshot is still the latest."""
        with self._read() as db:
            tick = _latest_tick(db)
        return None if tick is None else (tick[0], tick[1])

    def latest(self) -> Snapshot | None:
        """The newest tick by evaluation time (the last written on ties), or None when empty."""
        with self._read() as db:
            tick = _latest_tick(db)
            if tick is None:
                return None
            tick_id, at, meta = tick
            slos = [json.loads(b) for (b,) in db.execute("SELECT body FROM slo_results WHERE tick_id = ? ORDER BY id", (tick_id,))]
            tools = [json.loads(b) for (b,) in db.execute("SELECT body FROM tool_results WHERE tick_id = ? ORDER BY id", (tick_id,))]
        return Snapshot(tick_id=tick_id, evaluated_at=at, slos=slos, tools=tools, meta=json.loads(meta))

    def slo_history(self, service: str, slo: str, tool: str | None = None,
                    since: float | None = None, until: float | None = None) -> list[Evaluated[SLOResult]]:
        """One SLO's results with their times, oldest first; since and until are inclusive.

        tool None (or "") is the service-level result, a name is that tool's result.
        """
        sql = "SELECT id, evaluated_at, body FROM slo_results WHERE service = ? AND slo = ? AND tool = ?"
        args: list[Any] = [service, slo, tool or ""]
        if since is not None:
            sql += " AND evaluated_at >= ?"
            args.append(float(since))
        if until is not None:
            sql += " AND evaluated_at <= ?"
            args.append(float(until))
        with self._read() as db:
            rows = db.execute(sql + " ORDER BY evaluated_at, id", args).fetchall()
        return _evaluated(rows, SLOResult.from_json, "SLO result")

    def services(self) -> list[str]:
        """Services of the latest snapshot (from its SLO and tool rows), sorted."""
        with self._read() as db:
            tick = _latest_tick(db)
            if tick is None:
                return []
            rows = db.execute(
                "SELECT service FROM slo_results WHERE tick_id = ? UNION SELECT service FROM tool_results WHERE tick_id = ?",
                (tick[0], tick[0]),
            ).fetchall()
        return sorted(service for (service,) in rows)

    def canary_latest(self, service: str | None = None) -> list[Evaluated[CanaryDecision]]:
        """The latest decision per (service, baseline, canary), ordered by those, with its time."""
        where, args = ("WHERE service = ?", (service,)) if service is not None else ("", ())
        sql = f"""SELECT id, evaluated_at, body FROM (
                      SELECT id, evaluated_at, body, service, baseline, canary,
                             row_number() OVER (PARTITION BY service, baseline, canary
                                                ORDER BY evaluated_at DESC, id DESC) AS n
                      FROM canary_decisions {where})
                  WHERE n = 1 ORDER BY service, baseline, canary"""
        with self._read() as db:
            rows = db.execute(sql, args).fetchall()
        return _evaluated(rows, CanaryDecision.from_json, "canary decision")

    def canary_history(self, service: str, since: float | None = None,
                       limit: int | None = None) -> list[Evaluated[CanaryDecision]]:
        """Decisions of one service with their times, oldest first; since is inclusive; with
        `limit`, only the newest `limit` of them (still oldest first)."""
        sql, args = "SELECT id, evaluated_at, body FROM canary_decisions WHERE service = ?", [service]
        if since is not None:
            sql += " AND evaluated_at >= ?"
            args.append(float(since))
        sql += " ORDER BY evaluated_at DESC, id DESC"  # newest first, so LIMIT keeps the newest
        if limit is not None:
            sql += " LIMIT ?"
            args.append(max(0, int(limit)))
        with self._read() as db:
            rows = db.execute(sql, args).fetchall()
        return _evaluated(reversed(rows), CanaryDecision.from_json, "canary decision")

    def canary_times(self, since: float, until: float) -> list[float]:
        """The distinct times of the canary decisions between since and until (inclusive), oldest
        first: when the canaries were judged (what `Engine.judge_history` does not judge again)."""
        with self._read() as db:
            rows = db.execute("SELECT DISTINCT evaluated_at FROM canary_decisions"
                              " WHERE evaluated_at >= ? AND evaluated_at <= ? ORDER BY evaluated_at",
                              (float(since), float(until))).fetchall()
        return [at for (at,) in rows]

    # -- maintenance windows opened at run time ------------------------------------------------

    def open_maintenance(self, *, services: Iterable[str], tools: Iterable[str] = (), slos: Iterable[str] = (),
                         mode: str, reason: str, opened_by: str, opened_at: float, ends_at: float) -> MaintenanceRecord:
        """Keep a run-time window starting at `opened_at`; returns it with its id."""
        at, end = _finite_time(opened_at), _finite_time(ends_at)
        if end <= at:
            raise StoreError(f"a maintenance window must end after it starts ({end!r} <= {at!r})")
        body = {"services": list(services), "tools": list(tools), "slos": list(slos), "mode": mode,
                "reason": reason, "silence": None}
        text = _dumps(body, "maintenance")
        with self._write() as db:
            window_id = db.execute(
                "INSERT INTO maintenance (opened_at, opened_by, starts_at, ends_at, body) VALUES (?, ?, ?, ?, ?)",
                (at, opened_by, at, end, text)).lastrowid
        return self.maintenance_record(window_id)

    def end_maintenance(self, window_id: int, at: float, by: str) -> tuple[MaintenanceRecord | None, bool]:
        """End a window at `at`: (the record, True), or (the record, False) when it had ended
        already, or (None, False) when there is no such window."""
        at = _finite_time(at)
        with self._write() as db:
            changed = db.execute("UPDATE maintenance SET ended_at = ?, ended_by = ? WHERE id = ? AND ended_at IS NULL"
                                 " AND ends_at > ?", (at, by, int(window_id), at)).rowcount
        return self.maintenance_record(window_id), bool(changed)

    def set_maintenance_silence(self, window_id: int, silence: dict) -> None:
        """Note the Alertmanager silence made for a window (its id, or the error)."""
        with self._write() as db:
            row = db.execute("SELECT body FROM maintenance WHERE id = ?", (int(window_id),)).fetchone()
            if row is None:
                raise StoreError(f"no maintenance window {window_id}")
            body = {**json.loads(row[0]), "silence": silence}
            db.execute("UPDATE maintenance SET body = ? WHERE id = ?", (_dumps(body, "maintenance"), int(window_id)))

    def maintenance_record(self, window_id: int) -> MaintenanceRecord | None:
        with self._read() as db:
            rows = db.execute(f"SELECT {_MAINTENANCE_COLUMNS} FROM maintenance WHERE id = ?", (int(window_id),)).fetchall()
        found = _maintenance(rows)
        return found[0] if found else None

    def maintenance_records(self, active_at: float | None = None, limit: int | None = None) -> list[MaintenanceRecord]:
        """Run-time windows, newest first: all of them, or those active at `active_at`."""
        sql, args = f"SELECT {_MAINTENANCE_COLUMNS} FROM maintenance", []
        if active_at is not None:
            sql += " WHERE starts_at <= ? AND ends_at > ? AND (ended_at IS NULL OR ended_at > ?)"
            args += [float(active_at)] * 3
        sql += " ORDER BY opened_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(max(0, int(limit)))
        with self._read() as db:
            rows = db.execute(sql, args).fetchall()
        return _maintenance(rows)

    def close(self) -> None:
        """Close every connection; reads and writes raise StoreError afterwards. Idempotent."""
        with self._write_lock, self._pool_lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
            self._writer.close()  # the last connection of the file checkpoints the WAL
        for db in idle:
            db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions, we issue BEGIN/COMMIT ourselves.
        # check_same_thread=False: connections are shared, but only one thread uses one at a time
        # (the writer under _write_lock, a reader while it holds it out of the pool).
        try:
            return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from exc

    def _open_schema(self) -> None:
        db = self._writer
        if self._check_version(db) == SCHEMA_VERSION:
            return  # the common case takes no write lock (a reader process opening the file)
        # Re-read under the write lock: two processes opening a new file must not both create it.
        db.execute("BEGIN IMMEDIATE")
        try:
            version = self._check_version(db)
            if version == 0 and db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise StoreError(f"{self.path}: not an mcp-slo store (it has tables but no schema version)")
            for step in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[step]:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")  # transactional, unlike journal_mode
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _check_version(self, db: sqlite3.Connection) -> int:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: store schema version {version} is newer than this mcp-slo supports "
                f"({SCHEMA_VERSION}); upgrade mcp-slo or point it at another file"
            )
        return version

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            if self._closed:
                raise StoreError("the store is closed")
            db = self._writer
            try:
                # IMMEDIATE takes the write lock up front (waiting up to busy_timeout): a deferred
                # transaction upgrading from read to write could fail at once with "locked".
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: write failed: {exc}") from exc

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._pool_lock:
            if self._closed:
                raise StoreError("the store is closed")
            db = self._idle.pop() if self._idle else None
        if db is None:
            db = self._connect()
            db.execute("PRAGMA query_only = ON")  # a reader connection can never write by mistake
        try:
            # One read transaction per call: every SELECT in it sees the same committed state,
            # so a tick pruned or written meanwhile cannot tear what this call returns.
            db.execute("BEGIN")
            try:
                yield db
            finally:
                db.execute("COMMIT")
        except sqlite3.Error as exc:
            db.close()
            raise StoreError(f"{self.path}: read failed: {exc}") from exc
        except BaseException:
            db.close()
            raise
        with self._pool_lock:
            if not self._closed and len(self._idle) < _MAX_IDLE_READERS:
                self._idle.append(db)
                return
        db.close()

    def _prune(self, db: sqlite3.Connection, cutoff: float) -> None:
        # Rows first (through the tick index), then the ticks; canary decisions by their own time.
        old_ticks = "SELECT id FROM ticks WHERE evaluated_at < ?"
        db.execute(f"DELETE FROM slo_results WHERE tick_id IN ({old_ticks})", (cutoff,))
        db.execute(f"DELETE FROM tool_results WHERE tick_id IN ({old_ticks})", (cutoff,))
        db.execute("DELETE FROM ticks WHERE evaluated_at < ?", (cutoff,))
        db.execute("DELETE FROM canary_decisions WHERE evaluated_at < ?", (cutoff,))


def _latest_tick(db: sqlite3.Connection) -> tuple[int, float, str] | None:
    return db.execute("SELECT id, evaluated_at, meta FROM ticks ORDER BY evaluated_at DESC, id DESC LIMIT 1").fetchone()


def _evaluated(rows: Iterable[tuple[int, float, str]], read: Callable[[dict], T], what: str) -> list[Evaluated[T]]:
    """Rows of (id, evaluated_at, body) typed by `read`; StoreError naming a row that is not one."""
    out = []
    for row_id, at, body in rows:
        try:
            out.append(Evaluated(read(json.loads(body)), at))
        except ValueError as exc:  # json's errors are ValueErrors too
            raise StoreError(f"{what} row {row_id} is not readable: {exc}") from None
    return out


_MAINTENANCE_COLUMNS = "id, opened_at, opened_by, starts_at, ends_at, ended_at, ended_by, body"


def _maintenance(rows: Iterable[tuple]) -> list[MaintenanceRecord]:
    """Rows of _MAINTENANCE_COLUMNS as records; StoreError naming a row that does not read."""
    out = []
    for window_id, opened_at, opened_by, starts_at, ends_at, ended_at, ended_by, body in rows:
        try:
            fields = json.loads(body)
            out.append(MaintenanceRecord(
                id=window_id, opened_at=opened_at, opened_by=opened_by, starts_at=starts_at, ends_at=ends_at,
                ended_at=ended_at, ended_by=ended_by, services=tuple(fields["services"]), tools=tuple(fields["tools"]),
                slos=tuple(fields["slos"]), mode=fields["mode"], reason=fields["reason"], silence=fields["silence"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"maintenance window row {window_id} is not readable: {exc!r}") from None
    return out


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def _finite_time(value: float) -> float:
    try:
        at = float(value)
    except (TypeError, ValueError):
        at = math.nan
    if not math.isfinite(at):
        raise StoreError(f"evaluated_at must be finite unix seconds, not {value!r}")
    return at


def _text(row: Mapping, key: str, where: str) -> str:
    if not isinstance(row, Mapping):
        raise StoreError(f"{where}: expected a dict, got {type(row).__name__}")
    value = row.get(key)
    if not isinstance(value, str):
        raise StoreError(f"{where}: {key!r} must be a string, got {value!r}")
    _encodable(value, key, where)
    return value


def _tool(row: Mapping, where: str) -> str:
    tool = row.get("tool")
    if tool is not None and not isinstance(tool, str):
        raise StoreError(f"{where}: 'tool' must be a string or None, got {tool!r}")
    if tool:
        _encodable(tool, "tool", where)
    return tool or ""


def _encodable(value: str, key: str, where: str) -> None:
    # Indexed columns are bound as UTF-8: a lone surrogate would fail mid-transaction.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise StoreError(f"{where}: {key!r} is not valid Unicode text: {exc}") from exc


def _dumps(value: Any, where: str) -> str:
    # allow_nan: NaN and infinities are legitimate results (no traffic, empty windows).
    # ASCII output escapes lone surrogates too, so any Python str can be stored and read back.
    try:
        return json.dumps(value, allow_nan=True, ensure_ascii=True)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{where}: cannot be stored as JSON: {exc}") from exc

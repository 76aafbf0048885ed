"""Writing audit records without slowing MCP calls: `submit` appends a record to a bounded
queue; one daemon thread seals records in queue order (the chain) and writes them in batches to
every sink.

The queue is a deque the writer's thread polls every LINGER seconds while records come (and
waits on an event once idle): a submit takes no lock and wakes no thread. Waking the writer for
every record, as a queue.Queue does, cost an in-process call 8% in thread switches and the GIL;
records written in batches a few milliseconds apart cost a fraction of that.

When the queue is full, "drop" mode drops the record (counted), "block" mode waits for room. A
sink's failed write is logged once per kind of error, counted, and its records are kept for the
next batch (up to `queue_size` per sink; beyond it the oldest are dropped, counted), so one
failing sink neither stops the others nor the MCP server.

Metrics (on the given registry):
    mcp_audit_records_total{sink}            records written by each sink
    mcp_audit_records_dropped_total{reason}  queue_full, closed (submitted after close), backlog
                                             (a failing sink's oldest kept records), build_failed
                                             (a record submitted as a function that raised)
    mcp_audit_write_errors_total{sink}       failed writes
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter

from collector.audit.chain import Chain, key_from_env
from collector.audit.config import WHEN_FULL, AuditConfig
from collector.audit.sinks import JsonlFileSink, Sink, StdoutSink

log = logging.getLogger(__name__)

MAX_BATCH = 1000
RETRY_AFTER = (0.5, 30.0)  # a failing sink is retried after 0.5s, doubling up to 30s
CLOSE_RETRY = 60.0  # close(timeout=None): how long a failing sink's records are retried
LINGER = 0.01  # how often the writer takes what was queued, while records come
IDLE_POLLS = 100  # after this many empty polls (a second) the writer sleeps until a submit wakes it
_STOP = object()


class _Flush:
    """A marker `flush` queues: set once every record queued before it is handled."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class AuditWriter:
    """Thread-safe `submit` from any thread or event loop; `close` once at shutdown."""

    def __init__(self, sinks: Sequence[Sink], *, queue_size: int = 10000, when_full: str = "drop",
                 chain: Chain | None = None, registry: CollectorRegistry = REGISTRY):
        """`chain` seals the records (its key, where it resumes); a new one (or None: unkeyed)
        resumes after the newest record the sinks hold."""
        if when_full not in WHEN_FULL:
            raise ValueError(f"when_full must be one of {', '.join(WHEN_FULL)}, not {when_full!r}")
        if queue_size <= 0:
            raise ValueError(f"queue_size must be positive, not {queue_size}")
        self.sinks = list(sinks)
        self.queue_size = queue_size
        self.when_full = when_full
        # A new chain (none, or one at seq 0) continues the one the sinks hold, with its key:
        # starting again at seq 1 beside an existing trail would break it
        newest = _newest(self.sinks) if chain is None or chain.last_seq == 0 else None
        self.chain = Chain.resume(newest, chain.key if chain else None) if newest or chain is None else chain
        self._queue: deque[Any] = deque()  # append and popleft are atomic: no lock
        self._asleep = False  # the writer waits on _wake: a submit sets it
        self._wake = threading.Event()
        self._room = threading.Condition()  # block mode: submits wait here for room
        self._backlog: dict[int, list[dict[str, Any]]] = {id(s): [] for s in self.sinks}
        self._logged: set[tuple[str, str]] = set()
        self._closed = False
        self.written = Counter("mcp_audit_records", "Audit records written, per sink", ["sink"], registry=registry)
        self.dropped = Counter("mcp_audit_records_dropped", "Audit records dropped, per reason", ["reason"],
                               registry=registry)
        self.errors = Counter("mcp_audit_write_errors", "Failed writes of audit records, per sink", ["sink"],
                              registry=registry)
        for sink in self.sinks:  # the series exist from the start, at 0
            self.written.labels(sink.name)
            self.errors.labels(sink.name)
        for reason in ("queue_full", "closed", "backlog", "build_failed"):
            self.dropped.labels(reason)
        self._thread = threading.Thread(target=self._run, name="mcp-audit-writer", daemon=True)
        self._thread.start()

    @classmethod
    def from_config(cls, config: AuditConfig, registry: CollectorRegistry = REGISTRY,
                    environ: Mapping[str, str] | None = None, *, service: str = "", version: str = "",
                    ) -> AuditWriter:
        """The sinks of `config`, the chain resumed from its file with the key from its variable;
        `service` and `version` name the OTLP sink's resource."""
        sinks: list[Sink] = []
        if config.path is not None:
            sinks.append(JsonlFileSink(config.path, max_bytes=config.max_bytes, rotate_every=config.rotate_every,
                                       retention=config.retention))
        if config.stdout:
            sinks.append(StdoutSink())
        if config.otlp:
            from collector.audit.otlp_sink import (
                OtlpLogSink,  # the otel extra, only when asked for
            )

            sinks.append(OtlpLogSink(service, version))
        if not sinks:
            raise ValueError("the audit trail needs a file (path), stdout or otlp")
        key = key_from_env(config.key_env, os.environ if environ is None else environ)
        return cls(sinks, queue_size=config.queue_size, when_full=config.when_full,
                   chain=Chain.resume(_newest(sinks), key), registry=registry)

    # --- any thread ---

    def submit(self, record: Mapping[str, Any] | Callable[[], Mapping[str, Any]]) -> bool:
        """Queue `record` (a dict of the record's fields, not yet sealed, or a function that
        builds it, called on the writer's thread); False when dropped."""
        if self._closed:
            self.dropped.labels("closed").inc()
            self._log_once("submit", "closed", "audit record submitted after close: dropped")
            return False
        if len(self._queue) >= self.queue_size:
            if self.when_full != "block":
                self.dropped.labels("queue_full").inc()
                return False
            with self._room:
                while len(self._queue) >= self.queue_size and self._thread.is_alive():
                    self._room.wait(0.1)
        self._put(record)
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record accepted so far is handled; False when `timeout` passed first."""
        if not self._thread.is_alive():
            return not self._queue
        marker = _Flush()
        self._put(marker)
        return marker.done.wait(timeout)

    def _put(self, item: Any) -> None:
        self._queue.append(item)
        if self._asleep:  # read after the append: the writer checks the queue after setting it
            self._wake.set()

    def close(self, timeout: float | None = 10.0) -> bool:
        """Write what is queued, stop the thread and close the sinks; False (sinks left open)
        when the thread did not finish within `timeout`."""
        if not self._closed:
            self._closed = True
            # a failing sink's kept records are retried until then (leaving time to join)
            self._close_deadline = time.monotonic() + (0.8 * timeout if timeout is not None else CLOSE_RETRY)
            self._put(_STOP)
            self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - one sink's failure must not keep the others open
                log.warning("audit sink %s: close failed: %s", sink.name, exc)
        return True

    # --- the writer's thread ---

    def _run(self) -> None:
        retry_in, idle = RETRY_AFTER[0], 0
        while True:
            batch, flushes, stop = self._take()
            if not batch and not flushes and not stop and not any(self._backlog.values()):
                idle += 1
                self._idle(idle)
                continue
            idle = 0
            try:
                failed = self._write(batch)
            except Exception:  # a bug must not end the audit trail: log it, go on
                log.exception("audit writer: unexpected error")
                failed = True
            for marker in flushes:
                marker.done.set()
            if stop:
                self._drain_backlog()
                return
            # a failing sink is retried after a growing pause (records queue up meanwhile)
            retry_in = min(retry_in * 2, RETRY_AFTER[1]) if failed else RETRY_AFTER[0]
            if failed:
                self._wake.wait(retry_in)  # close sets it: a long pause must not hold up the stop
                self._wake.clear()
            else:
                time.sleep(LINGER)

    def _idle(self, polls: int) -> None:
        if polls < IDLE_POLLS:
            time.sleep(LINGER)
            return
        self._asleep = True
        if not self._queue:  # checked after setting _asleep: a submit since then sets _wake
            self._wake.wait()
        self._wake.clear()
        self._asleep = False

    def _drain_backlog(self) -> None:
        """At close: retry what failing sinks kept until the close's deadline; what is still
        unwritten then is dropped, counted (reason "backlog") and logged, never lost silently."""
        retry_in = RETRY_AFTER[0]
        while any(self._backlog.values()) and (left := self._close_deadline - time.monotonic()) > 0:
            time.sleep(min(retry_in, left))
            self._write([])
            retry_in = min(retry_in * 2, RETRY_AFTER[1])
        for sink in self.sinks:
            kept = self._backlog[id(sink)]
            if kept:
                self.dropped.labels("backlog").inc(len(kept))
                log.error("audit sink %s: %d record(s) still unwritten at close: dropped", sink.name, len(kept))
                kept.clear()

    def _take(self) -> tuple[list[Any], list[_Flush], bool]:
        """Up to MAX_BATCH records from the queue, the flush markers among them, and whether
        close's stop came (nothing after it is taken)."""
        batch: list[Any] = []
        flushes: list[_Flush] = []
        stop = False
        while len(batch) < MAX_BATCH:
            try:
                item = self._queue.popleft()
            except IndexError:
                break
            if item is _STOP:
                stop = True
                break
            if isinstance(item, _Flush):
                flushes.append(item)
            else:
                batch.append(item)
        if self.when_full == "block" and batch:
            with self._room:
                self._room.notify_all()
        return batch, flushes, stop

    def _write(self, batch: Iterable[Mapping[str, Any]]) -> bool:
        """Seal `batch` and write it (after any kept records) to every sink; True when one failed."""
        sealed = [self.chain.seal(record) for record in self._built(batch)]
        failed = False
        for sink in self.sinks:
            kept = self._backlog[id(sink)]
            kept.extend(sealed)
            if not kept:
                continue
            try:
                sink.write(kept)
            except Exception as exc:  # noqa: BLE001 - logged once per kind and counted; the records are kept
                failed = True
                self.errors.labels(sink.name).inc()
                self._log_once(sink.name, type(exc).__name__,
                               f"audit sink {sink.name} failed to write ({type(exc).__name__}: {exc}); "
                               "keeping its records for a retry")
                if len(kept) > self.queue_size:
                    self.dropped.labels("backlog").inc(len(kept) - self.queue_size)
                    del kept[:len(kept) - self.queue_size]
                continue
            self.written.labels(sink.name).inc(len(kept))
            kept.clear()
        return failed

    def _built(self, batch: Iterable[Any]) -> Iterator[Mapping[str, Any]]:
        """The records of `batch`, a function's built now; one that fails is dropped (counted)."""
        for item in batch:
            if not callable(item):
                yield item
                continue
            try:
                yield item()
            except Exception as exc:  # noqa: BLE001 - a bad request must not stop the trail
                self.dropped.labels("build_failed").inc()
                self._log_once("build", type(exc).__name__,
                               f"audit record could not be built ({type(exc).__name__}: {exc}): dropped")

    def _log_once(self, where: str, kind: str, message: str) -> None:
        if (where, kind) not in self._logged:
            self._logged.add((where, kind))
            log.error(message)


def _newest(sinks: Iterable[Sink]) -> dict[str, Any] | None:
    """The record with the highest seq any sink holds: where the chain resumes."""
    records = [r for r in (getattr(s, "last_record", lambda: None)() for s in sinks) if r is not None]
    return max(records, key=lambda r: r.get("seq", 0), default=None)


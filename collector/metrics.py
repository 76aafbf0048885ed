"""Metric families and the per-service recorder that every adapter calls.

The hot path is `Recorder.begin()` / `Recorder.end()`; see `Recorder` for how
it stays cheap while /metrics stays exact.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.samples import Exemplar

from collector import names, semconv


@dataclass(frozen=True)
class Families:
    operations: Counter
    duration: Histogram
    active: Gauge
    buckets: tuple[float, ...]
    # (service, version) -> [operations in flight], read by the gauge at scrape
    # time (single-process mode only)
    in_flight: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    # recorders whose finished operations are folded in when the registry is
    # collected; held strongly, so a dropped recorder's last operations still count
    recorders: list[Recorder] = field(default_factory=list)


class _Flush:
    """Registered before the metric families: when the registry is collected
    (a scrape), every recorder first folds its finished operations into them."""

    families: Families | None = None  # set right after the families exist

    def describe(self):
        return []

    def collect(self):
        if self.families is not None:
            for recorder in tuple(self.families.recorders):
                recorder.flush()
        return []


# Keyed by the registry object (weakly): an id() could be reused by a new
# registry after the old one is garbage-collected.
_families: "weakref.WeakKeyDictionary[CollectorRegistry, Families]" = weakref.WeakKeyDictionary()
_families_lock = threading.Lock()


def families(registry: CollectorRegistry = REGISTRY, buckets: Sequence[float] | None = None) -> Families:
    """The three metric families of `registry`, created on first use.

    Several services may share a registry (one process hosting two MCP
    servers); they must then agree on the histogram buckets.
    """
    wanted = tuple(float(b) for b in (buckets or names.DEFAULT_BUCKETS))
    if list(wanted) != sorted(set(wanted)) or not wanted:
        raise ValueError(f"histogram buckets must be distinct and increasing, got {list(wanted)}")
    with _families_lock:
        found = _families.get(registry)
        if found is not None:
            if buckets is not None and found.buckets != wanted:
                raise ValueError(
                    f"this registry already has {names.OPERATION_DURATION} with buckets {list(found.buckets)}; "
                    f"cannot also use {list(wanted)}"
                )
            return found
        flush = _Flush()
        registry.register(flush)  # type: ignore[arg-type]
        made = Families(
            operations=Counter(
                names.OPERATIONS_FAMILY,
                "MCP operations handled, by outcome.",
                names.OPERATION_LABELS,
                registry=registry,
            ),
            duration=Histogram(
                names.OPERATION_DURATION,
                "Duration of MCP operations that completed (cancelled ones are not observed).",
                names.DURATION_LABELS,
                buckets=wanted,
                registry=registry,
            ),
            active=Gauge(
                names.OPERATIONS_ACTIVE,
                "MCP operations in flight.",
                names.ACTIVE_LABELS,
                registry=registry,
                multiprocess_mode="livesum",
            ),
            buckets=wanted,
        )
        flush.families = made
        _families[registry] = made
        return made


def resolve_identity(service: str | None, version: str | None, *, fallback_service: str | None = None,
                     fallback_version: str | None = None) -> tuple[str, str]:
    """service and version from arguments, else the environment, else the fallbacks.

    They come from whoever deploys the server, never from the MCP peer.
    """
    service = service or os.environ.get(names.SERVICE_ENV) or fallback_service
    version = version or os.environ.get(names.VERSION_ENV) or fallback_version or "unknown"
    if not service:
        raise ValueError(f"no service name: pass service=... or set {names.SERVICE_ENV}")
    return service, version


def admissible_tool_name(name: object) -> bool:
    """Whether `name` may ever be a `tool` label value: a non-empty string of at
    most names.MAX_TOOL_NAME_LENGTH characters, not the overflow label itself."""
    return isinstance(name, str) and 0 < len(name) <= names.MAX_TOOL_NAME_LENGTH and name != names.OTHER_TOOL


class ToolNames:
    """Bounds the `tool` label: known tools keep their name, the rest is `_other`.

    A tool is known when it was registered, listed in a tools/list result, or
    answered a call successfully. At most `limit` names are kept, so a client
    sending arbitrary names cannot grow the number of series, and a name longer
    than names.MAX_TOOL_NAME_LENGTH is never kept, so it cannot grow their size.
    """

    def __init__(
        self,
        limit: int = names.DEFAULT_MAX_TOOLS,
        known: Iterable[str] = (),
        lookup: Callable[[str], bool] | None = None,
    ):
        if limit < 1:
            raise ValueError("the tool limit must be at least 1")
        self.limit = limit
        # Asked about a name not yet known (e.g. a server's tool registry), so tools
        # added after start-up get their own label.
        self.lookup = lookup
        self._known: set[str] = set()
        self.learn(known)

    def learn(self, tool_names: Iterable[str]) -> None:
        for name in tool_names:
            if len(self._known) >= self.limit:
                return
            if admissible_tool_name(name):
                self._known.add(name)

    def learn_from_list_result(self, result: object) -> None:
        """Learn the names in a tools/list result (a dict as on the wire)."""
        if isinstance(result, dict):
            tools = result.get("tools")
            if isinstance(tools, list):
                self.learn(t.get("name") for t in tools if isinstance(t, dict))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._known

    def label(self, name: object, *, confirmed: bool = False) -> str:
        """The label for a called tool; `confirmed` when the call succeeded, which
        proves the tool exists."""
        if not admissible_tool_name(name):  # peer data: could be anything, even unhashable or huge
            return names.OTHER_TOOL
        if name in self._known:
            return name
        if confirmed or (self.lookup is not None and self._exists(name)):
            self.learn((name,))
            if name in self._known:
                return name
        return names.OTHER_TOOL

    def _exists(self, name: str) -> bool:
        try:
            return bool(self.lookup(name))  # type: ignore[misc]
        except Exception:
            return False


# In single-process mode, fold finished operations in at least this often
# between scrapes, so the queue stays small.
FLUSH_EVERY = 256
_STATUSES = frozenset(names.STATUSES)


def method_label(method: object) -> str:
    return method if method in names.CLIENT_METHODS else names.OTHER_METHOD  # type: ignore[return-value]


class Recorder:
    """Records MCP operations of one service and version.

    Adapters call `begin()` when a request arrives and `end()` exactly once
    when its outcome is known.

    This is the hot path of every instrumented operation. In single-process
    mode `end()` only appends the outcome to a queue and the in-flight gauge is
    a plain integer read at scrape time; the queue is folded into the counter
    and histogram when the registry is collected (every scrape), or every
    `FLUSH_EVERY` operations, by `flush()`, which adds to the cached value
    objects directly (bucket found by bisection). /metrics is therefore always
    exact. In multiprocess mode, where values live in files other processes
    read, `end()` records at once through the public methods.

    `metrics` says which histograms a finished operation goes to: mcp-slo's
    families, the semantic conventions' (collector.semconv_prometheus), or
    both; `observers` (the OTLP push) get every finished operation at flush
    time too. A request's trace becomes its bucket's exemplar in both histograms.
    """

    def __init__(
        self,
        service: str,
        version: str,
        *,
        registry: CollectorRegistry = REGISTRY,
        buckets: Sequence[float] | None = None,
        max_tools: int = names.DEFAULT_MAX_TOOLS,
        tools: Iterable[str] = (),
        tool_lookup: Callable[[str], bool] | None = None,
        metrics: str = semconv.MCP_SLO,
        transport: str | None = None,
    ):
        if metrics not in semconv.METRICS_CHOICES:
            raise ValueError(f"metrics must be one of {', '.join(semconv.METRICS_CHOICES)}; got {metrics!r}")
        self.service = service
        self.version = version
        self.metrics = metrics
        self.transport = transport  # network.transport, when the adapter knows it
        # With metrics="otel" mcp-slo's families live in a registry of their own that
        # nobody scrapes (the recorder still counts there: one code path).
        self.families = families(registry if metrics != semconv.OTEL else CollectorRegistry(), buckets)
        self.tools = ToolNames(max_tools, tools, tool_lookup)
        self._bounds = self.families.buckets
        active = self.families.active.labels(service, version)
        self._direct = values.ValueClass is values.MutexValue
        if self._direct:
            # Shared by every recorder of this service and version in the registry.
            with _families_lock:
                cell = self.families.in_flight.get((service, version))
                if cell is None:
                    cell = self.families.in_flight[(service, version)] = [0]
                    active.set_function(lambda: cell[0])
            self._in_flight = cell
        else:
            self._active = active
        # (method, tool, status) -> (count, observe or None, per-bucket adds or None):
        # direct value adds, or the public methods in multiprocess mode
        self._children: dict[tuple[str, str, str], tuple] = {}
        self._lock = threading.Lock()
        # finished operations not yet folded in: (method, tool, status, seconds, error,
        # trace); a deque because appends and pops from different threads are atomic
        self._done: deque[tuple] = deque()
        self.families.recorders.append(self)
        # Called with every finished, not cancelled, operation when it is folded in:
        # (method, tool, status, seconds, error, trace, protocol version).
        self.observers: list[Callable[..., None]] = []
        self.otlp = None  # the collector.otlp.OtlpPush, when one pushes this recorder's operations
        # (method, tool, status, error, protocol) -> semconv attributes, made once
        self._attributes: dict[tuple, dict[str, str]] = {}
        self._semconv = None
        if metrics != semconv.MCP_SLO:
            from collector.semconv_prometheus import semconv_histogram

            self._semconv = semconv_histogram(registry)
            self._semconv.resources[(service, version)] = None
            self._semconv.recorders.append(self)
            self._semconv_series: dict[tuple, object] = {}
            self.observers.append(self._observe_semconv)

    def begin(self) -> float:
        if self._direct:
            # Not a locked add: every adapter calls begin/end from its event loop.
            self._in_flight[0] += 1
        else:
            self._active.inc()
        return time.perf_counter()

    def end(self, method: str, tool: str, status: str, started: float, error: object = None,
            trace: tuple[str, str] | None = None, protocol: str | None = None) -> None:
        """Count one finished operation. `method` and `tool` must already be labels
        (see `method_label` and `ToolNames.label`); `status` one of names.STATUSES.

        The rest is for the semantic conventions and exemplars, None when unknown:
        `error` the JSON-RPC error code (int) or error.type (str) of a failure,
        `trace` the request's (trace_id, span_id), `protocol` the MCP protocol version."""
        if status not in _STATUSES:  # here, not at scrape time, where it would break /metrics
            raise ValueError(f"unknown status {status!r}")
        if trace is not None:
            trace = (trace[0], trace[1], time.time())  # the exemplar's timestamp
        if self._direct:
            self._done.append((method, tool, status, time.perf_counter() - started, error, trace, protocol))
            self._in_flight[0] -= 1
            if len(self._done) >= FLUSH_EVERY:
                self.flush()
        else:
            self._record(method, tool, status, time.perf_counter() - started, error, trace, protocol)
            self._active.dec()

    def flush(self) -> None:
        """Fold the finished operations into the metric families."""
        done = self._done
        while True:
            try:
                item = done.popleft()
            except IndexError:
                return
            self._record(*item)

    def _record(self, method: str, tool: str, status: str, elapsed: float, error: object,
                trace: tuple | None, protocol: str | None) -> None:
        children = self._children.get((method, tool, status))
        if children is None:
            children = self._make_children((method, tool, status))
        count, observe, bucket_adds, bucket_values = children
        count(1.0)
        if observe is None:
            return  # cancelled: not observed
        exemplar = None if trace is None else Exemplar({"trace_id": trace[0], "span_id": trace[1]}, elapsed, trace[2])
        if bucket_adds is not None:
            observe(elapsed)
            # the first bound >= elapsed; past the last bound it is the +Inf bucket
            i = bisect_left(self._bounds, elapsed)
            bucket_adds[i](1.0)
            if exemplar is not None:
                bucket_values[i].set_exemplar(exemplar)
        else:
            observe(elapsed, exemplar)
        for observer in self.observers:
            observer(method, tool, status, elapsed, error, trace, protocol)

    def semconv_attributes(self, method: str, tool: str, status: str, error: object,
                           protocol: str | None) -> dict[str, str]:
        """The semantic-convention attributes of an operation (cached: a few distinct sets)."""
        key = (method, tool, status, error, protocol)
        found = self._attributes.get(key)
        if found is None:
            found = semconv.attributes(method, tool, status, error, protocol, self.transport)
            if len(self._attributes) < 10_000:  # bounded by the labels; a guard all the same
                self._attributes[key] = found
        return found

    def _observe_semconv(self, method: str, tool: str, status: str, elapsed: float, error: object,
                         trace: tuple | None, protocol: str | None) -> None:
        key = (method, tool, status, error, protocol)
        series = self._semconv_series.get(key)
        if series is None:
            series = self._semconv.series(self.semconv_attributes(method, tool, status, error, protocol))
            self._semconv_series[key] = series
        self._semconv.observe(series, elapsed, trace)

    def _make_children(self, key: tuple[str, str, str]) -> tuple:
        method, tool, status = key
        with self._lock:
            counter = self.families.operations.labels(self.service, self.version, method, tool, status)
            # Cancelled operations are neither good nor bad: keep them out of the
            # latency distribution so latency SLIs do not count them.
            histogram = (
                None if status == names.CANCELLED
                else self.families.duration.labels(self.service, self.version, method, tool)
            )
            if self._direct:
                children = (
                    counter._value.inc,
                    None if histogram is None else histogram._sum.inc,
                    None if histogram is None else tuple(b.inc for b in histogram._buckets),
                    None if histogram is None else tuple(histogram._buckets),
                )
            else:
                children = (counter.inc, None if histogram is None else histogram.observe, None, None)
            self._children[key] = children
            return children

    def tool_label(self, method: str, name: object, *, succeeded: bool = False) -> str:
        """The `tool` label for a request: empty unless it is a tools/call."""
        if method != "tools/call":
            return ""
        return self.tools.label(name, confirmed=succeeded)

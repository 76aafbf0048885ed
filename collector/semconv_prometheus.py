"""The semantic conventions' duration histogram in Prometheus form, without the OpenTelemetry SDK.

Written exactly as opentelemetry-exporter-prometheus writes
`mcp.server.operation.duration` (tests/test_otel_emit.py puts the two side by
side): `mcp_server_operation_duration_seconds` with the attribute keys as labels
(dots to underscores, sorted, "" where a series lacks an attribute another has),
the otel_scope_* labels, le spelled "0.01", "1", "300"; and the resource as
`target_info{service_name, service_version}`.

The `Recorder` folds its finished operations in when it flushes (every scrape
first flushes), so a call costs nothing more than with mcp-slo's metrics alone.
"""

from __future__ import annotations

import threading
import weakref
from bisect import bisect_left

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics_core import HistogramMetricFamily, InfoMetricFamily
from prometheus_client.samples import Exemplar

from collector import semconv
from collector.tracecontext import Trace

_BOUNDS = tuple(float(b) for b in semconv.BUCKETS)
_LE = [f"{b}" for b in semconv.BUCKETS] + ["+Inf"]


class Series:
    """One attribute set's histogram: counts per bucket (not cumulative), sum, exemplars."""

    __slots__ = ("counts", "exemplars", "labels", "total")

    def __init__(self, labels: dict[str, str]):
        self.labels = labels
        self.counts = [0] * (len(_BOUNDS) + 1)
        self.total = 0.0
        self.exemplars: list[Exemplar | None] = [None] * (len(_BOUNDS) + 1)

    def observe(self, seconds: float, trace: tuple | None) -> None:
        i = bisect_left(_BOUNDS, seconds)
        self.counts[i] += 1
        self.total += seconds
        if trace is not None:
            self.exemplars[i] = Exemplar({"trace_id": trace[0], "span_id": trace[1]}, seconds, trace[2])


class SemconvHistogram:
    """A prometheus-client collector: the histogram and target_info of every
    recorder writing to it (several services may share a registry: one
    target_info each, as several OpenTelemetry resources would give)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # flushes come from the event loop and the scrape thread
        self._series: dict[tuple, Series] = {}
        self.resources: dict[tuple[str, str], None] = {}
        self.recorders: list = []  # flushed before every collection
        version = semconv.scope_version()
        self._scope = dict(zip(semconv.SCOPE_LABELS, (semconv.SCOPE_NAME, version, "")))

    def series(self, attributes: dict[str, str]) -> Series:
        """The series for these attributes (OpenTelemetry keys), made on first use."""
        key = tuple(sorted(attributes.items()))
        with self._lock:
            found = self._series.get(key)
            if found is None:
                labels = {semconv.prometheus_label(k): v for k, v in attributes.items()}
                found = self._series[key] = Series({**labels, **self._scope})
            return found

    def observe(self, series: Series, seconds: float, trace: Trace | None) -> None:
        with self._lock:
            series.observe(seconds, trace)

    def describe(self):
        return []

    def collect(self):
        for recorder in tuple(self.recorders):
            recorder.flush()
        for service, version in tuple(self.resources):
            info = InfoMetricFamily("target", "Target metadata")
            info.add_metric([], {"service_name": service, "service_version": version})
            yield info
        with self._lock:
            rows = [(s.labels, list(s.counts), s.total, list(s.exemplars)) for s in self._series.values()]
        keys = sorted({k for labels, *_ in rows for k in labels})
        family = HistogramMetricFamily(semconv.PROMETHEUS_DURATION, semconv.DURATION_HELP, labels=keys)
        for labels, counts, total, exemplars in rows:
            buckets, cumulative = [], 0
            for le, count, exemplar in zip(_LE, counts, exemplars):
                cumulative += count
                buckets.append((le, cumulative, exemplar) if exemplar is not None else (le, cumulative))
            family.add_metric([labels.get(k, "") for k in keys], buckets, total)
        yield family


_collectors: weakref.WeakKeyDictionary[CollectorRegistry, SemconvHistogram] = weakref.WeakKeyDictionary()
_collectors_lock = threading.Lock()


def semconv_histogram(registry: CollectorRegistry = REGISTRY) -> SemconvHistogram:
    """The registry's semantic-convention histogram, registered on first use."""
    with _collectors_lock:
        found = _collectors.get(registry)
        if found is None:
            found = _collectors[registry] = SemconvHistogram()
            registry.register(found)  # type: ignore[arg-type]
        return found

"""OTLP push of the semantic conventions' duration histogram, through the OpenTelemetry SDK.

Imported only when asked for (`instrument(..., otlp=True)`, `mcp-slo proxy --otlp`),
and needs the `otel` extra. Configured by the standard environment variables:
OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_METRICS_ENDPOINT (default
http://localhost:4318), OTEL_METRIC_EXPORT_INTERVAL, OTEL_SERVICE_NAME and
OTEL_RESOURCE_ATTRIBUTES; where they set no service.name / service.version, the
recorder's service and version fill them.

The SDK is off the hot path: the recorder hands each finished operation to
`OtlpPush.record` when it folds its queue in, and the reader folds the queue in
before every export and at shutdown, so every finished operation is exported.
"""

from __future__ import annotations

from typing import Any

from collector import semconv
from collector.command import CommandError

INSTALL_HINT = "OTLP export needs the otel extra: pip install 'mcp-slo[otel]'"

try:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter,
    )
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
except ImportError as exc:  # one line, naming the extra
    raise CommandError(f"{INSTALL_HINT} ({exc.name} is missing)") from None


class _FlushingReader(PeriodicExportingMetricReader):
    """Folds the recorders' finished operations in before every collection
    (each periodic export, force_flush and the final one at shutdown)."""

    def __init__(self, exporter: Any, recorders: list, **kwargs: Any):
        super().__init__(exporter, **kwargs)
        self._recorders = recorders

    def collect(self, timeout_millis: float = 10_000) -> None:
        for recorder in tuple(self._recorders):
            recorder.flush()
        super().collect(timeout_millis=timeout_millis)


def resource_for(service: str, version: str) -> Resource:
    """The SDK's default resource, our service and version, then the environment's
    OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME over them (the environment wins)."""
    ours = Resource.create({semconv.SERVICE_NAME: service, semconv.SERVICE_VERSION: version})
    return ours.merge(OTELResourceDetector().detect())


class OtlpPush:
    """Pushes one recorder's operations as `mcp.server.operation.duration` over OTLP/HTTP."""

    def __init__(self, recorder: Any, *, exporter: Any = None, export_interval_millis: float | None = None):
        self.recorder = recorder
        self._recorders = [recorder]
        self.reader = _FlushingReader(exporter or OTLPMetricExporter(), self._recorders,
                                      export_interval_millis=export_interval_millis)
        # shutdown_on_exit: the SDK exports what is left when the process exits
        self.provider = MeterProvider(metric_readers=[self.reader],
                                      resource=resource_for(recorder.service, recorder.version))
        meter = self.provider.get_meter(semconv.SCOPE_NAME, semconv.scope_version())
        self.histogram = meter.create_histogram(
            semconv.DURATION, unit=semconv.DURATION_UNIT, description=semconv.DURATION_HELP,
            explicit_bucket_boundaries_advisory=list(semconv.BUCKETS),
        )
        recorder.observers.append(self.record)
        recorder.otlp = self  # so its owner can force_flush or shut it down

    def record(self, method: str, tool: str, status: str, elapsed: float, error: object,
               trace: object, protocol: str | None) -> None:
        self.histogram.record(elapsed, self.recorder.semconv_attributes(method, tool, status, error, protocol))

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Export everything finished so far, now."""
        return self.provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Export what is left and stop."""
        self.provider.shutdown()


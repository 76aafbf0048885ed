"""The audit trail as OpenTelemetry logs over OTLP/HTTP (the `otel` extra), for a pipeline that
already collects logs (an OpenTelemetry Collector, Loki, Elastic, Splunk...).

One log record per audit record: its body the sealed record as one JSON line, exactly as the
file keeps it (so `seq`, `prev` and `hash` can be verified downstream), its timestamp the
request's time, severity INFO for a success and WARN otherwise, event name `mcp.audit`, and the
fields a query filters on as attributes. Configured by the standard variables
(OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS,
OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME).

The sink exports each batch itself, on the writer's thread, rather than through the SDK's batch
processor: a failed export then raises, and the writer keeps the records and retries them (the
SDK's processor would drop them after logging), so the OTLP copy loses nothing either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from collector.audit.sinks import dumps
from collector.command import CommandError
from collector.otlp import INSTALL_HINT

try:
    from opentelemetry._logs import LogRecord, SeverityNumber
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import ReadableLogRecord
    from opentelemetry.sdk._logs.export import LogRecordExportResult
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
except ImportError as exc:  # one line, naming the extra
    raise CommandError(f"{INSTALL_HINT} ({exc.name} is missing)") from None

from collector import semconv
from collector.otlp import resource_for

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EVENT_NAME = "mcp.audit"
SCOPE_NAME = "mcp-slo.audit"


class OtlpLogSink:
    """Exports audit records as OTLP log records for `service` and `version` (the resource)."""

    name = "otlp"

    def __init__(self, service: str, version: str, exporter: Any = None):
        self.exporter = exporter or OTLPLogExporter()
        self.resource = resource_for(service, version)
        self.scope = InstrumentationScope(SCOPE_NAME, semconv.scope_version())

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        batch = [ReadableLogRecord(log_record=_log_record(r), resource=self.resource, instrumentation_scope=self.scope)
                 for r in records]
        if self.exporter.export(batch) is not LogRecordExportResult.SUCCESS:
            raise OSError(f"OTLP export of {len(batch)} audit record(s) failed")

    def close(self) -> None:
        self.exporter.shutdown()

    def last_record(self) -> dict[str, Any] | None:
        return None  # a collector cannot be asked: the chain resumes from a file sink, if any


def _log_record(record: Mapping[str, Any]) -> LogRecord:
    identity = record.get("identity") if isinstance(record.get("identity"), Mapping) else {}
    client = record.get("client") if isinstance(record.get("client"), Mapping) else {}
    attributes = {
        "mcp.method.name": record.get("method"),
        "gen_ai.tool.name": record.get("tool"),
        "mcp.session.id": record.get("session_id"),
        "mcp.audit.status": record.get("status"),
        "mcp.audit.request_id": record.get("request_id"),
        "mcp.audit.seq": record.get("seq"),
        "user.id": identity.get("user") or identity.get("subject"),
        "user.email": identity.get("email"),
        "client.address": record.get("client_ip"),
        "mcp.client.name": client.get("name"),
        "service.name": record.get("service"),
        "service.version": record.get("version"),
    }
    try:
        trace_id = int(record["trace_id"], 16) if len(record.get("trace_id") or "") == 32 else None
    except (TypeError, ValueError):
        trace_id = None
    success = record.get("status") == "success"
    return LogRecord(
        timestamp=_nanoseconds(record.get("time")),
        trace_id=trace_id,
        severity_text="INFO" if success else "WARN",
        severity_number=SeverityNumber.INFO if success else SeverityNumber.WARN,
        body=dumps(record),
        attributes={k: v for k, v in attributes.items() if isinstance(v, str | int) and not isinstance(v, bool)},
        event_name=EVENT_NAME,
    )


def _nanoseconds(text: object) -> int | None:
    """A record's RFC 3339 time in nanoseconds since the epoch, exactly (no float rounding)."""
    try:
        moment = datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(microseconds=1) * 1000

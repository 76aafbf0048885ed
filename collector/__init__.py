"""mcp-slo's exporter: Prometheus metrics for every MCP operation.

    from collector import instrument, start_metrics_server
    instrument(server, service="filesystem", version="v1")
    start_metrics_server(9464)
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry

from collector import names, semconv
from collector.exposition import mark_worker_dead, metrics_app, start_metrics_server
from collector.metrics import Recorder, resolve_identity

__all__ = ["Recorder", "instrument", "mark_worker_dead", "metrics_app", "names", "start_metrics_server"]

if TYPE_CHECKING:
    from collector.audit.config import AuditConfig

ServerT = TypeVar("ServerT")


def instrument(
    server: ServerT,
    service: str | None = None,
    version: str | None = None,
    *,
    registry: CollectorRegistry = REGISTRY,
    buckets: Sequence[float] | None = None,
    max_tools: int = names.DEFAULT_MAX_TOOLS,
    metrics: str = semconv.MCP_SLO,
    otlp: bool = False,
    audit: Mapping[str, Any] | AuditConfig | None = None,
) -> ServerT:
    """Measure every request `server` handles; returns `server`.

    Works on the official SDK's `MCPServer` (and low-level `Server`) and on
    `fastmcp.FastMCP`. `service` and `version` default to MCP_SLO_SERVICE and
    MCP_SLO_VERSION, then to the server's own name and version.

    `metrics`: "mcp-slo" (mcp-slo's metrics), "otel" (OpenTelemetry's semantic
    conventions, `mcp_server_operation_duration_seconds`) or "both". `otlp=True`
    also pushes the semantic-convention histogram over OTLP/HTTP, configured by
    the OTEL_* environment variables (needs `pip install 'mcp-slo[otel]'`).

    `audit`: an audit trail of every request (collector.audit: the options of
    `AuditConfig`, e.g. `{"path": "audit/mcp.jsonl", "retention": "90d"}`), its
    counters on `registry`.
    """
    service, version = resolve_identity(
        service,
        version,
        fallback_service=getattr(server, "name", None),
        fallback_version=getattr(server, "version", None),
    )
    fastmcp = sys.modules.get("fastmcp")
    recorder = Recorder(service, version, registry=registry, buckets=buckets, max_tools=max_tools, metrics=metrics)
    if otlp:
        from collector.otlp import OtlpPush

        OtlpPush(recorder)
    if fastmcp is not None and isinstance(server, fastmcp.FastMCP):
        from collector.fastmcp_middleware import instrument_fastmcp

        return instrument_fastmcp(server, recorder, _request_audit(audit, service, version, registry))
    if hasattr(server, "middleware") and isinstance(server.middleware, list):
        from collector.mcpserver import instrument_mcpserver

        return instrument_mcpserver(server, recorder, _request_audit(audit, service, version, registry))
    raise TypeError(
        f"cannot instrument {type(server).__module__}.{type(server).__qualname__}: expected "
        "mcp.server.mcpserver.MCPServer, mcp.server.Server or fastmcp.FastMCP; for any other server use `mcp-slo proxy`"
    )


def _request_audit(audit: Mapping[str, Any] | AuditConfig | None, service: str, version: str,
                   registry: CollectorRegistry) -> Any:
    """The audit trail's writer for `instrument(..., audit=...)`, closed (drained) at exit."""
    if audit is None:
        return None
    import atexit

    from collector.audit.config import AuditConfig
    from collector.audit.requests import RequestAudit
    from collector.audit.writer import AuditWriter

    config = audit if isinstance(audit, AuditConfig) else AuditConfig.from_mapping(audit)
    writer = AuditWriter.from_config(config, registry=registry, service=service, version=version)
    atexit.register(writer.close)
    return RequestAudit(writer, config, service, version)

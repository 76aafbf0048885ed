"""mcp-slo's exporter: Prometheus metrics for every MCP operation.

    from collector import instrument, start_metrics_server
    instrument(server, service="filesystem", version="v1")
    start_metrics_server(9464)
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TypeVar

from prometheus_client import REGISTRY, CollectorRegistry

from collector import names, semconv
from collector.exposition import mark_worker_dead, metrics_app, start_metrics_server
from collector.metrics import Recorder, resolve_identity

__all__ = ["Recorder", "instrument", "mark_worker_dead", "metrics_app", "names", "start_metrics_server"]

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
) -> ServerT:
    """Measure every request `server` handles; returns `server`.

    Works on the official SDK's `MCPServer` (and low-level `Server`) and on
    `fastmcp.FastMCP`. `service` and `version` default to MCP_SLO_SERVICE and
    MCP_SLO_VERSION, then to the server's own name and version.

    `metrics`: "mcp-slo" (mcp-slo's metrics), "otel" (OpenTelemetry's semantic
    conventions, `mcp_server_operation_duration_seconds`) or "both". `otlp=True`
    also pushes the semantic-convention histogram over OTLP/HTTP, configured by
    the OTEL_* environment variables (needs `pip install 'mcp-slo[otel]'`).
    """
    service, version = resolve_identity(
        service,
        version,
        fallback_service=getattr(server, "name", None),
        fallback_version=getattr(server, "version", None),
    )
    recorder = Recorder(service, version, registry=registry, buckets=buckets, max_tools=max_tools, metrics=metrics)
    if otlp:
        from collector.otlp import OtlpPush

        OtlpPush(recorder)
    fastmcp = sys.modules.get("fastmcp")
    if fastmcp is not None and isinstance(server, fastmcp.FastMCP):
        from collector.fastmcp_middleware import instrument_fastmcp

        return instrument_fastmcp(server, recorder)
    if hasattr(server, "middleware") and isinstance(getattr(server, "middleware"), list):
        from collector.mcpserver import instrument_mcpserver

        return instrument_mcpserver(server, recorder)
    raise TypeError(
        f"cannot instrument {type(server).__module__}.{type(server).__qualname__}: expected "
        "mcp.server.mcpserver.MCPServer, mcp.server.Server or fastmcp.FastMCP; for any other server use `mcp-slo proxy`"
    )



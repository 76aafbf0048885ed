"""The metric schemas mcp-slo reads, and how OpenTelemetry's names map onto mcp-slo's.

A spec's `metrics:` names one (default `auto`):

- `mcp-slo`: mcp-slo's own metrics (collector.names): `mcp_operations_total{service,
  version,method,tool,status}`, `mcp_operation_duration_seconds_{bucket,count,sum}` and
  `mcp_operations_active`.
- `otel`: the OpenTelemetry semantic conventions for MCP, as an OpenTelemetry SDK's
  Prometheus exporter (or a Collector's) writes them: one histogram,
  `mcp_server_operation_duration_seconds_{bucket,count,sum}{mcp_method_name,
  gen_ai_tool_name,error_type,...}`, with the resource in `target_info`.
- `auto`: both, mcp-slo's first: a service that exports both is counted once, from
  mcp-slo's names.

How an OpenTelemetry series reads as mcp-slo's (slo.promql writes the PromQL):

    service  service_name (from target_info, joined on job and instance, or promoted onto
             the series by Prometheus), else the scrape job
    version  service_version (likewise), else "unknown"
    method   mcp_method_name
    tool     gen_ai_tool_name
    status   "error" where error_type is set (a tool result with isError, a JSON-RPC error
             code, a timeout the server reports as an error), else "success": the
             conventions have no timeout or cancelled class, so timeouts count as errors
             and cancelled operations as whatever the server recorded
    requests the histogram's _count: every finished operation (the conventions have no
             separate counter and no in-flight gauge)
    le       OpenTelemetry's bounds as written ("1" or "1.0"): thresholds match both
"""

from __future__ import annotations

from collector import semconv

MCP_SLO = "mcp-slo"
OTEL = "otel"
AUTO = "auto"
SCHEMAS = (AUTO, MCP_SLO, OTEL)

# The semantic conventions' names, as the Prometheus exporters write them (spelled once, in
# collector.semconv, which the exporter writes them from).
OTEL_DURATION = semconv.PROMETHEUS_DURATION  # mcp.server.operation.duration, in seconds
TARGET_INFO = "target_info"  # the resource attributes, one series per scrape target
RESOURCE_JOIN = ("job", "instance")  # what target_info shares with the target's series
SERVICE_NAME = semconv.prometheus_label(semconv.SERVICE_NAME)
SERVICE_VERSION = semconv.prometheus_label(semconv.SERVICE_VERSION)
METHOD = semconv.prometheus_label(semconv.METHOD_NAME)
TOOL = semconv.prometheus_label(semconv.TOOL_NAME)
ERROR_TYPE = semconv.prometheus_label(semconv.ERROR_TYPE)  # "tool_error", a JSON-RPC code, "timeout", ...
FALLBACK_SERVICE_LABEL = "job"  # the service of a series without service_name
UNKNOWN_VERSION = "unknown"  # the version of a series without service_version (as the proxy's default)

# mcp-slo's label -> the OpenTelemetry attribute a matcher on it reads directly (the other
# labels, service, version and status, are computed: matched after the computation).
RAW_LABELS = {"method": METHOD, "tool": TOOL}


def check(value: str) -> str:
    """`value` if it names a schema; ValueError with the choices otherwise."""
    if value not in SCHEMAS:
        raise ValueError(f"unknown metrics schema {value!r}; one of {', '.join(SCHEMAS)}")
    return value


def includes(schema: str, which: str) -> bool:
    """Whether reading `schema` reads `which` (MCP_SLO or OTEL)."""
    return check(schema) in (AUTO, which)

"""OpenTelemetry's semantic conventions for MCP: the names, and the attributes of one operation.

The one place that spells them; tests/test_otel_emit.py checks every name against
the opentelemetry-semantic-conventions package (which the base install does not need).

Both outputs use these attributes: the Prometheus form (collector.semconv_prometheus,
named as opentelemetry-exporter-prometheus names them) and the OTLP push
(collector.otlp, through the OpenTelemetry SDK).
"""

from __future__ import annotations

from collector import names

# What `instrument(metrics=...)` and `mcp-slo proxy --metrics` accept.
MCP_SLO = "mcp-slo"
OTEL = "otel"
BOTH = "both"
METRICS_CHOICES = (MCP_SLO, OTEL, BOTH)

# The metric (mcp_metrics.MCP_SERVER_OPERATION_DURATION) and its Prometheus name:
# dots to underscores, plus the unit, as the OpenTelemetry Prometheus exporter writes it.
DURATION = "mcp.server.operation.duration"
DURATION_UNIT = "s"
PROMETHEUS_DURATION = "mcp_server_operation_duration_seconds"
DURATION_HELP = "Duration of MCP requests as observed on the receiver (server or proxy) side."
# The conventions' recommended boundaries; whole numbers stay ints so they are
# spelled le="1" as the exporter spells them.
BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)

# Attribute keys
METHOD_NAME = "mcp.method.name"
PROTOCOL_VERSION = "mcp.protocol.version"
TOOL_NAME = "gen_ai.tool.name"
PROMPT_NAME = "gen_ai.prompt.name"
ERROR_TYPE = "error.type"
RPC_RESPONSE_STATUS_CODE = "rpc.response.status_code"
NETWORK_TRANSPORT = "network.transport"
SERVICE_NAME = "service.name"
SERVICE_VERSION = "service.version"

# Attribute values
PIPE = "pipe"  # stdio
TCP = "tcp"  # streamable HTTP
OTHER_METHOD = "_OTHER"  # a method outside the specification (mcp-slo's method label says "other")
TOOL_ERROR = "tool_error"  # a tools/call result with isError
TIMEOUT_ERROR = "timeout"  # the request timed out (the proxy's deadline, or the client's)
OTHER_ERROR = "_OTHER"  # failed, and nothing tells how

# The instrumentation scope: the exporter writes it as otel_scope_* labels.
SCOPE_NAME = "mcp-slo"
SCOPE_LABELS = ("otel_scope_name", "otel_scope_version", "otel_scope_schema_url")


def scope_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mcp-slo")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown"


def prometheus_label(key: str) -> str:
    """An attribute key as the exporter writes it as a label name (our keys need only this)."""
    return key.replace(".", "_")


def attributes(method: str, tool: str, status: str, error: object, protocol: str | None,
               transport: str | None) -> dict[str, str]:
    """The attributes of one finished (not cancelled) operation.

    `method` and `tool` are mcp-slo's labels (bounded already); `error` is what the
    adapter knew of a failure: a JSON-RPC error code (int), an error.type (str), or None.
    """
    attrs = {METHOD_NAME: OTHER_METHOD if method == names.OTHER_METHOD else method}
    if tool:
        attrs[TOOL_NAME] = tool
    if status != names.SUCCESS:
        if isinstance(error, int) and not isinstance(error, bool):
            attrs[ERROR_TYPE] = attrs[RPC_RESPONSE_STATUS_CODE] = str(error)
        elif isinstance(error, str) and error:
            attrs[ERROR_TYPE] = error
        else:
            attrs[ERROR_TYPE] = TIMEOUT_ERROR if status == names.TIMEOUT else OTHER_ERROR
    if protocol:
        attrs[PROTOCOL_VERSION] = protocol
    if transport:
        attrs[NETWORK_TRANSPORT] = transport
    return attrs


def protocol_version(value: object) -> str | None:
    """A peer's MCP protocol version, kept only when it looks like one (a date,
    e.g. "2025-06-18"): it becomes a label value, so nothing else is let in."""
    if isinstance(value, str) and len(value) == 10 and value[4] == value[7] == "-" \
            and value[:4].isdigit() and value[5:7].isdigit() and value[8:].isdigit():
        return value
    return None

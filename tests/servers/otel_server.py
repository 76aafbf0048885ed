"""An MCP server instrumented ONLY with the OpenTelemetry SDK (no mcp-slo code): a middleware
records mcp.server.operation.duration with the semantic conventions' attributes, and the SDK's
Prometheus exporter serves it on /metrics, the resource (service.name, service.version) in
target_info.

    python tests/servers/otel_server.py MCP_PORT METRICS_PORT SERVICE VERSION ERROR_EVERY SLOW_EVERY

`work` fails (isError) on every ERROR_EVERY-th call and sleeps 1.2 s on every SLOW_EVERY-th
(0: never), counted per process, so a run's outcomes are fixed by the number of calls.
"""

from __future__ import annotations

import itertools
import sys
import time

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.semconv._incubating.attributes import (
    gen_ai_attributes,
    mcp_attributes,
)
from opentelemetry.semconv._incubating.metrics import mcp_metrics
from opentelemetry.semconv.attributes import error_attributes
from prometheus_client import start_http_server

# The conventions' advisory bounds for mcp.server.operation.duration, in seconds.
BUCKETS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300]


def main(mcp_port: int, metrics_port: int, service: str, version: str, error_every: int, slow_every: int) -> None:
    reader = PrometheusMetricReader()
    provider = MeterProvider(resource=Resource.create({"service.name": service, "service.version": version}),
                             metric_readers=[reader])
    duration = provider.get_meter("otel-server").create_histogram(
        mcp_metrics.MCP_SERVER_OPERATION_DURATION, unit="s", description="MCP server operation duration",
        explicit_bucket_boundaries_advisory=BUCKETS)
    start_http_server(metrics_port, addr="127.0.0.1")

    async def record(ctx, call_next):
        if ctx.request_id is None:
            return await call_next(ctx)
        attributes = {mcp_attributes.MCP_METHOD_NAME: ctx.method}
        if ctx.method == "tools/call" and isinstance(ctx.params, dict):
            attributes[gen_ai_attributes.GEN_AI_TOOL_NAME] = ctx.params.get("name")
        started = time.perf_counter()
        try:
            result = await call_next(ctx)
        except Exception as exc:
            code = getattr(getattr(exc, "error", None), "code", None)
            attributes[error_attributes.ERROR_TYPE] = str(code) if code is not None else type(exc).__qualname__
            duration.record(time.perf_counter() - started, attributes)
            raise
        if isinstance(result, dict) and result.get("isError") is True:
            attributes[error_attributes.ERROR_TYPE] = "tool_error"
        duration.record(time.perf_counter() - started, attributes)
        return result

    server = MCPServer(service, version=version, middleware=[record])
    calls = itertools.count(1)

    @server.tool()
    async def work(n: int = 0) -> str:
        """Works; fails or is slow on some calls."""
        i = next(calls)
        if slow_every and i % slow_every == 0:
            await anyio.sleep(1.2)
        if error_every and i % error_every == 0:
            raise ToolError("failed on purpose")
        return f"done {n}"

    server.run(transport="streamable-http", host="127.0.0.1", port=mcp_port)


if __name__ == "__main__":
    mcp_port, metrics_port, service, version, error_every, slow_every = sys.argv[1:7]
    main(int(mcp_port), int(metrics_port), service, version, int(error_every), int(slow_every))

"""A request's W3C trace id, sent in params._meta.traceparent, becomes the exemplar of its
duration bucket (mcp-slo's histogram and the semantic conventions'), served as OpenMetrics
and kept by a real Prometheus with exemplar storage: in-process and through the proxy."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.server.mcpserver import MCPServer
from prometheus_client import CollectorRegistry

from collector import instrument, semconv, start_metrics_server
from tests.binaries import prometheus
from tests.proxy_support import (
    PYTHON,
    SERVERS,
    child_env,
    proxy_command,
    wait_for_metrics,
)
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"
OPENMETRICS = {"Accept": "application/openmetrics-text; version=1.0.0"}
HISTOGRAMS = ("mcp_operation_duration_seconds_bucket", f"{semconv.PROMETHEUS_DURATION}_bucket")


async def _calls(client: Client) -> None:
    await client.call_tool("add", {"a": 1, "b": 2}, meta={"traceparent": TRACEPARENT})
    await client.call_tool("add", {"a": 1, "b": 2}, meta={"traceparent": "00-not-a-trace"})  # ignored
    await client.call_tool("add", {"a": 3, "b": 4})


def _assert_openmetrics_exemplars(url: str) -> None:
    r = httpx.get(url, headers=OPENMETRICS, timeout=5)
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    for histogram in HISTOGRAMS:
        marked = [line for line in r.text.splitlines() if line.startswith(histogram) and " # {" in line]
        assert len(marked) == 1, (histogram, marked)
        assert f'trace_id="{TRACE_ID}"' in marked[0] and f'span_id="{SPAN_ID}"' in marked[0]
    plain = httpx.get(url, timeout=5).text  # the classic text format carries none
    assert " # {" not in plain and HISTOGRAMS[1] in plain


def _assert_prometheus_kept_them(prom: str) -> None:
    for histogram in HISTOGRAMS:
        def found(histogram=histogram):
            now = time.time()
            r = httpx.get(f"{prom}/api/v1/query_exemplars",
                          params={"query": histogram, "start": now - 600, "end": now + 60}, timeout=5)
            r.raise_for_status()
            ids = {e["labels"].get("trace_id") for s in r.json()["data"] for e in s["exemplars"]}
            return ids or None

        assert wait_until(found, timeout=30, what=f"exemplars of {histogram} in Prometheus") == {TRACE_ID}


def test_in_process_exemplars_reach_prometheus():
    server = MCPServer("exemplars", version="1.0")

    @server.tool()
    def add(a: int, b: int) -> int:
        return a + b

    registry = CollectorRegistry()
    instrument(server, service="exemplars", version="v1", registry=registry, metrics=semconv.BOTH)
    metrics, _ = start_metrics_server(0, registry=registry)
    try:
        target = f"127.0.0.1:{metrics.server_port}"

        async def session() -> None:
            async with Client(server) as client:
                await _calls(client)

        anyio.run(session)
        _assert_openmetrics_exemplars(f"http://{target}/metrics")
        with prometheus([target]) as prom:
            _assert_prometheus_kept_them(prom)
    finally:
        metrics.shutdown()


def test_proxied_exemplars_reach_prometheus():
    port = free_port()
    argv = proxy_command("exemplars-proxy", port, "--metrics", "both", "--exit-grace", "60",
                         "--", PYTHON, str(SERVERS / "tool_server.py"))
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=child_env())
    # The proxy serves /metrics while its client is connected: Prometheus scrapes meanwhile.

    async def session() -> None:
        async with Client(params) as client:
            await _calls(client)
            await anyio.to_thread.run_sync(_scrape_while_open)

    def _scrape_while_open() -> None:
        wait_for_metrics(port)
        _assert_openmetrics_exemplars(f"http://127.0.0.1:{port}/metrics")
        with prometheus([f"127.0.0.1:{port}"]) as prom:
            _assert_prometheus_kept_them(prom)

    anyio.run(session)



"""/metrics as Prometheus sees it: promtool accepts it, a real Prometheus scrapes it,
and multiprocess mode sums the workers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import anyio
import pytest
from mcp import Client
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from collector import instrument, metrics_app, start_metrics_server
from tests import binaries
from tests.servers import mcpserver_app
from tests.support import operations, registry_text, scrape, wait_until


def serve_exercised_server():
    """An instrumented server that has handled every kind of outcome, with /metrics served."""
    registry = CollectorRegistry()
    server = instrument(mcpserver_app.build(), service="expo", version="v1", registry=registry)

    async def main():
        async with Client(server) as client:
            await client.call_tool("echo", {"text": "x"})
            await client.call_tool("refuse", {})
            await client.call_tool("nope", {})

    anyio.run(main)
    http_server, thread = start_metrics_server(0, registry=registry)
    return http_server, f"127.0.0.1:{http_server.server_port}"


@pytest.mark.integration
def test_promtool_accepts_the_metrics():
    promtool = binaries.require("promtool")
    http_server, target = serve_exercised_server()
    try:
        text = scrape(f"http://{target}/metrics")
        checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert checked.stdout.strip() == "" and checked.stderr.strip() == "", checked.stdout + checked.stderr
    finally:
        http_server.shutdown()


@pytest.mark.integration
def test_a_real_prometheus_scrapes_the_metrics():
    http_server, target = serve_exercised_server()
    try:
        with binaries.prometheus([target]) as prom:
            result = wait_until(
                lambda: binaries.query(prom, 'mcp_operations_total{service="expo",tool="echo"}'),
                timeout=30, what="the first scraped sample",
            )
            assert result[0]["metric"]["status"] == "success"
            assert float(result[0]["value"][1]) == 1
            buckets = binaries.query(prom, 'mcp_operation_duration_seconds_bucket{service="expo",tool="echo"}')
            assert {b["metric"]["le"] for b in buckets} == {"0.01", "0.05", "0.1", "0.5", "1.0", "2.0", "5.0", "10.0", "+Inf"}
    finally:
        http_server.shutdown()


def test_metrics_app_mounts_in_an_asgi_app():
    registry = CollectorRegistry()
    server = instrument(mcpserver_app.build(), service="asgi", version="v1", registry=registry)

    async def main():
        async with Client(server) as client:
            await client.call_tool("echo", {"text": "x"})

    anyio.run(main)
    app = Starlette(routes=[Mount("/metrics", app=metrics_app(registry))])
    response = TestClient(app).get("/metrics/")
    assert response.status_code == 200
    assert operations(response.text, service="asgi")[("tools/call", "echo", "success")] == 1


def test_buckets_are_configurable_and_must_increase():
    registry = CollectorRegistry()
    server = instrument(mcpserver_app.build(), service="b", version="v1", registry=registry, buckets=[0.2, 0.4])

    async def main():
        async with Client(server) as client:
            await client.call_tool("echo", {"text": "x"})

    anyio.run(main)
    text = registry_text(registry)
    assert 'le="0.2"' in text and 'le="0.4"' in text and 'le="0.05"' not in text
    with pytest.raises(ValueError, match="increasing"):
        instrument(mcpserver_app.build(), service="c", version="v1", registry=CollectorRegistry(), buckets=[1, 0.5])
    with pytest.raises(ValueError, match="already has"):
        instrument(mcpserver_app.build(), service="d", version="v1", registry=registry, buckets=[0.3])


WORKER = textwrap.dedent(
    """
    import anyio
    from mcp import Client
    from collector import instrument
    from tests.servers import mcpserver_app

    server = instrument(mcpserver_app.build(), service="multi", version="v1")

    async def main():
        async with Client(server) as client:
            for _ in range({calls}):
                await client.call_tool("echo", {{"text": "x"}})

    anyio.run(main)
    """
)

EXPOSE = textwrap.dedent(
    """
    from prometheus_client import generate_latest
    from collector.exposition import exposition_registry
    print(generate_latest(exposition_registry()).decode())
    """
)


@pytest.mark.integration
def test_multiprocess_mode_sums_every_worker(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": os.getcwd()}
    for calls in (3, 4):
        subprocess.run([sys.executable, "-c", WORKER.format(calls=calls)], env=env, check=True, capture_output=True)
    out = subprocess.run([sys.executable, "-c", EXPOSE], env=env, check=True, capture_output=True, text=True).stdout
    ops = operations(out, service="multi")
    assert ops[("tools/call", "echo", "success")] == 7
    assert ops[("server/discover", "", "success")] == 2

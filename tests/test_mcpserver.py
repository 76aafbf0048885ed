"""The official SDK's MCPServer, instrumented in process: exact counts per outcome."""

from __future__ import annotations


import anyio
import pytest
from mcp import Client
from prometheus_client import CollectorRegistry

from collector import instrument
from tests import session
from tests.servers import mcpserver_app
from tests.support import assert_counts, free_port, operations, registry_text, samples, scrape, stdio_server

MODES = ["legacy", "auto"]


@pytest.mark.parametrize("mode", MODES)
def test_in_memory_counts_equal_what_the_client_did(mode):
    registry = CollectorRegistry()
    server = instrument(mcpserver_app.build(), service="outcomes", version="v1", registry=registry)

    async def main():
        async with Client(server, mode=mode) as client:
            expected = await session.exercise(client)
            expected[session.handshake(client)] += 1
            return expected

    expected = anyio.run(main)
    assert_counts(lambda: registry_text(registry), "outcomes", expected)


@pytest.mark.integration
@pytest.mark.parametrize("mode", MODES)
def test_stdio_subprocess_counts_equal_what_the_client_did(mode):
    port = free_port()
    params = stdio_server("mcpserver_app.py", str(port))
    url = f"http://127.0.0.1:{port}/metrics"

    async def main():
        async with Client(params, mode=mode) as client:
            expected = await session.exercise(client)
            expected[session.handshake(client)] += 1
            # Read while the server still runs: it exits with the session.
            await anyio.to_thread.run_sync(lambda: assert_counts(lambda: scrape(url), "outcomes", expected))

    anyio.run(main)


def test_service_and_version_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("MCP_SLO_SERVICE", "from-env")
    monkeypatch.setenv("MCP_SLO_VERSION", "v9")
    registry = CollectorRegistry()
    server = instrument(mcpserver_app.build(), registry=registry)

    async def main():
        async with Client(server) as client:
            await client.call_tool("echo", {"text": "x"})

    anyio.run(main)
    ops = operations(registry_text(registry), service="from-env", version="v9")
    assert ops[("tools/call", "echo", "success")] == 1


def test_arguments_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("MCP_SLO_SERVICE", "from-env")
    registry = CollectorRegistry()
    instrument(mcpserver_app.build(), service="arg", version="v2", registry=registry)
    # the active gauge child exists as soon as the server is instrumented
    assert (("service", "arg"), ("version", "v2")) in samples(registry_text(registry), "mcp_operations_active")


def test_instrumenting_twice_is_refused():
    registry = CollectorRegistry()
    server = instrument(mcpserver_app.build(), service="s", version="v1", registry=registry)
    with pytest.raises(ValueError, match="already instrumented"):
        instrument(server, service="s", version="v1", registry=registry)


def test_unknown_server_type_gets_a_clear_error():
    with pytest.raises(TypeError, match="mcp-slo proxy"):
        instrument(object(), service="s", version="v1", registry=CollectorRegistry())


def test_tools_added_after_instrumenting_get_their_own_label():
    registry = CollectorRegistry()
    server = instrument(mcpserver_app.build(), service="late", version="v1", registry=registry)

    @server.tool()
    def added_later() -> str:
        return "ok"

    async def main():
        async with Client(server) as client:
            await client.call_tool("added_later", {})

    anyio.run(main)
    assert operations(registry_text(registry), service="late")[("tools/call", "added_later", "success")] == 1


def test_ten_thousand_unknown_tool_names_keep_series_bounded():
    registry = CollectorRegistry()
    server = instrument(mcpserver_app.build(), service="hostile", version="v1", registry=registry, max_tools=20)

    async def main():
        async with Client(server) as client:
            for i in range(10_000):
                await client.call_tool(f"unknown-{i}", {})

    anyio.run(main)
    text = registry_text(registry)
    ops = operations(text, service="hostile")
    assert ops[("tools/call", "_other", "error")] == 10_000
    tools = {dict(k)["tool"] for k in samples(text, "mcp_operations_total")}
    assert tools <= {"", "_other", "echo", "refuse", "crash", "slow"}

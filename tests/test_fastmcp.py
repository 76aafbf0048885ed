"""FastMCP 4 servers instrumented with `collector.instrument`: exact counts per outcome.

The official SDK client (`mcp.Client`) drives an instrumented FastMCP server in
process (through its low-level server, `FastMCP._mcp_server`) and over a stdio
subprocess, in both protocol generations: `mode="legacy"` (initialize
handshake, JSON-RPC framing) and the default `mode="auto"` (server/discover,
2026-07-28). Every count in /metrics must equal what the client did.
"""

from __future__ import annotations

from collections import Counter

import anyio
import fastmcp
import mcp_types
import pytest
from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server import create_proxy
from fastmcp.server.middleware import Middleware
from mcp import Client
from mcp.shared.exceptions import MCPError
from prometheus_client import CollectorRegistry

from collector import instrument
from tests.servers import fastmcp_app, mcpserver_app
from tests.session import cancel_call
from tests.support import active, assert_counts, free_port, operations, registry_text, samples, scrape, stdio_server, wait_until

# Pings are part of the handshake-era sessions on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:ping is removed")

MODES = ["legacy", "auto"]
HANDSHAKE = {"legacy": "initialize", "auto": "server/discover"}


# --- helpers -------------------------------------------------------------------


async def call_unknown_method(client: Client) -> None:
    with pytest.raises(MCPError) as info:
        await client.session.send_request(mcp_types.Request(method="custom/thing", params=None), mcp_types.EmptyResult)
    assert info.value.error.code == mcp_types.METHOD_NOT_FOUND


async def exercise(client: Client, *, deadline_status: str) -> Counter:
    """Run a session touching every outcome; returns the expected
    {(method, tool, status): count} beyond the opening handshake.

    `deadline_status` is what `anyio.move_on_after` around a call counts as; as
    for the official SDK's MCPServer (collector.mcpserver), it depends on the
    transport: over JSON-RPC the client sends notifications/cancelled with reason
    "caller cancelled" -> cancelled; in process without framing (mcp.Client on a
    Server in mode="auto") the cancellation itself carries anyio's "deadline
    exceeded" -> timeout.
    """
    expected: Counter = Counter()

    # Listed first, so the client never re-lists to validate a result.
    tools = await client.list_tools()
    assert {t.name for t in tools.tools} == {"echo", "refuse", "crash", "slow"}
    expected["tools/list", "", "success"] += 1

    for text in ("a", "b", "c"):
        result = await client.call_tool("echo", {"text": text})
        assert not result.is_error and result.content[0].text == text
    expected["tools/call", "echo", "success"] += 3

    # ToolError, an unexpected exception, invalid arguments, an unknown tool:
    # FastMCP answers each with an isError result.
    assert (await client.call_tool("refuse", {})).is_error
    expected["tools/call", "refuse", "error"] += 1
    assert (await client.call_tool("crash", {})).is_error
    expected["tools/call", "crash", "error"] += 1
    assert (await client.call_tool("echo", {})).is_error
    expected["tools/call", "echo", "error"] += 1
    assert (await client.call_tool("no_such_tool", {})).is_error
    expected["tools/call", "_other", "error"] += 1

    with pytest.raises(MCPError) as info:  # the client's own read timeout
        await client.call_tool("slow", {}, read_timeout_seconds=0.2)
    assert info.value.error.code == -32001
    expected["tools/call", "slow", "timeout"] += 1

    await cancel_call(client, "slow")
    expected["tools/call", "slow", "cancelled"] += 1

    with anyio.move_on_after(0.2) as scope:
        await client.call_tool("slow", {})
    assert scope.cancelled_caught
    expected["tools/call", "slow", deadline_status] += 1

    await client.list_resources()
    expected["resources/list", "", "success"] += 1
    await client.list_resource_templates()
    expected["resources/templates/list", "", "success"] += 1
    assert (await client.read_resource("note://readme")).contents[0].text == "hello"
    expected["resources/read", "", "success"] += 1
    with pytest.raises(MCPError):
        await client.read_resource("note://missing")
    expected["resources/read", "", "error"] += 1

    await client.list_prompts()
    expected["prompts/list", "", "success"] += 1
    assert (await client.get_prompt("greet", {"name": "Ada"})).messages
    expected["prompts/get", "", "success"] += 1
    with pytest.raises(MCPError):
        await client.get_prompt("no_such_prompt", {})
    expected["prompts/get", "", "error"] += 1

    await call_unknown_method(client)
    expected["other", "", "error"] += 1

    if client.session.protocol_version < "2026":  # ping is gone from 2026-07-28
        await client.send_ping()
        expected["ping", "", "success"] += 1
    return expected


# --- the full session, in process and over stdio --------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_in_memory_counts_equal_what_the_client_did(mode):
    registry = CollectorRegistry()
    server = fastmcp_app.build()
    assert instrument(server, service="outcomes", version="v1", registry=registry) is server

    async def main():
        async with Client(server._mcp_server, mode=mode) as client:
            expected = await exercise(client, deadline_status="cancelled" if mode == "legacy" else "timeout")
        expected[HANDSHAKE[mode], "", "success"] += 1
        return expected

    expected = anyio.run(main)
    assert_counts(lambda: registry_text(registry), "outcomes", expected)


@pytest.mark.integration
@pytest.mark.parametrize("mode", MODES)
def test_stdio_subprocess_counts_equal_what_the_client_did(mode):
    port = free_port()
    params = stdio_server("fastmcp_app.py", str(port))
    url = f"http://127.0.0.1:{port}/metrics"

    async def main():
        async with Client(params, mode=mode) as client:
            assert client.session.protocol_version.startswith("2026") == (mode == "auto")
            expected = await exercise(client, deadline_status="cancelled")
            expected[HANDSHAKE[mode], "", "success"] += 1
            # Read while the server still runs: it exits with the session.
            await anyio.to_thread.run_sync(lambda: assert_counts(lambda: scrape(url), "outcomes", expected))

    anyio.run(main)


@pytest.mark.parametrize("mode", MODES)
def test_counts_match_the_official_sdk_mcpserver(mode):
    """The same client session gives the same counts on FastMCP as on MCPServer:
    same statuses for timeouts and cancellations, same labels."""
    results = {}
    for kind, server in (("fastmcp", fastmcp_app.build()), ("mcpserver", mcpserver_app.build())):
        registry = CollectorRegistry()
        instrument(server, service=kind, version="v1", registry=registry)
        target = server._mcp_server if kind == "fastmcp" else server

        async def main():
            async with Client(target, mode=mode) as client:
                return await exercise(client, deadline_status="cancelled" if mode == "legacy" else "timeout")

        expected = anyio.run(main)
        expected[HANDSHAKE[mode], "", "success"] += 1
        assert_counts(lambda: registry_text(registry), kind, expected)
        results[kind] = operations(registry_text(registry), service=kind)
    assert results["fastmcp"] == results["mcpserver"]


def test_fastmcp_own_client_in_memory():
    """fastmcp.Client(server) (FastMCP's in-memory transport) is measured too."""
    registry = CollectorRegistry()
    server = instrument(fastmcp_app.build(), service="outcomes", version="v1", registry=registry)

    async def main():
        async with fastmcp.Client(server) as client:
            await client.list_tools()
            await client.call_tool("echo", {"text": "x"})
            result = await client.call_tool("refuse", {}, raise_on_error=False)
            assert result.is_error
            return client.initialize_result is not None

    legacy = anyio.run(main)
    handshake = "initialize" if legacy else "server/discover"
    text = registry_text(registry)
    ops = operations(text, service="outcomes")
    assert ops[(handshake, "", "success")] == 1
    assert ops[("tools/call", "echo", "success")] == 1
    assert ops[("tools/call", "refuse", "error")] == 1
    assert ops[("tools/list", "", "success")] == 1
    assert sum(ops.values()) == 4
    assert active(text, "outcomes") == 0


# --- proxies and mounted servers -----------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_proxy_counts_each_client_call_once(mode):
    """A create_proxy front talks to its backend through a client of its own
    (a new session per request, extra tools/list calls): only the front's
    client requests count for the front."""
    registry = CollectorRegistry()
    backend = instrument(fastmcp_app.build("backend"), service="backend", version="v1", registry=registry)
    front = instrument(create_proxy(backend, name="front"), service="front", version="v1", registry=registry)

    async def main():
        expected: Counter = Counter()
        async with Client(front._mcp_server, mode=mode) as client:
            # Before any listing: the backend's isError results come back through
            # the proxy, and the front still labels the tools by name.
            assert (await client.call_tool("refuse", {})).is_error
            expected["tools/call", "refuse", "error"] += 1
            assert (await client.call_tool("crash", {})).is_error
            expected["tools/call", "crash", "error"] += 1
            assert (await client.call_tool("no_such_tool", {})).is_error
            expected["tools/call", "_other", "error"] += 1

            await client.list_tools()
            expected["tools/list", "", "success"] += 1
            for text in ("a", "b"):
                assert (await client.call_tool("echo", {"text": text})).content[0].text == text
            expected["tools/call", "echo", "success"] += 2

            with pytest.raises(MCPError):
                await client.call_tool("slow", {}, read_timeout_seconds=0.2)
            expected["tools/call", "slow", "timeout"] += 1
            await cancel_call(client, "slow")
            expected["tools/call", "slow", "cancelled"] += 1

            assert (await client.read_resource("note://readme")).contents[0].text == "hello"
            expected["resources/read", "", "success"] += 1
            assert (await client.get_prompt("greet", {"name": "Ada"})).messages
            expected["prompts/get", "", "success"] += 1
            await call_unknown_method(client)
            expected["other", "", "error"] += 1
            if mode == "legacy":
                await client.send_ping()
                expected["ping", "", "success"] += 1
        expected[HANDSHAKE[mode], "", "success"] += 1
        return expected

    expected = anyio.run(main)
    assert_counts(lambda: registry_text(registry), "front", expected)
    # The backend did see the proxy's extra work, under its own service.
    backend_ops = operations(registry_text(registry), service="backend")
    assert backend_ops.get(("tools/list", "", "success"), 0) > expected["tools/list", "", "success"]
    assert backend_ops[("tools/call", "echo", "success")] == 2


def test_mounted_server_tools_keep_their_names_and_are_counted_once():
    registry = CollectorRegistry()
    parent = FastMCP("parent")

    @parent.tool
    def own() -> str:
        return "own"

    parent.mount(fastmcp_app.build("child"), namespace="child")
    instrument(parent, service="parent", version="v1", registry=registry)

    async def main():
        async with Client(parent._mcp_server, mode="legacy") as client:
            # Failing before any listing: only FastMCP's resolution knows the name.
            assert (await client.call_tool("child_refuse", {})).is_error
            assert (await client.call_tool("child_no_such_tool", {})).is_error
            assert (await client.call_tool("refuse", {})).is_error  # not the parent's name
            tools = await client.list_tools()
            assert "child_echo" in {t.name for t in tools.tools}
            await client.call_tool("child_echo", {"text": "x"})
            await client.call_tool("own", {})

    anyio.run(main)
    assert_counts(
        lambda: registry_text(registry),
        "parent",
        {
            ("initialize", "", "success"): 1,
            ("tools/call", "child_refuse", "error"): 1,
            ("tools/call", "_other", "error"): 2,
            ("tools/list", "", "success"): 1,
            ("tools/call", "child_echo", "success"): 1,
            ("tools/call", "own", "success"): 1,
        },
    )


# --- tool labels ------------------------------------------------------------------


def test_tools_added_after_instrumenting_get_their_own_label():
    registry = CollectorRegistry()
    server = instrument(fastmcp_app.build(), service="late", version="v1", registry=registry)

    @server.tool
    def late_fail() -> str:
        raise ToolError("no")

    @server.tool
    async def late_slow() -> str:
        await anyio.sleep(5)
        return "done"

    @server.tool
    def late_ok() -> str:
        return "ok"

    async def main():
        async with Client(server._mcp_server, mode="legacy") as client:
            assert (await client.call_tool("late_fail", {})).is_error
            with pytest.raises(MCPError):
                await client.call_tool("late_slow", {}, read_timeout_seconds=0.2)
            await cancel_call(client, "late_slow")
            assert not (await client.call_tool("late_ok", {})).is_error

    anyio.run(main)

    def settled():
        ops = operations(registry_text(registry), service="late")
        return {k: v for k, v in ops.items() if k[0] == "tools/call"}

    wait_until(lambda: len(settled()) == 4, timeout=5, what="four tools/call outcomes")
    assert settled() == {
        ("tools/call", "late_fail", "error"): 1,
        ("tools/call", "late_slow", "timeout"): 1,
        ("tools/call", "late_slow", "cancelled"): 1,
        ("tools/call", "late_ok", "success"): 1,
    }


def test_unknown_tool_names_keep_series_bounded():
    registry = CollectorRegistry()
    server = instrument(fastmcp_app.build(), service="hostile", version="v1", registry=registry, max_tools=5)

    async def main():
        async with Client(server._mcp_server, mode="legacy") as client:
            for i in range(300):
                assert (await client.call_tool(f"unknown-{i}", {})).is_error

    anyio.run(main)
    text = registry_text(registry)
    assert operations(text, service="hostile")[("tools/call", "_other", "error")] == 300
    tools = {dict(k)["tool"] for k in samples(text, "mcp_operations_total")}
    assert tools <= {"", "_other", "echo", "refuse", "crash", "slow"}


# --- FastMCP middleware and instrumenting ---------------------------------------


def test_requests_rejected_by_fastmcp_middleware_are_counted():
    class Gate(Middleware):
        async def on_request(self, context, call_next):
            if context.method in ("prompts/list", "ping"):
                raise MCPError(code=-32000, message="gate closed")
            return await call_next(context)

    registry = CollectorRegistry()
    server = fastmcp_app.build()
    server.add_middleware(Gate())
    instrument(server, service="gated", version="v1", registry=registry)

    async def main():
        async with Client(server._mcp_server, mode="legacy") as client:
            with pytest.raises(MCPError):
                await client.list_prompts()
            with pytest.raises(MCPError):
                await client.send_ping()
            await client.list_tools()

    anyio.run(main)
    assert_counts(
        lambda: registry_text(registry),
        "gated",
        {
            ("initialize", "", "success"): 1,
            ("prompts/list", "", "error"): 1,
            ("ping", "", "error"): 1,
            ("tools/list", "", "success"): 1,
        },
    )


def test_instrumenting_twice_is_refused():
    registry = CollectorRegistry()
    server = instrument(fastmcp_app.build(), service="s", version="v1", registry=registry)
    with pytest.raises(ValueError, match="already instrumented"):
        instrument(server, service="s", version="v1", registry=registry)


def test_service_and_version_default_to_the_server_name_and_version(monkeypatch):
    monkeypatch.delenv("MCP_SLO_SERVICE", raising=False)
    monkeypatch.delenv("MCP_SLO_VERSION", raising=False)
    registry = CollectorRegistry()
    instrument(fastmcp_app.build("files"), registry=registry)
    assert (("service", "files"), ("version", "1.0.0")) in samples(registry_text(registry), "mcp_operations_active")

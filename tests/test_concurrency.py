"""Many concurrent clients: every response reaches its caller, counts stay exact."""

from __future__ import annotations

import anyio
from mcp import Client
from prometheus_client import CollectorRegistry

from collector import instrument
from tests.servers import mcpserver_app
from tests.support import operations, registry_text, samples

CLIENTS = 50
CALLS_EACH = 60


def test_fifty_concurrent_clients_lose_nothing():
    registry = CollectorRegistry()
    server = instrument(mcpserver_app.build(), service="busy", version="v1", registry=registry)
    mismatches: list[tuple[str, str]] = []

    async def one_client(n: int) -> None:
        async with Client(server) as client:
            for i in range(CALLS_EACH):
                text = f"{n}-{i}"
                result = await client.call_tool("echo", {"text": text})
                if result.content[0].text != text:
                    mismatches.append((text, result.content[0].text))

    async def main():
        async with anyio.create_task_group() as tg:
            for n in range(CLIENTS):
                tg.start_soon(one_client, n)

    anyio.run(main)
    assert mismatches == []
    text = registry_text(registry)
    ops = operations(text, service="busy")
    assert ops[("tools/call", "echo", "success")] == CLIENTS * CALLS_EACH
    assert ops[("server/discover", "", "success")] == CLIENTS
    assert samples(text, "mcp_operations_active")[(("service", "busy"), ("version", "v1"))] == 0
    count = samples(text, "mcp_operation_duration_seconds_count")
    assert count[(("method", "tools/call"), ("service", "busy"), ("tool", "echo"), ("version", "v1"))] == CLIENTS * CALLS_EACH

"""The demo's MCP services, filesystem and analytics, as real MCPServers
instrumented by collector. Each version behaves as its scenario says: an error
ratio and a latency distribution per tool, and live incidents on schedule."""

from __future__ import annotations

import random
import time

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from prometheus_client import CollectorRegistry

from collector import instrument
from demo.scenario import Incident, Scenario, ToolBehaviour


def build_server(scenario: Scenario, service: str, version: str, registry: CollectorRegistry,
                 rng: random.Random | None = None, started_at: float | None = None) -> MCPServer:
    """An instrumented MCPServer for `service` at `version`; live incidents are timed from `started_at`."""
    rng = rng or random.Random()
    started_at = time.monotonic() if started_at is None else started_at
    behaviour = scenario.versions[service][version]
    incidents = [i for i in scenario.incidents_for(service, version) if i.start + i.duration > 0]
    server = MCPServer(service, version=version, log_level="WARNING")
    for tool in scenario.tools[service]:
        fn = _make_tool(tool, behaviour.for_tool(tool), incidents, rng, started_at)
        server.add_tool(fn, name=tool, description=f"demo {service} {tool}")
    return instrument(server, service=service, version=version, registry=registry)


def _make_tool(name: str, behaviour: ToolBehaviour, incidents: list[Incident], rng: random.Random,
               started_at: float):
    async def tool(query: str = "") -> str:
        error_ratio, factor = behaviour.error_ratio, 1.0
        if incidents:
            now = time.monotonic() - started_at
            for incident in incidents:
                if incident.active(now):
                    if incident.error_ratio is not None:
                        error_ratio = incident.error_ratio
                    factor *= incident.latency_factor
        await anyio.sleep(behaviour.latency(rng, factor))
        if rng.random() < error_ratio:
            raise ToolError(f"{name} failed")
        return f"{name}: ok"

    return tool

"""The demo's MCP services, filesystem and analytics, each as a real MCPServer
instrumented by collector. Every version has its own behaviour: an error ratio
and a latency distribution per tool."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from prometheus_client import CollectorRegistry

from collector import instrument


@dataclass(frozen=True)
class ToolBehaviour:
    error_ratio: float = 0.001
    median_seconds: float = 0.02
    # spread of the log-normal latency: p99 is about median * exp(2.33 * sigma)
    sigma: float = 0.6

    def latency(self, rng: random.Random) -> float:
        return self.median_seconds * math.exp(rng.gauss(0.0, self.sigma))


# service -> tool -> (share of the traffic, description)
TOOLS: dict[str, dict[str, float]] = {
    "filesystem": {"read_file": 0.5, "list_directory": 0.25, "search_files": 0.15, "write_file": 0.1},
    "analytics": {"run_query": 0.5, "get_report": 0.3, "list_datasets": 0.2},
}


@dataclass
class VersionBehaviour:
    tools: dict[str, ToolBehaviour] = field(default_factory=dict)

    def for_tool(self, name: str) -> ToolBehaviour:
        return self.tools.get(name, ToolBehaviour())


def build_server(service: str, version: str, behaviour: VersionBehaviour, registry: CollectorRegistry,
                 rng: random.Random | None = None) -> MCPServer:
    rng = rng or random.Random()
    server = MCPServer(service, version=version, log_level="WARNING")
    for tool in TOOLS[service]:
        server.add_tool(_make_tool(tool, behaviour.for_tool(tool), rng), name=tool, description=f"demo {tool}")
    return instrument(server, service=service, version=version, registry=registry)


def _make_tool(name: str, behaviour: ToolBehaviour, rng: random.Random):
    async def tool(query: str = "") -> str:
        await anyio.sleep(behaviour.latency(rng))
        if rng.random() < behaviour.error_ratio:
            raise ToolError(f"{name} failed")
        return f"{name}: ok"

    return tool

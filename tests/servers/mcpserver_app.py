"""An official-SDK MCPServer with one tool per outcome, instrumented by collector.

Imported by in-memory tests (`build()`), or run as a stdio server:
    python tests/servers/mcpserver_app.py METRICS_PORT
"""

from __future__ import annotations

import sys

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError


def build(**options) -> MCPServer:
    """`options`: for MCPServer (auth settings and a token verifier, say)."""
    server = MCPServer("outcomes", version="1.0.0", **options)

    @server.tool()
    def echo(text: str) -> str:
        """Returns its input."""
        return text

    @server.tool()
    def refuse() -> str:
        """A tool that reports a failure (isError result)."""
        raise ToolError("refused on purpose")

    @server.tool()
    def crash() -> str:
        """A tool with a bug."""
        raise RuntimeError("unexpected bug")

    @server.tool()
    async def slow(seconds: float = 5.0) -> str:
        await anyio.sleep(seconds)
        return "done"

    @server.resource("note://readme")
    def readme() -> str:
        return "hello"

    @server.prompt()
    def greet(name: str) -> str:
        return f"Hello {name}"

    return server


if __name__ == "__main__":
    from collector import instrument, start_metrics_server

    server = instrument(build(), service="outcomes", version="v1")
    start_metrics_server(int(sys.argv[1]))
    server.run()

"""A FastMCP server with one tool per outcome, instrumented by collector.

Imported by in-memory tests (`build()`), or run as a stdio server:
    python tests/servers/fastmcp_app.py METRICS_PORT
(METRICS_PORT may also come from the MCP_SLO_METRICS_PORT environment variable.)
"""

from __future__ import annotations

import os
import sys

import anyio
from fastmcp import FastMCP
from fastmcp.exceptions import ToolError


def build(name: str = "outcomes") -> FastMCP:
    server = FastMCP(name, version="1.0.0")

    @server.tool
    def echo(text: str) -> str:
        """Returns its input."""
        return text

    @server.tool
    def refuse() -> str:
        """A tool that reports a failure (ToolError -> isError result)."""
        raise ToolError("refused on purpose")

    @server.tool
    def crash() -> str:
        """A tool with a bug (an unexpected exception)."""
        raise RuntimeError("unexpected bug")

    @server.tool
    async def slow(seconds: float = 5.0) -> str:
        await anyio.sleep(seconds)
        return "done"

    @server.resource("note://readme")
    def readme() -> str:
        return "hello"

    @server.prompt
    def greet(name: str) -> str:
        return f"Hello {name}"

    return server


if __name__ == "__main__":
    from collector import instrument, start_metrics_server

    port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ["MCP_SLO_METRICS_PORT"])
    server = instrument(build(), service="outcomes", version="v1")
    start_metrics_server(port)
    server.run(transport="stdio", show_banner=False)

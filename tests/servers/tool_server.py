"""A small MCP server for the proxy tests, on the official SDK's MCPServer.

    python tool_server.py                 # stdio
    python tool_server.py --http PORT     # streamable HTTP on 127.0.0.1:PORT/mcp (SSE responses)
    python tool_server.py --http PORT --json   # the same with JSON responses
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import anyio
from pydantic import BaseModel

from mcp.server.mcpserver import Context, Elicit, MCPServer, Resolve
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("proxy-test-server", version="1.0")


class Name(BaseModel):
    name: str


def ask_name() -> Elicit[Name]:
    return Elicit("What is your name?", Name)


@server.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool()
def fail(message: str = "it broke") -> str:
    """Always fails: the result has isError true."""
    raise ToolError(message)


@server.tool()
async def slow(seconds: float) -> str:
    """Sleep, then answer."""
    await anyio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
async def progress(steps: int, ctx: Context) -> str:
    """Report progress `steps` times."""
    for i in range(steps):
        await ctx.report_progress(i + 1, steps, f"step {i + 1}")
    return f"done {steps}"


@server.tool()
def greet(who: Annotated[Name, Resolve(ask_name)]) -> str:
    """Ask the client for a name (elicitation), then greet it."""
    return f"hello {who.name}"


@server.tool()
def crash(code: int = 3) -> str:
    """Exit the server process at once, without answering."""
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--http":
        server.run(transport="streamable-http", host="127.0.0.1", port=int(sys.argv[2]),
                   json_response="--json" in sys.argv)
    else:
        server.run()

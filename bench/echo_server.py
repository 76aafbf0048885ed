"""A minimal MCP server for the proxy benchmark: one async `echo` tool.

    python bench/echo_server.py              # stdio
    python bench/echo_server.py --http PORT  # streamable HTTP on 127.0.0.1:PORT/mcp
"""

import logging
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("echo", log_level="WARNING")


@server.tool()
async def echo(text: str = "") -> str:
    return text


if __name__ == "__main__":
    logging.disable(logging.INFO)
    if len(sys.argv) >= 3 and sys.argv[1] == "--http":
        server.run(transport="streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()

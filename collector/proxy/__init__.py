"""The instrumenting proxy: measures any MCP server from outside.

`mcp-slo proxy` (see `collector.proxy_cli`) is the usual entry point. To run a
proxy inside a Python program instead:

    tracker = Tracker(Recorder("filesystem", "v1"), request_timeout=60)
    exit_code = await run_stdio_proxy(["node", "server.js"], tracker)   # stdio
    app = HttpProxy("http://127.0.0.1:8000/mcp", tracker)               # an ASGI app
    await serve_http_proxy("http://127.0.0.1:8000/mcp", tracker, port=8080)
"""

from collector.proxy.http import HttpProxy, serve_http_proxy
from collector.proxy.stdio import StdioProxy, run_stdio_proxy
from collector.proxy.tracker import Tracker

__all__ = ["HttpProxy", "StdioProxy", "Tracker", "run_stdio_proxy", "serve_http_proxy"]

"""Instrumentation for `fastmcp.FastMCP` servers (FastMCP 4.x).

FastMCP 4 runs on the official SDK's low-level `Server` (`FastMCP._mcp_server`)
and reaches its own middleware chain through an entry in that server's
`middleware` list. mcp-slo puts `collector.mcpserver.MetricsMiddleware` in
front of it, so one hook sees every inbound message, exactly as for the SDK's
MCPServer: both handshakes (`initialize`, `server/discover`), pings, unknown
methods, malformed params, requests FastMCP middleware rejects, and the wire
outcome of each (FastMCP has already turned tool failures into `isError`
results there). Timeout and cancellation are told apart the same way too.

FastMCP's own `Middleware` hooks are not used for counting: the typed hooks
miss `ping`, unknown methods and requests that fail before FastMCP's handler;
they see a failing tool as a raised `ToolError` rather than the `isError`
result the client gets; and they also run for in-process calls that are no
client request (`FastMCP.call_tool()`/`list_tools()` from code, or a parent
server forwarding to a mounted one, whose every tools/list lists the child).
A `create_proxy` server's calls to its backend go out through a client, so
they are seen by the backend only, never by this middleware on the front.

One innermost `on_call_tool` hook is added for a single purpose: it tells which
tool names this server actually resolved, so tools that come from providers
(mounted servers, `create_proxy` backends, transforms) keep their own `tool`
label even when a call fails before they were listed.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from fastmcp.exceptions import DisabledError, NotFoundError
from fastmcp.server.middleware import Middleware

from collector.mcpserver import MetricsMiddleware
from collector.metrics import Recorder, ToolNames

if TYPE_CHECKING:
    from collector.audit.requests import RequestAudit

# Set while a wire tools/call whose tool name is not yet known runs: the
# recorder's tool names and the name the client called.
_pending_tool: ContextVar[tuple[ToolNames, str] | None] = ContextVar("mcp_slo_pending_tool", default=None)


class FastMCPMetricsMiddleware(MetricsMiddleware):
    """`MetricsMiddleware` on a FastMCP server's low-level server.

    Counting and classification are the SDK middleware's; this only lets the
    FastMCP `on_call_tool` hook report that the called tool exists."""

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        if ctx.request_id is None or ctx.method != "tools/call":
            return await super().__call__(ctx, call_next)
        name = ctx.params.get("name") if isinstance(ctx.params, Mapping) else None
        known = not isinstance(name, str) or name in self.recorder.tools
        # Always set, so a request served in a context copied from another
        # server's (an in-process proxy backend) never reports to that server.
        token = _pending_tool.set(None if known else (self.recorder.tools, name))
        try:
            return await super().__call__(ctx, call_next)
        finally:
            _pending_tool.reset(token)


class ToolResolutionMiddleware(Middleware):
    """Innermost FastMCP hook: learns a called tool's name once FastMCP found it.

    FastMCP raises NotFoundError (or DisabledError) from inside the chain when
    no tool answers to the name; any other outcome, success or failure, means
    the tool exists. Nothing is counted here."""

    async def on_call_tool(self, context: Any, call_next: Any) -> Any:
        pending = _pending_tool.get()
        if pending is None:
            return await call_next(context)
        try:
            result = await call_next(context)
        except (NotFoundError, DisabledError):
            raise
        except Exception:
            pending[0].learn((pending[1],))
            raise
        pending[0].learn((pending[1],))
        return result


# Transforms that never rename the local provider's tools, so its names are wire names.
def _name_preserving_transforms() -> tuple[type, ...]:
    from fastmcp.server.transforms.version_filter import VersionFilter
    from fastmcp.server.transforms.visibility import Visibility

    return (Visibility, VersionFilter)


def _registered_tool_names(server: Any) -> set[str]:
    """Names of the tools registered on the server itself, as clients call them.

    Read without I/O from the local provider; empty when a transform may rename
    them (then names are learned from tools/list results and from calls)."""
    try:
        from fastmcp.tools.base import Tool

        provider = server.local_provider
        keep = _name_preserving_transforms()
        if not all(isinstance(t, keep) for t in [*server.transforms, *provider.transforms]):
            return set()
        return {c.name for c in list(provider._components.values()) if isinstance(c, Tool)}
    except Exception:
        return set()


def instrument_fastmcp(server: Any, recorder: Recorder, audit: RequestAudit | None = None) -> Any:
    """Measure every request a `fastmcp.FastMCP` server (or proxy) handles; returns it. With
    `audit`, each also gets an audit record (the same middleware as the SDK's servers)."""
    lowlevel = getattr(server, "_mcp_server", None)
    middleware = getattr(lowlevel, "middleware", None)
    if not isinstance(middleware, list):
        raise TypeError(
            f"cannot instrument {type(server).__qualname__}: no low-level server middleware list "
            "(expected FastMCP 4.x, which runs on the official SDK's Server); use `mcp-slo proxy`"
        )
    if any(isinstance(m, MetricsMiddleware) for m in middleware):
        raise ValueError("this server is already instrumented")
    recorder.tools.learn(sorted(_registered_tool_names(server)))
    # Tools registered later (a lookup runs only for names not yet known).
    recorder.tools.lookup = lambda name: name in _registered_tool_names(server)
    # Outermost on the low-level server: ahead of FastMCP's own dispatch.
    middleware.insert(0, FastMCPMetricsMiddleware(recorder, audit))
    # Innermost in FastMCP's chain: nearest to where FastMCP resolves the tool.
    server.middleware.append(ToolResolutionMiddleware())
    return server

"""Instrumentation for the official SDK's `mcp.server.mcpserver.MCPServer`
(and the low-level `mcp.server.Server`) as a `ServerMiddleware`.

The middleware wraps every inbound message before validation, so the
handshake (`initialize` or `server/discover`), unknown methods and invalid
params are measured too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import anyio

from collector import classify, names
from collector.metrics import Recorder, method_label

# How long a cancelled request waits for its notifications/cancelled (which
# carries the reason) before it is counted as a plain cancellation. The SDK
# cancels the handler first and delivers the notification right after.
CANCEL_REASON_GRACE = 0.5


def _tool_name(params: Any) -> object:
    return params.get("name") if isinstance(params, Mapping) else None


def _connection_key(ctx: Any, request_id: Any) -> tuple[int, Any]:
    # ServerSession is built per request; the connection behind it is what a
    # request id is unique within.
    return id(getattr(ctx.session, "_connection", ctx.session)), request_id


def _is_tool_error(result: Any) -> bool:
    if isinstance(result, dict):
        return result.get("isError") is True
    return getattr(result, "is_error", None) is True


class MetricsMiddleware:
    """`ServerMiddleware` that records every request in a `Recorder`."""

    def __init__(self, recorder: Recorder):
        self.recorder = recorder
        # (session, request id) -> cancellation reason, for requests in flight
        self._in_flight: dict[tuple[int, Any], str | None] = {}
        # (session, request id) -> (method, tool label, seconds it ran) awaiting their reason
        self._awaiting_reason: dict[tuple[int, Any], tuple[str, str, float]] = {}

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        if ctx.request_id is None:
            if ctx.method == "notifications/cancelled":
                self._on_cancel_notification(ctx)
            return await call_next(ctx)

        rec = self.recorder
        method = method_label(ctx.method)
        name = _tool_name(ctx.params) if method == "tools/call" else None
        key = _connection_key(ctx, ctx.request_id)
        self._in_flight[key] = None
        started = rec.begin()
        try:
            result = await call_next(ctx)
        except anyio.get_cancelled_exc_class() as exc:
            self._on_cancelled(key, method, rec.tool_label(method, name), started, str(exc))
            raise
        except BaseException as exc:
            self._in_flight.pop(key, None)
            rec.end(method, rec.tool_label(method, name), classify.exception_status(exc), started)
            raise
        self._in_flight.pop(key, None)
        if method == "tools/call":
            failed = _is_tool_error(result)
            rec.end(method, rec.tool_label(method, name, succeeded=not failed),
                    names.ERROR if failed else names.SUCCESS, started)
        else:
            if method == "tools/list":
                rec.tools.learn_from_list_result(result if isinstance(result, dict) else _dump(result))
            rec.end(method, "", names.SUCCESS, started)
        return result

    def _on_cancelled(self, key: tuple[int, Any], method: str, tool: str, started: float, message: str) -> None:
        reason = self._in_flight.pop(key, None)
        # An in-process client's own deadline shows in the cancel message itself.
        if reason is not None or classify.cancel_status(message) == names.TIMEOUT:
            self.recorder.end(method, tool, classify.cancel_status(reason or message), started)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.recorder.end(method, tool, names.CANCELLED, started)
            return
        self._awaiting_reason[key] = (method, tool, time.perf_counter() - started)
        loop.call_later(CANCEL_REASON_GRACE, self._settle, key, None)

    def _on_cancel_notification(self, ctx: Any) -> None:
        params = ctx.params if isinstance(ctx.params, Mapping) else {}
        key = _connection_key(ctx, params.get("requestId"))
        reason = params.get("reason")
        reason = reason if isinstance(reason, str) else ""
        if key in self._awaiting_reason:
            self._settle(key, reason)
        elif key in self._in_flight:
            self._in_flight[key] = reason

    def _settle(self, key: tuple[int, Any], reason: str | None) -> None:
        pending = self._awaiting_reason.pop(key, None)
        if pending is not None:
            method, tool, ran = pending
            self.recorder.end(method, tool, classify.cancel_status(reason), time.perf_counter() - ran)


def _dump(model: Any) -> Any:
    dump = getattr(model, "model_dump", None)
    return dump(by_alias=True) if dump else None


def instrument_mcpserver(server: Any, recorder: Recorder) -> Any:
    """Put the metrics middleware outermost on an MCPServer or low-level Server."""
    manager = getattr(server, "_tool_manager", None)
    if manager is not None:
        recorder.tools.learn(t.name for t in manager.list_tools())
        recorder.tools.lookup = lambda name: manager.get_tool(name) is not None
    if any(isinstance(m, MetricsMiddleware) for m in server.middleware):
        raise ValueError("this server is already instrumented")
    server.middleware.insert(0, MetricsMiddleware(recorder))
    return server

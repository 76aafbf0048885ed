"""Instrumentation for the official SDK's `mcp.server.mcpserver.MCPServer`
(and the low-level `mcp.server.Server`) as a `ServerMiddleware`.

The middleware wraps every inbound message before validation, so the
handshake (`initialize` or `server/discover`), unknown methods and invalid
params are measured too.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio

from collector import classify, names, semconv
from collector.metrics import Recorder, method_label
from collector.tracecontext import active_span_reader, trace_of

if TYPE_CHECKING:
    from collector.audit.requests import RequestAudit

# How long a cancelled request waits for its notifications/cancelled (which
# carries the reason) before it is counted as a plain cancellation.
CANCEL_REASON_GRACE = 0.25
MAX_REMEMBERED_REASONS = 1024


def _tool_name(params: Any) -> object:
    # `type(...) is dict` first: the ABC isinstance check is slow on the hot path
    return params.get("name") if type(params) is dict or isinstance(params, Mapping) else None


def _connection_key(ctx: Any, request_id: Any) -> tuple[int, Any]:
    # ServerSession is built per request; the connection behind it is what a
    # request id is unique within.
    return id(getattr(ctx.session, "_connection", ctx.session)), request_id


def _error_of(exc: BaseException) -> object:
    """error.type of a handler's exception: its JSON-RPC code, else its class."""
    code = getattr(getattr(exc, "error", None), "code", None)
    if isinstance(code, int):
        return code
    if isinstance(exc, TimeoutError):
        return None  # error.type "timeout"
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _is_tool_error(result: Any) -> bool:
    if isinstance(result, dict):
        return result.get("isError") is True
    return getattr(result, "is_error", None) is True


class MetricsMiddleware:
    """`ServerMiddleware` that records every request in a `Recorder`."""

    def __init__(self, recorder: Recorder, audit: RequestAudit | None = None):
        self.recorder = recorder
        self.audit = audit  # the audit trail, when asked for: a record per request measured
        # (connection, request id) -> reason, from notifications/cancelled that
        # arrived before their request unwound; bounded, as a notification may
        # name a request that already finished.
        self._reasons: OrderedDict[tuple[int, Any], str] = OrderedDict()
        # (connection, request id) -> set when that request's notifications/cancelled arrives
        self._waiting: dict[tuple[int, Any], anyio.Event] = {}
        # The trace of a request without a traceparent: the active OpenTelemetry span's.
        self._active_trace = active_span_reader()
        # mcp.protocol.version is read only when the semantic conventions are recorded.
        self._protocol = recorder.metrics != semconv.MCP_SLO

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        if ctx.request_id is None:
            if ctx.method == "notifications/cancelled":
                self._on_cancel_notification(ctx)
            return await call_next(ctx)

        rec = self.recorder
        method = method_label(ctx.method)
        params = ctx.params
        name = _tool_name(params) if method == "tools/call" else None
        trace = trace_of(params)
        if trace is None and self._active_trace is not None:
            trace = self._active_trace()
        protocol = semconv.protocol_version(getattr(ctx, "protocol_version", None)) if self._protocol else None
        started = rec.begin()
        try:
            result = await call_next(ctx)
        except anyio.get_cancelled_exc_class() as exc:
            status, waited = await self._cancel_status(_connection_key(ctx, ctx.request_id), str(exc))
            rec.end(method, rec.tool_label(method, name), status, started + waited, None, trace, protocol)
            if self.audit is not None:
                self._audit(ctx, method, name, status, started + waited, exc, None, trace)
            raise
        except BaseException as exc:
            status = classify.exception_status(exc)
            rec.end(method, rec.tool_label(method, name), status, started, _error_of(exc), trace, protocol)
            if self.audit is not None:
                self._audit(ctx, method, name, status, started, exc, None, trace)
            raise
        if method == "tools/call":
            if _is_tool_error(result):
                status = names.ERROR
                rec.end(method, rec.tool_label(method, name), status, started, semconv.TOOL_ERROR, trace, protocol)
            else:
                status = names.SUCCESS
                rec.end(method, rec.tool_label(method, name, succeeded=True), status, started, None, trace, protocol)
        else:
            if method == "tools/list":
                rec.tools.learn_from_list_result(result if isinstance(result, dict) else _dump(result))
            status = names.SUCCESS
            rec.end(method, "", status, started, None, trace, protocol)
        if self.audit is not None:
            self._audit(ctx, method, name, status, started, None, result, trace)
        return result

    def _audit(self, ctx: Any, method: str, name: object, status: str, started: float,
               error: BaseException | None, result: Any, trace: tuple[str, str] | None) -> None:
        """The request's audit record: its tool by the name asked (the metrics' label may fold
        unknown names into one), timed as the metrics timed it."""
        tool = name if isinstance(name, str) else None
        self.audit.seen(ctx, method, tool, status, time.perf_counter() - started, error, result, trace)

    async def _cancel_status(self, key: tuple[int, Any], message: str) -> tuple[str, float]:
        """timeout or cancelled, and how long we waited to learn which.

        The SDK cancels the handler first and delivers the client's
        notifications/cancelled (whose reason tells a client timeout from a user
        cancel) right after, so wait a moment for it. An in-process client's own
        deadline shows in the cancel message itself.
        """
        waited = 0.0
        reason = self._reasons.pop(key, None)
        if reason is None:
            # 2026-07-28: the notification came on its own per-request Connection
            same_id = next((k for k in reversed(self._reasons) if k[1] == key[1]), None)
            reason = None if same_id is None else self._reasons.pop(same_id)
        if reason is None and classify.cancel_status(message) != names.TIMEOUT:
            event = self._waiting[key] = anyio.Event()
            began = time.perf_counter()
            with anyio.move_on_after(CANCEL_REASON_GRACE, shield=True):
                await event.wait()
            waited = time.perf_counter() - began
            del self._waiting[key]
            reason = self._reasons.pop(key, None)
        return classify.cancel_status(reason if reason is not None else message), waited

    def _on_cancel_notification(self, ctx: Any) -> None:
        params = ctx.params if isinstance(ctx.params, Mapping) else {}
        request_id = params.get("requestId")
        reason = params.get("reason")
        reason = reason if isinstance(reason, str) else ""
        key = _connection_key(ctx, request_id)
        if key not in self._waiting:
            # On 2026-07-28 connections each request gets its own Connection
            # object: match a cancelled request waiting for its reason by id.
            key = next((k for k in self._waiting if k[1] == request_id), key)
        self._reasons[key] = reason
        while len(self._reasons) > MAX_REMEMBERED_REASONS:
            self._reasons.popitem(last=False)
        event = self._waiting.get(key)
        if event is not None:
            event.set()


def _dump(model: Any) -> Any:
    dump = getattr(model, "model_dump", None)
    return dump(by_alias=True) if dump else None


def instrument_mcpserver(server: Any, recorder: Recorder, audit: RequestAudit | None = None) -> Any:
    """Put the metrics middleware outermost on an MCPServer or low-level Server (with `audit`,
    it also writes the audit trail)."""
    manager = getattr(server, "_tool_manager", None)
    if manager is not None:
        recorder.tools.learn(t.name for t in manager.list_tools())
        recorder.tools.lookup = lambda name: manager.get_tool(name) is not None
    if any(isinstance(m, MetricsMiddleware) for m in server.middleware):
        raise ValueError("this server is already instrumented")
    server.middleware.insert(0, MetricsMiddleware(recorder, audit))
    return server

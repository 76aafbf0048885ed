"""The audit record of each MCP request the in-process middleware measured
(`collector.mcpserver`): what was asked, by whom, and how it ended, with the status the metrics
counted it under.

On the request's task the middleware only reads what is gone afterwards (the clock, the
authenticated principal of the request's context, the transport's session and HTTP request);
the record itself (parameters by mode, redaction, sizes) is built on the writer's thread, so an
audited call pays for a few attribute reads and a queue put.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from collector.audit.config import AuditConfig, format_time
from collector.audit.fields import (
    bounded,
    client_info,
    error_field,
    json_size,
    new_id,
    tool_error_text,
)
from collector.audit.redact import filter_headers
from collector.audit.writer import AuditWriter


class RequestAudit:
    """Submits a record per request to `writer`, for `service` and `version`."""

    def __init__(self, writer: AuditWriter, config: AuditConfig, service: str, version: str):
        self.writer, self.config, self.service, self.version = writer, config, service, version
        # The session of a request without an HTTP request: a stdio server serves one client
        # per process, so one id per run (the SDK may build a new connection object per request)
        self.run_id = uuid.uuid4().hex
        self._principal = _principal_reader()

    def seen(self, ctx: Any, method: str, tool: str | None, status: str, duration: float,
             error: BaseException | None, result: Any, trace: tuple[str, str] | None) -> None:
        """Called by the middleware once the request's outcome is known (on the request's task)."""
        connection = getattr(ctx.session, "_connection", ctx.session)
        request = getattr(ctx, "request", None)
        seen = {
            "wall": time.time() - duration, "duration": duration, "jsonrpc_id": ctx.request_id, "method": method,
            "tool": tool, "params": ctx.params, "status": status, "error": error, "result": result,
            "trace": trace, "protocol": getattr(ctx, "protocol_version", None),
            "session_id": self._session_id(connection, request), "client": _client(connection),
            "principal": self._principal(), "headers": getattr(request, "headers", None),
            "client_ip": getattr(getattr(request, "client", None), "host", None),
        }
        self.writer.submit(partial(self.record, seen))

    def record(self, seen: Mapping[str, Any]) -> dict[str, Any]:
        """The record of a request (on the writer's thread)."""
        params = seen["params"] if isinstance(seen["params"], Mapping) else {}
        method, tool = seen["method"], seen["tool"]
        arguments = params.get("arguments") if method in ("tools/call", "prompts/get") else None
        headers = filter_headers(seen["headers"], self.config.header_allow, self.config.header_deny) \
            if seen["headers"] is not None else None
        return {
            "time": format_time(seen["wall"]),
            "request_id": new_id(),
            "jsonrpc_id": bounded(seen["jsonrpc_id"]),
            "session_id": seen["session_id"],
            "client": seen["client"],
            "protocol_version": seen["protocol"],
            "identity": self._identity(seen["principal"]),
            "client_ip": seen["client_ip"],
            "headers": headers or None,
            "service": self.service,
            "version": self.version,
            "method": method,
            "tool": bounded(tool),
            "resource": bounded(params.get("uri")) if method.startswith("resources/") else None,
            "prompt": bounded(params.get("name")) if method == "prompts/get" else None,
            "params": self.config.record_params(tool, arguments if isinstance(arguments, Mapping) else {})
            if arguments is not None else None,
            "status": seen["status"],
            "error": _error(seen["error"], seen["result"], seen["status"], arguments,
                            self.config.params_mode(tool) == "full"),
            "duration_seconds": round(seen["duration"], 6),
            "request_bytes": json_size(params),
            "response_bytes": json_size(seen["result"]) if seen["error"] is None else None,
            "trace_id": seen["trace"][0] if seen["trace"] else None,
        }

    def _session_id(self, connection: Any, request: Any) -> str | None:
        """The transport's session id (Mcp-Session-Id over HTTP); None over HTTP without one
        (stateless: no session to name); the run's id without an HTTP request (stdio)."""
        transport = getattr(connection, "session_id", None)
        if isinstance(transport, str) and transport:
            return transport
        if request is None:
            return self.run_id
        header = getattr(request, "headers", {}).get("mcp-session-id")
        return header if isinstance(header, str) and header else None

    def _identity(self, principal: Any) -> dict[str, Any] | None:
        """The principal the SDK authenticated for the request (its token verifier checked the
        token): client id, subject, scopes, and the configured user and e-mail claims."""
        if principal is None:
            return None
        claims = getattr(principal, "claims", None) or {}
        subject = getattr(principal, "subject", None) or claims.get("sub")
        user = subject if self.config.user_claim == "sub" else claims.get(self.config.user_claim)
        return {"verified": True, "subject": subject, "user": user, "email": claims.get(self.config.email_claim),
                "client_id": getattr(principal, "client_id", None), "scopes": list(getattr(principal, "scopes", []) or []),
                "issuer": claims.get("iss")}


def _client(connection: Any) -> dict[str, Any] | None:
    return client_info(getattr(getattr(connection, "client_params", None), "client_info", None))


def _principal_reader() -> Callable[[], Any]:
    """Reads the access token of the request's authenticated user (a context variable of the
    SDK's HTTP auth middleware), or None; resolved once, called per request."""
    try:
        from mcp.server.auth.middleware.auth_context import get_access_token
    except ImportError:  # an SDK without the auth middleware
        return lambda: None
    return get_access_token


def _error(exc: BaseException | None, result: Any, status: str, arguments: Any, keep_values: bool,
           ) -> dict[str, Any] | None:
    """{code, message} of a failed request: the JSON-RPC error's, the exception's, or a tool
    result's text (isError); argument values it repeats masked unless they are kept."""
    if status == "success":
        return None
    if exc is not None:
        error = getattr(exc, "error", None)
        message = getattr(error, "message", None) or str(exc) or type(exc).__name__
        return error_field(getattr(error, "code", None), message, arguments, keep_values=keep_values)
    return error_field(None, tool_error_text(result), arguments, keep_values=keep_values)

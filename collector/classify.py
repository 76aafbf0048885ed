"""How the outcome of one MCP request maps to the `status` label.

- success: a result, except a tools/call result with `isError: true`;
- error: a tool result with `isError: true`, a JSON-RPC error response, an exception;
- timeout: a request that ran out of time (REQUEST_TIMEOUT, TimeoutError, or a
  cancellation whose reason says the client timed out);
- cancelled: any other cancellation by the client.
"""

from __future__ import annotations

import re

from collector import names

# JSON-RPC error code MCP uses for "Request timed out".
REQUEST_TIMEOUT = -32001

# Reasons the SDKs put in notifications/cancelled when their own deadline fired:
# python "timed out after 0.2s", typescript "Request timed out", ...
_TIMEOUT_REASON = re.compile(r"time[ds]?[ -]?out|deadline", re.IGNORECASE)


def result_status(method: str, result: object) -> str:
    """Status of a successful JSON-RPC response carrying `result` (a dict on the wire)."""
    if method == "tools/call" and isinstance(result, dict) and result.get("isError") is True:
        return names.ERROR
    return names.SUCCESS


def error_status(code: object) -> str:
    """Status of a JSON-RPC error response with this error code."""
    return names.TIMEOUT if code == REQUEST_TIMEOUT else names.ERROR


def cancel_status(reason: object) -> str:
    """Status of a request the client cancelled, from the cancellation's reason."""
    if isinstance(reason, str) and _TIMEOUT_REASON.search(reason):
        return names.TIMEOUT
    return names.CANCELLED


def exception_status(exc: BaseException) -> str:
    """Status of a request whose handler raised `exc` (not a cancellation)."""
    if isinstance(exc, TimeoutError):
        return names.TIMEOUT
    code = getattr(getattr(exc, "error", None), "code", None)
    return error_status(code)

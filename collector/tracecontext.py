"""The trace an MCP request belongs to, for exemplars: W3C trace context.

MCP carries it in `params._meta.traceparent` (as the SDKs' OpenTelemetry
instrumentation sends it). In-process, an active OpenTelemetry span is used when
the request carries none. A trace is `(trace_id, span_id)`, lowercase hex.
Anything malformed is ignored: never an error, and never more than the 48 hex
digits of a valid traceparent reach a label.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

Trace = tuple[str, str]

_HEX = frozenset("0123456789abcdef")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def parse_traceparent(value: object) -> Trace | None:
    """(trace_id, span_id) of a W3C traceparent "VV-TRACEID-SPANID-FLAGS", else None."""
    if not isinstance(value, str) or len(value) < 55:
        return None
    version, trace_id, span_id, flags = value[:2], value[3:35], value[36:52], value[53:55]
    if value[2] != "-" or value[35] != "-" or value[52] != "-" or version == "ff":
        return None
    # version 00 is exactly 55 characters; later versions may append "-..." fields
    if len(value) > 55 and (version == "00" or value[55] != "-"):
        return None
    if not _HEX.issuperset(version + trace_id + span_id + flags):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return trace_id, span_id


def trace_of(params: object) -> Trace | None:
    """The trace in a request's params._meta.traceparent (params as on the wire)."""
    # `type(...) is dict` first: the ABC isinstance check is slow on the hot path
    if type(params) is not dict and not isinstance(params, Mapping):
        return None
    meta = params.get("_meta")
    if meta is None:  # the common case, before the slow ABC check
        return None
    if type(meta) is not dict and not isinstance(meta, Mapping):
        return None
    value = meta.get("traceparent")
    return None if value is None else parse_traceparent(value)


def active_span_reader() -> Callable[[], Trace | None] | None:
    """A function returning the active OpenTelemetry span's trace, or None when
    opentelemetry-api is not installed."""
    try:
        from opentelemetry import trace
        from opentelemetry.context import get_current
    except ImportError:
        return None
    get_current_span = trace.get_current_span

    def active_trace() -> Trace | None:
        current = get_current()
        if not current:  # no span (nor anything else) in the context: most requests, cheaply
            return None
        span = get_current_span(current).get_span_context()
        if not span.is_valid:
            return None
        return format(span.trace_id, "032x"), format(span.span_id, "016x")

    return active_trace

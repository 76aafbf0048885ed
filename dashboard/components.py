"""Dash components every page uses: an empty state saying why there is nothing to show and
what to do, a notice above a page's content, and the empty states of an engine that cannot
be read or has nothing yet. The pages import these, never each other.
"""

from __future__ import annotations

from typing import Any

from dash import html

from dashboard.source import SourceError, Status


def empty_state(title: str, text: str, *extra: Any) -> html.Div:
    return html.Div(className="empty", children=[html.H3(title), html.P(text), *extra])


def notice(text: str) -> html.Div:
    return html.Div(text, className="notice")


def unreachable(error: SourceError) -> html.Div:
    if error.kind == "store":
        return empty_state("The store cannot be read", error.message,
                           html.P("The dashboard reads the file the engine writes (mcp-slo engine --store PATH)."))
    title = "The engine is unreachable" if error.kind == "unreachable" else "The engine's answer is not usable"
    return empty_state(title, error.message,
                       html.P("Start it with mcp-slo engine --config SPEC --prometheus URL, and give its "
                              "--listen address to mcp-slo dashboard --engine URL."))


def no_services(status: Status | SourceError) -> html.Div:
    if isinstance(status, Status) and status.evaluated_at is None:
        failing = ([html.P(f"Its ticks fail: {status.last_error}. The engine retries on every tick; "
                           "check that it can reach Prometheus.")] if status.last_error else [])
        return empty_state("No evaluation yet", "The engine has not finished its first evaluation.", *failing)
    return empty_state("No services yet",
                       "The latest evaluation found no MCP service: Prometheus has no mcp_operations_total "
                       "series and the SLO spec names no service.",
                       html.P("Instrument a server (collector.instrument) or put mcp-slo proxy in front of one; "
                              "its SLOs appear here after the next evaluation."))

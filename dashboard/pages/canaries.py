"""PLACEHOLDER: the canaries page is not built yet (each canary's verdict, score, reason and
per-metric evidence). Registered so the navigation is complete."""

from __future__ import annotations

from typing import Any

from dash import dcc, html

PATH, NAME, ORDER = "/canaries", "Canaries", 1


def layout(**_: Any) -> html.Div:
    return html.Div(className="empty", children=[
        html.H3("Canaries"),
        html.P("Not built yet: this page (verdict, score, reason and evidence of every canary) "
               "comes with a later change."),
        html.P(["Meanwhile the ", dcc.Link("overview", href="/"), " shows each service's canary verdict, and ",
                html.Code("GET /api/v1/canaries"), " on the engine gives the evidence."]),
    ])

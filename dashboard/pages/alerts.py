"""PLACEHOLDER: the alerts page is not built yet (every firing burn-rate tier, with its
windows and thresholds). Registered so the navigation is complete."""

from __future__ import annotations

from typing import Any

from dash import dcc, html

PATH, NAME, ORDER = "/alerts", "Alerts", 2


def layout(**_: Any) -> html.Div:
    return html.Div(className="empty", children=[
        html.H3("Alerts"),
        html.P("Not built yet: this page (every firing burn-rate tier with its windows and thresholds) "
               "comes with a later change."),
        html.P(["Meanwhile the ", dcc.Link("overview", href="/?status=critical,warning,exhausted"),
                " lists the firing tiers of every SLO."]),
    ])

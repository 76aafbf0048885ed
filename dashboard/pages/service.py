"""PLACEHOLDER: the service detail page is not built yet (SLO history over the time range,
per-tool breakdown, burn-rate charts from Prometheus). Registered so that links from the
overview and the alerts' dashboard_url (/services/{service}) land somewhere clear."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlencode

from dash import dcc, html

PATH, PATH_TEMPLATE, NAME, ORDER = "/services", "/services/<service>", "Service", 3


def layout(service: str | None = None, **_: Any) -> html.Div:
    name = unquote(service) if service and service != "none" else None
    return html.Div(className="empty", children=[
        html.H3(f"Service {name}" if name else "Service"),
        html.P("Not built yet: the service page (SLO history, per-tool breakdown, burn-rate charts) "
               "comes with a later change."),
        html.P(["Meanwhile the ", dcc.Link("overview", href="/" + (f"?{urlencode({'q': name})}" if name else "")),
                " shows this service's SLOs, burn rates, canary verdict and firing alerts."]),
    ])

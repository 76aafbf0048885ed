"""The shell, the frame around every page: navigation, a time range and an auto-refresh period
(both kept in the URL's query string beside each page's own state, see dashboard.url_state),
and a banner saying how old the engine's latest evaluation is.

    app.layout = shell.layout()           # or a function giving each user their nav: shell.layout(nav)
    shell.register_callbacks(app, data)   # the URL and the controls in step, the tick, the banner

`sync_shell` and `banner` are plain functions the callbacks wrap, so tests call them directly.
"""

from __future__ import annotations

from typing import Any

import dash
from dash import ALL, Input, Output, ctx, dcc, html, no_update

from dashboard.formatting import fmt_duration
from dashboard.pages import alerts, canaries, overview
from dashboard.source import Source, SourceError, Status
from dashboard.url_state import (DEFAULT_RANGE, DEFAULT_REFRESH, RANGES, REFRESHES, merge_search, shell_query,
                                 shell_settings)

NAV = (overview, canaries, alerts)  # a service's page is reached from its row; the app may add the audit page


def layout(nav: tuple = NAV) -> html.Div:
    """The frame around every page: navigation (a link to each page of `nav`), the range and
    refresh controls, the banner."""
    return html.Div([
        # refresh=False: a callback writing the query string updates the address bar without
        # making Dash's router render the page again (which would take the focus from the filter)
        dcc.Location(id="url", refresh=False),
        dcc.Interval(id="tick", interval=REFRESHES[DEFAULT_REFRESH] * 1000),
        html.Header(className="top", children=[
            html.Strong("mcp-slo", className="brand"),
            html.Nav([dcc.Link(page.NAME, id={"role": "nav", "path": page.PATH}, href=page.PATH) for page in nav]),
            html.Div(className="shell-controls", children=[
                html.Label("Range", htmlFor="range"),
                dcc.Dropdown(id="range", options=list(RANGES), value=DEFAULT_RANGE, clearable=False,
                             searchable=False, className="shell-dropdown"),
                html.Label("Refresh", htmlFor="refresh"),
                dcc.Dropdown(id="refresh", options=list(REFRESHES), value=DEFAULT_REFRESH, clearable=False,
                             searchable=False, className="shell-dropdown"),
            ]),
        ]),
        html.Div(id="banner", className="banner"),
        html.Main(dash.page_container),
    ])


def sync_shell(trigger: str | None, search: str | None, range_: str | None, refresh: str | None,
               paths: list[str] | None = None) -> tuple:
    """Keep the URL and the shell's controls in step: a control changed -> the URL; the URL
    changed (first load, back and forward, a page writing its own state) -> the controls.
    Returns (search, range, refresh, the hrefs of the nav's `paths`), no_update where nothing
    changes."""
    if trigger in ("range", "refresh"):
        new = merge_search(search, shell_query(range_, refresh))
        return (new if new != (search or "") else no_update), no_update, no_update, nav_hrefs(range_, refresh, paths)
    want_range, want_refresh = shell_settings(search)
    return (no_update, want_range if want_range != range_ else no_update,
            want_refresh if want_refresh != refresh else no_update, nav_hrefs(want_range, want_refresh, paths))


def nav_hrefs(range_: str | None, refresh: str | None, paths: list[str] | None = None) -> list[str]:
    """The links of the nav's pages (`paths`, NAV's by default) keeping the range and refresh."""
    paths = [page.PATH for page in NAV] if paths is None else paths
    return [path + merge_search("", shell_query(range_, refresh)) for path in paths]


def banner(status: Status | SourceError) -> tuple[Any, str]:
    """(what the banner says, its class): how old the engine's latest evaluation is, and
    loudly when it is stale, missing or cannot be read."""
    if isinstance(status, SourceError):
        return f"Cannot read the data: {status.message}", "banner error"
    failing = f" The engine's last tick failed: {status.last_error}" if status.last_error else ""
    if status.evaluated_at is None:
        return f"No evaluation yet: the engine has not finished its first one.{failing}", "banner warn"
    age = fmt_duration(status.age() or 0.0)
    if status.stale:
        return (f"Stale data: the engine's latest evaluation is {age} old ({status.evaluated_at}).{failing}",
                "banner warn")
    return f"Latest evaluation {age} ago ({status.evaluated_at}).", "banner ok"


def register_callbacks(app: dash.Dash, data: Source) -> None:
    @app.callback(Output("url", "search"), Output("range", "value"), Output("refresh", "value"),
                  Output({"role": "nav", "path": ALL}, "href"),
                  Input("url", "search"), Input("range", "value"), Input("refresh", "value"))
    def on_shell(search, range_, refresh):
        # the links this user's nav has (the audit page's only for auditors), in their order
        paths = [output["id"]["path"] for output in ctx.outputs_list[3]]
        return sync_shell(ctx.triggered_id, search, range_, refresh, paths)

    @app.callback(Output("tick", "interval"), Output("tick", "disabled"), Input("refresh", "value"))
    def on_refresh(refresh):
        seconds = REFRESHES.get(refresh)
        return (seconds or 3600) * 1000, seconds is None

    @app.callback(Output("banner", "children"), Output("banner", "className"),
                  Input("tick", "n_intervals"), Input("url", "pathname"))
    def on_banner(_tick, _pathname):
        return banner(data.status())

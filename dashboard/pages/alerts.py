"""The alerts page: every firing and pending alert, from Prometheus and Alertmanager, worst
first, with its runbook; then every alert that fired within the shell's time range, one row
per episode, newest first, and a timeline of them.

Prometheus gives the alerts and their state, Alertmanager where they were routed and whether
they are silenced or inhibited (dashboard.alerts_data merges them); the past comes from
Prometheus's ALERTS series (dashboard.alerts_data.read_episodes). The severity filter applies
to both and is in the URL (`?severity=page,ticket`), so a view is a permalink. The callbacks
are thin wrappers around `render`, a plain function that tests call with a fake Metrics.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from dash import Input, Output, State, dcc, html, no_update

from dashboard import alerts_data
from dashboard.colors import SEVERITY_COLORS
from dashboard.components import empty_state, notice
from dashboard.formatting import fmt_duration
from dashboard.prometheus import Metrics
from dashboard.source import SourceError
from dashboard.url_state import DEFAULT_RANGE, RANGES, merge_search, range_seconds

PATH, NAME, ORDER = "/alerts", "Alerts", 2

OK = {"background": "#e8f5e9", "borderLeft": "4px solid #2e7d32", "paddingLeft": "1rem"}
WRAP = {"whiteSpace": "normal", "minWidth": "20rem"}
PAST_ROWS = 200  # the newest episodes listed (the timeline shows the alerts that fired last)


def layout(severity: str | list[str] | None = None, **_: Any) -> html.Div:
    """The page for the URL's query (Dash pages passes its parameters)."""
    return html.Div([
        html.Div(className="controls", children=[
            html.Label("Severity", htmlFor="alerts-severity"),
            dcc.Dropdown(id="alerts-severity", multi=True, value=list(alerts_data.severities_from_query(severity)),
                         options=list(alerts_data.SEVERITIES), placeholder="Any severity",
                         className="status-filter"),
        ]),
        html.Div(id="alerts-summary", className="summary"),
        html.Div(id="alerts-body"),
    ])


def register_callbacks(app, data, metrics: Metrics) -> None:
    # `data` (the engine) is unused on purpose: alerts come from Prometheus and Alertmanager
    @app.callback(Output("url", "search", allow_duplicate=True),
                  Input("alerts-severity", "value"), State("url", "search"), prevent_initial_call=True)
    def to_url(severities, search):
        new = merge_search(search, {"severity": ",".join(alerts_data.severities_from_query(severities)) or None})
        return new if new != (search or "") else no_update

    @app.callback(Output("alerts-body", "children"), Output("alerts-summary", "children"),
                  Input("alerts-severity", "value"), Input("tick", "n_intervals"), Input("range", "value"),
                  State("url", "search"))
    def on_view(severities, _tick, range_, search):
        # links to service pages keep the rest of the query (the shell's range and refresh)
        return render(metrics, alerts_data.severities_from_query(severities), merge_search(search, {"severity": None}),
                      range_=range_)


def render(metrics: Metrics, severities: tuple[str, ...] = (), link_query: str = "",
           now: float | None = None, range_: str | None = None) -> tuple[list, Any]:
    """(the page's body, its summary line): the alerts active now, or why there are none, then
    those that fired in the last `range_` (the shell's range). `link_query` ("?range=7d") goes
    on the links to service pages."""
    now = time.time() if now is None else now
    range_ = range_ if range_ in RANGES else DEFAULT_RANGE
    prometheus, alertmanager = metrics.alerts(), metrics.alertmanager_alerts()
    notes = []
    if isinstance(alertmanager, SourceError):
        if alertmanager.kind == "unconfigured":
            notes.append(html.P("Alertmanager is not configured (mcp-slo dashboard --alertmanager URL): "
                                "receivers, silences and inhibitions are not shown.", className="muted"))
        else:
            notes.append(notice(f"Alertmanager cannot be read, so receivers and silences are not shown: "
                                f"{alertmanager.message}"))
        alertmanager = []
    if isinstance(prometheus, SourceError):
        if not alertmanager:
            return [prometheus_unreachable(prometheus), *notes], None
        notes.insert(0, notice(f"Prometheus cannot be read, so pending alerts and the alerts that fired before "
                               f"are missing; the firing ones below come from Alertmanager: {prometheus.message}"))
        prometheus, fired = [], None
    else:
        fired = alerts_data.read_episodes(metrics, now - range_seconds(range_), now)
    rows = alerts_data.merge(prometheus, alertmanager, now)
    shown = alerts_data.filter_rows(rows, severities)
    past = [] if fired is None else past_section(fired, severities, range_, now, link_query)
    if not rows:
        return [*notes, html.Div(className="empty", style=OK, children=[
            html.H3("No alerts"), html.P("Nothing is firing or pending: every SLO burns its error budget slower "
                                         "than its alert tiers allow, and no canary is to be rolled back.")]),
                *past], None
    if not shown:
        body = empty_state(f"No {' or '.join(severities)} alert",
                           "Nothing of this severity is firing or pending; clear the severity filter to see the "
                           f"other {len(rows):,}.")
    else:
        body = table(shown, link_query)
    return [*notes, html.H3("Firing and pending now"), body, *past], summary(rows, shown, severities)


def prometheus_unreachable(error: SourceError) -> html.Div:
    if error.kind == "unconfigured":
        return empty_state("No Prometheus configured", error.message,
                           html.P("Give mcp-slo dashboard --prometheus URL (MCP_SLO_PROMETHEUS_URL for gunicorn)."))
    return empty_state("Prometheus is unreachable", error.message,
                       html.P("Its alerts cannot be listed until it answers; the page retries on every refresh."))


def summary(rows: list[dict], shown: list[dict], severities: tuple[str, ...]) -> html.Div:
    parts: list = []
    for severity, states in alerts_data.counts(rows).items():
        text = ", ".join(f"{n} {state}" for state, n in states.items() if n)
        parts += [" · "] if parts else []
        parts.append(html.Span(f"{severity}: {text}", className="count",
                               style={"color": SEVERITY_COLORS.get(severity)}))
    shown_text = f" — {len(shown):,} shown" if severities else ""
    return html.Div([html.Strong(f"{len(rows):,} alerts"), " (", *parts, ")", shown_text])


def table(rows: list[dict], link_query: str = "") -> html.Table:
    head = html.Tr([html.Th(h) for h in ("Severity", "Alert", "Service", "SLO", "Tier / window", "State", "Since",
                                         "Summary", "Runbook", "Receivers")])
    return html.Table(className="overview alerts",
                      children=[html.Thead(head), html.Tbody([row(r, link_query) for r in rows])])


def row(r: dict, link_query: str = "") -> html.Tr:
    state = [html.Span(r["state"], className="firing" if r["state"] == "firing" else "muted")]
    if r["silenced"]:
        state.append(html.Span(" · silenced", className="muted"))
    if r["inhibited"]:
        state.append(html.Span(" · inhibited", className="muted", title="held back by a worse alert"))
    # this dashboard's page of the service, rather than the annotation's link to wherever the rules say
    service = (dcc.Link(r["service"], href=f"/services/{quote(r['service'], safe='')}{link_query}")
               if r["service"] else "")
    receivers = ", ".join(r["receivers"]) if r["alertmanager"] else "—"
    return html.Tr(children=[
        html.Td(html.Span(r["severity"] or "none", className="chip",
                          style={"background": SEVERITY_COLORS.get(r["severity"], "#9e9e9e")})),
        html.Td(r["alertname"], title=", ".join(f"{k}={v}" for k, v in r["other_labels"].items()) or None),
        html.Td(service), html.Td(r["slo"]), html.Td(r["tier"]),
        html.Td(state),
        html.Td(r["age"], className="num", title=f"active since {r['since_text']}"),
        html.Td(r["summary"], title=r["description"] or None, style=WRAP),
        html.Td(html.A("runbook", href=r["runbook_url"], target="_blank", rel="noopener noreferrer")
                if r["runbook_url"] else "—"),
        html.Td(receivers, title=None if r["alertmanager"] else "not in Alertmanager (pending, or not sent yet)"),
    ])


# --- the past -----------------------------------------------------------------------------------


def past_section(fired: list[dict] | SourceError, severities: tuple[str, ...], range_: str, now: float,
                 link_query: str = "") -> list:
    """The alerts that fired in the last `range_` (of `severities`, when given): a timeline
    and one row per episode, newest first."""
    title = html.H3(f"Fired in the last {range_}")
    step = alerts_data.episode_step(range_seconds(range_))
    if isinstance(fired, SourceError):
        return [title, notice(f"The alerts that fired before cannot be read: {fired.message}")]
    shown = alerts_data.filter_rows(fired, severities)
    if not shown:
        which = f" {' or '.join(severities)}" if severities else ""
        return [title, html.P(f"No{which} alert fired in the last {range_}.", className="muted")]
    head = html.Tr([html.Th(h) for h in ("Severity", "Alert", "Service", "SLO", "Tier / window", "Started (UTC)",
                                         "Ended", "Duration")])
    body = [past_row(e, link_query) for e in shown[:PAST_ROWS]]
    count = (f"The newest {PAST_ROWS} of {len(shown):,} episodes" if len(shown) > PAST_ROWS
             else f"{len(shown):,} episode{'s' if len(shown) != 1 else ''}")
    return [title,
            dcc.Graph(id="alerts-timeline", figure=alerts_data.timeline_figure(shown, now - range_seconds(range_), now),
                      config={"displaylogo": False}),
            html.P(f"{count}, newest first (times to the nearest {fmt_duration(step)}).", className="muted"),
            html.Table(className="overview episodes", children=[html.Thead(head), html.Tbody(body)])]


def past_row(e: dict, link_query: str = "") -> html.Tr:
    service = (dcc.Link(e["service"], href=f"/services/{quote(e['service'], safe='')}{link_query}")
               if e["service"] else "")
    return html.Tr(className="firing" if e["end"] is None else None, children=[
        html.Td(html.Span(e["severity"] or "none", className="chip",
                          style={"background": SEVERITY_COLORS.get(e["severity"], "#9e9e9e")})),
        html.Td(e["alertname"], title=", ".join(f"{k}={v}" for k, v in e["other_labels"].items()) or None),
        html.Td(service), html.Td(e["slo"]), html.Td(e["tier"]), html.Td(e["start_text"]), html.Td(e["end_text"]),
        html.Td(e["duration_text"], className="num"),
    ])

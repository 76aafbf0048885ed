"""A service's page: its SLOs (the engine's latest evaluation) in the header; the SLI against the
objective, the error budget, burn rates against the alert tiers, requests by status, latency
estimates (with the slowest traced requests: Prometheus's exemplars), duration buckets and
operations in flight over the shell's time range (Prometheus), marked where an alert of the
service fired and shaded where a maintenance window covered it (the engine's windows, a fill
per mode, listed above the charts when one is on now, with the next planned one); its tools; its firing and pending alerts with their runbooks, and the alerts
that fired within the range.

The URL holds the whole state: the service in the path (/services/<service>, as the overview's
rows and the alerts' dashboard_url link to it), the shell's range and refresh in the query
string. One callback, on the URL and the shell's tick, draws everything through `render`, a
plain function that tests call with a fake source and a fake Metrics. The charts' graphs stay in
the page between ticks, so a zoom survives a refresh (dashboard.service_data.layout's uirevision).
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple
from urllib.parse import unquote

from dash import Input, Output, dcc, html

from dashboard import alerts_data
from dashboard import maintenance_data as md
from dashboard import service_data as sd
from dashboard.colors import SEVERITY_COLORS, STATUS_COLORS
from dashboard.components import empty_state, no_services, notice
from dashboard.formatting import NONE, fmt_duration, fmt_time
from dashboard.overview_data import STATUS_LABELS
from dashboard.prometheus import Metrics
from dashboard.source import SLOs, Source, SourceError
from dashboard.url_state import shell_search
from slo import promql

PATH, PATH_TEMPLATE, NAME, ORDER = "/services", "/services/<service>", "Service", 3

HIDDEN, SHOWN = {"display": "none"}, {}
CHARTS_STYLE = {"display": "grid", "gridTemplateColumns": "repeat(auto-fit, minmax(34rem, 1fr))", "gap": ".5rem"}
WIDE = {"burn", "heatmap"}  # charts across the whole width
CARD = {"border": "1px solid #e0e0e0", "borderRadius": ".3rem", "padding": ".35rem .6rem", "fontSize": ".85rem"}
EPISODES = 10  # the newest alert episodes listed here; the alerts page lists them all
MAINTENANCE_AHEAD = 60.0  # seconds past now the windows are read for: those on now are in


def layout(service: str | None = None, **_: Any) -> html.Div:
    """The page's frame; the callback fills it. Dash calls this with service="none" to
    validate the callbacks, and without a service for /services."""
    name = unquote(service) if service and service != "none" else None
    return html.Div([
        html.Div(id="service-header", children=html.H2(name or "Service")),
        html.Div(id="service-notices"),
        html.Div(id="service-body", children=[
            html.Div(id="service-maintenance"),
            html.Div(id="service-charts", style=CHARTS_STYLE, children=[
                html.Div(dcc.Graph(id=f"service-{g}", config={"displaylogo": False}),
                         style={"gridColumn": "1 / -1"} if g in WIDE else None) for g in sd.GRAPHS]),
            html.H3("Tools"),
            html.Div(id="service-tools"),
            html.H3("Alerts"),
            html.Div(id="service-alerts"),
            html.Div(id="service-fired"),
        ]),
    ])


def service_from_path(pathname: str | None) -> str | None:
    """The service named by /services/<service> (percent-decoded), None elsewhere."""
    prefix = PATH + "/"
    if not pathname or not pathname.startswith(prefix):
        return None
    return unquote(pathname[len(prefix):]) or None


class Rendered(NamedTuple):
    header: Any
    notices: Any = None
    body_style: dict = HIDDEN
    charts_style: dict = HIDDEN
    figures: dict | None = None  # chart -> figure, every one of sd.GRAPHS
    tools: Any = None
    alerts: Any = None
    fired: Any = None  # the alerts that fired within the range
    maintenance: Any = None  # the maintenance windows on now and the next planned one

    def outputs(self) -> tuple:
        figures = self.figures or {}
        return (self.header, self.notices, self.body_style, self.charts_style,
                *(figures.get(g, {"data": [], "layout": {}}) for g in sd.GRAPHS), self.tools, self.alerts,
                self.fired, self.maintenance)


def render(data: Source, metrics: Metrics, pathname: str | None, search: str | None,
           now: float | None = None) -> Rendered:
    """The page for a URL: the engine's numbers always (when it can be read), the charts, tools
    and alerts when Prometheus answers, and why not otherwise."""
    now = time.time() if now is None else now
    service = service_from_path(pathname)
    back = dcc.Link("‹ all services", href="/" + shell_search(search))
    if service is None:
        return Rendered(empty_state("Which service?", "Pick a service on the overview.", back))
    slos = data.slos()
    notes = []
    if isinstance(slos, SourceError):
        rows: SLOs = []
        notes.append(notice(f"The engine's SLO numbers are not available: {slos.message}"))
    elif not slos:  # no evaluation yet, or no service at all
        return Rendered(no_services(data.status()))
    else:
        rows = sd.service_rows(slos, service)
        if not rows:
            return Rendered(empty_state(f"No service {service!r}",
                                        "The engine's latest evaluation has no service of this name. Services "
                                        "appear once Prometheus has their MCP metrics (or the SLO spec names them) "
                                        "and the engine has evaluated them.", back))
    header = html.Div([html.H2(service, style={"margin": ".5rem 0 .2rem"}), back, slo_cards(rows)])

    tr = sd.time_range(search, now)
    # the engine's windows: a slow or bad answer is said above the charts, drawn unshaded
    windows = data.maintenance(tr.start, now + MAINTENANCE_AHEAD)
    occurrences = () if isinstance(windows, SourceError) else windows.occurrences
    listed = maintenance_list(windows, service, now)
    schema = metrics.schema
    answers = sd.read(metrics, sd.chart_queries(service, rows, tr, schema), tr)
    down = sd.prometheus_down(answers.values())
    if down is not None:
        notes.append(empty_state("Prometheus is unreachable" if down.kind == "unreachable" else "No Prometheus",
                                 f"{down.message}. The charts, tools and alerts come from Prometheus; the SLO "
                                 "numbers above are the engine's latest evaluation."))
        return Rendered(header, notes, SHOWN, HIDDEN, sd.figures(answers, rows, tr), None, None, None, listed)
    if not any(sd.has_data(a) for a in answers.values()):
        notes.append(notice(f"Prometheus has no data for {service} in the last {tr.name}: is it scraped, and are "
                            "the rules of `mcp-slo rules` loaded? Recorded series start when the rules do."))
    tools = sd.tool_table(metrics.instant(promql.tool_status_rates(sd.TOOL_WINDOW, service, schema)),
                          metrics.instant(promql.tool_bucket_rates(sd.TOOL_WINDOW, service, schema)), rows)
    alerts = sd.service_alerts(metrics.alerts(), service, now)
    fired = alerts_data.read_episodes(metrics, tr.start, now, service)
    spans = [] if isinstance(fired, SourceError) else alerts_data.spans(fired, now)
    exemplars = sd.read_exemplars(metrics, service, tr, schema)
    return Rendered(header, notes, SHOWN, CHARTS_STYLE,
                    sd.figures(answers, rows, tr, spans, exemplars, service, occurrences), tool_table(tools),
                    alert_list(alerts, service), fired_list(fired, service, tr.name, search), listed)


def register_callbacks(app, data: Source, metrics: Metrics) -> None:
    outputs = [Output("service-header", "children"), Output("service-notices", "children"),
               Output("service-body", "style"), Output("service-charts", "style"),
               *(Output(f"service-{g}", "figure") for g in sd.GRAPHS),
               Output("service-tools", "children"), Output("service-alerts", "children"),
               Output("service-fired", "children"), Output("service-maintenance", "children")]

    @app.callback(*outputs, Input("url", "pathname"), Input("url", "search"), Input("tick", "n_intervals"))
    def on_page(pathname, search, _tick):
        return render(data, metrics, pathname, search).outputs()


# --- components ----------------------------------------------------------------------------


def slo_cards(rows: SLOs) -> html.Div:
    """One card per SLO: status, SLI against the objective, budget left, firing tiers."""
    cards = []
    for s in sd.slo_summaries(rows):
        color = STATUS_COLORS.get(s["status"], "#9e9e9e")
        name = s["slo"] + (f" · {s['tool']}" if s["tool"] else "") + (f" ≤ {s['threshold']}" if s["threshold"] else "")
        firing = [html.Div(f"firing: {', '.join(s['firing'])}", className="firing")] if s["firing"] else []
        cards.append(html.Div(style=CARD, title=s["description"], children=[
            html.Span(s["status_label"], className="chip", style={"background": color}), " ", html.Strong(name),
            html.Div(f"SLI {s['sli']} of {s['objective']} over {s['window']}"),
            html.Div(f"budget left {s['budget']['text']}" + exhaustion(s["exhaustion"])),
            *firing,
        ]))
    versions = sorted({v for r in rows for v in r.result.versions})
    return html.Div([
        html.Div(f"versions {', '.join(versions)}" if versions else "", className="muted"),
        html.Div(cards, style={"display": "flex", "gap": ".5rem", "flexWrap": "wrap", "margin": ".4rem 0"}),
    ])


def exhaustion(text: str) -> str:
    """The card's words for dashboard.formatting.fmt_exhaustion's text."""
    if text == "exhausted":
        return ": spent"
    return "" if text in ("never", NONE) else f" · spent in {text} at the last hour's rate"


def tool_table(rows: list[dict] | SourceError) -> Any:
    if isinstance(rows, SourceError):
        return notice(f"The tools cannot be read: {rows.message}")
    if not rows:
        return html.P(f"No tools/call requests in the last {promql.duration(sd.TOOL_WINDOW)}.", className="muted")
    quantiles = [f"p{round(q * 100)}" for q in sd.QUANTILES]
    head = html.Tr([html.Th("Tool"), html.Th("Requests", className="num"), html.Th("Errors", className="num"),
                    *(html.Th(q, className="num", title="estimated from the histogram's buckets") for q in quantiles),
                    html.Th("SLOs")])
    body = []
    for r in rows:
        status = ", ".join(f"{k} {v:,.2f}/s" for k, v in sorted(r["by_status"].items()))
        slos = [html.Span(f"{s['slo']} {s['sli']}", className="chip", title=STATUS_LABELS.get(s["status"], s["status"]),
                          style={"background": STATUS_COLORS.get(s["status"], "#9e9e9e"), "marginRight": ".3rem"})
                for s in r["slos"]]
        body.append(html.Tr([html.Td(r["tool"]), html.Td(r["rate_text"], className="num", title=status),
                             html.Td(r["error_text"], className="num"),
                             *(html.Td(r["latency_text"].get(q, NONE), className="num") for q in quantiles),
                             html.Td(slos)]))
    return html.Div([
        html.P(f"tools/call over the last {promql.duration(sd.TOOL_WINDOW)}, as the engine computes them; "
               "latencies are estimated from the histogram's buckets.", className="muted"),
        html.Table(className="overview", children=[html.Thead(head), html.Tbody(body)]),
    ])


def alert_list(alerts: list[dict] | SourceError, service: str) -> Any:
    if isinstance(alerts, SourceError):
        return notice(f"The alerts cannot be read: {alerts.message}")
    if not alerts:
        return html.P(f"No alert of {service} is firing or pending.", className="muted")
    head = html.Tr([html.Th(h) for h in ("State", "Severity", "Alert", "SLO", "For", "Summary", "Runbook")])
    body = [html.Tr(className="firing" if a["state"] == "firing" else None, children=[
        html.Td(a["state"]), html.Td(a["severity"]),
        html.Td(a["alertname"] + (f" ({a['tier']})" if a["tier"] else "")),
        html.Td(a["slo"] + (f" · {a['tool']}" if a["tool"] else "")), html.Td(a["for_text"], className="num"),
        html.Td(a["summary"], style={"whiteSpace": "normal"}),
        html.Td(html.A("runbook", href=a["runbook"], target="_blank", rel="noopener noreferrer")
                if a["runbook"] else NONE),
    ]) for a in alerts]
    return html.Table(className="overview", children=[html.Thead(head), html.Tbody(body)])


def fired_list(fired: list[dict] | SourceError, service: str, range_: str, search: str | None) -> Any:
    """The service's alert episodes within the range, newest first: the first EPISODES, and a
    link to the alerts page for the rest."""
    title = html.H3(f"Alerts that fired in the last {range_}")
    if isinstance(fired, SourceError):
        return [title, notice(f"The alerts' history cannot be read: {fired.message}")]
    if not fired:
        return [title, html.P(f"No alert of {service} fired in the last {range_}.", className="muted")]
    head = html.Tr([html.Th(h) for h in ("Severity", "Alert", "SLO", "Tier / window", "Started (UTC)", "Ended",
                                         "Duration")])
    body = [html.Tr(className="firing" if e["end"] is None else None, children=[
        html.Td(html.Span(e["severity"] or "none", className="chip",
                          style={"background": SEVERITY_COLORS.get(e["severity"], "#9e9e9e")})),
        html.Td(e["alertname"]), html.Td(e["slo"]), html.Td(e["tier"]), html.Td(e["start_text"]),
        html.Td(e["end_text"]), html.Td(e["duration_text"], className="num"),
    ]) for e in fired[:EPISODES]]
    more = f"The newest {EPISODES} of {len(fired):,}; the rest on " if len(fired) > EPISODES else "Every service's on "
    link = dcc.Link("the alerts page", href="/alerts" + shell_search(search))
    return [title, html.Table(className="overview fired", children=[html.Thead(head), html.Tbody(body)]),
            html.P(["Marked above the charts (pages shaded across them). ", more, link, "."], className="muted")]


def maintenance_list(windows: md.Maintenance | SourceError, service: str, now: float) -> Any:
    """The service's maintenance windows on now (planned and run-time: who opened it, why) and
    its next planned one; a notice when the engine's windows cannot be read."""
    if isinstance(windows, SourceError):
        return notice(f"The maintenance windows cannot be read (the charts are not shaded): {windows.message}")
    on, upcoming = md.on_now(windows, service, now), md.next_planned(windows, service, now)
    if not on and upcoming is None:
        return html.P(f"No maintenance window of {service} is on now or planned.", className="muted")

    def item(o, lead: str) -> html.Li:
        opener = f" opened by {o.opened_by}" if o.opened_by else ""
        return html.Li([lead, html.Span(o.mode, className="chip", title=md.MODE_WORDS.get(o.mode),
                                        style={"background": md.MODE_COLORS.get(o.mode, "#9e9e9e")}),
                        " ", html.Strong(o.name), f" on {md.scope_text(o)}, {md.when_text(o)}{opener}: {o.reason}"])

    items = [item(o, "Now: ") for o in on]
    if upcoming is not None:
        items.append(item(upcoming, f"Next planned, in {fmt_duration(upcoming.start - now)} "
                                    f"({fmt_time(upcoming.start)} UTC): "))
    return html.Div(className="maintenance", children=[
        html.H3("Maintenance"), html.Ul(items),
        html.P("Shaded on the charts: grey where the events are left out of the SLOs (exclude), violet where "
               "alerts are held back (silence).", className="muted")])

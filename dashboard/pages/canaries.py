"""The canaries page: every canary's verdict, and for the service in `?service=` the evidence
side by side, the latency distributions, the score over the shell's time range (from the
canary's first traffic when it is younger) and the decision log.

The verdicts and the log come from the engine (the source's cache), the latency
distributions from Prometheus (one instant query per canary). The selected service is in the
URL, so a view is a permalink. The callback is a thin wrapper around `render`, a plain
function that tests call with fake sources.
"""

from __future__ import annotations

import time
from typing import Any

from dash import Input, Output, State, dcc, html

from dashboard import canary_data
from dashboard.colors import VERDICT_COLORS
from dashboard.components import empty_state, no_services, notice, unreachable
from dashboard.formatting import NONE
from dashboard.prometheus import Metrics
from dashboard.source import Decisions, Source, SourceError, Status
from dashboard.url_state import merge_search, range_seconds
from slo.engine.answers import rfc3339
from slo.results import CanaryDecision, Evaluated

PATH, NAME, ORDER = "/canaries", "Canaries", 1

GRAPH_CONFIG = {"displayModeBar": False}
STATUS_COLORS = {"passed": "#2e7d32", "failed": "#c62828", "insufficient": "#757575"}
WRAP = {"whiteSpace": "normal", "minWidth": "24rem"}  # reasons are sentences: the tables' cells do not wrap
SELECTED = {"background": "#e3f2fd"}
CHANGED = {"borderTop": "2px solid #90a4ae"}  # a verdict unlike the one before it


def layout(service: str | list[str] | None = None, **_: Any) -> html.Div:
    """The page for the URL's query (Dash pages passes its parameters)."""
    if isinstance(service, list):  # a repeated parameter: the last counts, as on the overview
        service = service[-1] if service else None
    return html.Div([
        dcc.Store(id="canaries-service", data=service or None),
        html.Div(id="canaries-body"),
    ])


def register_callbacks(app, data: Source, metrics: Metrics) -> None:
    @app.callback(Output("canaries-body", "children"),
                  Input("canaries-service", "data"), Input("tick", "n_intervals"), Input("range", "value"),
                  State("url", "search"))
    def on_view(service, _tick, range_, search):
        # links to other services keep the rest of the query (the shell's range and refresh)
        return render(data, metrics, service, range_, merge_search(search, {"service": None}))


def render(data: Source, metrics: Metrics, service: str | None, range_: str | None = None,
           link_query: str = "", now: float | None = None) -> list:
    """The page's content: the list of canaries, then the selected service's detail, or why
    there is nothing to show."""
    decisions = data.canaries()
    if isinstance(decisions, SourceError):
        return [unreachable(decisions)]
    if not decisions and not service:
        return [no_canary(data.status())]
    out: list = [canary_list(decisions, service, link_query)] if decisions else [no_canary(data.status())]
    if not service:
        out.append(html.P("Choose a service to see its evidence, its score over time and its decision log.",
                          className="muted"))
        return out
    now = time.time() if now is None else now
    start = now - range_seconds(range_)
    mine = [d for d in decisions if d.result.service == service]
    if not mine:
        out.append(notice(f"{service} has no canary in the engine's latest evaluation; its past decisions "
                          "in this time range follow."))
    for d in sorted(mine, key=lambda d: d.result.canary):
        out.append(canary_detail(d, metrics))
    log = data.canary_history(service, since=start)
    if not isinstance(log, SourceError):
        start = canary_data.chart_start(mine, log, start)
    out.append(history(log, service, start, now))
    return out


# --- components ----------------------------------------------------------------------------


def no_canary(status: Status | SourceError) -> html.Div:
    if isinstance(status, Status) and status.evaluated_at is None:
        return no_services(status)  # "no evaluation yet", with the engine's last error
    return empty_state(
        "No canary running",
        "The engine sees a canary when a service has a second version with tools/call traffic: the "
        "version label of mcp_operations_total (collector.instrument(..., version=...) or mcp-slo proxy "
        "--version). The busiest version is the baseline (canary.baseline in the SLO spec chooses "
        "another), every other version with traffic is judged against it on every tick.",
        html.P("Deploy the new version beside the old one and send it a share of the traffic; its verdict "
               "appears here after the engine's next evaluation."))


def chip(verdict: str | None) -> html.Span:
    return html.Span(verdict or NONE, className="chip", style={"background": VERDICT_COLORS.get(verdict, "#9e9e9e")})


def canary_list(decisions: Decisions, selected: str | None, link_query: str = "") -> html.Table:
    head = html.Tr([html.Th("Verdict"), html.Th("Service"), html.Th("Canary"), html.Th("Score", className="num"),
                    html.Th("Canary age", className="num"), html.Th("Window"), html.Th("Reason")])
    rows = []
    for r in canary_data.canary_rows(decisions):
        href = PATH + merge_search(link_query, {"service": r["service"]})
        rows.append(html.Tr(
            className="stale" if r["stale"] else None, style=SELECTED if r["service"] == selected else None,
            children=[html.Td(chip(r["verdict"])), html.Td(dcc.Link(r["service"], href=href)),
                      html.Td(r["versions"]), html.Td(r["score"], className="num"),
                      html.Td(r["age"], className="num"), html.Td(r["window"]),
                      html.Td(r["reason"], style=WRAP)]))
    return html.Table(className="overview canaries", children=[html.Thead(head), html.Tbody(rows)])


def canary_detail(judged: Evaluated[CanaryDecision], metrics: Metrics) -> html.Section:
    decision = judged.result
    baseline, canary = decision.baseline, decision.canary
    return html.Section(className="canary", children=[
        html.H3([f"{decision.service}: {canary} against {baseline} ", chip(decision.verdict),
                 html.Span(f" score {decision.score}", className="muted")]),
        html.P(decision.reason, style={"fontSize": "1.05rem", "maxWidth": "60rem"}),
        html.P(f"Judged at {rfc3339(judged.evaluated_at)} on the requests of the canary's window "
               f"({decision.window}); {canary} is {canary_data.fmt_age(decision)} old.", className="muted"),
        evidence_table(decision),
        latency(decision, metrics),
    ])


def evidence_table(decision: CanaryDecision) -> html.Table | html.P:
    rows = canary_data.evidence_rows(decision)
    if not rows:
        return html.P("The engine gave no per-test evidence for this decision.", className="muted")
    baseline, canary = decision.baseline, decision.canary
    level = next((m.effect.level for m in decision.metrics if m.effect is not None and m.effect.level), None)
    interval = f" ({level:.0%} interval)" if level else ""
    head = html.Tr([html.Th("Test"), html.Th("Tool"), html.Th(f"{baseline} (baseline)", className="num"),
                    html.Th(f"{canary} (canary)", className="num"),
                    html.Th(f"Canary vs baseline{interval}", className="num",
                            title="error ratio and slow share: canary ÷ baseline (1: alike); latency: CLES, "
                                  "the probability that a canary request is slower (0.5: alike)"),
                    html.Th("p-value", className="num", title="the sequential test's one-sided p-value"),
                    html.Th("must reach", className="num",
                            title="the p-value at or below which the sequential test rolls back at this point"),
                    html.Th("Information", className="num",
                            title="of what a promotion needs: enough to catch the planned regression with 80% "
                                  "power at 100%"),
                    html.Th("Status"), html.Th("Note")])
    body = [html.Tr(className="tool-row" if r["scope"] == "tool" else None, children=[
        html.Td(r["test"]), html.Td(r["tool"]), html.Td(r["baseline"], className="num"),
        html.Td(r["canary"], className="num"), html.Td(r["effect"], className="num", title=r["effect_title"]),
        html.Td(r["p_value"], className="num firing" if r["rejected"] else "num"),
        html.Td(f"≤ {r['reject_at']}", className="num"), html.Td(r["information"], className="num"),
        html.Td(r["status_label"], style={"color": STATUS_COLORS.get(r["status"])}),
        html.Td(r["note"], className="muted", style=WRAP if r["note"] else None)]) for r in rows]
    return html.Table(className="overview evidence", children=[html.Thead(head), html.Tbody(body)])



def latency(decision: CanaryDecision, metrics: Metrics) -> Any:
    samples = metrics.instant(canary_data.latency_query(decision, metrics.schema))
    if isinstance(samples, SourceError):
        return notice(f"The latency distributions are not available: {samples.message}")
    shares = canary_data.bucket_shares(samples, decision.baseline, decision.canary)
    if shares is None:
        return html.P(f"No tools/call latency histogram of {decision.baseline} or {decision.canary} "
                      f"in Prometheus over the last {decision.window}.", className="muted")
    return dcc.Graph(figure=canary_data.latency_figure(shares, decision), config=GRAPH_CONFIG)


def history(log: Decisions | SourceError, service: str, start: float, end: float) -> html.Section:
    if isinstance(log, SourceError):
        return html.Section([notice(f"The decision log is not available: {log.message}")])
    if not log:
        return html.Section([html.P(f"No decision about a canary of {service} in this time range.",
                                    className="muted")])
    runs = canary_data.decision_log(log)
    rows = runs[:canary_data.LOG_SIZE]
    table = html.Table(className="overview log", children=[
        html.Thead(html.Tr([html.Th("Last evaluated"), html.Th("Since"), html.Th("Decisions", className="num"),
                            html.Th("Canary"), html.Th("Verdict"), html.Th("Score", className="num"),
                            html.Th("Reason (the last)")])),
        html.Tbody([html.Tr(style=CHANGED if r["changed"] else None, children=[
            html.Td(r["evaluated_at"]), html.Td(r["first_at"] if r["count"] > 1 else ""),
            html.Td(f"{r['count']:,}", className="num"), html.Td(r["versions"]), html.Td(chip(r["verdict"])),
            html.Td(r["scores"], className="num"), html.Td(r["reason"], style=WRAP)]) for r in rows]),
    ])
    return html.Section([
        dcc.Graph(id="canaries-score", figure=canary_data.score_figure(log, start, end), config=GRAPH_CONFIG),
        html.H4(f"Decision log, newest first: {len(log):,} decisions in this range, a row per run of one verdict"
                + (f" (the newest {len(rows)} of {len(runs):,} runs)" if len(runs) > len(rows) else "")),
        table,
    ])

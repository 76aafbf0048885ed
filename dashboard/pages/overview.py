"""The overview page: every SLO of every service, worst error budget first.

The data comes from the engine's latest evaluation (the source's cache), never from
Prometheus. The filter, statuses, sort and page are in the URL (dashboard.overview_data.ViewState),
so a view can be shared as a link. Only the visible page of rows is built, so the page stays
quick at 1,000 services.

The callbacks are thin wrappers around `next_state` and `render`, plain functions that
tests call with a fake source.
"""

from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import quote

from dash import Input, Output, State, ctx, dcc, html, no_update

from dashboard import overview_data
from dashboard.colors import STATUS_COLORS, VERDICT_COLORS
from dashboard.components import empty_state, no_services, notice, unreachable
from dashboard.overview_data import STATUS_LABELS, SORTS, View, ViewState
from dashboard.source import Source, SourceError
from dashboard.url_state import merge_search

PATH, NAME, ORDER = "/", "Overview", 0

LEVEL_BACKGROUNDS = {"page": "#ffcdd2", "ticket": "#ffe0b2"}  # a burn rate over a page / ticket tier

# the controls whose change makes a new view state (the page resets to 1, except prev/next)
_CONTROLS = ("overview-q", "overview-status", "overview-sort", "overview-reverse")


def layout(q: str | None = None, status: str | None = None, sort: str | None = None, page: str | None = None,
           **_: Any) -> html.Div:
    """The page for the URL's query (Dash pages passes its parameters)."""
    state = ViewState.from_query({"q": q, "status": status, "sort": sort, "page": page})
    return html.Div([
        html.Div(className="controls", children=[
            dcc.Input(id="overview-q", type="search", value=state.q, debounce=0.4, className="filter",
                      placeholder="Filter: service, SLO, tool, status, tier, version, verdict"),
            dcc.Dropdown(id="overview-status", multi=True, value=list(state.statuses), placeholder="Any status",
                         options=[{"label": STATUS_LABELS[s], "value": s} for s in overview_data.STATUSES],
                         className="status-filter"),
            html.Label("Sort", htmlFor="overview-sort"),
            dcc.Dropdown(id="overview-sort", value=state.sort, clearable=False, className="sort",
                         options=[{"label": s.label, "value": key} for key, s in SORTS.items()]),
            dcc.Checklist(id="overview-reverse", value=["reverse"] if state.reverse else [],
                          options=[{"label": " best first", "value": "reverse"}], inline=True),
        ]),
        dcc.Store(id="overview-state", data=state.data()),
        dcc.Store(id="overview-pages", data=1),
        html.Div(id="overview-summary", className="summary"),
        html.Div(id="overview-body"),
        html.Div(className="pager", children=[
            html.Button("‹ previous", id="overview-prev", n_clicks=0),
            html.Span(id="overview-page-label"),
            html.Button("next ›", id="overview-next", n_clicks=0),
        ]),
    ])


def next_state(trigger: str | None, state_data: dict | None, q: str | None, statuses: list[str] | None,
               sort: str | None, reverse: list[str] | None, pages: int | None) -> dict:
    """The view state after a control changed: a new filter or sort starts at page 1."""
    state = ViewState.from_data(state_data)
    page = state.page
    if trigger == "overview-prev":
        page -= 1
    elif trigger == "overview-next":
        page += 1
    elif trigger in _CONTROLS:
        page = 1
    page = min(max(1, page), max(1, pages or 1))
    return ViewState.from_data({"q": q, "statuses": statuses, "sort": sort, "reverse": bool(reverse),
                                "page": page}).data()


class Rendered(NamedTuple):
    body: Any
    summary: Any = None
    page_label: str = ""
    prev_disabled: bool = True
    next_disabled: bool = True
    pages: int = 1


def render(data: Source, state_data: dict | None, link_query: str = "") -> Rendered:
    """The page's content for a view state: the table, or why there is none. `link_query`
    ("?range=7d") goes on the links to service pages, so they keep the shell's settings."""
    state = ViewState.from_data(state_data)
    slos = data.slos()
    if isinstance(slos, SourceError):
        return Rendered(unreachable(slos))
    if not slos:
        return Rendered(no_services(data.status()))
    notes = []
    canaries = data.canaries()
    if isinstance(canaries, SourceError):
        notes.append(notice(f"Canary verdicts are not available: {canaries.message}"))
        canaries = []
    v = overview_data.view(slos, canaries, state)
    if v.all_no_data:
        notes.append(notice(f"No data yet: none of the {v.total:,} SLOs has valid events in its window. "
                            "Are the services receiving tools/call requests, and is Prometheus scraping them?"))
    if v.matched:
        body = table(v, link_query)
    else:
        body = empty_state("No SLO matches this filter",
                           "Clear the text filter or the status filter to see every SLO.")
    return Rendered([*notes, body], summary(v, state), f"page {v.page} of {v.pages}",
                    v.page <= 1, v.page >= v.pages, v.pages)


def register_callbacks(app, data: Source, metrics=None) -> None:
    # `metrics` (Prometheus) is unused on purpose: the overview reads only the engine's snapshot
    @app.callback(Output("overview-state", "data"),
                  *(Input(i, "value") for i in _CONTROLS),
                  Input("overview-prev", "n_clicks"), Input("overview-next", "n_clicks"),
                  State("overview-state", "data"), State("overview-pages", "data"),
                  prevent_initial_call=True)
    def on_control(q, statuses, sort, reverse, _prev, _next, state_data, pages):
        return next_state(ctx.triggered_id, state_data, q, statuses, sort, reverse, pages)

    @app.callback(Output("url", "search", allow_duplicate=True),
                  Input("overview-state", "data"), State("url", "search"),
                  prevent_initial_call=True)
    def to_url(state_data, search):
        new = merge_search(search, ViewState.from_data(state_data).query())
        return new if new != (search or "") else no_update

    @app.callback(Output("overview-body", "children"), Output("overview-summary", "children"),
                  Output("overview-page-label", "children"), Output("overview-prev", "disabled"),
                  Output("overview-next", "disabled"), Output("overview-pages", "data"),
                  Input("overview-state", "data"), Input("tick", "n_intervals"), State("url", "search"))
    def on_view(state_data, _tick, search):
        # links to service pages keep the rest of the query (the shell's range and refresh)
        rest = merge_search(search, dict.fromkeys(ViewState.KEYS))
        return tuple(render(data, state_data, rest))


# --- components ----------------------------------------------------------------------------


def summary(v: View, state: ViewState) -> html.Div:
    counts = [html.Span(f"{v.counts[s]:,} {STATUS_LABELS[s]}", className="count",
                        style={"color": STATUS_COLORS[s]}) for s in overview_data.STATUSES if v.counts.get(s)]
    filtered = state.q or state.statuses
    shown = f"{v.matched:,} match the filter" if filtered else ""
    return html.Div([html.Strong(f"{v.total:,} SLOs"), ": ", *_join(counts, " · "),
                     html.Span(f" — {shown}" if shown else "")])


def table(v: View, link_query: str = "") -> html.Table:
    head = html.Tr([html.Th("Status"), html.Th("Service"), html.Th("SLO"), html.Th("Objective"), html.Th("SLI"),
                    html.Th("Budget left"), *(html.Th(w, title=f"burn rate over {w}", className="num")
                                              for w in v.windows),
                    html.Th("Exhausted in"), html.Th("Canary"), html.Th("Firing")])
    return html.Table(className="overview", children=[
        html.Thead([html.Tr([html.Th(colSpan=6), html.Th("Burn rate", colSpan=len(v.windows), className="group"),
                             html.Th(colSpan=3)]), head]),
        html.Tbody([row(r, link_query) for r in v.rows]),
    ])


def row(r: dict, link_query: str = "") -> html.Tr:
    color = STATUS_COLORS.get(r["status"], "#9e9e9e")
    service = [dcc.Link(r["service"], href=f"/services/{quote(r['service'], safe='')}{link_query}")]
    if r["tool"]:
        service.append(html.Span(f" › {r['tool']}", className="muted"))
    slo = [r["slo"]] + ([html.Span(f" ≤ {r['threshold']}", className="muted")] if r["threshold"] else [])
    return html.Tr(className="stale" if r["stale"] else None, children=[
        html.Td(html.Span(r["status_label"], className="chip", style={"background": color})),
        html.Td(service),
        html.Td(slo, title=r["description"]),
        html.Td(f"{r['objective']} / {r['window']}", className="num"),
        html.Td(r["sli"], className="num"),
        html.Td(budget_bar(r["budget"], color)),
        *(burn_cell(c) for c in r["burn"]),
        html.Td(r["exhaustion"], className="num"),
        html.Td(_join([html.Span(c["text"], title=c["title"], style={"color": VERDICT_COLORS.get(c["verdict"])})
                       for c in r["canaries"]], html.Br())),
        html.Td(firing_cell(r)),
    ])


def firing_cell(r: dict) -> list:
    out = [html.Span(", ".join(r["firing"]), className="firing")] if r["firing"] else []
    if r["low_traffic"]:  # over a threshold, but too few events in the long window to alert
        out.append(html.Span(f" low traffic: {', '.join(r['low_traffic'])}", className="muted",
                             title="over the threshold, below alerting.min_events"))
    return out


def budget_bar(budget: dict, color: str) -> html.Div:
    return html.Div(className="budget", title="share of the error budget left over the SLO window", children=[
        html.Div(className="bar", children=html.Div(style={"width": f"{budget['fill'] * 100:.0f}%",
                                                           "background": color})),
        html.Span(budget["text"], className="num"),
    ])


def burn_cell(cell: dict) -> html.Td:
    style = {"background": LEVEL_BACKGROUNDS[cell["level"]]} if cell["level"] else None
    return html.Td(cell["text"], title=cell["title"], style=style,
                   className="num firing" if cell["firing"] else "num")


def _join(items: list, separator: Any) -> list:
    out: list = []
    for i, item in enumerate(items):
        out += [separator, item] if i else [item]
    return out

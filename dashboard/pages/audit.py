"""The Audit page, for auditors only: whether the audit trail's chain is intact (at the top,
loudly when it is not), then the newest records that match the filters over the shell's time
range, with a summary per status and per user.

The page exists only when the dashboard is given the trail's files (`--audit-file`), and shows
its data only to a user with the `auditor` role (dashboard.auth.current_roles). The check is
made on the server by the layout and by every callback: a non-auditor who posts the page's
callback request by hand gets nothing (204), not only a page without a link to it. The filters
are in the URL (`?user=&service=&tool=&status=&q=`), so a view is a permalink. The callbacks
are thin wrappers around `render`, a plain function that tests call.
"""

from __future__ import annotations

import time
from typing import Any

from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from dashboard import audit_data
from dashboard.audit_data import STATUSES, Check, Found, Trail, Verifier
from dashboard.auth import AUDITOR, current_roles
from dashboard.components import empty_state, notice
from dashboard.formatting import NONE, fmt_duration
from dashboard.url_state import DEFAULT_RANGE, RANGES, merge_search, range_seconds

PATH, NAME, ORDER = "/audit", "Audit", 3

FILTERS = ("audit-user", "audit-service", "audit-tool", "audit-status", "audit-q")
STATUS_COLORS = {"success": "#2e7d32", "error": "#c62828", "timeout": "#ef6c00", "cancelled": "#757575"}
INTACT = {"background": "#e8f5e9", "borderLeft": "4px solid #2e7d32", "padding": ".4rem 1rem", "margin": ".5rem 0"}
BROKEN = {"background": "#ffebee", "borderLeft": "6px solid #c62828", "padding": ".6rem 1rem", "margin": ".5rem 0"}
WRAP = {"whiteSpace": "normal", "minWidth": "14rem"}
TOP_USERS = 10


def visible() -> bool:
    """Whether whoever makes this request may see the audit trail."""
    return AUDITOR in current_roles()


def layout(user: Any = None, service: Any = None, tool: Any = None, status: Any = None, q: Any = None,
           **_: Any) -> html.Div:
    """The page for the URL's query (Dash pages passes its parameters); "not authorised" for
    anyone but an auditor. The controls are there for everyone, hidden and empty but for an
    auditor: Dash checks the callbacks against the page as it was first built, whoever asked
    (the callbacks refuse a non-auditor anyway)."""
    allowed = visible()
    user, service, tool, status, q = (_last(v) for v in (user, service, tool, status, q)) if allowed else [None] * 5
    return html.Div([
        None if allowed else not_authorised(),
        html.Div(hidden=not allowed, children=[
            html.Div(id="audit-verdict"),
            html.Div(className="controls", children=[
                _choice("audit-user", user, "Any user"),
                _choice("audit-service", service, "Any service"),
                _choice("audit-tool", tool, "Any tool"),
                dcc.Dropdown(id="audit-status", value=status if status in STATUSES else None,
                             options=list(STATUSES), placeholder="Any status", className="sort"),
                dcc.Input(id="audit-q", type="search", value=q or "", debounce=0.4, className="filter",
                          placeholder="Request id or session id (a part of it)"),
            ]),
            html.Div(id="audit-summary", className="summary"),
            html.Div(id="audit-body"),
        ]),
    ])


def _last(value: Any) -> str | None:
    """A repeated URL parameter counts by its last value, as on the other pages."""
    if isinstance(value, list):
        value = value[-1] if value else None
    return value if isinstance(value, str) and value else None


def _choice(ident: str, value: str | None, placeholder: str) -> dcc.Dropdown:
    # the URL's value is offered even before the records are read, so the dropdown keeps it
    return dcc.Dropdown(id=ident, value=value, options=[value] if value else [], placeholder=placeholder,
                        className="status-filter")


def not_authorised() -> html.Div:
    return empty_state("Not authorised", "The audit trail is shown to users with the auditor role only.",
                       html.P("Ask whoever runs the dashboard for the role: in its users file, or from your "
                              "identity provider (see dashboard/auth.py)."))


def register_callbacks(app, trail: Trail) -> None:
    verifier = Verifier(trail)

    @app.callback(Output("url", "search", allow_duplicate=True),
                  *(Input(i, "value") for i in FILTERS), State("url", "search"), prevent_initial_call=True)
    def to_url(user, service, tool, status, q, search):
        if not visible():
            raise PreventUpdate
        new = merge_search(search, audit_data.query_updates(user, service, tool, status, q))
        return new if new != (search or "") else no_update

    @app.callback(Output("audit-verdict", "children"), Output("audit-summary", "children"),
                  Output("audit-body", "children"), Output("audit-user", "options"),
                  Output("audit-service", "options"), Output("audit-tool", "options"),
                  *(Input(i, "value") for i in FILTERS), Input("tick", "n_intervals"), Input("range", "value"))
    def on_view(user, service, tool, status, q, _tick, range_):
        if not visible():  # on the server, whatever the request says: no data for a non-auditor
            raise PreventUpdate
        return render(trail, verifier.check(),
                      {"user": user, "service": service, "tool": tool, "status": status, "q": q}, range_)


def render(trail: Trail, checks: dict[str, Check], query: dict[str, Any], range_: str | None = None,
           now: float | None = None) -> tuple:
    """(verdicts, summary, table, user options, service options, tool options) for the
    filters in `query` (the page's URL keys) over the last `range_`; `checks` are the chains'
    verdicts (Verifier.check)."""
    now = time.time() if now is None else now
    range_ = range_ if range_ in RANGES else DEFAULT_RANGE
    filters = audit_data.filters_from_query(query, range_seconds(range_), now)
    by_chain = trail.chains()
    if not by_chain:
        missing = ", ".join(trail.unmatched())
        return (empty_state("No audit files", f"No file matches {missing} (--audit-file).",
                            html.P("The trail appears here once the servers write it: instrument(server, "
                                   "audit={'path': ...}), or mcp-slo proxy --audit-file.")), None, None, [], [], [])
    found = audit_data.search_all(by_chain, filters)
    options = [sorted(found.options[key] | ({query[key]} if query.get(key) else set()))
               for key in ("user", "service", "tool")]
    return (verdicts(checks, now), summary(found, range_), body(found, range_), *options)


def verdicts(checks: dict[str, Check], now: float) -> html.Div:
    """Each chain's verdict, the broken ones first; a chain's name only when there are several."""
    ordered = sorted(checks.items(), key=lambda item: item[1].verdict.ok)
    return html.Div([verdict(check, now, name if len(checks) > 1 else None) for name, check in ordered])


def verdict(check: Check, now: float, name: str | None = None) -> html.Div:
    v = check.verdict
    checked = html.Span(f" Checked {fmt_duration(now - check.checked_at)} ago.", className="muted")
    which = f" ({name})" if name else ""
    if not v.ok:
        return html.Div(style=BROKEN, role="alert", children=[
            html.H3(f"The audit chain is broken{which}"),
            html.P(html.Strong(v.message)),
            html.P([("The records from there on cannot be trusted to be complete and unchanged; "
                     "mcp-slo audit verify on the same files names the same record."), checked]),
        ])
    files = f"{len(v.files)} file{'s' if len(v.files) != 1 else ''}"
    if not v.records:
        return html.Div(style=INTACT, children=[html.Strong(f"No records yet{which}"), f" in {files}.", checked])
    span = (f", from {audit_data.fmt_moment(check.first_time)} to {audit_data.fmt_moment(check.last_time)} UTC"
            if check.first_time is not None and check.last_time is not None else "")
    after = (f" It starts at seq {v.first_seq}: the records before were deleted by retention."
             if v.starts_after_retention else "")
    return html.Div(style=INTACT, children=[
        html.Strong(f"Chain intact{which}"), f": {v.records:,} records (seq {v.first_seq}..{v.last_seq}) in {files}{span}.",
        after, checked])


def summary(found: Found, range_: str) -> html.Div:
    shown = (f", the newest {len(found.rows):,} listed" if found.matched > len(found.rows) else "")
    parts: list = [html.Strong(f"{found.matched:,} matching records in the last {range_}"), shown]
    counts = [html.Span(f"{found.statuses[s]:,} {s}", className="count", style={"color": STATUS_COLORS.get(s)})
              for s in (*STATUSES, *sorted(set(found.statuses) - set(STATUSES))) if found.statuses[s]]
    if counts:
        parts += [" (", *_joined(counts), ")"]
    notes = []
    if found.error:
        notes.append(notice(f"Not every file could be read: {found.error}"))
    if found.cut:
        notes.append(notice(f"Older records were not searched (over {audit_data.MAX_SCAN_BYTES >> 20} MiB read): "
                            "pick a shorter range, or use mcp-slo audit query on the files."))
    if found.skipped.total:
        notes.append(notice(f"Left out: {found.skipped.damaged:,} damaged line(s) and {found.skipped.oversized:,} "
                            "line(s) over 1 MiB."))
    return html.Div([html.Div(parts), *notes, users_table(found)])


def _joined(items: list) -> list:
    out: list = []
    for item in items:
        out += [" · "] if out else []
        out.append(item)
    return out


def users_table(found: Found) -> html.Table | None:
    top = audit_data.top_users(found, TOP_USERS)
    if not top:
        return None
    head = html.Tr([html.Th("User"), html.Th("Records", className="num"),
                    *(html.Th(s, className="num") for s in STATUSES)])
    rows = [html.Tr([html.Td(user), html.Td(f"{sum(counts.values()):,}", className="num"),
                     *(html.Td(f"{counts[s]:,}" if counts[s] else "", className="num") for s in STATUSES)])
            for user, counts in top]
    title = f"Top {TOP_USERS} users" if len(found.users) > TOP_USERS else "Per user"
    return html.Table(className="overview audit-users", style={"width": "auto", "margin": ".4rem 0"},
                      children=[html.Caption(title, style={"textAlign": "left"}), html.Thead(head),
                                html.Tbody(rows)])


def body(found: Found, range_: str) -> Any:
    if not found.rows:
        return empty_state("No matching records", f"No record of the last {range_} matches the filters; "
                           "clear them or pick a longer range.")
    head = html.Tr([html.Th(h) for h in ("Time (UTC)", "User", "Service", "Version", "Operation", "Status",
                                         "Duration", "Client IP", "Error")])
    return html.Table(className="overview audit", children=[html.Thead(head),
                                                            html.Tbody([row(r) for r in found.rows])])


def row(r: dict) -> html.Tr:
    user: list = [r["user"]]
    if r["user"] != NONE and not r["verified"]:
        user.append(html.Span(" unverified", className="muted", title="the token's signature was not checked"))
    ids = f"request {r['request_id']} · session {r['session_id']}" + (f" · seq {r['seq']}" if r["seq"] else "")
    return html.Tr(title=ids, children=[
        html.Td(r["time"]), html.Td(user), html.Td(r["service"]), html.Td(r["version"]), html.Td(r["operation"]),
        html.Td(html.Span(r["status"], className="chip", style={"background": STATUS_COLORS.get(r["status"],
                                                                                              "#9e9e9e")})),
        html.Td(r["duration"], className="num"), html.Td(r["client_ip"]), html.Td(r["error"], style=WRAP),
    ])

"""The service page's data: one service's SLOs (the engine's results), its charts over the shell's
time range (plotly figure dicts from Prometheus's range queries), its tools and its alerts.

    tr = time_range("?range=7d", now=time.time())     # aligned start and end, step, rate window
    queries = chart_queries("filesystem", rows, tr)     # query name -> PromQL (all from slo.promql)
    answers = read(metrics, queries, tr)                # -> [(labels, [(t, v), ...])] or a SourceError
    figures(answers, rows, tr, fired)["burn"]           # {"data": [...], "layout": {...}}

Plain functions on what Metrics and the source answer, no Dash: the page's callback stays thin
and tests call these directly. A value Prometheus cannot compute (NaN: no traffic) is a gap in
a line, never a 0 or a 100%. The SLO charts read the recording rules (the budget prefers the
engine's own gauge, see slo.promql.service_budget_remaining); the request, latency and
active-operation charts read the raw tools/call metrics, the requests the SLOs count. The times
an alert of the service fired (dashboard.alerts_data.spans) are marked on the charts, as
Grafana shows alert annotations (see `fired_shapes`). Lines that are not measurements
(objectives, thresholds) carry `"meta": "reference"`. The latency chart marks the exemplars
Prometheus kept of the service's requests (their trace ids, see `read_exemplars`): the slowest
few of each slice of the range, so a busy service draws a few hundred markers, not thousands.
The maintenance windows covering the service are shaded across the charts, a fill per mode
(dashboard.maintenance_data.shapes).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from collector import durations
from dashboard import maintenance_data, overview_data
from dashboard.colors import SEVERITY_COLORS
from dashboard.formatting import (
    NONE,
    fmt_burn,
    fmt_duration,
    fmt_objective,
    fmt_threshold,
)
from dashboard.plot_text import plot_text
from dashboard.prometheus import Exemplar, Metrics, step_for
from dashboard.source import SLOs, SourceError
from dashboard.url_state import shell_settings
from slo import evaluate, promql
from slo.maintenance import Occurrence
from slo.query import Sample, Series
from slo.schema import AUTO, MCP_SLO, OTEL, RESOURCE_JOIN, TOOL, includes

QUANTILES = evaluate.QUANTILES  # p50, p90, p99: the engine's per-tool quantiles
TOOL_WINDOW = evaluate.TOOL_WINDOW  # the tool table's rate window: the engine's, so the numbers agree
DOWN = ("unreachable", "unconfigured")  # SourceError kinds every other query would get too
GRAPHS = ("sli", "budget", "burn", "requests", "latency", "heatmap", "active")  # the page's charts, in order

PALETTE = ("#1565c0", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f", "#ad1457", "#4e342e", "#546e7a")
STATUS_COLORS = {"success": "#43a047", "cancelled": "#9e9e9e", "timeout": "#fb8c00", "error": "#e53935"}
SEVERITY_ORDER = {"page": 0, "ticket": 1, "release": 2}
EXHAUSTED_COLOR = "#c62828"
REFERENCE = "reference"  # the `meta` of a line that is not a measurement: an objective, a threshold
# the `meta` of the markers of single traced requests: Prometheus keeps exemplars in memory for
# the live scrapes only (none in a backfilled history), so they mark points, not a series over time
EXEMPLARS = "exemplars"
FIRED_OPACITY = 0.12  # of the shading while a page fired
BAND_PIXELS = 6  # the height of the band above a chart marking when alerts fired
EXEMPLAR_SLOTS = 100  # the latency chart's range is cut in this many slices...
EXEMPLARS_PER_SLOT = 3  # ...and the slowest exemplars of each are marked: 300 markers at most
EXEMPLAR_COLOR = "#d81b60"
TRACE_ID, SPAN_ID = "trace_id", "span_id"  # the exemplar labels the exporter puts the W3C ids in

Answer = list[Series] | SourceError


# --- the time range ------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeRange:
    name: str  # the shell's `range` ("24h")
    start: float  # Unix seconds, aligned to the step (as Metrics.range aligns them: answers are shared)
    end: float
    step: float  # seconds between points: at most MAX_POINTS over the range
    window: int  # the rate window of the charts (promql.chart_window of the step)

    @property
    def window_name(self) -> str:
        return promql.duration(self.window)


def time_range(search: str | None, now: float) -> TimeRange:
    """The shell's `range` URL parameter (unknown or missing: its default) ending at `now`."""
    name, _ = shell_settings(search)
    span = durations.parse(name)
    step = step_for(span)
    end = math.floor(now / step) * step
    return TimeRange(name, end - span, end, step, promql.chart_window(step))


# --- the engine's results ----------------------------------------------------------------------


def service_rows(slos: SLOs, service: str) -> SLOs:
    """The engine's SLOs of `service`: the service's own first, then per tool, by name."""
    return sorted((r for r in slos if r.result.service == service), key=lambda r: (r.result.tool or "", r.result.slo))


def slo_summaries(rows: SLOs) -> list[dict]:
    """Each SLO of the service as the overview formats it (status, SLI, budget, firing tiers)."""
    built = overview_data.build_rows(rows)
    windows = overview_data.burn_windows(built)
    return [overview_data.format_row(r, windows) for r in built]


Key = tuple[str, str]  # (slo, tool or "")


def slo_key(labels: Mapping[str, Any]) -> Key:
    return (labels.get("slo") or "", labels.get("tool") or "")


def slo_label(key: Key) -> str:
    """The SLO's name in a chart (escaped: labels are not markup, see dashboard.plot_text)."""
    return plot_text(f"{key[0]} · {key[1]}" if key[1] else key[0])


def burn_windows(rows: SLOs) -> list[float]:
    """The windows of the service's alert tiers in seconds, shortest first; without the engine's
    rows, the windows the rules record for a 30-day SLO."""
    windows = overview_data.burn_windows(overview_data.build_rows(rows))
    if not windows:
        return [float(w) for w in (*promql.SHORT_WINDOWS, *promql.LONG_WINDOWS)]
    return [durations.parse(w) for w in windows]


# --- queries ---------------------------------------------------------------------------------


def chart_queries(service: str, rows: SLOs, tr: TimeRange, schema: str = AUTO) -> dict[str, str]:
    """The range queries of the page's charts (the SLI chart reads two: sli and objective); the
    raw metrics' in `schema` (the spec's `metrics:`)."""
    w = tr.window
    return {
        "sli": promql.service_sli(service, w),
        "objective": promql.service_objectives(service),
        "budget": promql.service_budget_remaining(service),
        "burn": promql.service_burn_rates(service, burn_windows(rows)),
        "requests": promql.service_status_rates(service, w, schema),
        "latency": promql.service_latency_quantiles(service, w, QUANTILES, schema),
        "heatmap": promql.service_bucket_rates(service, w, schema),
        "active": promql.service_active(service, w),
    }


def read(metrics: Metrics, queries: Mapping[str, str], tr: TimeRange) -> dict[str, Answer]:
    """Every query over `tr`. After an answer saying Prometheus is down the rest are not asked
    (each would wait as long for the same answer) and get that answer."""
    answers: dict[str, Answer] = {}
    for name, expr in queries.items():
        down = prometheus_down(answers.values())
        answers[name] = down or metrics.range(expr, tr.start, tr.end)
    return answers


def read_exemplars(metrics: Metrics, service: str, tr: TimeRange, schema: str = AUTO) -> list[Exemplar] | SourceError:
    """The exemplars of the service's tools/call durations over `tr`, from mcp-slo's histogram
    and OpenTelemetry's (those of the service's scrape targets; their `tool` is the series'
    gen_ai_tool_name), as `schema` reads."""
    found: list[Exemplar] = []
    if includes(schema, MCP_SLO):
        own = metrics.exemplars(promql.exemplar_series(service), tr.start, tr.end)
        if isinstance(own, SourceError):
            return own
        found += own
    if includes(schema, OTEL):
        targets = metrics.instant(promql.otel_targets(service))
        if isinstance(targets, SourceError):
            return targets
        ours = {tuple(t.labels.get(label, "") for label in RESOURCE_JOIN) for t in targets}
        if ours:
            otel = metrics.exemplars(promql.otel_exemplar_series(), tr.start, tr.end)
            if isinstance(otel, SourceError):
                return otel
            found += [e._replace(series={**e.series, "tool": e.series.get(TOOL, "")}) for e in otel
                      if tuple(e.series.get(label, "") for label in RESOURCE_JOIN) in ours]
    return found


def prometheus_down(answers: Iterable[Any]) -> SourceError | None:
    """The first answer saying Prometheus is unreachable or not configured."""
    return next((a for a in answers if isinstance(a, SourceError) and a.kind in DOWN), None)


def has_data(answer: Answer) -> bool:
    return not isinstance(answer, SourceError) and any(math.isfinite(v) for _, points in answer for _, v in points)


# --- figures ---------------------------------------------------------------------------------


def xy(points: list[tuple[float, float]]) -> tuple[list[float], list[float | None]]:
    """Milliseconds (plotly's date axis) and values, None where Prometheus has NaN or infinity."""
    return [t * 1000 for t, _ in points], [v if math.isfinite(v) else None for _, v in points]


def layout(title: str, tr: TimeRange, **extra: Any) -> dict:
    return {"title": {"text": title, "x": 0.01, "font": {"size": 14}}, "height": 300,
            "margin": {"l": 60, "r": 20, "t": 40, "b": 40},
            "xaxis": {"type": "date", "range": [tr.start * 1000, tr.end * 1000]},
            "legend": {"orientation": "h", "y": -0.25, "yanchor": "top"}, "hovermode": "x unified",
            # keeps the viewer's zoom and hidden traces across refreshes, until the range changes
            "uirevision": tr.name, **extra}


def message_figure(title: str, tr: TimeRange, text: str) -> dict:
    """An empty chart saying why it is empty (`text` may quote an error, and so a label)."""
    return {"data": [], "layout": layout(title, tr, xaxis={"visible": False}, yaxis={"visible": False},
                                         annotations=[{"text": plot_text(text), "showarrow": False, "xref": "paper",
                                                       "yref": "paper", "x": 0.5, "y": 0.5}])}


def guard(title: str, answer: Answer, tr: TimeRange) -> dict | None:
    """The figure saying why `answer` has nothing to draw, or None when it has data."""
    if isinstance(answer, SourceError):
        return message_figure(title, tr, f"Cannot read this chart: {answer.message}")
    if not has_data(answer):
        return message_figure(title, tr, f"No data in the last {tr.name}")
    return None


def line(name: str, points: list[tuple[float, float]], color: str | None = None, dash: str | None = None,
         **extra: Any) -> dict:
    x, y = xy(points)
    style = {"color": color, "width": 1 if dash else 1.5, **({"dash": dash} if dash else {})}
    return {"type": "scatter", "mode": "lines", "name": name, "x": x, "y": y, "line": style, **extra}


def flat(name: str, value: float, tr: TimeRange, color: str, **extra: Any) -> dict:
    """A horizontal line across the range (a threshold)."""
    return {"type": "scatter", "mode": "lines", "name": name, "x": [tr.start * 1000, tr.end * 1000],
            "y": [value, value], "line": {"color": color, "width": 1, "dash": "dash"}, "hoverinfo": "name",
            "meta": REFERENCE, **extra}


def _by_key(series: list[Series]) -> dict[Key, list[Series]]:
    out: dict[Key, list[Series]] = {}
    for labels, points in series:
        out.setdefault(slo_key(labels), []).append((labels, points))
    return dict(sorted(out.items()))


def _colors(keys: Iterable[Key]) -> dict[Key, str]:
    return {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(keys)}


def _slo_lines(answer: list) -> tuple[list[dict], dict[Key, str]]:
    """One line per SLO series of a range answer, a colour per SLO (for the lines that go with it)."""
    by_key = _by_key(answer)
    colors = _colors(by_key)
    return [line(slo_label(k), points, colors[k]) for k, series in by_key.items() for _, points in series], colors


def sli_figure(sli: Answer, objectives: Answer, tr: TimeRange) -> dict:
    title = f"SLI against the objective (each point over {tr.window_name})"
    if (empty := guard(title, sli, tr)) is not None:
        return empty
    traces, colors = _slo_lines(sli)
    if not isinstance(objectives, SourceError):
        traces += [line(f"objective {slo_label(k)}", points, colors[k], dash="dash", meta=REFERENCE)
                   for labels, points in objectives if (k := slo_key(labels)) in colors]
    return {"data": traces, "layout": layout(title, tr, yaxis={"tickformat": ".3~%", "title": {"text": "SLI"}})}


def budget_figure(budget: Answer, rows: SLOs, tr: TimeRange) -> dict:
    windows = sorted({r.result.window for r in rows if r.result.window})
    title = f"Error budget left over the SLO window{' (' + plot_text(', '.join(windows)) + ')' if windows else ''}"
    if (empty := guard(title, budget, tr)) is not None:
        return empty
    traces, _ = _slo_lines(budget)
    exhausted = {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": 0, "y1": 0,
                 "line": {"color": EXHAUSTED_COLOR, "width": 1, "dash": "dot"}}
    return {"data": traces, "layout": layout(title, tr, shapes=[exhausted],
                                             yaxis={"tickformat": ".0%", "title": {"text": "budget left"}})}


def burn_figure(burn: Answer, rows: SLOs, tr: TimeRange) -> dict:
    """One panel per SLO: the burn rate over each tier window, and the tiers' thresholds. Windows
    shorter than the step start hidden: sampled once a step, they would only be noise."""
    title = "Burn rate per window, with the alert tiers' thresholds"
    if (empty := guard(title, burn, tr)) is not None:
        return empty
    by_key = _by_key(burn)
    tiers = {(r.result.slo, r.result.tool or ""): r.result.alerts for r in rows}
    keys = burn_panels(burn, rows)
    windows = sorted({labels.get("burn_window", "") for labels, _ in burn}, key=_seconds)
    colors = {w: PALETTE[i % len(PALETTE)] for i, w in enumerate(windows)}
    height = 1 / len(keys)
    traces, axes, notes = [], {}, []
    for i, key in enumerate(keys):
        axis, top = panel_axis(i), 1 - i * height
        series = sorted(by_key.get(key, []), key=lambda s: _seconds(s[0].get("burn_window", "")))
        for labels, points in series:
            window = labels.get("burn_window", "")
            traces.append(line(plot_text(window), points, colors[window], yaxis=axis, legendgroup=plot_text(window),
                               showlegend=i == 0,
                               visible=True if _seconds(window) >= tr.step else "legendonly"))
        alerts = tiers.get(key, ())
        for a in alerts:
            name = (f"{plot_text(a.tier)} {fmt_burn(a.burn_rate_threshold)} "
                    f"({plot_text(a.long_window)} & {plot_text(a.short_window)})" + (", firing" if a.firing else ""))
            traces.append(flat(name, a.burn_rate_threshold, tr, SEVERITY_COLORS.get(a.severity, "#757575"),
                               yaxis=axis, showlegend=False))
        # The scale reaches the highest burn rate and the lowest threshold; thresholds far above
        # would squash the lines to the bottom, so they are named instead of drawn in view.
        highest = max((v for _, points in series for _, v in points if math.isfinite(v)), default=0.0)
        ceiling = 1.15 * max(highest, min((a.burn_rate_threshold for a in alerts), default=1.0))
        above = [f"{plot_text(a.tier)} {fmt_burn(a.burn_rate_threshold)}" for a in alerts
                 if a.burn_rate_threshold > ceiling]
        axes["yaxis" if i == 0 else f"yaxis{i + 1}"] = {"domain": [max(0.0, top - height + 0.06), top - 0.03],
                                                        "title": {"text": "burn rate"}, "range": [0, ceiling]}
        notes.append({"text": f"<b>{slo_label(key)}</b>" + (f"  (above the scale: {', '.join(above)})" if above else ""),
                      "showarrow": False, "xref": "paper", "yref": "paper", "x": 0, "y": top - 0.03,
                      "xanchor": "left", "yanchor": "bottom"})
    return {"data": traces, "layout": layout(
        title, tr, height=80 + 200 * len(keys), annotations=notes,
        legend={"orientation": "v", "x": 1.01, "y": 1, "yanchor": "top"},  # beside the panels: they are tall
        xaxis={"type": "date", "range": [tr.start * 1000, tr.end * 1000],
               "anchor": "y" if len(keys) == 1 else f"y{len(keys)}"},  # under the last panel
        **axes)}


def burn_panels(burn: list[Series], rows: SLOs) -> list[Key]:
    """The burn chart's panels, top to bottom: the engine's SLOs with series, then any other
    SLO with series; panel i is drawn on y axis i + 1 ("y", "y2", ...)."""
    by_key = _by_key(burn)
    known = [(r.result.slo, r.result.tool or "") for r in rows]
    return list(dict.fromkeys([k for k in known if k in by_key] + list(by_key)))


def panel_axis(i: int) -> str:
    return "y" if i == 0 else f"y{i + 1}"


def requests_figure(requests: Answer, tr: TimeRange) -> dict:
    title = f"tools/call requests per second by status (rate over {tr.window_name})"
    if (empty := guard(title, requests, tr)) is not None:
        return empty
    order = {s: i for i, s in enumerate(STATUS_COLORS)}  # errors stacked on top, where they show
    series = sorted(requests, key=lambda s: (order.get(s[0].get("status"), len(order)), s[0].get("status", "")))
    traces = [line(plot_text(labels.get("status") or "?"), points, STATUS_COLORS.get(labels.get("status")),
                   stackgroup="status")
              for labels, points in series]
    return {"data": traces, "layout": layout(title, tr, yaxis={"title": {"text": "requests/s"}})}


def latency_figure(latency: Answer, rows: SLOs, tr: TimeRange,
                   exemplars: list[Exemplar] | SourceError = ()) -> dict:
    """p50, p90 and p99, with the service's latency SLO thresholds and the slowest `exemplars`
    (requests with their trace ids). Exemplars that cannot be read are said in a corner note."""
    title = f"tools/call latency, estimated from buckets (over {tr.window_name})"
    if (empty := guard(title, latency, tr)) is not None:
        return empty
    series = sorted(latency, key=lambda s: _number(s[0].get("quantile")))
    traces = [line(f"p{_percentile(labels.get('quantile'))} (estimate)", points, PALETTE[i % len(PALETTE)])
              for i, (labels, points) in enumerate(series)]
    for slo in (r.result for r in rows):
        if slo.kind == "latency" and slo.threshold is not None and not slo.tool:
            traces.append(flat(f"{plot_text(slo.slo)} SLO: {fmt_objective(slo.objective)} within "
                               f"{fmt_threshold(slo.threshold)}", slo.threshold, tr, SEVERITY_COLORS["ticket"]))
    notes = []
    if isinstance(exemplars, SourceError):
        notes.append({"text": plot_text(f"No exemplars: {exemplars.message}"), "showarrow": False, "xref": "paper",
                      "yref": "paper", "x": 1, "y": 1, "xanchor": "right", "yanchor": "bottom",
                      "font": {"size": 10, "color": "#757575"}})
    elif kept := slowest_exemplars(exemplars, tr):
        traces.append(exemplar_trace(kept))
    return {"data": traces, "layout": layout(title, tr, annotations=notes,
                                             yaxis={"title": {"text": "seconds"}, "rangemode": "tozero"})}


def slowest_exemplars(exemplars: Iterable[Exemplar], tr: TimeRange, slots: int = EXEMPLAR_SLOTS,
                      per_slot: int = EXEMPLARS_PER_SLOT) -> list[Exemplar]:
    """The exemplars within `tr` to mark: the `per_slot` slowest of each of `slots` equal slices
    of the range (the outliers a viewer looks for, spread over the range), oldest first, each
    observation once: an exemplar exposed without a timestamp is stored again at every scrape
    that shows it, with the scrape's time, so the first (earliest) is kept."""
    first: dict[tuple, Exemplar] = {}
    for e in exemplars:
        if tr.start <= e.time <= tr.end:
            key = (e.labels.get(TRACE_ID), e.labels.get(SPAN_ID), e.value)
            if key not in first or e.time < first[key].time:
                first[key] = e
    width = max(tr.end - tr.start, 1.0) / slots
    by_slot: dict[int, list[Exemplar]] = {}
    for e in first.values():
        by_slot.setdefault(min(int((e.time - tr.start) // width), slots - 1), []).append(e)
    kept = [e for slot in by_slot.values() for e in heapq.nlargest(per_slot, slot, key=lambda e: e.value)]
    return sorted(kept, key=lambda e: e.time)


def exemplar_trace(exemplars: list[Exemplar]) -> dict:
    """Markers at each exemplar's time and observed duration; hovering shows its trace id, tool
    and time (label values, so escaped: see dashboard.plot_text)."""
    def hover(e: Exemplar) -> list[str]:
        moment = datetime.fromtimestamp(e.time, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return [plot_text(e.labels.get(TRACE_ID) or "none"), plot_text(e.series.get("tool") or "?"), moment,
                fmt_threshold(e.value) or NONE]

    return {"type": "scatter", "mode": "markers", "name": "exemplars (slowest traced requests)", "meta": EXEMPLARS,
            "x": [e.time * 1000 for e in exemplars], "y": [e.value for e in exemplars],
            "customdata": [hover(e) for e in exemplars],
            "marker": {"color": EXEMPLAR_COLOR, "size": 7, "symbol": "diamond", "opacity": 0.8},
            "hovertemplate": "trace %{customdata[0]}<br>tool %{customdata[1]}<br>%{customdata[2]}: "
                             "%{customdata[3]}<extra></extra>"}


def heatmap_figure(buckets: Answer, tr: TimeRange) -> dict:
    """Requests per second in each duration bucket: the cumulative `le` buckets made per bucket."""
    title = f"tools/call duration buckets, requests per second (over {tr.window_name})"
    if (empty := guard(title, buckets, tr)) is not None:
        return empty
    times, bounds, rates = bucket_rates(buckets)
    if not bounds:
        return message_figure(title, tr, f"No data in the last {tr.name}")
    return {"data": [{"type": "heatmap", "x": [t * 1000 for t in times], "y": bucket_labels(bounds), "z": rates,
                      "colorscale": [[0, "#f7fbff"], [1, "#08306b"]], "colorbar": {"title": {"text": "req/s"}},
                      "hovertemplate": "%{y}: %{z:.3g} req/s<extra></extra>"}],
            "layout": layout(title, tr, yaxis={"type": "category"}, margin={"l": 110, "r": 20, "t": 40, "b": 40})}


def active_figure(active: Answer, tr: TimeRange) -> dict:
    title = f"Operations in flight (peak per {tr.window_name}, by version)"
    if (empty := guard(title, active, tr)) is not None:
        return empty
    series = sorted(active, key=lambda s: s[0].get("version", ""))
    traces = [line(plot_text(labels.get("version") or "?"), points, PALETTE[i % len(PALETTE)])
              for i, (labels, points) in enumerate(series)]
    return {"data": traces, "layout": layout(title, tr, yaxis={"title": {"text": "operations"}, "rangemode": "tozero"})}


def figures(answers: Mapping[str, Answer], rows: SLOs, tr: TimeRange,
            fired: Iterable[tuple[float, float, str]] = (),
            exemplars: list[Exemplar] | SourceError = (), service: str = "",
            maintenance: Iterable[Occurrence] = ()) -> dict[str, dict]:
    """Every chart of the page (GRAPHS) from `read`'s answers, with the spans during which an
    alert of the service fired (alerts_data.spans: start, end, severity) marked, the
    `maintenance` occurrences covering `service` shaded, and the latency chart's `exemplars`
    (read_exemplars)."""
    missing = prometheus_down(answers.values()) or SourceError("missing", "not read")

    def get(name: str) -> Answer:
        return answers.get(name, missing)

    out = {"sli": sli_figure(get("sli"), get("objective"), tr), "budget": budget_figure(get("budget"), rows, tr),
           "burn": burn_figure(get("burn"), rows, tr), "requests": requests_figure(get("requests"), tr),
           "latency": latency_figure(get("latency"), rows, tr, exemplars), "heatmap": heatmap_figure(get("heatmap"), tr),
           "active": active_figure(get("active"), tr)}
    fired, maintenance = list(fired), list(maintenance)
    burn = get("burn")
    # the burn chart has a panel per SLO: a window shades the panels of the SLOs it covers
    panels = [] if isinstance(burn, SourceError) else [(k, panel_axis(i)) for i, k in enumerate(burn_panels(burn, rows))]
    for name, figure in out.items():
        windows = maintenance_data.shapes(maintenance, service, panels if name == "burn" else None)
        if (fired or windows) and figure["data"]:
            figure["layout"]["shapes"] = [*windows, *fired_shapes(fired, figure["layout"]),
                                          *figure["layout"].get("shapes", ())]
    return out


def fired_shapes(fired: Iterable[tuple[float, float, str]], layout: Mapping[str, Any]) -> list[dict]:
    """Where an alert of the service fired, as Grafana marks alert annotations: a band just above
    the plot for every alert (a colour per severity, the worst drawn last, on top), and the
    whole height shaded while a page fired (an incident). An alert firing for days (a spent
    budget) only colours the band, the lines stay readable."""
    plot = layout.get("height", 300) - layout["margin"]["t"] - layout["margin"]["b"]
    band = BAND_PIXELS / max(plot, 1)  # in the plot's height
    shapes = []
    for start, end, severity in fired:
        span = {"type": "rect", "xref": "x", "yref": "paper", "x0": start * 1000, "x1": end * 1000,
                "fillcolor": SEVERITY_COLORS.get(severity, "#9e9e9e"), "line": {"width": 0}}
        shapes.append({**span, "y0": 1, "y1": 1 + band, "layer": "above"})
        if severity == "page":
            shapes.append({**span, "y0": 0, "y1": 1, "opacity": FIRED_OPACITY, "layer": "below"})
    return shapes


def bucket_rates(buckets: list[Series]) -> tuple[list[float], list[float], list[list[float | None]]]:
    """(times, upper bounds ascending, rates[bound][time]) with each bucket's own requests per
    second: the cumulative rate at `le` minus the one below it. A bucket missing or NaN at a
    time is None there; a counter reset can make a difference briefly negative: 0."""
    cumulative: dict[float, dict[float, float]] = {}
    for labels, points in buckets:
        try:
            bound = float(labels.get("le", ""))
        except ValueError:
            continue
        cumulative.setdefault(bound, {}).update(points)
    bounds = sorted(cumulative)
    times = sorted({t for by_time in cumulative.values() for t in by_time})
    rates: list[list[float | None]] = []
    for i, bound in enumerate(bounds):
        row = []
        for t in times:
            value = cumulative[bound].get(t, math.nan)
            below = cumulative[bounds[i - 1]].get(t, math.nan) if i else 0.0
            row.append(max(0.0, value - below) if math.isfinite(value) and math.isfinite(below) else None)
        rates.append(row)
    return times, bounds, rates


def bucket_labels(bounds: list[float]) -> list[str]:
    """"≤ 10 ms", "10 ms – 50 ms", ..., "> 10 s" for ascending upper bounds."""
    labels = []
    for i, bound in enumerate(bounds):
        if math.isinf(bound):
            labels.append(f"> {fmt_threshold(bounds[i - 1])}" if i else "any")
        else:
            labels.append(f"{fmt_threshold(bounds[i - 1])} – {fmt_threshold(bound)}" if i else f"≤ {fmt_threshold(bound)}")
    return labels


# --- the tool table ----------------------------------------------------------------------------


def tool_table(status: list[Sample] | SourceError, buckets: list[Sample] | SourceError,
               rows: SLOs) -> list[dict] | SourceError:
    """One row per tool of the service with tools/call traffic over TOOL_WINDOW (and per tool
    with an SLO of its own): requests per second, error ratio and latency quantiles by the
    engine's own arithmetic (slo.evaluate.tool_rows), with the tool's SLOs from the engine's
    rows. Worst error ratio first; tools without traffic last."""
    if isinstance(status, SourceError):
        return status
    tool_slos: dict[str, list[dict]] = {}
    for s in slo_summaries([r for r in rows if r.result.tool]):
        tool_slos.setdefault(s["tool"], []).append(s)
    measured = evaluate.tool_rows(status, [] if isinstance(buckets, SourceError) else buckets)
    out = []
    for t in measured:
        latency = t.latency_seconds  # None without buckets: unknown, not 0
        out.append({"tool": t.tool, "rate": t.rate, "error_ratio": t.error_ratio, "latency": latency,
                    "by_status": t.by_status, "slos": tool_slos.get(t.tool, []),
                    "rate_text": f"{t.rate:,.2f}/s", "error_text": fmt_objective(t.error_ratio),
                    "latency_text": {p: fmt_threshold(v) or NONE for p, v in latency.items()}})
    seen = {r["tool"] for r in out}
    for tool in sorted(set(tool_slos) - seen):  # an SLO of its own, and no traffic now
        out.append({"tool": tool, "rate": None, "error_ratio": None, "latency": {}, "by_status": {},
                    "slos": tool_slos[tool], "rate_text": NONE, "error_text": NONE, "latency_text": {}})
    return sorted(out, key=lambda r: (r["rate"] is None, -(r["error_ratio"] or 0.0), r["tool"]))


# --- alerts ------------------------------------------------------------------------------------


def service_alerts(alerts: list[dict] | SourceError, service: str, now: float) -> list[dict] | SourceError:
    """Prometheus's firing and pending alerts of `service`: firing first, pages before tickets,
    the longest-running first; with their runbook link (only an http(s) one: a link is clicked)."""
    if isinstance(alerts, SourceError):
        return alerts
    out = []
    for a in alerts:
        labels, notes = a.get("labels") or {}, a.get("annotations") or {}
        if labels.get("service") != service:
            continue
        since = _unix(a.get("activeAt"))
        out.append({"alertname": labels.get("alertname", ""), "state": a.get("state", ""),
                    "severity": labels.get("severity", ""), "slo": labels.get("slo", ""),
                    "tool": labels.get("tool", ""), "tier": labels.get("tier", ""),
                    "summary": notes.get("summary") or notes.get("description") or "",
                    "runbook": web_link(notes.get("runbook_url")), "since": since,
                    "for_text": fmt_duration(now - since) if since is not None else NONE})
    return sorted(out, key=lambda a: (a["state"] != "firing", SEVERITY_ORDER.get(a["severity"], len(SEVERITY_ORDER)),
                                      a["since"] if a["since"] is not None else math.inf, a["alertname"], a["slo"]))


def web_link(url: Any) -> str | None:
    """`url` when it is an http(s) URL, else None."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    return url.strip() if parts.scheme in ("http", "https") and parts.netloc else None


# --- helpers ---------------------------------------------------------------------------------------


def _seconds(window: str) -> float:
    try:
        return durations.parse(window)
    except ValueError:
        return math.inf


def _number(text: str | None) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.inf


def _percentile(quantile: str | None) -> str:
    q = _number(quantile)
    return f"{q * 100:g}" if math.isfinite(q) else "?"


def _unix(rfc3339: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(rfc3339).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None

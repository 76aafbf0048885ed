"""The service page: its data functions (time range, figures from range answers, the tool table,
the alerts), its callback called as a plain function with a fake source and a fake Metrics, the
callback through Dash's HTTP protocol, and every chart's query on the real demo stack.

SLO rows are made by the engine's own arithmetic (slo.evaluate.assess), shaped as
GET /api/v1/slos answers them (slo.engine.api) and read as the source reads that answer, so
they are real results.
"""

from __future__ import annotations

import json
import math
import time

import pytest

from dashboard import service_data as sd
from dashboard.app import create_app
from dashboard.colors import SEVERITY_COLORS
from dashboard.maintenance_data import Maintenance
from dashboard.pages import service as page
from dashboard.prometheus import MAX_POINTS, Metrics
from dashboard.source import EngineSource, SLOs, SourceError, Status, typed
from collector import durations
from slo import promql
from slo.engine import answers
from slo import spec as slo_spec
from slo.query import Sample
from slo.evaluate import Instance, assess
from slo.plan import plan
from slo.engine.store import Snapshot
from slo.results import SLOResult
from tests.support import wait_until
from tests.test_dashboard_overview import dispatch, texts

NAN = math.nan
NOW = 1_800_000_000.0
SPEC = slo_spec.parse({"version": 1, "defaults": {"objectives": [
    {"name": "availability", "kind": "availability", "target": 99.9, "window": "30d"},
    {"name": "latency", "kind": "latency", "threshold": 0.1, "target": 95.0, "window": "30d"},
]}, "services": {"filesystem": {"tools": {"write_file": {"objectives": [{"name": "availability", "target": 99.5}]}}}}})
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")


def engine_row(service: str, slo: str, ratio: float | None, tool: str = "") -> dict:
    """An SLO result as the engine computes it, `ratio` the bad share in every window."""
    objectives = SPEC.tool_objectives(service, tool) if tool else SPEC.objectives_for(service)
    objective = next(o for o in objectives if o.name == slo)
    windows = {int(durations.parse(w)): (10.0, 10.0 * ratio) for w in WINDOWS} if ratio is not None else {}
    row = assess(Instance(service, tool, objective), windows, plan(SPEC).tiers[int(objective.window_seconds)],
                 SPEC.alerting.min_events)
    return {**row.to_json(), "versions": ["v1", "v2"]}


def api_slos(rows: list[dict]) -> SLOs:
    snapshot = Snapshot(tick_id=1, evaluated_at=NOW, slos=rows, tools=[], meta={})
    return typed(json.loads(json.dumps(answers.jsonable(answers.slo_items(snapshot, False, NOW + 5)[0]))),
                 SLOResult.from_json)


SLOS = api_slos([
    engine_row("filesystem", "availability", 0.02),  # 20x everywhere: both page tiers fire
    engine_row("filesystem", "latency", 0.01),  # a fifth of the budget: ok
    engine_row("filesystem", "availability", 0.001, tool="write_file"),
    engine_row("analytics", "availability", 0.0),
    engine_row("analytics", "latency", None),
])
ROWS = sd.service_rows(SLOS, "filesystem")


def tr_of(range_: str = "1h") -> sd.TimeRange:
    return sd.time_range(f"?range={range_}", NOW)


def points(tr: sd.TimeRange, *values: float) -> list[tuple[float, float]]:
    return [(tr.start + i * tr.step, v) for i, v in enumerate(values)]


def by_name(figure: dict) -> dict[str, dict]:
    return {t.get("name", t["type"]): t for t in figure["data"]}


def message(figure: dict) -> str:
    return " ".join(a["text"] for a in figure["layout"].get("annotations", []))


# --- time range and queries ---------------------------------------------------------------


@pytest.mark.parametrize("search, name, step, window", [
    ("?range=1h", "1h", 15, 300), ("?range=24h&refresh=off", "24h", 120, 300), ("?range=7d", "7d", 900, 900),
    ("?range=30d", "30d", 3600, 3600), ("?range=1y", "24h", 120, 300), ("", "24h", 120, 300)])
def test_the_time_range_follows_the_shells_parameter_and_keeps_charts_under_1000_points(search, name, step, window):
    tr = sd.time_range(search, NOW + 7)
    assert (tr.name, tr.step, tr.window) == (name, step, window)
    assert tr.end == NOW and tr.end - tr.start == durations.parse(name)  # aligned to the step: NOW is a multiple
    assert (tr.end - tr.start) / tr.step + 1 <= MAX_POINTS


def test_the_queries_escape_the_service_and_use_the_tiers_windows():
    queries = sd.chart_queries('fs"} or vector(1) #', ROWS, tr_of("7d"))
    assert set(queries) == {"sli", "objective", "budget", "burn", "requests", "latency", "heatmap", "active"}
    for expr in queries.values():
        assert 'service="fs\\"} or vector(1) #"' in expr
    assert "[15m]" in queries["sli"] and "[15m]" in queries["requests"]  # the rate window is the 7d step
    burn_names = queries["burn"].split('"')[1].split("|")
    assert burn_names == [f"mcp_slo:error_ratio:rate{w}" for w in ("1d", "1h", "2h", "30m", "3d", "5m", "6h")]
    assert sd.burn_windows([]) == [300.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0, 259200.0]  # no engine: the rules'


# --- figures ---------------------------------------------------------------------------------


def test_the_sli_chart_has_a_line_per_slo_with_gaps_for_nan_and_its_objective():
    tr = tr_of()
    sli = [({"service": "filesystem", "slo": "availability"}, points(tr, 0.999, NAN, 0.98)),
           ({"service": "filesystem", "slo": "availability", "tool": "write_file"}, points(tr, 1.0, 0.995, 0.99)),
           ({"service": "filesystem", "slo": "latency"}, points(tr, 0.96, 0.97, math.inf))]
    objectives = [({"service": "filesystem", "slo": "availability", "__name__": "mcp_slo:objective"}, points(tr, 0.999)),
                  ({"service": "filesystem", "slo": "other"}, points(tr, 0.5))]  # no SLI line: left out
    traces = by_name(sd.sli_figure(sli, objectives, tr))
    assert list(traces) == ["availability", "availability · write_file", "latency", "objective availability"]
    assert traces["availability"]["y"] == [0.999, None, 0.98] and traces["latency"]["y"] == [0.96, 0.97, None]
    assert traces["availability"]["x"] == [tr.start * 1000, (tr.start + 15) * 1000, (tr.start + 30) * 1000]
    assert traces["objective availability"]["y"] == [0.999] and traces["objective availability"]["line"]["dash"]
    assert traces["objective availability"]["line"]["color"] == traces["availability"]["line"]["color"]


def test_charts_say_why_they_are_empty():
    tr = tr_of("6h")
    assert message(sd.budget_figure([], ROWS, tr)) == "No data in the last 6h"
    only_nan = [({"slo": "availability"}, points(tr, NAN, NAN))]
    assert message(sd.sli_figure(only_nan, [], tr)) == "No data in the last 6h"
    broken = SourceError("prometheus", "query failed: parse error")
    figure = sd.requests_figure(broken, tr)
    assert figure["data"] == [] and message(figure) == "Cannot read this chart: query failed: parse error"
    missing = sd.figures({"sli": []}, ROWS, tr)  # queries not read (Prometheus went down) say so
    assert message(missing["burn"]) == "Cannot read this chart: not read" and message(missing["sli"]).startswith("No data")


def test_the_burn_chart_has_a_panel_per_slo_with_its_tiers_thresholds():
    tr = tr_of("30d")
    burn = [({"service": "filesystem", "slo": "availability", "burn_window": w}, points(tr, 20.0, 21.5))
            for w in ("5m", "1h", "3d")]
    burn.append(({"service": "filesystem", "slo": "latency", "burn_window": "1h"}, points(tr, 0.2, NAN)))
    figure = sd.burn_figure(burn, ROWS, tr)
    traces = figure["data"]
    availability = [t for t in traces if t.get("yaxis") == "y"]
    latency = [t for t in traces if t.get("yaxis") == "y2"]
    assert [t["name"] for t in availability[:3]] == ["5m", "1h", "3d"]  # shortest window first
    assert availability[0]["y"] == [20.0, 21.5] and latency[0]["y"] == [0.2, None]
    # windows shorter than the 30d chart's hourly step start hidden
    assert [t["visible"] for t in availability[:3]] == ["legendonly", True, True]
    thresholds = {t["name"]: t["y"] for t in availability[3:]}
    assert thresholds == {"page-fast 14.4x (1h & 5m), firing": [14.4, 14.4], "page-slow 6.00x (6h & 30m), firing": [6, 6],
                          "ticket-fast 3.00x (1d & 2h), firing": [3, 3], "ticket-slow 1.00x (3d & 6h), firing": [1, 1]}
    assert {t["name"] for t in latency[1:]} == {"page-fast 14.4x (1h & 5m)", "page-slow 6.00x (6h & 30m)",
                                               "ticket-fast 3.00x (1d & 2h)", "ticket-slow 1.00x (3d & 6h)"}
    assert availability[3]["x"] == [tr.start * 1000, tr.end * 1000]
    # each scale reaches the highest burn rate and the lowest threshold; higher thresholds are named
    assert figure["layout"]["yaxis"]["range"] == [0, pytest.approx(1.15 * 21.5)]
    assert figure["layout"]["yaxis2"]["range"] == [0, pytest.approx(1.15)]
    panels = [a["text"] for a in figure["layout"]["annotations"]]
    assert panels == ["<b>availability</b>",  # the per-tool SLO has no series: no panel
                      "<b>latency</b>  (above the scale: page-fast 14.4x, page-slow 6.00x, ticket-fast 3.00x)"]
    assert figure["layout"]["xaxis"]["anchor"] == "y2"


def test_requests_are_stacked_by_status_errors_on_top():
    tr = tr_of()
    requests = [({"status": s}, points(tr, v, v)) for s, v in (("error", 0.2), ("success", 19.0), ("timeout", 0.05))]
    traces = sd.requests_figure(requests, tr)["data"]
    assert [(t["name"], t["y"][0], t["stackgroup"]) for t in traces] == [
        ("success", 19.0, "status"), ("timeout", 0.05, "status"), ("error", 0.2, "status")]


def test_latency_quantiles_are_marked_as_estimates_with_the_latency_slo():
    tr = tr_of()
    latency = [({"quantile": q}, points(tr, v)) for q, v in (("0.99", 0.48), ("0.5", 0.02), ("0.9", 0.09))]
    figure = sd.latency_figure(latency, ROWS, tr)
    assert "estimated from buckets" in figure["layout"]["title"]["text"]
    assert [(t["name"], t["y"]) for t in figure["data"]] == [
        ("p50 (estimate)", [0.02]), ("p90 (estimate)", [0.09]), ("p99 (estimate)", [0.48]),
        ("latency SLO: 95% within 100 ms", [0.1, 0.1])]


def test_the_heatmap_holds_each_buckets_own_rate():
    tr = tr_of()
    t0, t1, t2 = (tr.start + i * tr.step for i in range(3))
    buckets = [({"le": "+Inf"}, [(t0, 10.0), (t1, 12.0), (t2, 5.0)]),
               ({"le": "0.05"}, [(t0, 3.0), (t1, NAN), (t2, 6.0)]),  # t2: a counter reset below
               ({"le": "0.01"}, [(t0, 1.0), (t1, 2.0)]),  # no point at t2
               ({"le": "junk"}, [(t0, 99.0)])]
    times, bounds, rates = sd.bucket_rates(buckets)
    assert times == [t0, t1, t2] and bounds == [0.01, 0.05, math.inf]
    assert rates == [[1.0, 2.0, None], [2.0, None, None], [7.0, None, 0.0]]
    heatmap = sd.heatmap_figure(buckets, tr)["data"][0]
    assert heatmap["y"] == ["≤ 10 ms", "10 ms – 50 ms", "> 50 ms"] and heatmap["z"] == rates
    assert heatmap["x"] == [t * 1000 for t in times]


def test_active_operations_per_version():
    tr = tr_of()
    traces = sd.active_figure([({"version": "v2"}, points(tr, 1.0)), ({"version": "v1"}, points(tr, 7.0))], tr)["data"]
    assert [(t["name"], t["y"]) for t in traces] == [("v1", [7.0]), ("v2", [1.0])]


def ms(seconds: float) -> float:
    return seconds * 1000


def rects(figure: dict) -> list[dict]:
    """The shaded spans of a figure."""
    return [s for s in figure["layout"].get("shapes", []) if s["type"] == "rect"]


def test_the_charts_mark_when_an_alert_fired_and_their_reference_lines():
    tr = tr_of("6h")
    metrics = full_metrics(tr)
    answers = {name: metrics.range(expr, tr.start, tr.end) for name, expr in sd.chart_queries("filesystem", ROWS, tr).items()}
    spans = [(NOW - 7200, NOW, "ticket"), (NOW - 3600, NOW - 3000, "page")]
    figures = sd.figures(answers, ROWS, tr, spans)
    for name, figure in figures.items():
        # a band above the plot for each, the page's time shaded across the plot too
        plot = figure["layout"].get("height", 300) - 80
        assert [(s["x0"], s["x1"], s["y0"], s["y1"], s["fillcolor"]) for s in rects(figure)] == [
            (ms(NOW - 7200), ms(NOW), 1, pytest.approx(1 + 6 / plot), SEVERITY_COLORS["ticket"]),
            (ms(NOW - 3600), ms(NOW - 3000), 1, pytest.approx(1 + 6 / plot), SEVERITY_COLORS["page"]),
            (ms(NOW - 3600), ms(NOW - 3000), 0, 1, SEVERITY_COLORS["page"])], name
        assert all(s["xref"] == "x" and s["yref"] == "paper" for s in rects(figure))
    assert figures["budget"]["layout"]["shapes"][-1]["y0"] == 0  # the exhausted line stays
    assert sd.figures({}, ROWS, tr, spans)["sli"]["layout"].get("shapes") is None  # nothing drawn, nothing shaded
    assert sd.figures(answers, ROWS, tr)["sli"]["layout"].get("shapes") is None
    # lines that are not measurements say so (the objective, the tiers' thresholds, the latency SLO)
    references = {name: [t["name"] for t in f["data"] if t.get("meta") == sd.REFERENCE] for name, f in figures.items()}
    assert references["sli"] == ["objective availability"] and len(references["burn"]) == 4
    assert references["latency"] == ["latency SLO: 95% within 100 ms"] and references["requests"] == []


def test_the_page_says_when_no_alert_fired_or_the_history_cannot_be_read():
    tr = tr_of("1h")
    metrics = full_metrics(tr)
    metrics.ranges[promql.fired_alerts(60, "filesystem")] = []
    r = page.render(FakeSource(SLOS), metrics, "/services/filesystem", "?range=1h", now=NOW)
    assert "No alert of filesystem fired in the last 1h" in texts(r.fired)
    assert not any(rects(f) for f in r.figures.values())
    metrics.ranges[promql.fired_alerts(60, "filesystem")] = SourceError("prometheus", "query failed: timeout")
    r = page.render(FakeSource(SLOS), metrics, "/services/filesystem", "?range=1h", now=NOW)
    assert "The alerts' history cannot be read: query failed: timeout" in texts(r.fired)
    assert r.charts_style == page.CHARTS_STYLE and not any(rects(f) for f in r.figures.values())


# --- tools and alerts ----------------------------------------------------------------------------


def tool_samples() -> tuple[list[Sample], list[Sample]]:
    status = [Sample({"service": "filesystem", "tool": "write_file", "status": s}, v)
              for s, v in (("success", 9.9), ("error", 0.1), ("cancelled", 0.5))]
    status += [Sample({"service": "filesystem", "tool": "read_file", "status": "success"}, 30.0),
               Sample({"service": "filesystem", "tool": "read_file", "status": "timeout"}, NAN)]
    buckets = [Sample({"service": "filesystem", "tool": "write_file", "le": le}, v)
               for le, v in (("0.01", 0.0), ("0.05", 4.0), ("0.1", 9.0), ("+Inf", 10.0))]
    return status, buckets


def test_the_tool_table_has_the_engines_arithmetic_worst_first():
    status, buckets = tool_samples()
    rows = sd.tool_table(status, buckets, ROWS)
    assert [r["tool"] for r in rows] == ["write_file", "read_file"]
    write, read = rows
    assert write["rate"] == pytest.approx(10.5) and write["error_ratio"] == pytest.approx(0.01)  # 0.1 of 10 valid
    assert write["latency"]["p50"] == pytest.approx(0.06) and write["latency"]["p99"] == pytest.approx(0.1)
    assert (write["rate_text"], write["error_text"], write["latency_text"]["p50"]) == ("10.50/s", "1%", "60 ms")
    assert [s["slo"] for s in write["slos"]] == ["availability"] and write["slos"][0]["status"] == "ok"
    assert read["error_ratio"] == 0.0 and read["latency"] == {"p50": None, "p90": None, "p99": None}
    assert read["latency_text"]["p99"] == "—"  # no buckets: unknown, not 0


def test_the_tool_table_without_traffic_or_prometheus():
    rows = sd.tool_table([], [], ROWS)
    assert [(r["tool"], r["rate_text"]) for r in rows] == [("write_file", "—")]  # its SLO, no traffic
    down = SourceError("unreachable", "Prometheus is down")
    assert sd.tool_table(down, [], ROWS) is down
    no_buckets = sd.tool_table(tool_samples()[0], down, ROWS)
    assert no_buckets[0]["error_ratio"] == pytest.approx(0.01) and no_buckets[0]["latency"]["p50"] is None


ALERTS = [
    {"labels": {"alertname": "MCPSLOErrorBudgetBurn", "service": "filesystem", "slo": "availability",
                "severity": "ticket", "tier": "ticket-fast"}, "state": "firing",
     "annotations": {"summary": "filesystem: ticket", "runbook_url": "https://runbooks.example.com/availability"},
     "activeAt": "2027-01-15T07:00:00.123456789Z"},
    {"labels": {"alertname": "MCPSLOErrorBudgetBurn", "service": "filesystem", "slo": "availability",
                "severity": "page", "tier": "page-fast"}, "state": "pending",
     "annotations": {"summary": "filesystem: page soon", "runbook_url": "javascript:alert(1)"},
     "activeAt": "2027-01-15T07:59:00Z"},
    {"labels": {"alertname": "MCPSLOErrorBudgetBurn", "service": "filesystem", "slo": "latency", "severity": "page",
                "tier": "page-fast"}, "state": "firing", "annotations": {"description": "filesystem: slow"},
     "activeAt": "2027-01-15T07:30:00Z"},
    {"labels": {"alertname": "MCPSLOErrorBudgetBurn", "service": "analytics", "severity": "page"}, "state": "firing",
     "annotations": {}, "activeAt": "2027-01-15T06:00:00Z"},
]


def test_the_alerts_of_the_service_firing_and_pages_first_with_safe_runbook_links():
    alerts = sd.service_alerts(ALERTS, "filesystem", sd._unix("2027-01-15T08:00:00Z"))
    assert [(a["state"], a["severity"], a["slo"]) for a in alerts] == [
        ("firing", "page", "latency"), ("firing", "ticket", "availability"), ("pending", "page", "availability")]
    assert [a["runbook"] for a in alerts] == [None, "https://runbooks.example.com/availability", None]
    assert [a["summary"] for a in alerts] == ["filesystem: slow", "filesystem: ticket", "filesystem: page soon"]
    assert [a["for_text"] for a in alerts] == ["30m", "1h", "1m"]  # since 07:00:00.123456789
    down = SourceError("unreachable", "down")
    assert sd.service_alerts(down, "filesystem", NOW) is down
    assert sd.service_alerts(ALERTS, "nobody", NOW) == []


# --- the page's callback, as a plain function ------------------------------------------------------


class FakeSource:
    description = "the engine at http://engine.test:8080"

    def __init__(self, slos, evaluated_at: str | None = "2027-01-15T08:00:00Z", maintenance=None):
        self._slos, self.evaluated_at = slos, evaluated_at
        self._maintenance = maintenance if maintenance is not None else Maintenance((), ())
        self.maintenance_asked: list[tuple[float, float]] = []

    def slos(self):
        return self._slos

    def maintenance(self, since, until):
        self.maintenance_asked.append((since, until))
        return self._maintenance

    def status(self):
        return Status(self.evaluated_at, 12.0, self.evaluated_at is None, None, None, time.monotonic())


class FakeMetrics:
    """Answers by query text; records what was asked."""

    schema = "auto"

    def __init__(self, ranges: dict | SourceError, instants: dict | SourceError = None, alerts=()):
        self.ranges, self.instants, self._alerts = ranges, instants or {}, alerts
        self.asked: list[str] = []

    def range(self, expr, start, end, max_points=MAX_POINTS, step=None):
        self.asked.append(expr)
        return self.ranges if isinstance(self.ranges, SourceError) else self.ranges.get(expr, [])

    def instant(self, expr):
        self.asked.append(expr)
        return self.instants if isinstance(self.instants, SourceError) else self.instants.get(expr, [])

    def alerts(self):
        return self._alerts if isinstance(self._alerts, SourceError) else list(self._alerts)

    def exemplars(self, expr, start, end):
        self.asked.append(expr)
        return []


def full_metrics(tr: sd.TimeRange, service: str = "filesystem") -> FakeMetrics:
    q = sd.chart_queries(service, ROWS, tr)
    s = {"service": service, "slo": "availability"}
    status, buckets = tool_samples()
    return FakeMetrics({
        q["sli"]: [(s, points(tr, 0.99, 0.98))], q["objective"]: [(s, points(tr, 0.999, 0.999))],
        q["budget"]: [(s, points(tr, -0.5, -0.6))],
        q["burn"]: [({**s, "burn_window": "1h"}, points(tr, 20.0, 20.0))],
        q["requests"]: [({"status": "success"}, points(tr, 19.0, 19.0))],
        q["latency"]: [({"quantile": "0.5"}, points(tr, 0.02, 0.03))],
        q["heatmap"]: [({"le": "0.1"}, points(tr, 3.0, 4.0)), ({"le": "+Inf"}, points(tr, 5.0, 5.0))],
        q["active"]: [({"version": "v1"}, points(tr, 2.0, 3.0))],
        promql.fired_alerts(60, service): FIRED,
    }, {promql.tool_status_rates(sd.TOOL_WINDOW, service): status,
        promql.tool_bucket_rates(sd.TOOL_WINDOW, service): buckets}, ALERTS)


# the page-fast alert fired from 07:00 to 07:10, the ticket from 06:00 and still fires
FIRED = [({"alertname": "MCPSLOErrorBudgetBurn", "alertstate": "firing", "service": "filesystem",
           "slo": "availability", "severity": "page", "tier": "page-fast", "window": "30d"},
          [(NOW - 3600 + 60 * i, 1.0) for i in range(11)]),
         ({"alertname": "MCPSLOErrorBudgetBurn", "alertstate": "firing", "service": "filesystem",
           "slo": "availability", "severity": "ticket", "tier": "ticket-fast", "window": "30d"},
          [(NOW - 7200 + 60 * i, 1.0) for i in range(122)])]


def test_the_page_draws_the_engines_numbers_the_charts_the_tools_and_the_alerts():
    tr = tr_of("6h")
    r = page.render(FakeSource(SLOS), full_metrics(tr), "/services/filesystem", "?range=6h&refresh=off", now=NOW)
    header = texts(r.header)
    assert "critical" in header and "SLI 98% of 99.9% over 30d" in header and "page-fast, page-slow" in header
    assert '"href": "/?range=6h&refresh=off"' in header  # back to the overview with the shell's settings
    assert r.notices == [] and r.body_style == page.SHOWN and r.charts_style == page.CHARTS_STYLE
    assert by_name(r.figures["budget"])["availability"]["y"] == [-0.5, -0.6]
    assert by_name(r.figures["burn"])["1h"]["y"] == [20.0, 20.0]
    assert r.figures["heatmap"]["data"][0]["z"] == [[3.0, 4.0], [2.0, 1.0]]
    tools = texts(r.tools)
    assert "write_file" in tools and "60 ms" in tools and "10.50/s" in tools
    alerts = texts(r.alerts)
    assert "https://runbooks.example.com/availability" in alerts and "javascript" not in alerts
    assert "analytics" not in alerts
    fired = texts(r.fired)
    assert "Alerts that fired in the last 6h" in fired and "page-fast / 30d" in fired and "2027-01-15 07:00" in fired
    assert '"children": "10m"' in fired and '"children": "firing"' in fired
    assert '"href": "/alerts?range=6h&refresh=off"' in fired
    marked = [(s["x0"], s["x1"], s["fillcolor"]) for s in rects(r.figures["sli"]) if s["y0"] == 1]
    assert marked == [(ms(NOW - 7200), ms(NOW), SEVERITY_COLORS["ticket"]),
                      (ms(NOW - 3600), ms(NOW - 3000), SEVERITY_COLORS["page"])]
    assert len(r.outputs()) == 4 + len(sd.GRAPHS) + 4


def test_an_unknown_service_says_so_and_asks_prometheus_nothing():
    metrics = full_metrics(tr_of())
    r = page.render(FakeSource(SLOS), metrics, "/services/nope", "?range=1h", now=NOW)
    assert "No service 'nope'" in texts(r.header) and '"href": "/?range=1h"' in texts(r.header)
    assert r.body_style == page.HIDDEN and metrics.asked == []
    r = page.render(FakeSource(SLOS), metrics, "/services", "", now=NOW)
    assert "Which service?" in texts(r.header) and r.body_style == page.HIDDEN
    r = page.render(FakeSource([], evaluated_at=None), metrics, "/services/filesystem", "", now=NOW)
    assert "No evaluation yet" in texts(r.header) and r.body_style == page.HIDDEN and metrics.asked == []


def test_prometheus_unreachable_replaces_the_charts_and_keeps_the_engines_numbers():
    down = SourceError("unreachable", "Prometheus at http://prom.test:9090 is unreachable (ConnectError)")
    metrics = FakeMetrics(down, down, down)
    r = page.render(FakeSource(SLOS), metrics, "/services/filesystem", "", now=NOW)
    assert "Prometheus is unreachable" in texts(r.notices) and "prom.test:9090" in texts(r.notices)
    assert r.charts_style == page.HIDDEN and r.body_style == page.SHOWN and r.tools is None
    assert "SLI 98% of 99.9%" in texts(r.header)  # the engine's numbers
    assert len(metrics.asked) == 1  # the first query said it: no other waits for the same answer
    unconfigured = SourceError("unconfigured", "no Prometheus configured (--prometheus)")
    r = page.render(FakeSource(SLOS), FakeMetrics(unconfigured), "/services/filesystem", "", now=NOW)
    assert "No Prometheus" in texts(r.notices)


def test_no_data_in_the_range_and_an_unreadable_engine_are_said():
    r = page.render(FakeSource(SLOS), FakeMetrics({}), "/services/filesystem", "?range=1h", now=NOW)
    assert "Prometheus has no data for filesystem in the last 1h" in texts(r.notices)
    assert all(message(f) == "No data in the last 1h" for f in r.figures.values())
    assert "No tools/call requests" not in texts(r.tools) and "write_file" in texts(r.tools)  # its SLO still listed
    assert "No alert of filesystem" in texts(r.alerts)

    broken = SourceError("unreachable", "cannot reach the engine at http://engine.test:8080: refused")
    tr = tr_of("1h")
    r = page.render(FakeSource(broken), full_metrics(tr), "/services/filesystem", "?range=1h", now=NOW)
    assert "SLO numbers are not available" in texts(r.notices) and "engine.test:8080" in texts(r.notices)
    assert r.charts_style == page.CHARTS_STYLE and by_name(r.figures["sli"])["availability"]["y"] == [0.99, 0.98]


def test_a_hostile_service_name_in_the_path_stays_inside_the_queries_strings():
    hostile = 'a"b'
    metrics = FakeMetrics({})
    slos = api_slos([engine_row(hostile, "availability", 0.0)])
    page.render(FakeSource(slos), metrics, "/services/a%22b", "", now=NOW)
    # as a matcher on mcp-slo's metrics, as label_replace's regex on OpenTelemetry's: quoted each time
    assert metrics.asked and all('service="a\\"b"' in q for q in metrics.asked if "mcp_operation" in q)
    assert all('"a\\"b"' in q and 'a"b' not in q.replace('a\\"b', "") for q in metrics.asked)


def test_the_callback_answers_through_dashs_protocol():
    tr = sd.time_range("", time.time())
    app = create_app(FakeSource(SLOS), metrics=full_metrics(tr))
    client = app.server.test_client()
    assert client.get("/services/filesystem").status_code == 200
    output = next(o for o in app.callback_map if "service-header.children" in o)
    out = dispatch(client, app, output, {"url.pathname": "/services/filesystem", "url.search": "",
                                         "tick.n_intervals": 1})
    assert set(out) == {"service-header", "service-notices", "service-body", "service-charts", "service-tools",
                        "service-alerts", "service-fired", "service-maintenance", *(f"service-{g}" for g in sd.GRAPHS)}
    assert out["service-burn"]["figure"]["data"][0]["name"] == "1h"
    assert "critical" in json.dumps(out["service-header"])


# --- on the real stack ------------------------------------------------------------------------------


@pytest.mark.integration
def test_every_chart_reads_series_of_the_demo_service(healthy_stack):
    """Prometheus with the generated rules and the engine: every chart's query has series of
    "filesystem" over 1h and 24h, within 1,000 points, and the page draws them all."""
    source = EngineSource(healthy_stack.engine_url)
    metrics = Metrics(healthy_stack.prometheus_url, ttl=0.0)
    rows = wait_until(lambda: sd.service_rows(source.slos(), "filesystem"), timeout=120, interval=1,
                      what="the engine's filesystem SLOs")

    def all_with_data(range_: str) -> dict[str, sd.Answer] | None:
        tr = sd.time_range(f"?range={range_}", time.time())
        queries = sd.chart_queries("filesystem", rows, tr)
        answers = {name: metrics.range(expr, tr.start, tr.end) for name, expr in queries.items()}
        return answers if all(sd.has_data(a) for a in answers.values()) else None

    for range_ in ("1h", "24h"):
        # the rules evaluate every minute, and a 24h chart has a point every 2 minutes: wait for
        # the first evaluations to reach the range's points
        found = wait_until(lambda: all_with_data(range_), timeout=240, interval=2,
                           what=f"data in every chart's query over {range_}")
        for name, answer in found.items():
            assert all(len(points) <= MAX_POINTS for _, points in answer), (range_, name)
            assert all(labels.get("service", "filesystem") == "filesystem" for labels, _ in answer), (range_, name)
        rendered = page.render(source, metrics, "/services/filesystem", f"?range={range_}")
        assert rendered.notices == [] and rendered.charts_style == page.CHARTS_STYLE, rendered.notices
        assert all(f["data"] for f in rendered.figures.values()), {g: message(f) for g, f in rendered.figures.items()}
        assert {"read_file", "write_file", "list_directory", "search_files"} <= set(texts(rendered.tools).split('"'))
    source.close()
    metrics.close()

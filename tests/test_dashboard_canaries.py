"""The dashboard's canaries page: its data functions on decisions made by the real judge
(slo.canary.judge), its callback called as a plain function with fake sources, the app
serving it, and the page built against the regression demo's real engine and Prometheus.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace

import httpx
import pytest

from dashboard import canary_data
from dashboard.app import create_app
from dashboard.pages import canaries as page
from dashboard.prometheus import Metrics
from dashboard.source import CachedSource, EngineSource, SourceError, Status, typed
from slo.engine import answers
from slo.query import Sample
from slo.canary.judge import Comparison, Counts, judge
from slo.results import CanaryDecision, Evaluated
from tests.support import wait_until
from tests.test_dashboard_overview import ROUTER, dispatch, texts

AT = 1_800_000_000.0  # 2027-01-15T08:00:00Z
BOUNDS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, math.inf)
FAST = (2000, 9000, 5000, 3500, 400, 80, 15, 5, 0)  # the baseline's requests per bucket: 20,000
SLOW = (50, 500, 600, 650, 150, 40, 8, 2, 0)  # a slower canary: 2,000


def cumulative(per_bucket, factor: float = 1.0) -> tuple:
    total, out = 0.0, []
    for bound, n in zip(BOUNDS, per_bucket):
        total += n * factor
        out.append((bound, total))
    return tuple(out)


def decision(service: str, baseline: Counts, canary: Counts, tools=None, at: float = AT,
             stale: bool = False) -> Evaluated[CanaryDecision]:
    """A decision of the real judge, as the source reads GET /api/v1/canaries's answer."""
    d = judge(Comparison(service=service, baseline="v1", canary="v2", overall=(baseline, canary),
                         tools=tools or {}, latency_threshold=0.5))
    made = CanaryDecision(service=service, baseline="v1", canary="v2", verdict=d.verdict, score=d.score,
                          reason=d.reason, metrics=d.metrics, window="2h", canary_age_seconds=7000.0)
    body = answers.canary_items([Evaluated(made, at)], stale)
    return typed(json.loads(json.dumps(answers.jsonable(body))), CanaryDecision.from_json)[0]


def regressed(service: str = "filesystem", at: float = AT) -> Evaluated[CanaryDecision]:
    """3% errors against 0.1%, and slower: rolled back."""
    tools = {"read_file": (Counts(15_000, 10, cumulative(FAST, 0.75)), Counts(1_500, 40, cumulative(SLOW, 0.75))),
             "write_file": (Counts(5_000, 10, cumulative(FAST, 0.25)), Counts(500, 20, cumulative(SLOW, 0.25)))}
    return decision(service, Counts(20_000, 20, cumulative(FAST)), Counts(2_000, 60, cumulative(SLOW)), tools, at)


def healthy(service: str = "analytics") -> Evaluated[CanaryDecision]:
    """The same error ratio and latency, with enough traffic: promoted."""
    return decision(service, Counts(200_000, 200, cumulative(FAST, 10)), Counts(20_000, 20, cumulative(FAST)))


def young(service: str = "search") -> Evaluated[CanaryDecision]:
    """100 canary requests: too few for a verdict."""
    return decision(service, Counts(20_000, 20, cumulative(FAST)), Counts(100, 0, cumulative(FAST, 1 / 200)))


def logged(d: Evaluated[CanaryDecision], at: float, **changes) -> Evaluated[CanaryDecision]:
    """`d` as the history answers it: at another time, without the evidence."""
    return Evaluated(replace(d.result, metrics=(), **changes), at)


def test_the_fixtures_have_the_verdicts_the_judge_gives_them():
    assert [d.result.verdict for d in (regressed(), healthy(), young())] == ["rollback", "promote", "inconclusive"]


# --- the list and the side by side -----------------------------------------------------------


def test_the_list_puts_rollbacks_first():
    rows = canary_data.canary_rows([healthy(), young(), regressed()])
    assert [(r["service"], r["verdict"]) for r in rows] == [
        ("filesystem", "rollback"), ("search", "inconclusive"), ("analytics", "promote")]
    assert rows[0]["versions"] == "v2 vs v1" and rows[0]["score"] == 0 and rows[0]["age"] == "1h 56m"
    assert rows[2]["score"] == 100 and rows[0]["reason"].endswith("roll back.")


def test_the_side_by_side_shows_each_test_with_its_interval_and_level():
    d = regressed().result
    rows = canary_data.evidence_rows(d)
    assert len(rows) == len(d.metrics) == 9  # errors, latency, slow share; overall and two tools
    assert [(r["test"], r["tool"]) for r in rows[:3]] == [
        ("Error ratio", "all tools"), ("Latency (CLES)", "all tools"), ("Slower than 500 ms", "all tools")]
    errors, latency, slow = rows[:3]
    assert (errors["baseline"], errors["canary"]) == ("0.10% (20 of 20,000)", "3.0% (60 of 2,000)")
    effect = d.metrics[0].effect
    assert effect.value == pytest.approx(30.0) and effect.low < 30.0 < effect.high
    assert errors["effect"] == f"×30.0 [{effect.low:.1f}, {effect.high:.1f}]"
    assert "99% interval" in errors["effect_title"]
    cles = d.metrics[1].effect
    assert latency["effect"] == f"{cles.value:.3f} [{cles.low:.3f}, {cles.high:.3f}]" and cles.value > 0.6
    assert (latency["baseline"], latency["canary"]) == ("20,000 requests", "2,000 requests")
    assert slow["canary"] == "10.0% (200 of 2,000)"  # 650+150+40+8+2 of the canary's requests over 500 ms
    sequential = d.metrics[0].sequential
    assert errors["p_value"] == f"{sequential.p_value:.1e}" and errors["reject_at"] == f"{sequential.reject_at:.1e}"
    assert errors["rejected"] and errors["status_label"] == "worse"
    assert errors["information"] == f"{100 * sequential.planned_information:.0f}%"
    assert rows[3]["tool"] == "read_file" and rows[3]["scope"] == "tool"


def test_too_little_traffic_says_how_much_is_needed():
    d = young().result
    errors = canary_data.evidence_rows(d)[0]
    assert errors["status_label"] == "not enough data" and not errors["rejected"]
    needed = d.metrics[0].required_requests
    assert needed > 100 and f"about {needed:,} canary requests needed" in errors["note"]
    assert float(errors["information"].rstrip("%")) < 100


def test_a_test_without_data_shows_dashes_and_why():
    d = decision("fs", Counts(20_000, 20, cumulative(FAST)), Counts(2_000, 2))  # the canary has no histogram
    latency = canary_data.evidence_rows(d.result)[1]
    assert (latency["baseline"], latency["canary"], latency["effect"]) == ("—", "—", "—")
    assert latency["note"] == "no latency histogram"


@pytest.mark.parametrize("x, text", [(0.02, "2.0%"), (0.001, "0.10%"), (0.00043, "0.043%"), (0.0, "0.0%"),
                                     (None, "—")])
def test_percentages_keep_the_digits_a_small_ratio_needs(x, text):
    assert canary_data.fmt_pct(x) == text


# --- latency distributions ------------------------------------------------------------------


def answer(per_bucket: dict[str, tuple]) -> list[Sample]:
    """Prometheus's answer to the latency query: cumulative counts per version and le."""
    out = []
    for version, counts in per_bucket.items():
        for bound, total in cumulative(counts):
            out.append(Sample({"version": version, "le": "+Inf" if math.isinf(bound) else str(bound)}, total))
    return out


def test_the_latency_query_selects_the_pair_over_the_window_with_the_name_escaped():
    d = replace(regressed().result, service='fs"} or vector(1) #', window="3h")
    expr = canary_data.latency_query(d, "mcp-slo")
    assert expr == ('sum by (version, le) (increase(mcp_operation_duration_seconds_bucket{service="fs\\"} or '
                    'vector(1) #",version=~"v1|v2",method="tools/call"}[3h]))')
    # by default (auto) OpenTelemetry's buckets too, after mcp-slo's
    both = canary_data.latency_query(d)
    assert both.startswith(f"({expr} or ") and "mcp_server_operation_duration_seconds_bucket" in both


def test_bucket_shares_are_each_versions_requests_per_bucket():
    shares = canary_data.bucket_shares(answer({"v1": FAST, "v2": SLOW}), "v1", "v2")
    assert shares["bounds"] == list(BOUNDS)
    assert shares["requests"] == {"baseline": 20_000, "canary": 2_000}
    assert shares["baseline"] == pytest.approx([n / 20_000 for n in FAST])
    assert shares["canary"] == pytest.approx([n / 2_000 for n in SLOW])
    # increase() extrapolates each bucket alone: a cumulative count that dips is no negative share
    dipped = [s if s.labels["le"] != "0.1" else Sample(s.labels, s.value - 20_000) for s in answer({"v1": FAST})]
    base = canary_data.bucket_shares(dipped, "v1", "v2")
    assert min(base["baseline"]) >= 0 and base["canary"] is None and base["requests"]["canary"] == 0
    assert canary_data.bucket_shares([], "v1", "v2") is None


def test_the_latency_figure_is_two_bar_series_labelled_as_estimates():
    d = regressed().result
    shares = canary_data.bucket_shares(answer({"v1": FAST, "v2": SLOW}), "v1", "v2")
    figure = canary_data.latency_figure(shares, d)
    baseline, canary = figure["data"]
    assert (baseline["type"], baseline["name"]) == ("bar", "v1 (baseline, 20,000 requests)")
    assert canary["name"] == "v2 (canary, 2,000 requests)"
    assert baseline["x"][:3] == ["≤ 10 ms", "10 ms – 50 ms", "50 ms – 100 ms"] and baseline["x"][-1] == "> 10 s"
    assert sum(canary["y"]) == pytest.approx(100.0) and canary["y"][3] == pytest.approx(32.5)
    assert "estimates from histogram buckets" in figure["layout"]["title"]["text"]


# --- history ------------------------------------------------------------------------------------


def history() -> list[Evaluated[CanaryDecision]]:
    """Four hours of a canary, every 10 minutes: inconclusive at first, then rolled back; and
    a v3 judged in the last hour."""
    d = regressed()
    out = [logged(d, AT - 4 * 3600 + 600 * i, verdict="inconclusive" if i < 6 else "rollback",
                  score=40 if i < 6 else 0) for i in range(24)]
    out += [logged(d, AT - 3600 + 600 * i, canary="v3", verdict="inconclusive", score=60) for i in range(6)]
    return sorted(out, key=lambda x: x.evaluated_at)


def test_the_score_figure_draws_one_line_per_canary_over_the_range():
    figure = canary_data.score_figure(history(), AT - 6 * 3600, AT)
    v2, v3 = figure["data"]
    assert (v2["name"], v3["name"]) == ("v2 vs v1", "v3 vs v1")
    assert len(v2["x"]) == 24 and v2["x"][0] == "2027-01-15 04:00:00" and v2["y"][:7] == [40] * 6 + [0]
    assert v2["marker"]["color"][5] != v2["marker"]["color"][6]  # coloured by verdict
    assert figure["layout"]["xaxis"]["range"] == ["2027-01-15 02:00:00", "2027-01-15 08:00:00"]
    assert "last" not in figure["layout"]["title"]["text"]


def test_the_score_figure_says_when_the_log_was_cut(monkeypatch):
    monkeypatch.setattr(answers, "HISTORY_LIMIT", 30)  # the log holds 30: as many as the API gives
    assert "the last 30 decisions" in canary_data.score_figure(history(), AT - 6 * 3600, AT)["layout"]["title"]["text"]
    assert "last" not in canary_data.score_figure(history(), AT - 3 * 3600, AT)["layout"]["title"]["text"]


def test_the_decision_log_is_newest_first_a_row_per_run_of_one_verdict():
    log = canary_data.decision_log(history())
    assert [(r["versions"], r["verdict"], r["count"], r["first_at"], r["evaluated_at"], r["scores"]) for r in log] == [
        ("v2 vs v1", "rollback", 18, answers.rfc3339(AT - 3 * 3600), answers.rfc3339(AT - 600), "0"),
        ("v3 vs v1", "inconclusive", 6, answers.rfc3339(AT - 3600), answers.rfc3339(AT - 600), "60"),
        ("v2 vs v1", "inconclusive", 6, answers.rfc3339(AT - 4 * 3600), answers.rfc3339(AT - 3 * 3600 - 600), "40")]
    # the first rollback is a change; v3's first run is no change
    assert [r["changed"] for r in log] == [True, False, False]
    scores = [logged(regressed(), AT - 60 * i, verdict="inconclusive", score=40 + i)
              for i in range(3)][::-1]
    assert canary_data.decision_log(scores)[0]["scores"] == "40–42" and canary_data.decision_log(scores)[0]["score"] == 40


def test_the_score_chart_starts_at_the_canarys_first_traffic_within_the_range():
    d = regressed()  # judged at AT, 7,000 s old
    assert canary_data.chart_start([d], [], AT - 86400) == AT - 7000
    assert canary_data.chart_start([d], [], AT - 3600) == AT - 3600  # older than the range: the range
    older = [logged(d, AT - 20000, canary="v0")]  # a canary before this one, logged in the range
    assert canary_data.chart_start([d], older, AT - 86400) == AT - 20000
    assert canary_data.chart_start([], [], AT - 86400) == AT - 86400


# --- the page, with fake sources ----------------------------------------------------------------


class FakeSource:
    description = "the engine at http://engine.test:8080"

    def __init__(self, canaries=(), log=(), status=None):
        self._canaries, self._log = canaries, log
        self._status = status or Status(answers.rfc3339(AT), 5.0, False, None, None, time.monotonic())
        self.history_asked = []

    def canaries(self):
        return self._canaries if isinstance(self._canaries, SourceError) else list(self._canaries)

    def canary_history(self, service, since=None):
        self.history_asked.append((service, since))
        if isinstance(self._log, SourceError):
            return self._log
        return [d for d in self._log if d.result.service == service and (since is None or d.evaluated_at >= since)]

    def status(self):
        return self._status


class FakeMetrics:
    schema = "auto"

    def __init__(self, samples=None):
        self.samples = samples if samples is not None else answer({"v1": FAST, "v2": SLOW})
        self.queries = []

    def instant(self, expr):
        self.queries.append(expr)
        return self.samples


def graphs(component) -> list[dict]:
    """The figures of every dcc.Graph in a component tree."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "Graph":
                found.append(node["props"]["figure"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(texts(component)))
    return found


def test_without_a_selection_the_page_lists_the_canaries():
    source = FakeSource([regressed(), healthy()])
    shown = texts(page.render(source, FakeMetrics(), None, "24h", "?range=7d", now=AT))
    assert shown.index("filesystem") < shown.index("analytics")  # the rollback first
    assert '"href": "/canaries?range=7d&service=filesystem"' in shown  # links keep the shell's query
    assert "Choose a service" in shown and source.history_asked == []


def test_a_selected_service_shows_its_evidence_latency_score_and_log():
    d = regressed()
    log = history()
    source, metrics = FakeSource([d, healthy()], log), FakeMetrics()
    content = page.render(source, metrics, "filesystem", "6h", now=AT)
    shown = texts(content)
    assert d.result.reason in shown and "3.0% (60 of 2,000)" in shown
    assert f"Judged at {answers.rfc3339(AT)}" in shown
    assert source.history_asked == [("filesystem", AT - 6 * 3600)]  # the shell's range
    assert metrics.queries == [canary_data.latency_query(d.result)]
    latency, score = graphs(content)
    assert [s["name"] for s in latency["data"]] == ["v1 (baseline, 20,000 requests)", "v2 (canary, 2,000 requests)"]
    assert [s["name"] for s in score["data"]] == ["v2 vs v1", "v3 vs v1"]
    assert "Decision log, newest first: 30 decisions in this range" in shown and shown.count("v3 vs v1") == 2
    assert score["layout"]["xaxis"]["range"][0] == canary_data.plot_time(AT - 4 * 3600)  # the log's first


def test_a_long_log_shows_its_newest_fifty_runs():
    d = regressed()
    log = [logged(d, AT - 60 * i, verdict=("rollback", "inconclusive")[i % 2]) for i in range(80)][::-1]
    shown = texts(page.render(FakeSource([d], log), FakeMetrics(), "filesystem", "24h", now=AT))
    assert "80 decisions in this range, a row per run of one verdict (the newest 50 of 80 runs)" in shown
    same = [logged(d, AT - 60 * i) for i in range(80)][::-1]
    shown = texts(page.render(FakeSource([d], same), FakeMetrics(), "filesystem", "24h", now=AT))
    assert "80 decisions in this range, a row per run of one verdict" in shown and "newest 50" not in shown
    assert '"children": "80"' in shown  # one row: 80 decisions


def test_no_canary_explains_how_one_is_found():
    shown = texts(page.render(FakeSource([]), FakeMetrics(), None, now=AT))
    assert "No canary running" in shown and "second version with tools/call traffic" in shown
    first = Status(None, None, True, "no evaluation yet", "query failed: connection refused", time.monotonic())
    shown = texts(page.render(FakeSource([], status=first), FakeMetrics(), None, now=AT))
    assert "No evaluation yet" in shown and "connection refused" in shown


def test_an_unreachable_engine_or_prometheus_is_said_and_the_rest_still_shows():
    down = SourceError("unreachable", "cannot reach the engine at http://engine.test:8080: refused")
    shown = texts(page.render(FakeSource(down), FakeMetrics(), "filesystem", now=AT))
    assert "The engine is unreachable" in shown and "http://engine.test:8080" in shown
    prometheus_down = FakeMetrics(SourceError("unreachable", "Prometheus at http://prom.test:9090 is unreachable"))
    content = page.render(FakeSource([regressed()], history()), prometheus_down, "filesystem", now=AT)
    shown = texts(content)
    assert "The latency distributions are not available: Prometheus at http://prom.test:9090" in shown
    assert "3.0% (60 of 2,000)" in shown and len(graphs(content)) == 1  # the evidence and the score remain
    no_log = SourceError("http", "the engine at http://engine.test:8080 answered with HTTP 500")
    shown = texts(page.render(FakeSource([regressed()], no_log), FakeMetrics(), "filesystem", now=AT))
    assert "The decision log is not available" in shown and "3.0% (60 of 2,000)" in shown


def test_a_service_whose_canary_ended_still_shows_its_log():
    old = [logged(regressed("billing"), AT - 3600)]
    content = page.render(FakeSource([healthy()], old), FakeMetrics(), "billing", now=AT)
    shown = texts(content)
    assert "billing has no canary in the engine's latest evaluation" in shown and len(graphs(content)) == 1
    shown = texts(page.render(FakeSource([healthy()], []), FakeMetrics(), "billing", now=AT))
    assert "No decision about a canary of billing in this time range" in shown


def test_the_app_serves_the_page_for_a_permalink():
    app = create_app(FakeSource([regressed()], history()), metrics=FakeMetrics())
    client = app.server.test_client()
    assert client.get("/canaries?service=filesystem&range=6h").status_code == 200
    routed = dispatch(client, app, ROUTER,
                      {"_pages_location.pathname": "/canaries", "_pages_location.search": "?service=filesystem"},
                      ["_pages_location.pathname"])
    assert '"data": "filesystem"' in json.dumps(routed["_pages_content"]["children"])
    assert page.layout(service=["analytics", "filesystem"]).children[0].data == "filesystem"  # repeated: the last
    out = dispatch(client, app, "canaries-body.children",
                   {"canaries-service.data": "filesystem", "tick.n_intervals": 0, "range.value": "6h",
                    "url.search": "?service=filesystem&range=6h"})
    assert "3.0% (60 of 2,000)" in json.dumps(out)


# --- against the real stack --------------------------------------------------------------------


@pytest.mark.integration
def test_the_page_shows_the_engines_numbers_for_the_regression_demo(regression_stack):
    stack = regression_stack
    data = CachedSource(EngineSource(stack.engine_url), ttl=0)
    metrics = Metrics(stack.prometheus_url, ttl=0)

    def api_decision():
        r = httpx.get(f"{stack.engine_url}/api/v1/canaries/filesystem", timeout=5)
        return r.json()[0] if r.status_code == 200 else None

    wait_until(lambda: (d := api_decision()) and d["verdict"] == "rollback", timeout=120, interval=0.5,
               what="the filesystem canary rolled back")

    def page_and_api():
        # the engine ticks every 5 s: read the page and the API until both saw the same tick
        content = page.render(data, metrics, "filesystem", "1h")
        d = api_decision()
        # the headline's time, not any time: the decision log, read after the decision, can
        # already hold the next tick's
        return (content, d) if d and f"Judged at {d['evaluated_at']}" in texts(content) else None

    content, d = wait_until(page_and_api, timeout=30, interval=0.2, what="the page and the API on one tick")
    shown = texts(content)
    assert d["reason"] in shown
    for m in d["metrics"]:  # every number of the side by side is the engine's
        if m["name"] != "latency":
            for side in ("baseline", "canary"):
                assert (f"{canary_data.fmt_pct(m[side]['ratio'])} ({m[side]['bad']:,.0f} of "
                        f"{m[side]['requests']:,.0f})") in shown
        assert f"{100 * m['sequential']['planned_information']:.0f}%" in shown
        assert canary_data.fmt_p(m["sequential"]["p_value"]) in shown
    cles = next(m for m in d["metrics"] if m["name"] == "latency" and m["tool"] is None)
    assert f"{cles['effect']['value']:.3f} [{cles['effect']['low']:.3f}, {cles['effect']['high']:.3f}]" in shown

    latency, score = graphs(content)
    # Prometheus's buckets over the canary's window count the requests the judge counted a tick ago
    for series, role in zip(latency["data"], ("baseline", "canary")):
        requests = float(series["name"].split(", ")[1].split(" ")[0].replace(",", ""))
        assert requests == pytest.approx(cles[role]["requests"], rel=0.02)
        assert sum(series["y"]) == pytest.approx(100.0)
    log = httpx.get(f"{stack.engine_url}/api/v1/canaries/filesystem/history", timeout=5).json()
    drawn = dict(zip(score["data"][0]["x"], score["data"][0]["y"]))
    judged = answers.parse_time(d["evaluated_at"])  # the page's tick: the log may hold newer ones
    latest = [e for e in log if answers.parse_time(e["evaluated_at"]) <= judged][-10:]
    assert latest
    for entry in latest:  # the API's latest decisions up to the page's are on the chart with their scores
        assert drawn[canary_data.plot_time(answers.parse_time(entry["evaluated_at"]))] == entry["score"]

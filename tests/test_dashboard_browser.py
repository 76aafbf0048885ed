"""The dashboard in headless Chromium (dash[testing], Debian's chromium and chromium-driver)
against the real stack with history: every page loads with no error in the browser's
console and shows, for a known service, the numbers the engine's API gives; the stale
banner appears when the engine stops; pages behind auth are refused without credentials;
on the regression demo's 30 days, every chart of every page covers the range picked (24h, 7d)
and the alerts page lists the incidents that fired in it.

Each page is photographed; with MCP_SLO_SCREENSHOTS=DIR set the pictures go to DIR (the
README's are made with `MCP_SLO_SCREENSHOTS=docs/screenshots`), else to a temp dir."""

from __future__ import annotations

import base64
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from dashboard.app import create_app
from dashboard.audit_data import Trail
from dashboard.auth import AuthConfig, hash_password
from dashboard.canary_data import fmt_pct
from dashboard.formatting import fmt_budget, fmt_objective, fmt_sli
from dashboard.pages.service import EPISODES
from dashboard.service_data import EXEMPLARS, GRAPHS, REFERENCE
from dashboard.source import EngineSource
from demo import scenario as scenarios
from demo.scenario import Incident, Scenario
from slo.engine.answers import parse_time
from slo.engine.api import BackgroundServer
from slo.engine.api import create_app as engine_api
from slo.engine.backend import Backend, BackendOptions
from slo.engine.scheduler import Engine
from slo.engine.store import Store
from tests import binaries
from tests.demo_process import demo, endpoint
from tests.support import wait_until

pytestmark = pytest.mark.integration
pytest.importorskip("dash.testing")


@pytest.fixture
def shots(tmp_path) -> Path:
    where = Path(os.environ.get("MCP_SLO_SCREENSHOTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


def start(dash_duo, app, path: str = "/") -> str:
    from tests.support import free_port

    port = free_port()
    dash_duo.start_server(app, port=port, navigate=False)
    url = f"http://127.0.0.1:{port}"
    dash_duo.driver.get(url + path)
    return url


def console_errors(dash_duo) -> list[dict]:
    """SEVERE entries of the browser's console, beyond favicon misses."""
    return [e for e in dash_duo.get_logs() if "favicon" not in e.get("message", "")]


def stack_app(stack, **kwargs):
    return create_app(EngineSource(stack.engine_url), stack.prometheus_url, alertmanager_url=stack.alertmanager_url,
                      **kwargs)


def api_slo(stack, service: str, slo: str) -> dict:
    items = httpx.get(f"{stack.engine_url}/api/v1/slos/{service}", timeout=5).json()
    return next(s for s in items if s["slo"] == slo and s.get("tool") is None)


def test_overview_shows_the_engines_numbers(dash_duo, healthy_stack, shots):
    start(dash_duo, stack_app(healthy_stack), "/?q=filesystem")
    dash_duo.wait_for_element("table.overview tbody tr", timeout=20)
    expected = api_slo(healthy_stack, "filesystem", "availability")
    rows = [r.text for r in dash_duo.find_elements("table.overview tbody tr")]
    row = next(r for r in rows if "filesystem" in r and "availability" in r)
    for text in (fmt_objective(expected["objective"]), fmt_sli(expected["sli"]),
                 fmt_budget(expected["error_budget_remaining"])):
        assert text in row, (text, row)
    assert "Latest evaluation" in dash_duo.find_element("#banner").text
    assert console_errors(dash_duo) == []
    dash_duo.driver.save_screenshot(str(shots / "overview.png"))


def test_the_stale_banner_appears_when_the_engine_stops(dash_duo, healthy_stack, tmp_path):
    from demo.stack import default_slo_spec
    from slo import importers

    spec = importers.load(default_slo_spec()).spec
    engine = Engine(spec, Backend(BackendOptions(healthy_stack.prometheus_url, timeout=2.0)),
                    Store(tmp_path / "engine.db"), interval=1.0, timeout=1.0)
    server = BackgroundServer(engine_api(engine))
    engine.start()
    try:
        wait_until(lambda: engine.snapshot(), timeout=30, interval=0.2, what="the engine's first tick")
        start(dash_duo, create_app(EngineSource(server.url), healthy_stack.prometheus_url, ttl=0.5), "/?refresh=10s")
        dash_duo.wait_for_contains_text("#banner", "Latest evaluation", timeout=20)
        engine.stop()  # the API stays up and serves the last snapshot, which ages
        dash_duo.wait_for_contains_text("#banner", "Stale data", timeout=30)
        assert console_errors(dash_duo) == []
    finally:
        engine.stop()
        server.stop()


def test_pages_behind_basic_auth_are_refused_without_credentials(dash_duo, healthy_stack, tmp_path):
    users = tmp_path / "users.txt"
    users.write_text(f"sre:{hash_password('on-call')}\n")
    url = start(dash_duo, stack_app(healthy_stack, auth=AuthConfig(users_file=str(users))), "/healthz")
    for path in ("/", "/canaries", "/alerts", "/services/filesystem"):
        assert httpx.get(url + path, timeout=5).status_code == 401, path
    assert httpx.get(url + "/healthz", timeout=5).status_code == 200
    # the browser, with the credentials, gets the page and its data
    token = base64.b64encode(b"sre:on-call").decode()
    dash_duo.driver.execute_cdp_cmd("Network.enable", {})
    dash_duo.driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}})
    dash_duo.driver.get(url + "/?q=analytics")
    dash_duo.wait_for_element("table.overview tbody tr", timeout=20)
    assert "analytics" in dash_duo.find_element("table.overview tbody").text


def test_the_audit_page_is_for_auditors_only(dash_duo, tmp_path, shots):
    from tests.test_dashboard_audit import write_trail
    from tests.test_dashboard_overview import FakeSource

    write_trail(tmp_path / "audit")
    users = tmp_path / "users.txt"
    users.write_text(f"ana:{hash_password('audits', iterations=1000)}:auditor\nsre:{hash_password('on-call')}\n")
    app = create_app(FakeSource(), auth=AuthConfig(users_file=str(users)),
                     audit=Trail((str(tmp_path / "audit" / "mcp*.jsonl"),)))
    url = start(dash_duo, app, "/healthz")
    dash_duo.driver.execute_cdp_cmd("Network.enable", {})

    def sign_in(credentials: bytes) -> None:
        token = base64.b64encode(credentials).decode()
        dash_duo.driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}})

    sign_in(b"ana:audits")
    dash_duo.driver.get(url + "/audit?user=bob")
    dash_duo.wait_for_element("#audit-body table.audit tbody tr", timeout=20)
    assert "Chain intact" in dash_duo.find_element("#audit-verdict").text
    rows = dash_duo.find_elements("#audit-body table.audit tbody tr")
    assert len(rows) == 8 and all("bob" in r.text and "error" in r.text for r in rows)
    assert "Audit" in dash_duo.find_element("header.top nav").text
    assert console_errors(dash_duo) == []
    dash_duo.driver.save_screenshot(str(shots / "audit.png"))
    sign_in(b"sre:on-call")
    dash_duo.driver.get(url + "/audit")
    dash_duo.wait_for_contains_text("#_pages_content", "Not authorised", timeout=20)
    assert "Audit" not in dash_duo.find_element("header.top nav").text
    assert not dash_duo.find_element("#audit-body").is_displayed() and dash_duo.find_element("#audit-body").text == ""
    assert console_errors(dash_duo) == []


def test_service_page_shows_the_engines_numbers_and_its_charts(dash_duo, healthy_stack, shots):
    # the charts read the recording rules, on a range that ends at a whole step (15 s): wait
    # until their first evaluation after the stack started is that old
    binaries.wait_for_promql(healthy_stack.prometheus_url,
                             'mcp_slo:sli_total:rate5m{service="filesystem"} offset 30s', timeout=180)
    start(dash_duo, stack_app(healthy_stack), "/services/filesystem?range=1h")

    def header_and_api():
        # the engine ticks every 5 s: a header drawn from one tick and an API read on the next
        # can differ in the last digit, so reload until the page shows the tick the API serves
        dash_duo.wait_for_contains_text("#service-header", "SLI", timeout=20)
        header = dash_duo.find_element("#service-header").text
        expected = api_slo(healthy_stack, "filesystem", "availability")
        wanted = (f"SLI {fmt_sli(expected['sli'])} of {fmt_objective(expected['objective'])}",
                  f"budget left {fmt_budget(expected['error_budget_remaining'])}")
        if all(text in header for text in wanted):
            return header
        dash_duo.driver.refresh()
        raise AssertionError(f"header {header!r} lacks {wanted}")  # wait_until reports the last one

    wait_until(header_and_api, timeout=60, interval=0.5, what="the header to show the API's numbers")
    # every chart drew data (plotly puts one trace group per series), and the tool table came
    for graph in ("sli", "budget", "burn", "requests", "latency", "heatmap", "active"):
        dash_duo.wait_for_element(f"#service-{graph} .main-svg", timeout=20)
    wait_until(lambda: dash_duo.find_elements("#service-sli .scatterlayer .trace"), timeout=20,
               what="the SLI chart's series")
    dash_duo.wait_for_contains_text("#service-tools", "read_file", timeout=20)
    assert console_errors(dash_duo) == []
    dash_duo.driver.save_screenshot(str(shots / "service.png"))


def test_canaries_page_shows_the_verdict_and_evidence(dash_duo, regression_stack, shots):
    decision = wait_until(lambda: next((d for d in httpx.get(f"{regression_stack.engine_url}/api/v1/canaries",
                                                             timeout=5).json() if d["service"] == "analytics"), None),
                          timeout=60, interval=0.5, what="the analytics canary's decision")
    start(dash_duo, stack_app(regression_stack), "/canaries?service=analytics")
    dash_duo.wait_for_contains_text("#canaries-body", "against", timeout=20)
    body = dash_duo.find_element("#canaries-body").text
    assert "rollback" in body and decision["verdict"] == "rollback"
    assert f"score {decision['score']}" in body
    errors = next(m for m in decision["metrics"] if m["name"] == "errors" and m["tool"] is None)
    assert fmt_pct(errors["canary"]["ratio"]) in body  # the canary's error ratio, as the API gives it
    dash_duo.wait_for_element("#canaries-body .main-svg", timeout=20)  # latency distributions, score over time
    assert console_errors(dash_duo) == []
    dash_duo.driver.save_screenshot(str(shots / "canaries.png"))


def test_alerts_page_lists_what_prometheus_fires(dash_duo, regression_stack, shots):
    binaries.wait_for_promql(regression_stack.prometheus_url, 'ALERTS{alertstate="firing"}', timeout=240)
    firing = httpx.get(f"{regression_stack.prometheus_url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    names = {a["labels"]["alertname"] for a in firing if a["state"] == "firing"}
    start(dash_duo, stack_app(regression_stack), "/alerts")
    dash_duo.wait_for_element("#alerts-body table tbody tr", timeout=20)
    body = dash_duo.find_element("#alerts-body").text
    for name in names:
        assert name in body, (name, body)
    assert console_errors(dash_duo) == []
    dash_duo.driver.save_screenshot(str(shots / "alerts.png"))


# --- every chart covers the range picked -----------------------------------------------------------

SPANS = {"24h": 86400.0, "7d": 7 * 86400.0}
COVERED = 0.9  # of the range, at least, between a series' first and last data points


@dataclass(frozen=True)
class Site:
    """A dashboard over a demo with history: where it is, and what the demo played."""
    url: str  # the dashboard
    engine_url: str
    prometheus_url: str
    scenario: Scenario
    began: float  # the demo's start, where its history ends (Unix seconds)


@pytest.fixture(scope="module")
def demo_defaults(tmp_path_factory) -> Iterator[Site]:
    """`mcp-slo demo` as a user starts it, at its defaults (the healthy scenario, 30 days of
    history, 5 s scrapes, the engine every 10 s, the dashboard it serves) but on free ports."""
    for binary in ("prometheus", "promtool", "prometheus-alertmanager"):
        binaries.require(binary)
    began = time.time()  # its history ends a moment later
    with demo(tmp_path_factory.mktemp("demo-defaults") / "demo") as lines:
        yield Site(endpoint(lines, "dashboard"), endpoint(lines, "engine"), endpoint(lines, "prometheus"),
                   scenarios.load("healthy"), began)


@pytest.fixture(params=["regression", "defaults"])
def site(request, dash_duo) -> Site:
    """The regression demo stack's history under a dashboard of this process, and the demo at
    its defaults under the dashboard it serves."""
    if request.param == "defaults":
        return request.getfixturevalue("demo_defaults")
    stack = request.getfixturevalue("regression_stack")
    url = start(dash_duo, stack_app(stack), "/healthz")
    return Site(url, stack.engine_url, stack.prometheus_url, stack.scenario, float(stack.history.timestamps[-1]))


# For every plotly graph on the page: its x axis's type and range, and for each series (trace)
# its name, its `meta` (dashboard.service_data's REFERENCE lines, objectives and thresholds, and
# EXEMPLARS markers, single requests, are not series over time), and the first and last x of
# its data (a point with no y is no data; a heatmap's columns are), in milliseconds.
CHARTS = """
return Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => {
  const ax = gd._fullLayout.xaxis;
  const traces = gd.data.map(t => {
    let first = null, last = null;
    (t.x || []).forEach((x, i) => {
      if (x === null || x === undefined || (t.type !== 'heatmap' && (t.y || [])[i] === null)) return;
      const at = ax.d2l(x);
      first = first === null ? at : Math.min(first, at);
      last = last === null ? at : Math.max(last, at);
    });
    return {name: t.name || t.type, meta: t.meta || null, first: first, last: last, points: (t.x || []).length};
  });
  return {id: (gd.closest('[id]') || {}).id || '', type: ax.type, axis: ax.range.map(ax.r2l), traces: traces};
});"""


def charts(dash_duo) -> list[dict]:
    return dash_duo.driver.execute_script(CHARTS)


def drawn(dash_duo, span: float, count: int, what: str, own_axis: tuple[str, ...] = ()) -> list[dict]:
    """The page's charts once `count` time charts are drawn over `span` seconds (a page draws
    again when the shell's range arrives from the URL); `own_axis`: the ids of charts whose axis
    is not the range (the canary's score over its life)."""
    def ready():
        found = charts(dash_duo)
        timed = [c for c in found if c["type"] == "date"]
        wrong = [c["id"] for c in timed if c["id"] not in own_axis
                 and abs((c["axis"][1] - c["axis"][0]) / 1000 - span) > 0.01 * span]
        assert len(timed) >= count and not wrong, f"{len(timed)} of {count} time charts, {wrong} on another range"
        return (found,)  # truthy when there is no chart

    return wait_until(ready, timeout=60, interval=0.5, what=f"the charts of {what}")[0]


def assert_covered(chart: dict, wanted: float, where: str, life: Callable[[str], float] = lambda _name: math.inf):
    """Every series of `chart` (not its reference lines or exemplars) has data over COVERED of `wanted`
    seconds, or of its `life` when shorter (a canary's version is younger than the range: its
    first point is at the chart's first step after its birth)."""
    series = [t for t in chart["traces"] if t["meta"] not in (REFERENCE, EXEMPLARS)]
    assert series, f"{where}: chart {chart['id'] or '?'} has no series"
    step = wanted / max(max(t["points"] for t in series) - 1, 1)
    for t in series:
        covered = (t["last"] - t["first"]) / 1000 if t["first"] is not None else 0.0
        due = min(wanted, life(t["name"]) - step)
        assert covered >= COVERED * due, (f"{where}: series {t['name']!r} of chart {chart['id'] or '?'} has data "
                                          f"over {covered / 3600:.1f}h of {due / 3600:.1f}h")


def canary_life(site: Site) -> Callable[[str], float]:
    """The seconds a series has lived: the canary's version since the canary began (the
    scenario's canary age before the demo's start), any other the whole history."""
    return lambda name: time.time() - (site.began - site.scenario.canary_age) if name == site.scenario.canary \
        else math.inf


def shoot(dash_duo, shots: Path, name: str) -> None:
    """A picture of the whole page, however long."""
    height = dash_duo.driver.execute_script("return document.body.scrollHeight")
    dash_duo.driver.set_window_size(1600, min(height + 100, 8000))
    dash_duo.driver.save_screenshot(str(shots / f"{name}.png"))
    dash_duo.driver.set_window_size(1600, 1000)


def table_rows(dash_duo, selector: str) -> list[list[str]]:
    return dash_duo.driver.execute_script(
        f"return Array.from(document.querySelectorAll('{selector} tbody tr'))"
        ".map(r => Array.from(r.cells).map(c => c.textContent))")


def past_incidents(site: Site, span: float, service: str | None = None) -> list[Incident]:
    """The scenario's incidents in the history that overlap the last `span` seconds."""
    return [i for i in site.scenario.incidents if i.start < 0 and i.start + i.duration > -span
            and service in (None, i.service)]


def assert_listed(incidents: list[Incident], starts: list[tuple[str, float]], site: Site, where: str) -> None:
    """Each incident is an episode of its service starting while it lasted (the slow tiers
    alert hours late): `starts`, (service, start) of each episode listed."""
    for incident in incidents:
        began = site.began + incident.start
        assert any(service == incident.service and began - 60 <= at <= began + incident.duration + 6 * 3600
                   for service, at in starts), (where, incident.name, starts)


@pytest.mark.parametrize("service", ["filesystem", "analytics"])
def test_every_chart_of_the_service_page_covers_the_range(dash_duo, site, shots, service):
    for range_, span in SPANS.items():
        dash_duo.driver.get(f"{site.url}/services/{service}?range={range_}")
        found = drawn(dash_duo, span, len(GRAPHS), f"{service}'s page over {range_}")
        assert sorted(c["id"] for c in found) == sorted(f"service-{g}" for g in GRAPHS)
        for chart in found:
            assert_covered(chart, span, f"{service} over {range_}", canary_life(site))
        # the service's past incidents, listed under the charts (the newest EPISODES of them)
        dash_duo.wait_for_contains_text("#service-fired", f"fired in the last {range_}", timeout=20)
        rows = table_rows(dash_duo, "#service-fired table.fired")
        starts = [(service, parse_started(r[4])) for r in rows]
        incidents = past_incidents(site, span, service)
        if len(rows) == EPISODES:  # the list may stop before the oldest
            incidents = [i for i in incidents if site.began + i.start + i.duration >= min(at for _, at in starts)]
        assert_listed(incidents, starts, site, f"{service}'s page over {range_}")
        assert console_errors(dash_duo) == []
        shoot(dash_duo, shots, f"range-service-{service}-{range_}-{site.scenario.name}")


def test_the_overview_draws_no_chart_to_cover(dash_duo, site, shots):
    """The overview is the engine's latest evaluation, a table: whatever charts it ever draws
    must cover the range too."""
    for range_, span in SPANS.items():
        dash_duo.driver.get(f"{site.url}/?range={range_}")
        dash_duo.wait_for_element("table.overview tbody tr", timeout=20)
        for chart in drawn(dash_duo, span, 0, f"the overview over {range_}"):
            assert_covered(chart, span, f"the overview over {range_}")
        assert console_errors(dash_duo) == []
        shoot(dash_duo, shots, f"range-overview-{range_}-{site.scenario.name}")


def test_the_canary_score_covers_the_canarys_life_within_the_range(dash_duo, site, shots):
    for range_, span in SPANS.items():
        dash_duo.driver.get(f"{site.url}/canaries?service=analytics&range={range_}")
        dash_duo.wait_for_contains_text("#canaries-body", "Decision log", timeout=30)
        decisions = httpx.get(f"{site.engine_url}/api/v1/canaries/analytics", timeout=5).json()
        found = drawn(dash_duo, span, 1, f"analytics' canaries over {range_}", own_axis=("canaries-score",))
        # the latency distributions (one per canary, over its window) are the only charts not over time
        assert sorted(c["type"] for c in found) == ["category"] * len(decisions) + ["date"]
        born = min(parse_time(d["evaluated_at"]) - d["canary_age_seconds"] for d in decisions)
        life = min(span, time.time() - born)  # a canary younger than the range: its whole life
        score = next(c for c in found if c["id"] == "canaries-score")
        assert_covered(score, life, f"analytics' canary score over {range_}")
        # the decision log goes back as far: its oldest run began with the canary's first decision
        since = [parse_time(t) for t in dash_duo.driver.execute_script(
            "return Array.from(document.querySelectorAll('#canaries-body table.log tbody tr'))"
            ".map(r => r.cells[1].textContent || r.cells[0].textContent)")]
        assert min(since) - max(born, time.time() - span) <= (1 - COVERED) * life, since
        assert console_errors(dash_duo) == []
        shoot(dash_duo, shots, f"range-canaries-{range_}-{site.scenario.name}")


def test_the_alerts_page_lists_the_incidents_of_the_range(dash_duo, site, shots):
    for range_, span in SPANS.items():
        # what Prometheus holds: every alert that fired in the range (but its first minutes,
        # which leave the range while the page loads)
        query = f'count_over_time(ALERTS{{alertstate="firing"}}[{int(span) - 600}s])'
        fired = httpx.get(f"{site.prometheus_url}/api/v1/query", params={"query": query},
                          timeout=10).json()["data"]["result"]
        dash_duo.driver.get(f"{site.url}/alerts?range={range_}")
        dash_duo.wait_for_contains_text("#alerts-body", f"Fired in the last {range_}", timeout=30)
        incidents = past_incidents(site, span)
        if not fired:  # nothing to draw: the page says so (the healthy demo's last day)
            assert not incidents, (range_, [i.name for i in incidents])
            dash_duo.wait_for_contains_text("#alerts-body", f"No alert fired in the last {range_}", timeout=30)
            assert drawn(dash_duo, span, 0, f"the alerts over {range_}") == []
            continue
        # the timeline's axis is the range; its bars are the episodes, listed below it
        found = drawn(dash_duo, span, 1, f"the alerts over {range_}")
        assert [c["id"] for c in found] == ["alerts-timeline"]
        rows = table_rows(dash_duo, "#alerts-body table.episodes")
        shown = {(r[1], r[2], r[4]) for r in rows}  # alert, service, tier / window
        for series in fired:
            labels = series["metric"]
            tier = " / ".join(v for v in (labels.get("tier"), labels.get("window")) if v)
            assert (labels["alertname"], labels["service"], tier) in shown, (labels, rows)
        assert incidents, f"no incident of the scenario's history in the last {range_}"
        assert_listed(incidents, [(r[2], parse_started(r[5])) for r in rows], site, f"the alerts over {range_}")
        assert console_errors(dash_duo) == []
        shoot(dash_duo, shots, f"range-alerts-{range_}-{site.scenario.name}")


def parse_started(text: str) -> float:
    """The page's "2026-12-04 02:00" or "before 2026-11-30 01:15" (UTC) in Unix seconds."""
    return datetime.strptime(text.removeprefix("before "), "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp()

"""The dashboard in headless Chromium (dash[testing], Debian's chromium and chromium-driver)
against the real stack with history: every page loads with no error in the browser's
console and shows, for a known service, the numbers the engine's API gives; the stale
banner appears when the engine stops; pages behind auth are refused without credentials.

Each page is photographed; with MCP_SLO_SCREENSHOTS=DIR set the pictures go to DIR (the
README's are made with `MCP_SLO_SCREENSHOTS=docs/screenshots`), else to a temp dir."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import httpx
import pytest

from dashboard.app import create_app
from dashboard.auth import AuthConfig, hash_password
from dashboard.canary_data import fmt_pct
from dashboard.formatting import fmt_budget, fmt_objective, fmt_sli
from dashboard.source import EngineSource
from slo.engine.api import BackgroundServer
from slo.engine.api import create_app as engine_api
from slo.engine.backend import Backend, BackendOptions
from slo.engine.scheduler import Engine
from slo.engine.store import Store
from tests import binaries
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

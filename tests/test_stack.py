"""The local stack in a real Prometheus: history of the documented shape, live
samples arriving, and the regression scenario's canary measurably worse."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

from demo import history
from tests import binaries

pytestmark = pytest.mark.integration


def by(result, label="service"):
    return {r["metric"][label]: float(r["value"][1]) for r in result}


def expected_error_ratio(stack, service: str, version: str) -> float:
    """The scenario's error ratio over the history, weighted by the traffic profile."""
    scenario = stack.scenario
    ts = stack.history.timestamps
    end = ts[-1]
    weight = history.traffic_profile(ts)
    errors = calls = 0.0
    behaviour = scenario.versions[service][version]
    for tool, share in scenario.tools[service].items():
        ratio = np.full(len(ts), behaviour.for_tool(tool).error_ratio)
        for inc in scenario.incidents_for(service, version):
            if inc.error_ratio is not None:
                ratio[(ts >= end + inc.start) & (ts < end + inc.start + inc.duration)] = inc.error_ratio
        errors += float(np.sum(weight * share * ratio))
        calls += float(np.sum(weight * share))
    return errors / calls


def test_thirty_days_of_history_with_the_scenario_error_ratio(regression_stack):
    url = regression_stack.prometheus_url
    oldest = binaries.query(url, 'min by (service) (timestamp(mcp_operations_total{version="v1"} offset 29d))')
    assert set(by(oldest)) == {"filesystem", "analytics"}
    # the counters as the history left them (the scenario's live incidents come after)
    ratio = by(httpx.get(f"{url}/api/v1/query", params={
        "query": 'sum by (service) (mcp_operations_total{version="v1",status="error"})'
                 ' / sum by (service) (mcp_operations_total{version="v1"})',
        "time": regression_stack.history.timestamps[-1]}, timeout=10).json()["data"]["result"])
    for service in ("filesystem", "analytics"):
        assert ratio[service] == pytest.approx(expected_error_ratio(regression_stack, service, "v1"), rel=0.005)


def test_the_canary_history_starts_two_hours_ago(regression_stack):
    url = regression_stack.prometheus_url
    # minutes before the history's end (the stack may have served other tests for a while since)
    since_end = int(time.time() - regression_stack.history.timestamps[-1])
    assert binaries.query(url, f'mcp_operations_total{{version="v2"}} offset {150 * 60 + since_end}s') == []
    assert binaries.query(url, f'mcp_operations_total{{version="v2"}} offset {100 * 60 + since_end}s') != []


def test_live_samples_keep_arriving_without_resets(regression_stack):
    url = regression_stack.prometheus_url
    # backfilled and scraped samples are one series per label set, not two
    per_labelset = binaries.query(url, "count by (service, version, method, tool, status) (mcp_operations_total)")
    assert per_labelset and {float(r["value"][1]) for r in per_labelset} == {1.0}
    scraped = binaries.query(url, 'mcp_operations_total{tool="read_file",version="v1",status="success"} offset 1d')
    assert scraped[0]["metric"]["job"] == "mcp" and scraped[0]["metric"]["instance"].startswith("127.0.0.1:")
    first = by(binaries.query(url, 'sum by (service) (mcp_operations_total{method="tools/call"})'))
    binaries.wait_for_promql(
        url, 'sum by (service) (mcp_operations_total{method="tools/call"})',
        lambda r: all(v > first[s] for s, v in by(r).items()), timeout=20,
    )
    assert by(binaries.query(url, "sum by (service) (resets(mcp_operations_total[3h]))")) == {
        "filesystem": 0, "analytics": 0}


def test_regression_canary_is_measurably_worse(regression_stack):
    """Over the 90 minutes before the demo began: its live outage and the analytics slow
    burn hit both versions alike."""
    url, began = regression_stack.prometheus_url, regression_stack.history.timestamps[-1]

    def at_start(expr):
        r = httpx.get(f"{url}/api/v1/query", params={"query": expr, "time": began}, timeout=10)
        return by(r.json()["data"]["result"], "version")

    errors = at_start('sum by (version) (increase(mcp_operations_total{service="filesystem",status="error"}[90m]))'
                      ' / sum by (version) (increase(mcp_operations_total{service="filesystem"}[90m]))')
    assert errors["v2"] > 5 * errors["v1"]
    p50 = at_start("histogram_quantile(0.5, sum by (version, le) (rate(mcp_operation_duration_seconds_bucket[90m])))")
    assert p50["v2"] > 2 * p50["v1"]


def test_healthy_canary_is_not_worse(healthy_stack):
    url = healthy_stack.prometheus_url
    errors = by(binaries.query(
        url, 'sum by (version) (increase(mcp_operations_total{status="error"}[90m]))'
        ' / sum by (version) (increase(mcp_operations_total[90m]))'), "version")
    assert errors["v2"] < 2 * errors["v1"]
    p50 = by(binaries.query(
        url, "histogram_quantile(0.5, sum by (version, le) (rate(mcp_operation_duration_seconds_bucket[90m])))"),
        "version")
    assert p50["v2"] == pytest.approx(p50["v1"], rel=0.25)


def test_alertmanager_is_up_with_the_generated_config(regression_stack):
    import yaml

    r = httpx.get(f"{regression_stack.alertmanager_url}/api/v2/status", timeout=5)
    assert r.status_code == 200
    # Alertmanager reports its configuration re-marshalled, with defaults filled in.
    running = yaml.safe_load(r.json()["config"]["original"])
    assert [r["name"] for r in running["receivers"]] == ["default", "page", "ticket", "release"]
    assert running["inhibit_rules"][0]["equal"] == ["service", "slo"]

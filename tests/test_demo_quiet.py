"""The demo's `quiet` scenario tells its story, on a real stack (Prometheus with the
generated rules and the history they would have recorded, Alertmanager, the engine).

filesystem gets one call a minute at 99.9% availability. In the history: a stray error
(no alert: the significance guard), then an outage that paged within 10 minutes. Live: a
planned `exclude` maintenance window (from the scenario, added to the spec the demo serves)
holds an outage: the rules see the window, nothing alerts although the raw counters burn
above the page tier, and the engine's budget does not take the failed calls it counts as
left out.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from demo.scenario import load
from demo.stack import Stack
from tests import binaries
from tests.conftest import running_stack
from tests.support import wait_until

pytestmark = pytest.mark.integration

QUIET = "filesystem"
SCENARIO = load("quiet")
INCIDENTS = {i.name: i for i in SCENARIO.incidents}


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    yield from running_stack(tmp_path_factory, "quiet", 30)


def query_range(stack: Stack, expr: str, start: float, end: float, step: float = 60) -> list[dict]:
    r = httpx.get(f"{stack.prometheus_url}/api/v1/query_range",
                  params={"query": expr, "start": start, "end": end, "step": step}, timeout=30)
    r.raise_for_status()
    return r.json()["data"]["result"]


def value(stack: Stack, expr: str) -> float:
    found = binaries.query(stack.prometheus_url, expr)
    return float(found[0]["value"][1]) if found else 0.0


def availability(stack: Stack) -> dict | None:
    answer = httpx.get(f"{stack.engine_url}/api/v1/slos/{QUIET}", timeout=5)
    if answer.status_code != 200:
        return None
    return next((r for r in answer.json() if r["slo"] == "availability" and not r.get("tool")), None)


def test_the_quiet_service_gets_a_call_a_minute(stack):
    end = float(stack.history.timestamps[-1])
    calls = value(stack, f'sum(increase(mcp_operations_total{{service="{QUIET}"}}[1h] @ {end}))')
    assert 55 <= calls <= 65  # one a minute, day and night


def test_a_stray_error_in_a_quiet_hour_never_alerts_and_an_outage_pages_within_10_minutes(stack):
    end = float(stack.history.timestamps[-1])
    stray, outage = INCIDENTS["stray error"], INCIDENTS["filesystem outage"]
    stray_at, outage_at = end + stray.start, end + outage.start
    errors = value(stack, f'sum(increase(mcp_operations_total{{service="{QUIET}",status="error"}}[5m] '
                          f'@ {stray_at + 180}))')
    assert errors >= 1  # the stray error is there, in a quiet hour
    burn_1h = value(stack, f'sum(rate(mcp_operations_total{{service="{QUIET}",status="error"}}[1h] @ {stray_at + 300}))'
                           f' / sum(rate(mcp_operations_total{{service="{QUIET}"}}[1h] @ {stray_at + 300})) / 0.001')
    assert burn_1h > 14.4  # above the page tier's burn rate: only the guard holds it back
    alerts = f'ALERTS{{service="{QUIET}",alertname="MCPSLOErrorBudgetBurn"}}'
    assert query_range(stack, alerts, stray_at - 600, stray_at + 3600) == []

    pages = query_range(stack, f'{alerts.removesuffix("}")},severity="page",alertstate="firing"}}',
                        outage_at, outage_at + outage.duration + 600)
    assert pages, "the history's outage did not page"
    first = min(float(t) for series in pages for t, _ in series["values"])
    assert first - outage_at <= 600, f"paged {first - outage_at:.0f}s after the outage began"


@pytest.mark.timeout(480)
def test_a_planned_exclude_window_holds_an_outage_without_a_page_or_a_budget_change(stack):
    listed = httpx.get(f"{stack.engine_url}/api/v1/maintenance", timeout=5).json()
    (window,) = [w for w in listed["planned"] if w["reason"] == SCENARIO.maintenance[0].reason]
    assert window["mode"] == "exclude" and window["services"] == [QUIET]
    binaries.wait_for_promql(stack.prometheus_url, f'mcp_slo_maintenance{{service="{QUIET}",mode="exclude"}} == 1',
                             timeout=60)  # what the rules see
    wait_until(lambda: availability(stack), timeout=60, interval=0.5, what="the engine's first numbers")
    before = availability(stack)["error_budget_remaining"]

    # The outage inside the window: three failed calls (one a minute) burn far above the page tier.
    errors = f'sum(increase(mcp_operations_total{{service="{QUIET}",status="error"}}[15m]))'
    wait_until(lambda: value(stack, errors) >= 3, timeout=330, interval=2, what="three failed calls in the window")
    raw_burn = value(stack, f'sum(rate(mcp_operations_total{{service="{QUIET}",status="error"}}[1h])) / '
                            f'sum(rate(mcp_operations_total{{service="{QUIET}"}}[1h])) / 0.001')
    assert raw_burn > 14.4
    def left_out() -> dict | None:
        row = availability(stack)
        return row if row and row["excluded_bad_events"] >= 3 else None

    row = wait_until(left_out, timeout=60, interval=1, what="the engine leaving the failed calls out")
    # Counted, the failed calls would take their share of the 30 days' calls off the budget; left
    # out, it moves only as the 30 days slide past the history's first minutes.
    calls = value(stack, f'sum(increase(mcp_operations_total{{service="{QUIET}"}}[30d]))')
    counted = row["excluded_bad_events"] / calls / 0.001
    assert counted > 0.05
    assert row["error_budget_remaining"] == pytest.approx(before, abs=counted / 10)
    # Live, nothing alerted (the samples written after the history: its last ALERTS samples, the
    # past outage's tickets, are in the lookback for 5 minutes), and Alertmanager got nothing.
    end = float(stack.history.timestamps[-1])
    alerts = f'ALERTS{{service="{QUIET}"}}'
    assert query_range(stack, f"{alerts} and timestamp({alerts}) > {end}", end, end + 3600, step=5) == []
    assert query_range(stack, f"{alerts} and timestamp({alerts}) <= {end}", end, end + 3600, step=5)  # it finds the history's
    alerts = httpx.get(f"{stack.alertmanager_url}/api/v2/alerts", timeout=5).json()
    assert [a for a in alerts if a["labels"].get("service") == QUIET] == []

"""The demo's scenarios tell the stories they are named for (demo/scenarios/*.yaml), checked
through the engine's API, Prometheus and Alertmanager of the running demo stacks:
- healthy: every SLO ok with budget left, the past incidents in the 30-day history, no alert
  firing now (the canary's promotion: tests/test_canary_e2e.py);
- regression: every status shows somewhere (ok, warning, critical, exhausted), the ongoing
  slow burn's ticket reaches Alertmanager, and the live outage pages within minutes and then
  resolves (the canaries' rollback: tests/test_canary_e2e.py)."""

from __future__ import annotations

import time

import httpx
import pytest

from slo.engine.answers import parse_time
from tests import binaries
from tests.support import wait_until

pytestmark = pytest.mark.integration

BURN = 'alertname="MCPSLOErrorBudgetBurn"'


def slos(stack) -> list[dict]:
    def answer():
        r = httpx.get(f"{stack.engine_url}/api/v1/slos", timeout=5)
        return r.json() if r.status_code == 200 else None

    return wait_until(answer, timeout=60, what="the engine's SLOs")


def rules_evaluated(stack) -> None:
    """Wait until the live rules have written (the alert rules run in the same minute)."""
    binaries.wait_for_promql(stack.prometheus_url, 'mcp_slo:error_ratio:rate5m{service="filesystem"} '
                                                   'and on () (time() - timestamp(mcp_slo:error_ratio:rate5m'
                                                   '{service="filesystem"}) < 30)', timeout=120)


def test_healthy_every_slo_is_met_with_budget_left_and_nothing_fires(healthy_stack):
    results = slos(healthy_stack)
    assert len(results) == 5
    for r in results:
        assert r["status"] == "ok", r
        # the everyday errors and the past incidents used some of it, not all
        assert 0.4 < r["error_budget_remaining"] < 0.95, r  # 0.48 at worst, simulated over a week
    rules_evaluated(healthy_stack)
    url = healthy_stack.prometheus_url
    # no alert pending or firing now, nor at any evaluation since the demo began, and
    # Alertmanager was sent nothing (the stack's webhooks: nothing to send either)
    assert binaries.query(url, "ALERTS") == []
    live = int(time.time() - healthy_stack.history.timestamps[-1]) - 1  # the history's end is the demo's start
    assert binaries.query(url, f"count_over_time(ALERTS[{live}s])") == []
    assert httpx.get(f"{healthy_stack.alertmanager_url}/api/v2/alerts", timeout=5).json() == []
    assert healthy_stack.webhooks.alerts == []
    past = binaries.query(url, f'max by (service) (max_over_time(ALERTS{{{BURN},alertstate="firing"}}[30d]))')
    assert {r["metric"]["service"] for r in past} == {"filesystem", "analytics"}  # the history's incidents


def test_regression_shows_every_status_and_files_the_slow_burns_ticket(regression_stack):
    by = {(r["service"], r["tool"], r["slo"]): r["status"] for r in slos(regression_stack)}
    # the slow burn, 2.5% errors: 5.2x the budget's rate, between the ticket tiers (3x) and the slow page (6x)
    assert by[("analytics", None, "availability")] == "warning"
    assert by[("analytics", None, "latency")] == "exhausted"  # 30 hours of slow queries, 9 days ago
    assert by[("filesystem", None, "latency")] == "ok"
    assert by[("filesystem", "write_file", "availability")] == "ok"

    def ticket():
        alerts = httpx.get(f"{regression_stack.alertmanager_url}/api/v2/alerts", timeout=5).json()
        return [a for a in alerts if a["labels"].get("service") == "analytics" and a["labels"].get("severity") == "ticket"
                and a["labels"]["alertname"] == "MCPSLOErrorBudgetBurn" and a["status"]["state"] == "active"
                and [r["name"] for r in a["receivers"]] == ["ticket"]] or None

    # the burn began 20h before the demo: Prometheus restores the alert's `for` from the
    # backfilled ALERTS_FOR_STATE and fires it within minutes, not after its 1h
    wait_until(ticket, timeout=300, interval=2, what="the slow burn's ticket in Alertmanager")


@pytest.mark.late
@pytest.mark.timeout(1500)  # run alone, it waits for the outage to play out
def test_regression_live_outage_pages_within_minutes_then_resolves(regression_stack):
    """The outage (both versions, 35% errors) begins 2 min after the demo starts and lasts 4:
    enough for the fast page tier (2.3% over the last hour), not for the slow one (0.5% over 6h)."""
    url, began = regression_stack.prometheus_url, regression_stack.history.timestamps[-1]
    page = f'ALERTS{{{BURN},alertstate="firing",service="filesystem",slo="availability",tier="page-fast"}}'

    def episode():
        now = time.time()
        r = httpx.get(f"{url}/api/v1/query_range", params={"query": page, "start": began, "end": now, "step": 15},
                      timeout=10).json()["data"]["result"]
        if not r:
            return None
        seen = [float(t) for t, _ in r[0]["values"]]
        return (seen[0], seen[-1]) if now - seen[-1] > 60 else None  # and resolved a minute ago

    fired, resolved = wait_until(episode, timeout=max(60.0, began + 20 * 60 - time.time()), interval=5,
                                 what="the live outage's page, fired and resolved")
    assert fired - began < 8 * 60 and resolved - fired < 12 * 60, (fired - began, resolved - fired)

    # Alertmanager sent it to the page receiver, then its resolution (at the route's next group
    # interval, 5 minutes); the on-call got nothing else about filesystem
    hooks, labels = regression_stack.webhooks, {"alertname": "MCPSLOErrorBudgetBurn", "service": "filesystem"}

    def resolved_page():
        sent = hooks.received("/page", **labels)
        return sent if any(a["status"] == "resolved" for a in sent) else None

    sent = wait_until(resolved_page, timeout=max(60.0, resolved + 12 * 60 - time.time()), interval=5,
                      what="the page and its resolution from Alertmanager")
    assert {a["labels"]["slo"] for a in sent} == {"availability"}
    assert sent[0]["status"] == "firing" and sent[-1]["status"] == "resolved", [a["status"] for a in sent]
    assert abs(parse_time(sent[0]["startsAt"]) - fired) < 90, (sent[0]["startsAt"], fired)
    history = regression_stack.engine.store.slo_history("filesystem", "availability")
    assert "critical" in {h.result.status for h in history}  # the engine said so while it paged

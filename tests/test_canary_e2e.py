"""Canaries end to end on the demo stacks (the engine in process, Prometheus with the
generated rules, Alertmanager with the generated routes): the regression scenario's
v2 is rolled back, the gate says so, Prometheus raises MCPCanaryRegression from the
engine's metric and Alertmanager routes it to the release receiver; the healthy
scenario's v2 is promoted."""

from __future__ import annotations

import httpx
import pytest

from tests import binaries
from tests.support import wait_until

pytestmark = pytest.mark.integration


def decisions(stack) -> dict[str, dict]:
    r = httpx.get(f"{stack.engine_url}/api/v1/canaries", timeout=5)
    return {d["service"]: d for d in r.json()} if r.status_code == 200 else {}


def test_the_regression_canaries_are_rolled_back_and_the_release_managers_told(regression_stack):
    found = wait_until(lambda: (lambda d: d if len(d) == 2 else None)(decisions(regression_stack)), timeout=60,
                       interval=0.5, what="a decision for both canaries")
    for service, d in found.items():
        assert (d["baseline"], d["canary"], d["verdict"]) == ("v1", "v2", "rollback"), d
        assert d["score"] < 50 and d["reason"] and d["metrics"], d
    gate = httpx.get(f"{regression_stack.engine_url}/api/v1/gate/analytics", timeout=5)
    assert gate.status_code == 409 and gate.json()["verdict"] == "rollback"

    binaries.wait_for_promql(regression_stack.prometheus_url,
                             'ALERTS{alertname="MCPCanaryRegression",alertstate="firing",service="analytics"}',
                             timeout=240)

    def routed_to_release():
        alerts = httpx.get(f"{regression_stack.alertmanager_url}/api/v2/alerts", timeout=5).json()
        return [a for a in alerts if a["labels"].get("alertname") == "MCPCanaryRegression"
                and [r["name"] for r in a["receivers"]] == ["release"]] or None

    wait_until(routed_to_release, timeout=60, interval=0.5, what="the canary alert routed to the release receiver")


def test_the_healthy_canaries_are_promoted_on_the_first_tick(healthy_stack):
    """The healthy scenario's canaries have served 12 h at the demo's diurnal traffic (the
    history): enough for the judge to promote both whatever the hour, the filesystem's at a
    0.13% error ratio too (3 h were not enough on a Sunday night)."""
    found = wait_until(lambda: (lambda d: d if len(d) == 2 else None)(decisions(healthy_stack)), timeout=60,
                       interval=0.5, what="a decision for both canaries")
    for service, d in found.items():
        assert d["verdict"] == "promote", d
        first = healthy_stack.engine.store.canary_history(service)[0].result  # the engine's first tick
        assert first.verdict == "promote" and first.canary_age_seconds <= 12 * 3600 + 120, first
        errors = next(m for m in d["metrics"] if m["name"] == "errors" and m["tool"] is None)
        assert errors["sequential"]["planned_information"] >= 1 and errors["rejected_by"] is None
    gate = httpx.get(f"{healthy_stack.engine_url}/api/v1/gate/filesystem", timeout=5)
    assert gate.status_code == 200 and gate.json()["verdict"] == "promote"

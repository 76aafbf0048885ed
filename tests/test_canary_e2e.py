"""Canaries end to end on the demo stacks (the engine in process, Prometheus with the
generated rules, Alertmanager with the generated routes): the regression scenario's
v2 is rolled back, the gate says so, Prometheus raises MCPCanaryRegression from the
engine's metric and Alertmanager routes it to the release receiver; the healthy
scenario's v2 is not rolled back."""

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


def test_the_healthy_canaries_are_not_rolled_back(healthy_stack):
    found = wait_until(lambda: (lambda d: d if len(d) == 2 else None)(decisions(healthy_stack)), timeout=60,
                       interval=0.5, what="a decision for both canaries")
    for d in found.values():
        assert d["verdict"] in ("promote", "inconclusive"), d
    print({s: (d["verdict"], d["score"], d["reason"]) for s, d in found.items()})

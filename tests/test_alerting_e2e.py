"""A real Alertmanager running the generated configuration, its receivers pointed
at a webhook server this test runs: pages, tickets and canary alerts reach the
right receiver, and a page inhibits the ticket of the same service and SLO."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from alerts import alertmanager
from demo.alertmanager import start_alertmanager
from slo import importers, spec
from tests import binaries
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration

# Short waits so a notification arrives within a second or two of its alert.
FAST = alertmanager.Timing(group_wait="1s", group_interval="1s", repeat_interval="1h")


@pytest.fixture(scope="module")
def am_url(webhooks, tmp_path_factory) -> Iterator[str]:
    binaries.require("prometheus-alertmanager")
    base = importers.load("examples/slo.yaml").spec
    receivers = spec.Receivers(page=f"{webhooks.url}/page", ticket=f"{webhooks.url}/ticket",
                               release=f"{webhooks.url}/release")
    ours = base.model_copy(update={"alerting": base.alerting.model_copy(update={"receivers": receivers})})
    config = alertmanager.render(ours, page=FAST, ticket=FAST, release=FAST)
    port = free_port()
    proc = start_alertmanager(tmp_path_factory.mktemp("alertmanager"), port, config)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


def post(am_url: str, **labels: str) -> None:
    r = httpx.post(f"{am_url}/api/v2/alerts", json=[{"labels": labels, "annotations": {"summary": "test"}}],
                   timeout=5)
    r.raise_for_status()


def burn(service: str, severity: str, slo: str = "availability") -> dict[str, str]:
    return {"alertname": "MCPSLOBurnRate", "service": service, "slo": slo, "severity": severity,
            "tier": f"{severity}-fast"}


def inhibited(am_url: str, **labels: str) -> bool:
    filters = [("filter", f'{k}="{v}"') for k, v in labels.items()] + [("inhibited", "true")]
    alerts = httpx.get(f"{am_url}/api/v2/alerts", params=filters, timeout=5).json()
    return bool(alerts) and all(a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]
                                for a in alerts)


def test_a_page_reaches_on_call_and_holds_back_the_ticket_of_the_same_slo(am_url, webhooks):
    post(am_url, **burn("inhibit", "page"))
    wait_until(lambda: webhooks.received("/page", service="inhibit"), timeout=20, what="the page")
    post(am_url, **burn("inhibit", "ticket"))
    wait_until(lambda: inhibited(am_url, service="inhibit", severity="ticket"), timeout=20,
               what="the ticket inhibited by the page")
    # A ticket posted later for another service flushes after the inhibited one
    # would have: once it has arrived, the inhibited ticket has had its chance.
    post(am_url, **burn("inhibit-sentinel", "ticket"))
    wait_until(lambda: webhooks.received("/ticket", service="inhibit-sentinel"), timeout=20, what="the sentinel")
    assert webhooks.received("/ticket", service="inhibit") == []
    assert [a["labels"]["severity"] for a in webhooks.received("/page", service="inhibit")] == ["page"]


def test_a_page_for_another_slo_does_not_hold_back_a_ticket(am_url, webhooks):
    post(am_url, **burn("other-slo", "page", slo="latency"))
    post(am_url, **burn("other-slo", "ticket", slo="availability"))
    wait_until(lambda: webhooks.received("/ticket", service="other-slo", slo="availability"), timeout=20,
               what="the ticket")
    assert webhooks.received("/page", service="other-slo", slo="latency")


def test_a_ticket_alone_reaches_only_the_ticket_receiver(am_url, webhooks):
    post(am_url, **burn("alone", "ticket"))
    (alert,) = wait_until(lambda: webhooks.received("/ticket", service="alone"), timeout=20, what="the ticket")
    assert alert["status"] == "firing" and alert["labels"]["severity"] == "ticket"
    assert webhooks.received("/page", service="alone") == webhooks.received("/release", service="alone") == []


@pytest.mark.parametrize("labels", [
    {"alertname": "MCPCanaryRegression", "service": "canary", "version": "v2", "severity": "page"},
    {"alertname": "ReleaseGate", "service": "gate", "receiver": "release", "severity": "ticket"},
], ids=["canary-regression", "receiver-release"])
def test_canary_alerts_reach_the_release_receiver(am_url, webhooks, labels):
    post(am_url, **labels)
    wait_until(lambda: webhooks.received("/release", alertname=labels["alertname"]), timeout=20,
               what=f"{labels['alertname']} at the release receiver")
    service = labels["service"]
    assert webhooks.received("/page", service=service) == webhooks.received("/ticket", service=service) == []

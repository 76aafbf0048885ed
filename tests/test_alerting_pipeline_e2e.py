"""The whole alerting pipeline, end to end: demo services under load, scraped by a real
Prometheus evaluating the generated rules, which sends to a real Alertmanager running
the generated configuration, whose receivers are webhooks this test runs.

An outage injected live into one service reaches the page receiver; a moderate burn
(between the ticket and the page burn rates) on another reaches the ticket receiver
only. The spec's tiers have `for: 1s` and the rules are evaluated every second, with
no history: every window holds only the live data, so alerts fire within seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from alerts import alertmanager, rules, rules_cli
from demo.stack import Stack, StackConfig, start_stack
from slo import importers
from tests import binaries
from tests.support import wait_until
from tests.test_alerting_e2e import FAST
from tests.webhooks import Webhooks

pytestmark = pytest.mark.integration

TARGET = 99.0  # error budget 1%: page above 14.4% errors, ticket above 3%
OUTAGE_AT = 20  # seconds after the stack starts
MODERATE_ERRORS = 0.07  # burn rate 7: between the ticket (3) and the page (14.4) tiers


def slo_spec(webhooks: Webhooks) -> dict:
    return {
        "version": 1,
        "defaults": {"objectives": [
            {"name": "availability", "kind": "availability", "target": TARGET, "window": "30d"},
        ]},
        "alerting": {
            "min_events": 100,  # no alert on the first handful of calls
            "budget_exhausted_alert": False,
            "tiers": [
                {"name": "page-fast", "severity": "page", "burn_rate": 14.4, "long_window": "1h",
                 "short_window": "5m", "for": "1s"},
                {"name": "ticket-fast", "severity": "ticket", "burn_rate": 3, "long_window": "6h",
                 "short_window": "30m", "for": "1s"},
            ],
            "receivers": {"page": f"{webhooks.url}/page", "ticket": f"{webhooks.url}/ticket",
                          "release": f"{webhooks.url}/release"},
        },
    }


def scenario() -> dict:
    def service(tool: str, error_ratio: float) -> dict:
        return {"tools": {tool: 1.0},
                "versions": {"v1": {"default": {"error_ratio": error_ratio, "median": "5ms", "sigma": 0.3}}}}

    return {
        "split": {"v1": 1.0},
        "services": {"outage": service("read_file", 0.0), "burning": service("run_query", MODERATE_ERRORS)},
        "incidents": [{"name": "outage", "service": "outage", "start": f"{OUTAGE_AT}s", "duration": "1h",
                       "error_ratio": 1.0}],
    }


def generated_stack(tmp: Path, spec: dict, scenario_: dict, **config) -> Iterator[Stack]:
    """A demo stack under load (no history, 1s scrapes) on the rules (evaluated every second)
    and the Alertmanager configuration (fast timings) generated from `spec`, with the demo
    services of `scenario_`; `config`: more StackConfig fields."""
    for binary in ("prometheus", "promtool", "prometheus-alertmanager"):
        binaries.require(binary)
    for noisy in ("httpx", "mcp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    spec_file = tmp / "slo.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    rule_files = rules_cli.write(tmp / "rules", rules_cli.generate(spec_file, interval="1s"))
    am_config = tmp / "alertmanager.yml"
    am_config.write_text(alertmanager.render(importers.load(spec_file).spec, page=FAST, ticket=FAST, release=FAST))
    scenario_file = tmp / "scenario.yaml"
    scenario_file.write_text(yaml.safe_dump(scenario_))
    s = start_stack(StackConfig(workdir=tmp / "stack", scenario=str(scenario_file), rate=20.0, history_days=0,
                                scrape_interval="1s", rule_files=rule_files, alertmanager_config=am_config,
                                **config))
    try:
        s.start_load()
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def stack(webhooks, tmp_path_factory) -> Iterator[Stack]:
    yield from generated_stack(tmp_path_factory.mktemp("pipeline"), slo_spec(webhooks), scenario(), seed=7)


def rules_healthy(url: str) -> bool:
    """Every rule evaluated without error (the hourly group waits for its first hour)."""
    groups = httpx.get(f"{url}/api/v1/rules", timeout=5).json()["data"]["groups"]
    evaluated = [r for g in groups if g["name"] != rules.HOURLY_GROUP for r in g["rules"]]
    return bool(evaluated) and all(r["health"] == "ok" for g in groups for r in g["rules"]
                                   if g["name"] != rules.HOURLY_GROUP or r["health"] != "unknown")


def test_an_outage_pages_and_a_moderate_burn_files_a_ticket_only(stack, webhooks):
    wait_until(lambda: rules_healthy(stack.prometheus_url), timeout=30, interval=0.5,
               what="every rule evaluated without error")

    # The moderate burn, from the start: a ticket, and the outaged service is still healthy.
    (ticket, *_) = wait_until(lambda: webhooks.received("/ticket", service="burning"), timeout=60, interval=0.2,
                              what="a ticket for the moderately burning service")
    assert ticket["status"] == "firing"
    assert ticket["labels"]["alertname"] == "MCPSLOErrorBudgetBurn"
    assert ticket["labels"]["severity"] == "ticket" and ticket["labels"]["slo"] == "availability"

    # The outage, live: a page for the outaged service.
    (page, *_) = wait_until(lambda: webhooks.received("/page", service="outage"), timeout=90, interval=0.2,
                            what="a page for the outage")
    assert page["status"] == "firing"
    assert page["labels"]["alertname"] == "MCPSLOErrorBudgetBurn"
    assert page["labels"]["severity"] == "page" and page["labels"]["tier"] == "page-fast"
    assert page["labels"]["slo"] == "availability"

    # By now the moderate burn has run well over OUTAGE_AT seconds: it never paged.
    assert webhooks.received("/page", service="burning") == []
    assert webhooks.received("/release") == []
    # The burn Prometheus saw for the moderate service lies between the tiers.
    (sample,) = binaries.query(stack.prometheus_url,
                               'mcp_slo:error_ratio:rate5m{service="burning"} / on (service, slo, tool) '
                               "mcp_slo:error_budget")
    assert 3 < float(sample["value"][1]) < 14.4

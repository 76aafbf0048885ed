"""A run-time maintenance window end to end on a demo stack: demo services under load, a real
Prometheus evaluating the generated rules and scraping the engine's /metrics, a real
Alertmanager with the generated configuration and webhook receivers, the engine with its
API (and the Alertmanager, for the window's silence).

`mcp-slo maintenance start --mode exclude` is opened on one service before its first outage:
the outage sends no page, the engine's budget for it does not move, and when the window is
over the outage it held does not page afterwards either (its events are out of every window,
not only held back). After `mcp-slo maintenance end`, the service's next outage pages. A
second service has an outage at the same time as the first and no window: it pages, which
shows the pipeline would have paged for the first.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
import yaml

from demo.stack import Stack
from mcp_slo import cli
from tests import binaries
from tests.support import wait_until
from tests.test_alerting_pipeline_e2e import generated_stack, rules_healthy
from tests.webhooks import Webhooks

pytestmark = pytest.mark.integration

TARGET = 99.0  # error budget 1%: the page tier fires above 14.4% errors
HELD, CONTROL = "held", "control"  # the service under maintenance, and one without
FIRST_OUTAGE = (45, 60)  # (start, duration) in seconds after the stack starts
SECOND_OUTAGE = 150  # until the end of the test


def slo_spec(webhooks: Webhooks) -> dict:
    return {
        "version": 1,
        "defaults": {"objectives": [
            {"name": "availability", "kind": "availability", "target": TARGET, "window": "30d"},
        ]},
        "alerting": {
            "min_events": 100,
            "budget_exhausted_alert": False,
            "tiers": [{"name": "page-fast", "severity": "page", "burn_rate": 14.4, "long_window": "1h",
                       "short_window": "5m", "for": "1s"}],
            "receivers": {"page": f"{webhooks.url}/page", "ticket": f"{webhooks.url}/ticket",
                          "release": f"{webhooks.url}/release"},
        },
    }


def scenario() -> dict:
    start, duration = FIRST_OUTAGE
    service = {"tools": {"read_file": 1.0},
               "versions": {"v1": {"default": {"error_ratio": 0.0, "median": "5ms", "sigma": 0.3}}}}
    return {
        "split": {"v1": 1.0},
        "services": {HELD: service, CONTROL: service},
        "incidents": [
            {"name": "first outage", "service": HELD, "start": f"{start}s", "duration": f"{duration}s",
             "error_ratio": 1.0},
            {"name": "second outage", "service": HELD, "start": f"{SECOND_OUTAGE}s", "duration": "1h",
             "error_ratio": 1.0},
            {"name": "control outage", "service": CONTROL, "start": f"{start}s", "duration": "1h",
             "error_ratio": 1.0},
        ],
    }


@pytest.fixture(scope="module")
def webhooks() -> Iterator[Webhooks]:
    hooks = Webhooks()
    yield hooks
    hooks.close()


@pytest.fixture(scope="module")
def stack(webhooks, tmp_path_factory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("maintenance-e2e")
    # slo_spec: the engine reads the same spec (the generated one is written there)
    yield from generated_stack(tmp, slo_spec(webhooks), scenario(), seed=11, engine=True, engine_interval=2.0,
                               slo_spec=tmp / "slo.yaml")


def maintenance(capsys, *args: str) -> str:
    """`mcp-slo maintenance ...`: its output (it must succeed)."""
    capsys.readouterr()
    code = cli.main(["maintenance", *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def errors_now(stack: Stack, service: str) -> float:
    """The service's errors over the last 3 seconds, from the raw counters."""
    found = binaries.query(stack.prometheus_url, f'sum(increase(mcp_operations_total{{service="{service}", '
                                                 f'status="error"}}[3s]))')
    return float(found[0]["value"][1]) if found else 0.0


def budget_left(stack: Stack, service: str) -> float | None:
    """The engine's error budget left for the service's availability SLO, or None before it has one."""
    answer = httpx.get(f"{stack.engine_url}/api/v1/slos/{service}", timeout=5)
    if answer.status_code != 200:
        return None
    (row,) = [r for r in answer.json() if r["slo"] == "availability" and not r.get("tool")]
    return row["error_budget_remaining"]


@pytest.mark.timeout(600)  # the burn alerts can fire again 5m after an exclude window: about 7 minutes
def test_an_exclude_window_holds_the_page_and_the_budget_and_the_next_outage_pages(stack, webhooks, capsys):
    wait_until(lambda: rules_healthy(stack.prometheus_url), timeout=30, interval=0.5,
               what="every rule evaluated without error")
    wait_until(lambda: budget_left(stack, HELD) is not None, timeout=30, interval=0.5,
               what="the engine's first budget for the held service")
    assert errors_now(stack, HELD) == 0, "the stack took so long to start that the first outage had begun"

    opened = maintenance(capsys, "start", "--engine", stack.engine_url, "--service", HELD, "--for", "30m",
                         "--mode", "exclude", "--reason", "disk replacement (CHG-1)", "--user", "alice")
    window_id = re.match(r"(\d+): exclude held ", opened).group(1)
    assert "opened by alice: disk replacement (CHG-1)" in opened and "Alertmanager silence" in opened
    before = budget_left(stack, HELD)

    # Both first outages: the control service pages; the held one stays quiet while its
    # errors run, and its budget does not move.
    wait_until(lambda: errors_now(stack, HELD) > 0, timeout=90, interval=0.5, what="the held service's outage")
    wait_until(lambda: webhooks.received("/page", service=CONTROL), timeout=90, interval=0.2,
               what="a page for the control service's outage")
    wait_until(lambda: errors_now(stack, HELD) == 0, timeout=120, interval=0.5,
               what="the end of the held service's first outage")
    assert webhooks.received("/page", service=HELD) == []
    assert budget_left(stack, HELD) == pytest.approx(before, abs=1e-9)
    listed = maintenance(capsys, "list", "--engine", stack.engine_url, "--json")
    assert yaml.safe_load(listed)["runtime"][0]["active"] is True

    # The window ends; the outage it held pages neither now nor later; the next one does.
    ended = maintenance(capsys, "end", window_id, "--engine", stack.engine_url, "--user", "bob")
    assert "ended" in ended and "by bob" in ended
    wait_until(lambda: errors_now(stack, HELD) > 0, timeout=150, interval=0.5,
               what="the held service's second outage")
    assert webhooks.received("/page", service=HELD) == [], "the excluded outage paged after its window"
    # its 5m rates come back 5m after the window (the window's events out of their range)
    (page, *_) = wait_until(lambda: webhooks.received("/page", service=HELD), timeout=420, interval=0.5,
                            what="a page for the held service's second outage")
    assert page["status"] == "firing" and page["labels"]["tier"] == "page-fast"
    assert budget_left(stack, HELD) < before  # the second outage counts
    # the window's Alertmanager silence was expired when it ended
    silences = httpx.get(f"{stack.alertmanager_url}/api/v2/silences", timeout=5).json()
    assert silences and all(s["status"]["state"] == "expired" for s in silences if
                            any(m["value"] == HELD for m in s["matchers"]))

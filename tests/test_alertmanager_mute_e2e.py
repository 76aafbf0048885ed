"""Planned maintenance windows muting a real Alertmanager: the generated configuration with a
window going on now, its receivers pointed at a webhook server this test runs. An alert in
the window's scope reaches nobody; one for another service, or the same service's alert when
the window is not on (the same config but for the window's time), reaches its receiver."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from alerts import alertmanager
from demo.alertmanager import start_alertmanager
from slo import spec
from tests import binaries
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration

FAST = alertmanager.Timing(group_wait="1s", group_interval="1s", repeat_interval="1h")


def _minute(moment: datetime) -> str:
    return moment.replace(second=0, microsecond=0, tzinfo=None).isoformat()


def windows_around(at: datetime) -> list[dict]:
    """fs: daily for 2h from an hour before `at`, in Asia/Kolkata (its `location`); search's
    query tool: a one-off exclude window from an hour before `at` to an hour after, in UTC."""
    kolkata = at.astimezone(ZoneInfo("Asia/Kolkata"))
    return [
        {"name": "fs-daily", "reason": "nightly vacuum", "services": ["fs"], "rrule": "FREQ=DAILY",
         "start": _minute(kolkata - timedelta(days=1, hours=1)), "duration": "2h", "timezone": "Asia/Kolkata"},
        {"name": "search-query", "reason": "reindex", "mode": "exclude", "services": ["search"],
         "tools": ["query"], "start": _minute(at - timedelta(hours=1)) + "Z", "end": _minute(at + timedelta(hours=1)) + "Z"},
    ]


def config_for(webhooks, windows: list[dict]) -> str:
    receivers = {"page": f"{webhooks.url}/page", "ticket": f"{webhooks.url}/ticket", "release": f"{webhooks.url}/release"}
    return alertmanager.render(spec.parse({"alerting": {"receivers": receivers}, "maintenance": windows}),
                               page=FAST, ticket=FAST, release=FAST)


@contextmanager
def running(config: str, workdir) -> Iterator[str]:
    binaries.require("prometheus-alertmanager")
    port = free_port()
    proc = start_alertmanager(workdir, port, config)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


def post(am_url: str, **labels: str) -> None:
    r = httpx.post(f"{am_url}/api/v2/alerts", json=[{"labels": labels, "annotations": {"summary": "test"}}],
                   timeout=5)
    r.raise_for_status()


def burn(run: str, service: str, severity: str = "page", **extra: str) -> dict[str, str]:
    return {"alertname": "MCPSLOBurnRate", "run": run, "service": service, "slo": "availability",
            "severity": severity, "tier": f"{severity}-fast", **extra}


def test_the_config_with_windows_passes_amtool(webhooks, tmp_path):
    path = tmp_path / "alertmanager.yml"
    path.write_text(config_for(webhooks, windows_around(datetime.now(UTC))))
    result = subprocess.run([binaries.require("amtool"), "check-config", str(path)], capture_output=True, text=True, check=False,
                            timeout=30)
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_alerts_in_a_window_reach_nobody_and_the_others_their_receiver(webhooks, tmp_path):
    with running(config_for(webhooks, windows_around(datetime.now(UTC))), tmp_path) as am:
        muted = [burn("in", "fs"), burn("in", "fs", "ticket", slo="latency"), burn("in", "search", tool="query")]
        for labels in muted:
            post(am, **labels)
        post(am, **burn("in", "search"))  # the service-level SLO: the window names the query tool only
        post(am, **burn("in", "other"))
        # Posted after the muted ones with the same group_wait: once they have arrived, the
        # muted ones have had their chance to be sent.
        wait_until(lambda: webhooks.received("/page", run="in", service="other"), timeout=20, what="other's page")
        wait_until(lambda: webhooks.received("/page", run="in", service="search"), timeout=20,
                   what="search's service-level page")
        assert all(not webhooks.received(path, run="in", service="fs") for path in ("/page", "/ticket"))
        assert [a["labels"].get("tool") for a in webhooks.received("/page", run="in", service="search")] == [None]
        # Alertmanager holds them (muting is at notification time): they are there, active
        alerts = httpx.get(f"{am}/api/v2/alerts", params={"filter": 'run="in"'}, timeout=5).json()
        assert len(alerts) == 5 and {a["status"]["state"] for a in alerts} == {"active"}


def test_the_same_scope_outside_its_window_reaches_its_receiver(webhooks, tmp_path):
    later = datetime.now(UTC) + timedelta(hours=3)  # the same windows, not on now
    with running(config_for(webhooks, windows_around(later)), tmp_path) as am:
        post(am, **burn("out", "fs"))
        post(am, **burn("out", "search", tool="query"))
        wait_until(lambda: webhooks.received("/page", run="out", service="fs"), timeout=20, what="fs's page")
        wait_until(lambda: webhooks.received("/page", run="out", service="search", tool="query"), timeout=20,
                   what="search query's page")

"""A run-time maintenance window end to end: a real `mcp-slo engine` process (reading a real
Prometheus) with a real Alertmanager. `mcp-slo maintenance start` creates the matching silence,
which silences a matching alert, and the engine's /metrics shows mcp_slo_maintenance; `end`
expires the silence and the gauge goes away."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import yaml

from demo.processes import ManagedProcess
from mcp_slo import cli
from slo.engine.metrics import MAINTENANCE_METRIC
from tests import binaries
from tests.support import free_port, samples, wait_until

pytestmark = pytest.mark.integration

SPEC = {
    "version": 1,
    "defaults": {"objectives": [{"name": "availability", "kind": "availability", "target": 99.0, "window": "1d"}]},
    "services": {"filesystem": {}, "search": {}},  # declared: the engine evaluates them (no_data) without traffic
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """(the engine's URL, Alertmanager's URL)."""
    from demo.alertmanager import start_alertmanager

    binaries.require("prometheus-alertmanager")
    work = tmp_path_factory.mktemp("maintenance")
    am_port = free_port()
    alertmanager = start_alertmanager(work / "alertmanager", am_port)
    am_url = f"http://127.0.0.1:{am_port}"
    spec_file = work / "slo.yaml"
    spec_file.write_text(yaml.safe_dump(SPEC))
    try:
        with binaries.prometheus([]) as prometheus_url:
            port = free_port()
            engine = ManagedProcess("engine", [
                sys.executable, "-m", "mcp_slo", "engine", "--config", str(spec_file), "--prometheus", prometheus_url,
                "--interval", "1s", "--store", str(work / "mcp-slo.db"), "--listen", f"127.0.0.1:{port}",
                "--alertmanager", am_url], work / "engine.log").start()
            url = f"http://127.0.0.1:{port}"
            try:
                engine.wait_until(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, 60, "/readyz")
                yield url, am_url
            finally:
                engine.stop()
    finally:
        alertmanager.stop()


def gauge(engine_url: str) -> dict[tuple[str, str, str, str], float]:
    found = samples(httpx.get(f"{engine_url}/metrics", timeout=5).text, MAINTENANCE_METRIC)
    return {(d["service"], d["slo"], d["tool"], d["mode"]): v for d, v in ((dict(k), v) for k, v in found.items())}


def silence(am_url: str, silence_id: str) -> dict:
    return httpx.get(f"{am_url}/api/v2/silence/{silence_id}", timeout=5).json()


def test_start_silences_in_alertmanager_and_end_expires(stack, capsys):
    engine_url, am_url = stack
    assert cli.main(["maintenance", "start", "--engine", engine_url, "--service", "filesystem", "--slo",
                     "availability", "--for", "2h", "--reason", "disk swap CHG-7", "--user", "ann"]) == 0
    out = capsys.readouterr().out
    window_id = out.split(":")[0]
    silence_id = re.search(r"Alertmanager silence (\S+)", out)[1]

    made = silence(am_url, silence_id)
    assert made["status"]["state"] == "active" and made["createdBy"] == "ann"
    assert made["comment"] == f"mcp-slo maintenance window {window_id}: disk swap CHG-7"
    assert {(m["name"], m["value"], m["isRegex"]) for m in made["matchers"]} == {
        ("service", "filesystem", False), ("slo", "availability", False)}

    # the silence holds back an alert of that SLO, not one of another service
    now = datetime.now(UTC).isoformat()
    httpx.post(f"{am_url}/api/v2/alerts", timeout=5, json=[
        {"labels": {"alertname": "SLOBurn", "service": name, "slo": "availability", "severity": "page"},
         "startsAt": now} for name in ("filesystem", "search")]).raise_for_status()

    def states() -> dict[str, str] | None:
        alerts = httpx.get(f"{am_url}/api/v2/alerts", timeout=5).json()
        found = {a["labels"]["service"]: a["status"]["state"] for a in alerts}
        return found if len(found) == 2 else None

    assert wait_until(states, timeout=20, what="both alerts in Alertmanager") == {
        "filesystem": "suppressed", "search": "active"}

    # the engine's gauge, which the rules join on (service, slo, tool)
    assert wait_until(lambda: gauge(engine_url), timeout=10, what="the maintenance gauge") == {
        ("filesystem", "availability", "", "silence"): 1.0}

    assert cli.main(["maintenance", "end", "--engine", engine_url, window_id, "--user", "bob"]) == 0
    assert "expired" in capsys.readouterr().out
    assert silence(am_url, silence_id)["status"]["state"] == "expired"
    assert gauge(engine_url) == {}
    wait_until(lambda: states() == {"filesystem": "active", "search": "active"}, timeout=20,
               what="the alert no longer silenced")

    listed = httpx.get(f"{engine_url}/api/v1/maintenance", timeout=5).json()["runtime"]
    assert [(w["id"], w["opened_by"], w["ended_by"], w["reason"]) for w in listed] == [
        (int(window_id), "ann", "bob", "disk swap CHG-7")]

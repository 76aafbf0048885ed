"""The engine unchanged against a second PromQL backend: VictoriaMetrics holding the same
generated history as a Prometheus gives the same SLIs, budgets and burn rates.

The engine's raw queries use increase(), which the two count differently where a series
starts inside the window: VictoriaMetrics counts the series' first value, Prometheus
extrapolates at most half a step back. With sparse error counters (a canary's errors
start two hours before the end) that is a few errors out of a few hundred: SLIs agree
within 0.1%, error ratios (budgets, burn rates) within 1%. Both are also checked against
the history's own counts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from demo import history
from demo.processes import ManagedProcess
from demo.prometheus import start_prometheus
from demo.scenario import load
from slo import importers
from slo.engine.backend import Backend, BackendOptions
from slo.evaluate import evaluate
from slo.plan import plan
from tests import binaries
from tests.support import free_port, wait_until
from tests.test_engine import truth

pytestmark = pytest.mark.integration

SPEC = importers.load("examples/slo.yaml").spec
LONG_WINDOWS = ("30d", "3d", "1d")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[history.History, Path]:
    work = tmp_path_factory.mktemp("vm")
    past = history.generate(load("regression"), end=time.time() - 120, days=2, rates={"filesystem": 20, "analytics": 20},
                            seed=5)
    targets = {key: {"job": "mcp", "instance": f"{key[0]}-{key[1]}"}
               for key in {(dict(labels)["service"], dict(labels)["version"]) for _, labels in past.series}}
    path = work / "history.om"
    history.write_openmetrics(past, path, targets)
    return past, path


@pytest.fixture(scope="module")
def prometheus_url(data, tmp_path_factory) -> Iterator[str]:
    binaries.require("prometheus")
    binaries.require("promtool")
    work = tmp_path_factory.mktemp("prom")
    history.backfill(data[1], work / "data")
    port = free_port()
    proc = start_prometheus(work, port, [], "15s", data_dir=work / "data")
    yield f"http://127.0.0.1:{port}"
    proc.stop()


@pytest.fixture(scope="module")
def victoria_url(data, tmp_path_factory) -> Iterator[str]:
    binary = binaries.require("victoria-metrics")
    work = tmp_path_factory.mktemp("victoria")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = ManagedProcess("victoria-metrics", [
        binary, f"-httpListenAddr=127.0.0.1:{port}", f"-storageDataPath={work / 'data'}",
        "-retentionPeriod=100y", "-search.latencyOffset=0s", "-search.disableCache"], work / "vm.log").start()
    try:
        proc.wait_until(lambda: httpx.get(f"{url}/health", timeout=1).status_code == 200, 30, "/health")
        # the Prometheus text format with millisecond timestamps
        lines = []
        for line in data[1].read_text().splitlines():
            if line.startswith("#"):
                continue
            head, value, ts = line.rsplit(" ", 2)
            lines.append(f"{head} {value} {round(float(ts) * 1000)}")
        for i in range(0, len(lines), 200_000):
            r = httpx.post(f"{url}/api/v1/import/prometheus", content="\n".join(lines[i:i + 200_000]) + "\n", timeout=120)
            assert r.status_code == 204, r.text
        httpx.get(f"{url}/internal/force_flush", timeout=30)
        expected = len({line.rsplit(" ", 2)[0] for line in lines if line.startswith("mcp_operations_total")})
        wait_until(lambda: len(binaries.query(url, "mcp_operations_total")) == expected or None, timeout=60,
                   what="the imported series searchable")
        yield url
    finally:
        proc.stop()


def results(url: str, at: float) -> dict:
    with Backend(BackendOptions(url=url, timeout=30)) as backend:
        evaluation = evaluate(backend, plan(SPEC), at)
    return {(r.service, r.tool, r.slo): r.to_json() for r in evaluation.slos}


def test_victoriametrics_and_prometheus_agree(data, prometheus_url, victoria_url):
    past = data[0]
    at = float(past.timestamps[-1])
    prom, vm = results(prometheus_url, at), results(victoria_url, at)
    assert prom.keys() == vm.keys()
    for key, p in prom.items():
        v = vm[key]
        assert (p["status"], p["window"], p["objective"]) == (v["status"], v["window"], v["objective"]), key
        assert v["sli"] == pytest.approx(p["sli"], rel=1e-3), key
        assert v["error_budget_remaining"] == pytest.approx(p["error_budget_remaining"], rel=1e-2, abs=1e-3), key
        for window in LONG_WINDOWS:
            # Prometheus extrapolates rates to the window's edges, VictoriaMetrics does not: a
            # step's worth of events apart, 1% of write_file's ~100 errors a day (0.1%)
            assert v["burn_rates"][window] == pytest.approx(p["burn_rates"][window], rel=2e-2), (key, window)
        if key[1] is None:  # service level: both match the generated counts themselves
            objective = next(o for o in SPEC.objectives_for(key[0]) if o.name == key[2])
            exact = truth(past, key[0], objective, at, objective.window_seconds)
            for r in (p, v):
                assert r["sli"] == pytest.approx(1 - exact, rel=1e-3), key

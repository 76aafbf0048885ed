"""The engine as a service, against a real Prometheus scraping a real exporter: its API
and /metrics, its schedule, and what it does when Prometheus dies, comes back or is slow.
"""

from __future__ import annotations

import http.server
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

from collector.exposition import start_metrics_server
from collector.metrics import families
from demo.prometheus import start_prometheus
from mcp_slo import cli
from slo import importers
from slo.engine.api import create_app
from slo.engine.backend import Backend, BackendOptions
from slo.engine.scheduler import Engine
from slo.engine.store import Store
from tests import binaries
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration

SPEC = {
    "version": 1,
    "defaults": {"objectives": [
        {"name": "availability", "kind": "availability", "target": 99.0, "window": "7d"},
        {"name": "latency", "kind": "latency", "threshold": 0.5, "target": 90.0, "window": "7d"},
    ]},
    "services": {"absent": {}},  # named, never seen: no_data
}
REQUIRED = {"service", "slo", "kind", "objective", "window", "sli", "error_budget_remaining", "burn_rates",
            "status", "stale", "evaluated_at"}


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("engine") / "slo.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    return path


@pytest.fixture(scope="module")
def exporter() -> Iterator[str]:
    """Two services with fixed shares: 'steady' 2% errors, 20% slow; 'clean' none."""
    registry = CollectorRegistry()
    fams = families(registry)
    server, _ = start_metrics_server(0, registry=registry)
    stop = threading.Event()

    def traffic() -> None:  # the same proportions every step: every window sees the same ratios
        while not stop.wait(0.2):
            for service, errors, slow in (("steady", 2, 20), ("clean", 0, 0)):
                fams.operations.labels(service, "v1", "tools/call", "read", "success").inc(100 - errors)
                if errors:
                    fams.operations.labels(service, "v1", "tools/call", "read", "error").inc(errors)
                for _ in range(100 - slow):
                    fams.duration.labels(service, "v1", "tools/call", "read").observe(0.05)
                for _ in range(slow):
                    fams.duration.labels(service, "v1", "tools/call", "read").observe(2.0)

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_port}"
    stop.set()
    thread.join()
    server.shutdown()


class PrometheusProcess:
    """A real Prometheus that the test can stop and start again on the same port and data."""

    def __init__(self, workdir: Path, target: str):
        binaries.require("prometheus")
        self.workdir, self.target, self.port = workdir, target, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self) -> None:
        self.proc = start_prometheus(self.workdir, self.port, [self.target], "1s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None


@pytest.fixture
def prometheus(tmp_path, exporter) -> Iterator[PrometheusProcess]:
    p = PrometheusProcess(tmp_path / "prometheus", exporter)
    p.start()
    yield p
    p.stop()


def make_engine(spec_file: Path, url: str, tmp_path: Path, timeout: float = 5.0) -> Engine:
    spec = importers.load(spec_file).spec
    backend = Backend(BackendOptions(url=url, timeout=timeout / 2, retries=1))
    return Engine(spec, backend, Store(tmp_path / "engine.db"), interval=2 * timeout, timeout=timeout)


def evaluated(engine: Engine) -> dict:
    """Tick until 'steady' has an SLI: Prometheus has scraped enough for a rate."""
    def ready():
        result = engine.tick()
        if result is None:
            return None
        slos = [r.to_json() for r in result.slos]  # as the API serves them
        return {(r["service"], r["slo"]): r for r in slos if r["sli"] is not None} or None
    found = wait_until(lambda: (lambda r: r if r and ("steady", "latency") in r else None)(ready()),
                       timeout=30, interval=0.5, what="an evaluation with data")
    return found


def test_the_api_serves_the_latest_evaluation(spec_file, prometheus, tmp_path):
    engine = make_engine(spec_file, prometheus.url, tmp_path)
    results = evaluated(engine)
    assert results["steady", "availability"]["sli"] == pytest.approx(0.98, rel=1e-6)
    assert results["steady", "latency"]["sli"] == pytest.approx(0.80, rel=1e-6)
    assert results["clean", "availability"]["sli"] == 1.0
    client = TestClient(create_app(engine))

    slos = client.get("/api/v1/slos").json()
    assert {(s["service"], s["slo"]) for s in slos} == {(s, o) for s in ("steady", "clean", "absent")
                                                         for o in ("availability", "latency")}
    for s in slos:
        assert REQUIRED <= s.keys()
        assert s["stale"] is False and s["evaluated_at"].endswith("Z")
    steady = {s["slo"]: s for s in client.get("/api/v1/slos/steady").json()}
    assert steady["availability"]["objective"] == 0.99 and steady["availability"]["window"] == "7d"
    # 2% errors against a 1% budget: burning at 2x, the budget overspent
    assert steady["availability"]["burn_rates"]["5m"] == pytest.approx(2.0, rel=1e-6)
    assert steady["availability"]["error_budget_remaining"] == pytest.approx(-1.0, rel=1e-6)
    absent = client.get("/api/v1/slos/absent").json()
    assert {s["status"] for s in absent} == {"no_data"} and all(s["sli"] is None for s in absent)
    assert client.get("/api/v1/slos/nobody").status_code == 404
    assert [s["status"] for s in client.get("/api/v1/slos", params={"status": "no_data"}).json()] == ["no_data"] * 2
    assert client.get("/api/v1/slos", params={"status": "bogus"}).status_code == 400
    services = {s["service"]: s for s in client.get("/api/v1/services").json()}
    assert services["steady"]["versions"] == ["v1"] and services["steady"]["slos"] == 2
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200

    metrics = client.get("/metrics").text
    assert 'mcp_slo_sli{service="steady",slo="availability",tool="",window="7d"} 0.98' in metrics
    assert 'mcp_slo_status{service="absent",slo="latency",status="no_data",tool=""} 1.0' in metrics
    assert "mcp_slo_engine_ticks_total" in metrics and "mcp_slo_engine_tick_queries" in metrics
    checked = subprocess.run([binaries.require("promtool"), "check", "metrics"], input=metrics,
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_prometheus_killed_then_restarted(spec_file, prometheus, tmp_path):
    engine = make_engine(spec_file, prometheus.url, tmp_path)
    before = evaluated(engine)
    client = TestClient(create_app(engine))

    prometheus.stop()
    assert engine.tick() is None  # the engine survives the failed tick
    assert engine.health.failures == 1 and engine.health.query_errors == 1
    assert "unreachable" in engine.health.last_error or "refused" in engine.health.last_error
    assert not any(s["stale"] for s in client.get("/api/v1/slos").json())  # one failure is a blip
    assert engine.tick() is None
    served = {(s["service"], s["slo"]): s for s in client.get("/api/v1/slos").json()}
    assert all(s["stale"] for s in served.values())  # the last snapshot, marked stale
    assert served["steady", "availability"]["sli"] == before["steady", "availability"]["sli"]
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["age_seconds"] >= 0
    assert "mcp_slo_engine_tick_failures_total 2.0" in client.get("/metrics").text

    prometheus.start()  # same port, same data
    wait_until(lambda: engine.tick(), timeout=30, interval=0.5, what="a successful tick after the restart")
    assert engine.health.consecutive_failures == 0
    assert not any(s["stale"] for s in client.get("/api/v1/slos").json())
    assert client.get("/readyz").status_code == 200


class _Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(3)
        self.send_response(200)
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args):
        pass


def test_a_slow_prometheus_is_cut_at_the_timeout(spec_file, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        engine = make_engine(spec_file, f"http://127.0.0.1:{server.server_port}", tmp_path, timeout=1.0)
        began = time.monotonic()
        assert engine.tick() is None
        took = time.monotonic() - began
        assert took < 2.5, took  # per query timeout 0.5 s, one retry: cut well before the 3 s answer
        assert engine.health.timeouts == 1 and engine.snapshot() is None
    finally:
        server.shutdown()


def test_the_schedule_ticks_until_stopped(spec_file, prometheus, tmp_path):
    engine = make_engine(spec_file, prometheus.url, tmp_path, timeout=0.4)  # interval 0.8 s
    engine.start()
    try:
        wait_until(lambda: engine.health.ticks >= 3, timeout=20, what="three scheduled ticks")
        assert engine.health.failures == 0
    finally:
        engine.stop()
    assert engine._scheduler is None  # shut down, waiting for a running tick to end


def test_the_engine_command_runs_one_tick(spec_file, prometheus, tmp_path, capsys):
    args = ["engine", "--config", str(spec_file), "--prometheus", prometheus.url, "--store", str(tmp_path / "e.db"),
            "--interval", "10s", "--once"]
    wait_until(lambda: cli.main(args) == 0, timeout=30, interval=0.5, what="a successful one-shot tick")
    assert '"ok": true' in capsys.readouterr().out
    assert cli.main(["engine", "--config", str(tmp_path / "missing.yaml"), "--once"]) == 2
    assert cli.main(["engine", "--config", str(spec_file), "--interval", "5s", "--timeout", "9s", "--once"]) == 2


@pytest.fixture
def canary_prometheus(tmp_path) -> Iterator[PrometheusProcess]:
    """A Prometheus scraping one service, 'shop', with a v2 canary at a tenth of the traffic."""
    registry = CollectorRegistry()
    fams = families(registry)
    server, _ = start_metrics_server(0, registry=registry)
    stop = threading.Event()

    def traffic() -> None:
        while not stop.wait(0.2):
            for version, calls, errors in (("v1", 90, 1), ("v2", 10, 1)):
                fams.operations.labels("shop", version, "tools/call", "buy", "success").inc(calls - errors)
                fams.operations.labels("shop", version, "tools/call", "buy", "error").inc(errors)
                for _ in range(calls):
                    fams.duration.labels("shop", version, "tools/call", "buy").observe(0.05)

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    p = PrometheusProcess(tmp_path / "prometheus", f"127.0.0.1:{server.server_port}")
    p.start()
    try:
        yield p
    finally:
        p.stop()
        stop.set()
        thread.join()
        server.shutdown()


def test_the_api_serves_a_canarys_decision_log(spec_file, canary_prometheus, tmp_path, monkeypatch):
    engine = make_engine(spec_file, canary_prometheus.url, tmp_path)
    wait_until(lambda: engine.tick() and engine.store.canary_history("shop"), timeout=30, interval=0.5,
               what="a tick judging the canary")
    for _ in range(2):
        assert engine.tick() is not None
    client = TestClient(create_app(engine))

    log = client.get("/api/v1/canaries/shop/history").json()
    assert len(log) == 3 and [(d["baseline"], d["canary"]) for d in log] == [("v1", "v2")] * 3
    times = [d["evaluated_at"] for d in log]
    assert times == sorted(times) and all(t.endswith("Z") for t in times)  # oldest first, RFC 3339
    latest = client.get("/api/v1/canaries/shop").json()[0]
    assert log[-1] == {k: v for k, v in latest.items() if k != "stale"}  # the log ends with the latest decision
    assert log[0]["metrics"] and log[0]["reason"] and log[0]["window"]

    since = times[1]
    assert [d["evaluated_at"] for d in client.get(f"/api/v1/canaries/shop/history?since={since}").json()] == times[1:]
    unix = datetime.fromisoformat(since).timestamp()
    assert client.get("/api/v1/canaries/shop/history", params={"since": f"{unix:.6f}"}).json() == log[1:]
    lean = client.get("/api/v1/canaries/shop/history", params={"evidence": "false"}).json()
    assert [d["score"] for d in lean] == [d["score"] for d in log] and all("metrics" not in d for d in lean)
    monkeypatch.setattr("slo.engine.api.HISTORY_LIMIT", 2)
    assert client.get("/api/v1/canaries/shop/history").json() == log[1:]  # bounded: the newest, oldest first

    assert client.get("/api/v1/canaries/nobody/history").json() == []  # no canary: an empty log, not a 404
    for bad in ({"since": "yesterday"}, {"since": "2027-01-15T08:00:00"}, {"evidence": "maybe"}):
        answer = client.get("/api/v1/canaries/shop/history", params=bad)
        assert answer.status_code == 400 and "error" in answer.json(), bad


def test_the_api_reads_each_tick_from_the_store_once(spec_file, tmp_path, monkeypatch):
    """Every viewer's dashboard asks for the SLO list: it is parsed once per tick (and its
    JSON made once), and /readyz reads only the latest tick's time."""
    engine = make_engine(spec_file, "http://127.0.0.1:1", tmp_path)
    client = TestClient(create_app(engine))
    reads = []
    real = engine.store.latest
    monkeypatch.setattr(engine.store, "latest", lambda: reads.append(1) or real())
    row = {"service": "fs", "slo": "availability", "tool": None, "status": "ok", "sli": 0.99, "versions": ["v1"]}
    engine.store.write_tick(engine.now() - 1, [row], [], {})
    first = [client.get("/api/v1/slos").json() for _ in range(3)]
    assert len(reads) == 1 and first[0] == first[2] and first[0][0]["sli"] == 0.99
    assert client.get("/readyz").status_code == 200 and len(reads) == 1
    engine.store.write_tick(engine.now(), [{**row, "sli": 0.5}], [], {})  # the next tick
    assert client.get("/api/v1/slos").json()[0]["sli"] == 0.5 and len(reads) == 2
    assert client.get("/api/v1/slos?service=fs").json()[0]["sli"] == 0.5 and len(reads) == 2

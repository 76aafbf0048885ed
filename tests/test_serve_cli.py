"""`mcp-slo serve`: the engine and the dashboard in one process, against the demo's real
Prometheus; a clean exit on SIGTERM; bad usage exits 2."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import pytest

from slo import cli
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration


def test_serve_runs_the_engine_and_the_dashboard(healthy_stack, tmp_path):
    api, dashboard = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "slo.cli", "serve", "--config", "examples/slo.yaml",
         "--prometheus", healthy_stack.prometheus_url, "--store", str(tmp_path / "serve.db"), "--interval", "5s",
         "--listen", f"127.0.0.1:{api}", "--dashboard-listen", f"127.0.0.1:{dashboard}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def ready():
            try:
                return httpx.get(f"http://127.0.0.1:{api}/readyz", timeout=2).status_code == 200 or None
            except httpx.HTTPError:
                return None

        wait_until(ready, timeout=60, interval=0.3, what="the engine's first evaluation")
        slos = httpx.get(f"http://127.0.0.1:{api}/api/v1/slos", timeout=5).json()
        assert {s["service"] for s in slos} == {"filesystem", "analytics"}
        page = wait_until(lambda: (lambda r: r if r.status_code == 200 else None)(
            httpx.get(f"http://127.0.0.1:{dashboard}/", timeout=5)), timeout=30, interval=0.3, what="the dashboard")
        assert "mcp-slo" in page.text
        assert httpx.get(f"http://127.0.0.1:{dashboard}/healthz", timeout=5).json() == {"status": "ok"}
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output


def test_serve_bad_usage_exits_2(tmp_path):
    assert cli.main(["serve", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert cli.main(["serve", "--config", "examples/slo.yaml", "--store", str(tmp_path / "s.db"),
                     "--dashboard-listen", "nowhere"]) == 2

"""`mcp-slo serve`: the engine and the dashboard in one process, against the demo's real
Prometheus; a clean exit on Ctrl-C; bad usage exits 2."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import pytest

from mcp_slo import cli
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration


def test_serve_runs_the_engine_and_the_dashboard(healthy_stack, tmp_path):
    api, dashboard = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mcp_slo", "serve", "--config", "examples/slo.yaml",
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
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output


def test_serve_bad_usage_exits_2(tmp_path):
    assert cli.main(["serve", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert cli.main(["serve", "--config", "examples/slo.yaml", "--store", str(tmp_path / "s.db"),
                     "--dashboard-listen", "nowhere"]) == 2


def test_the_dashboard_under_gunicorn_with_two_workers(healthy_stack):
    """`gunicorn 'dashboard.app:server'`, configured by the environment, as the README says."""
    import os
    import shutil

    gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable)) or shutil.which("gunicorn")
    if gunicorn is None:
        pytest.skip("gunicorn is not installed")
    port = free_port()
    env = {**os.environ, "MCP_SLO_ENGINE_URL": healthy_stack.engine_url,
           "MCP_SLO_PROMETHEUS_URL": healthy_stack.prometheus_url}
    process = subprocess.Popen([gunicorn, "-w", "2", "-b", f"127.0.0.1:{port}", "dashboard.app:server"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        page = wait_until(lambda: _get(f"http://127.0.0.1:{port}/"), timeout=60, interval=0.3,
                          what="gunicorn's workers")
        assert "mcp-slo" in page.text
        for _ in range(4):  # whichever worker answers
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json() == {"status": "ok"}
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output


def _get(url: str):
    try:
        response = httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return None
    return response if response.status_code == 200 else None

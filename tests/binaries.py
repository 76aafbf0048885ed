"""Real external programs the integration tests start: find them or say how to install them.

Locally a missing program skips its tests with the install command; under CI
(CI=true), where `make test` installs everything, it fails them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support import free_port, wait_until

DEBIAN_PACKAGE = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "node": "nodejs",
    "npm": "npm",
}


def require(binary: str) -> str:
    path = shutil.which(binary)
    if path:
        return path
    message = f"{binary} not found: apt-get install --no-install-recommends {DEBIAN_PACKAGE.get(binary, binary)} (or run make test)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def prometheus(scrape_targets: list[str], scrape_interval: str = "1s") -> Iterator[str]:
    """A real Prometheus on a free port scraping `scrape_targets` (host:port); yields its URL."""
    binary = require("prometheus")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="prom-") as work:
        config = Path(work) / "prometheus.yml"
        targets = ", ".join(f'"{t}"' for t in scrape_targets)
        config.write_text(
            f"global:\n  scrape_interval: {scrape_interval}\n  evaluation_interval: {scrape_interval}\n"
            f"scrape_configs:\n  - job_name: mcp\n    static_configs:\n      - targets: [{targets}]\n"
        )
        log = open(Path(work) / "prometheus.log", "wb")
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={work}/data",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: proc.poll() is None and httpx.get(f"{url}/-/ready", timeout=1).status_code == 200,
                       timeout=30, what="prometheus /-/ready")
            yield url
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()


def query(url: str, promql: str) -> list[dict]:
    r = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5)
    r.raise_for_status()
    body = r.json()
    assert body["status"] == "success", body
    return body["data"]["result"]

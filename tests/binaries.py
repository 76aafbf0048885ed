"""Real external programs the integration tests start: find them or say how to install them.

Locally a missing program skips its tests with the install command; under CI
(CI=true), where `make test` installs everything, it fails them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from demo.processes import INSTALL_HINT
from demo.prometheus import start_prometheus
from tests.support import free_port



def require(binary: str) -> str:
    path = shutil.which(binary)
    if path:
        return path
    message = f"{binary} not found: apt-get install --no-install-recommends {INSTALL_HINT.get(binary, binary)} (or run make test)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def prometheus(scrape_targets: list[str], scrape_interval: str = "1s") -> Iterator[str]:
    """A real Prometheus on a free port scraping `scrape_targets` (host:port); yields its URL."""
    require("prometheus")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="prom-") as work:
        proc = start_prometheus(Path(work), port, scrape_targets, scrape_interval)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.stop()


def query(url: str, promql: str) -> list[dict]:
    r = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5)
    r.raise_for_status()
    body = r.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_for_promql(url: str, promql: str, condition=bool, timeout: float = 30.0) -> list[dict]:
    """Poll an instant query until `condition(result)` holds; returns the result."""
    from tests.support import wait_until

    return wait_until(lambda: (lambda r: r if condition(r) else None)(query(url, promql)), timeout=timeout,
                      what=f"PromQL condition on {promql}")

"""Serving /metrics: a standalone HTTP server or an ASGI app to mount.

With several worker processes (gunicorn, uvicorn --workers) set
PROMETHEUS_MULTIPROC_DIR to an empty directory before any worker starts; each
worker then writes its samples there and /metrics sums them.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, make_asgi_app, start_http_server
from prometheus_client import multiprocess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def exposition_registry(registry: CollectorRegistry = REGISTRY) -> CollectorRegistry:
    """The registry to expose: in multiprocess mode, one that merges every worker's files."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return registry
    if not os.path.isdir(directory):
        raise RuntimeError(f"{MULTIPROC_ENV}={directory} is not a directory; create it empty before the workers start")
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged)
    return merged


def start_metrics_server(port: int, addr: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY):
    """Serve /metrics on addr:port in a background thread; returns (server, thread).

    port 0 picks a free port: read it from `server.server_port`.
    """
    return start_http_server(port, addr=addr, registry=exposition_registry(registry))


def metrics_app(registry: CollectorRegistry = REGISTRY):
    """An ASGI app serving the metrics, to mount at /metrics in a Starlette or FastAPI app."""
    return make_asgi_app(registry=exposition_registry(registry))


def mark_worker_dead(pid: int) -> None:
    """Call from gunicorn's `child_exit` hook so a dead worker's gauges stop counting."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)

"""Helpers shared by the tests: free ports, polling with a deadline, reading /metrics."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
from mcp.client.stdio import StdioServerParameters
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, what: str = "condition") -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # the thing polled may not be up yet
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last error: {last_error!r}")
        time.sleep(interval)


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples named `name` in exposition `text`, keyed by their sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                found[tuple(sorted(s.labels.items()))] = s.value
    return found


def operations(text: str, **match: str) -> dict[tuple[str, str, str], float]:
    """mcp_operations_total as {(method, tool, status): count}, for samples matching `match`."""
    out = {}
    for labels, value in samples(text, "mcp_operations_total").items():
        d = dict(labels)
        if all(d.get(k) == v for k, v in match.items()) and value:
            out[(d["method"], d["tool"], d["status"])] = value
    return out


def registry_text(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def scrape(url: str) -> str:
    r = httpx.get(url, timeout=5)
    r.raise_for_status()
    return r.text


def active(text: str, service: str, version: str = "v1") -> float:
    """mcp_operations_active of one service and version."""
    return samples(text, "mcp_operations_active").get((("service", service), ("version", version)), 0.0)


def assert_counts(read_text: Callable[[], str], service: str, expected, timeout: float = 5) -> None:
    """Poll until the exposition shows exactly `expected` ({(method, tool, status): n})
    for `service` and nothing in flight.

    Polled because a cancelled request is settled when the client's
    notifications/cancelled (which carries the reason) has arrived."""
    expected = {k: v for k, v in dict(expected).items() if v}

    def matches():
        text = read_text()
        return operations(text, service=service) == expected and active(text, service) == 0

    try:
        wait_until(matches, timeout=timeout, what=f"exact counts for {service}")
    except AssertionError:
        text = read_text()
        assert operations(text, service=service) == expected
        assert active(text, service) == 0
        raise


ROOT = Path(__file__).resolve().parent.parent


def stdio_server(script: str, *args: str) -> StdioServerParameters:
    """Parameters for mcp.Client to run tests/servers/`script` as a stdio MCP server."""
    return StdioServerParameters(
        command=sys.executable,
        args=[str(ROOT / "tests" / "servers" / script), *args],
        env={"PYTHONPATH": str(ROOT)},
        cwd=str(ROOT),
    )

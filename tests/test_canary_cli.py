"""The canary verdicts at the edges a pipeline sees: `mcp-slo canary`'s exit codes (0
promote, 1 roll back, 3 inconclusive, 2 bad usage) and the engine's gate endpoint (200
only for promote), on real stacks: the regression demo (rolled back), the healthy demo
(promoted), and a fresh healthy demo whose canary has too little traffic yet."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from demo.stack import Stack
from mcp_slo import cli
from tests.conftest import running_stack
from tests.support import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def quiet_stack(tmp_path_factory) -> Iterator[Stack]:
    """The healthy demo with no history and little load: the canary has a few requests."""
    yield from running_stack(tmp_path_factory, "healthy", 0, rate=5.0, seed=3, engine_interval=2.0)


def canary(stack: Stack, service: str, capsys) -> tuple[int, str]:
    code = cli.main(["canary", "--service", service, "--prometheus", stack.prometheus_url,
                     "--config", "examples/slo.yaml"])
    return code, capsys.readouterr().out


def gate(stack: Stack, service: str) -> httpx.Response:
    """The gate's answer once the engine has a decision on fresh data (a loaded CI machine
    can fail ticks in a row: 503, which Argo and Flagger retry too)."""
    return wait_until(lambda: (lambda r: r if r.status_code not in (404, 503) else None)(
        httpx.get(f"{stack.engine_url}/api/v1/gate/{service}", timeout=5)), timeout=60, interval=0.5,
        what=f"a canary decision for {service}")


def test_a_regression_exits_1_and_the_gate_refuses(regression_stack, capsys):
    code, out = canary(regression_stack, "analytics", capsys)
    assert code == 1 and "ROLLBACK" in out and "errors" in out, out
    assert gate(regression_stack, "analytics").status_code == 409


def test_too_little_traffic_exits_3_and_the_gate_says_too_early(quiet_stack, capsys):
    code, out = wait_until(lambda: (lambda r: r if r[0] != 2 else None)(canary(quiet_stack, "filesystem", capsys)),
                           timeout=60, interval=1, what="the canary's first requests in Prometheus")
    assert code == 3 and "INCONCLUSIVE" in out, out
    response = gate(quiet_stack, "filesystem")
    assert response.status_code == 425 and response.json()["verdict"] == "inconclusive"


def test_a_healthy_canary_with_enough_traffic_exits_0_and_the_gate_opens(healthy_stack, capsys):
    code, out = canary(healthy_stack, "analytics", capsys)
    assert code == 0 and "PROMOTE" in out, out
    assert gate(healthy_stack, "analytics").status_code == 200
    # Flagger's webhooks POST
    assert httpx.post(f"{healthy_stack.engine_url}/api/v1/gate/analytics", json={"name": "analytics"},
                      timeout=5).status_code == 200


def test_bad_usage_exits_2(regression_stack, capsys):
    assert cli.main(["canary", "--service", "nobody", "--prometheus", regression_stack.prometheus_url]) == 2
    assert cli.main(["canary", "--service", "analytics", "--prometheus", "http://127.0.0.1:1"]) == 2

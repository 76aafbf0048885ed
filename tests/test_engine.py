"""The engine against a real Prometheus holding the demo's 30 days of generated history.

The truth is computed here from the generated series themselves (the history's own
cumulative counts), not from Prometheus; the engine's SLIs, budgets and burn rates must
match it. Evaluated at the instant the history ends, before any live traffic counts."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from collector import names
from demo import recorded
from demo.history import History
from slo import importers, promql
from slo.engine.backend import Backend, BackendOptions
from slo.evaluate import evaluate
from slo.plan import plan
from tests import binaries
from tests.support import wait_until

pytestmark = pytest.mark.integration

SPEC = importers.load("examples/slo.yaml").spec
STEP = 120.0


def counts(history: History, at: float, window: float, metric: str, **match: str) -> float:
    """Events of `metric` series matching `match` in (at - window, at], from the history itself
    (each step's events spread evenly over it: the counts interpolated between samples)."""
    ts = history.timestamps
    total = 0.0
    for (name, labels), (first, values) in history.series.items():
        d = dict(labels)
        if name != metric or any(d.get(k) != v for k, v in match.items()):
            continue
        # nothing before a series' first sample
        total += float(np.interp(at, ts[first:], values, left=0.0) - np.interp(at - window, ts[first:], values, left=0.0))
    return total


def truth(history: History, service: str, objective, at: float, window: float) -> float:
    """The error ratio over `window` from the generated counts."""
    base = {"service": service, "method": "tools/call"}
    if objective.kind == "availability":
        valid = counts(history, at, window, names.OPERATIONS_TOTAL, **base)
        bad = counts(history, at, window, names.OPERATIONS_TOTAL, **base, status=names.ERROR)
    else:
        valid = counts(history, at, window, f"{names.OPERATION_DURATION}_count", **base)
        good = counts(history, at, window, f"{names.OPERATION_DURATION}_bucket", **base, le=promql.le(objective.threshold))
        bad = valid - good
    return bad / valid


@pytest.fixture(scope="module")
def evaluation(regression_stack):
    at = float(regression_stack.history.timestamps[-1])
    with Backend(BackendOptions(url=regression_stack.prometheus_url, timeout=30)) as backend:
        result = evaluate(backend, plan(SPEC), at)
    result.slos = [r.to_json() for r in result.slos]  # as the API serves them
    return result


def test_every_named_service_and_slo_is_evaluated(evaluation):
    keys = {(r["service"], r["tool"], r["slo"]) for r in evaluation.slos}
    assert {("filesystem", None, "availability"), ("filesystem", None, "latency"), ("analytics", None, "availability"),
            ("analytics", None, "latency"), ("filesystem", "write_file", "availability")} <= keys
    assert evaluation.meta["queries"] <= 15  # a handful, whatever the number of services


@pytest.mark.parametrize("window", ["30d", "3d", "1d", "6h", "2h", "1h", "30m"])
def test_slis_budgets_and_burn_rates_match_the_generated_history(regression_stack, evaluation, window):
    history = regression_stack.history
    # The engine reads the recorded series' last samples, from the last rule instant at or
    # before the history's end: their windows end there (up to a minute before the end, and
    # the history's last step holds 2 minutes of events).
    at = float(recorded.INTERVAL * (history.timestamps[-1] // recorded.INTERVAL))
    seconds = promql_seconds(window)
    checked = 0
    for r in evaluation.slos:
        if r["tool"] is not None:
            continue
        objective = next(o for o in SPEC.objectives_for(r["service"]) if o.name == r["slo"])
        expected = truth(history, r["service"], objective, at, seconds)
        burn = expected / objective.error_budget
        # The engine reads the recorded series (backfilled over the history as the rules
        # would have written them). Up to 6h they are rates of the raw counters, which
        # Prometheus extrapolates to the window's edges by up to a 2-minute step's worth:
        # within 2% over hours, 5% over 30m and 1h (15 and 30 steps, with the canary's errors
        # in few of them). 1d and 3d average the 5m rates, each over the 2 or 3 history
        # samples in its window, extrapolated: with the latency buckets' random draws per step
        # that weighs each step a little differently, within 2% of the exact ratio here (live
        # scrapes every few seconds weigh them evenly). 30d sums the hourly averages and
        # interpolates the time since the last one (promql.long_window_rate): 0.1%.
        tolerance = 1e-3 if seconds > 3 * 86400 else 2e-2 if seconds >= 7200 else 5e-2
        assert r["burn_rates"][window] == pytest.approx(burn, rel=tolerance), (r["service"], r["slo"], window)
        if window == r["window"]:
            assert r["sli"] == pytest.approx(1 - expected, rel=1e-3)
            assert r["error_budget_remaining"] == pytest.approx(1 - burn, rel=1e-3, abs=1e-6)
        checked += 1
    assert checked == 4


def promql_seconds(window: str) -> float:
    from collector import durations
    return durations.parse(window)


def test_the_demo_stack_runs_the_engine_and_prometheus_scrapes_it(regression_stack):
    url = regression_stack.engine_url
    wait_until(lambda: httpx.get(f"{url}/readyz", timeout=5).status_code == 200, timeout=60, interval=0.5,
               what="the engine's first fresh evaluation")
    slos = httpx.get(f"{url}/api/v1/slos/filesystem", timeout=5).json()
    assert {s["slo"] for s in slos if s["tool"] is None} == {"availability", "latency"}
    binaries.wait_for_promql(regression_stack.prometheus_url,
                             'mcp_slo_sli{job="mcp-slo-engine",service="filesystem",slo="availability",tool=""}',
                             timeout=60)


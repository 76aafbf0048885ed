"""The recorded series the demo backfills (demo.recorded, computed in Python from the
history model) are what Prometheus itself computes from the generated rules on the same
backfilled raw data: every recording rule of demo/data/rules, evaluated by a real
Prometheus at instants in the last three days (where every sample is written) and in the
older, sparser part (where the rules that average recorded 5m rates are evaluated over the
raw counters instead, with a 1m subquery: what the live rules would have averaged)."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from collector import durations
from demo import history, recorded
from demo.prometheus import start_prometheus
from demo.scenario import load
from demo.stack import default_rule_files, default_slo_spec
from slo import importers, promql
from slo.plan import plan
from tests import binaries
from tests.support import free_port

pytestmark = pytest.mark.integration

DAY = 86400
AVERAGES_RECORDED = re.compile(r"avg_over_time\((mcp_slo:sli_(?:total|bad):rate5m)\[(\w+)\]\)")


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory) -> Iterator[tuple[str, history.History]]:
    for binary in ("prometheus", "promtool"):
        binaries.require(binary)
    work = tmp_path_factory.mktemp("recorded")
    scenario = load("regression")  # incidents of every size in the history
    # 2 hours before the 30 days: a 30d window then starts within the history (a series' first
    # hourly sample counts a whole hour at the rate of the minutes it saw)
    past = history.generate(scenario, end=time.time(), days=30 + 2 / 24, rates={s: 20.0 for s in scenario.versions},
                            seed=3)
    series = recorded.record(past, plan(importers.load(default_slo_spec()).spec))
    targets = {(s, v): {"job": "mcp", "instance": f"{s}-{v}"} for s in scenario.versions for v in scenario.versions[s]}
    history.write_openmetrics(past, work / "raw.om", targets)
    recorded.write_openmetrics(series, work / "recorded.om", past.timestamps[-1])
    loads = [history.Backfill(work / f, work / "data") for f in ("raw.om", "recorded.om")]
    for load_ in loads:
        load_.wait()
    port = free_port()
    proc = start_prometheus(work / "prometheus", port, [], data_dir=work / "data")
    try:
        yield f"http://127.0.0.1:{port}", past
    finally:
        proc.stop()


def query(url: str, expr: str, at: float) -> dict[tuple, float]:
    r = httpx.get(f"{url}/api/v1/query", params={"query": expr, "time": f"{at:.3f}"}, timeout=30)
    assert r.status_code == 200, (expr, r.text)
    return {tuple(sorted((k, v) for k, v in s["metric"].items() if k != "__name__")): float(s["value"][1])
            for s in r.json()["data"]["result"]}


def generated_rules(kind: str) -> list[dict]:
    """The generated rules of one kind, "record" or "alert"."""
    rules = []
    for f in default_rule_files():
        for group in yaml.safe_load(Path(f).read_text())["groups"]:
            rules += [r for r in group["rules"] if kind in r]
    return rules


def raw_five_minute_rates() -> dict[str, list[tuple[str, dict]]]:
    """The generated 5m SLI rate rules over the raw counters only (as promtool backfills them)."""
    from alerts import rules

    out: dict[str, list[tuple[str, dict]]] = {}
    for group in rules.backfill_groups(importers.load(default_slo_spec()).spec):
        for r in group["rules"]:
            if r["record"].endswith(":rate5m"):
                out.setdefault(r["record"], []).append((r["expr"], r.get("labels", {})))
    return out


def evaluate(url: str, rule: dict, at: float, dense_from: float) -> dict[tuple, float]:
    """What Prometheus computes for one rule at `at` (with the rule's labels added)."""
    found = AVERAGES_RECORDED.search(rule["expr"])
    if found and at - durations.parse(found.group(2)) < dense_from:
        # the recorded 5m rates are thinned out there: average the raw rates every minute instead
        name, window = found.groups()
        got: dict[tuple, float] = {}
        for expr, labels in raw_five_minute_rates()[name]:
            for key, value in query(url, f"avg_over_time(({expr})[{window}:1m])", at).items():
                got[tuple(sorted({**dict(key), **labels}.items()))] = value
        return got
    labels = rule.get("labels", {})
    return {tuple(sorted({**dict(k), **labels}.items())): v for k, v in query(url, rule["expr"], at).items()}


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)


def instants(past: history.History) -> list[tuple[float, bool]]:
    """(time, in the sparse part): rule instants where every written series has a sample."""
    end = past.timestamps[-1]
    last = end - end % recorded.SPARSE_STEP
    hour = 3600 * (end // 3600) - 3600 + recorded.HOURLY_OFFSET  # an hourly instant within the dense part
    dense = [last, last - DAY - 6 * 60, last - 3 * DAY + 13 * 60, hour]
    sparse = [last - 14 * DAY + 8 * 60,  # minutes into the filesystem outage
              last - 14 * DAY + 32 * 60,  # after it: the long windows still burn, the short ones no more
              last - 9 * DAY + 10 * 3600,  # ten hours into the analytics slow queries
              last - 25 * DAY + 4 * 60, last - 29 * DAY - 12 * 3600, hour - 20 * DAY]
    return [(t, False) for t in dense] + [(t, True) for t in sparse]


def test_every_recorded_series_is_what_prometheus_computes_from_the_rules(backfilled):
    url, past = backfilled
    rules = generated_rules("record")
    assert len({r["record"] for r in rules}) >= 25
    worst, compared = 0.0, 0
    for at, sparse in instants(past):
        hourly_instant = at % 3600 == recorded.HOURLY_OFFSET
        by_name: dict[str, dict[tuple, float]] = {}
        for rule in rules:
            if (rule["record"].endswith("_hourly") or rule["record"] == promql.HOURLY_TIME) != hourly_instant:
                continue  # the hourly group runs at its own instants, the others every minute
            dense_from = past.timestamps[-1] - recorded.DENSE_SPAN
            by_name.setdefault(rule["record"], {}).update(evaluate(url, rule, at, dense_from))
        for name, expected in by_name.items():
            assert expected, (name, at, sparse)  # the rules give every series a value there
            ours = query(url, name, at)
            assert set(ours) == set(expected), (name, at, sparse, set(ours) ^ set(expected))
            for key, value in expected.items():
                assert same(ours[key], value), (name, key, at, sparse, ours[key], value)
                if value:
                    worst = max(worst, abs(ours[key] - value) / abs(value))
                compared += 1
    print(f"{compared} recorded values compared, worst relative difference {worst:.2e}")
    assert compared > 400


def test_the_30d_error_ratio_is_the_exact_ratio_of_the_history(backfilled):
    """The design goal of the hourly rules: the recorded 30d ratio within 0.1% of the raw
    counters' exact ratio over the window."""
    url, past = backfilled
    at = past.timestamps[-1] - past.timestamps[-1] % 60
    sel = 'service="filesystem",method="tools/call"'
    exact = query(url, f'sum(increase(mcp_operations_total{{{sel},status=~"error|timeout"}}[30d])) / '
                       f'sum(increase(mcp_operations_total{{{sel},status!="cancelled"}}[30d]))', at)
    ours = query(url, 'mcp_slo:error_ratio:rate30d{service="filesystem",slo="availability",tool=""}', at)
    assert len(exact) == len(ours) == 1
    assert next(iter(ours.values())) == pytest.approx(next(iter(exact.values())), rel=1e-3)


def test_the_alerts_of_the_history_are_active_where_the_alert_rules_hold(backfilled):
    """ALERTS (pending or firing) over the history wherever, and only where, a real
    Prometheus finds the burn-rate and budget-exhausted rules' expressions true; their
    ALERTS_FOR_STATE says since when (the pending-to-firing step itself is unit-tested)."""
    url, past = backfilled
    rules = [r for r in generated_rules("alert") if r["alert"] in ("MCPSLOErrorBudgetBurn", "MCPSLOErrorBudgetExhausted")]
    active = 0
    for at, _ in instants(past):
        if at % 60:
            continue  # the alert rules run every minute
        expected = set()
        for rule in rules:
            for key in query(url, rule["expr"], at):
                expected.add(tuple(sorted({**dict(key), **rule["labels"], "alertname": rule["alert"]}.items())))
        # the samples written at this instant: the backfill writes no staleness marker, so an
        # alert that ended in the last 5 minutes would still be found through the lookback
        ours = {tuple(sorted((k, v) for k, v in key if k != "alertstate"))
                for key in query(url, f"ALERTS and timestamp(ALERTS) == {at:.0f}", at)}
        assert ours == expected, (at, ours ^ expected)
        since = query(url, f"ALERTS_FOR_STATE and timestamp(ALERTS_FOR_STATE) == {at:.0f}", at)
        assert set(since) == expected and all(at - 30 * DAY <= v <= at for v in since.values())
        active += len(expected)
    assert active >= 4  # the instants in incidents have some


def test_an_alert_is_pending_for_its_for_then_fires():
    at = np.arange(0, 10 * 60_000, 60_000)
    on = np.array([0, 1, 1, 1, 1, 0, 1, 1, 1, 1], dtype=bool)
    since = recorded._active_since(on, at)
    assert list(since[on]) == [60_000] * 4 + [360_000] * 4
    firing = on & (at - since >= 120_000)  # for: 2m, as recorded._alerts applies it
    assert list(firing) == [False, False, False, True, True, False, False, False, True, True]

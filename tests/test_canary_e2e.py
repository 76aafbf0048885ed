"""Canaries end to end on the demo stacks (the engine in process, Prometheus with the
generated rules, Alertmanager with the generated routes): the regression scenario's
v2 is rolled back, the gate says so, Prometheus raises MCPCanaryRegression from the
engine's metric and Alertmanager routes it to the release receiver; the healthy
scenario's v2 is promoted. Both decision logs cover the canaries' whole life, judged over
the history at start as the engine's ticks would have."""

from __future__ import annotations

import time
from itertools import pairwise

import httpx
import pytest

from demo.stack import StackConfig, start_stack
from slo.canary.collect import AGE_STEPS
from slo.engine.answers import parse_time
from slo.engine.scheduler import HISTORY_STEP
from tests import binaries
from tests.support import wait_until

pytestmark = pytest.mark.integration


def decisions(stack) -> dict[str, dict]:
    r = httpx.get(f"{stack.engine_url}/api/v1/canaries", timeout=5)
    return {d["service"]: d for d in r.json()} if r.status_code == 200 else {}


def test_the_regression_canaries_are_rolled_back_and_the_release_managers_told(regression_stack):
    found = wait_until(lambda: (lambda d: d if len(d) == 2 else None)(decisions(regression_stack)), timeout=60,
                       interval=0.5, what="a decision for both canaries")
    for service, d in found.items():
        assert (d["baseline"], d["canary"], d["verdict"]) == ("v1", "v2", "rollback"), d
        assert d["score"] < 50 and d["reason"] and d["metrics"], d
    gate = httpx.get(f"{regression_stack.engine_url}/api/v1/gate/analytics", timeout=5)
    assert gate.status_code == 409 and gate.json()["verdict"] == "rollback"

    binaries.wait_for_promql(regression_stack.prometheus_url,
                             'ALERTS{alertname="MCPCanaryRegression",alertstate="firing",service="analytics"}',
                             timeout=240)

    def routed_to_release():
        alerts = httpx.get(f"{regression_stack.alertmanager_url}/api/v2/alerts", timeout=5).json()
        return [a for a in alerts if a["labels"].get("alertname") == "MCPCanaryRegression"
                and [r["name"] for r in a["receivers"]] == ["release"]] or None

    wait_until(routed_to_release, timeout=60, interval=0.5, what="the canary alert routed to the release receiver")


def test_the_healthy_canaries_are_promoted_on_the_first_tick(healthy_stack):
    """The healthy scenario's canaries have served 12 h at the demo's diurnal traffic (the
    history): enough for the judge to promote both whatever the hour, the filesystem's at a
    0.13% error ratio too (3 h were not enough on a Sunday night)."""
    found = wait_until(lambda: (lambda d: d if len(d) == 2 else None)(decisions(healthy_stack)), timeout=60,
                       interval=0.5, what="a decision for both canaries")
    for service, d in found.items():
        assert d["verdict"] == "promote", d
        live = [d for d in healthy_stack.engine.store.canary_history(service)
                if d.evaluated_at >= healthy_stack.engine.health.started_at]
        first = live[0]  # the engine's first tick (the decisions before it are its past, judged)
        # Its age: from the canary's first sample (one history step before its first calls) to
        # that tick, as the age query sees it: the first step of its subquery (max_lookback /
        # AGE_STEPS, aligned to multiples of it) that has the series, so up to one step younger.
        steps = healthy_stack.history.timestamps
        since_first = first.evaluated_at - born(healthy_stack) + float(steps[-1] - steps[-2])
        assert first.result.verdict == "promote", first
        assert since_first - 24 * 3600 / AGE_STEPS - 1 <= first.result.canary_age_seconds <= since_first + 1, \
            (first, since_first)
        errors = next(m for m in d["metrics"] if m["name"] == "errors" and m["tool"] is None)
        assert errors["sequential"]["planned_information"] >= 1 and errors["rejected_by"] is None
    gate = httpx.get(f"{healthy_stack.engine_url}/api/v1/gate/filesystem", timeout=5)
    assert gate.status_code == 200 and gate.json()["verdict"] == "promote"


# --- the canaries' past, judged at start -------------------------------------------------------


def canary_log(stack, service: str) -> list[dict]:
    answer = httpx.get(f"{stack.engine_url}/api/v1/canaries/{service}/history", params={"evidence": "false"},
                       timeout=10)
    answer.raise_for_status()
    return answer.json()


def born(stack) -> float:
    """When the scenario's canary started: its age before the history's end."""
    return float(stack.history.timestamps[-1]) - stack.scenario.canary_age


def whole_life(stack, service: str) -> list[dict]:
    """The service's decision log once its past is judged (in the engine's background from its
    start): decisions from the canary's first steps to now, none more than two steps apart."""
    def covered():
        log = canary_log(stack, service)
        times = [parse_time(d["evaluated_at"]) for d in log]
        gaps = [b - a for a, b in pairwise(times)]
        complete = times and times[0] < born(stack) + 3 * HISTORY_STEP and max(gaps, default=0.0) <= 2 * HISTORY_STEP
        return log if complete else None

    return wait_until(covered, timeout=60, interval=0.5, what=f"{service}'s canary judged over its life")


def assert_judged_over_its_life(stack, service: str) -> list[dict]:
    log = whole_life(stack, service)
    times = [parse_time(d["evaluated_at"]) for d in log]
    ages = [d["canary_age_seconds"] for d in log]
    assert times == sorted(times) and ages == sorted(ages), "oldest first, the canary ageing"
    assert times[-1] - times[0] >= 0.9 * (time.time() - born(stack)), "at least 90% of its life"
    assert {(d["baseline"], d["canary"]) for d in log} == {("v1", "v2")}
    return log


@pytest.mark.parametrize("service", ["filesystem", "analytics"])
def test_the_regression_canarys_life_shows_it_rolled_back_within_minutes(regression_stack, service):
    log = assert_judged_over_its_life(regression_stack, service)
    verdicts = [d["verdict"] for d in log]
    first = verdicts.index("rollback")
    assert set(verdicts[:first]) <= {"inconclusive"}  # only while too little had been seen
    assert log[first]["canary_age_seconds"] <= 15 * 60, log[first]
    assert verdicts[-1] == "rollback"


@pytest.mark.parametrize("service", ["filesystem", "analytics"])
def test_the_healthy_canarys_life_shows_it_promoted_once_enough_was_seen(healthy_stack, service):
    log = assert_judged_over_its_life(healthy_stack, service)
    verdicts = [d["verdict"] for d in log]
    assert verdicts[0] == "inconclusive", log[0]  # too little seen yet, five minutes in
    assert verdicts[-1] == "promote"
    # never rolled back: v2 behaves as v1 (the history's counters start at 0 before the canary's
    # first calls; from its first count, rate() extrapolated buckets unevenly: false rollbacks)
    assert "rollback" not in verdicts, [d for d in log if d["verdict"] == "rollback"][:2]


@pytest.mark.parametrize("stack_name", ["regression_stack", "healthy_stack"])
def test_judging_the_past_again_writes_nothing_new(stack_name, request):
    stack = request.getfixturevalue(stack_name)
    for service in ("filesystem", "analytics"):
        whole_life(stack, service)
    # a live tick is stamped when it starts and written within its deadline (0.8 of the
    # interval): one interval back, every tick stamped before `until` is in the store
    until = time.time() - stack.config.engine_interval
    before = {s: len([d for d in stack.engine.store.canary_history(s) if d.evaluated_at <= until])
              for s in ("filesystem", "analytics")}
    assert stack.engine.judge_history(since=until - stack.config.history_days * 86400, until=until) == 0
    assert before == {s: len([d for d in stack.engine.store.canary_history(s) if d.evaluated_at <= until])
                      for s in ("filesystem", "analytics")}


def test_a_restart_on_the_kept_workdir_judges_nothing_twice(tmp_path):
    """`mcp-slo demo --workdir` a second time: the engine's store is kept, and the past its first
    run judged (and its live ticks) are not judged again."""
    config = StackConfig(workdir=tmp_path, scenario="healthy", history_days=1, seed=42, engine=True,
                         engine_interval=5.0, scrape_interval="1s")

    def judged(stack) -> dict[str, list[float]]:
        return {s: [d.evaluated_at for d in stack.engine.store.canary_history(s)] for s in ("filesystem", "analytics")}

    stack = start_stack(config)
    try:
        wait_until(lambda: stack.engine.health.history_decisions, timeout=60, what="the past judged")
        before = judged(stack)
    finally:
        stack.close()
    stack = start_stack(config)
    try:
        assert stack.history is None  # kept, not drawn again
        wait_until(lambda: stack.engine.health.history_decisions is not None, timeout=60, what="the past judged")
        assert stack.engine.health.history_decisions == 0
        after = judged(stack)
    finally:
        stack.close()
    for service, times in after.items():
        assert times[:len(before[service])] == before[service]  # what the first run wrote, as it was
        assert len(set(times)) == len(times)

"""The canary judgement benchmark runs, and its comparators and shortcuts behave."""

from __future__ import annotations

import numpy as np

from bench import bench_canary
from bench.bench_canary import Scenario, Task, run_task
from tests.test_bench_smoke import _positive


def test_quick_run_returns_positive_results():
    results = bench_canary.run(quick=True)
    assert [r.name for r in results] == ["canary-aa", "canary-power-errors", "canary-power-latency",
                                         "canary-time", "canary-judges"]
    for result in results:
        _positive(result)
        assert result.notes and result.report()
    aa = {r.name: r for r in results}["canary-aa"]
    assert aa.goal is not None and aa.goal_met is not None


def _runs(scenario: Scenario, runs: int, ticks: int, exact: bool = False) -> dict[str, np.ndarray]:
    return run_task(Task(scenario, chunk=0, runs=runs, ticks=ticks, exact=exact, promote_runs=runs))


def test_every_judge_rolls_back_half_the_requests_failing():
    broken = Scenario("independent", "errors", rate=20.0, autocorrelated=False, errors=(0.01, 0.5),
                      medians=(0.05, 0.05))
    out = _runs(broken, runs=4, ticks=bench_canary.KAYENTA_EVERY)
    for judge in ("mcp-slo", "kayenta", "flagger", "flagger-promoting"):
        assert (out[judge] >= 0).all(), judge
    # ours as soon as it may (min_requests), Flagger at its 5th failed minute
    assert (out["canary_at_rollback"] < 2 * bench_canary.MIN_REQUESTS).all()
    assert (out["flagger"] == 2 * bench_canary.FLAGGER_THRESHOLD - 1).all()


def test_comparators_pass_identical_series():
    x = np.random.default_rng(1).lognormal(size=200)
    assert abs(bench_canary.mann_whitney_z(x, x)) < 1e-9
    assert bench_canary.mann_whitney_z(x * 2, x) > 5
    assert not bench_canary.kayenta_metric_fails(x, x)
    assert bench_canary.kayenta_metric_fails(x * 2, x)
    assert not bench_canary.kayenta_metric_fails(x * 1.2, x)  # within Kayenta's 25% tolerance


def test_histogram_p99_as_prometheus():
    buckets = np.zeros(len(bench_canary.BOUNDS))
    buckets[2] = 98  # (0.05, 0.1]
    buckets[3] = 2  # (0.1, 0.5]: rank 99 is halfway into this bucket
    assert np.isclose(bench_canary.histogram_p99(buckets), 0.3)
    buckets[-1] = 5  # in +Inf: the highest finite bound
    assert np.isclose(bench_canary.histogram_p99(buckets), bench_canary.BOUNDS[-2])
    assert np.isnan(bench_canary.histogram_p99(np.zeros(len(bench_canary.BOUNDS))))


def test_shortcuts_find_what_judging_every_tick_finds():
    # 10x the traffic, so an A/A canary is promoted within a few minutes
    busy = [Scenario("independent", case, rate=200.0, autocorrelated=False, errors=(0.01, 0.01 * factor),
                     medians=(0.05, 0.05)) for case, factor in (("aa", 1.0), ("errors", 2.0))]
    outs, calls = {}, np.zeros(2)
    for scenario in busy:
        fast, exact = _runs(scenario, 3, 40), _runs(scenario, 3, 40, exact=True)
        for key in ("mcp-slo", "promote", "rollback_test"):
            assert (fast[key] == exact[key]).all(), key
        calls += fast["judge_calls"].sum(), exact["judge_calls"].sum()
        outs[scenario.case] = exact
    assert calls[0] < calls[1] / 2
    assert (outs["aa"]["promote"] >= 0).all() and (outs["aa"]["mcp-slo"] < 0).all()
    assert (outs["errors"]["mcp-slo"] >= 0).all()
    assert (outs["errors"]["rollback_test"] == bench_canary.TESTS.index("errors")).all()

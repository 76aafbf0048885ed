"""The canary judge's verdicts on counts shaped like the engine's: a baseline with 90% of
the traffic, a canary with 10%, latency histograms on the collector's default buckets."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from collector.names import DEFAULT_BUCKETS
from slo.canary import INCONCLUSIVE, PROMOTE, ROLLBACK, Comparison, Counts
from slo.canary import judge as typed_judge
from slo.canary import stats
from slo.canary.judge import CLES_TAU, FAILED, INSUFFICIENT, PASSED


def counts(requests: float, error_ratio: float, median: float = 0.12, sigma: float = 0.9) -> Counts:
    """Expected counts for `requests` with lognormal latencies (median in seconds)."""
    buckets = []
    for bound in (*DEFAULT_BUCKETS, math.inf):
        share = 1.0 if bound == math.inf else stats.normal_cdf((math.log(bound) - math.log(median)) / sigma)
        buckets.append((bound, requests * share))
    return Counts(requests=requests, errors=requests * error_ratio, buckets=tuple(buckets))


def compare(baseline: Counts, canary: Counts, **kwargs) -> Comparison:
    kwargs.setdefault("latency_threshold", 0.5)
    return Comparison(service="search-api", baseline="v1", canary="v2", overall=(baseline, canary), **kwargs)


def judge(c: Comparison):
    """The judge's decision with its evidence in JSON form, as the store keeps it."""
    d = typed_judge(c)
    return dataclasses.replace(d, metrics=[m.to_json() for m in d.metrics])


def metric(decision, name, tool=None):
    (found,) = [m for m in decision.metrics if m["name"] == name and m["tool"] == tool]
    return found


def test_identical_versions_with_lots_of_traffic_are_promoted():
    decision = judge(compare(counts(90_000, 0.01), counts(10_000, 0.01)))
    assert decision.verdict == PROMOTE
    assert decision.score == 100
    assert "promote" in decision.reason and "10,000 requests" in decision.reason
    assert [m["name"] for m in decision.metrics] == ["errors", "latency", "slow_share"]
    for m in decision.metrics:
        assert m["status"] == PASSED and m["tool"] is None
        # 3 tests, alpha 0.01: 90% of alpha / 3 to each boundary, 10% / 3 to each e-value
        assert m["sequential"]["boundary"] == pytest.approx(stats.sequential_boundary(0.009 / 3))
        assert m["e_threshold"] == pytest.approx(3 / 0.001)
        assert m["sequential"]["planned_information"] >= 1 and m["rejected_by"] is None
        assert m["e_value"] < 1 and m["p_value"] > 0.4 and m["power"] >= 0.8
    errors = metric(decision, "errors")
    assert errors["baseline"] == {"requests": 90_000, "bad": pytest.approx(900), "ratio": pytest.approx(0.01)}
    assert errors["effect"]["value"] == pytest.approx(1.0)
    assert errors["effect"]["low"] < 1.0 < errors["effect"]["high"]
    latency = metric(decision, "latency")
    assert latency["effect"]["value"] == pytest.approx(0.5)
    assert latency["effect"]["low"] < 0.5 < latency["effect"]["high"]
    json.dumps(decision.metrics, allow_nan=False)  # evidence is plain JSON


def test_two_points_more_errors_rolls_back():
    decision = judge(compare(counts(90_000, 0.01), counts(10_000, 0.03)))
    assert decision.verdict == ROLLBACK and decision.score == 0
    assert "v2 fails 3.0% of requests against 1.0% for v1" in decision.reason
    assert "needs p <=" in decision.reason and decision.reason.endswith("roll back.")
    errors = metric(decision, "errors")
    assert errors["status"] == FAILED and errors["rejected_by"] in ("boundary", "e-value")
    assert errors["effect"]["value"] == pytest.approx(3.0) and errors["effect"]["low"] > 2.0
    assert metric(decision, "latency")["status"] == PASSED
    json.dumps(decision.metrics, allow_nan=False)


def test_one_point_more_errors_is_caught_with_a_few_thousand_canary_requests():
    decision = judge(compare(counts(27_000, 0.01), counts(3_000, 0.02)))
    assert decision.verdict == ROLLBACK
    assert "2.0%" in decision.reason


def test_fifty_percent_slower_canary_rolls_back():
    decision = judge(compare(counts(90_000, 0.01), counts(10_000, 0.01, median=0.18)))
    assert decision.verdict == ROLLBACK and decision.score == 0
    latency = metric(decision, "latency")
    assert latency["status"] == FAILED and latency["effect"]["value"] > 0.55
    assert metric(decision, "errors")["status"] == PASSED
    assert "slower" in decision.reason


def test_tiny_traffic_is_inconclusive_even_when_it_looks_bad():
    for error_ratio in (0.01, 0.2):
        decision = judge(compare(counts(900, 0.01), counts(100, error_ratio)))
        assert decision.verdict == INCONCLUSIVE
        assert "100 requests, fewer than the 200 needed" in decision.reason


def test_too_little_information_is_inconclusive_and_says_how_much_is_needed():
    decision = judge(compare(counts(9_000, 0.01), counts(1_000, 0.01)))
    assert decision.verdict == INCONCLUSIVE
    errors = metric(decision, "errors")
    assert errors["status"] == INSUFFICIENT and errors["power"] < 0.8
    assert errors["required_requests"] > 1_000
    assert f"about {errors['required_requests']:,} needed" in decision.reason
    # With that many canary requests (same share, same ratios) the judge promotes.
    needed = errors["required_requests"] * 1.05
    later = judge(compare(counts(9 * needed, 0.01), counts(needed, 0.01)))
    assert later.verdict == PROMOTE


def planned_size(error_ratio: float = 0.01) -> int:
    """Canary requests (10% share) at which the errors test reaches its planned information."""
    errors = metric(judge(compare(counts(9_000, error_ratio), counts(1_000, error_ratio))), "errors")
    return errors["required_requests"]


def test_the_planned_regression_is_caught_by_the_boundary_at_the_planned_size():
    n = planned_size()
    # The expected counts of a doubled error ratio at the planned information: the sequential
    # boundary rejects; the always-valid e-value alone would not yet.
    decision = judge(compare(counts(9 * n, 0.01), counts(n, 0.02)))
    errors = metric(decision, "errors")
    assert decision.verdict == ROLLBACK and errors["rejected_by"] == "boundary", errors
    assert errors["e_value"] < errors["e_threshold"]
    assert "the sequential test needs p <=" in decision.reason
    # Early on the boundary asks for far more (O'Brien-Fleming): p <= 1 - Phi(b / sqrt(t)).
    early = metric(judge(compare(counts(9 * 0.1 * n, 0.01), counts(0.1 * n, 0.01), min_requests=1)), "errors")
    assert early["sequential"]["reject_at"] < errors["sequential"]["reject_at"] / 10


def test_a_much_larger_regression_is_caught_early_by_the_e_value():
    n = planned_size()
    decision = judge(compare(counts(9 * 0.15 * n, 0.01), counts(0.15 * n, 0.08)))
    errors = metric(decision, "errors")
    assert decision.verdict == ROLLBACK and errors["rejected_by"] == "e-value", errors
    assert errors["sequential"]["p_value"] > errors["sequential"]["reject_at"]  # too early for the boundary


def test_the_latency_plan_is_twenty_percent_slower_on_the_services_own_buckets():
    decision = judge(compare(counts(90_000, 0.01), counts(10_000, 0.01)))
    latency = metric(decision, "latency")
    # What Mann-Whitney on these buckets measures between these latencies and the same x1.2
    # (the counts are log-normal: the judge's fit recovers them).
    slower = counts(1.0, 0.0, median=0.12 * 1.2)
    same = counts(1.0, 0.0)
    per_bucket = [[hi - lo for (_, lo), (_, hi) in zip(((0, 0.0),) + c.buckets[:-1], c.buckets)]
                  for c in (slower, same)]
    expected = stats.mann_whitney_buckets(per_bucket[0], per_bucket[1]).cles
    assert latency["planned_cles"] == pytest.approx(expected, abs=1e-6)
    assert 0.54 < expected < 0.56
    slower = metric(judge(compare(counts(90_000, 0.01), counts(10_000, 0.01), latency_regression=1.5)), "latency")
    assert slower["planned_cles"] > latency["planned_cles"]
    assert slower["sequential"]["planned_information"] > latency["sequential"]["planned_information"]


def test_score_grows_with_information_and_never_promotes_early():
    scores = []
    for canary in (150, 300, 1_000, 3_000, 30_000):
        decision = judge(compare(counts(9 * canary, 0.01), counts(canary, 0.01)))
        scores.append(decision.score)
        if canary < 1_000:
            assert decision.verdict == INCONCLUSIVE
    assert scores == sorted(scores) and scores[-1] == 100


def test_page_rate_burn_rolls_back_whatever_the_comparison_says():
    decision = judge(compare(counts(90_000, 0.01), counts(10_000, 0.01), canary_page_burn=True))
    assert decision.verdict == ROLLBACK and decision.score == 0
    assert "page-tier" in decision.reason
    assert all(m["status"] == PASSED for m in decision.metrics)  # the evidence is still there
    # Even before min_requests.
    assert judge(compare(counts(900, 0.01), counts(100, 0.01), canary_page_burn=True)).verdict == ROLLBACK


def test_regression_in_one_tool_rolls_back_and_names_the_tool():
    tools = {
        "fetch": (counts(60_000, 0.01), counts(6_700, 0.01)),
        "search": (counts(30_000, 0.01), counts(3_300, 0.04)),
    }
    overall = (counts(90_000, 0.01), counts(10_000, (67 + 132) / 10_000))
    decision = judge(compare(*overall, tools=tools))
    assert decision.verdict == ROLLBACK
    assert "'search'" in decision.reason and "'fetch'" not in decision.reason
    assert metric(decision, "errors", "search")["status"] == FAILED
    fetch = [m for m in decision.metrics if m["tool"] == "fetch"]
    assert [m["name"] for m in fetch] == ["errors", "latency", "slow_share"]
    assert all(m["status"] != FAILED for m in fetch)
    assert metric(decision, "errors", "search")["e_threshold"] == pytest.approx(9 / 0.001)  # 3 metrics x 3 scopes


def test_baseline_without_errors():
    decision = judge(compare(counts(90_000, 0.0), counts(10_000, 3 / 10_000)))
    errors = metric(decision, "errors")
    assert errors["baseline"]["ratio"] == 0.0 and errors["effect"]["value"] is None  # no division by zero
    assert errors["effect"]["high"] is None and errors["effect"]["low"] > 1.0
    assert math.isfinite(errors["e_value"]) and errors["p_value"] == pytest.approx(0.1**3)
    # 3 errors against none is p = 0.001 but not yet an always-valid rejection: wait, don't promote.
    assert decision.verdict == INCONCLUSIVE and errors["status"] == INSUFFICIENT
    assert decision.reason.startswith("v2 fails 0.03% of requests against 0.0% for v1 (p ")
    assert decision.reason.endswith("not yet conclusive for a test repeated on every tick: wait.")
    json.dumps(decision.metrics, allow_nan=False)
    # Enough canary errors against none is a rollback; no errors on either side a promotion.
    assert judge(compare(counts(90_000, 0.0), counts(10_000, 8 / 10_000))).verdict == ROLLBACK
    assert judge(compare(counts(90_000, 0.0), counts(10_000, 0.0))).verdict == PROMOTE


def test_a_better_canary_is_promoted_not_rolled_back():
    decision = judge(compare(counts(90_000, 0.02), counts(10_000, 0.005, median=0.06)))
    assert decision.verdict == PROMOTE
    assert all(m["e_value"] < 1 for m in decision.metrics)


def test_evidence_matches_the_statistics():
    baseline, canary = counts(45_000, 0.01), counts(5_000, 0.014, median=0.13)
    decision = judge(compare(baseline, canary))
    share = 5_000 / 50_000
    errors = metric(decision, "errors")
    assert errors["e_value"] == stats.binomial_mixture_evalue(70, 450, share)
    assert errors["p_value"] == stats.conditional_binomial_p(70, 450, share)
    per_bucket = [[hi - lo for (_, lo), (_, hi) in zip(((0, 0.0),) + c.buckets[:-1], c.buckets)]
                  for c in (canary, baseline)]
    mw = stats.mann_whitney_buckets(*per_bucket, level=0.95)
    latency = metric(decision, "latency")
    assert latency["e_value"] == pytest.approx(stats.cles_evalue(mw, CLES_TAU), rel=1e-12)
    assert latency["effect"]["value"] == pytest.approx(mw.cles, rel=1e-12)
    p_values = [m["p_value"] for m in decision.metrics]
    assert [m["p_adjusted"] for m in decision.metrics] == pytest.approx(stats.holm(p_values))


def test_fractional_counts_and_no_histograms():
    decision = judge(Comparison("search-api", "v1", "v2", (Counts(9_000.4, 90.3), Counts(1_000.6, 10.2))))
    assert [m["name"] for m in decision.metrics] == ["errors"]
    assert decision.verdict == INCONCLUSIVE


@pytest.mark.parametrize("change, message", [
    (dict(canary=Counts(-1.0, 0.0)), "canary v2: requests"),
    (dict(canary=Counts(100.0, 150.0)), "150 errors for 100 requests"),
    (dict(canary=Counts(100.0, 1.0, ((0.5, 50.0), (1.0, 100.0)))), "le=+Inf"),
    (dict(canary=Counts(100.0, 1.0, ((0.5, 50.0), (0.1, 60.0), (math.inf, 100.0)))), "ascending"),
    (dict(canary=Counts(100.0, 1.0, ((0.25, 50.0), (math.inf, 100.0)))), "different buckets"),
    (dict(threshold=0.3), "0.3 s is not a bucket bound"),
])
def test_bad_input_is_named(change, message):
    baseline = Counts(900.0, 9.0, ((0.5, 450.0), (math.inf, 900.0)))
    canary = change.get("canary", Counts(100.0, 1.0, ((0.5, 50.0), (math.inf, 100.0))))
    with pytest.raises(ValueError, match=message.replace("+", r"\+")):
        judge(compare(baseline, canary, latency_threshold=change.get("threshold", 0.5)))

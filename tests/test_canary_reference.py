"""The canary judge gives the same numbers since its special functions come from scipy.

tests/data/canary_reference.json was generated ONCE, by running this module
(`python -m tests.test_canary_reference`) against the hand-written special functions
(normal distribution, incomplete beta, Beta quantiles, binomial tails) that slo/canary/stats.py
had before it used scipy (commit 54c31a8). It must not be regenerated: it is the record of what
those functions gave. The tests check that the statistics, the judge's decisions and evidence,
and the benchmark's decisions still agree with it: numbers within 1e-9 relative (z-scores and
log-probabilities, which can be 0, within 1e-9 absolute), the numbers in the reasons as numbers,
everything else equal.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import re
import sys

import pytest

from bench import bench_canary
from slo.canary import Counts, judge, stats
from slo.canary.judge import Comparison
from tests.test_canary_judge import compare, counts

REFERENCE = pathlib.Path(__file__).parent / "data" / "canary_reference.json"
REL = 1e-9

# The error test's planned size at 1% errors and a 10% share (test_canary_judge.planned_size).
PLANNED = 1868
BOUNDS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, math.inf)
HISTOGRAMS = (
    ([0, 10, 30], [30, 10, 0]),
    ([30, 10, 0], [0, 10, 30]),
    ([5, 0], [7, 0]),
    ([3, 1, 4, 1, 5, 9, 2, 6, 5], [30, 12, 40, 11, 50, 90, 20, 60, 51]),
    ([0, 0, 100, 0, 0, 0, 0, 0, 0], [10, 20, 300, 40, 5, 0, 0, 0, 1]),
    ([120.5, 800.25, 3000.0, 900.0, 150.0, 20.0, 4.0, 1.0, 0.0],
     [1200.0, 7500.0, 27500.0, 8000.0, 1300.0, 180.0, 30.0, 9.0, 2.0]),
)


def judge_cases() -> dict[str, Comparison]:
    """The judge's test cases (tests/test_canary_judge.py), and big services whose
    error tests reach far into the binomial and Beta tails."""
    n = PLANNED
    tools = {"fetch": (counts(60_000, 0.01), counts(6_700, 0.01)),
             "search": (counts(30_000, 0.01), counts(3_300, 0.04))}
    cases = {
        "identical": compare(counts(90_000, 0.01), counts(10_000, 0.01)),
        "three_percent": compare(counts(90_000, 0.01), counts(10_000, 0.03)),
        "two_percent_3000": compare(counts(27_000, 0.01), counts(3_000, 0.02)),
        "fifty_percent_slower": compare(counts(90_000, 0.01), counts(10_000, 0.01, median=0.18)),
        "tiny_traffic": compare(counts(900, 0.01), counts(100, 0.01)),
        "tiny_traffic_bad": compare(counts(900, 0.01), counts(100, 0.2)),
        "too_little": compare(counts(9_000, 0.01), counts(1_000, 0.01)),
        "too_little_later": compare(counts(9 * 1961.4, 0.01), counts(1961.4, 0.01)),
        "planned_at_planned_size": compare(counts(9 * n, 0.01), counts(n, 0.02)),
        "planned_early": compare(counts(9 * 0.1 * n, 0.01), counts(0.1 * n, 0.01), min_requests=1),
        "much_larger_early": compare(counts(9 * 0.15 * n, 0.01), counts(0.15 * n, 0.08)),
        "latency_plan_1.5": compare(counts(90_000, 0.01), counts(10_000, 0.01), latency_regression=1.5),
        "page_burn": compare(counts(90_000, 0.01), counts(10_000, 0.01), canary_page_burn=True),
        "page_burn_tiny": compare(counts(900, 0.01), counts(100, 0.01), canary_page_burn=True),
        "one_tool": compare(counts(90_000, 0.01), counts(10_000, (67 + 132) / 10_000), tools=tools),
        "baseline_no_errors_3": compare(counts(90_000, 0.0), counts(10_000, 3 / 10_000)),
        "baseline_no_errors_8": compare(counts(90_000, 0.0), counts(10_000, 8 / 10_000)),
        "no_errors": compare(counts(90_000, 0.0), counts(10_000, 0.0)),
        "better_canary": compare(counts(90_000, 0.02), counts(10_000, 0.005, median=0.06)),
        "evidence": compare(counts(45_000, 0.01), counts(5_000, 0.014, median=0.13)),
        "fractional_no_histograms": Comparison("search-api", "v1", "v2", (Counts(9_000.4, 90.3),
                                                                          Counts(1_000.6, 10.2))),
        # Far tails: a much better canary on a big service (the e-value's Beta tail is below
        # 1e-308), and a hundred million requests.
        "big_better_canary": compare(counts(900_000, 0.02), counts(100_000, 0.005, median=0.06)),
        "big_canary_without_errors": compare(counts(9e6, 0.01), counts(1e6, 0.0)),
        "big_half_the_errors": compare(counts(9e7, 0.01), counts(1e7, 0.005)),
        "hundred_million": compare(counts(9e8, 0.01), counts(1e8, 0.0102, median=0.1205)),
    }
    for canary in (150, 300, 1_000, 3_000, 30_000):
        cases[f"score_{canary}"] = compare(counts(9 * canary, 0.01), counts(canary, 0.01))
    return cases


def decision_record(comparison: Comparison) -> dict:
    decision = judge(comparison)
    return {"verdict": decision.verdict, "score": decision.score, "reason": decision.reason,
            "metrics": [m.to_json() for m in decision.metrics]}


def stats_record() -> dict[str, list]:
    """[arguments, result] of the statistics the judge uses, on the inputs of
    tests/test_canary_stats.py and further into the tails."""
    out: dict[str, list] = {}

    def record(name, *args, **kwargs):
        value = getattr(stats, name)(*args, **kwargs)
        if dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)
        out.setdefault(name, []).append([[list(a) if isinstance(a, tuple) else a for a in args], kwargs, value])

    for x in (-40.0, -37.0, -30.0, -10.0, -3.0, -1.0, 0.0, 0.5, 1.959963984540054, 3.0, 8.0, 10.0):
        record("normal_cdf", x)
    for x in (-100.0, -37.0, -30.0 - 1e-9, -29.0, -20.0, -5.0, -1.0, 0.0, 3.0, 10.0):
        record("normal_logcdf", x)
    for p in (1e-300, 1e-100, 1e-20, 1e-8, 0.001, 0.02425, 0.1, 0.3, 0.49, 0.5, 0.6, 0.7, 0.8, 0.95, 0.975,
              0.99, 0.999, 0.9999, 1 - 1e-12):
        record("normal_ppf", p)
    for k, n, p in ((0, 10, 0.3), (1, 10, 0.3), (10, 10, 0.3), (3, 20, 0.1), (7, 30, 0.5), (150, 200, 0.1),
                    (60, 200, 0.5), (1, 200, 1e-4), (4, 4, 0.1), (70, 520, 0.1), (100, 1000, 0.1),
                    (5_000_001, 10**7, 0.5), (50_000_001, 10**8, 0.5), (1, 10**8, 1e-6), (130, 10**8, 1e-6),
                    (180, 10**8, 1e-6), (10_500, 100_000, 0.1), (12_000, 100_000, 0.1), (0.5, 10, 0.3)):
        record("binom_sf", k, n, p)
    for k, m in ((3, 20), (0, 20), (20, 20), (0, 0), (1, 1000), (70, 10_000), (199, 20_000),
                 (10_000, 1_000_000), (1_000_000, 100_000_000)):
        record("binomial_interval", k, m, 0.95)
        record("binomial_interval", k, m, 0.99)
    for c, b, s in ((0, 0, 0.1), (0, 9, 0.1), (3, 10, 0.1), (7, 10, 0.1), (12, 3, 0.5), (5, 0, 0.1),
                    (40, 200, 0.2), (2.6, 9.4, 0.1), (4, 0, 0.1), (70, 450, 0.1), (100, 900, 0.1),
                    (300, 900, 0.1), (1_020_000, 9_000_000, 0.1)):
        record("conditional_binomial_p", c, b, s)
    for c, b, s in ((0, 0, 0.1), (3, 10, 0.1), (7, 10, 0.1), (12, 3, 0.5), (5, 0, 0.1), (40, 200, 0.2),
                    (70, 450, 0.1), (50, 1800, 0.1), (500, 18_000, 0.1), (0, 8_000, 0.1), (0, 90_000, 0.1),
                    (50_000, 900_000, 0.1), (1_020_000, 9_000_000, 0.1), (100, 900, 0.1), (300, 900, 0.1),
                    (3, 0, 0.1), (30, 0, 0.1), (2_000, 0, 0.01), (10, 100, 0.02), (500, 500, 0.5)):
        record("binomial_mixture_evalue", c, b, s)
    record("binomial_mixture_evalue", 10, 40, 0.2, prior=(0.5, 2.0))
    record("binomial_mixture_evalue", 10, 40, 0.2, prior=(16.0, 40.0))
    for share in (0.01, 0.1, 0.5, 0.9):
        record("default_prior", share)
    for effect, variance, tau in ((0.05, 1e-3, 0.1), (-0.02, 1e-3, 0.1), (0.0, 1e-2, 0.1), (0.1, 1e-4, 0.1),
                                  (0.3, 0.05, 0.2), (-0.05, 1e-4, 0.1), (-0.3, 1e-6, 0.1), (0.2, 1e-6, 0.1)):
        record("normal_mixture_evalue", effect, variance, tau)
    for canary, baseline in HISTOGRAMS:
        record("mann_whitney_buckets", canary, baseline)
        record("mann_whitney_buckets", canary, baseline, level=0.99)
        if len(canary) == len(BOUNDS):
            record("lognormal_fit", baseline, BOUNDS)
            for factor in (1.2, 1.5):
                record("planned_cles", baseline, BOUNDS, factor)
                record("shifted_cles", baseline, BOUNDS, factor)
    for alpha in (0.003, 0.01, 0.05 / 3, 0.009 / 3, 0.009 / 9, 0.05):
        record("sequential_boundary", alpha)
        b = stats.sequential_boundary(alpha)
        record("false_rejection_bound", b)
        for power in (0.5, 0.8, 0.95):
            record("design_drift", b, power)
        drift = stats.design_drift(b, 0.8)
        for t in (0.0, 0.01, 0.3, 1.0, 1.7, 5.0):
            record("sequential_level", b, t)
            record("power_by", b, drift, t)
        for d in (0.0, 1.0, 2.0, 3.5, 6.0):
            record("crossing_probability", b, d)
    for p0, p1, share in ((0.01, 0.02, 0.5), (0.01, 0.02, 0.1), (0.0, 0.001, 0.1), (0.001, 0.002, 0.05)):
        record("fixed_sample_size", p0, p1, share)
        record("fixed_sample_size", p0, p1, share, 0.01, 0.9)
    for cles, share in ((0.6, 0.5), (0.6, 0.1), (0.55, 0.1), (0.52, 0.2)):
        record("fixed_sample_size_cles", cles, share)
        record("fixed_sample_size_cles", cles, share, 0.003, 0.8)
    return out


def bench_record() -> dict[str, dict[str, list]]:
    """The benchmark's decisions in its quick configuration (bench_canary.run(quick=True))."""
    scenarios = [bench_canary.scenario(k, c) for k in bench_canary.KINDS for c in bench_canary.CASES]
    outs = bench_canary.simulate_all(scenarios, runs=12, ticks=120, workers=1, promote_runs=4)
    keys = ("mcp-slo", "promote", "rollback_test", "judge_calls", "canary_at_rollback")
    return {f"{sc.kind}/{sc.case}": {**{key: out[key].tolist() for key in keys},
                                     "fixed_sample_rejections": out["fixed_sample"].sum(axis=1).tolist()}
            for sc, out in outs.items()}


def reference() -> dict:
    return json.loads(REFERENCE.read_text())


# Where the hand-written functions were the less accurate: the slow-share e-value on 5.7e7
# bad events was 2.4e-9 off (against 60-digit arithmetic: see test_canary_stats.py,
# test_binomial_mixture_evalue_at_a_hundred_million_requests); scipy's is 5e-12 off.
LESS_ACCURATE_BEFORE = {"hundred_million.metrics[2].e_value": 1e-8}
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?")


def same_number(got: float, expected: float, where: str) -> bool:
    absolute = REL if where.endswith(".z") or where.startswith("normal_logcdf") else 0.0  # may be 0
    rel = LESS_ACCURATE_BEFORE.get(where, REL)
    return got == expected or math.isclose(got, expected, rel_tol=rel, abs_tol=absolute)


def assert_same_text(got: str, expected: str, where: str) -> None:
    """Equal text; the numbers in it equal as numbers (0.001 is 1.0e-03)."""
    assert NUMBER.sub("#", got) == NUMBER.sub("#", expected), f"{where}: {got!r} != {expected!r}"
    for g, e in zip(NUMBER.findall(got), NUMBER.findall(expected)):
        g, e = float(g.replace(",", "")), float(e.replace(",", ""))
        assert math.isclose(g, e, rel_tol=REL), f"{where}: {got!r} != {expected!r}"


def assert_same(got, expected, where: str = "") -> None:
    """Equal structure, flags and text, numbers within REL (see the module's docstring)."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and got.keys() == expected.keys(), where
        for key in expected:
            assert_same(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, (list, tuple)) and len(got) == len(expected), where
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_same(g, e, f"{where}[{i}]")
    elif isinstance(expected, str):
        assert_same_text(got, expected, where)
    elif isinstance(expected, bool) or expected is None:
        assert got == expected, f"{where}: {got!r} != {expected!r}"
    else:
        assert same_number(got, expected, where), f"{where}: {got!r} != {expected!r}"


def test_statistics_match_the_hand_written_functions():
    recorded = reference()["stats"]
    for name, calls in recorded.items():
        for args, kwargs, expected in calls:
            value = getattr(stats, name)(*args, **kwargs)
            if dataclasses.is_dataclass(value):
                value = dataclasses.asdict(value)
            assert_same(value, expected, f"{name}{tuple(args)}")


@pytest.mark.parametrize("name", sorted(judge_cases()))
def test_judge_decisions_and_evidence_match(name):
    assert_same(decision_record(judge_cases()[name]), reference()["judge"][name], name)


def test_bench_decisions_match():
    assert_same(bench_record(), reference()["bench"], "bench")


if __name__ == "__main__":
    if REFERENCE.exists():
        sys.exit(f"{REFERENCE} exists: it records the hand-written functions and is not regenerated")
    REFERENCE.parent.mkdir(exist_ok=True)
    data = {"stats": stats_record(),
            "judge": {name: decision_record(c) for name, c in judge_cases().items()},
            "bench": bench_record()}
    # one line per call, decision and scenario: readable in a diff
    sections = []
    for section, entries in data.items():
        lines = [f"  {json.dumps(key)}: {json.dumps(value, sort_keys=True)}" for key, value in entries.items()]
        sections.append(f" {json.dumps(section)}: {{\n" + ",\n".join(lines) + "\n }")
    REFERENCE.write_text("{\n" + ",\n".join(sections) + "\n}\n")

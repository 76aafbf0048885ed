"""The engine's arithmetic on plain numbers: SLIs, budgets, burn rates, tiers, statuses,
time to exhaustion, histogram quantiles, and the parsing of batched query results."""

from __future__ import annotations

import math

import pytest

from slo import evaluate as ev
from slo.query import Sample
from slo.plan import plan, scale_tiers
from slo.spec import WORKBOOK_TIERS, Objective

DAY = 86400
AVAILABILITY = Objective(name="availability", kind="availability", target=99.9, window="30d")
TIERS = scale_tiers(WORKBOOK_TIERS, 30 * DAY)
WINDOWS = (300, 1800, 3600, 7200, 21600, DAY, 3 * DAY, 30 * DAY)


def assess(rates: dict[int, tuple[float | None, float | None]], min_events: int = 50) -> dict:
    """The result's JSON form, as the API serves it."""
    return ev.assess(ev.Instance("fs", "", AVAILABILITY), rates, TIERS, min_events).to_json()


def steady(valid: float, ratio: float) -> dict[int, tuple[float, float]]:
    return {w: (valid, valid * ratio) for w in WINDOWS}


def test_a_steady_half_budget_burn():
    r = assess(steady(10.0, 0.0005))  # 0.05% errors against a 0.1% budget
    assert r["sli"] == pytest.approx(0.9995)
    assert r["error_budget_remaining"] == pytest.approx(0.5)
    assert r["error_budget_consumed"] == pytest.approx(0.5)
    assert r["events"] == pytest.approx(10 * 30 * DAY)
    assert r["bad_events"] == pytest.approx(10 * 30 * DAY * 0.0005)
    assert r["error_budget_events"] == pytest.approx(10 * 30 * DAY * 0.001)
    assert r["error_budget_events_remaining"] == pytest.approx(10 * 30 * DAY * 0.0005)
    assert r["burn_rates"] == pytest.approx({k: 0.5 for k in ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")})
    assert r["status"] == ev.OK
    assert not any(a["firing"] for a in r["alerts"])
    # half the budget left, spent at half the sustainable rate (half a budget per window): one window to go
    assert r["time_to_exhaustion_seconds"] == pytest.approx(30 * DAY)


def test_tiers_set_the_status():
    outage = {**steady(10.0, 0.0), 300: (10.0, 10.0), 3600: (10.0, 0.2)}  # 100% over 5m, 20% over 1h
    r = assess(outage)
    fired = {a["tier"] for a in r["alerts"] if a["firing"]}
    assert fired == {"page-fast"} and r["status"] == ev.CRITICAL
    slow = {**steady(10.0, 0.0), DAY: (10.0, 0.04), 7200: (10.0, 0.04)}  # 0.4% errors: 4x over 1d and 2h
    r = assess(slow)
    assert {a["tier"] for a in r["alerts"] if a["firing"]} == {"ticket-fast"} and r["status"] == ev.WARNING


def test_the_low_traffic_guard_holds_a_tier_back():
    quiet = {**steady(0.001, 0.0), 300: (0.001, 0.001), 3600: (0.001, 0.001)}  # 3.6 events in the last hour, all bad
    r = assess(quiet, min_events=50)
    page = next(a for a in r["alerts"] if a["tier"] == "page-fast")
    assert not page["firing"] and page["low_traffic"]
    assert r["status"] != ev.CRITICAL


def test_an_overspent_budget_is_exhausted_and_negative():
    r = assess(steady(10.0, 0.002))  # twice the budget, steadily: ticket-slow fires (1x over 3d and 6h)
    assert r["error_budget_remaining"] == pytest.approx(-1.0)
    assert r["time_to_exhaustion_seconds"] == 0.0
    assert r["status"] == ev.EXHAUSTED  # exhausted outranks a ticket
    r = assess({**steady(10.0, 0.002), 300: (10.0, 10.0), 3600: (10.0, 10.0)})
    assert r["status"] == ev.CRITICAL  # a page outranks exhausted


@pytest.mark.parametrize("rates", [
    {},  # nothing known
    {w: (0.0, 0.0) for w in WINDOWS},  # no traffic
    {w: (math.nan, math.nan) for w in WINDOWS},  # NaN from a division by zero upstream
    {w: (None, None) for w in WINDOWS},
])
def test_no_data_is_never_an_invented_number(rates):
    r = assess(rates)
    assert r["status"] == ev.NO_DATA
    for field in ("sli", "error_budget_remaining", "error_budget_consumed", "time_to_exhaustion_seconds"):
        assert r[field] is None, field
    assert r["events"] in (None, 0.0)  # unknown, or known to be none
    assert all(v is None for v in r["burn_rates"].values())


def test_a_counter_reset_cannot_make_a_ratio_negative_or_above_one():
    assert ev.error_ratio(10.0, -0.5) == 0.0
    assert ev.error_ratio(10.0, 12.0) == 1.0
    assert ev.error_ratio(-1.0, 0.0) is None


def test_histogram_quantile_matches_prometheus():
    # 100 requests: 50 under 0.1 s, 40 more under 0.5 s, 10 over 1 s
    buckets = [(0.1, 50.0), (0.5, 90.0), (1.0, 90.0), (math.inf, 100.0)]
    assert ev.histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert ev.histogram_quantile(0.7, buckets) == pytest.approx(0.1 + 0.4 * 20 / 40)
    assert ev.histogram_quantile(0.25, buckets) == pytest.approx(0.05)  # from 0 to the first bound
    assert ev.histogram_quantile(0.99, buckets) == 1.0  # in +Inf: the highest finite bound
    assert ev.histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None  # no traffic
    assert ev.histogram_quantile(0.5, [(0.1, 5.0)]) is None  # no +Inf bucket: not a histogram


def test_tool_rows():
    rates = [Sample({"service": "fs", "tool": "read", "status": s}, v)
             for s, v in (("success", 9.0), ("error", 0.5), ("timeout", 0.5), ("cancelled", 2.0))]
    buckets = [Sample({"service": "fs", "tool": "read", "le": le}, v)
               for le, v in (("0.1", 5.0), ("1.0", 10.0), ("+Inf", 10.0), ("junk", 3.0))]
    (row,) = ev.tool_rows(rates, buckets)
    assert row.rate == 12.0 and row.error_ratio == pytest.approx(0.1)  # cancelled: neither good nor bad
    assert row.latency_seconds["p50"] == pytest.approx(0.1) and row.latency_is_estimate


def test_batched_results_are_read_per_slo_and_window():
    recorded = [
        Sample({"__name__": "mcp_slo:sli_total:rate5m", "service": "fs", "slo": "availability"}, 10.0),
        Sample({"__name__": "mcp_slo:sli_bad:rate5m", "service": "fs", "slo": "availability"}, 0.1),
        Sample({"__name__": "mcp_slo:sli_total:rate5m", "service": "fs", "tool": "write", "slo": "availability"}, 2.0),
        Sample({"__name__": "something_else", "service": "fs", "slo": "availability"}, 99.0),
    ]
    rates = ev.read_recorded(recorded, [300])
    assert rates == {("fs", "", "availability"): {300: (10.0, 0.1)}, ("fs", "write", "availability"): {300: (2.0, None)}}
    raw = [  # event counts over the window
        Sample({"service": "fs", "slo": "latency", "part": "total"}, 36000.0),
        Sample({"service": "fs", "slo": "latency", "part": "good"}, 32400.0),
        Sample({"service": "fs", "slo": "availability", "part": "total"}, 36000.0),  # no errors: no bad series
    ]
    ev.read_raw(raw, 3600, rates)
    assert rates["fs", "", "latency"][3600] == pytest.approx((10.0, 1.0))
    assert rates["fs", "", "availability"][3600] == (10.0, 0.0)


def test_instances_cover_discovered_and_named_services(tmp_path):
    from slo import importers

    spec = importers.load("examples/slo.yaml").spec
    keys = {i.key for i in ev.instances(plan(spec), ["newcomer"])}
    assert ("newcomer", "", "availability") in keys and ("newcomer", "", "latency") in keys  # the defaults
    assert ("filesystem", "", "availability") in keys  # named, even when not discovered (no_data)
    assert ("filesystem", "write_file", "availability") in keys  # per tool

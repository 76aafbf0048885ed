"""The engine's arithmetic on plain numbers: SLIs, budgets, burn rates, tiers, statuses,
time to exhaustion, histogram quantiles, and the parsing of batched query results."""

from __future__ import annotations

import math
import re

import pytest

from collector import durations
from slo import evaluate as ev
from slo import exclusion, spec
from slo.maintenance import Window, rfc3339
from slo.plan import plan, scale_tiers
from slo.query import Sample
from slo.spec import WORKBOOK_TIERS, Objective, ObjectiveAlerts

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


# --- the error-budget policy: per-SLO alert settings, the guards, maintenance ---------------


def tiers_of(r: dict) -> dict[str, dict]:
    return {a["tier"]: a for a in r["alerts"]}


OUTAGE = {**steady(10.0, 0.0), 300: (10.0, 10.0), 3600: (10.0, 0.2)}  # 100% over 5m, 20% over 1h: page-fast


def test_per_slo_alert_settings_show_in_the_alert_states():
    tuned = AVAILABILITY.model_copy(update={"alerts": ObjectiveAlerts.model_validate(
        {"tiers": {"page-slow": {"enabled": False}, "page-fast": {"severity": "ticket", "for": "5m"}}})})
    r = ev.assess(ev.Instance("fs", "", tuned), OUTAGE, TIERS, 50).to_json()
    states = tiers_of(r)
    assert set(states) == {"page-fast", "ticket-fast", "ticket-slow"}  # page-slow is off for this SLO
    assert states["page-fast"]["severity"] == "ticket" and states["page-fast"]["for"] == "5m"
    assert states["page-fast"]["firing"] and states["ticket-fast"]["for"] == "1h"
    assert r["status"] == ev.WARNING  # a ticket now: no page, so not critical


def test_an_slo_with_alerts_off_has_no_alert_states_but_its_numbers():
    quiet = AVAILABILITY.model_copy(update={"alerts": ObjectiveAlerts(enabled=False)})
    r = ev.assess(ev.Instance("fs", "", quiet), OUTAGE, TIERS, 50).to_json()
    assert r["alerts"] == [] and r["status"] == ev.OK
    assert r["burn_rates"]["5m"] == pytest.approx(1000.0) and r["sli"] == pytest.approx(1.0)


def test_the_significance_guard_holds_back_an_insignificant_burn():
    # one call a minute, one failed in the hour (1/60 = 16.7x a 0.1% budget), the last 5m all bad
    sparse = {**steady(1 / 60, 0.0), 300: (1 / 60, 1 / 60), 3600: (1 / 60, 1 / 3600)}
    guarded = ev.assess(ev.Instance("fs", "", AVAILABILITY), sparse, TIERS, 50, z=1.645).to_json()
    page = tiers_of(guarded)["page-fast"]
    assert not page["firing"] and page["insignificant"] and not page["low_traffic"]  # 60 events: enough
    assert guarded["status"] != ev.CRITICAL
    unguarded = ev.assess(ev.Instance("fs", "", AVAILABILITY), sparse, TIERS, 50).to_json()
    assert tiers_of(unguarded)["page-fast"]["firing"]  # as the rules without the guard
    # with traffic the same ratio is significant: the guard holds nothing back
    busy = ev.assess(ev.Instance("fs", "", AVAILABILITY), {**sparse, 300: (20.0, 20.0), 3600: (20.0, 20 / 60)},
                     TIERS, 50, z=1.645).to_json()
    assert tiers_of(busy)["page-fast"]["firing"] and not tiers_of(busy)["page-fast"]["insignificant"]


def test_the_guard_is_the_rules_wilson_bound():
    """Three minutes of outage at one call a minute: lower bound 2.01% > 1.44% (slo.significance)."""
    assert ev.significant(1 / 60, 3 / 3600, 3600, 14.4 * 0.001, 1.645)
    assert not ev.significant(1 / 60, 2 / 3600, 3600, 14.4 * 0.001, 1.645)  # 1.11%
    assert not ev.significant(0.0, 0.0, 3600, 0.0144, 1.645) and not ev.significant(None, None, 3600, 0.0144, 1.645)


def test_a_maintenance_window_on_now_silences_the_slo():
    r = ev.assess(ev.Instance("fs", "", AVAILABILITY), OUTAGE, TIERS, 50, silenced=True).to_json()
    assert r["alerts"] and all(a["silenced"] and not a["firing"] for a in r["alerts"])
    assert r["status"] == ev.OK and r["burn_rates"]["5m"] == pytest.approx(1000.0)  # the numbers stay
    exhausted = ev.assess(ev.Instance("fs", "", AVAILABILITY), steady(10.0, 0.002), TIERS, 50, silenced=True)
    assert exhausted.status == ev.EXHAUSTED  # a silence holds alerts back, not the budget's state


# --- exclude windows: the arithmetic ----------------------------------------------------------

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
KEY = ("fs", "", "availability")


def window(**fields) -> Window:
    return Window(name="w", reason="r", mode="exclude", services=["fs"], **fields)


def test_cuts_clip_each_window_and_share_intervals():
    one_off = window(start=rfc3339(NOW - 7200), end=rfc3339(NOW - 1800))  # 2h ago to 30m ago
    found, left_in = exclusion.cuts([one_off], [KEY, ("other", "", "availability")], WINDOWS, NOW)
    assert left_in == 0 and set(found) == {KEY}
    assert 300 not in found[KEY] and 1800 not in found[KEY]  # over before the 30m window
    assert found[KEY][3600] == [(NOW - 1800, 1800)]  # the first half of the 1h window
    assert found[KEY][DAY] == found[KEY][30 * DAY] == [(NOW - 1800, 5400)]
    silence = one_off.model_copy(update={"mode": "silence"})
    assert exclusion.cuts([silence], [KEY], WINDOWS, NOW) == ({}, 0)  # silence windows keep the events


def test_a_daily_window_in_a_30d_slo_is_30_intervals_and_the_cap_keeps_the_newest():
    nightly = window(cron="0 3 * * *", duration="1h")
    found, left_in = exclusion.cuts([nightly], [KEY], [30 * DAY], NOW)
    assert len(found[KEY][30 * DAY]) == 30 and left_in == 0
    capped, left_in = exclusion.cuts([nightly], [KEY], [30 * DAY], NOW, limit=10)
    assert left_in == 20 and len(capped[KEY][30 * DAY]) == 10
    assert min(end for end, _ in capped[KEY][30 * DAY]) > NOW - 11 * DAY  # the newest ten


def test_subtract_keeps_rate_times_window_equal_to_the_remaining_events():
    rates = {KEY: {3600: (10.0, 1.0), 300: (None, None)}}
    found = {KEY: {3600: [(NOW - 600, 600)], 300: [(NOW, 300)]}}
    measured = {(NOW - 600, 600): {KEY: (6000.0, 3000.0)}, (NOW, 300): {}}
    taken = exclusion.subtract(rates, found, measured)
    assert rates[KEY][3600] == pytest.approx(((36000 - 6000) / 3600, (3600 - 3000) / 3600))
    assert taken[KEY][3600] == exclusion.Excluded(600.0, 6000.0, 3000.0)
    assert rates[KEY][300] == (None, None) and taken[KEY][300].events is None  # unknown stays unknown
    # Prometheus's extrapolation can exclude a little more than the window holds: never negative
    rates = {KEY: {3600: (1.0, 0.5)}}
    exclusion.subtract(rates, {KEY: {3600: [(NOW, 3600)]}}, {(NOW, 3600): {KEY: (3700.0, 1900.0)}})
    assert rates[KEY][3600] == (0.0, 0.0)


def test_series_sli_narrows_the_plans_sli_to_one_series():
    from slo import importers

    p = plan(importers.load("examples/slo.yaml").spec)
    sli = exclusion.series_sli(p.slis, ("newcomer", "", "availability"))
    assert sli.scope.include == ("newcomer",) and sli.scope.tool is None and sli.kind == "availability"
    tool = exclusion.series_sli(p.slis, ("filesystem", "write_file", "availability"))
    assert tool.scope.include == ("filesystem",) and tool.scope.tool == "write_file"
    assert exclusion.series_sli(p.slis, ("filesystem", "write_file", "no-such-slo")) is None


class Counters:
    """A Prometheus stand-in for evaluate: fs's valid events at 10/s, its bad ones at 1/s from
    two hours ago to one hour ago (the outage an exclude window covers), none otherwise; and
    recorded rates that already leave the outage out, as the rules do while the engine's
    maintenance gauge is on."""

    OUTAGE = (NOW - 7200, NOW - 3600)

    def __init__(self):
        self.queries = 0
        self.asked: list[tuple[str, float]] = []

    def overlap(self, start: float, end: float) -> float:
        return max(0.0, min(end, self.OUTAGE[1]) - max(start, self.OUTAGE[0]))

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        self.queries += 1
        self.asked.append((expr, at))
        fs = {"service": "fs"}
        if expr.startswith("{__name__"):  # the recorded rates, the outage left out already
            out = []
            for name, window in re.findall(r"(mcp_slo:sli_(?:total|bad)):rate(\w+)", expr):
                w = durations.parse(window)
                value = 10.0 * (w - self.overlap(at - w, at)) / w if name.endswith("total") else 0.0
                out.append(Sample({"__name__": f"{name}:rate{window}", **fs, "slo": "availability"}, value))
            return out
        if expr.startswith("count_over_time"):
            return [Sample({}, 720.0)]  # the hourly rules have run for 30 days
        if "increase(" in expr:  # raw_slis: counts over the window ending at `at`
            w = durations.parse(re.search(r"\[(\w+)\]", expr).group(1))
            counts = {"total": 10.0 * w, "bad": self.overlap(at - w, at)}
            return [Sample({**fs, "slo": slo, "part": part}, counts[part])
                    for slo, part in re.findall(r'"slo", "(\w+)", "", ""\), "part", "(\w+)"', expr)]
        if "version" in expr:  # discovery
            return [Sample({**fs, "version": "v1", "tool": "read"}, 1.0)]
        return []  # the per-tool breakdown


FS_SPEC = {"version": 1, "defaults": {"objectives": [{"name": "availability", "kind": "availability", "target": 99.9}]},
           "alerting": {"min_events": 0}}


def test_evaluate_takes_an_exclude_windows_events_out_once():
    p = plan(spec.parse(FS_SPEC))
    outage = window(start=rfc3339(Counters.OUTAGE[0]), end=rfc3339(Counters.OUTAGE[1]))
    backend = Counters()
    (r,) = ev.evaluate(backend, p, NOW, maintenance=[outage]).slos
    # read from the raw counters where the window falls (not the recorded rates, which may
    # already leave it out), then the outage's events taken out: none bad remain
    assert r.events == pytest.approx(10.0 * (30 * DAY - 3600)) and r.bad_events == 0.0 and r.sli == 1.0
    assert (r.excluded_seconds, r.excluded_events, r.excluded_bad_events) == (3600.0, 36000.0, 3600.0)
    assert r.burn_rates["6h"] == 0.0 and r.burn_rates["5m"] == 0.0
    # one query per distinct interval, at its end, over its length
    assert [(at, re.search(r"\[(\w+)\]", e).group(1)) for e, at in backend.asked if at != NOW] == [(NOW - 3600, "1h")]

    plain = Counters()
    (kept,) = ev.evaluate(plain, p, NOW, maintenance=[]).slos
    assert kept.events == pytest.approx(10.0 * (30 * DAY - 3600)) and kept.excluded_seconds == 0.0  # the recorded
    assert plain.queries < backend.queries
    assert (ev.evaluate(Counters(), p, NOW).slos[0]) == kept  # the spec has no windows: the same


def test_the_counts_of_intervals_over_are_kept_across_ticks():
    p = plan(spec.parse(FS_SPEC))
    over = window(start=rfc3339(Counters.OUTAGE[0]), end=rfc3339(Counters.OUTAGE[1]))
    going_on = window(start=rfc3339(NOW - 120), end=rfc3339(NOW + 600)).model_copy(update={"name": "now"})
    cache = exclusion.Cache()
    first, second = Counters(), Counters()
    a = ev.evaluate(first, p, NOW, maintenance=[over, going_on], excluded_cache=cache)
    b = ev.evaluate(second, p, NOW, maintenance=[over, going_on], excluded_cache=cache)
    assert a.slos == b.slos and a.meta["excluded_intervals"] == b.meta["excluded_intervals"] == 2
    assert (a.meta["excluded_intervals_read"], b.meta["excluded_intervals_read"]) == (2, 1)  # the one going on
    assert [at for _, at in second.asked if at != NOW] == []  # going on: it ends at NOW, asked at NOW


def test_a_window_on_now_silences_the_slos_it_covers():
    p = plan(spec.parse(FS_SPEC))
    now_on = window(start=rfc3339(NOW - 60), end=rfc3339(NOW + 3600)).model_copy(update={"mode": "silence"})
    (r,) = ev.evaluate(Counters(), p, NOW, maintenance=[now_on]).slos
    assert r.alerts and all(a.silenced for a in r.alerts) and r.excluded_seconds == 0.0


def test_the_cache_keeps_the_most_recently_used():
    sli = exclusion.series_sli(plan(spec.parse(FS_SPEC)).slis, KEY)
    cache = exclusion.Cache(size=2)
    cache.put(1.0, 60, sli, (1.0, 0.0))
    cache.put(2.0, 60, sli, (2.0, 0.0))
    assert cache.get(1.0, 60, sli) == (1.0, 0.0)  # used: kept over the other
    cache.put(3.0, 60, sli, (3.0, 0.0))
    assert cache.get(2.0, 60, sli) is None and cache.get(1.0, 60, sli) == (1.0, 0.0)

"""The typed results (slo.results): one JSON form each, read back as written, the keys the
README documents in its order, and no NaN in the JSON."""

from __future__ import annotations

import json
import math

import pytest

from collector.names import DEFAULT_BUCKETS
from slo import evaluate as ev
from slo.canary.judge import Comparison, Counts, judge
from slo.exclusion import Excluded
from slo.plan import scale_tiers
from slo.query import Sample
from slo.results import AlertState, CanaryDecision, Evidence, Side, SLOResult, ToolTraffic
from slo.spec import WORKBOOK_TIERS, Objective

DAY = 86400
WINDOWS = (300, 1800, 3600, 7200, 21600, DAY, 3 * DAY, 30 * DAY)
TIERS = scale_tiers(WORKBOOK_TIERS, 30 * DAY)
AVAILABILITY = Objective(name="availability", kind="availability", target=99.9, window="30d")

# README, "The SLO engine": the JSON of an SLO, in this order (the API adds stale, evaluated_at)
SLO_KEYS = ["service", "tool", "slo", "kind", "description", "objective", "window", "threshold", "sli",
            "error_budget_remaining", "error_budget_consumed", "events", "bad_events", "error_budget_events",
            "error_budget_events_remaining", "sli_windows", "burn_rates", "alerts", "status",
            "time_to_exhaustion_seconds", "versions", "excluded_seconds", "excluded_events", "excluded_bad_events"]
ALERT_KEYS = ["tier", "severity", "burn_rate_threshold", "long_window", "short_window", "firing", "low_traffic", "for",
              "insignificant", "silenced"]


def result(ratio: float | None = 0.002, tool: str = "") -> SLOResult:
    rates = {w: (10.0, 10.0 * ratio) for w in WINDOWS} if ratio is not None else {}
    return ev.assess(ev.Instance("fs", tool, AVAILABILITY), rates, TIERS, 50, versions=["v1", "v2"])


def test_an_alert_state_reads_back_as_written():
    alert = AlertState(tier="page-fast", severity="page", burn_rate_threshold=14.4, long_window="1h",
                       short_window="5m", firing=False, low_traffic=False, for_="2m", insignificant=True, silenced=True)
    body = alert.to_json()
    assert list(body) == ALERT_KEYS
    assert AlertState.from_json(json.loads(json.dumps(body))) == alert


@pytest.mark.parametrize("ratio, tool", [(0.002, ""), (0.0, "write_file"), (None, "")])
def test_an_slo_result_reads_back_as_written(ratio, tool):
    r = result(ratio, tool)
    body = json.loads(json.dumps(r.to_json(), allow_nan=False))
    assert SLOResult.from_json(body) == r
    assert SLOResult.from_json(body).to_json() == body


def test_the_json_keys_are_the_documented_ones_in_order():
    body = result().to_json()
    assert list(body) == SLO_KEYS
    assert all(list(a) == ALERT_KEYS for a in body["alerts"]) and len(body["alerts"]) == 4
    assert body["tool"] is None and body["versions"] == ["v1", "v2"] and body["status"] == ev.EXHAUSTED


def test_no_data_is_null_never_nan():
    """Without traffic every number is None; a NaN or infinity given is None in the JSON too."""
    body = result(None).to_json()
    assert body["status"] == ev.NO_DATA and body["sli"] is None and body["events"] is None
    nan = SLOResult.from_json({**result().to_json(), "sli": math.nan, "events": math.inf,
                               "burn_rates": {"1h": math.nan, "5m": 2.0}})
    out = nan.to_json()
    json.dumps(out, allow_nan=False)  # raises on any NaN left
    assert out["sli"] is None and out["events"] is None and out["burn_rates"] == {"1h": None, "5m": 2.0}


def test_the_api_answer_and_an_old_stores_row_read_back():
    """The API adds stale and evaluated_at (ignored); a row without the keys added later reads
    with them unknown."""
    api = {**result().to_json(), "stale": False, "evaluated_at": "2026-11-25T16:48:11Z"}
    assert SLOResult.from_json(api) == result()
    old = SLOResult.from_json({"service": "fs", "slo": "availability", "tool": None, "status": "ok", "sli": 0.99})
    assert old.sli == 0.99 and old.versions == () and old.alerts == () and old.to_json()["events"] is None
    assert (old.excluded_seconds, old.excluded_events, old.excluded_bad_events) == (0.0, 0.0, 0.0)  # none then
    alert = AlertState.from_json({"tier": "page-fast", "severity": "page", "burn_rate_threshold": 14.4,
                                  "long_window": "1h", "short_window": "5m", "firing": True, "low_traffic": False})
    assert alert.for_ == "" and not alert.insignificant and not alert.silenced


def test_excluded_events_read_back():
    r = ev.assess(ev.Instance("fs", "", AVAILABILITY), {w: (10.0, 0.02) for w in WINDOWS}, TIERS, 50,
                  excluded=Excluded(7200.0, 72000.0, 7200.0), silenced=True)
    body = json.loads(json.dumps(r.to_json(), allow_nan=False))
    assert body["excluded_seconds"] == 7200.0 and body["excluded_events"] == 72000.0
    assert body["excluded_bad_events"] == 7200.0 and all(a["silenced"] for a in body["alerts"])
    assert SLOResult.from_json(body) == r
    unknown = SLOResult.from_json({**body, "excluded_events": None, "excluded_bad_events": None})
    assert unknown.excluded_events is None and unknown.to_json()["excluded_bad_events"] is None


@pytest.mark.parametrize("bad, says", [
    ({"status": "fine"}, "status 'fine'"),
    ({"sli": "0.99"}, "sli is not a number"),
    ({"service": 3}, "service is not a string"),
    ({"alerts": [{"tier": "x"}]}, "severity is not a string"),
    ({"burn_rates": [1, 2]}, "burn_rates is not an object"),
])
def test_a_malformed_result_is_a_clear_error(bad, says):
    with pytest.raises(ValueError, match=says):
        SLOResult.from_json({**result().to_json(), **bad})


# --- canary decisions ------------------------------------------------------------------------

DECISION_KEYS = ["service", "baseline", "canary", "verdict", "score", "reason", "metrics", "window",
                 "canary_age_seconds"]
EVIDENCE_KEYS = ["name", "tool", "baseline", "canary", "effect", "p_value", "p_adjusted", "sequential", "e_value",
                 "e_threshold", "rejected_by", "power", "required_requests", "status"]


def counts(requests: float, errors: float, slow: float = 0.1) -> Counts:
    """`requests` with `slow` of them over 0.5 s (a bucket bound), the rest under 0.1 s."""
    fast = requests * (1 - slow)
    buckets = tuple((b, fast if b < 0.5 else requests) for b in (*DEFAULT_BUCKETS, math.inf))
    return Counts(requests=requests, errors=errors, buckets=buckets)


def decision(baseline: Counts, canary: Counts, **tools) -> CanaryDecision:
    d = judge(Comparison(service="fs", baseline="v1", canary="v2", overall=(baseline, canary),
                         tools=tools, latency_threshold=0.5))
    return CanaryDecision(service="fs", baseline="v1", canary="v2", verdict=d.verdict, score=d.score,
                          reason=d.reason, metrics=d.metrics, window="2h", canary_age_seconds=7200.0)


CASES = {
    "rollback": lambda: decision(counts(90_000, 90), counts(10_000, 400, slow=0.3)),
    "promote": lambda: decision(counts(900_000, 900), counts(100_000, 100)),
    "no canary latency": lambda: decision(counts(9_000, 9), Counts(1_000, 1)),
    "a tool without traffic": lambda: decision(counts(9_000, 9), counts(1_000, 1),
                                               search=(counts(100, 0), Counts(0, 0))),
}


@pytest.mark.parametrize("case", CASES)
def test_a_canary_decision_reads_back_as_written(case):
    d = CASES[case]()
    text = json.dumps(d.to_json())  # as the store keeps it
    body = json.loads(text)
    assert CanaryDecision.from_json(body) == d
    assert json.dumps(CanaryDecision.from_json(body).to_json()) == text  # the API serves the same bytes
    assert json.dumps(Side.from_json({"requests": 0}).to_json()) == '{"requests": 0}'  # 0 stays 0, not 0.0
    assert CanaryDecision.from_json({**body, "evaluated_at": 1.0, "stale": False}).to_json() == body
    assert all(Evidence.from_json(m.to_json()) == m for m in d.metrics)


def test_a_decisions_json_keys_are_the_judges_in_order():
    """The keys of a decision and of each test's evidence; the optional ones where they apply."""
    d = CASES["rollback"]()
    body = d.to_json()
    assert list(body) == DECISION_KEYS and body["verdict"] == "rollback"
    errors, latency, slow = body["metrics"]
    assert list(errors) == EVIDENCE_KEYS
    assert list(latency) == [*EVIDENCE_KEYS, "planned_cles"]
    assert list(slow) == [*EVIDENCE_KEYS[:5], "latency_threshold", *EVIDENCE_KEYS[5:]]
    assert list(errors["baseline"]) == ["requests", "bad", "ratio"] and list(latency["baseline"]) == ["requests"]
    assert list(errors["effect"]) == ["measure", "value", "low", "high", "level"]
    assert list(latency["effect"]) == ["measure", "value", "low", "high", "level", "u", "z"]
    assert list(errors["sequential"]) == ["p_value", "reject_at", "information", "planned_information", "boundary"]
    no_data = next(m for m in CASES["no canary latency"]().to_json()["metrics"] if m["name"] == "latency")
    assert no_data["effect"] is None and no_data["note"] and list(no_data)[-1] == "note"


def test_a_malformed_decision_is_a_clear_error():
    body = CASES["promote"]().to_json()
    with pytest.raises(ValueError, match="score is not a number"):
        CanaryDecision.from_json({**body, "score": "high"})
    with pytest.raises(ValueError, match="evidence is not an object"):
        CanaryDecision.from_json({**body, "metrics": ["errors"]})


# --- a tool's traffic ------------------------------------------------------------------------

TOOL_KEYS = ["service", "tool", "window", "rate", "by_status", "error_ratio", "latency_seconds", "latency_is_estimate"]


def test_a_tools_traffic_reads_back_as_written_with_the_keys_it_always_had():
    rates = [Sample({"service": "fs", "tool": "read", "status": s}, v) for s, v in (("success", 9.0), ("error", 1.0))]
    buckets = [Sample({"service": "fs", "tool": "read", "le": le}, v) for le, v in (("0.1", 5.0), ("+Inf", 10.0))]
    (row,) = ev.tool_rows(rates, buckets)
    body = row.to_json()
    assert list(body) == TOOL_KEYS and body["window"] == "5m" and body["latency_is_estimate"] is True
    assert list(body["latency_seconds"]) == ["p50", "p90", "p99"]
    assert ToolTraffic.from_json(json.loads(json.dumps(body, allow_nan=False))) == row
    with pytest.raises(ValueError, match="rate is not a number"):
        ToolTraffic.from_json({**body, "rate": "fast"})
    with pytest.raises(ValueError, match="tool is not a string"):
        ToolTraffic.from_json({**body, "tool": None})

"""Alerts tuned per SLO and pages only for significant burns (issue 16, points 2 and 3):
the spec's per-objective `alerts` and `alerting.confidence`, the rules and Alertmanager
routes they make, and the generated promtool suites proving them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from alerts import alertmanager, rules, rules_tests
from slo import importers, promql, significance, spec
from tests.test_rules import EXAMPLE, _run_suites, _write_suites

POLICY = {
    "defaults": {"objectives": [
        {"name": "availability", "kind": "availability", "target": 99.9, "window": "30d"},
        {"name": "latency", "kind": "latency", "threshold": 0.5, "target": 99, "window": "30d"},
    ]},
    "services": {
        # page-fast becomes a ticket, held 5m, with a label of its own and the ticket receiver
        "search": {"objectives": [{"name": "availability", "alerts": {"tiers": {
            "page-fast": {"severity": "ticket", "for": "5m", "labels": {"escalation": "business-hours"}}}}}]},
        # page-fast off (page-slow still pages), and its own runbook
        "batch": {"objectives": [{"name": "availability", "alerts": {
            "tiers": {"page-fast": {"enabled": False}},
            "runbook_url": "https://runbooks.example.com/batch/{slo}/{tool}"}}]},
        # no alert at all for its availability; its latency keeps the defaults
        "legacy": {"objectives": [{"name": "availability", "alerts": {"enabled": False}}]},
    },
    "alerting": {"labels": {"team": "mcp-platform"}},
}


def policy_spec(**alerting) -> spec.Spec:
    return spec.parse({**POLICY, "alerting": {**POLICY["alerting"], **alerting}})


def burn_rules(s: spec.Spec) -> list[dict]:
    return [r for g in rules.rule_groups(s) for r in g["rules"] if r.get("alert") == rules.BURN_ALERT]


def selection(rule: dict) -> str:
    """An SLO alert's condition without the maintenance hold (tests/test_rules_maintenance.py)."""
    held = promql.held_back("")
    assert rule["expr"].endswith(held), rule["alert"]
    return rule["expr"].removesuffix(held)


# --- the significance guard's arithmetic -------------------------------------------------------


def test_the_issue_numbers():
    """99.9%, the 14.4x page over 1h (threshold 1.44%), z = 1.645 (95%, one-sided)."""
    z = significance.z_score(0.95)
    assert round(z, 3) == 1.645
    threshold = 14.4 * 0.001
    # one failed call in an hour of one call a minute: 16.7x plain, not significant
    assert 1 / 60 > threshold and significance.wilson_lower(1 / 60, 60, z) < threshold
    # a full outage of that service: over the threshold 3 minutes in (then `for: 2m`)
    assert [significance.wilson_lower(k / 60, 60, z) > threshold for k in (1, 2, 3)] == [False, False, True]
    # at 1,000 calls a minute one minute of outage is over it at once, as without the guard
    assert significance.wilson_lower(1 / 60, 60_000, z) > threshold
    assert significance.wilson_lower(1.0, 60, z) == pytest.approx(1 / (1 + z * z / 60))


def test_timings_quiet_and_busy():
    """The promtool suites' bounds: at one call a minute a 99.9% SLO pages within 10 minutes of
    a full outage (5); at the busy traffic every objective pages exactly as without the guard."""
    s = importers.load(EXAMPLE).spec
    off = s.model_copy(update={"alerting": s.alerting.model_copy(update={"confidence": 0})})
    fs = next(c for c in rules_tests.cases(s) if c.short_name == "filesystem availability")
    within, tier = rules_tests.page_within(s, fs.objective, per_minute=1)
    assert (within, tier.tier.name) == (5, "page-fast")
    assert rules_tests.page_within(off, fs.objective, per_minute=1)[0] == 3
    assert rules_tests.stray_error_matters(s, fs.objective)
    for case in rules_tests.cases(s):
        guarded, plain = rules_tests.page_within(s, case.objective), rules_tests.page_within(off, case.objective)
        assert guarded[0] == plain[0], case.name


def test_the_guard_in_the_rules_and_turning_it_off():
    guarded = burn_rules(importers.load(EXAMPLE).spec)
    assert all("sqrt(" in r["expr"] for r in guarded)
    off = importers.load(EXAMPLE).spec
    off = off.model_copy(update={"alerting": off.alerting.model_copy(update={"confidence": 0})})
    assert not any("sqrt(" in r["expr"] for r in burn_rules(off))
    assert spec.parse({"alerting": {"confidence": 0.99}}).alerting.z == pytest.approx(2.326, abs=1e-3)


@pytest.mark.parametrize("confidence", [0.3, 1, 0.99999, -0.5])
def test_a_confidence_out_of_range_is_one_line(confidence):
    with pytest.raises(spec.SpecError) as exc:
        spec.parse({"alerting": {"confidence": confidence}})
    assert "alerting.confidence: confidence must be 0 (no significance guard) or from 0.5 to 0.9999" in str(exc.value)
    assert "\n" not in str(exc.value)


# --- per-SLO alert settings ---------------------------------------------------------------------


def test_overrides_merge_key_by_key():
    s = spec.parse({**POLICY, "services": {"search": {
        "objectives": [{"name": "availability", "alerts": {"tiers": {"page-fast": {"severity": "ticket"}}}}],
        "tools": {"query": {"objectives": [{"name": "availability", "alerts": {"tiers": {"page-fast": {"for": "7m"}}}}]}}}}})
    tool = s.tool_objectives("search", "query")[0]
    tier = tool.alert_tier(spec.WORKBOOK_TIERS[0])
    assert (tier.severity, tier.for_) == ("ticket", "7m")  # the service's change and the tool's
    assert s.objectives_for("other")[0].alert_tier(spec.WORKBOOK_TIERS[0]) is spec.WORKBOOK_TIERS[0]


@pytest.mark.parametrize("alerts, message", [
    ({"tiers": {"page-fastt": {"enabled": False}}},
     ("services.x.objectives.0.alerts.tiers: unknown tier 'page-fastt'; the tiers are page-fast, page-slow, "
      "ticket-fast, ticket-slow (alerting.tiers)")),
    ({"tiers": {"ticket-fast": {"severity": "page"}}},
     "services.x.objectives.0.alerts.tiers.ticket-fast: short_window 2h of a page tier is too long: at most 1h"),
    ({"tiers": {"page-fast": {"labels": {"tier": "x"}}}}, "label 'tier' is reserved"),
    ({"tiers": {"page-fast": {"labels": {"receiver": "boss"}}}}, "'boss' is not a receiver; one of page, ticket, release"),
    ({"tiers": {"page-fast": {"for": "2d"}}}, "for 2d is too long: at most 1d"),
    ({"runbook_url": "https://x/{team}"}, "unknown placeholder {team}"),
    ({"enable": False}, "services.x.objectives.0.alerts.enable: unknown key"),
])
def test_bad_alert_settings_are_one_line_errors(alerts, message):
    raw = {**POLICY, "services": {"x": {"objectives": [{"name": "availability", "alerts": alerts}]}}}
    with pytest.raises(spec.SpecError) as exc:
        spec.parse(raw)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_a_tier_disabled_globally_cannot_be_enabled_per_slo():
    tiers = [t.model_dump(by_alias=True) for t in spec.WORKBOOK_TIERS]
    tiers[0]["enabled"] = False
    raw = {**POLICY, "alerting": {"tiers": tiers},
           "services": {"x": {"objectives": [{"name": "availability", "alerts": {"tiers": {"page-fast": {"enabled": True}}}}]}}}
    with pytest.raises(spec.SpecError, match="page-fast: the tier is disabled in alerting.tiers"):
        spec.parse(raw)


def test_rules_follow_the_settings_with_one_rule_per_distinct_setting():
    s = policy_spec()
    burn = burn_rules(s)
    by_tier: dict[str, list[dict]] = {}
    for r in burn:
        by_tier.setdefault(r["labels"]["tier"], []).append(r)
    # page-fast: the common setting (every SLO but the changed ones), search's ticket; batch and legacy none
    fast = by_tier["page-fast"]
    assert sorted((r["labels"]["severity"], r["for"]) for r in fast) == [("page", "2m"), ("ticket", "5m")]
    common = next(r for r in fast if r["labels"]["severity"] == "page")
    assert 'unless on (service, slo, tool) (mcp_slo:info{window="30d",slo="availability",service="search",tool=""}' \
        in common["expr"]
    for service in ("batch", "legacy"):
        assert f'service="{service}"' in common["expr"]  # taken out of the common rule
    ticket = next(r for r in fast if r["labels"]["severity"] == "ticket")
    assert ticket["labels"]["escalation"] == "business-hours" and ticket["labels"]["team"] == "mcp-platform"
    assert selection(ticket).endswith('mcp_slo:info{window="30d",slo="availability",service="search",tool=""}')
    # page-slow: legacy's availability has no alerts, batch has its own runbook
    slow = by_tier["page-slow"]
    assert sorted(r["annotations"]["runbook_url"] for r in slow) == [
        "https://runbooks.example.com/batch/{{ $labels.slo }}/{{ $labels.tool }}",
        "https://runbooks.example.com/mcp-slo/{{ $labels.slo }}"]
    exhausted = [r for g in rules.rule_groups(s) for r in g["rules"] if r.get("alert") == rules.EXHAUSTED_ALERT]
    common, batch = sorted(exhausted, key=lambda r: "unless" not in selection(r))
    assert "unless" in selection(common) and 'service="legacy"' in common["expr"]  # legacy's taken out
    assert selection(batch).endswith('mcp_slo:info{window="30d",slo="availability",service="batch",tool=""}')
    # a spec without per-SLO changes: one rule per tier, as before
    assert len(burn_rules(importers.load(EXAMPLE).spec)) == 4


def test_alertmanager_routes_follow_the_receiver_label():
    def routes(s: spec.Spec) -> list[tuple[str, list[str]]]:
        return [(r["receiver"], r["matchers"]) for r in alertmanager.config(s)["route"]["routes"]]

    assert ("ticket", ['receiver="ticket"']) not in routes(policy_spec())
    raw = {**POLICY, "services": {"search": {"objectives": [{"name": "availability", "alerts": {"tiers": {
        "page-fast": {"labels": {"receiver": "ticket"}}}}}]}}}
    got = routes(spec.parse(raw))
    assert got.index(("ticket", ['receiver="ticket"'])) < got.index(("page", ['severity="page"']))
    assert ("page", ['receiver="page"']) not in got


# --- the promtool suites ------------------------------------------------------------------------


def test_the_policy_suites_check_each_setting():
    s = policy_spec()
    checks = [c["expr"] for t in rules_tests.scenario(s, "alert-policy") for c in t["promql_expr_test"]]
    assert any('service="batch"' in e and 'tier="page-fast"' in e and "max_over_time" in e for e in checks)
    assert any('service="search"' in e and 'tier="page-fast"' in e for e in checks)
    labels = [c["exp_samples"][0]["labels"] for t in rules_tests.scenario(s, "alert-policy")
              for c in t["promql_expr_test"] if c["exp_samples"] and "escalation" in c["exp_samples"][0]["labels"]]
    assert labels and 'severity="ticket"' in labels[0]
    significance_checks = [c for t in rules_tests.scenario(s, "significance") for c in t["promql_expr_test"]]
    assert significance_checks


@pytest.mark.integration
def test_the_policy_suites_pass(tmp_path: Path):
    """Every scenario on a spec with per-SLO changes: a disabled tier never fires, a
    severity override fires as a ticket with its labels, an SLO with alerts off raises none
    while its error ratio is recorded; the significance guard holds back a quiet hour's
    stray error and still pages a quiet service's outage in time; and without the guard
    (confidence 0) the same stray error pages."""
    s = policy_spec()
    files = _write_suites(tmp_path, s)
    assert {"alert-policy.test.yml", "significance.test.yml"} <= set(files)
    off = policy_spec(confidence=0)
    (tmp_path / "off.yml").write_text(rules.render(rules.rule_groups(off)))
    (tmp_path / "significance-off.test.yml").write_text(rules_tests.significance_control(s, "off.yml"))
    files.append("significance-off.test.yml")
    suite = yaml.safe_load((tmp_path / "significance-off.test.yml").read_text())
    assert suite["tests"], "no stray-error case in the policy spec"
    files.sort(key=lambda f: -(tmp_path / f).stat().st_size)
    _run_suites(tmp_path, files)

"""Maintenance windows in the generated rules: the alerts are held back while the engine's
`mcp_slo_maintenance` gauge covers an SLO series, and an `exclude` window's events leave the
recorded series. The promtool suites (alerts.rules_tests, MAINTENANCE_SCENARIOS) prove the
behaviour for the example and a 7d spec (scaled tiers), a representative subset: every spec's
suites already take minutes (tests/test_spec_hardening.py)."""

from __future__ import annotations

import re

import pytest
import yaml

from alerts import rules, rules_tests
from slo import importers, promql
from tests.test_rules import EXAMPLE, _run_suites, _write_suites, window_spec

HELD_BACK = "unless on (service, slo, tool) max by (service, slo, tool) (mcp_slo_maintenance)"


def _rules() -> list[dict]:
    return [r for g in rules.rule_groups(importers.load(EXAMPLE).spec) for r in g["rules"]]


def test_every_slo_alert_is_held_back_while_a_window_covers_its_series():
    alerts = [r for r in _rules() if r.get("alert") in (rules.BURN_ALERT, rules.EXHAUSTED_ALERT)]
    assert len(alerts) == 5
    for r in alerts:
        assert r["expr"].endswith("\n" + HELD_BACK), r["alert"]
    absent = next(r for r in _rules() if r.get("alert") == rules.ABSENT_ALERT)
    for service in ("filesystem", "analytics"):  # a window on the service, not on some tools only
        assert (f'unless on (service) max by (service) (mcp_slo_maintenance{{service="{service}",tool=""}})'
                in absent["expr"])


def test_exclude_windows_leave_the_recorded_rates():
    by_name: dict[str, list[str]] = {}
    for r in _rules():
        if "record" in r:
            by_name.setdefault(r["record"], []).append(r["expr"])
    five = "\n".join(by_name["mcp_slo:sli_bad:rate5m"])
    # dropped while an exclude window of that SLO is on and for 5m after (their range holds its events)
    assert ('unless on (service, tool) max by (service, tool) '
            '(max_over_time(mcp_slo_maintenance{mode="exclude",slo="availability"}[5m]))') in five
    hour = "\n".join(by_name["mcp_slo:sli_total:rate1h"])
    recent = 'max by (service, tool) (max_over_time(mcp_slo_maintenance{mode="exclude",slo="latency"}[65m]))'
    assert f"unless on (service, tool) {recent}" in hour  # the raw rate, unless a window was on in its range
    averaged = 'avg_over_time(mcp_slo:sli_total:rate5m{slo="latency",service="filesystem",tool=""}[1h])'
    assert re.search(re.escape(averaged) + r"\s+and on \(service, tool\) " + re.escape(recent), hour)  # else the 5m rates left
    # the long windows average the 5m rates as before: what was left out stays out
    assert by_name["mcp_slo:sli_total:rate3d"] == ["avg_over_time(mcp_slo:sli_total:rate5m[3d])"]
    assert "mcp_slo_maintenance" not in "\n".join(by_name["mcp_slo:sli_bad:rate30d"])


def test_the_gauge_inputs_are_the_engines_series():
    case = rules_tests.Case("fs", importers.load(EXAMPLE).spec.defaults.objectives[0])
    assert rules_tests._gauge_values([(2, 4), (6, 7)]) == "_x2 1x1 stale _x1 1x0 stale"
    series = rules_tests.maintenance_series(case, promql.EXCLUDE, [(60, 90)])
    assert [s["series"] for s in series] == [
        f'mcp_slo_maintenance{{service="fs",slo="availability",mode="exclude",job="mcp-slo-engine",instance="{e}"}}'
        for e in rules_tests.ENGINES]  # no tool label: the service-level series, as Prometheus stores it
    assert series[0]["values"] == "_x60 1x29 stale"


def test_the_maintenance_scenarios_check_every_objective():
    s = importers.load(EXAMPLE).spec
    for name in rules_tests.MAINTENANCE_SCENARIOS:
        tests = rules_tests.scenario(s, name)
        exprs = "\n".join(c["expr"] for t in tests for c in t.get("promql_expr_test", []))
        for case in rules_tests.cases(s):
            assert promql.alerts(None, "firing", **case.labels())[len("ALERTS{"):-1] in exprs, (name, case.name)
        inputs = "\n".join(i["series"] for t in tests for i in t["input_series"])
        mode = name.removeprefix("maintenance-")
        assert f'mode="{mode}"' in inputs
    exclude = rules_tests.scenario(s, "maintenance-exclude")
    assert any(re.search(r"error_budget_remaining.* offset \w+\) < bool 1e-09", c["expr"])
               for t in exclude for c in t["promql_expr_test"])


@pytest.mark.integration
def test_the_maintenance_promtool_suites_pass(tmp_path):
    """silence: an outage in a window (one-off, or the second occurrence of a recurring one)
    raises no alert while its error ratio is recorded, the same outage after the window pages on
    time, and a service without data in a window raises no absent-data ticket until after it;
    exclude: an outage in a window over a 0.5x burn raises no alert then or after, the budget left
    is the one before, an outage after it pages. The example and a 7d spec, two at a time."""
    files = _write_suites(tmp_path, importers.load(EXAMPLE).spec, scenarios=rules_tests.MAINTENANCE_SCENARIOS)
    files += _write_suites(tmp_path, window_spec("7d"), prefix="7d-", scenarios=rules_tests.MAINTENANCE_SCENARIOS)
    assert len(files) == 4
    suite = yaml.safe_load((tmp_path / "maintenance-silence.test.yml").read_text())
    assert any(t["name"].startswith("filesystem: no data in a maintenance window") for t in suite["tests"])
    files.sort(key=lambda f: -(tmp_path / f).stat().st_size)
    _run_suites(tmp_path, files)

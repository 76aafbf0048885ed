"""Generated rules: promtool accepts them, the committed file is current, and the
generated `promtool test rules` suites prove the alert timings; a real Prometheus
evaluates them on a real exporter's metrics."""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

from alerts import rules, rules_cli, rules_tests
from mcp_slo import cli
from slo import importers, plan, promql, spec
from tests import binaries

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "slo.yaml"
COMMITTED = ROOT / "demo" / "data" / "rules" / "mcp-slo.yml"
# the example changes no SLO's alerts: no alert-policy suite (tests/test_alert_policy.py has one)
EXAMPLE_SCENARIOS = tuple(n for n in rules_tests.SCENARIOS if n != "alert-policy")


def window_spec(window: str, service_window: str | None = None) -> spec.Spec:
    """Defaults with `window`, a named service overriding a target (and maybe the window),
    and a per-tool latency objective."""
    override = {"name": "availability", "target": 99.5}
    if service_window:
        override["window"] = service_window
    return spec.parse({
        "defaults": {"objectives": [
            {"name": "availability", "kind": "availability", "target": 99.9, "window": window},
            {"name": "latency", "kind": "latency", "threshold": 0.5, "target": 99, "window": window},
        ]},
        "services": {"fs": {"objectives": [override],
                            "tools": {"write": {"objectives": [{"name": "latency", "threshold": 1.0, "target": 95}]}}}},
    })


SPECS = {
    "example": lambda: importers.load(EXAMPLE).spec,
    "sloth": lambda: importers.load(ROOT / "examples" / "sloth.yaml").spec,
    "openslo": lambda: importers.load(ROOT / "examples" / "openslo.yaml").spec,
    "7d": lambda: window_spec("7d"),
    "28d": lambda: window_spec("28d"),
    "30d": lambda: window_spec("30d"),
    "30d-and-7d": lambda: window_spec("30d", service_window="7d"),
}


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([binaries.require("promtool"), *args], cwd=cwd, capture_output=True, text=True)


# --- static checks ------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("name", SPECS)
def test_promtool_accepts_the_rules_and_the_operator_manifest(tmp_path, name):
    s = SPECS[name]()
    groups = rules.rule_groups(s)
    (tmp_path / "rules.yml").write_text(rules.render(groups))
    result = promtool("check", "rules", str(tmp_path / "rules.yml"))
    assert result.returncode == 0, result.stdout + result.stderr

    manifest = yaml.safe_load(rules.render(groups, "prometheus-operator", namespace="monitoring",
                                           labels={"prometheus": "k8s"}))
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert manifest["kind"] == "PrometheusRule"
    assert manifest["metadata"] == {"name": "mcp-slo", "namespace": "monitoring",
                                    "labels": {"app.kubernetes.io/name": "mcp-slo", "prometheus": "k8s"}}
    (tmp_path / "extracted.yml").write_text(yaml.safe_dump({"groups": manifest["spec"]["groups"]}))
    result = promtool("check", "rules", str(tmp_path / "extracted.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert manifest["spec"]["groups"] == groups


def test_the_committed_rules_are_what_the_generator_writes():
    expected = rules_cli.generate(EXAMPLE)["mcp-slo.yml"]
    assert COMMITTED.read_text() == expected, (
        f"{COMMITTED.relative_to(ROOT)} is out of date: run `make rules` "
        "(mcp-slo rules --config examples/slo.yaml --out demo/data/rules)")


def test_recorded_series_and_windows():
    groups = {g["name"]: g["rules"] for g in rules.rule_groups(importers.load(EXAMPLE).spec)}
    recorded = [r["record"] for g in groups.values() for r in g if "record" in r]
    for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"):
        for name in ("sli_total", "sli_bad", "error_ratio"):
            assert f"mcp_slo:{name}:rate{w}" in recorded
    assert {"mcp_slo:objective", "mcp_slo:error_budget", "mcp_slo:info", "mcp_slo:error_budget_remaining"} <= set(recorded)
    by_name = {r["record"]: r["expr"] for r in groups[rules.SLO_GROUP] if "record" in r}
    # long windows: averaged recorded rates, bad and total apart (traffic-weighted), never raw counters;
    # beyond 3d, the 1h rates sampled once an hour by their own group (720 samples for 30 days, not 43,200)
    assert "sum_over_time(mcp_slo:sli_bad:rate1h_hourly[30d]) * 3600" in by_name["mcp_slo:sli_bad:rate30d"]
    assert "mcp_operations" not in by_name["mcp_slo:sli_bad:rate30d"]
    assert groups[rules.HOURLY_GROUP] == [
        {"record": "mcp_slo:sli_total:rate1h_hourly", "expr": "avg_over_time(mcp_slo:sli_total:rate5m[1h])"},
        {"record": "mcp_slo:sli_bad:rate1h_hourly", "expr": "avg_over_time(mcp_slo:sli_bad:rate5m[1h])"},
        {"record": "mcp_slo:hourly_timestamp", "expr": "vector(time())"}]
    assert by_name["mcp_slo:sli_total:rate3d"] == "avg_over_time(mcp_slo:sli_total:rate5m[3d])"
    assert by_name["mcp_slo:error_ratio:rate30d"] == "mcp_slo:sli_bad:rate30d / mcp_slo:sli_total:rate30d"
    six_hours = [r["expr"] for r in groups[rules.SLO_GROUP] if r.get("record") == "mcp_slo:sli_total:rate6h"]
    assert any("rate(mcp_operations_total{" in e for e in six_hours)  # short windows: raw counters
    # rules run in order: every recorded series is written before a rule reads it (the hourly
    # samples are read over the hours before, never at the same evaluation)
    seen: set[str] = {r["record"] for r in groups[rules.HOURLY_GROUP]}
    for group in groups.values():
        for rule in group:
            for name in set(recorded):
                if re.search(re.escape(name) + r"(?![\w:])", rule["expr"]):
                    assert name in seen, f"{rule.get('record') or rule['alert']} reads {name} before it is recorded"
            if "record" in rule:
                seen.add(rule["record"])


def test_defaults_select_every_service_but_those_that_differ():
    p = plan.plan(importers.load(EXAMPLE).spec)
    scopes = {(o.objective.name, o.scope.include, o.scope.exclude, o.scope.tool): o.objective.target for o in p.objectives}
    assert scopes == {
        ("availability", (), ("filesystem",), None): 99.5,
        ("availability", ("filesystem",), (), None): 99.9,
        ("latency", (), ("filesystem", "analytics"), None): 99,
        ("latency", ("filesystem",), (), None): 95,
        ("latency", ("analytics",), (), None): 99,
        ("availability", ("filesystem",), (), "write_file"): 99.5,
    }
    # filesystem only changes the availability target: its SLI is the default's, one rule for all services
    slis = {(s.slo, s.scope.include, s.scope.exclude, s.scope.tool) for s in p.slis}
    assert ("availability", (), (), None) in slis and len(slis) == 5


def test_the_number_of_rules_does_not_grow_with_services():
    def count(n: int) -> int:
        raw = {"defaults": {"objectives": [{"name": "availability", "kind": "availability", "target": 99.9}]},
               "services": {f"svc{i}": {"objectives": [{"name": "availability", "target": 99 + i / 100}]}
                            for i in range(n)}}
        return sum(len(g["rules"]) for g in rules.rule_groups(spec.parse(raw)))

    assert count(1) == count(30)


@pytest.mark.parametrize("window, expected", [
    ("30d", [("1h", "5m"), ("6h", "30m"), ("1d", "2h"), ("3d", "6h")]),
    ("28d", [("56m", "5m"), ("336m", "28m"), ("1344m", "112m"), ("4032m", "336m")]),
    ("7d", [("14m", "5m"), ("84m", "7m"), ("336m", "28m"), ("1008m", "84m")]),
])
def test_tier_windows_scale_with_the_slo_window(window, expected):
    from collector import durations

    tiers = plan.scale_tiers(spec.WORKBOOK_TIERS, durations.parse(window))
    assert [(promql.duration(t.long_window), promql.duration(t.short_window)) for t in tiers] == expected


def test_alert_labels_and_annotations():
    all_rules = [r for g in rules.rule_groups(importers.load(EXAMPLE).spec) for r in g["rules"]]
    burn = [r for r in all_rules if r.get("alert") == rules.BURN_ALERT]
    assert [(r["labels"]["severity"], r["labels"]["tier"], r["for"]) for r in burn] == [
        ("page", "page-fast", "2m"), ("page", "page-slow", "15m"), ("ticket", "ticket-fast", "1h"),
        ("ticket", "ticket-slow", "3h")]
    for r in burn:
        assert r["labels"]["team"] == "mcp-platform" and r["labels"]["window"] == "30d"
        assert set(r["annotations"]) == {"summary", "description", "runbook_url", "dashboard_url"}
        assert '{{ $value | printf "%.1f" }}x' in r["annotations"]["description"]
        assert r["annotations"]["runbook_url"] == "https://runbooks.example.com/mcp-slo/{{ $labels.slo }}#{{ $labels.service }}"
        assert r["annotations"]["dashboard_url"] == "http://127.0.0.1:8050/services/{{ $labels.service }}"
        assert ">= 50" in r["expr"]  # the low-traffic guard
        assert "sqrt(mcp_slo:error_ratio:rate" in r["expr"] and "1.64485362695 *" in r["expr"]  # the significance guard
    exhausted = [r for r in all_rules if r.get("alert") == rules.EXHAUSTED_ALERT]
    assert [r["labels"]["severity"] for r in exhausted] == ["ticket"]
    absent = [r for r in all_rules if r.get("alert") == rules.ABSENT_ALERT]
    assert len(absent) == 1 and absent[0]["for"] == "10m" and absent[0]["labels"]["severity"] == "ticket"
    for service in ("filesystem", "analytics"):  # either schema's series, labelled with the service
        assert f'absent((group by (service) (mcp_operations_total{{service="{service}"}}) or ' in absent[0]["expr"]
        assert f'"service", "{service}", "", "")' in absent[0]["expr"]


def test_templates_in_links_and_labels_are_escaped_or_rejected():
    assert rules.link("https://x/{slo}?s={service}", "w") == "https://x/{{ $labels.slo }}?s={{ $labels.service }}"
    assert rules.link("https://x/{{literal}}/{service}", "w") == 'https://x/{{ "{" }}literal}/{{ $labels.service }}'
    with pytest.raises(rules.RulesError, match=r"alerting.runbook_url: unknown placeholder \{team\}"):
        rules.link("https://x/{team}", "alerting.runbook_url")
    s = spec.parse({"defaults": {"objectives": [{"name": "a", "kind": "availability", "target": 99}]},
                    "alerting": {"labels": {"team": "{{ .Evil }}"}}})
    burn = next(r for g in rules.rule_groups(s) for r in g["rules"] if r.get("alert") == rules.BURN_ALERT)
    assert burn["labels"]["team"] == '{{ "{" }}{{ "{" }} .Evil }}'


def test_the_issue_timings_follow_from_the_example():
    """The bounds the suites check: a 99.9% 30d SLO pages within 3 minutes of a full outage
    and lets go within 35 minutes of its end."""
    s = importers.load(EXAMPLE).spec
    fs = {o.name: o for o in s.objectives_for("filesystem")}["availability"]
    within, tier = rules_tests.page_within(s, fs)
    assert (within, tier.tier.name) == (3, "page-fast")
    assert rules_tests.resolve_within(s, fs) == 35
    outage = yaml.safe_load(rules_tests.suites(s, "r.yml", ["outage"])["outage.test.yml"])
    checks = [c for t in outage["tests"] for c in t["promql_expr_test"]]
    assert {"expr": rules_tests.firing(rules_tests.Case("filesystem", fs), rules.BURN_ALERT, severity="page")
            .join(("max(", ")")), "eval_time": "63m", "exp_samples": [{"labels": "{}", "value": 1}]} in checks
    seven = window_spec("7d")
    assert rules_tests.page_within(seven, seven.defaults.objectives[0])[0] == 3
    assert rules_tests.resolve_within(seven, seven.defaults.objectives[0]) == 12  # 7m short window + 5


# --- behaviour: promtool test rules --------------------------------------------------------------


def _run_suites(directory: Path, files: list[str]) -> None:
    """promtool test rules on each file, two at a time."""
    binary = binaries.require("promtool")
    results: dict[str, subprocess.CompletedProcess] = {}
    lock = threading.Semaphore(2)

    def run(name: str) -> None:
        with lock:
            results[name] = subprocess.run([binary, "test", "rules", name], cwd=directory, capture_output=True,
                                           text=True)

    threads = [threading.Thread(target=run, args=(f,)) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted(files), "a suite did not run (its thread failed)"
    failed = {name: r.stdout + r.stderr for name, r in results.items() if r.returncode != 0}
    assert not failed, "\n".join(f"--- {name}\n{out}" for name, out in failed.items())


def _write_suites(directory: Path, s: spec.Spec, prefix: str = "",
                  scenarios: tuple[str, ...] = rules_tests.SCENARIOS) -> list[str]:
    rule_file = f"{prefix}rules.yml"
    (directory / rule_file).write_text(rules.render(rules.rule_groups(s)))
    names = []
    for name, text in rules_tests.suites(s, rule_file, scenarios).items():
        (directory / f"{prefix}{name}").write_text(text)
        names.append(f"{prefix}{name}")
    return names


@pytest.mark.integration
def test_generated_promtool_suites_pass(tmp_path):
    """Every objective of the example: an outage pages in time, recovery lets go in time, 2x
    tickets and never pages, 0.5x never alerts, a quiet hour's single error never pages, missing
    data raises a ticket. Without the low-traffic guard the same quiet hour pages. With a 7d
    window the scaled tiers page and let go in their (shorter) time. About 30 s of promtool,
    two at a time."""
    example = importers.load(EXAMPLE).spec
    files = _write_suites(tmp_path, example)
    assert sorted(files) == sorted(f"{n}.test.yml" for n in EXAMPLE_SCENARIOS)
    files += _write_suites(tmp_path, window_spec("7d"), prefix="7d-", scenarios=("outage", "recovery", "absent-data"))

    unguarded = example.model_copy(update={"alerting": example.alerting.model_copy(update={"min_events": 0,
                                                                                          "confidence": 0})})
    (tmp_path / "unguarded.yml").write_text(rules.render(rules.rule_groups(unguarded)))
    (tmp_path / "quiet-hour-unguarded.test.yml").write_text(rules_tests.quiet_hour_control(example, "unguarded.yml"))
    files.append("quiet-hour-unguarded.test.yml")
    # min_events holds but the significance guard is off: the stray error pages
    insignificant = example.model_copy(update={"alerting": example.alerting.model_copy(update={"confidence": 0})})
    (tmp_path / "insignificant.yml").write_text(rules.render(rules.rule_groups(insignificant)))
    (tmp_path / "significance-off.test.yml").write_text(rules_tests.significance_control(example, "insignificant.yml"))
    files.append("significance-off.test.yml")

    # the biggest suites first, so the two at a time finish together
    files.sort(key=lambda f: -(tmp_path / f).stat().st_size)
    _run_suites(tmp_path, files)


def test_every_objective_is_checked_in_every_scenario():
    s = importers.load(EXAMPLE).spec
    everyone = rules_tests.cases(s)
    assert len(everyone) == 7  # 2 named services x 2, a tool, the defaults on a discovered service x 2
    for name in ("outage", "recovery", "burn-2x", "burn-0.5x", "quiet-hour"):
        exprs = [c["expr"] for t in rules_tests.scenario(s, name) for c in t["promql_expr_test"]]
        for case in everyone:
            own = promql.alerts(None, "firing", **case.labels())[len("ALERTS{"):-1]
            assert any(own in e for e in exprs), f"{name} does not check {case.name}"


# --- command line ----------------------------------------------------------------------------------


def test_the_rules_command(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["rules", "--config", str(EXAMPLE), "--out", str(out)]) == 0
    assert (out / "mcp-slo.yml").read_text() == COMMITTED.read_text()
    assert cli.main(["rules", "--config", str(EXAMPLE), "--out", str(out), "--format", "prometheus-operator",
                     "--namespace", "monitoring", "--label", "prometheus=k8s"]) == 0
    manifest = yaml.safe_load((out / "mcp-slo-prometheusrule.yaml").read_text())
    assert manifest["metadata"]["labels"]["prometheus"] == "k8s"
    assert cli.main(["rules", "--config", str(EXAMPLE), "--out", str(out), "--tests"]) == 0
    assert sorted(p.name for p in (out / "tests").iterdir()) == sorted(f"{n}.test.yml" for n in EXAMPLE_SCENARIOS)
    assert "../mcp-slo.yml" in (out / "tests" / "outage.test.yml").read_text()
    capsys.readouterr()

    bad = tmp_path / "bad.yaml"
    bad.write_text("defaults: {objectives: [{name: availability, kind: availability, target: 120}]}\n")
    nothing = tmp_path / "nothing"
    assert cli.main(["rules", "--config", str(bad), "--out", str(nothing)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "target" in err
    assert not nothing.exists()
    assert cli.main(["rules", "--config", str(EXAMPLE), "--out", str(nothing), "--interval", "soon"]) == 2
    assert "--interval" in capsys.readouterr().err and not nothing.exists()
    assert cli.main(["rules", "--config", str(EXAMPLE), "--out", str(nothing), "--format", "prometheus-operator",
                     "--name", "MCP SLO"]) == 2
    assert "--name" in capsys.readouterr().err and not nothing.exists()


# --- a real Prometheus on a real exporter ------------------------------------------------------------


@pytest.mark.integration
def test_a_real_prometheus_evaluates_the_rules_on_exporter_metrics(tmp_path):
    """The example's rules at a 1s interval in a real Prometheus scraping a prometheus-client
    exporter: no rule fails, a service nobody configured gets the default objectives, and the
    error ratios are the ones the observations make (le="1.0" as the client writes it)."""
    import httpx
    from prometheus_client import CollectorRegistry

    from collector import start_metrics_server
    from collector.metrics import families
    from demo.prometheus import start_prometheus
    from tests.support import free_port, wait_until

    binaries.require("prometheus")
    registry = CollectorRegistry()
    fams = families(registry)
    server, _ = start_metrics_server(0, registry=registry)

    def ops(service: str, status: str, n: int) -> None:
        fams.operations.labels(service, "v1", "tools/call", "search", status).inc(n)

    def took(service: str, seconds: float, n: int) -> None:
        for _ in range(n):
            fams.duration.labels(service, "v1", "tools/call", "search").observe(seconds)

    services = ("filesystem", "analytics", "newcomer")
    for service in services:  # every series exists at 0 before the first scrape
        for status in ("success", "error", "timeout", "cancelled"):
            ops(service, status, 0)
        fams.duration.labels(service, "v1", "tools/call", "search")
    rule_file = tmp_path / "rules.yml"
    rule_file.write_text(rules.render(rules.rule_groups(importers.load(EXAMPLE).spec, interval="1s")))
    port = free_port()
    proc = start_prometheus(tmp_path / "prom", port, [f"127.0.0.1:{server.server_port}"], "1s",
                            rule_files=[str(rule_file)])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: binaries.query(url, 'mcp_operations_total{service="newcomer"}'), timeout=15,
                   what="the first scrape")
        ops("filesystem", "success", 96), ops("filesystem", "error", 3), ops("filesystem", "timeout", 1)
        ops("filesystem", "cancelled", 50)
        ops("analytics", "success", 100), ops("newcomer", "success", 100)
        took("filesystem", 0.05, 90), took("filesystem", 0.3, 10)  # threshold 0.1: 10% slow
        took("analytics", 0.9, 92), took("analytics", 2.0, 8)  # threshold 1.0 (le="1.0"): 8% slow
        took("newcomer", 0.2, 95), took("newcomer", 0.7, 5)  # the default, 0.5: 5% slow

        def ratios() -> dict[tuple[str, str], float]:
            result = binaries.query(url, 'mcp_slo:error_ratio:rate5m{tool=""}')
            return {(r["metric"]["service"], r["metric"]["slo"]): float(r["value"][1]) for r in result}

        expected = {("filesystem", "availability"): 0.04, ("filesystem", "latency"): 0.10,
                    ("analytics", "availability"): 0.0, ("analytics", "latency"): 0.08,
                    ("newcomer", "availability"): 0.0, ("newcomer", "latency"): 0.05}
        def as_expected() -> dict | None:
            r = ratios()
            ok = r.keys() == expected.keys() and all(abs(r[k] - v) < 1e-9 for k, v in expected.items())
            return r if ok else None

        try:
            wait_until(as_expected, timeout=20, what=f"error ratios {expected}")
        except AssertionError:
            raise AssertionError(f"error ratios {ratios()}, expected {expected}") from None

        objectives = {(r["metric"]["service"], r["metric"]["slo"], r["metric"].get("tool", "")): float(r["value"][1])
                      for r in binaries.query(url, "mcp_slo:objective")}
        assert objectives == {("filesystem", "availability", ""): 0.999, ("filesystem", "latency", ""): 0.95,
                              ("analytics", "availability", ""): 0.995, ("analytics", "latency", ""): 0.99,
                              ("newcomer", "availability", ""): 0.995, ("newcomer", "latency", ""): 0.99}
        info = binaries.query(url, 'mcp_slo:info{service="newcomer",slo="latency"}')
        assert [(i["metric"]["kind"], i["metric"]["window"], i["metric"]["threshold"]) for i in info] == \
            [("latency", "30d", "0.5")]

        groups = httpx.get(f"{url}/api/v1/rules", timeout=5).json()["data"]["groups"]
        assert sorted(g["name"] for g in groups) == sorted([rules.OBJECTIVES_GROUP, rules.SLO_GROUP, rules.HOURLY_GROUP])
        # every rule evaluated without error (the hourly group has not run yet: its first hour)
        broken = {r["name"]: r.get("lastError") for g in groups for r in g["rules"]
                  if r["health"] != "ok" and not (g["name"] == rules.HOURLY_GROUP and r["health"] == "unknown")}
        assert not broken
    finally:
        proc.stop()
        server.shutdown()


def test_backfill_rules_read_only_raw_metrics():
    """promtool backfills each rule on its own: none may read a series being backfilled."""
    group, hourly = rules.backfill_groups(importers.load("examples/slo.yaml").spec)
    recorded = {r["record"] for r in group["rules"]}
    assert {"mcp_slo:sli_total:rate5m", "mcp_slo:sli_bad:rate5m", promql.OBJECTIVE, promql.INFO} <= recorded
    # the 30d windows' time since the last hour reads the 30m and 1h rates, one window back too
    assert {"mcp_slo:sli_total:rate30m", "mcp_slo:sli_bad:rate30m", "mcp_slo:sli_total:rate1h",
            "mcp_slo:sli_bad:rate1h"} <= recorded
    assert {r["record"] for r in hourly["rules"]} == {"mcp_slo:sli_total:rate1h_hourly", "mcp_slo:sli_bad:rate1h_hourly",
                                                      promql.HOURLY_TIME}
    assert (group["interval"], hourly["interval"]) == ("1m", "1h")
    for rule in group["rules"] + hourly["rules"]:
        assert not rule.get("alert")
        assert "mcp_slo:" not in rule["expr"], rule
    def totals(rules_: list[dict]) -> dict:
        return {r["labels"]["slo"]: r["expr"] for r in rules_ if r.get("record") == "mcp_slo:sli_total:rate5m"}

    live = [r for g in rules.rule_groups(importers.load("examples/slo.yaml").spec) for r in g["rules"]]
    assert totals(group["rules"]) == totals(live)  # the same SLIs as the live rules

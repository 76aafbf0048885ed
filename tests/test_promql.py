"""slo.promql: escaping, matchers, SLI expressions; hostile names cannot change a query
(checked by Prometheus's own parser through promtool)."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from alerts import rules, rules_tests
from slo import promql
from slo.promql import SLI, Scope
from slo.schema import MCP_SLO
from tests import binaries

HOSTILE = [
    'a"b',
    "back\\slash",
    "new\nline",
    "tab\tand\rreturn",
    "{braces}",
    '"} or vector(1) #',
    '\\"} or vector(1) #',
    "a.b|c*",
    "ünïcode",
]


@pytest.mark.parametrize("value, expected", [
    ('a"b', 'a\\"b'),
    ("back\\slash", "back\\\\slash"),
    ("new\nline", "new\\nline"),
    ('"} or vector(1) #', '\\"} or vector(1) #'),
    ('\\"}', '\\\\\\"}'),
    ("plain-name_1.2:3/4", "plain-name_1.2:3/4"),
])
def test_escape(value, expected):
    assert promql.escape(value) == expected
    assert promql.quote(value) == f'"{expected}"'


def test_matchers_keep_a_hostile_value_inside_its_string():
    assert promql.matcher("service", "=", '"} or vector(1) #') == 'service="\\"} or vector(1) #"'
    # regex matchers: metacharacters escaped for RE2, then the string escaped for PromQL
    assert promql.one_of("service", ["a.b", "c|d"]) == 'service=~"a\\\\.b|c\\\\|d"'
    assert promql.none_of("service", ["x"]) == 'service!="x"'
    assert promql.one_of("method", ["tools/call"]) == 'method="tools/call"'
    with pytest.raises(ValueError):
        promql.matcher('service"}', "=", "x")
    with pytest.raises(ValueError):
        promql.matcher("service", "==", "x")


def test_numbers_bounds_and_windows():
    assert promql.number(99.9 / 100) == "0.999"
    assert promql.number(1 - 0.9995) == "0.0005"
    assert (promql.le(0.5), promql.le(1), promql.le(10)) == ("0.5", "1.0", "10.0")  # as prometheus-client writes them
    assert [promql.duration(s) for s in (300, 3600, 21600, 604800, 2592000, 5040, 80640)] == \
        ["5m", "1h", "6h", "7d", "30d", "84m", "1344m"]
    assert promql.recorded(promql.SLI_TOTAL, 300) == "mcp_slo:sli_total:rate5m"


def test_sli_expressions():
    av = SLI("availability", "availability", ("tools/call",), scope=Scope(exclude=("a", "b")), schema=MCP_SLO)
    assert av.total_rate(300) == ('sum by (service) (rate(mcp_operations_total{service!~"a|b",method="tools/call",'
                                  'status!="cancelled"}[5m]))')
    assert av.bad_rate(300) == (
        'sum by (service) (rate(mcp_operations_total{service!~"a|b",method="tools/call",status=~"error|timeout"}[5m]))'
        ' or on (service) 0 * mcp_slo:sli_total:rate5m{slo="availability",service!~"a|b",tool=""}')
    lat = SLI("latency", "latency", ("tools/call", "resources/read"), 1.0, Scope(include=("fs",), tool="write"),
              MCP_SLO)
    assert lat.total_rate(3600) == ('sum by (service, tool) (rate(mcp_operation_duration_seconds_count{service="fs",'
                                    'tool="write",method=~"resources/read|tools/call"}[1h]))')
    assert lat.bad_rate(3600) == (
        'mcp_slo:sli_total:rate1h{slo="latency",service="fs",tool="write"} - on (service, tool) sum by (service, tool) '
        '(rate(mcp_operation_duration_seconds_bucket{service="fs",tool="write",method=~"resources/read|tools/call",'
        'le="1.0"}[1h]))')
    assert promql.averaged_rate(promql.SLI_BAD, 259200) == "avg_over_time(mcp_slo:sli_bad:rate5m[3d])"
    long = promql.averaged_rate(promql.SLI_BAD, 2592000)
    assert "sum_over_time(mcp_slo:sli_bad:rate1h_hourly[30d]) * 3600" in long  # the hours
    lag = "(time() - max_over_time(mcp_slo:hourly_timestamp[2h]) + 150 or vector(0))"  # the hours end 2.5m back
    for w in ("5m", "30m", "1h"):  # since the last hour, from the recent rates; the same span a window back, taken off
        assert f'label_replace(mcp_slo:sli_bad:rate{w} * (scalar(clamp' in long
        assert f'label_replace(-1 * mcp_slo:sli_bad:rate{w} offset 30d * (scalar(clamp' in long
    assert f"scalar(clamp({lag}, 0, 300))" in long and f"scalar(clamp_min({lag} - 3600, 0))" in long
    assert long.endswith(") / 2592000")
    assert promql.error_ratio(86400) == "mcp_slo:sli_bad:rate1d / mcp_slo:sli_total:rate1d"
    with pytest.raises(ValueError):
        Scope(include=("a",), exclude=("b",))
    with pytest.raises(ValueError):
        SLI("x", "latency", ("tools/call",))  # no threshold


@pytest.mark.integration
def test_hostile_names_select_exactly_their_own_series(tmp_path):
    """Rules built with hostile service and tool names, run by promtool on series carrying those
    names: each selects exactly its series, and no `or vector(1)` sneaks in."""
    promtool = binaries.require("promtool")
    services = ["innocent", *HOSTILE]
    recorded = []
    inputs = []
    checks = []
    for i, service in enumerate(services):
        sli = SLI("availability", "availability", ("tools/call",), scope=Scope(include=(service,), tool=service))
        recorded.append({"record": "hostile:total:rate5m", "expr": sli.total_rate(300), "labels": {"case": str(i)}})
        recorded.append({"record": "hostile:absent", "expr": promql.absent_data(service), "labels": {"case": str(i)}})
        labels = {"service": service, "version": "v1", "method": "tools/call", "tool": service, "status": "success"}
        inputs.append(rules_tests.series("mcp_operations_total", labels, [60.0 * (i + 1)] * 10))
        sample = promql.selector("", [promql.matcher("case", "=", str(i)), promql.matcher("service", "=", service),
                                      promql.matcher("tool", "=", service)])
        checks.append({"expr": f'round({promql.selector("hostile:total:rate5m", [promql.matcher("case", "=", str(i))])})',
                       "eval_time": "10m", "exp_samples": [{"labels": sample, "value": i + 1}]})
        checks.append({"expr": promql.selector("hostile:absent", [promql.matcher("case", "=", str(i))]),
                       "eval_time": "10m", "exp_samples": []})
    # everyone but the hostile ones: a default scope excluding them sees only "innocent"
    rest = SLI("availability", "availability", ("tools/call",), scope=Scope(exclude=tuple(HOSTILE)))
    recorded.append({"record": "hostile:rest:rate5m", "expr": rest.total_rate(300)})
    checks.append({"expr": "round(hostile:rest:rate5m)", "eval_time": "10m",
                   "exp_samples": [{"labels": '{service="innocent"}', "value": 1}]})
    (tmp_path / "rules.yml").write_text(rules.dump({"groups": [{"name": "hostile", "rules": recorded}]}))
    (tmp_path / "test.yml").write_text(rules.dump({
        "rule_files": ["rules.yml"], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": inputs, "promql_expr_test": checks}]}))
    check = subprocess.run([promtool, "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    result = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    # the hostile names are inside strings: as text the expressions hold them, as queries they match them
    assert any("vector(1)" in r["expr"] for r in yaml.safe_load((tmp_path / "rules.yml").read_text())["groups"][0]["rules"])


def test_alert_queries():
    assert promql.alerts("MCPSLOErrorBudgetBurn", severity="page", service='x"y') == (
        'ALERTS{alertname="MCPSLOErrorBudgetBurn",alertstate="firing",severity="page",service="x\\"y"}')
    expr = promql.burn_alert(burn=14.4, long_window=3600, short_window=300, slo_window="30d", min_events=50)
    assert "mcp_slo:error_ratio:rate1h / on (service, slo, tool) mcp_slo:error_budget > 14.4" in expr
    assert "mcp_slo:error_ratio:rate5m / on (service, slo, tool) mcp_slo:error_budget > 14.4" in expr
    assert "mcp_slo:sli_total:rate1h * 3600 >= 50" in expr
    assert expr.endswith('mcp_slo:info{window="30d"}')
    assert ">= 0" not in promql.burn_alert(burn=1, long_window=3600, short_window=300, slo_window="7d", min_events=0)


# --- the dashboard's charts -------------------------------------------------------------------

DASHBOARD_QUERIES = {
    "sli 5m": lambda s: promql.service_sli(s, 300),
    "sli 15m": lambda s: promql.service_sli(s, 900),
    "objectives": promql.service_objectives,
    "budget": promql.service_budget_remaining,
    "burn": lambda s: promql.service_burn_rates(s, [300, 3600]),
    "requests": lambda s: promql.service_status_rates(s, 300),
    "buckets": lambda s: promql.service_bucket_rates(s, 300),
    "latency": lambda s: promql.service_latency_quantiles(s, 300, (0.5, 0.99)),
    "active": lambda s: promql.service_active(s, 300),
    "tool status": lambda s: promql.tool_status_rates(300, s),
    "tool buckets": lambda s: promql.tool_bucket_rates(300, s),
}


def test_dashboard_queries():
    assert promql.service_sli("fs", 300) == (
        '1 - (mcp_slo:sli_bad:rate5m{service="fs"} / mcp_slo:sli_total:rate5m{service="fs"})')
    assert promql.service_sli("fs", 3600) == ('1 - (avg_over_time(mcp_slo:sli_bad:rate5m{service="fs"}[1h]) / '
                                              'avg_over_time(mcp_slo:sli_total:rate5m{service="fs"}[1h]))')
    assert promql.service_burn_rates("fs", [3600, 300]) == (
        'label_replace({__name__=~"mcp_slo:error_ratio:rate1h|mcp_slo:error_ratio:rate5m",service="fs"}, '
        '"burn_window", "$1", "__name__", "mcp_slo:error_ratio:rate(.+)") '
        '/ on (service, slo, tool) group_left mcp_slo:error_budget{service="fs"}')
    assert promql.tool_status_rates(300, schema=MCP_SLO) == (  # the engine's query, every service
        'sum by (service, tool, status) (rate(mcp_operations_total{method="tools/call"}[5m]))')
    assert [promql.chart_window(s) for s in (15, 120, 300, 900, 3600)] == [300, 300, 300, 900, 3600]


@pytest.mark.parametrize("service", HOSTILE)
def test_a_hostile_service_changes_only_the_string_in_the_dashboard_queries(service):
    for name, build in DASHBOARD_QUERIES.items():
        # OpenTelemetry's series match their computed service in label_replace, as a regex
        expected = (build("placeholder")
                    .replace('"service", "placeholder"', f'"service", {promql.quote(promql.regex_escape(service))}')
                    .replace('"placeholder"', promql.quote(service)))
        assert build(service) == expected, name


@pytest.mark.integration
def test_the_dashboard_queries_select_exactly_their_service(tmp_path):
    """Each dashboard query, with a hostile service name, run by promtool on series of every
    hostile service: it answers for its own service only (and promtool parses every query)."""
    promtool = binaries.require("promtool")
    inputs, checks = [], []

    def gauge(metric: str, labels: dict[str, str], value: float) -> dict:
        return {"series": promql.selector(metric, [promql.matcher(k, "=", v) for k, v in labels.items()]),
                "values": f"{promql.number(value)}x15"}

    def expect(expr: str, value: float, metric: str = "", **labels: str) -> None:
        checks.append({"expr": expr, "eval_time": "10m", "exp_samples": [
            {"labels": promql.selector(metric, [promql.matcher(k, "=", v) for k, v in labels.items()]), "value": value}]})

    for i, service in enumerate(["innocent", *HOSTILE]):
        slo = {"service": service, "slo": "availability"}
        inputs.append(rules_tests.series("mcp_operations_total", {"service": service, "version": "v1",
                                                                  "method": "tools/call", "tool": "t",
                                                                  "status": "success"}, [60.0 * (i + 1)] * 15))
        inputs.append(gauge("mcp_operations_active", {"service": service, "version": "v1"}, i))
        inputs.append(gauge("mcp_slo:sli_total:rate5m", slo, 100))
        inputs.append(gauge("mcp_slo:sli_bad:rate5m", slo, i))
        inputs.append(gauge("mcp_slo:error_ratio:rate1h", slo, 0.001 * (i + 1)))
        inputs.append(gauge("mcp_slo:error_budget", slo, 0.001))
        inputs.append(gauge("mcp_slo:error_budget_remaining", slo, i))
        expect(f"round({promql.service_status_rates(service, 300)})", i + 1, status="success")
        expect(f"round({promql.tool_status_rates(300, service)})", i + 1, service=service, tool="t", status="success")
        expect(promql.service_active(service, 300), i, version="v1")
        expect(f"round(100 * ({promql.service_sli(service, 300)}))", 100 - i, **slo)
        expect(f"round({promql.service_burn_rates(service, [3600])})", i + 1, **slo, burn_window="1h")
        if i == 0:  # the engine's gauge, where Prometheus has it, before the rules' number
            inputs.append(gauge("mcp_slo_error_budget_remaining", {**slo, "window": "30d"}, 7))
        expect(promql.service_budget_remaining(service), 7 if i == 0 else i, **slo)
    rule_file = {"groups": [{"name": "parse", "rules": [
        {"record": f"dashboard:{name.replace(' ', '_')}", "expr": build(service)}
        for name, build in DASHBOARD_QUERIES.items() for service in HOSTILE]}]}
    (tmp_path / "rules.yml").write_text(rules.dump(rule_file))
    check = subprocess.run([promtool, "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    (tmp_path / "test.yml").write_text(rules.dump({
        "rule_files": [], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": inputs, "promql_expr_test": checks}]}))
    result = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- OpenTelemetry's semantic conventions (slo.schema) -----------------------------------------


def test_otel_reads_the_histogram_with_the_resource_and_computed_labels():
    av = SLI("availability", "availability", ("tools/call",), scope=Scope(include=("fs",)), schema="otel")
    bad = av.raw_parts(300)["bad"]
    assert bad.startswith("sum by (service) (")  # no mcp-slo side
    assert 'mcp_server_operation_duration_seconds_count{mcp_method_name="tools/call",error_type!=""}[5m]' in bad
    assert "* on (job, instance) group_left (service_name, service_version) target_info" in bad
    assert "unless on (job, instance) target_info" in bad  # promoted resource attributes
    assert '"service", "$1", "service_name", "(.+)"' in bad and '"service", "$1", "job", "(.*)"' in bad
    assert '"mcp_slo_match_service", "1", "service", "fs") unless on (mcp_slo_match_service) vector(1)' in bad
    lat = SLI("latency", "latency", ("tools/call",), 1.0, schema="otel")
    assert 'le=~"1|1\\\\.0"' in lat.raw_parts(300)["good"]  # both spellings of the bound
    both = promql.discovery()
    assert both.startswith("(group by (service, version, tool) (mcp_operations_total) or group by")  # mcp-slo's first
    assert '"version", "unknown", "", "")' in both
    with pytest.raises(ValueError, match="unknown metrics schema"):
        SLI("a", "availability", ("tools/call",), schema="prom")


def test_a_computed_label_matcher_escapes_names_but_not_grafana_variables():
    expr = promql.read("mcp_operations_total", [promql.matcher("service", "=", "a.b"),
                                                promql.grafana_variable("version", "version")], ("service",),
                       schema="otel")
    assert '"service", "a\\\\.b")' in expr and '"version", "$version")' in expr
    assert promql.canary_latency_buckets("fs", ("v1", "v2"), 300, "mcp-slo") == (
        'sum by (version, le) (increase(mcp_operation_duration_seconds_bucket{service="fs",version=~"v1|v2",'
        'method="tools/call"}[5m]))')

"""The generated `promtool test rules` suites for specs that read OpenTelemetry's MCP metrics:
their inputs are the semantic conventions' series as an SDK's Prometheus exporter scraped by
Prometheus has them, and the rules pass them; thresholds on the conventions' bounds match the
bucket as the exporter spells it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from alerts import rules, rules_tests
from collector import names, semconv
from slo import promql, schema, spec
from tests.test_rules import EXAMPLE, _run_suites, _write_suites


def example(metrics: str) -> spec.Spec:
    """examples/slo.yaml with `metrics:` set (parsed, so an otel spec gets the conventions' buckets)."""
    return spec.parse({**yaml.safe_load(EXAMPLE.read_text()), "metrics": metrics})


def inputs(s: spec.Spec, scenario: str) -> list[str]:
    return [item["series"] for group in rules_tests.scenario(s, scenario) for item in group["input_series"]]


def otel_thresholds() -> spec.Spec:
    """Latency thresholds only the conventions' buckets have: 0.2 (le="0.2") and 30 (le="30")."""
    return spec.parse({"metrics": "otel", "defaults": {"objectives": [
        {"name": "availability", "kind": "availability", "target": 99.9},
        {"name": "latency", "kind": "latency", "threshold": 0.2, "target": 99}]},
        "services": {"batch": {"objectives": [{"name": "latency", "threshold": 30, "target": 95}]}}})


RAW_SCENARIOS = ("outage", "absent-data")


def test_otel_inputs_are_the_conventions_series_as_prometheus_scrapes_them():
    s = example("otel")
    for scenario in ("outage", "absent-data"):
        series = inputs(s, scenario)
        assert not any(x.startswith(("mcp_operations", "mcp_operation_duration")) for x in series), scenario
        assert any(x.startswith(f'{schema.TARGET_INFO}{{job="mcp",instance="filesystem:9464",'
                                f'service_name="filesystem",service_version="v1"}}') for x in series), scenario
    series = inputs(s, "outage")
    histogram = semconv.PROMETHEUS_DURATION
    counts = [x for x in series if x.startswith(f"{histogram}_count{{") and 'instance="filesystem:9464"' in x]
    # one series per error.type, "" for success; the target's job and instance; the scope
    assert {x.split('error_type="')[1].split('"')[0] for x in counts} >= {"", "tool_error", "-32603", "timeout"}
    assert all('job="mcp"' in x and 'otel_scope_name="mcp-slo"' in x for x in counts)
    buckets = {x.split('le="')[1].split('"')[0] for x in series if x.startswith(f"{histogram}_bucket{{")}
    assert {"0.5", "1", "30", "300", "+Inf"} <= buckets and "1.0" not in buckets  # the exporter's spelling
    # mcp-slo's series for the default schema, and auto, as before
    for metrics in ("auto", "mcp-slo"):
        series = inputs(example(metrics), "outage")
        assert any(x.startswith(names.OPERATIONS_TOTAL) for x in series)
        assert not any(x.startswith((histogram, schema.TARGET_INFO)) for x in series)


def test_thresholds_on_the_conventions_bounds_match_the_exporters_spelling():
    exprs = "\n".join(r["expr"] for g in rules.rule_groups(otel_thresholds()) for r in g["rules"])
    assert promql.matcher("le", "=", "0.2") in exprs
    assert promql.one_of("le", {"30", "30.0"}) in exprs
    assert f'{semconv.PROMETHEUS_DURATION}_bucket{{' in exprs


@pytest.mark.integration
def test_generated_suites_pass_on_otel_series(tmp_path: Path):
    """Two scenarios of the example with `metrics: otel` on the conventions' series: an outage
    pages (every raw read: availability, latency, per tool) and a service without data raises
    MCPSLOAbsentData (discovery). The others differ from these only in the traffic's shape, seen
    through the same reads, and test_rules runs them on mcp-slo's series;
    `auto` rules on the same series (an outage and absent data); and thresholds only the
    conventions' buckets have (0.2s and 30s) page on an outage."""
    otel = example("otel")
    files = _write_suites(tmp_path, otel, scenarios=RAW_SCENARIOS)
    assert sorted(files) == sorted(f"{n}.test.yml" for n in RAW_SCENARIOS)
    # auto reads both schemas: its rules, the otel spec's inputs (same objectives, same alerts)
    (tmp_path / "auto-rules.yml").write_text(rules.render(rules.rule_groups(example("auto"))))
    for name, text in rules_tests.suites(otel, "auto-rules.yml", RAW_SCENARIOS).items():
        (tmp_path / f"auto-{name}").write_text(text)
        files.append(f"auto-{name}")
    files += _write_suites(tmp_path, otel_thresholds(), prefix="bounds-", scenarios=("outage",))
    files.sort(key=lambda f: -(tmp_path / f).stat().st_size)
    _run_suites(tmp_path, files)

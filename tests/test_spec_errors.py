"""Bad specs, in every supported format: `mcp-slo validate` names the file, the
key path and what is wrong, exits 2, and `mcp-slo alertmanager` writes nothing."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mcp_slo import cli

AVAILABILITY = "{name: availability, kind: availability, target: 99.9}"


def mcp(body: str) -> str:
    return textwrap.dedent(body).lstrip()


def openslo(slo_spec: str = "", kind: str = "SLO", budgeting: str = "Occurrences", target: str = "target: 0.999",
            good: str = 'mcp_operations_total{method="tools/call", status="success"}',
            window: str = "{duration: 30d, isRolling: true}", service: str = "filesystem") -> str:
    return textwrap.dedent(f"""\
        apiVersion: openslo/v1
        kind: {kind}
        metadata: {{name: filesystem-availability}}
        spec:
          service: '{service}'
          indicator:
            metadata: {{name: availability}}
            spec:
              ratioMetric:
                good: {{metricSource: {{type: Prometheus, spec: {{query: '{good}'}}}}}}
                total: {{metricSource: {{type: Prometheus, spec: {{query: 'mcp_operations_total{{method="tools/call"}}'}}}}}}
          timeWindow: [{window}]
          budgetingMethod: {budgeting}
          objectives: [{{{target}}}]
        """) + slo_spec


def sloth(error_query: str = 'mcp_operations_total{method="tools/call", status=~"error|timeout"}',
          total_query: str = 'mcp_operations_total{method="tools/call"}', objective: str = "99.9",
          more: str = "") -> str:
    return textwrap.dedent(f"""\
        version: prometheus/v1
        service: filesystem
        slos:
          - name: availability
            objective: {objective}
            sli:
              events:
                error_query: 'sum(rate({error_query}[{{{{.window}}}}]))'
                total_query: 'sum(rate({total_query}[{{{{.window}}}}]))'
        """) + more


# (id, file text, key path or None, phrase of the reason)
CASES = [
    # --- mcp-slo specs -----------------------------------------------------
    ("unknown-top-level-key", "version: 1\nobjectives: []\n", "objectives", "unknown key"),
    ("unknown-nested-key", mcp("""
        services:
          fs:
            objectives: [{name: availability, kind: availability, target: 99, treshold: 1}]
        """), "services.fs.objectives.0.treshold", "unknown key"),
    ("target-0", mcp("""
        defaults: {objectives: [{name: availability, kind: availability, target: 0}]}
        """), "defaults.objectives.0.target", "strictly between 0 and 100"),
    ("target-100", mcp(f"""
        defaults: {{objectives: [{AVAILABILITY}]}}
        services: {{fs: {{objectives: [{{name: availability, target: 100}}]}}}}
        """), "services.fs.objectives.0.target", "strictly between 0 and 100"),
    ("target-string", mcp("""
        defaults: {objectives: [{name: availability, kind: availability, target: "99.9%"}]}
        """), "defaults.objectives.0.target", "must be a number"),
    ("target-boolean", mcp("""
        defaults: {objectives: [{name: availability, kind: availability, target: true}]}
        """), "defaults.objectives.0.target", "must be a number"),
    ("latency-without-threshold", mcp("""
        defaults: {objectives: [{name: latency, kind: latency, target: 99}]}
        """), "defaults.objectives.0", "needs a threshold"),
    ("availability-with-threshold", mcp("""
        defaults: {objectives: [{name: availability, kind: availability, target: 99, threshold: 0.5}]}
        """), "defaults.objectives.0", "takes no threshold"),
    ("threshold-not-a-bucket", mcp("""
        defaults: {objectives: [{name: latency, kind: latency, target: 99, threshold: 0.3}]}
        """), "defaults.objectives.0.threshold", "not a histogram bucket bound"),
    ("tool-threshold-not-a-bucket", mcp("""
        defaults: {objectives: [{name: latency, kind: latency, target: 99, threshold: 0.5}]}
        services: {fs: {tools: {write_file: {objectives: [{name: latency, threshold: 0.25}]}}}}
        """), "services.fs.tools.write_file.objectives.0.threshold", "not a histogram bucket bound"),
    # 0.2 and 30 are bounds of OpenTelemetry's recommended buckets, not of mcp-slo's default ones
    ("otel-bound-under-auto", mcp("""
        defaults: {objectives: [{name: latency, kind: latency, target: 99, threshold: 0.2}]}
        """), "defaults.objectives.0.threshold",
     "0.2 is not a histogram bucket bound (buckets: 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10)"),
    ("otel-bound-under-mcp-slo", mcp("""
        metrics: mcp-slo
        defaults: {objectives: [{name: latency, kind: latency, target: 99, threshold: 30}]}
        """), "defaults.objectives.0.threshold", "30 is not a histogram bucket bound"),
    ("otel-with-own-buckets", mcp("""
        metrics: otel
        buckets: [0.1, 0.5, 1]
        defaults: {objectives: [{name: latency, kind: latency, target: 99, threshold: 0.2}]}
        """), "defaults.objectives.0.threshold", "0.2 is not a histogram bucket bound (buckets: 0.1, 0.5, 1)"),
    *[(f"window-{w}", mcp(f"""
        defaults: {{objectives: [{{name: availability, kind: availability, target: 99, window: "{w}"}}]}}
        """), "defaults.objectives.0.window", "not a duration") for w in ("30days", "0d", "-1h", "1h30m", "")],
    ("tier-window", mcp("""
        alerting:
          tiers: [{name: fast, severity: page, burn_rate: 14.4, long_window: 1 hour, short_window: 5m}]
        """), "alerting.tiers.0.long_window", "not a duration"),
    ("duplicate-objective-names", mcp(f"""
        defaults: {{objectives: [{AVAILABILITY}, {AVAILABILITY}]}}
        """), "defaults.objectives", "duplicate names ['availability']"),
    ("duplicate-override-names", mcp(f"""
        defaults: {{objectives: [{AVAILABILITY}]}}
        services: {{fs: {{objectives: [{{name: availability, target: 99}}, {{name: availability, target: 98}}]}}}}
        """), "services.fs.objectives", "duplicate names ['availability']"),
    ("duplicate-tier-names", mcp("""
        alerting:
          tiers:
            - {name: fast, severity: page, burn_rate: 14.4, long_window: 1h, short_window: 5m}
            - {name: fast, severity: ticket, burn_rate: 3, long_window: 1d, short_window: 2h}
        """), "alerting.tiers", "duplicate tier names ['fast']"),
    ("short-window-not-shorter", mcp("""
        alerting:
          tiers: [{name: fast, severity: page, burn_rate: 14.4, long_window: 1h, short_window: 60m}]
        """), "alerting.tiers.0", "must be shorter than long_window"),
    ("malformed-yaml", "version: 1\nservices: {fs: [\n", None, "not valid YAML"),
    ("empty-file", "", None, "the spec is empty"),
    ("comments-only", "# nothing here\n", None, "the spec is empty"),
    ("list-at-top-level", "- version: 1\n", None, "must be a mapping at the top level, got list"),
    ("two-documents", "version: 1\n---\nversion: 1\n", None, "one YAML document, found 2"),
    ("version-2", "version: 2\n", "version", "Input should be 1"),
    ("service-name-quote", "services: {'fs\"x': {}}\n", "services", "'fs\"x' is not a valid service name"),
    ("service-name-newline", 'services: {"fs\\nx": {}}\n', "services", "'fs\\nx' is not a valid service name"),
    ("service-name-braces", "services: {'fs{x}': {}}\n", "services", "'fs{x}' is not a valid service name"),
    ("service-name-space", "services: {'file system': {}}\n", "services", "is not a valid service name"),
    ("service-name-promql", "services: {'fs\"} or vector(1) #': {}}\n", "services", "is not a valid service name"),
    ("tool-name-quote", "services: {fs: {tools: {'write\"file': {}}}}\n", "services.fs.tools",
     "is not a valid tool name"),
    ("reserved-alert-label", "alerting: {labels: {severity: critical}}\n", "alerting.labels",
     "'severity' is reserved"),
    ("invalid-alert-label", "alerting: {labels: {team-name: a}}\n", "alerting.labels", "not a valid label name"),
    ("unknown-method", mcp("""
        defaults: {objectives: [{name: availability, kind: availability, target: 99, methods: [tools/run]}]}
        """), "defaults.objectives.0.methods", "got ['tools/run']"),
    ("unknown-kind", mcp("""
        defaults: {objectives: [{name: throughput, kind: throughput, target: 99}]}
        """), "defaults.objectives.0.kind", "'availability' or 'latency'"),
    ("bad-objective-name", mcp("""
        defaults: {objectives: [{name: "Avail ability", kind: availability, target: 99}]}
        """), "defaults.objectives.0.name", "not a valid SLO name"),
    ("min-events-negative", "alerting: {min_events: -1}\n", "alerting.min_events", "greater than or equal to 0"),
    ("new-objective-without-kind", "services: {fs: {objectives: [{name: fast, target: 99}]}}\n",
     "services.fs.objectives.0", "needs kind and target"),
    ("receiver-not-a-url", "alerting: {receivers: {page: 'pagerduty please'}}\n", "alerting.receivers.page",
     "not an http:// or https:// URL"),
    # --- OpenSLO -----------------------------------------------------------
    ("openslo-timeslices", openslo(budgeting="Timeslices"), "spec.budgetingMethod", "'Timeslices' is not supported"),
    ("openslo-other-metric", openslo(good='http_requests_total{code="200"}'),
     "spec.indicator.spec.ratioMetric.good.metricSource.spec.query", "queries 'http_requests_total'"),
    ("openslo-target-percent-as-fraction", openslo(target="target: 99.9"), "spec.objectives.0.target",
     "a fraction strictly between 0 and 1"),
    ("openslo-calendar-window", openslo(window="{duration: 1M, calendar: {startTime: '2024-01-01 00:00:00'}}"),
     "spec.timeWindow.0", "calendar windows are not supported"),
    ("openslo-bad-duration", openslo(window="{duration: 4 weeks, isRolling: true}"),
     "spec.timeWindow.0.duration", "not a duration"),
    ("openslo-unknown-kind", openslo(kind="AlertPolicy"), "kind", "'AlertPolicy' is not supported"),
    ("openslo-hostile-service", openslo(service='fs"} or vector(1) #'), "spec.service",
     "is not a valid service name"),
    ("openslo-bad-only-errors", openslo(good='mcp_operations_total{method="tools/call", status="error"}'),
     "spec.indicator.spec.ratioMetric.good.metricSource.spec.query", 'selects status="success"'),
    ("openslo-second-document", openslo() + "---\n" + openslo(budgeting="RatioTimeslices"),
     "document 2 (SLO filesystem-availability): spec.budgetingMethod", "is not supported"),
    ("openslo-duplicate-objective", openslo() + "---\n" + openslo(),
     "document 2 (SLO filesystem-availability): spec.indicator.metadata.name", "duplicate objective name"),
    ("openslo-unknown-key", openslo("  alertPolicy: []\n"), "spec.alertPolicy", "unknown key"),
    ("openslo-v1alpha", openslo().replace("openslo/v1", "openslo/v1alpha"), "apiVersion", "use openslo/v1"),
    # --- Sloth -------------------------------------------------------------
    ("sloth-other-metric", sloth(error_query='http_requests_total{code=~"5.."}'),
     "slos.0.sli.events.error_query", "queries 'http_requests_total'"),
    ("sloth-other-label", sloth(total_query='mcp_operations_total{method="tools/call", job="fs"}'),
     "slos.0.sli.events.total_query", "label 'job'"),
    ("sloth-hostile-label-value", sloth(error_query='mcp_operations_total{service="fs\\"} or vector(1) #", '
                                                    'method="tools/call", status=~"error|timeout"}'),
     "slos.0.sli.events", "select different events"),
    # no method matcher is every method: refused only when the other query selects some
    ("sloth-method-on-one-side", sloth(error_query='mcp_operations_total{status=~"error|timeout"}'),
     "slos.0.sli.events", "method every method, tool any vs service any, method tools/call"),
    ("sloth-threshold-not-a-bucket", sloth(
        error_query='mcp_operation_duration_seconds_count{method="tools/call"}[5m])) - '
                    'sum(rate(mcp_operation_duration_seconds_bucket{method="tools/call", le="0.3"}',
        total_query='mcp_operation_duration_seconds_count{method="tools/call"}'),
     "slos.0.sli.events.error_query", "le=0.3 is not a histogram bucket bound"),
    ("sloth-objective-100", sloth(objective="100"), "slos.0.objective", "strictly between 0 and 100"),
    ("sloth-duplicate-names", sloth(more=textwrap.indent(sloth().split("slos:\n", 1)[1], "")),
     "slos.1.name", "duplicate objective name 'availability'"),
    ("sloth-page-disable-mismatch", sloth(more=textwrap.indent(textwrap.dedent("""\
          - name: other
            objective: 99
            alerting: {page_alert: {disable: true}}
            sli:
              events:
                error_query: 'mcp_operations_total{method="ping", status=~"error|timeout"}'
                total_query: 'mcp_operations_total{method="ping"}'
        """), "  ")), "slos.1.alerting.page_alert.disable", "for all SLOs or for none"),
    ("sloth-wrong-version", sloth().replace("prometheus/v1", "prometheus/v2"), "version", "'prometheus/v1'"),
]


@pytest.mark.parametrize("name, text, key_path, reason", CASES, ids=[c[0] for c in CASES])
def test_a_bad_spec_is_named_and_exits_2(tmp_path, capsys, name, text, key_path, reason):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    assert cli.main(["validate", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    problems = err.splitlines()[1:]
    assert problems and all(line.startswith(f"{path}: ") for line in problems), err
    if key_path is not None:
        assert f": {key_path}: " in err, err
    assert reason in err, err


@pytest.mark.parametrize("name, text, key_path, reason", CASES[::7], ids=[c[0] for c in CASES[::7]])
def test_a_bad_spec_writes_nothing(tmp_path, capsys, name, text, key_path, reason):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    out = tmp_path / "alertmanager.yml"
    assert cli.main(["alertmanager", "--config", str(path), "--out", str(out)]) == 2
    assert reason in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_a_missing_file(tmp_path, capsys):
    path = tmp_path / "nowhere.yaml"
    assert cli.main(["validate", "--config", str(path)]) == 2
    assert f"{path}: cannot read: No such file or directory" in capsys.readouterr().err


def test_a_binary_file(tmp_path, capsys):
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"\xff\xfe\x00version")
    assert cli.main(["validate", "--config", str(path)]) == 2
    assert str(path) in capsys.readouterr().err


def test_an_existing_output_is_left_alone(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("version: 2\n")
    out = tmp_path / "alertmanager.yml"
    out.write_text("previous\n")
    assert cli.main(["alertmanager", "--config", str(path), "--out", str(out)]) == 2
    assert out.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alertmanager.yml", "bad.yaml"]


def test_the_examples_are_valid(capsys):
    for example in sorted(Path("examples").glob("*.yaml")):
        assert cli.main(["validate", "--config", str(example)]) == 0, capsys.readouterr().err
        assert f"{example}: valid" in capsys.readouterr().out


def test_an_unknown_metrics_schema_is_one_line_naming_the_choices():
    from slo import spec as spec_module
    with pytest.raises(spec_module.SpecError) as e:
        spec_module.parse({"metrics": "prom"}, "slo.yaml")
    assert str(e.value) == "slo.yaml: metrics: unknown metrics schema 'prom'; one of auto, mcp-slo, otel"
    assert spec_module.parse({}).metrics == "auto" and spec_module.parse({"metrics": "otel"}).metrics == "otel"

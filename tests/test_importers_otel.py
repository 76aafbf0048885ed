"""OpenSLO and Sloth queries written against OpenTelemetry's MCP semantic-convention metrics
(mcp_server_operation_duration_seconds_{bucket,count}{mcp_method_name, gen_ai_tool_name,
error_type}, the resource in target_info) import as queries on mcp-slo's names do; the spec
reads OpenTelemetry's names only (`metrics: otel`) when every query does. A query mixing the
schemas, or on a label the importer cannot map, gets a one-line error naming where it is."""

from __future__ import annotations

import subprocess
import textwrap

import pytest
import yaml

from mcp_slo import cli
from slo import importers, schema, spec
from slo.importers import sli_query
from slo.importers.sli_query import Filter, Part, QueryError
from tests import binaries

D = "mcp_server_operation_duration_seconds"
EVERY = spec.ALL_METHODS
CALL = ("tools/call",)
OTEL = schema.OTEL


def _objectives(s: spec.Spec, service: str, tool: str | None = None) -> list[tuple]:
    found = s.objectives_for(service) if tool is None else s.tool_objectives(service, tool)
    return [(o.kind, o.target, o.window, o.threshold, o.methods) for o in found]


def _load(text: str) -> importers.Loaded:
    return importers.parse_documents(list(yaml.safe_load_all(textwrap.dedent(text))), "slos.yaml")


# --- the examples ------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["openslo", "sloth"])
def test_the_otel_examples_import_to_slo_yaml_reading_otel_names_only(fmt):
    ours = importers.load("examples/slo.yaml").spec
    loaded = importers.load(f"examples/{fmt}-otel.yaml")
    assert (loaded.format, loaded.notes, loaded.spec.metrics) == (fmt, (), OTEL)
    assert sorted(loaded.spec.services) == ["analytics", "filesystem"]
    for service in ("filesystem", "analytics"):
        assert _objectives(loaded.spec, service) == _objectives(ours, service)
    assert _objectives(loaded.spec, "filesystem", "write_file") == _objectives(ours, "filesystem", "write_file")
    # the same SLOs on mcp-slo's names keep the default, which reads both schemas
    assert importers.load(f"examples/{fmt}.yaml").spec.metrics == schema.AUTO


@pytest.mark.parametrize("fmt", ["openslo", "sloth"])
def test_validate_accepts_the_otel_examples(fmt, capsys):
    assert cli.main(["validate", "--config", f"examples/{fmt}-otel.yaml"]) == 0
    out = capsys.readouterr().out
    assert f"valid {fmt} spec" in out and "tool write_file" in out


# --- the query forms ----------------------------------------------------------------------

def _otel(kind, service=None, methods=CALL, tool=None, threshold=None) -> Part:
    return Part(kind, Filter(service, methods, tool), threshold, OTEL)


@pytest.mark.parametrize("query, events, part", [
    # availability: error_type is "" without an error
    (f'sum(rate({D}_count{{mcp_method_name="tools/call",error_type!=""}}[{{{{.window}}}}]))', "bad",
     _otel("availability")),
    (f'sum(rate({D}_count{{mcp_method_name="tools/call",error_type=""}}[5m]))', "good", _otel("availability")),
    (f'{D}_count{{mcp_method_name="tools/call",error_type=~".+"}}', "bad", _otel("availability")),
    (f'{D}_count{{mcp_method_name="tools/call",error_type!~".+"}}', "good", _otel("availability")),
    # the service: the scrape job, or the resource's service.name, on the series or joined
    (f'sum(rate({D}_count{{job="fs",mcp_method_name="tools/call",error_type!=""}}[5m]))', "bad",
     _otel("availability", "fs")),
    (f'{D}_count{{service_name="fs",job="fs",error_type=""}}', "good", _otel("availability", "fs", EVERY)),
    ((f'sum(rate({D}_count{{mcp_method_name="tools/call",error_type=""}}[5m]) * on (job, instance) '
     f'group_left (service_name) target_info{{service_name="fs"}})'), "good", _otel("availability", "fs")),
    # a per-tool objective
    (f'{D}_count{{gen_ai_tool_name="write_file",error_type!=""}}', "bad",
     _otel("availability", None, EVERY, "write_file")),
    # the count alone is the total of either SLI: its partner query says which
    (f'sum(rate({D}_count{{job="fs",mcp_method_name="tools/call"}}[5m]))', "total", _otel(None, "fs")),
    (f'{D}_bucket{{le="+Inf",mcp_method_name="tools/call"}}', "total", _otel(None)),
    # latency: le as the exporter writes it ("1") or as mcp-slo does ("1.0")
    (f'sum(rate({D}_bucket{{mcp_method_name="tools/call",le="1"}}[5m]))', "good", _otel("latency", threshold=1.0)),
    (f'{D}_bucket{{service_name="fs",le="1.0"}}', "good", _otel("latency", "fs", EVERY, threshold=1.0)),
    (f'sum(rate({D}_count{{gen_ai_tool_name="x"}}[5m])) - sum(rate({D}_bucket{{gen_ai_tool_name="x",le="0.1"}}[5m]))',
     "bad", _otel("latency", None, EVERY, "x", 0.1)),
])
def test_otel_queries_that_map_onto_mcp_slo_slis(query, events, part):
    assert sli_query.read(query, events) == part


@pytest.mark.parametrize("query, events, reason", [
    # labels the importer cannot map, each named
    (f'{D}_count{{otel_scope_name="mcp",error_type=""}}', "good", "label 'otel_scope_name' on " + D + "_count cannot"),
    (f'{D}_count{{instance="a:1"}}', "total", "label 'instance'"),
    (f'{D}_count{{network_transport="pipe"}}', "total", "label 'network_transport'"),
    (f'{D}_count{{error_type=""}} * on (job) target_info{{host_name="h"}}', "good", "label 'host_name' on target_info"),
    # mcp-slo's labels on OpenTelemetry's metric: what to write instead
    (f'{D}_count{{tool="write_file"}}', "total", "select gen_ai_tool_name"),
    (f'{D}_count{{service="fs"}}', "total", "select job or service_name"),
    (f'{D}_count{{status="success"}}', "good", "select error_type"),
    (f'{D}_count{{service_version="2.0"}}', "total", "every version"),
    # the schemas mixed in one query
    (f'sum(rate({D}_count{{error_type!=""}}[5m])) / sum(rate(mcp_operations_total[5m]))', "bad",
     f"it mixes mcp-slo's metrics (mcp_operations_total) with OpenTelemetry's ({D}_count)"),
    # error_type: every error counts alike, and only on availability
    (f'{D}_count{{error_type="tool_error"}}', "bad", "selects some errors only"),
    (f'{D}_count{{error_type!="timeout"}}', "good", "selects some errors only"),
    (f'{D}_count{{error_type!=""}}', "good", 'error_type="" (no error); this one selects errors'),
    (f'{D}_bucket{{le="1",error_type=""}}', "good", "failed ones too"),
    (f'{D}_count{{job="a",service_name="b"}}', "total", "select different services: 'a', 'b'"),
    (f'{D}_count{{job="a"}} * on (job, instance) target_info{{service_name="b"}}', "total",
     "target_info selects service 'b' but the series select 'a'"),
    ('target_info{service_name="fs"}', "total", f"no {D} selector"),
    (f'{D}_bucket{{mcp_method_name="tools/call"}}', "good", 'le="<threshold>"'),
    (f'{D}_sum{{mcp_method_name="tools/call"}}', "total", f"queries '{D}_sum'"),
])
def test_otel_queries_that_do_not(query, events, reason):
    with pytest.raises(QueryError) as exc:
        sli_query.read(query, events)
    assert reason in str(exc.value)


def test_a_total_on_the_count_takes_its_partners_kind_and_schemas_do_not_mix():
    total = sli_query.read(f'{D}_count{{mcp_method_name="tools/call"}}', "total")
    for good in (f'{D}_count{{mcp_method_name="tools/call",error_type=""}}',
                 f'{D}_bucket{{mcp_method_name="tools/call",le="0.5"}}'):
        part = sli_query.read(good, "good")
        assert sli_query.ratio(part, total, "good") == part
    own_total = sli_query.read('mcp_operations_total{method="tools/call"}', "total")
    with pytest.raises(QueryError, match="the good query reads OpenTelemetry's but the total query mcp-slo's "
                                         "metric names: write both against one schema"):
        sli_query.ratio(sli_query.read(f'{D}_count{{mcp_method_name="tools/call",error_type=""}}', "good"),
                        own_total, "good")


# --- whole files: the schema chosen, and the errors where they are ------------------------

def _openslo(name: str, good: str, total: str, service: str = "fs") -> str:
    return f"""\
        apiVersion: openslo/v1
        kind: SLO
        metadata: {{name: {name}}}
        spec:
          service: {service}
          indicator:
            metadata: {{name: {name}}}
            spec:
              ratioMetric:
                good: {{metricSource: {{type: Prometheus, spec: {{query: '{good}'}}}}}}
                total: {{metricSource: {{type: Prometheus, spec: {{query: '{total}'}}}}}}
          timeWindow: [{{duration: 7d, isRolling: true}}]
          budgetingMethod: Occurrences
          objectives: [{{target: 0.99}}]
        """


OTEL_GOOD = f'sum(rate({D}_count{{job="fs",error_type=""}}[5m]))'
OTEL_TOTAL = f'sum(rate({D}_count{{job="fs"}}[5m]))'
OWN_GOOD = 'sum(rate(mcp_operations_total{service="fs",status="success"}[5m]))'
OWN_BAD = 'sum(rate(mcp_operations_total{service="fs",status=~"error|timeout"}[5m]))'
OWN_TOTAL = 'sum(rate(mcp_operations_total{service="fs"}[5m]))'


def _sloth(error_query: str, total_query: str) -> str:
    return f"""\
        version: prometheus/v1
        service: fs
        slos:
          - name: availability
            objective: 99.9
            sli: {{events: {{error_query: '{error_query}', total_query: '{total_query}'}}}}
        """


def test_openslo_otel_latency_per_service_reads_otel_only():
    text = _openslo("latency", f'sum(rate({D}_bucket{{service_name="fs",le="0.5"}}[5m]))',
                    f'sum(rate({D}_count{{service_name="fs"}}[5m]))')
    loaded = _load(text)
    assert loaded.spec.metrics == OTEL and loaded.notes == ()
    assert _objectives(loaded.spec, "fs") == [("latency", 99.0, "7d", 0.5, EVERY)]


def test_an_otel_latency_threshold_is_one_of_the_conventions_bounds():
    """0.2 s is a recommended OpenTelemetry bound (the spec built gets those buckets), not one of
    mcp-slo's default buckets."""
    loaded = _load(_openslo("latency", f'sum(rate({D}_bucket{{job="fs",le="0.2"}}[5m]))',
                            f'sum(rate({D}_count{{job="fs"}}[5m]))'))
    assert loaded.spec.metrics == OTEL and _objectives(loaded.spec, "fs")[0][3] == 0.2
    with pytest.raises(spec.SpecError, match=r"le=0.2 is not a histogram bucket bound \(buckets: 0.01, 0.05,"):
        _load(_openslo("latency", 'sum(rate(mcp_operation_duration_seconds_bucket{service="fs",le="0.2"}[5m]))',
                       'sum(rate(mcp_operation_duration_seconds_count{service="fs"}[5m]))'))


def test_sloth_otel_per_tool_latency_reads_otel_only():
    bad = (f'sum(rate({D}_count{{job="fs",gen_ai_tool_name="grep"}}[{{{{.window}}}}])) - '
           f'sum(rate({D}_bucket{{job="fs",gen_ai_tool_name="grep",le="1"}}[{{{{.window}}}}]))')
    loaded = _load(_sloth(bad, f'sum(rate({D}_count{{job="fs",gen_ai_tool_name="grep"}}[{{{{.window}}}}]))'))
    assert loaded.spec.metrics == OTEL
    assert _objectives(loaded.spec, "fs", "grep")[-1] == ("latency", 99.9, "30d", 1.0, EVERY)


def test_slos_on_both_schemas_in_one_file_read_both_with_a_note():
    text = _openslo("a", OTEL_GOOD, OTEL_TOTAL) + "---\n" + _openslo("b", OWN_GOOD, OWN_TOTAL)
    loaded = _load(text)
    assert loaded.spec.metrics == schema.AUTO
    assert loaded.notes == (("some SLOs query OpenTelemetry's metrics (document 1 (SLO a): spec.indicator.spec."
                            "ratioMetric.good.metricSource.spec.query) and others mcp-slo's (document 2 (SLO b): "
                            "spec.indicator.spec.ratioMetric.good.metricSource.spec.query): the spec reads both "
                            "(metrics: auto)"),)


@pytest.mark.parametrize("text, message", [
    (_openslo("mixed", OTEL_GOOD, OWN_TOTAL),
     ("slos.yaml: spec.indicator.spec.ratioMetric: the good query reads OpenTelemetry's but the total query "
     "mcp-slo's metric names: write both against one schema")),
    (_sloth(OWN_BAD, OTEL_TOTAL),
     ("slos.yaml: slos.0.sli.events: the error query reads mcp-slo's metric names but the total query "
      "OpenTelemetry's: "
     "write both against one schema")),
    (_openslo("scoped", f'sum(rate({D}_count{{job="fs",otel_scope_name="mcp",error_type=""}}[5m]))', OTEL_TOTAL),
     ("slos.yaml: spec.indicator.spec.ratioMetric.good.metricSource.spec.query: label 'otel_scope_name' on "
     f"{D}_count cannot be mapped onto mcp-slo's SLIs: the importer maps mcp_method_name, gen_ai_tool_name, "
     "error_type, le, and job or service_name (the service) only")),
    (_sloth(f'sum(rate({D}_count{{job="fs",error_type!=""}}[5m])) / sum(rate(mcp_operations_total[5m]))',
            OTEL_TOTAL),
     ("slos.yaml: slos.0.sli.events.error_query: it mixes mcp-slo's metrics (mcp_operations_total) with "
     f"OpenTelemetry's ({D}_count): write each query against one schema")),
    (_openslo("other", OTEL_GOOD, OTEL_TOTAL, service="analytics"),
     ("slos.yaml: spec.indicator.spec.ratioMetric.good.metricSource.spec.query: selects service 'fs' but the SLO "
     "is for service 'analytics'")),
], ids=["openslo-mixed", "sloth-mixed", "openslo-scope-label", "sloth-mixed-in-one-query", "other-service"])
def test_errors_are_one_line_and_say_where(text, message):
    with pytest.raises(spec.SpecError) as exc:
        _load(text)
    assert str(exc.value) == message and "\n" not in message


# --- the rules of an imported OpenTelemetry spec, run by promtool -------------------------

# Operations a minute per (job, tool, error_type): the filesystem service is its job, the
# analytics one a service.name in target_info (its job says nothing). Multiples of 15, so
# the rates per second are exact in binary.
SERIES = {("filesystem", "write_file", ""): 120, ("filesystem", "write_file", "tool_error"): 15,
          ("filesystem", "read_file", "-32602"): 15, ("otel-sdk", "run_query", ""): 45,
          ("otel-sdk", "run_query", "timeout"): 15}
FAST = {("filesystem", "write_file", ""): 105, ("filesystem", "read_file", "-32602"): 15,
        ("otel-sdk", "run_query", ""): 30}  # within 0.1 s (filesystem) or 1 s (analytics) a minute
SCOPE = 'otel_scope_name="mcp",otel_scope_version="",otel_scope_schema_url=""'


def _input_series() -> list[dict]:
    out = [{"series": 'target_info{job="otel-sdk",instance="b:1",service_name="analytics",'
                      'service_version="2.0"}', "values": "1x20"}]
    for (job, tool, error), n in SERIES.items():
        labels = (f'job="{job}",instance="{"a" if job == "filesystem" else "b"}:1",mcp_method_name="tools/call",'
                  f'gen_ai_tool_name="{tool}",error_type="{error}",{SCOPE}')
        le = "0.1" if job == "filesystem" else "1"
        out += [{"series": f"{D}_count{{{labels}}}", "values": f"0+{n}x20"},
                {"series": f'{D}_bucket{{{labels},le="{le}"}}', "values": f"0+{FAST.get((job, tool, error), 0)}x20"},
                {"series": f'{D}_bucket{{{labels},le="+Inf"}}', "values": f"0+{n}x20"}]
    return out


def _expect(service: str, slo: str, total: float, bad: float, tool: str | None = None) -> list[dict]:
    labels = {"service": service, "slo": slo} | ({"tool": tool} if tool else {})
    selector = ",".join(f'{k}="{v}"' for k, v in (labels | {"tool": tool or ""}).items())  # tool="": none
    shown = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return [{"expr": f"{name}:rate5m{{{selector}}}", "eval_time": "10m",
             "exp_samples": [{"labels": f"{name}:rate5m{{{shown}}}", "value": value}]}
            for name, value in (("mcp_slo:sli_total", total), ("mcp_slo:sli_bad", bad))]


@pytest.mark.integration
@pytest.mark.parametrize("fmt", ["openslo", "sloth"])
def test_the_rules_of_an_imported_otel_spec_pass_promtool_and_count_otel_series(fmt, tmp_path):
    promtool = binaries.require("promtool")
    out = tmp_path / "rules"
    assert cli.main(["rules", "--config", f"examples/{fmt}-otel.yaml", "--out", str(out), "--tests"]) == 0
    rule_file = out / "mcp-slo.yml"
    check = subprocess.run([promtool, "check", "rules", str(rule_file)], check=False, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "mcp_operations_total" not in rule_file.read_text()  # metrics: otel reads OpenTelemetry's names only
    fs = {k: n / 60 for k, n in SERIES.items() if k[0] == "filesystem"}
    analytics = {k: n / 60 for k, n in SERIES.items() if k[0] == "otel-sdk"}
    write_file = {k: v for k, v in fs.items() if k[1] == "write_file"}
    tool_slo = "availability" if fmt == "openslo" else "write-file-availability"
    expected = [
        *_expect("filesystem", "availability", sum(fs.values()), sum(v for k, v in fs.items() if k[2])),
        *_expect("filesystem", "latency", sum(fs.values()), sum(fs.values()) - 120 / 60),
        *_expect("filesystem", tool_slo, sum(write_file.values()), 15 / 60, tool="write_file"),
        *_expect("analytics", "availability", sum(analytics.values()), 15 / 60),
        *_expect("analytics", "latency", sum(analytics.values()), 30 / 60),
    ]
    (out / "otel-series.yml").write_text(yaml.safe_dump({
        "rule_files": ["mcp-slo.yml"], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": _input_series(), "promql_expr_test": expected}]}))
    result = subprocess.run([promtool, "test", "rules", "otel-series.yml"], check=False, cwd=out,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

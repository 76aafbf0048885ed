"""OpenSLO and Sloth queries with no `method` matcher: what a user writes first,
`mcp_operations_total{service="filesystem",status="success"}` over
`mcp_operations_total{service="filesystem"}`, is an SLO over every method (a spec's
`methods: ["*"]`); cancelled calls still count neither way. The rules generated for it
select no method, promtool accepts them, and they count every method's calls."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from mcp_slo import cli
from slo import importers, spec
from slo.importers import sli_query
from slo.importers.sli_query import Filter, Part, QueryError
from tests import binaries

EVERY = spec.ALL_METHODS
GOOD = 'sum(rate(mcp_operations_total{service="filesystem",status="success"}[5m]))'
TOTAL = 'sum(rate(mcp_operations_total{service="filesystem"}[5m]))'

OPENSLO = f"""\
apiVersion: openslo/v1
kind: SLO
metadata: {{name: filesystem-availability}}
spec:
  service: filesystem
  indicator:
    metadata: {{name: availability}}
    spec:
      ratioMetric:
        counter: true
        good: {{metricSource: {{type: Prometheus, spec: {{query: '{GOOD}'}}}}}}
        total: {{metricSource: {{type: Prometheus, spec: {{query: '{TOTAL}'}}}}}}
  timeWindow: [{{duration: 30d, isRolling: true}}]
  budgetingMethod: Occurrences
  objectives: [{{target: 0.999}}]
---
apiVersion: openslo/v1
kind: SLO
metadata: {{name: filesystem-latency}}
spec:
  service: filesystem
  indicator:
    metadata: {{name: latency}}
    spec:
      ratioMetric:
        good:
          metricSource:
            spec: {{query: 'sum(rate(mcp_operation_duration_seconds_bucket{{le="0.5",service="filesystem"}}[5m]))'}}
        total:
          metricSource:
            spec: {{query: 'sum(rate(mcp_operation_duration_seconds_count{{service="filesystem"}}[5m]))'}}
  timeWindow: [{{duration: 30d, isRolling: true}}]
  budgetingMethod: Occurrences
  objectives: [{{targetPercent: 99}}]
"""

SLOTH = """\
version: prometheus/v1
service: filesystem
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(mcp_operations_total{service="filesystem",status=~"error|timeout"}[{{.window}}]))
        total_query: sum(rate(mcp_operations_total{service="filesystem"}[{{.window}}]))
"""


@pytest.mark.parametrize("query, events, part", [
    ('mcp_operations_total{service="filesystem",status="success"}', "good",
     Part("availability", Filter("filesystem", EVERY, None))),
    ('mcp_operations_total{service="filesystem"}', "total", Part("availability", Filter("filesystem", EVERY, None))),
    ('mcp_operations_total{status!="cancelled"}', "total", Part("availability", Filter(None, EVERY, None))),
    ('mcp_operations_total{status=~"error|timeout", tool="write_file"}', "bad",
     Part("availability", Filter(None, EVERY, "write_file"))),
    ('mcp_operation_duration_seconds_bucket{le="0.5"}', "good", Part("latency", Filter(None, EVERY, None), 0.5)),
])
def test_a_query_without_a_method_matcher_covers_every_method(query, events, part):
    assert sli_query.read(query, events) == part


def _load(text: str) -> importers.Loaded:
    return importers.parse_documents(list(yaml.safe_load_all(textwrap.dedent(text))), "slos.yaml")


@pytest.mark.parametrize("text", [OPENSLO, SLOTH], ids=["openslo", "sloth"])
def test_openslo_and_sloth_import_an_slo_over_every_method(text):
    objectives = _load(text).spec.objectives_for("filesystem")
    assert objectives and all(o.methods == EVERY for o in objectives), objectives
    assert {o.kind for o in objectives} == ({"availability", "latency"} if "openslo" in text else {"availability"})


def test_every_method_in_an_mcp_slo_spec_and_what_validate_says(tmp_path, capsys):
    parsed = spec.parse({"version": 1, "defaults": {"objectives": [
        {"name": "availability", "kind": "availability", "target": 99.9, "methods": ["*"]}]}}, "s.yaml")
    assert parsed.defaults.objectives[0].methods == EVERY
    for bad in (["*", "tools/call"], ["tools/*"]):
        with pytest.raises(spec.SpecError, match="methods"):
            spec.parse({"version": 1, "defaults": {"objectives": [
                {"name": "a", "kind": "availability", "target": 99.9, "methods": bad}]}}, "s.yaml")
    path = tmp_path / "slos.yaml"
    path.write_text(OPENSLO)
    assert cli.main(["validate", "--config", str(path)]) == 0
    assert "availability: availability of every method, 99.9% over 30d" in capsys.readouterr().out


def test_a_method_on_one_side_only_is_still_refused():
    good = sli_query.read('mcp_operations_total{method="tools/call", status="success"}', "good")
    total = sli_query.read("mcp_operations_total", "total")
    with pytest.raises(QueryError, match=r"method tools/call, tool any vs service any, method every method"):
        sli_query.ratio(good, total, "good")


# --- the generated rules, checked by promtool ----------------------------------------------

# Calls a minute per series: tools/call and resources/read (every status), and `other`
# (methods outside the MCP specification) that always fails; multiples of 15, so that the
# rates per second are exact in binary.
PER_MINUTE = {("tools/call", "success"): 120, ("tools/call", "error"): 15, ("tools/call", "cancelled"): 60,
              ("resources/read", "success"): 60, ("resources/read", "timeout"): 15, ("other", "error"): 15}


def _promtool_suite(rule_file: str) -> str:
    series = [{"series": f'mcp_operations_total{{service="filesystem",version="v1",method="{m}",tool="",'
                         f'status="{s}"}}', "values": f"0+{n}x20"} for (m, s), n in PER_MINUTE.items()]
    valid = sum(n for (m, s), n in PER_MINUTE.items() if s != "cancelled") / 60
    bad = sum(n for (m, s), n in PER_MINUTE.items() if s in ("error", "timeout")) / 60
    labels = {"service": "filesystem", "slo": "availability"}
    return yaml.safe_dump({"rule_files": [rule_file], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series, "promql_expr_test": [
            {"expr": 'mcp_slo:sli_total:rate5m{slo="availability"}', "eval_time": "10m",
             "exp_samples": [{"labels": yaml_labels("mcp_slo:sli_total:rate5m", labels), "value": valid}]},
            {"expr": 'mcp_slo:sli_bad:rate5m{slo="availability"}', "eval_time": "10m",
             "exp_samples": [{"labels": yaml_labels("mcp_slo:sli_bad:rate5m", labels), "value": bad}]},
        ]}]})


def yaml_labels(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


@pytest.mark.integration
def test_the_rules_for_every_method_select_no_method_and_count_every_call(tmp_path):
    promtool = binaries.require("promtool")
    (tmp_path / "slos.yaml").write_text(OPENSLO)
    out = tmp_path / "rules"
    assert cli.main(["rules", "--config", str(tmp_path / "slos.yaml"), "--out", str(out), "--tests"]) == 0
    rule_file = out / "mcp-slo.yml"
    check = subprocess.run([promtool, "check", "rules", str(rule_file)], check=False, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    text = rule_file.read_text()
    assert "method=" not in text and "method!" not in text
    # cancelled calls still count neither way
    assert 'rate(mcp_operations_total{service="filesystem",status!="cancelled"}[5m])' in text
    # the counts: every method's calls, cancelled ones left out
    (out / "every-method.yml").write_text(_promtool_suite("mcp-slo.yml"))
    suites = ["every-method.yml", *sorted(str(p.relative_to(out)) for p in (out / "tests").glob("*.yml"))]
    for suite in suites:
        result = subprocess.run([promtool, "test", "rules", suite], check=False, cwd=out, capture_output=True, text=True)
        assert result.returncode == 0, f"{suite}:\n{result.stdout}{result.stderr}"


def test_the_importer_docs_say_so():
    for module in (sli_query, importers.openslo, importers.sloth):
        assert "every method" in Path(module.__file__).read_text(), module.__name__

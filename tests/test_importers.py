"""OpenSLO and Sloth importers, and the reading of their PromQL onto mcp-slo SLIs."""

from __future__ import annotations

import textwrap

import pytest

from slo import importers, spec
from slo.importers import sli_query
from slo.importers.sli_query import Filter, Part, QueryError

TOOLS_CALL = ("tools/call",)


def _objectives(s: spec.Spec, service: str, tool: str | None = None) -> dict[str, tuple]:
    found = s.objectives_for(service) if tool is None else s.tool_objectives(service, tool)
    return {o.name: (o.kind, o.target, o.window, o.threshold, o.methods) for o in found}


@pytest.mark.parametrize("example", ["examples/openslo.yaml", "examples/sloth.yaml"])
def test_the_examples_import_to_the_objectives_of_slo_yaml(example):
    ours = importers.load("examples/slo.yaml").spec
    loaded = importers.load(example)
    assert loaded.format == example.split("/")[1].removesuffix(".yaml") and loaded.notes == ()
    assert sorted(loaded.spec.services) == ["analytics", "filesystem"]
    for service in ("filesystem", "analytics"):
        assert _objectives(loaded.spec, service) == _objectives(ours, service)
    # Sloth names are unique per service, so its per-tool objective has its own name.
    imported_tool = list(_objectives(loaded.spec, "filesystem", "write_file").values())
    assert imported_tool == list(_objectives(ours, "filesystem", "write_file").values())
    assert loaded.spec.alerting.tiers == ours.alerting.tiers


def _docs(text: str) -> importers.Loaded:
    import yaml

    return importers.parse_documents(list(yaml.safe_load_all(textwrap.dedent(text))), "test.yaml")


SLOTH = """\
    version: prometheus/v1
    service: fs
    labels: {owner: me}
    slos:
      - name: availability
        objective: 99.9
        alerting: {name: FsErrors, page_alert: {disable: true}}
        sli:
          events:
            error_query: sum(rate(mcp_operations_total{method=~"tools/call|resources/read", status=~"timeout|error"}[{{.window}}]))
            total_query: sum(rate(mcp_operations_total{method=~"resources/read|tools/call"}[{{.window}}]))
"""


def test_sloth_disable_turns_off_that_severitys_tiers_and_notes_what_is_ignored():
    loaded = _docs(SLOTH)
    tiers = {t.name: t.enabled for t in loaded.spec.alerting.tiers}
    assert tiers == {"page-fast": False, "page-slow": False, "ticket-fast": True, "ticket-slow": True}
    (objective,) = loaded.spec.objectives_for("fs")
    assert objective.methods == ("resources/read", "tools/call") and objective.target == 99.9
    assert any("labels ignored" in n for n in loaded.notes)


OPENSLO = """\
    apiVersion: openslo/v1
    kind: SLO
    metadata: {name: fs-latency}
    spec:
      service: fs
      indicator:
        metadata: {name: latency}
        spec:
          ratioMetric:
            bad:
              metricSource:
                type: Prometheus
                spec:
                  query: >-
                    sum by (service) (rate(mcp_operation_duration_seconds_count{service="fs", method="ping"}[5m]))
                    - sum by (service) (rate(mcp_operation_duration_seconds_bucket{le="0.05", service="fs", method="ping"}[5m]))
            total:
              metricSource:
                type: Prometheus
                spec: {query: 'sum(rate(mcp_operation_duration_seconds_count{service="fs", method="ping"}[5m]))'}
      timeWindow: [{duration: 7d, isRolling: true}]
      budgetingMethod: Occurrences
      objectives: [{targetPercent: 99.95}]
      alertPolicies: [fast-burn]
"""


def test_openslo_latency_from_bad_events_and_alert_policies_noted():
    loaded = _docs(OPENSLO)
    assert _objectives(loaded.spec, "fs") == {"latency": ("latency", 99.95, "7d", 0.05, ("ping",))}
    assert any("alertPolicies ignored" in n for n in loaded.notes)


def test_openslo_indicator_ref_must_name_an_sli_of_the_file():
    text = """\
        apiVersion: openslo/v1
        kind: SLO
        metadata: {name: fs-availability}
        spec:
          service: fs
          indicatorRef: nowhere
          timeWindow: [{duration: 28d, isRolling: true}]
          budgetingMethod: Occurrences
          objectives: [{target: 0.99}]
    """
    with pytest.raises(spec.SpecError, match=r"^test.yaml: spec.indicatorRef: no SLI document named 'nowhere'"):
        _docs(text)


ANY = Filter(None, TOOLS_CALL, None)


@pytest.mark.parametrize("query, events, part", [
    ('mcp_operations_total{status="success", method="tools/call"}', "good", Part("availability", ANY)),
    (('sum by (service) (increase(mcp_operations_total{method="tools/call",status=~"error|timeout",service="a"}'
     '[1h] offset 5m))'), "bad", Part("availability", Filter("a", TOOLS_CALL, None))),
    ('{__name__="mcp_operations_total", method="tools/call", tool="write_file"}', "total",
     Part("availability", Filter(None, TOOLS_CALL, "write_file"))),
    ('mcp_operations_total{method="tools/call", status!~"cancelled"}', "total", Part("availability", ANY)),
    ('rate(mcp_operation_duration_seconds_bucket{le="0.5", method="tools/call"}[5m])', "good",
     Part("latency", ANY, 0.5)),
    ('mcp_operation_duration_seconds_bucket{le="+Inf", method="tools/call"}', "total",
     Part("latency", ANY)),
    # a quote and a brace inside a label value are part of the value, nothing else
    (r'mcp_operations_total{method="tools/call", service="a\"}b", status="success"}', "good",
     Part("availability", Filter('a"}b', TOOLS_CALL, None))),
])
def test_queries_that_map_onto_mcp_slo_slis(query, events, part):
    assert sli_query.read(query, events) == part


@pytest.mark.parametrize("query, events, reason", [
    ('http_requests_total{code="200"}', "good", "queries 'http_requests_total'"),
    ('mcp_operations_total{method="tools/call"} / ignoring(x) up', "total", "queries 'up'"),
    ('mcp_operations_total{method="tools/call", status="error"}', "bad", 'status=~"error|timeout"'),
    ('mcp_operations_total{method="tools/call", status="success"}', "total", "every status"),
    ('mcp_operations_total{method="tools/call", status="done"}', "good", "'done' is not one of"),
    ('mcp_operations_total{method=~"tools/.*", status="success"}', "good", "not a pattern"),
    ('mcp_operations_total{method="tools/call", version="v2", status="success"}', "good", "every version"),
    ('mcp_operations_total{method="tools/call", service=~"a|b", status="success"}', "good", "matched with ="),
    ('mcp_operation_duration_seconds_bucket{method="tools/call"}', "good", 'le="<threshold>"'),
    (('mcp_operation_duration_seconds_bucket{method="tools/call", le="0.5"} - '
     'mcp_operation_duration_seconds_count{method="tools/call"}'), "bad", "latency bad query is"),
    (('mcp_operation_duration_seconds_count{method="tools/call"} + '
     'mcp_operation_duration_seconds_bucket{method="tools/call", le="0.5"}'), "bad", "latency bad query is"),
    ('mcp_operations_total{method="tools/call"', "total", "expected ',' or '}'"),
    ('mcp_operations_total{method=tools/call}', "total", "must be a quoted string"),
    ('sum(rate(mcp_operations_total{method="tools/call"}[5m', "total", "unclosed '['"),
    ("vector(1)", "total", "no metric selector"),
    ("", "total", "empty"),
])
def test_queries_that_do_not(query, events, reason):
    with pytest.raises(QueryError, match=None) as exc:
        sli_query.read(query, events)
    assert reason in str(exc.value)


def test_good_and_total_must_count_the_same_events():
    good = sli_query.read('mcp_operations_total{method="tools/call", status="success"}', "good")
    total = sli_query.read('mcp_operations_total{method="ping"}', "total")
    with pytest.raises(QueryError, match="select different events"):
        sli_query.ratio(good, total, "good")
    latency_total = sli_query.read('mcp_operation_duration_seconds_count{method="tools/call"}', "total")
    with pytest.raises(QueryError, match="availability but the total query is latency"):
        sli_query.ratio(good, latency_total, "good")

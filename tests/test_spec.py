"""The SLO spec model: defaults, overrides, per-tool objectives."""

from __future__ import annotations

import pytest

from collector import durations, names, semconv
from slo import importers, spec

EXAMPLE = "examples/slo.yaml"


def test_the_example_resolves_defaults_and_overrides():
    s = importers.load(EXAMPLE).spec
    fs = {o.name: o for o in s.objectives_for("filesystem")}
    assert fs["availability"].objective == pytest.approx(0.999)
    assert (fs["latency"].threshold, fs["latency"].target) == (0.1, 95)
    # a service the spec does not name gets the defaults
    new = {o.name: o for o in s.objectives_for("discovered-later")}
    assert new["availability"].target == 99.5 and new["latency"].threshold == 0.5
    # a tool lists only the objectives it overrides
    assert [(o.name, o.target) for o in s.tool_objectives("filesystem", "write_file")] == [("availability", 99.5)]
    assert [t.name for t in s.alerting.tiers] == ["page-fast", "page-slow", "ticket-fast", "ticket-slow"]


def test_a_default_can_be_disabled_and_new_objectives_need_kind_and_target():
    raw = {"defaults": {"objectives": [{"name": "availability", "kind": "availability", "target": 99}]},
           "services": {"a": {"objectives": [{"name": "availability", "disabled": True}]}}}
    assert spec.parse(raw).objectives_for("a") == []
    raw["services"]["a"]["objectives"] = [{"name": "fast", "target": 90}]
    with pytest.raises(spec.SpecError, match="services.a.objectives.0: .fast. is not a default objective"):
        spec.parse(raw, "x.yaml")


def _latency(threshold: float, **top: object) -> dict:
    return {**top, "defaults": {"objectives": [
        {"name": "latency", "kind": "latency", "target": 99, "threshold": threshold}]}}


@pytest.mark.parametrize("threshold", [0.2, 30, 300, 0.5])
def test_otel_specs_check_thresholds_against_the_conventions_buckets(threshold):
    """Without `buckets`, `metrics: otel` takes the bounds an OpenTelemetry SDK's histogram has
    (the conventions' recommended ones); auto and mcp-slo keep mcp-slo's."""
    s = spec.parse(_latency(threshold, metrics="otel"))
    assert s.buckets == tuple(float(b) for b in semconv.BUCKETS)
    assert s.objectives_for("a")[0].threshold == threshold
    assert spec.parse({}).buckets == spec.parse({"metrics": "mcp-slo"}).buckets == names.DEFAULT_BUCKETS
    if threshold != 0.5:  # not one of mcp-slo's bounds
        for metrics in ("auto", "mcp-slo"):
            with pytest.raises(spec.SpecError, match=f"{threshold:g} is not a histogram bucket bound"):
                spec.parse(_latency(threshold, metrics=metrics))


def test_explicit_buckets_win_over_the_schemas_default():
    s = spec.parse(_latency(0.25, metrics="otel", buckets=[0.1, 0.25, 1]))
    assert s.buckets == (0.1, 0.25, 1.0)
    assert spec.parse(_latency(0.25, buckets=[0.1, 0.25, 1])).buckets == (0.1, 0.25, 1.0)
    with pytest.raises(spec.SpecError, match="0.2 is not a histogram bucket bound"):
        spec.parse(_latency(0.2, metrics="otel", buckets=[0.1, 0.25, 1]))


@pytest.mark.parametrize("text, seconds", [("5m", 300), ("30d", 2592000), ("1h", 3600), ("7d", 604800)])
def test_durations_round_trip(text, seconds):
    assert durations.parse(text) == seconds
    assert durations.format(seconds) == ("1w" if text == "7d" else text)


@pytest.mark.parametrize("label", ["window", "tool", "tier", "severity"])
def test_labels_the_rules_set_themselves_are_reserved(label):
    with pytest.raises(spec.SpecError, match="reserved"):
        spec.parse({"alerting": {"labels": {label: "x"}}}, "x.yaml")

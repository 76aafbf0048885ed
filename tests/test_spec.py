"""The SLO spec model: defaults, overrides, per-tool objectives."""

from __future__ import annotations

import pytest

from slo import durations, importers, spec

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


@pytest.mark.parametrize("text, seconds", [("5m", 300), ("30d", 2592000), ("1h", 3600), ("7d", 604800)])
def test_durations_round_trip(text, seconds):
    assert durations.parse(text) == seconds
    assert durations.format(seconds) == ("1w" if text == "7d" else text)


@pytest.mark.parametrize("label", ["window", "tool", "tier", "severity"])
def test_labels_the_rules_set_themselves_are_reserved(label):
    with pytest.raises(spec.SpecError, match="reserved"):
        spec.parse({"alerting": {"labels": {label: "x"}}}, "x.yaml")

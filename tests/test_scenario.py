"""Demo scenarios from YAML: the shipped ones load; broken ones name the file and key."""

from __future__ import annotations

import pytest
import yaml

from demo.scenario import ScenarioError, available, load


def test_shipped_scenarios_load_and_regression_is_worse():
    assert {"healthy", "regression"} <= set(available())
    healthy, regression = load("healthy"), load("regression")
    for service, mix in regression.tools.items():
        for tool in mix:
            h1 = healthy.versions[service]["v1"].for_tool(tool)
            assert healthy.versions[service]["v2"].for_tool(tool) == h1
            r1, r2 = (regression.versions[service][v].for_tool(tool) for v in ("v1", "v2"))
            assert r2.error_ratio > r1.error_ratio and r2.median > r1.median
    assert any(i.start > 0 and "v2" in i.versions for i in regression.incidents)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["split"].update(v1=0.5), "split: weights must add up to 1"),
        (lambda d: d["services"]["filesystem"]["versions"]["v1"]["default"].update(error_ratio=2),
         "services.filesystem.versions.v1.default.error_ratio"),
        (lambda d: d["services"]["analytics"]["versions"]["v1"]["tools"].update(nope={}),
         "services.analytics.versions.v1.tools.nope: not one of the service's tools"),
        (lambda d: d["incidents"][0].update(duration="soon"), "incidents[0].duration: expected a duration"),
        (lambda d: d["incidents"][0].update(service="ghost"), "incidents[0].service"),
    ],
)
def test_broken_scenarios_name_the_file_and_key(tmp_path, change, message):
    from demo.scenario import SCENARIO_DIR

    data = yaml.safe_load((SCENARIO_DIR / "regression.yaml").read_text())
    change(data)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ScenarioError) as err:
        load(str(path))
    assert str(path) in str(err.value) and message in str(err.value)


def test_unknown_scenario_lists_the_choices():
    with pytest.raises(ScenarioError, match="healthy, regression"):
        load("nonexistent")

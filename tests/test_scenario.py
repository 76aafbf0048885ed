"""Demo scenarios from YAML: the shipped ones load; broken ones name the file and key."""

from __future__ import annotations

import pytest
import yaml

from demo.scenario import SCENARIO_DIR, ScenarioError, available, load


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
        (lambda d: d["services"]["filesystem"].update(rate="often"), "services.filesystem.rate: expected calls per"),
        (lambda d: d["services"]["filesystem"].update(rate="0/m"), "services.filesystem.rate: expected calls per"),
        (lambda d: d["services"]["filesystem"].update(steady="yes"), "services.filesystem.steady: expected true"),
        (lambda d: d.update(maintenance=[{"service": "ghost", "start": "1m", "duration": "5m"}]),
         "maintenance[0].service: 'ghost' is not a service"),
        (lambda d: d.update(maintenance=[{"service": "filesystem", "start": "1m", "duration": "5m", "mode": "mute"}]),
         "maintenance[0].mode: expected silence or exclude"),
        (lambda d: d.update(maintenance=[{"service": "filesystem", "start": "-1m", "duration": "5m"}]),
         "maintenance[0].start: must not be negative"),
    ],
)
def test_broken_scenarios_name_the_file_and_key(tmp_path, change, message):
    data = yaml.safe_load((SCENARIO_DIR / "regression.yaml").read_text())
    change(data)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ScenarioError) as err:
        load(str(path))
    assert str(path) in str(err.value) and message in str(err.value)


def test_the_quiet_scenario_has_a_steady_service_at_a_call_a_minute_and_a_planned_window():
    quiet = load("quiet")
    assert quiet.rate("filesystem", 20.0) == pytest.approx(1 / 60) and quiet.rate("analytics", 20.0) == 20.0
    assert quiet.steady == {"filesystem"}
    (window,) = quiet.maintenance
    assert (window.service, window.mode, window.start, window.duration) == ("filesystem", "exclude", 0.0, 720.0)
    held = [i for i in quiet.incidents if 0 <= i.start and i.start + i.duration <= window.start + window.duration]
    assert held and all(i.service == "filesystem" and i.error_ratio == 1.0 for i in held)


def test_rates_are_per_second_minute_or_hour(tmp_path):
    data = yaml.safe_load((SCENARIO_DIR / "quiet.yaml").read_text())
    for given, per_second in ((0.5, 0.5), ("30/h", 30 / 3600), ("2/s", 2.0), ("1.5/m", 0.025)):
        data["services"]["filesystem"]["rate"] = given
        path = tmp_path / "rated.yaml"
        path.write_text(yaml.safe_dump(data))
        assert load(str(path)).rate("filesystem", 20.0) == pytest.approx(per_second)


def test_unknown_scenario_lists_the_choices():
    with pytest.raises(ScenarioError, match="healthy, quiet, regression"):
        load("nonexistent")


def test_the_demo_serves_the_spec_with_the_scenarios_windows_at_their_times(tmp_path):
    from demo.stack import StackConfig, _slo_spec, default_slo_spec
    from slo import importers

    started = 1_800_000_000.0
    quiet = load("quiet")
    path = _slo_spec(StackConfig(workdir=tmp_path, scenario="quiet"), quiet, started)
    spec = importers.load(path).spec
    (window,) = spec.maintenance
    assert (window.mode, window.services, window.reason) == ("exclude", ("filesystem",), quiet.maintenance[0].reason)
    assert (window.start.timestamp(), window.end.timestamp()) == (started, started + 720)
    # the rest is the demo's spec, unchanged
    base = importers.load(default_slo_spec()).spec
    assert spec.model_dump(exclude={"maintenance"}) == base.model_dump(exclude={"maintenance"})
    # a scenario without windows serves the demo's spec itself
    assert _slo_spec(StackConfig(workdir=tmp_path, scenario="healthy"), load("healthy"), started) == default_slo_spec()


def test_a_scenario_file_name_cannot_add_keys_to_the_spec_the_demo_serves(tmp_path):
    from demo.stack import StackConfig, _slo_spec
    from slo import importers

    hostile = tmp_path / "q\nstrict: true\n#.yaml"
    hostile.write_text((SCENARIO_DIR / "quiet.yaml").read_text())
    path = _slo_spec(StackConfig(workdir=tmp_path / "work", scenario=str(hostile)), load(str(hostile)), 1.8e9)
    assert importers.load(path).spec.strict is False

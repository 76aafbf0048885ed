"""The plan: the spec resolved once (every objective of every service and tool, with its
tiers and windows), and evaluation working from it without going back to the spec."""

from __future__ import annotations

import pytest

from slo import evaluate as ev
from slo import importers, promql, spec
from slo.engine.scheduler import Engine
from slo.engine.store import Store
from slo.plan import plan
from slo.query import Sample

SPEC = importers.load("examples/slo.yaml").spec


def described(objectives) -> list[tuple]:
    return [(o.name, o.kind, o.target, o.threshold, o.window) for o in objectives]


DEFAULTS = [("availability", "availability", 99.5, None, "30d"), ("latency", "latency", 99.0, 0.5, "30d")]


def test_the_plan_holds_every_named_service_and_tool_with_its_overrides():
    p = plan(SPEC)
    assert p.services == ["filesystem", "analytics"]
    assert described(p.service_objectives["filesystem"]) == [
        ("availability", "availability", 99.9, None, "30d"), ("latency", "latency", 95.0, 0.1, "30d")]
    assert described(p.service_objectives["analytics"]) == [DEFAULTS[0], ("latency", "latency", 99.0, 1.0, "30d")]
    # a tool has the objectives it lists, on top of its service's
    assert {s: {t: described(o) for t, o in tools.items()} for s, tools in p.tool_objectives.items()} == {
        "filesystem": {"write_file": [("availability", "availability", 99.5, None, "30d")]}, "analytics": {}}
    assert p.tiers.keys() == {30 * 86400}


def test_a_discovered_service_the_spec_never_names_gets_the_defaults():
    p = plan(SPEC)
    assert described(p.default_objectives) == DEFAULTS
    assert described(p.objectives_for("newcomer")) == DEFAULTS
    assert described(p.objectives_for("filesystem")) == described(p.service_objectives["filesystem"])
    assert [i.key for i in ev.instances(p, ["newcomer"]) if i.service == "newcomer"] == [
        ("newcomer", "", "availability"), ("newcomer", "", "latency")]


def resolved_from_the_spec(s: spec.Spec, discovered) -> list[ev.Instance]:
    """What evaluation used to resolve on every tick, straight from the spec."""
    out = []
    for service in sorted(set(discovered) | set(s.services)):
        out += [ev.Instance(service, "", o) for o in s.objectives_for(service)]
        body = s.services.get(service)
        for tool in body.tools if body else ():
            out += [ev.Instance(service, tool, o) for o in s.tool_objectives(service, tool)]
    return out


MIXED = spec.parse({
    "version": 1,
    "defaults": {"objectives": [
        {"name": "availability", "kind": "availability", "target": 99.5, "window": "30d"},
        {"name": "latency", "kind": "latency", "threshold": 0.5, "target": 99, "window": "30d"}]},
    "services": {
        "zeta": {"objectives": [{"name": "latency", "disabled": True},
                                {"name": "weekly", "kind": "availability", "target": 99, "window": "7d"}],
                 "tools": {"slow": {"objectives": [{"name": "latency", "kind": "latency", "threshold": 2,
                                                    "target": 90, "window": "1d"}]},
                           "fast": {"objectives": [{"name": "weekly", "target": 99.9}]}}},
        "alpha": {},
    },
})


@pytest.mark.parametrize("the_spec", [SPEC, MIXED], ids=["example", "mixed"])
def test_instances_are_what_resolving_the_spec_gives_in_the_same_order(the_spec):
    discovered = ["newcomer", "filesystem", "zeta", "aaa"]
    assert ev.instances(plan(the_spec), discovered) == resolved_from_the_spec(the_spec, discovered)


def test_every_window_evaluated_has_its_tiers():
    p = plan(MIXED)
    windows = {int(i.objective.window_seconds) for i in ev.instances(p, ["newcomer"])}
    assert windows == {86400, 7 * 86400, 30 * 86400} == set(p.tiers)


class Stub:
    """A Querier with 'newcomer' and 'filesystem' discovered and no data at all."""

    queries = 0

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        self.queries += 1
        if expr == promql.discovery():
            return [Sample({"service": s, "version": "v1", "tool": "t"}, 1.0) for s in ("newcomer", "filesystem")]
        return []


@pytest.fixture
def resolutions(monkeypatch) -> list[str]:
    """Every resolution of objectives from the spec, by name, from now on."""
    calls: list[str] = []

    def counted(name, original):
        def wrapper(*args, **kwargs):
            calls.append(name)
            return original(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(spec.Spec, "objectives_for", counted("objectives_for", spec.Spec.objectives_for))
    monkeypatch.setattr(spec.Spec, "tool_objectives", counted("tool_objectives", spec.Spec.tool_objectives))
    monkeypatch.setattr(spec, "_merge", counted("_merge", spec._merge))
    return calls


def test_evaluation_resolves_nothing_from_the_spec_after_the_plan(resolutions):
    p = plan(SPEC)
    assert resolutions  # the plan is where the spec is resolved
    resolutions.clear()
    result = ev.evaluate(Stub(), p, 1_700_000_000.0)
    result.slos = [r.to_json() for r in result.slos]  # as the API serves them
    assert [(r["service"], r["tool"], r["slo"]) for r in result.slos] == [
        ("analytics", None, "availability"), ("analytics", None, "latency"),
        ("filesystem", None, "availability"), ("filesystem", None, "latency"),
        ("filesystem", "write_file", "availability"),
        ("newcomer", None, "availability"), ("newcomer", None, "latency")]
    assert {r["status"] for r in result.slos} == {ev.NO_DATA}
    assert resolutions == []


def test_an_engine_tick_resolves_nothing_from_the_spec(resolutions, tmp_path):
    engine = Engine(SPEC, Stub(), Store(tmp_path / "engine.db"), interval=30)
    resolutions.clear()
    assert engine.tick() is not None, engine.health.last_error
    assert engine.tick() is not None, engine.health.last_error
    assert resolutions == []


def test_the_commands_read_objectives_from_the_plan(resolutions, tmp_path):
    """validate's summary, the maintenance API's scope check and the rules' maintenance suites
    resolve the spec once, in plan(), and read the plan after that."""
    from alerts import rules_tests
    from slo import importers
    from slo.engine.maintenance_api import unknown_scope
    from slo.validate_cli import summary

    loaded = importers.load("examples/slo.yaml")
    resolutions.clear()
    plan(loaded.spec)
    by_plan = list(resolutions)  # what resolving the spec takes
    assert by_plan
    resolutions.clear()
    text = summary(loaded, "examples/slo.yaml")
    assert "tool write_file: availability" in text
    assert resolutions == by_plan  # the plan's resolution, and nothing after it

    engine = Engine(SPEC, Stub(), Store(tmp_path / "engine.db"), interval=30)
    resolutions.clear()
    for fields in ({"services": ["newcomer"], "tools": [], "slos": ["nope"]},
                   {"services": ["filesystem"], "tools": [], "slos": ["latency"]}):
        unknown_scope(engine, fields)
    assert resolutions == []

    resolutions.clear()
    suite = rules_tests.absent_in_maintenance(SPEC, "filesystem")
    assert suite["name"].startswith("filesystem:")
    assert resolutions == by_plan

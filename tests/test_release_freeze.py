"""The error-budget policy for releases (slo.engine.freeze): under `error_budget_policy:
freeze` a service whose budget is exhausted takes no new release. The policy decision; the
engine's gate and verdict answers (a real engine and store served over HTTP, its ticks
written by the test); and end to end on a demo stack whose healthy canary meets an
analytics latency budget exhausted nine days ago: the gate refuses it with 423 until the
release is marked as a fix, and `mcp-slo canary` exits 1 with the reason."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from demo.stack import Stack, StackConfig, default_slo_spec, start_stack
from mcp_slo import cli
from slo.engine.freeze import FIX_HEADER, FROZEN_STATUS, fix_requested, freeze_of
from slo.results import SLOResult
from slo.spec import SpecError, parse
from tests import binaries
from tests.support import wait_until
from tests.test_gate_recipes import FREEZE, SERVICE, Engines


def result(service: str, slo: str, remaining: float | None, tool: str | None = None) -> SLOResult:
    return SLOResult.from_json({"service": service, "slo": slo, "tool": tool, "status": "ok", "window": "30d",
                                "error_budget_remaining": remaining})


# --- the policy ---------------------------------------------------------------------------------


def test_a_freeze_holds_while_any_slo_of_the_service_has_no_budget_left():
    results = [result("fs", "availability", 0.4), result("fs", "latency", -0.35),
               result("fs", "availability", 0.0, tool="write_file"), result("other", "latency", -1.0)]
    held = freeze_of(FREEZE, "fs", results)
    assert [(r.tool, r.slo) for r in held.exhausted] == [(None, "latency"), ("write_file", "availability")]
    assert "'fs'" in held.reason and "latency -35.0% left over 30d" in held.reason
    assert "write_file availability 0.0% left" in held.reason and "?fix=true" in held.reason
    assert held.to_json()["exhausted"][0] == {"slo": "latency", "tool": None, "window": "30d",
                                                "error_budget_remaining": -0.35}
    # budget left, or unknown (no traffic): no freeze
    assert freeze_of(FREEZE, "fs", [result("fs", "availability", 0.01), result("fs", "latency", None)]) is None


def test_the_policy_is_the_services_own_or_the_defaults():
    spec = parse({"defaults": {"error_budget_policy": "freeze"},
                  "services": {"fs": {"error_budget_policy": "none"}, "shop": {}}})
    assert [spec.error_budget_policy_for(s) for s in ("fs", "shop", "unnamed")] == ["none", "freeze", "freeze"]
    exhausted = [result(s, "latency", -1.0) for s in ("fs", "shop")]
    assert freeze_of(spec, "fs", exhausted) is None  # policy none: today's behaviour
    assert freeze_of(spec, "shop", exhausted) is not None
    assert freeze_of(parse({}), "shop", exhausted) is None  # the default policy is none


@pytest.mark.parametrize("raw, where", [
    ({"defaults": {"error_budget_policy": "lock"}}, "defaults.error_budget_policy"),
    ({"services": {"fs": {"error_budget_policy": True}}}, "services.fs.error_budget_policy"),
])
def test_a_bad_policy_is_one_line_naming_its_key(raw, where):
    with pytest.raises(SpecError) as caught:
        parse(raw, "slo.yaml")
    assert str(caught.value) == f"slo.yaml: {where}: Input should be 'none' or 'freeze'"


def test_a_fix_is_marked_by_the_query_or_the_header():
    assert fix_requested({"fix": "true"}, {}) and fix_requested({}, {FIX_HEADER: "fix"})
    assert not fix_requested({}, {}) and not fix_requested({"fix": "false"}, {})
    for params, headers in (({"fix": "yes"}, {}), ({}, {FIX_HEADER: "hotfix"})):
        with pytest.raises(ValueError, match="fix"):
            fix_requested(params, headers)


# --- the engine's answers -------------------------------------------------------------------------


@pytest.fixture
def frozen(tmp_path) -> Iterator[Engines]:
    """A release freeze: the availability budget overspent by a fifth (test_gate_recipes.frozen)."""
    made = Engines(tmp_path, spec=FREEZE, budget=-0.2)
    yield made
    made.close()


def gate(engines: Engines, path: str = f"gate/{SERVICE}", **kwargs) -> httpx.Response:
    return httpx.post(f"{engines.url}/api/v1/{path}", timeout=5, **kwargs)


@pytest.mark.parametrize("state, canary_verdict", [("promote", "promote"), ("inconclusive", "inconclusive"),
                                                   ("no-canary", "inconclusive")])
def test_the_gate_refuses_a_release_under_a_freeze(frozen, state, canary_verdict):
    frozen.show(state)
    for query in ("", "?pass=promote,inconclusive"):  # whatever ?pass= says: both Flagger webhooks
        answer = gate(frozen, f"gate/{SERVICE}{query}")
        body = answer.json()
        assert answer.status_code == FROZEN_STATUS == 423, answer.text
        assert (body["verdict"], body["canary_verdict"], body["frozen"], body["fix"]) == \
            ("frozen", canary_verdict, True, False)
        assert body["reason"].startswith("release freeze") and "availability -20.0% left over 30d" in body["reason"]
        assert body["freeze"]["exhausted"][0]["slo"] == "availability"
    # Argo's verdict endpoint: 200 whatever the verdict, which is "frozen"
    answer = httpx.get(f"{frozen.url}/api/v1/canaries/{SERVICE}/verdict", timeout=5)
    assert answer.status_code == 200 and answer.json()["verdict"] == "frozen"


def test_a_fix_release_still_needs_the_canarys_own_verdict(frozen):
    frozen.show("promote")
    for marked in ({"params": {"fix": "true"}}, {"headers": {FIX_HEADER: "fix"}}):
        answer = gate(frozen, **marked)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["verdict"], body["frozen"], body["fix"]) == ("promote", True, True)
        assert "canary_verdict" not in body and body["reason"] == "the judge says promote"
    frozen.show("inconclusive")
    assert gate(frozen, params={"fix": "true"}).status_code == 425
    assert httpx.get(f"{frozen.url}/api/v1/canaries/{SERVICE}/verdict?fix=true",
                     timeout=5).json()["verdict"] == "inconclusive"


def test_a_rollback_stays_a_rollback_under_a_freeze(frozen):
    frozen.show("rollback")
    answer = gate(frozen)
    assert answer.status_code == 409 and answer.json()["verdict"] == "rollback" and answer.json()["frozen"] is True


def test_no_freeze_with_budget_left_or_under_policy_none(frozen, tmp_path):
    frozen.budget = 0.01
    frozen.show("promote")
    answer = gate(frozen)
    assert answer.status_code == 200 and answer.json()["frozen"] is False and "freeze" not in answer.json()
    (tmp_path / "none").mkdir()
    none = Engines(tmp_path / "none", budget=-5.0)  # the default policy: today's behaviour, budget or not
    try:
        none.show("promote")
        assert gate(none).status_code == 200 and gate(none).json()["verdict"] == "promote"
    finally:
        none.close()


def test_stale_data_answers_503_before_any_freeze(frozen):
    frozen.show("stale")
    assert gate(frozen).status_code == 503


def test_a_bad_fix_mark_is_a_400(frozen):
    frozen.show("promote")
    for path in (f"gate/{SERVICE}", f"canaries/{SERVICE}/verdict"):
        for marked in ({"params": {"fix": "1"}}, {"headers": {FIX_HEADER: "urgent"}}):
            answer = httpx.get(f"{frozen.url}/api/v1/{path}", timeout=5, **marked)
            assert answer.status_code == 400 and "fix" in answer.json()["error"], answer.text


def test_the_metrics_say_which_services_are_frozen(tmp_path):
    spec = parse({"services": {SERVICE: {"error_budget_policy": "freeze"}}})
    engines = Engines(tmp_path, spec=spec)
    try:
        for budget, frozen in ((-0.2, "1.0"), (0.3, "0.0")):
            engines.clock += 30
            engines.engine.store.write_tick(engines.clock, [result(SERVICE, "availability", budget),
                                                            result("other", "latency", -1.0)], [], {})
            metrics = httpx.get(f"{engines.url}/metrics", timeout=5).text
            assert f'mcp_slo_release_frozen{{service="{SERVICE}"}} {frozen}' in metrics
            assert 'mcp_slo_release_frozen{service="other"}' not in metrics  # policy none: not exported
    finally:
        engines.close()


# --- end to end on a demo stack -------------------------------------------------------------------


@pytest.fixture(scope="module")
def freeze_stack(tmp_path_factory) -> Iterator[Stack]:
    """The healthy demo (its v2 canary behaves as v1: promoted) with the regression
    scenario's 30 hours of slow analytics queries nine days ago, which exhausted the
    analytics latency budget; the engine under examples/slo.yaml with
    `defaults.error_budget_policy: freeze`."""
    for binary in ("prometheus", "promtool", "prometheus-alertmanager"):
        binaries.require(binary)
    workdir = tmp_path_factory.mktemp("stack-freeze")
    healthy = yaml.safe_load((Path(__file__).parent.parent / "demo" / "scenarios" / "healthy.yaml").read_text())
    regression = yaml.safe_load((Path(__file__).parent.parent / "demo" / "scenarios" / "regression.yaml").read_text())
    healthy["incidents"] += [i for i in regression["incidents"] if i["name"] == "analytics slow queries"]
    scenario = workdir / "frozen.yaml"
    scenario.write_text(yaml.safe_dump(healthy))
    spec = yaml.safe_load(default_slo_spec().read_text())
    spec["defaults"]["error_budget_policy"] = "freeze"
    (workdir / "slo.yaml").write_text(yaml.safe_dump(spec))
    stack = start_stack(StackConfig(workdir=workdir / "stack", scenario=str(scenario), history_days=30, rate=20.0,
                                    scrape_interval="1s", seed=42, engine=True, engine_interval=5.0,
                                    slo_spec=workdir / "slo.yaml"))
    stack.start_load()
    try:
        yield stack
    finally:
        stack.close()


@pytest.mark.integration
def test_the_gate_refuses_a_healthy_canary_while_the_budget_is_exhausted(freeze_stack, capsys):
    url = f"{freeze_stack.engine_url}/api/v1/gate/analytics"

    def judged() -> httpx.Response | None:  # 503 until the engine's first tick
        answer = httpx.get(url, timeout=5)
        return answer if answer.status_code not in (404, 503) else None

    answer = wait_until(judged, timeout=60, interval=0.5, what="the engine's first verdict on analytics")
    body = answer.json()
    assert answer.status_code == 423, answer.text
    assert (body["verdict"], body["canary_verdict"]) == ("frozen", "promote"), body
    assert [(e["slo"], e["tool"]) for e in body["freeze"]["exhausted"]] == [("latency", None)], body["freeze"]
    assert body["freeze"]["exhausted"][0]["error_budget_remaining"] < 0
    assert "release freeze" in body["reason"] and "latency" in body["reason"]
    # a fix goes through on the canary's own verdict; the filesystem, with budget left, is not frozen
    fixed = httpx.post(url, params={"fix": "true"}, json={"name": "analytics"}, timeout=5)
    assert fixed.status_code == 200 and fixed.json()["verdict"] == "promote", fixed.text
    assert httpx.get(url, headers={FIX_HEADER: "fix"}, timeout=5).status_code == 200
    filesystem = httpx.get(f"{freeze_stack.engine_url}/api/v1/gate/filesystem", timeout=5)
    assert filesystem.status_code == 200 and filesystem.json()["frozen"] is False, filesystem.text
    metrics = httpx.get(f"{freeze_stack.engine_url}/metrics", timeout=5).text
    assert 'mcp_slo_release_frozen{service="analytics"} 1.0' in metrics
    assert 'mcp_slo_release_frozen{service="filesystem"} 0.0' in metrics

    command = ["canary", "--service", "analytics", "--prometheus", freeze_stack.prometheus_url,
               "--config", str(freeze_stack.config.slo_spec)]
    code, out = cli.main(command), capsys.readouterr().out
    assert code == 1 and "PROMOTE" in out and "FROZEN: release freeze" in out and "--fix" in out, out
    code, out = cli.main([*command, "--fix"]), capsys.readouterr().out
    assert code == 0 and "a fix release" in out, out

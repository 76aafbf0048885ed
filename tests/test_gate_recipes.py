"""The deploy-gate recipes of docs/canary-gates.md, as the page writes them, run against
the engine's real API (served by uvicorn on a free port, reading a real store) through
small models of Argo Rollouts' and Flagger's documented decision rules, for every answer
the engine can give: promote, roll back, inconclusive (or no canary traffic yet), stale.

Argo Rollouts (web metric provider, AnalysisRun assessment): a non-2xx answer is a
measurement Error before the body is read; otherwise the jsonPath result is Failed when
failureCondition holds, else Successful when successCondition holds, else Inconclusive.
The metric is Failed once failures exceed failureLimit, Inconclusive once inconclusive
measurements exceed inconclusiveLimit, Error once consecutive errors exceed
consecutiveErrorLimit (4 by default), and Successful once `count` measurements (errors
not counted) are taken. Failed and Error abort the rollout; Inconclusive pauses it.

Flagger (webhooks, analysis loop): webhooks are POSTed a JSON payload; an answer of 200
to 202 passes, anything else fails. Each interval the `rollout` webhooks run: a failure
is a failed check, and `threshold` failed checks roll the canary back at the next
iteration; otherwise the weight grows by stepWeight up to maxWeight, where every
`confirm-promotion` webhook must pass for the canary to be promoted (a refusal holds the
promotion while the checks go on)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from slo.engine.api import BackgroundServer, create_app
from slo.engine.backend import Backend, BackendOptions
from slo.engine.scheduler import Engine
from slo.spec import Spec, parse
from slo.engine.store import Store
from tests.conftest import running_stack
from tests.support import free_port, wait_until

DOC = Path(__file__).resolve().parent.parent / "docs" / "canary-gates.md"
DOC_ENGINE = "mcp-slo-engine.monitoring:8080"  # the engine's address in the recipes
SERVICE = "filesystem"
INTERVAL = 30.0

# --- the recipes, from the page ----------------------------------------------------------------


def documents() -> list:
    blocks = re.findall(r"^```yaml\n(.*?)^```", DOC.read_text(), re.S | re.M)
    assert blocks, f"no YAML in {DOC}"
    return [yaml.safe_load(b) for b in blocks]


def document(kind: str) -> dict:
    found = [d for d in documents() if isinstance(d, dict) and d.get("kind") == kind]
    assert len(found) == 1, f"{DOC.name} should hold one {kind}, found {len(found)}"
    return found[0]


def rollout_args() -> dict[str, str]:
    """The analysis arguments of the page's Rollout steps, over the template's defaults."""
    (steps,) = [d["strategy"]["canary"]["steps"] for d in documents() if isinstance(d, dict) and "strategy" in d]
    (analysis,) = [s["analysis"] for s in steps if "analysis" in s]
    defaults = {a["name"]: a["value"] for a in document("AnalysisTemplate")["spec"]["args"] if "value" in a}
    return defaults | {a["name"]: a["value"] for a in analysis["args"]}


def at(url: str, engine_url: str) -> str:
    assert DOC_ENGINE in url, url
    return url.replace(f"http://{DOC_ENGINE}", engine_url)


# --- Argo Rollouts ------------------------------------------------------------------------------


def _condition(expression: str, result) -> bool:
    """The conditions the recipes use: result == "x" or result != "x", or several joined by
    || (anything else would need Argo's expression language, which this model does not
    have: keep the page simple)."""
    if "||" in expression:
        return any(_condition(part, result) for part in expression.split("||"))
    match = re.fullmatch(r'\s*result\s*(==|!=)\s*"([^"]*)"\s*', expression)
    assert match, f"the model reads result == \"...\" or result != \"...\", not {expression!r}"
    return (result == match[2]) == (match[1] == "==")


def _json_path(path: str, body) -> str:
    match = re.fullmatch(r"\{\$((?:\.[A-Za-z_]\w*)+)\}", path)
    assert match, f"the model reads {{$.a.b}} paths, not {path!r}"
    for key in match[1].split(".")[1:]:
        if not isinstance(body, dict) or key not in body:
            raise KeyError(key)
        body = body[key]
    return body if isinstance(body, str) else str(body)


@dataclass
class ArgoMetric:
    """One web metric of an AnalysisRun."""

    spec: dict
    url: str
    measurements: list[str] = field(default_factory=list)
    failed: int = 0
    inconclusive: int = 0
    count: int = 0
    consecutive_errors: int = 0
    phase: str = "Running"

    def measure(self) -> str:
        """One measurement; returns its phase and the metric's phase after it."""
        assert self.phase == "Running", f"measured after the metric completed ({self.phase})"
        web = self.spec["provider"]["web"]
        measurement = self._measurement(web)
        self.measurements.append(measurement)
        if measurement == "Error":
            self.consecutive_errors += 1
        else:
            self.consecutive_errors = 0
            self.count += 1
            self.failed += measurement == "Failed"
            self.inconclusive += measurement == "Inconclusive"
        self.phase = self._assess()
        return measurement

    def _measurement(self, web: dict) -> str:
        try:
            response = httpx.get(self.url, timeout=web.get("timeoutSeconds", 10))
        except httpx.HTTPError:
            return "Error"
        if not 200 <= response.status_code < 300:
            return "Error"  # "received non 2xx response code"
        try:
            result = _json_path(web["jsonPath"], response.json())
        except (ValueError, KeyError):
            return "Error"
        success, failure = self.spec.get("successCondition"), self.spec.get("failureCondition")
        succeeded = _condition(success, result) if success else None
        failed = _condition(failure, result) if failure else None
        if success and not failure:
            failed = not succeeded
        if failure and not success:
            succeeded = not failed
        if not success and not failure:
            return "Successful"
        return "Failed" if failed else "Successful" if succeeded else "Inconclusive"

    def _assess(self) -> str:
        if self.failed > self.spec.get("failureLimit", 0):
            return "Failed"
        if self.inconclusive > self.spec.get("inconclusiveLimit", 0):
            return "Inconclusive"
        if self.consecutive_errors > self.spec.get("consecutiveErrorLimit", 4):
            return "Error"
        if "count" in self.spec and self.count >= int(self.spec["count"]):
            return "Successful"
        return "Running"


def argo_metric(engine_url: str, **args: str) -> ArgoMetric:
    """The page's metric with the page's Rollout args (`args` change some, as a Rollout would)."""
    template = document("AnalysisTemplate")
    (metric,) = template["spec"]["metrics"]
    url = metric["provider"]["web"]["url"]
    for name, value in (rollout_args() | args).items():
        url = url.replace(f"{{{{args.{name}}}}}", value)
    assert "{{" not in url, url
    return ArgoMetric(metric, at(url, engine_url))


# --- Flagger ----------------------------------------------------------------------------------


@dataclass
class FlaggerCanary:
    spec: dict
    engine_url: str
    weight: int = 0
    failed_checks: int = 0
    phase: str = "Progressing"
    calls: list[tuple[str, int | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        hooks = self.spec["spec"]["analysis"]["webhooks"]
        unknown = {h["type"] for h in hooks} - {"rollout", "confirm-promotion"}
        assert not unknown, f"the model runs rollout and confirm-promotion webhooks, not {unknown}"

    def _hooks(self, kind: str) -> list[dict]:
        return [h for h in self.spec["spec"]["analysis"]["webhooks"] if h["type"] == kind]

    def _call(self, hook: dict) -> bool:
        payload = {"name": self.spec["metadata"]["name"], "namespace": "default", "phase": self.phase,
                   "checksum": "0", "type": hook["type"], "metadata": hook.get("metadata", {})}
        timeout = float(str(hook.get("timeout", "10s")).removesuffix("s"))
        try:
            status = httpx.post(at(hook["url"], self.engine_url), json=payload, timeout=timeout).status_code
        except httpx.HTTPError:
            status = None
        self.calls.append((hook["type"], status))
        return status is not None and 200 <= status <= 202

    def iterate(self) -> str:
        """One analysis interval; returns the phase after it."""
        analysis = self.spec["spec"]["analysis"]
        assert self.phase in ("Progressing", "WaitingPromotion"), f"iterated after {self.phase}"
        if self.failed_checks >= analysis["threshold"]:
            self.phase = "Failed"  # rolled back
            return self.phase
        if not all([self._call(h) for h in self._hooks("rollout")]):
            self.failed_checks += 1
            return self.phase
        if self.weight < analysis["maxWeight"]:
            self.weight = min(analysis["maxWeight"], self.weight + analysis["stepWeight"])
            return self.phase
        promote = all([self._call(h) for h in self._hooks("confirm-promotion")])
        self.phase = "Succeeded" if promote else "WaitingPromotion"
        return self.phase


# --- the engine ---------------------------------------------------------------------------------


class Engines:
    """A real engine (store, API) whose evaluations the test writes, as its ticks would, on
    the engine's own clock: each `show` is a tick later, with `SERVICE`'s SLOs and one canary
    decision per verdict, or no tick for two intervals and more (stale). `budget`: the share
    of the error budget its availability SLO has left (<= 0: exhausted)."""

    def __init__(self, tmp_path: Path, spec: Spec | None = None, budget: float | None = 0.5):
        self.clock = time.time()
        self.budget = budget
        backend = Backend(BackendOptions(url=f"http://127.0.0.1:{free_port()}", timeout=0.5, retries=0))
        self.engine = Engine(spec or Spec(), backend, Store(tmp_path / "engine.db"), interval=INTERVAL,
                             now=lambda: self.clock)
        self.server = BackgroundServer(create_app(self.engine))
        self.url = self.server.url

    def show(self, state: str) -> None:
        """promote, rollback, inconclusive, mixed (a canary inconclusive, another promote),
        no-canary (SLOs but no canary with traffic yet) or stale (the latest evaluation is
        older than two missed ticks)."""
        if state == "stale":
            if self.engine.store.latest_tick() is None:
                self.show("promote")
            self.clock += 3 * INTERVAL
            assert self.engine.is_stale_at(self.engine.store.latest_tick()[1])
            return
        self.clock += INTERVAL
        slo = {"service": SERVICE, "slo": "availability", "tool": None, "status": "ok", "sli": 0.999,
               "window": "30d", "error_budget_remaining": self.budget, "versions": ["v1", "v2"]}
        self.engine.store.write_tick(self.clock, [slo], [], {})
        verdicts = {"no-canary": [], "mixed": ["promote", "inconclusive"]}.get(state, [state])
        for i, verdict in enumerate(verdicts):
            self.engine.store.write_canary(self.clock, {
                "service": SERVICE, "baseline": "v1", "canary": f"v{i + 2}", "verdict": verdict, "score": 50,
                "reason": f"the judge says {verdict}", "metrics": [], "window": "1h", "canary_age_seconds": 3600})

    def close(self) -> None:
        self.server.stop()
        self.engine.store.close()


@pytest.fixture
def engines(tmp_path) -> Iterator[Engines]:
    made = Engines(tmp_path)
    yield made
    made.close()


FREEZE = parse({"defaults": {"error_budget_policy": "freeze"}})


@pytest.fixture
def frozen(tmp_path) -> Iterator[Engines]:
    """An engine under `defaults.error_budget_policy: freeze` whose service has overspent
    its availability budget by a fifth: a release freeze."""
    made = Engines(tmp_path, spec=FREEZE, budget=-0.2)
    yield made
    made.close()


# --- Argo Rollouts: each answer, and whole runs ------------------------------------------------


@pytest.mark.parametrize("state, measurement", [
    ("promote", "Successful"), ("rollback", "Failed"), ("inconclusive", "Inconclusive"),
    ("no-canary", "Inconclusive"), ("mixed", "Inconclusive"), ("stale", "Error")])
def test_argo_measures_each_answer_as_intended(engines, state, measurement):
    engines.show(state)
    metric = argo_metric(engines.url)
    assert metric.measure() == measurement


def test_argo_fails_the_analysis_at_the_first_rollback(engines):
    metric = argo_metric(engines.url)
    for state in ("inconclusive", "promote", "rollback"):
        engines.show(state)
        metric.measure()
    assert metric.phase == "Failed" and metric.measurements == ["Inconclusive", "Successful", "Failed"]


def test_argo_keeps_measuring_while_inconclusive_then_succeeds_on_promote(engines):
    metric = argo_metric(engines.url)
    count = int(metric.spec["count"])
    engines.show("no-canary")
    metric.measure()
    engines.show("inconclusive")
    while metric.count < count - 1:
        metric.measure()
        assert metric.phase == "Running", metric.measurements  # waiting, never failed or errored
    engines.show("promote")
    metric.measure()
    assert metric.phase == "Successful", metric.measurements


def test_argo_never_promotes_a_canary_that_stays_inconclusive(engines):
    metric = argo_metric(engines.url)
    engines.show("inconclusive")
    while metric.phase == "Running":
        metric.measure()
    assert metric.phase == "Inconclusive"  # the rollout pauses for a person, it does not promote


def test_argo_rides_out_a_short_stale_spell_and_errors_on_a_long_one(engines):
    metric = argo_metric(engines.url)
    limit = metric.spec.get("consecutiveErrorLimit", 4)
    engines.show("stale")
    for _ in range(limit):
        assert metric.measure() == "Error" and metric.phase == "Running"
    engines.show("promote")
    while metric.phase == "Running":
        metric.measure()
    assert metric.phase == "Successful"

    metric = argo_metric(engines.url)
    engines.show("stale")
    for _ in range(limit + 1):
        metric.measure()
    assert metric.phase == "Error"


def test_argo_errors_on_a_service_the_engine_does_not_know(engines):
    engines.show("promote")
    metric = argo_metric(engines.url)
    metric.url = metric.url.replace(SERVICE, "filesytsem")  # a typo in the Rollout's args
    assert metric.measure() == "Error"


# --- Flagger: each answer, and whole analyses ---------------------------------------------------


def flagger(engines: Engines) -> FlaggerCanary:
    return FlaggerCanary(document("Canary"), engines.url)


def run_flagger(engines: Engines, states: list[str], canary: FlaggerCanary | None = None) -> FlaggerCanary:
    canary = canary or flagger(engines)
    for state in states:
        engines.show(state)
        if canary.iterate() in ("Succeeded", "Failed"):
            break
    return canary


def test_flagger_promotes_a_canary_judged_promote(engines):
    canary = run_flagger(engines, ["promote"] * 20)
    assert canary.phase == "Succeeded" and canary.failed_checks == 0


def test_flagger_rolls_back_on_a_rollback_verdict(engines):
    canary = run_flagger(engines, ["promote", "rollback"] + ["rollback"] * 20)
    assert canary.phase == "Failed"
    threshold = canary.spec["spec"]["analysis"]["threshold"]
    assert canary.failed_checks == threshold


def test_flagger_advances_while_inconclusive_holds_the_promotion_then_promotes(engines):
    analysis = document("Canary")["spec"]["analysis"]
    canary = run_flagger(engines, ["no-canary"] + ["inconclusive"] * 20)
    assert canary.phase == "WaitingPromotion" and canary.failed_checks == 0
    assert canary.weight == analysis["maxWeight"]  # more traffic to the canary, for a verdict
    run_flagger(engines, ["mixed", "promote"], canary)
    assert canary.phase == "Succeeded" and canary.failed_checks == 0


def test_flagger_counts_a_stale_engine_as_failed_checks(engines):
    canary = run_flagger(engines, ["stale"] * 20)
    assert canary.phase == "Failed"  # as when Flagger's own metrics cannot be read
    assert all(status == 503 for _, status in canary.calls)


def test_flagger_never_promotes_on_a_stale_engine(engines):
    """Even with a threshold too high to roll back, stale data never promotes."""
    canary = flagger(engines)
    canary.spec["spec"]["analysis"]["threshold"] = 1000
    run_flagger(engines, ["inconclusive"] * 10 + ["stale"] * 10, canary)
    assert canary.phase == "WaitingPromotion" and canary.failed_checks == 10


def test_failed_ticks_make_every_answer_a_503_with_the_reason(engines):
    engines.show("promote")
    for _ in range(2):  # Prometheus unreachable: two real failed ticks in a row
        assert engines.engine.tick() is None
    metric = argo_metric(engines.url)
    assert metric.measure() == "Error"
    canary = flagger(engines)
    canary.iterate()
    assert canary.failed_checks == 1 and canary.calls == [("rollout", 503)]
    for path in (f"canaries/{SERVICE}/verdict", f"gate/{SERVICE}", f"gate/{SERVICE}?pass=promote,inconclusive"):
        answer = httpx.get(f"{engines.url}/api/v1/{path}", timeout=5)
        assert answer.status_code == 503 and "stale: " in answer.json()["reason"], answer.text
        assert "connection refused" in answer.json()["reason"], answer.text


def test_the_gate_refuses_what_it_cannot_pass(engines):
    engines.show("promote")
    answer = httpx.get(f"{engines.url}/api/v1/gate/{SERVICE}?pass=promote,maybe", timeout=5)
    assert answer.status_code == 400 and "pass takes verdicts" in answer.json()["error"]


# --- a release freeze (error_budget_policy: freeze, a budget exhausted) ------------------------


def test_argo_fails_a_frozen_release_at_once_and_measures_a_fix_as_any_release(frozen):
    frozen.show("promote")
    metric = argo_metric(frozen.url)
    assert metric.measure() == "Failed" and metric.phase == "Failed"
    metric = argo_metric(frozen.url, fix="true")  # the fix release's Rollout args
    while metric.phase == "Running":
        metric.measure()
    assert metric.phase == "Successful"
    frozen.show("rollback")
    assert argo_metric(frozen.url, fix="true").measure() == "Failed"


def test_flagger_rolls_a_frozen_release_back_and_promotes_a_fix(frozen):
    canary = run_flagger(frozen, ["promote"] * 20)
    assert canary.phase == "Failed" and {status for _, status in canary.calls} == {423}
    canary = flagger(frozen)
    for hook in canary.spec["spec"]["analysis"]["webhooks"]:  # as the page says, for the fix release
        hook["url"] += "&fix=true" if "?" in hook["url"] else "?fix=true"
    run_flagger(frozen, ["inconclusive"] * 6 + ["promote"] * 20, canary)
    assert canary.phase == "Succeeded" and canary.failed_checks == 0


def test_the_pages_policy_example_is_a_valid_spec():
    (example,) = [d for d in documents() if isinstance(d, dict) and "defaults" in d]
    spec = parse(example, DOC.name)
    assert [spec.error_budget_policy_for(s) for s in ("search", SERVICE)] == ["none", "freeze"]


# --- on a real stack ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quiet_stack(tmp_path_factory):
    """The healthy demo with no history and little load: its canaries have too little traffic."""
    yield from running_stack(tmp_path_factory, "healthy", 0, rate=5.0, seed=3, engine_interval=2.0)


@pytest.mark.integration
def test_the_recipes_wait_for_a_real_canary_with_too_little_traffic(quiet_stack):
    """The engine judging real traffic from a real Prometheus: Argo keeps measuring,
    Flagger shifts traffic and holds the promotion."""
    def judged() -> bool:
        answer = httpx.get(f"{quiet_stack.engine_url}/api/v1/canaries/{SERVICE}/verdict", timeout=5)
        return answer.status_code == 200 and bool(answer.json()["canaries"])

    wait_until(judged, timeout=60, interval=0.5, what="the judge's first verdict on the demo's canary")
    metric = argo_metric(quiet_stack.engine_url)
    assert metric.measure() == "Inconclusive" and metric.phase == "Running"
    canary = FlaggerCanary(document("Canary"), quiet_stack.engine_url)
    canary.weight = canary.spec["spec"]["analysis"]["maxWeight"]
    assert canary.iterate() == "WaitingPromotion" and canary.failed_checks == 0
    assert [status for _, status in canary.calls] == [200, 425], canary.calls


# --- the existing gate keeps its answers ---------------------------------------------------------


@pytest.mark.parametrize("state, status", [("promote", 200), ("rollback", 409), ("inconclusive", 425),
                                           ("no-canary", 404), ("stale", 503)])
def test_the_gate_keeps_its_statuses(engines, state, status):
    engines.show(state)
    for method in (httpx.get, httpx.post):
        answer = method(f"{engines.url}/api/v1/gate/{SERVICE}", timeout=5)
        assert answer.status_code == status, (state, answer.text)

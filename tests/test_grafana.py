"""Generated Grafana dashboards: the committed files are the generator's output; each dashboard
validates against Grafana 11.6's JSON schemas (the dashboard, every panel's options and every
Prometheus query); every metric a query names is one the exporter, the rules or the engine
produce; and on the regression demo's real Prometheus (with the generated rules, scraping the
engine) every query of every panel runs and returns series."""

from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import jsonschema
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from alerts import rules
from collector import Recorder, names
from grafana import frame, generate
from mcp_slo import cli
from slo import importers, plan, promql, spec
from slo import schema as metrics_schema
from slo.engine.scheduler import Health
from slo.engine.metrics import registry_for
from tests.support import registry_text, wait_until

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "slo.yaml"
COMMITTED = ROOT / "grafana"
REGENERATE = "make grafana (mcp-slo grafana --config examples/slo.yaml --out grafana)"
SCHEMAS = Path(__file__).resolve().parent / "data" / "grafana-schema-11.6"
GRAFANA_BUILTINS = {"__rate_interval", "__range", "__interval"}  # variables Grafana defines itself


@pytest.fixture(scope="module")
def example() -> spec.Spec:
    return importers.load(EXAMPLE).spec


@pytest.fixture(scope="module")
def boards(example) -> dict[str, dict]:
    return generate.dashboards(example, source=EXAMPLE.name)


def panels(board: dict) -> list[dict]:
    return [p for p in board["panels"] if p["type"] != "row"]


def exprs(board: dict) -> list[str]:
    return [t["expr"] for p in panels(board) for t in p.get("targets", [])]


# --- the committed files ---------------------------------------------------------------------


def test_the_committed_files_are_what_the_generator_writes(example):
    files = generate.generate(example, source=EXAMPLE.name)
    for relative, text in files.items():
        path = COMMITTED / relative
        assert path.exists() and path.read_text() == text, f"grafana/{relative} is stale; regenerate: {REGENERATE}"
    committed = {p.relative_to(COMMITTED).as_posix() for p in (COMMITTED / generate.DASHBOARDS_DIR).glob("*.json")}
    assert committed == {r for r in files if r.startswith(generate.DASHBOARDS_DIR)}, \
        f"grafana/dashboards/ holds dashboards the generator no longer writes; remove them and run {REGENERATE}"


def test_the_cli_writes_the_same_files(tmp_path, capsys):
    assert cli.main(["grafana", "--config", str(EXAMPLE), "--out", str(tmp_path)]) == 0
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted(generate.generate(importers.load(EXAMPLE).spec, source=EXAMPLE.name))
    for relative in written:
        assert (tmp_path / relative).read_text() == (COMMITTED / relative).read_text(), relative
    assert len(capsys.readouterr().out.splitlines()) == len(written)


def test_the_options_reach_the_files(tmp_path):
    assert cli.main(["grafana", "--config", str(EXAMPLE), "--out", str(tmp_path),
                     "--dash-url", "https://slo.example.com/", "--datasource-url", "http://prometheus:9090",
                     "--dashboards-path", "/srv/dashboards"]) == 0
    detail = json.loads((tmp_path / "dashboards" / f"{frame.DETAIL}.json").read_text())
    assert "https://slo.example.com/services/${service:percentencode}" in [link["url"] for link in detail["links"]]
    assert "url: http://prometheus:9090\n" in (tmp_path / generate.DATASOURCES_FILE).read_text()
    assert "path: /srv/dashboards\n" in (tmp_path / generate.PROVIDERS_FILE).read_text()


@pytest.mark.parametrize("args, message", [
    (["--config", "{bad}"], "target is a percentage strictly between 0 and 100"),
    (["--config", "{good}", "--dash-url", "javascript:alert(1)"], "--dash-url 'javascript:alert(1)' is not an http"),
    (["--config", "{good}", "--datasource-url", "prometheus:9090"], "--datasource-url 'prometheus:9090' is not an http"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, args, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text("defaults:\n  objectives:\n    - {name: availability, kind: availability, target: 101}\n")
    out = tmp_path / "out"
    args = [a.format(bad=bad, good=EXAMPLE) for a in args]
    assert cli.main(["grafana", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mcp-slo grafana: ") and message in err, err
    assert not out.exists()


# --- Grafana's schema ---------------------------------------------------------------------------


def schema(name: str, definition: str | None = None) -> dict:
    """A schema file, or one of its definitions (with the file's definitions, for its $refs)."""
    document = json.loads((SCHEMAS / f"{name}.jsonschema.json").read_text())
    if definition is None:
        return document
    return {"$ref": f"#/definitions/{definition}", "definitions": document["definitions"]}


def schema_errors(board: dict) -> list[str]:
    """Every way `board` breaks Grafana's schemas: the dashboard's, then each panel's options and
    custom field config against its type's, and each query against the Prometheus query's."""
    def errors(validator_schema: dict, instance: object, where: str) -> list[str]:
        validator = jsonschema.Draft7Validator(validator_schema)
        return [f"{where}{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(instance)]

    out = errors(schema("dashboard"), board, "dashboard")
    query = schema("prometheus")
    for p in panels(board):
        where = f"panel {p['title']!r} "
        out += errors(schema(p["type"], "Options"), p.get("options", {}), where + "options")
        custom = p.get("fieldConfig", {}).get("defaults", {}).get("custom")
        if custom is not None:
            out += errors(schema(p["type"], "FieldConfig"), custom, where + "custom field config")
        for t in p["targets"]:
            out += errors(query, t, where + f"query {t['refId']}")
    return out


@pytest.mark.parametrize("uid", frame.TITLES)
def test_each_dashboard_validates_against_grafanas_schema(boards, uid):
    assert schema_errors(boards[uid]) == []


def test_the_schema_check_catches_what_grafana_would_reject(boards):
    board = copy.deepcopy(boards[frame.OVERVIEW])
    stat_panel = next(p for p in panels(board) if p["type"] == "stat")
    stat_panel["options"]["colorMode"] = "rainbow"
    stat_panel["fieldConfig"]["defaults"]["thresholds"]["steps"][0]["value"] = None  # what Grafana itself writes
    stat_panel["targets"][0]["format"] = "csv"
    del board["schemaVersion"]
    found = "\n".join(schema_errors(board))
    for problem in ("'schemaVersion' is a required property", "'rainbow' is not one of", "'csv' is not one of"):
        assert problem in found, found
    assert len(schema_errors(board)) >= 4


def test_panels_have_unique_ids_and_fit_the_grid_without_overlapping(boards):
    for uid, board in boards.items():
        ids = [p["id"] for p in board["panels"]]
        assert len(set(ids)) == len(ids), uid
        cells: dict[tuple[int, int], str] = {}
        for p in board["panels"]:
            g = p["gridPos"]
            assert 0 <= g["x"] and g["x"] + g["w"] <= 24, (uid, p["title"], g)
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{uid}: {p['title']!r} overlaps {cells[(x, y)]!r}"
                    cells[(x, y)] = p["title"]


# --- what the dashboards show and link to ------------------------------------------------------


def variable_names(board: dict) -> list[str]:
    return [v["name"] for v in board["templating"]["list"]]


def test_the_operations_dashboard_has_the_variables_and_panels_asked_for(boards):
    board = boards[frame.OPERATIONS]
    assert variable_names(board) == ["datasource", "service", "version", "tool"]
    service = board["templating"]["list"][1]
    # the services of both schemas (auto): a query whose series' service labels the regex picks
    assert service["query"].startswith("query_result((group by (service) (last_over_time(mcp_operations_total[$__range]))")
    assert metrics_schema.OTEL_DURATION in service["query"] and service["regex"] == '/service="([^"]*)"/' and service["multi"]
    assert {p["type"] for p in panels(board)} == {"timeseries", "bargauge", "heatmap"}
    assert all(p["datasource"] == {"type": "prometheus", "uid": "${datasource}"} for p in panels(board))


def test_every_template_variable_used_is_defined(boards):
    for uid, board in boards.items():
        defined = set(variable_names(board)) | GRAFANA_BUILTINS
        # $1: a label_replace replacement, not a variable
        used = {m for e in exprs(board) for m in re.findall(r"\$\{?([A-Za-z_]\w*)", e)}
        used |= {m for v in board["templating"]["list"]
                 for m in re.findall(r"\$\{?([A-Za-z_]\w*)", str(v.get("query", "")))}
        assert used <= defined, (uid, used - defined)


def test_the_dashboards_link_to_each_other_by_uid_and_to_the_app(boards):
    for uid, board in boards.items():
        urls = [link["url"] for link in board["links"]]
        assert [u for u in urls if u.startswith("/d/")] == [f"/d/{other}" for other in frame.TITLES if other != uid]
        assert any(u.startswith(frame.DEFAULT_DASH_URL) for u in urls), uid
    for uid in (frame.DETAIL, frame.CANARY):  # one service: links to it in the app
        urls = [link["url"] for link in boards[uid]["links"]]
        assert f"{frame.DEFAULT_DASH_URL}/services/${{service:percentencode}}" in urls
        assert f"{frame.DEFAULT_DASH_URL}/canaries?service=${{service:percentencode}}" in urls
    table = next(p for p in panels(boards[frame.OVERVIEW]) if p["title"] == "SLOs")
    row_links = [link["url"] for link in table["fieldConfig"]["defaults"]["links"]]
    assert any(url.startswith(f"/d/{frame.DETAIL}?var-service=") for url in row_links)


# the panels drawn from the duration histogram, whose buckets carry the requests' trace ids
LATENCY_PANELS = {frame.OPERATIONS: {"Duration quantiles by service", "Duration buckets"},
                  frame.CANARY: {"Latency quantiles"}}


@pytest.mark.parametrize("metrics", metrics_schema.SCHEMAS)
def test_the_latency_panels_and_only_they_ask_for_exemplars(example, metrics):
    boards = generate.dashboards(example.model_copy(update={"metrics": metrics}), source=EXAMPLE.name)
    for uid, board in boards.items():
        latency = LATENCY_PANELS.get(uid, set())
        assert latency <= {p["title"] for p in panels(board)}, uid
        for p in panels(board):
            asked = [t.get("exemplar", False) for t in p.get("targets", [])]
            assert asked == [p["title"] in latency] * len(asked), (uid, p["title"], asked)


def burn_panels(board: dict) -> dict[str, dict]:
    return {p["title"]: p for p in panels(board) if "x over" in p["title"]}


def test_burn_rate_panels_follow_the_specs_tiers_scaled_to_the_slo_window():
    custom = spec.parse({
        "defaults": {"objectives": [{"name": "availability", "kind": "availability", "target": 99.9, "window": "7d"}]},
        "alerting": {"tiers": [
            {"name": "fast", "severity": "page", "burn_rate": 20, "long_window": "1h", "short_window": "5m"},
            {"name": "slow", "severity": "ticket", "burn_rate": 2.5, "long_window": "3d", "short_window": "6h"}]},
    })
    board = generate.dashboards(custom, source="custom.yaml")[frame.DETAIL]
    assert schema_errors(board) == []
    tiers = {st.tier.name: st for st in plan.plan(custom).tiers[7 * 86400]}
    found = burn_panels(board)
    assert len(found) == 2
    for name, st in tiers.items():
        long_, short = promql.duration(st.long_window), promql.duration(st.short_window)
        title = next(t for t in found if t.startswith(f"{name}: "))
        assert f"{promql.number(st.tier.burn_rate)}x over {long_} and {short}" in title
        p = found[title]
        steps = p["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert [s["value"] for s in steps[1:]] == [st.tier.burn_rate]
        assert steps[1]["color"] == {"page": "red", "ticket": "orange"}[st.tier.severity]
        queried = [t["expr"] for t in p["targets"]]
        assert f"mcp_slo:error_ratio:rate{long_}{{" in queried[0] and f"mcp_slo:error_ratio:rate{short}{{" in queried[1]
        assert all('window="7d"' in q for q in queried)
    # the workbook's windows are for 30 days: 1h and 3d become 14m and 1008m for 7 days (5m is the floor)
    assert sorted(found) == ["fast: 20x over 14m and 5m (page)", "slow: 2.5x over 1008m and 84m (ticket)"]
    overview = generate.dashboards(custom, source="custom.yaml")[frame.OVERVIEW]
    [p] = [p for p in panels(overview) if p["title"].startswith("Burn rate over")]
    assert p["title"] == "Burn rate over 14m"  # the fastest tier's long window: what pages first
    assert [s["value"] for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]] == [2.5, 20]


def test_a_spec_without_objectives_or_tiers_still_gives_valid_dashboards():
    bare = spec.parse({"alerting": {"tiers": []}})
    boards = generate.dashboards(bare, source="bare.yaml")
    assert sorted(boards) == sorted(frame.TITLES)
    for board in boards.values():
        assert schema_errors(board) == []
        assert not [p for p in panels(board) if "urn rate" in p["title"] or "x over" in p["title"]]


# --- only metrics mcp-slo produces ----------------------------------------------------------------

KEYWORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "Inf", "NaN"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: what is left once strings, label matchers,
    ranges, grouping label lists, function names and keywords are taken out."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    words = re.findall(r"(?<![\w:$])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()", expr)
    return set(words) - KEYWORDS


def test_metric_names_finds_metrics_and_nothing_else():
    expr = ('sum by (service, le) (rate(mcp_operation_duration_seconds_bucket{service=~"$service",le="0.5"}'
            '[$__rate_interval])) / on (service, slo) group_left mcp_slo:error_budget{slo="a and b"} '
            'or label_replace(up, "x", "$1", "", "") > -Inf or count(nope) or vector(0) * 1e9')
    assert metric_names(expr) == {"mcp_operation_duration_seconds_bucket", "mcp_slo:error_budget", "up", "nope"}


def exporter_metrics() -> set[str]:
    registry = CollectorRegistry()
    recorder = Recorder("s", "v1", registry=registry)
    recorder.end("tools/call", "t", names.SUCCESS, recorder.begin())
    return {s.name for f in text_string_to_metric_families(registry_text(registry)) for s in f.samples}


def engine_metrics() -> set[str]:
    """The engine's /metrics with one SLO and one canary (a stand-in engine: the collector reads
    only its snapshot, canaries and health)."""
    from slo.engine.store import Snapshot
    from slo.results import CanaryDecision, Evaluated

    snapshot = Snapshot(tick_id=1, evaluated_at=0.0, tools=[], meta={}, slos=[{
        "service": "s", "tool": "", "slo": "availability", "window": "30d", "objective": 0.99, "sli": 0.995,
        "error_budget_remaining": 0.5, "burn_rates": {"1h": 0.5}, "status": "ok"}])
    engine = SimpleNamespace(
        snapshot=lambda: snapshot, now=lambda: 1.0, is_stale=lambda _s: False,
        canaries=lambda _s: [Evaluated(CanaryDecision(service="s", baseline="v1", canary="v2", verdict="promote",
                                                       score=90, reason="", metrics=(), window="1h",
                                                       canary_age_seconds=3600.0), 0.0)],
        health=Health(started_at=0.0, last_success_at=0.0, last_duration=1.0, last_queries=3),
        spec=spec.parse({}), maintenance=lambda: [])
    return {s.name for f in text_string_to_metric_families(registry_text(registry_for(engine))) for s in f.samples}


def test_dashboards_read_only_metrics_the_exporter_the_rules_or_the_engine_produce(example, boards):
    groups = rules.rule_groups(example)
    recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    alert_names = {r["alert"] for g in groups for r in g["rules"] if "alert" in r}
    exporter, engine = exporter_metrics(), engine_metrics()
    assert {names.OPERATIONS_TOTAL, names.OPERATIONS_ACTIVE} <= exporter and "mcp_canary_verdict" in engine
    otel = {f"{metrics_schema.OTEL_DURATION}_count", f"{metrics_schema.OTEL_DURATION}_bucket", metrics_schema.TARGET_INFO}  # an OTel SDK's
    produced = exporter | otel | recorded | engine | {promql.ALERTS_SERIES}  # Prometheus's series of the rules' alerts
    for uid, board in boards.items():
        for e in exprs(board):
            assert "__name__" not in e, f"{uid}: a name matcher hides metric names from this check: {e}"
            read = metric_names(e)
            assert read and read <= produced, f"{uid}: {sorted(read - produced)} in {e}"
            for alertnames in re.findall(r'alertname=~?"([^"]*)"', e):
                assert set(alertnames.split("|")) <= alert_names, e
        for v in board["templating"]["list"]:
            if v["type"] == "query":
                query = re.sub(r"^label_values\((.*), \w+\)$", r"\1", v["query"]).removeprefix("query_result")
                read = metric_names(query)
                assert read <= produced, (uid, v["query"])


# --- against the regression demo's Prometheus ----------------------------------------------------

# Real values for the template variables: the demo's services, versions, tools and SLOs.
VALUES = {"service": "filesystem", "version": "v1|v2", "tool": "read_file", "slo": "availability|latency",
          "baseline": "v1", "canary": "v2", "__rate_interval": "5m", "__range": "1h", "__interval": "1m"}
# The rules' first evaluations (1m interval) and the engine's first ticks, after the stack started.
RULES_DEADLINE = 90
# Prometheus writes ALERTS samples only once a group has restored its alerts' `for` state, after
# its second evaluation since start-up: 2 to 3 minutes with the rules' 1m interval (no wait when
# the session's stack has been up that long).
ALERTS_DEADLINE = 240


def substitute(expr: str) -> str:
    """`expr` as Grafana would send it, with VALUES for the variables (an unknown one: KeyError).
    label_replace's "$1" is not a variable (Grafana leaves names no variable has alone)."""
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$([A-Za-z_]\w*)", lambda m: VALUES[m.group(1) or m.group(2)], expr)


def ask(url: str, expr: str, ranged: bool) -> tuple[str, object] | None:
    """("error", body) for a failed query, ("ok", series) for series, None for none yet."""
    now = time.time()
    params = {"query": expr, **({"start": now - 900, "end": now, "step": 30} if ranged else {"time": now})}
    r = httpx.get(f"{url}/api/v1/{'query_range' if ranged else 'query'}", params=params, timeout=10)
    body = r.json()
    if r.status_code != 200 or body.get("status") != "success":
        return "error", body
    return ("ok", body["data"]["result"]) if body["data"]["result"] else None


def queries(boards: dict[str, dict], alerts: bool) -> list[tuple[str, str, bool]]:
    """(what, PromQL with real values, as a range query) for every target of every panel: the
    instant form of each, and the range form of those Grafana asks over a range; those that read
    ALERTS only or all but them."""
    out = []
    for uid, board in boards.items():
        for p in panels(board):
            for t in p["targets"]:
                if (promql.ALERTS_SERIES in metric_names(t["expr"])) != alerts:
                    continue
                for ranged in (False, True) if t.get("range") else (False,):
                    expr = substitute(t["expr"])
                    out.append((f"{uid} / {p['title']!r} / {t['refId']} ({'range' if ranged else 'instant'}): {expr}",
                                expr, ranged))
    return out


def assert_all_return_series(url: str, asked: list[tuple[str, str, bool]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for what, expr, ranged in asked:
        outcome, answer = wait_until(lambda: ask(url, expr, ranged), interval=1, what=f"series for {what}",
                                     timeout=max(1.0, deadline - time.monotonic()))
        assert outcome == "ok", f"{what}\n{answer}"


@pytest.mark.integration
def test_every_panel_query_runs_on_the_demos_prometheus_and_returns_series(regression_stack, boards):
    asked = queries(boards, alerts=False)
    assert len(asked) >= 40
    assert_all_return_series(regression_stack.prometheus_url, asked, RULES_DEADLINE)
    for uid, board in boards.items():  # the variables' values too, as Grafana asks for them (series)
        for v in board["templating"]["list"]:
            if v["type"] == "query" and v["query"].startswith("query_result("):
                expr = substitute(v["query"].removeprefix("query_result"))
                assert ask(regression_stack.prometheus_url, expr, False)[0] == "ok", (uid, v["name"], expr)
            elif v["type"] == "query":
                metric = substitute(re.sub(r"^label_values\((.*), \w+\)$", r"\1", v["query"]))
                r = httpx.get(f"{regression_stack.prometheus_url}/api/v1/series", params={"match[]": metric},
                              timeout=10).json()
                assert r["status"] == "success" and r["data"], (uid, v["name"], metric, r)


@pytest.mark.integration
def test_the_alert_tables_show_the_demos_alerts(regression_stack, boards):
    asked = queries(boards, alerts=True)
    assert len(asked) == 3  # the overview's firing count and table, the detail's table
    assert_all_return_series(regression_stack.prometheus_url, asked, ALERTS_DEADLINE)

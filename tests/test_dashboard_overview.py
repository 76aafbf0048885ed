"""The dashboard's overview: its data functions (rows, sort, filter, paging, numbers as text,
burn rates over tier thresholds), its callbacks called as plain functions with a fake source,
and the app itself (pages, /healthz, callbacks through Dash's HTTP protocol, no secret sent).

SLO rows are made by the engine's own arithmetic (slo.evaluate.assess) from error ratios per
window, then shaped as GET /api/v1/slos answers them (slo.engine.api) and read back as the
dashboard's source reads that answer (dashboard.source.typed), so they are real results.
"""

from __future__ import annotations

import json
import time

import pytest
from dash import no_update

from dashboard import app as dashboard_app
from dashboard import overview_data as overview
from dashboard.app import create_app
from dashboard.formatting import fmt_budget, fmt_burn, fmt_duration, fmt_exhaustion, fmt_objective, fmt_sli
from dashboard.overview_data import ViewState, build_rows, burn_cells, burn_windows, filter_rows, page_of, sort_rows
from dashboard.url_state import merge_search, parse_search
from dashboard.pages import overview as page
from dashboard.shell import banner, sync_shell
from dashboard.source import EngineSource, SourceError, Status, typed
from mcp_slo import cli
from collector import durations
from slo.engine import answers
from slo import spec as slo_spec
from slo.canary.judge import Comparison, Counts, judge
from slo.evaluate import Instance, assess
from slo.plan import plan
from slo.engine.store import Snapshot
from slo.results import CanaryDecision, Evaluated, SLOResult
from tests.support import free_port

SPEC = slo_spec.parse({"version": 1, "defaults": {"objectives": [
    {"name": "availability", "kind": "availability", "target": 99.9, "window": "30d"},
    {"name": "latency", "kind": "latency", "threshold": 0.5, "target": 99.0, "window": "30d"},
]}})
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")
AT = 1_800_000_000.0


def engine_row(service: str, slo: str, ratio: float | dict[str, float] | None, *, tool: str = "",
               rate: float = 10.0, versions=("v1",)) -> dict:
    """An SLO result as the engine computes it: `ratio` is the bad share of valid events in
    every window (or per window); None for no traffic at all."""
    objective = next(o for o in SPEC.objectives_for(service) if o.name == slo)
    tiers = plan(SPEC).tiers[int(objective.window_seconds)]
    ratios = ratio if isinstance(ratio, dict) else dict.fromkeys(WINDOWS, ratio)
    windows = {int(durations.parse(w)): (rate, rate * r) for w, r in ratios.items() if r is not None}
    return assess(Instance(service, tool, objective), windows, tiers, SPEC.alerting.min_events,
                  versions=versions).to_json()


def api_slos(rows: list[dict], stale: bool = False) -> list[Evaluated[SLOResult]]:
    """`rows` as the source reads GET /api/v1/slos's answer."""
    snapshot = Snapshot(tick_id=1, evaluated_at=AT, slos=rows, tools=[], meta={})
    return typed(json.loads(json.dumps(answers.jsonable(answers.slo_items(snapshot, stale, AT + 5)[0]))),
                 SLOResult.from_json)


def judged(service: str, errors: tuple[int, int]) -> CanaryDecision:
    """A canary decision of the real judge: v2 against v1, 10% of the traffic."""
    d = judge(Comparison(service=service, baseline="v1", canary="v2",
                         overall=(Counts(20_000, errors[0]), Counts(2_000, errors[1]))))
    return CanaryDecision(service=service, baseline="v1", canary="v2", verdict=d.verdict, score=d.score,
                          reason=d.reason, metrics=d.metrics, window="2h", canary_age_seconds=7200.0)


def decision(service: str, errors: tuple[int, int]) -> Evaluated[CanaryDecision]:
    """`judged` as the source reads GET /api/v1/canaries's answer."""
    body = answers.canary_items([Evaluated(judged(service, errors), AT)], False)
    return typed(json.loads(json.dumps(answers.jsonable(body))), CanaryDecision.from_json)[0]


# 99.9% availability: a 0.1% budget; 99% latency: a 1% budget
WARNING_RATIOS = {"5m": 0.001, "30m": 0.001, "1h": 0.001, "2h": 0.004, "6h": 0.001, "1d": 0.004, "3d": 0.001,
                  "30d": 0.0005}  # 4x over 1d and 2h: ticket-fast fires, nothing pages


@pytest.fixture(scope="module")
def slos() -> list[dict]:
    return api_slos([
        engine_row("checkout", "availability", 0.02),  # 20x everywhere: pages, budget overspent
        engine_row("checkout", "latency", 0.005),  # half the budget: ok
        engine_row("checkout", "availability", 0.0001, tool="pay"),  # 0.1x: ok
        engine_row("billing", "availability", WARNING_RATIOS),
        engine_row("billing", "latency", 0.0),
        engine_row("idle", "availability", None),  # no traffic: no_data
        engine_row("idle", "latency", None),
    ])


@pytest.fixture(scope="module")
def canaries() -> list[Evaluated[CanaryDecision]]:
    return [decision("checkout", (20, 60))]  # 3% errors against 0.1%: roll back


def names(rows: list[dict]) -> list[tuple[str, str, str]]:
    return [r["name"] for r in rows]


# --- the rows as the engine made them -----------------------------------------------------


def test_the_fixture_rows_have_the_statuses_the_engine_gives_them(slos):
    status = {(s.result.service, s.result.tool, s.result.slo): s.result.status for s in slos}
    assert status == {("checkout", None, "availability"): "critical", ("checkout", None, "latency"): "ok",
                      ("checkout", "pay", "availability"): "ok", ("billing", None, "availability"): "warning",
                      ("billing", None, "latency"): "ok", ("idle", None, "availability"): "no_data",
                      ("idle", None, "latency"): "no_data"}


# --- sort, filter, page --------------------------------------------------------------------


def test_the_default_sort_is_the_worst_budget_first_with_no_data_last(slos, canaries):
    rows = sort_rows(build_rows(slos, canaries))
    assert names(rows) == [("checkout", "", "availability"),  # -1900% left
                           ("billing", "", "availability"),  # 50%
                           ("checkout", "", "latency"),  # 50%, ties by name
                           ("checkout", "pay", "availability"),  # 90%
                           ("billing", "", "latency"),  # 100%
                           ("idle", "", "availability"), ("idle", "", "latency")]
    best_first = sort_rows(build_rows(slos, canaries), "budget", reverse=True)
    assert names(best_first)[0] == ("billing", "", "latency")
    assert names(best_first)[-2:] == [("idle", "", "availability"), ("idle", "", "latency")]  # still last


def test_the_other_sorts(slos):
    rows = build_rows(slos)
    assert [r["item"].status for r in sort_rows(rows, "status")] == \
        ["critical", "warning", "no_data", "no_data", "ok", "ok", "ok"]
    assert names(sort_rows(rows, "sli"))[:2] == [("checkout", "", "availability"), ("checkout", "", "latency")]
    # over the last hour: checkout burns at 20x, billing at 1x, checkout's latency at 0.5x
    assert names(sort_rows(rows, "burn"))[:3] == [("checkout", "", "availability"), ("billing", "", "availability"),
                                                  ("checkout", "", "latency")]
    assert names(sort_rows(rows, "name"))[:3] == [("billing", "", "availability"), ("billing", "", "latency"),
                                                  ("checkout", "", "availability")]
    # at this hour's burn, billing's availability lasts 15 days; checkout's is already spent
    assert names(sort_rows(rows, "exhaustion"))[:2] == [("checkout", "", "availability"),
                                                        ("billing", "", "availability")]


def test_the_text_filter_matches_every_word_in_any_field_and_any_case(slos, canaries):
    rows = build_rows(slos, canaries)
    assert names(filter_rows(rows, "CHECKOUT pay")) == [("checkout", "pay", "availability")]
    assert {r["name"][0] for r in filter_rows(rows, "rollback")} == {"checkout"}  # the canary's verdict
    assert names(filter_rows(rows, "page-fast")) == [("checkout", "", "availability")]  # a firing tier
    assert names(filter_rows(rows, "ticket-fast")) == [("checkout", "", "availability"),
                                                       ("billing", "", "availability")]
    assert filter_rows(rows, "nothing-like-this") == []
    assert len(filter_rows(rows, "  ")) == len(rows)


def test_the_status_filter_keeps_any_of_the_statuses(slos):
    rows = build_rows(slos)
    assert names(filter_rows(rows, statuses=["critical", "warning"])) == [("checkout", "", "availability"),
                                                                          ("billing", "", "availability")]
    assert names(filter_rows(rows, "latency", ["no_data"])) == [("idle", "", "latency")]


def test_pages_are_clamped_to_what_exists():
    rows = [{"n": i} for i in range(120)]
    assert page_of(rows, 1, 50)[1:] == (1, 3)
    visible, page_number, pages = page_of(rows, 9, 50)
    assert (page_number, pages) == (3, 3) and [r["n"] for r in visible] == list(range(100, 120))
    assert page_of([], 4, 50) == ([], 1, 1)


def test_a_view_follows_the_lists_it_is_given(slos, canaries):
    state = ViewState()
    first = overview.view(slos, canaries, state)
    assert overview.view(slos, canaries, state) == first  # the same lists: the prepared rows again
    fewer = overview.view(slos[:2], [], state)  # other lists (the next evaluation): new rows
    assert (fewer.total, first.total) == (2, len(slos))
    assert [r["canaries"] for r in fewer.rows] == [[], []]


# --- burn rates over the tiers' thresholds ----------------------------------------------------


def test_the_burn_columns_are_the_tier_windows_shortest_first(slos):
    assert burn_windows(build_rows(slos)) == ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]


def test_a_burn_rate_over_a_page_tier_is_a_page_cell(slos):
    item = next(s.result for s in slos if s.result.key == ("checkout", "", "availability"))
    cells = {c["window"]: c for c in burn_cells(item, ["5m", "1h", "3d"])}
    assert cells["1h"]["text"] == "20.0x"
    assert cells["1h"]["level"] == "page" and cells["1h"]["firing"]
    assert cells["1h"]["over"] == ["page-fast"]  # page-fast is the only tier that uses 1h
    assert cells["5m"]["over"] == ["page-fast"]
    assert cells["3d"]["level"] == "ticket" and cells["3d"]["over"] == ["ticket-slow"]
    assert "page-fast: over 14.4x (1h and 5m), firing" in cells["1h"]["title"]


def test_only_the_windows_over_a_threshold_are_highlighted(slos):
    item = next(s.result for s in slos if s.result.key == ("billing", "", "availability"))
    cells = {c["window"]: c for c in burn_cells(item, ["5m", "30m", "1h", "2h", "6h", "1d", "3d"])}
    assert {w for w, c in cells.items() if c["level"]} == {"2h", "1d"}  # 4x over ticket-fast's 3x
    assert cells["2h"]["level"] == "ticket" and cells["2h"]["firing"]
    assert cells["6h"]["level"] is None and cells["6h"]["text"] == "1.00x"  # ticket-slow needs more than 1x
    ok = next(s.result for s in slos if s.result.key == ("billing", "", "latency"))
    assert not any(c["level"] for c in burn_cells(ok, ["5m", "1h"]))


# --- numbers as text ----------------------------------------------------------------------------


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (45, "45s"), (90, "1m 30s"), (3600, "1h"),
                                           (3 * 3600 + 12 * 60 + 20, "3h 12m"), (2 * 86400 + 4 * 3600, "2d 4h"),
                                           (15 * 86400, "15d")])
def test_durations(seconds, text):
    assert fmt_duration(seconds) == text


def test_time_to_exhaustion():
    assert fmt_exhaustion(11_520, "warning") == "3h 12m"
    assert fmt_exhaustion(None, "ok") == "never"  # the engine's None: no burn this hour
    assert fmt_exhaustion(0.0, "exhausted") == "exhausted"
    assert fmt_exhaustion(None, "no_data") == "—"  # unknown, not never


def test_percentages_and_burn_rates():
    assert fmt_objective(0.999) == "99.9%" and fmt_objective(0.9995) == "99.95%" and fmt_objective(0.99) == "99%"
    assert fmt_sli(0.9980476608093802) == "99.804%"
    assert fmt_sli(0.9999996) == "99.999%"  # short of 100% never reads 100%
    assert fmt_sli(1.0) == "100%" and fmt_sli(None) == "—"
    assert fmt_budget(-0.9523391906200203) == "-95.2%" and fmt_budget(0.5) == "50.0%" and fmt_budget(None) == "—"
    assert (fmt_burn(0.5238), fmt_burn(14.4), fmt_burn(1250.3), fmt_burn(None)) == ("0.52x", "14.4x", "1,250x", "—")


def test_a_formatted_row(slos, canaries):
    rows = sort_rows(build_rows(slos, canaries))
    windows = burn_windows(rows)
    r = overview.format_row(rows[0], windows)
    assert (r["service"], r["status"], r["objective"], r["window"], r["sli"]) == \
        ("checkout", "critical", "99.9%", "30d", "98%")
    assert r["budget"] == {"text": "-1900.0%", "value": pytest.approx(-19.0), "fill": 0.0}
    assert r["exhaustion"] == "exhausted"
    assert r["firing"] == ["page-fast", "page-slow", "ticket-fast", "ticket-slow"]
    assert [c["verdict"] for c in r["canaries"]] == ["rollback"] and r["canaries"][0]["text"] == "v2: rollback (0)"
    latency = overview.format_row(next(x for x in rows if x["name"] == ("checkout", "", "latency")), windows)
    assert latency["threshold"] == "500 ms" and latency["budget"]["fill"] == pytest.approx(0.5)
    assert latency["exhaustion"] == "30d"  # half the budget left, burning at 0.5x


# --- the page state in the URL --------------------------------------------------------------


def test_the_view_state_round_trips_through_the_query_string():
    state = ViewState(q="checkout pay", statuses=("critical", "warning"), sort="sli", reverse=True, page=3)
    search = merge_search("?range=7d", state.query())
    assert parse_search(search)["range"] == "7d"  # the shell's keys stay
    assert ViewState.from_query(parse_search(search)) == state
    assert ViewState.from_data(state.data()) == state


def test_defaults_stay_out_of_the_url_and_junk_is_ignored():
    assert merge_search("?range=7d&q=old&page=4", ViewState().query()) == "?range=7d"
    assert merge_search("", ViewState().query()) == ""
    junk = ViewState.from_query({"sort": "-bogus", "status": "critical,nope", "page": "x", "q": "  fs "})
    assert junk == ViewState(q="fs", statuses=("critical",))
    repeated = ViewState.from_query({"status": ["warning", "critical"], "q": ["a", "b"], "page": ["2", "3"]})
    assert repeated == ViewState(q="b", statuses=("critical", "warning"), page=3)  # statuses worst first


# --- the callbacks, as plain functions ------------------------------------------------------------


class FakeSource:
    description = "the engine at http://engine.test:8080"

    def __init__(self, slos=(), canaries=(), status=None):
        self._slos, self._canaries = slos, canaries
        self._status = status or Status("2027-01-15T08:00:00Z", 12.0, False, None, None, time.monotonic())

    def slos(self):
        return self._slos if isinstance(self._slos, SourceError) else list(self._slos)

    def canaries(self):
        return self._canaries if isinstance(self._canaries, SourceError) else list(self._canaries)

    def status(self):
        return self._status


def texts(component) -> str:
    """Every string in a component tree, and its title attributes, as one string."""
    return json.dumps(component.to_plotly_json() if hasattr(component, "to_plotly_json") else component,
                      default=lambda c: c.to_plotly_json())


def body_rows(rendered: page.Rendered) -> list:
    tables = [b for b in rendered.body if getattr(b, "className", None) == "overview"]
    return tables[0].children[1].children if tables else []


def test_render_shows_a_page_of_rows_worst_first(slos, canaries):
    rendered = page.render(FakeSource(slos, canaries), ViewState().data())
    rows = body_rows(rendered)
    assert len(rows) == len(slos)
    assert "checkout" in texts(rows[0]) and "critical" in texts(rows[0]) and "rollback" in texts(rows[0])
    assert rendered.page_label == "page 1 of 1" and rendered.prev_disabled and rendered.next_disabled
    summary = texts(rendered.summary)
    assert "7 SLOs" in summary and "1 critical" in summary and "2 no data" in summary


def test_render_pages_through_many_services():
    many = api_slos([engine_row(f"svc-{i:03d}", "availability", 0.0005) for i in range(120)])
    source = FakeSource(many)
    rendered = page.render(source, ViewState(page=3).data())
    assert len(body_rows(rendered)) == 20 and rendered.page_label == "page 3 of 3" and rendered.pages == 3
    assert not rendered.prev_disabled and rendered.next_disabled
    state = page.next_state("overview-next", ViewState(page=3).data(), "", [], "budget", [], rendered.pages)
    assert state["page"] == 3  # clamped to the last page
    state = page.next_state("overview-prev", ViewState(page=3).data(), "", [], "budget", [], 3)
    assert state["page"] == 2
    state = page.next_state("overview-q", ViewState(page=3).data(), "svc-01", [], "budget", [], 3)
    assert state["page"] == 1 and state["q"] == "svc-01"  # a new filter starts at page 1
    filtered = page.render(source, state)
    assert len(body_rows(filtered)) == 10 and "10 match the filter" in texts(filtered.summary)


def test_render_says_when_nothing_matches(slos):
    rendered = page.render(FakeSource(slos), ViewState(q="nothing-like-this").data())
    assert body_rows(rendered) == [] and "No SLO matches this filter" in texts(rendered.body)


def test_render_says_the_engine_is_unreachable_naming_its_url():
    port = free_port()  # nothing listens there
    source = EngineSource(f"http://admin:hunter2@127.0.0.1:{port}", timeout=1.0)
    rendered = page.render(source, None)
    shown = texts(rendered.body)
    assert "The engine is unreachable" in shown and f"http://127.0.0.1:{port}" in shown
    assert "hunter2" not in shown and "admin" not in shown


def test_render_says_there_is_no_service_yet_or_no_evaluation():
    shown = texts(page.render(FakeSource([]), None).body)
    assert "No services yet" in shown
    first = Status(None, None, True, "no evaluation yet", "query to http://prom:9090 failed: cannot connect",
                   time.monotonic())
    shown = texts(page.render(FakeSource([], status=first), None).body)
    assert "No evaluation yet" in shown and "cannot connect" in shown


def test_render_says_when_no_slo_has_data():
    idle = api_slos([engine_row("idle", "availability", None), engine_row("idle", "latency", None)])
    rendered = page.render(FakeSource(idle), None)
    assert "No data yet: none of the 2 SLOs" in texts(rendered.body) and len(body_rows(rendered)) == 2


def test_render_still_shows_the_slos_when_canaries_cannot_be_read(slos):
    broken = SourceError("http", "the engine at http://engine.test:8080 answered /api/v1/canaries with HTTP 500")
    rendered = page.render(FakeSource(slos, broken), None)
    assert "Canary verdicts are not available" in texts(rendered.body) and len(body_rows(rendered)) == len(slos)


def test_links_to_service_pages_keep_the_shells_query(slos):
    rendered = page.render(FakeSource(slos), None, "?range=7d")
    assert '"href": "/services/checkout?range=7d"' in texts(rendered.body)


def test_the_shell_writes_its_controls_to_the_url_and_reads_them_back():
    search, range_, refresh, hrefs = sync_shell("range", "?q=fs", "7d", "30s")
    assert search == "?q=fs&range=7d" and range_ is no_update and refresh is no_update
    assert hrefs == ["/?range=7d", "/canaries?range=7d", "/alerts?range=7d"]
    search, range_, refresh, _ = sync_shell("url", "?range=1h&refresh=off", "24h", "30s")
    assert (search, range_, refresh) == (no_update, "1h", "off")
    assert sync_shell(None, "?range=bogus", "24h", "30s")[1:3] == (no_update, no_update)  # the defaults


def test_the_banner_says_how_old_the_data_is():
    now = time.monotonic()
    fresh = Status("2027-01-15T08:00:00Z", 12.0, False, None, None, now)
    assert banner(fresh) == ("Latest evaluation 12s ago (2027-01-15T08:00:00Z).", "banner ok")
    stale = Status("2027-01-15T08:00:00Z", 300.0, True, "the latest evaluation is stale",
                   "query to http://prom:9090 failed: cannot connect", now)
    text, kind = banner(stale)
    assert kind == "banner warn" and "is 5m old" in text and "cannot connect" in text
    text, kind = banner(SourceError("unreachable", "cannot reach the engine at http://e:8080: refused"))
    assert kind == "banner error" and "http://e:8080" in text
    assert banner(Status(None, None, True, "no evaluation yet", None, now))[0].startswith("No evaluation yet")


# --- the app ----------------------------------------------------------------------------------


def dispatch(client, app, output: str, values: dict[str, object], changed: list[str] | None = None):
    """Run a callback through Dash's HTTP protocol, as the browser does; the response's props."""
    cb = app.callback_map[output]
    outputs = [{"id": o.rsplit(".", 1)[0], "property": o.rsplit(".", 1)[1]}
               for o in output.strip(".").split("...")]
    body = {"output": output, "outputs": outputs if output.startswith("..") else outputs[0],
            "inputs": [{**i, "value": values.get(f"{i['id']}.{i['property']}")} for i in cb["inputs"]],
            "state": [{**s, "value": values.get(f"{s['id']}.{s['property']}")} for s in cb["state"]],
            "changedPropIds": changed or []}
    response = client.post("/_dash-update-component", json=body)
    assert response.status_code == 200, response.data[:500]
    return response.get_json()["response"]


ROUTER = ".._pages_content.children..._pages_store.data.."
RENDER = ("..overview-body.children...overview-summary.children...overview-page-label.children"
          "...overview-prev.disabled...overview-next.disabled...overview-pages.data..")


def test_the_app_serves_its_pages_and_healthz(slos, canaries):
    app = create_app(FakeSource(slos, canaries), prometheus_url="http://127.0.0.1:9090")
    client = app.server.test_client()
    for path in ("/", "/canaries", "/alerts", "/services/checkout"):
        assert client.get(path).status_code == 200, path
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/_dash-layout").status_code == 200

    # the router renders the overview for a permalink's query...
    routed = dispatch(client, app, ROUTER, {"_pages_location.pathname": "/",
                                            "_pages_location.search": "?q=checkout&status=critical&sort=-sli"},
                      ["_pages_location.pathname"])
    state = json.dumps(routed["_pages_content"]["children"])
    assert '"q": "checkout"' in state and '"statuses": ["critical"]' in state and '"reverse": true' in state
    # ...and the overview's callback answers with the table
    out = dispatch(client, app, RENDER, {"overview-state.data": ViewState(q="checkout").data(),
                                         "tick.n_intervals": 0, "url.search": "?q=checkout"})
    assert out["overview-page-label"]["children"] == "page 1 of 1"
    assert json.dumps(out["overview-body"]["children"]).count('"type": "Tr"') == 2 + 3  # 2 header rows


def test_no_secret_reaches_the_browser():
    port = free_port()
    app = create_app(EngineSource(f"http://admin:hunter2@127.0.0.1:{port}", timeout=1.0),
                     prometheus_url="http://prom:promsecret@127.0.0.1:9090")
    client = app.server.test_client()
    sent = [client.get(p).get_data(as_text=True) for p in ("/", "/_dash-layout", "/_dash-dependencies")]
    sent.append(json.dumps(dispatch(client, app, RENDER, {"overview-state.data": None, "tick.n_intervals": 0})))
    sent.append(json.dumps(dispatch(client, app, "..banner.children...banner.className..", {"tick.n_intervals": 0})))
    assert f"127.0.0.1:{port}" in sent[-1]  # the banner names the engine...
    for text in sent:
        assert "hunter2" not in text and "promsecret" not in text and "admin" not in text  # ...never its secrets


def test_the_gunicorn_server_is_built_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setattr(dashboard_app, "_server", None)
    monkeypatch.setenv("MCP_SLO_STORE", str(tmp_path / "engine.db"))
    for name in ("MCP_SLO_ENGINE_URL", "MCP_SLO_CONFIG", "MCP_SLO_ENGINE_INTERVAL"):
        monkeypatch.delenv(name, raising=False)
    server = dashboard_app.server  # what gunicorn 'dashboard.app:server' gets
    assert server.test_client().get("/healthz").status_code == 200
    assert dashboard_app.server is server  # built once per process
    with pytest.raises(ValueError, match="not both"):
        dashboard_app.server_from_env({"MCP_SLO_STORE": "x.db", "MCP_SLO_ENGINE_URL": "http://e:8080"})
    with pytest.raises(ValueError, match="MCP_SLO_ENGINE_URL"):
        dashboard_app.server_from_env({"MCP_SLO_ENGINE_URL": "ftp://e"})


def test_the_dashboard_command_checks_its_arguments(tmp_path, capsys):
    from dashboard import dashboard_cli

    assert cli.main(["dashboard", "--engine", "ftp://engine"]) == 2
    assert "http(s)://" in capsys.readouterr().err
    assert cli.main(["dashboard", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert cli.main(["dashboard", "--listen", "no-port"]) == 2
    with pytest.raises(SystemExit):
        cli.main(["dashboard", "--engine", "http://e:8080", "--store", "x.db"])
    parser = __import__("argparse").ArgumentParser()
    dashboard_cli.add_arguments(parser)
    app, host, port = dashboard_cli.build(parser.parse_args(["--store", str(tmp_path / "e.db"),
                                                              "--listen", "0.0.0.0:9000"]))
    assert (host, port) == ("0.0.0.0", 9000) and app.server.test_client().get("/healthz").status_code == 200

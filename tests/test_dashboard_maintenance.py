"""Maintenance windows on the service page: the engine's answer typed (both sources give the same,
a bad or refused answer is a SourceError), the shading of each occurrence on every chart (a fill
per mode, each window named once in the legend with its mode, scope and reason), the list of the
windows on now and the next planned one, and the page through Dash's protocol on a real engine
API and a real Prometheus."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, start_http_server

from collector import names
from collector.metrics import Recorder
from dashboard import maintenance_data as md
from dashboard import service_data as sd
from dashboard.app import create_app
from dashboard.pages import service as page
from dashboard.prometheus import Metrics
from dashboard.source import CachedSource, EngineSource, SourceError, StoreSource
from slo import spec
from slo.engine.api import BackgroundServer
from slo.engine.api import create_app as engine_app
from slo.engine.backend import Backend, BackendOptions
from slo.engine.scheduler import Engine
from slo.engine.store import Store
from slo.maintenance import Occurrence, rfc3339
from tests import binaries
from tests.support import free_port, wait_until
from tests.test_dashboard_overview import dispatch, texts
from tests.test_dashboard_service import (
    NOW,
    ROWS,
    SLOS,
    FakeSource,
    full_metrics,
    tr_of,
)
from tests.test_maintenance_engine import SPEC, Clock, result

HOUR = 3600.0


def occurrence(start: float, end: float, name: str = "db-upgrade", mode: str = "exclude", **extra) -> Occurrence:
    return Occurrence(start, end, name, mode, extra.pop("reason", "Postgres 17 (CHG-1234)"),
                      extra.pop("services", ("filesystem",)), **extra)


def windows(figure: dict) -> list[dict]:
    """The maintenance rects of a figure (the alerts' marks have no legend group)."""
    return [s for s in figure["layout"].get("shapes", []) if str(s.get("legendgroup", "")).startswith("maintenance")]


# --- plain functions -----------------------------------------------------------------------------


def test_every_chart_shades_each_occurrence_of_the_service_a_fill_per_mode():
    tr = tr_of("6h")
    metrics = full_metrics(tr)
    answers = {name: metrics.range(expr, tr.start, tr.end) for name, expr in sd.chart_queries("filesystem", ROWS, tr).items()}
    found = [occurrence(NOW - 5 * HOUR, NOW - 4 * HOUR, "nightly", "silence", reason="backup <b>now</b>"),
             occurrence(NOW - 2 * HOUR, NOW - HOUR, slos=("latency",), tools=("write_file",)),
             occurrence(NOW - HOUR / 2, NOW + HOUR, "unplanned-7", "silence", reason="hotfix", id=7, opened_by="ann"),
             occurrence(NOW - 5 * HOUR, NOW - 4 * HOUR, "nightly", "silence", reason="backup <b>now</b>"),
             occurrence(NOW - 3 * HOUR, NOW, "other", services=("search",))]  # another service's: not drawn
    spans = [(NOW - 3600, NOW - 3000, "page")]
    figures = sd.figures(answers, ROWS, tr, spans, service="filesystem", maintenance=found)
    for name, figure in figures.items():
        if name == "burn":  # a panel per SLO: see the next test
            continue
        shaded = windows(figure)
        assert [(s["x0"], s["x1"], s["fillcolor"]) for s in shaded] == [
            (NOW * 1000 - 5 * HOUR * 1000, NOW * 1000 - 4 * HOUR * 1000, md.MODE_COLORS["silence"]),
            (NOW * 1000 - 2 * HOUR * 1000, NOW * 1000 - HOUR * 1000, md.MODE_COLORS["exclude"]),
            (NOW * 1000 - HOUR * 500, NOW * 1000 + HOUR * 1000, md.MODE_COLORS["silence"]),
            (NOW * 1000 - 5 * HOUR * 1000, NOW * 1000 - 4 * HOUR * 1000, md.MODE_COLORS["silence"])], name
        assert all(s["yref"] == "paper" and (s["y0"], s["y1"]) == (0, 1) and s["layer"] == "below" for s in shaded)
        # a legend entry per window, naming its mode, scope and reason (escaped), and who opened a run-time one
        legend = [s["name"] for s in shaded if s["showlegend"]]
        assert legend == [
            "maintenance nightly: silence (alerts held back), filesystem: backup &lt;b&gt;now&lt;/b&gt;",
            ("maintenance db-upgrade: exclude (events left out), filesystem · tools write_file · SLOs latency: "
             "Postgres 17 (CHG-1234)"),
            "maintenance unplanned-7: silence (alerts held back), filesystem, opened by ann: hotfix"], name
        assert len([s for s in figure["layout"]["shapes"] if s.get("fillcolor") == "#c62828"]) == 2  # the page still marked
    assert figures["budget"]["layout"]["shapes"][-1]["y0"] == 0  # the exhausted line stays
    assert sd.figures({}, ROWS, tr, maintenance=found, service="filesystem")["sli"]["layout"].get("shapes") is None
    assert windows(sd.figures(answers, ROWS, tr, maintenance=found, service="analytics")["sli"]) == []


def test_the_burn_chart_shades_the_panels_of_the_slos_a_window_covers():
    tr = tr_of("6h")
    burn = [({"service": "filesystem", "slo": slo, "tool": tool, "burn_window": "1h"}, [(tr.start, 1.0)])
            for slo, tool in (("availability", ""), ("latency", ""), ("availability", "write_file"))]
    found = [occurrence(NOW - 2 * HOUR, NOW - HOUR, "latency-only", slos=("latency",)),
             occurrence(NOW - 2 * HOUR, NOW - HOUR, "tool-only", tools=("write_file",)),
             occurrence(NOW - 2 * HOUR, NOW - HOUR, "whole", "silence"),
             occurrence(NOW - 2 * HOUR, NOW - HOUR, "nothing-drawn", slos=("latency",), tools=("write_file",))]
    figure = sd.figures({"burn": burn}, ROWS, tr, service="filesystem", maintenance=found)["burn"]
    panels = [a["text"].split("</b>")[0] for a in figure["layout"]["annotations"]]
    assert panels == ["<b>availability", "<b>latency", "<b>availability · write_file"]  # on y, y2, y3
    assert [(s["legendgroup"], s["yref"], s["showlegend"]) for s in windows(figure)] == [
        ("maintenance latency-only", "y2 domain", True), ("maintenance tool-only", "y3 domain", True),
        ("maintenance whole", "y domain", True), ("maintenance whole", "y2 domain", False),
        ("maintenance whole", "y3 domain", False)]


def listing(occurrences: list[Occurrence], planned: list[dict]) -> dict:
    return {"planned": planned, "runtime": [], "occurrences": [o.to_json() for o in occurrences]}


PLANNED_NEXT = {"name": "weekly", "reason": "reindex", "mode": "silence", "services": ["filesystem"], "tools": [],
                "slos": [], "kind": "rrule", "active": False, "current": None,
                "next": {"start": rfc3339(NOW + 3 * 86400), "end": rfc3339(NOW + 3 * 86400 + HOUR)}}


def test_the_answer_is_typed_and_gives_the_windows_on_now_and_the_next_planned_one():
    on = occurrence(NOW - HOUR, NOW + HOUR, "unplanned-3", "silence", id=3, opened_by="ann", reason="hotfix")
    body = listing([occurrence(NOW - 5 * HOUR, NOW - 4 * HOUR), on], [
        PLANNED_NEXT, {**PLANNED_NEXT, "name": "later", "next": {"start": rfc3339(NOW + 9 * 86400),
                                                                "end": rfc3339(NOW + 9 * 86400 + 60)}},
        {**PLANNED_NEXT, "name": "over", "next": None}])
    m = md.from_listing(body)
    assert m.occurrences[1] == on and [o.name for o in m.upcoming] == ["weekly", "later"]
    assert md.on_now(m, "filesystem", NOW) == [on] and md.on_now(m, "search", NOW) == []
    assert md.next_planned(m, "filesystem", NOW).name == "weekly" and md.next_planned(m, "search", NOW) is None
    assert m.between(NOW, NOW + 1).occurrences == (on,)

    listed = texts(page.maintenance_list(m, "filesystem", NOW))
    assert "Now: " in listed and "unplanned-3" in listed and "opened by ann: hotfix" in listed
    assert "2027-01-15 07:00" in listed and "2027-01-15 09:00 UTC (2h)" in listed
    assert "Next planned, in 3d (2027-01-18 08:00 UTC): " in listed and "weekly" in listed and "reindex" in listed
    assert "No maintenance window of search" in texts(page.maintenance_list(m, "search", NOW))


@pytest.mark.parametrize(("body", "error"), [
    ([], "is not a JSON object with occurrences and planned lists"),
    ({"planned": [], "occurrences": [{"start": "soon"}]}, "unreadable occurrence 0: start is not an RFC 3339"),
    ({"planned": [], "occurrences": [{**occurrence(NOW, NOW + 1).to_json(), "mode": "mute"}]}, "mode is not one"),
    ({"planned": [], "occurrences": [{**occurrence(NOW, NOW + 1).to_json(), "end": rfc3339(NOW)}]}, "ends after"),
    ({"planned": [{**PLANNED_NEXT, "next": "tomorrow"}], "occurrences": []}, "unreadable planned window 0"),
])
def test_an_unusable_answer_is_refused_with_what_is_wrong(body, error):
    with pytest.raises(ValueError, match=error):
        md.from_listing(body)


def test_the_page_shades_and_lists_the_windows_and_survives_a_bad_engine_answer():
    tr = tr_of("6h")
    on = occurrence(NOW - HOUR, NOW + HOUR)
    source = FakeSource(SLOS, maintenance=md.Maintenance((on,), ()))
    r = page.render(source, full_metrics(tr), "/services/filesystem", "?range=6h", now=NOW)
    assert source.maintenance_asked == [(tr.start, NOW + page.MAINTENANCE_AHEAD)]
    assert all(len(windows(f)) == 1 for f in r.figures.values()) and "db-upgrade" in texts(r.maintenance)
    assert r.outputs()[-1] is r.maintenance

    broken = SourceError("unreachable", "the engine at http://engine.test:8080 did not answer /api/v1/maintenance "
                                        "within 5s")
    r = page.render(FakeSource(SLOS, maintenance=broken), full_metrics(tr), "/services/filesystem", "?range=6h",
                    now=NOW)
    assert "The maintenance windows cannot be read (the charts are not shaded): the engine at" in texts(r.maintenance)
    assert r.charts_style == page.CHARTS_STYLE and all(f["data"] and not windows(f) for f in r.figures.values())
    assert "write_file" in texts(r.tools)  # the rest of the page is drawn


def test_the_cache_reads_the_widest_range_once_and_cuts_it():
    class Counting:
        description = "counting"

        def __init__(self) -> None:
            self.asked: list[tuple[float, float]] = []

        def maintenance(self, since, until):
            self.asked.append((since, until))
            return md.Maintenance(tuple(occurrence(t, t + 60) for t in (since + 10, now - 1800, until - 100)), ())

    counting = Counting()
    data = CachedSource(counting, ttl=60)
    now = time.time()
    first = data.maintenance(now - 86400, now)
    second = data.maintenance(now - 3600, now + 60)
    assert len(counting.asked) == 1 and counting.asked[0][1] - counting.asked[0][0] == 32 * 86400
    assert [o.start for o in first.occurrences] == [o.start for o in second.occurrences] == [now - 1800]  # cut
    data.maintenance(now - 90 * 86400, now)  # wider than the cache's: read as asked
    assert counting.asked[-1] == (now - 90 * 86400, now)


# --- the engine's API and its store --------------------------------------------------------------


@pytest.fixture
def engine_api(tmp_path) -> Iterator[tuple[Engine, str]]:
    store = Store(tmp_path / "engine.db")
    store.write_tick(NOW - 10, [result("filesystem", "availability")], [])
    clock = Clock()
    engine = Engine(spec.parse(SPEC), Backend(BackendOptions(url=f"http://127.0.0.1:{free_port()}")), store,
                    now=clock)
    server = BackgroundServer(engine_app(engine))
    try:
        yield engine, server.url
    finally:
        server.stop()
        store.close()


def test_engine_and_store_sources_give_the_same_windows(engine_api, tmp_path):
    engine, url = engine_api
    opened = httpx.post(f"{url}/api/v1/maintenance", json={"service": "filesystem", "duration": "90m",
                                                           "reason": "hotfix"}, headers={"X-MCP-SLO-User": "ann"})
    assert opened.status_code == 201
    over_http = EngineSource(url)
    direct = StoreSource(tmp_path / "engine.db", now=engine.now, planned=engine.spec.maintenance)
    m = over_http.maintenance(NOW - 86400, NOW + 60)
    assert [(o.name, o.planned, o.mode, o.opened_by) for o in m.occurrences] == [
        ("nightly", True, "silence", None), ("planned-now", True, "exclude", None),
        (f"unplanned-{opened.json()['id']}", False, "silence", "ann")]
    assert m.occurrences[2].start == NOW and m.occurrences[2].end == NOW + 5400
    assert [o.name for o in m.upcoming] == ["planned-now", "nightly"]  # its current one, the next one
    assert direct.maintenance(NOW - 86400, NOW + 60) == m
    # without the spec, the store knows only the run-time windows
    alone = StoreSource(tmp_path / "engine.db", now=engine.now).maintenance(NOW - 86400, NOW + 60)
    assert [o.planned for o in alone.occurrences] == [False] and alone.upcoming == ()
    # a range the engine refuses, and an engine that is not there, are errors to show
    refused = over_http.maintenance(NOW - 100 * 86400, NOW)
    assert isinstance(refused, SourceError) and refused.message.startswith(
        f"the engine at {url} refused /api/v1/maintenance: since to until is 100d: at most 90d")
    assert isinstance(direct.maintenance(NOW - 100 * 86400, NOW), SourceError)
    gone = EngineSource(f"http://127.0.0.1:{free_port()}").maintenance(NOW - 60, NOW)
    assert isinstance(gone, SourceError) and gone.kind == "unreachable"
    over_http.close()
    direct.close()


def test_an_engine_answer_that_is_not_the_engines_is_a_source_error():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"planned": [], "occurrences": [{"start": "x"}]})

    source = EngineSource("http://engine.test:8080", transport=httpx.MockTransport(handler))
    error = source.maintenance(NOW - 60, NOW)
    assert isinstance(error, SourceError) and error.kind == "bad_response"
    assert "to /api/v1/maintenance has an unreadable occurrence 0" in error.message

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    late = EngineSource("http://engine.test:8080", transport=httpx.MockTransport(slow)).maintenance(NOW - 60, NOW)
    assert isinstance(late, SourceError) and late.message == (
        "the engine at http://engine.test:8080 did not answer /api/v1/maintenance within 5s")


# --- the page on a real engine and a real Prometheus ------------------------------------------


@pytest.fixture
def exporter() -> Iterator[str]:
    """The filesystem service's tools/call metrics, as mcp-slo's exporter writes them."""
    registry = CollectorRegistry()
    recorder = Recorder("filesystem", "v1", registry=registry)
    for _ in range(20):
        recorder.end("tools/call", "read_file", names.SUCCESS, recorder.begin() - 0.01)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.mark.integration
def test_the_service_page_shades_the_engines_windows_on_its_charts(tmp_path, exporter):
    """The real engine API (a planned window on now, for the latency SLO, and a run-time one
    opened through the API), the real dashboard app and a real Prometheus scraping the service:
    the page, through Dash's protocol, shades both on its request chart and lists them."""
    now = time.time()
    windows_spec = {**SPEC, "maintenance": [
        {"name": "disk-swap", "reason": "disk swap (CHG-9)", "mode": "exclude", "services": ["filesystem"],
         "slos": ["latency"], "start": rfc3339(now - 1800), "end": rfc3339(now + 1800)},
        {"name": "elsewhere", "reason": "x", "services": ["search"], "start": rfc3339(now - 1800),
         "end": rfc3339(now + 1800)}]}
    store = Store(tmp_path / "engine.db")
    store.write_tick(now, [result("filesystem", "availability")], [])
    engine = Engine(spec.parse(windows_spec), Backend(BackendOptions(url=f"http://127.0.0.1:{free_port()}")), store)
    api = BackgroundServer(engine_app(engine))
    try:
        opened = httpx.post(f"{api.url}/api/v1/maintenance", json={"service": "filesystem", "tools": ["write_file"],
                                                                   "duration": "1h", "reason": "hotfix"},
                            headers={"X-MCP-SLO-User": "ann"}, timeout=5)
        assert opened.status_code == 201, opened.text
        with binaries.prometheus([exporter]) as prometheus_url:
            metrics = Metrics(prometheus_url, ttl=0.0)
            app = create_app(EngineSource(api.url), metrics=metrics, ttl=0.0)
            client = app.server.test_client()
            output = next(o for o in app.callback_map if "service-header.children" in o)

            def requests_drawn() -> dict | None:
                out = dispatch(client, app, output, {"url.pathname": "/services/filesystem", "url.search": "?range=1h",
                                                     "tick.n_intervals": 1})
                return out if out["service-requests"]["figure"]["data"] else None

            # the chart's range ends at its last whole step (15 s): wait for a scrape before it
            out = wait_until(requests_drawn, timeout=60, interval=0.5, what="the request chart drawn")
            shaded = windows(out["service-requests"]["figure"])
            assert [(s["fillcolor"], s["showlegend"]) for s in shaded] == [
                (md.MODE_COLORS["exclude"], True), (md.MODE_COLORS["silence"], True)]
            assert shaded[0]["name"].startswith("maintenance disk-swap: exclude (events left out), filesystem · "
                                                "SLOs latency: disk swap (CHG-9)")
            assert shaded[1]["name"] == (f"maintenance unplanned-{opened.json()['id']}: silence (alerts held back), "
                                         "filesystem · tools write_file, opened by ann: hotfix")
            assert shaded[0]["x0"] == pytest.approx((now - 1800) * 1000, abs=1000)
            listed = texts(out["service-maintenance"]["children"])
            assert "disk-swap" in listed and "hotfix" in listed and "elsewhere" not in listed
            metrics.close()
    finally:
        api.stop()
        store.close()

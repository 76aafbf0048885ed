"""Where the dashboard's data comes from: the engine's API over real HTTP (a real Engine and
Store behind slo.engine.api, served by uvicorn) and the same store read directly; both must give the
same answers. What goes wrong comes back as a SourceError naming the engine (without its
credentials) or the store; reads are shared through a TTL cache."""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from dashboard.source import CachedSource, EngineSource, SourceError, Status, StoreSource, TTLCache, typed
from slo.engine import answers
from slo.engine.api import BackgroundServer, create_app
from slo.engine.backend import Backend, BackendOptions
from slo.engine.scheduler import Engine
from slo.engine.store import Snapshot, Store
from slo.results import CanaryDecision, Evaluated, SLOResult
from tests.support import free_port
from tests.test_dashboard_overview import SPEC, WARNING_RATIOS, engine_row, judged

AT = 1_800_000_000.0
INTERVAL = 30.0  # stale after 2 x 30 s + a 24 s timeout = 84 s


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def rows() -> list[dict]:
    out = [engine_row("checkout", "availability", 0.02), engine_row("checkout", "latency", 0.005),
           engine_row("billing", "availability", WARNING_RATIOS), engine_row("idle", "availability", None)]
    out[1]["sli_windows"]["5m"] = math.nan  # the store keeps NaN; both sources must answer null
    return out


def canary() -> CanaryDecision:
    return judged("checkout", (20, 60))


@pytest.fixture
def engine_api(tmp_path) -> Iterator[tuple[Engine, Clock, str]]:
    """An engine (never ticking: its snapshot is written directly) serving its API over HTTP."""
    clock = Clock(AT + 10)
    store = Store(tmp_path / "engine.db")
    store.write_tick(AT - 30, [engine_row("old", "availability", 0.0)], [], {})  # an older tick: not served
    store.write_tick(AT, rows(), [], {"queries": 4})
    store.write_canary(AT - 30, replace(canary(), verdict="inconclusive"))  # older: history
    store.write_canary(AT - 30, replace(canary(), service="billing"))  # a canary gone since: not served
    store.write_canary(AT, canary())
    engine = Engine(SPEC, Backend(BackendOptions(url=f"http://127.0.0.1:{free_port()}")), store,
                    interval=INTERVAL, now=clock)
    server = BackgroundServer(create_app(engine))
    try:
        yield engine, clock, server.url
    finally:
        server.stop()
        store.close()


def test_engine_and_store_sources_answer_the_same(engine_api, tmp_path):
    engine, clock, url = engine_api
    over_http = EngineSource(url)
    direct = StoreSource(tmp_path / "engine.db", interval=INTERVAL, now=clock)
    slos = over_http.slos()
    assert [(s.result.service, s.result.slo, s.result.status) for s in slos] == [
        ("checkout", "availability", "critical"), ("checkout", "latency", "ok"),
        ("billing", "availability", "warning"), ("idle", "availability", "no_data")]
    assert slos[1].result.sli_windows["5m"] is None  # NaN in the store, null in JSON
    assert slos[0].result == SLOResult.from_json(rows()[0])  # typed as the engine made it
    assert (slos[0].evaluated_at, slos[0].stale) == (AT, False)
    assert direct.slos() == slos
    canaries = over_http.canaries()
    assert [(c.result.service, c.result.verdict, c.evaluated_at) for c in canaries] == [
        ("checkout", "rollback", AT)]  # the latest tick's
    assert canaries[0].result.to_json() == answers.jsonable(canary().to_json())  # with its evidence
    assert direct.canaries() == canaries
    for status in (over_http.status(), direct.status()):
        assert (status.evaluated_at, status.stale, status.reason) == ("2027-01-15T08:00:00Z", False, None)
        assert status.age_seconds == pytest.approx(10.0)


def test_engine_and_store_sources_give_the_same_canary_log(engine_api, tmp_path):
    engine, clock, url = engine_api
    engine.store.write_canary(AT - 10, replace(canary(), service="team/checkout"))  # a slash in the name
    over_http = EngineSource(url)
    direct = StoreSource(tmp_path / "engine.db", interval=INTERVAL, now=clock)
    log = over_http.canary_history("checkout")
    assert [(d.evaluated_at, d.result.verdict) for d in log] == [(AT - 30, "inconclusive"), (AT, "rollback")]
    assert log[1].result.score == canary().score and log[1].result.reason == canary().reason
    assert all(d.result.metrics == () and not d.stale for d in log)  # the log without the evidence
    assert direct.canary_history("checkout") == log
    assert over_http.canary_history("checkout", since=AT) == direct.canary_history("checkout", since=AT) == log[1:]
    assert [d.result.service for d in over_http.canary_history("team/checkout")] == ["team/checkout"]
    assert over_http.canary_history("nobody") == direct.canary_history("nobody") == []
    # a time from an answer (to the microsecond, rounded up here), passed back as since, finds its decision
    engine.store.write_canary(AT + 0.1234567, replace(canary(), service="rounded"))
    shown = httpx.get(f"{url}/api/v1/canaries/rounded/history").json()[0]["evaluated_at"]
    assert shown == "2027-01-15T08:00:00.123457Z" and answers.parse_time(shown) > AT + 0.1234567
    assert over_http.canary_history("rounded")[0].evaluated_at == answers.parse_time(shown)
    assert len(httpx.get(f"{url}/api/v1/canaries/rounded/history", params={"since": shown}).json()) == 1
    assert len(over_http.canary_history("rounded", since=AT + 0.1234567)) == 1
    down = EngineSource(f"http://127.0.0.1:{free_port()}", timeout=1.0).canary_history("checkout")
    assert isinstance(down, SourceError) and down.kind == "unreachable"
    assert StoreSource(tmp_path / "missing.db").canary_history("checkout").kind == "store"


def test_a_cached_source_reads_a_canary_log_once_per_evaluation_and_cuts_it_at_since():
    requests, engine_state = [], {"evaluated_at": "2027-01-15T08:00:00Z"}
    log = answers.canary_history_items([Evaluated(replace(canary(), verdict=v), AT - hours * 3600)
                                        for v, hours in (("inconclusive", 2), ("inconclusive", 1), ("rollback", 0))],
                                       evidence=False)

    def engine(request):
        requests.append((request.url.path, dict(request.url.params)))
        if request.url.path == "/readyz":
            return httpx.Response(200, json={"ready": True, "evaluated_at": engine_state["evaluated_at"],
                                             "stale": False, "age_seconds": 3.0})
        return httpx.Response(200, json=log)

    clock = Clock(0.0)
    data = CachedSource(EngineSource("http://engine.test:8080", transport=mock(engine)), cache=TTLCache(5.0, clock))
    typed_log = typed(log, CanaryDecision.from_json)
    seven = AT - 3600  # 07:00
    assert data.canary_history("checkout", since=seven) == typed_log[1:]
    assert data.canary_history("checkout", since=seven + 1) == typed_log[2:]
    assert data.canary_history("checkout") == typed_log
    assert requests == [("/readyz", {}), ("/api/v1/canaries/checkout/history", {"evidence": "false"})]
    clock.now = 6.0  # past the TTL, the same evaluation: only the status is asked
    assert data.canary_history("checkout", since=seven + 60) == typed_log[2:]
    assert requests[2:] == [("/readyz", {})]
    engine_state["evaluated_at"] = "2027-01-15T08:00:30Z"
    clock.now = 12.0
    data.canary_history("checkout")
    assert [path for path, _ in requests[3:]] == ["/readyz", "/api/v1/canaries/checkout/history"]


def test_an_unreadable_row_is_a_one_line_error_from_the_api_and_both_sources(engine_api, tmp_path):
    """A row the engine did not write (a damaged file, another tool): the API answers 500 with
    a one-line JSON error naming the row, never a traceback; each source gives a SourceError."""
    engine, clock, url = engine_api
    with sqlite3.connect(tmp_path / "engine.db") as db:
        db.execute("UPDATE canary_decisions SET body = '{\"service\": \"checkout\"}' WHERE evaluated_at = ?", (AT,))
        db.execute("UPDATE slo_results SET body = '{\"service\": \"checkout\", \"status\": \"fine\"}'"
                   " WHERE tick_id = 2 AND slo = 'latency'")
    over_http, direct = EngineSource(url), StoreSource(tmp_path / "engine.db", interval=INTERVAL, now=clock)
    for path, says in [("/api/v1/canaries", "canary decision row 3 is not readable: score is not a number"),
                       ("/api/v1/gate/checkout", "canary decision row 3 is not readable"),
                       ("/api/v1/slos", "tick 2: SLO result 1 is not readable: status 'fine'"),
                       ("/metrics", "tick 2: SLO result 1 is not readable")]:
        answer = httpx.get(url + path)
        assert answer.status_code == 500 and answer.headers["content-type"] == "application/json", path
        assert says in answer.json()["error"] and "\n" not in answer.text, answer.text
    assert httpx.get(f"{url}/api/v1/canaries/checkout/history").status_code == 500
    assert httpx.get(f"{url}/readyz").status_code == 200  # the engine itself is still up
    for error in (over_http.canaries(), over_http.slos()):
        assert error.kind == "http" and "HTTP 500" in error.message
    for error, says in ((direct.canaries(), "canary decision row 3"), (direct.slos(), "tick 2: SLO result 1")):
        assert error.kind == "store" and says in error.message and str(tmp_path) in error.message


def test_both_sources_mark_the_same_snapshot_stale(engine_api, tmp_path):
    engine, clock, url = engine_api
    clock.now = AT + 85  # two missed ticks
    over_http = EngineSource(url).status()
    direct = StoreSource(tmp_path / "engine.db", interval=INTERVAL, now=clock).status()
    for status in (over_http, direct):
        assert status.stale and status.reason == "the latest evaluation is stale"
        assert status.age_seconds == pytest.approx(85.0)
    assert all(s.stale for s in EngineSource(url).slos())


def test_an_empty_store_has_no_evaluation_yet(tmp_path):
    store = Store(tmp_path / "empty.db")
    engine = Engine(SPEC, Backend(BackendOptions(url=f"http://127.0.0.1:{free_port()}")), store, interval=INTERVAL)
    engine.health.last_error = "query to http://prometheus:9090 failed: cannot connect"
    server = BackgroundServer(create_app(engine))
    try:
        over_http = EngineSource(server.url)
        assert over_http.slos() == [] and over_http.canaries() == []
        status = over_http.status()  # /readyz answers 503: still an answer
        assert (status.evaluated_at, status.stale, status.reason) == (None, True, "no evaluation yet")
        assert status.last_error == "query to http://prometheus:9090 failed: cannot connect"
        direct = StoreSource(tmp_path / "empty.db")
        assert direct.slos() == [] and direct.status().reason == "no evaluation yet"
    finally:
        server.stop()
        store.close()


def test_an_unreachable_engine_is_an_error_naming_it_without_credentials():
    port = free_port()
    source = EngineSource(f"http://admin:hunter2@127.0.0.1:{port}/", timeout=1.0)
    assert source.url == f"http://127.0.0.1:{port}"
    for result in (source.slos(), source.canaries(), source.canary_history("fs"), source.status()):
        assert isinstance(result, SourceError) and result.kind == "unreachable"
        assert f"http://127.0.0.1:{port}" in result.message and "hunter2" not in result.message


def mock(handler) -> httpx.MockTransport:
    return httpx.MockTransport(handler)


def test_answers_that_are_not_json_or_not_lists_are_errors():
    html = EngineSource("http://engine.test:8080", transport=mock(
        lambda request: httpx.Response(200, text="<html>a proxy's login page</html>",
                                       headers={"content-type": "text/html"})))
    error = html.slos()
    assert error == SourceError("bad_response", "the answer of the engine at http://engine.test:8080 to "
                                                "/api/v1/slos is not JSON (text/html)")
    wrong = EngineSource("http://engine.test:8080", transport=mock(lambda request: httpx.Response(200, json={"a": 1})))
    assert wrong.slos().kind == "bad_response" and "not a JSON list of objects" in wrong.slos().message
    assert wrong.status().evaluated_at is None  # an object: read as a readiness answer


def test_an_answer_that_is_not_the_engines_results_is_an_error_saying_what_is_wrong():
    """A partial SLO, a decision with a bad field, a result without its time: a one-line
    SourceError naming the item, never a KeyError in a page."""
    good = api_slos()[0]
    for body, says in [([{"service": "checkout", "slo": "availability"}], "unreadable item 0: status is not a string"),
                       ([good, {**good, "sli": "high"}], "unreadable item 1: sli is not a number: 'high'"),
                       ([{k: v for k, v in good.items() if k != "evaluated_at"}], "evaluated_at is not a time"),
                       ([{**good, "evaluated_at": "noon"}], "not RFC 3339 or unix seconds: 'noon'"),
                       ([{**good, "stale": "no"}], "stale is not true or false: 'no'")]:
        source = EngineSource("http://engine.test:8080", transport=mock(lambda r: httpx.Response(200, json=body)))
        error = source.slos()
        assert error.kind == "bad_response" and says in error.message, error
        assert error.message.startswith("the answer of the engine at http://engine.test:8080 to /api/v1/slos ")
        assert "\n" not in error.message
    decision = {**answers.canary_items([Evaluated(canary(), AT)], False)[0], "score": None}
    source = EngineSource("http://engine.test:8080", transport=mock(lambda r: httpx.Response(200, json=[decision])))
    assert "unreadable item 0: score is not a number: None" in source.canaries().message


def api_slos(stale: bool = False) -> list[dict]:
    """rows() as GET /api/v1/slos answers them (JSON)."""
    snapshot = Snapshot(tick_id=1, evaluated_at=AT, slos=rows(), tools=[], meta={})
    return json.loads(json.dumps(answers.jsonable(answers.slo_items(snapshot, stale, AT + 3)[0])))
    failing = EngineSource("http://engine.test:8080", transport=mock(lambda request: httpx.Response(500)))
    assert failing.canaries() == SourceError("http", "the engine at http://engine.test:8080 answered "
                                                     "/api/v1/canaries with HTTP 500")


def test_a_slow_engine_is_cut_at_the_timeout():
    def slow(request):
        raise httpx.ReadTimeout("timed out", request=request)

    error = EngineSource("http://engine.test:8080", timeout=0.5, transport=mock(slow)).slos()
    assert error == SourceError("unreachable", "the engine at http://engine.test:8080 did not answer "
                                               "/api/v1/slos within 0.5s")


def test_credentials_in_the_url_are_sent_as_basic_auth():
    seen = []
    source = EngineSource("https://dash:p%40ss@engine.test", transport=mock(
        lambda request: seen.append(request.headers.get("authorization")) or httpx.Response(200, json=[])))
    assert source.slos() == [] and seen == ["Basic ZGFzaDpwQHNz"]  # dash:p@ss
    assert source.description == "the engine at https://engine.test"
    with pytest.raises(ValueError, match="http"):
        EngineSource("engine.test:8080")
    with pytest.raises(ValueError, match="query string"):
        EngineSource("http://engine.test:8080/?token=x")


def test_a_missing_or_broken_store_is_an_error_and_never_created(tmp_path):
    missing = tmp_path / "nope.db"
    error = StoreSource(missing).slos()
    assert error.kind == "store" and str(missing) in error.message
    assert not missing.exists()
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a database" * 100)
    error = StoreSource(broken).status()
    assert isinstance(error, SourceError) and error.kind == "store" and str(broken) in error.message


# --- the cache shared by callbacks -------------------------------------------------------------


def test_the_cache_computes_once_per_ttl_errors_included():
    clock = Clock(0.0)
    cache = TTLCache(ttl=5.0, clock=clock)
    calls = []

    def compute():
        calls.append(clock.now)
        return SourceError("unreachable", "down")

    assert cache.get("slos", compute) is cache.get("slos", compute)
    clock.now = 4.9
    cache.get("slos", compute)
    assert calls == [0.0]
    clock.now = 5.0
    cache.get("slos", compute)
    assert calls == [0.0, 5.0]
    cache.get("other", compute)
    assert len(calls) == 3  # one value per key


def test_concurrent_callers_wait_for_one_computation():
    cache = TTLCache(ttl=60.0)
    calls = []
    started = threading.Event()

    def slow():
        calls.append(1)
        started.set()
        time.sleep(0.2)
        return ["answer"]

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("slos", slow))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and results == [["answer"]] * 8


def test_a_cached_source_reads_the_big_answers_once_per_evaluation():
    requests, engine_state = [], {"evaluated_at": "2027-01-15T08:00:00Z", "up": True}

    def engine(request):
        requests.append(request.url.path)
        if not engine_state["up"]:
            return httpx.Response(502)
        if request.url.path == "/readyz":
            return httpx.Response(200, json={"ready": True, "evaluated_at": engine_state["evaluated_at"],
                                             "stale": False, "age_seconds": 3.0})
        return httpx.Response(200, json=api_slos())

    clock = Clock(0.0)
    data = CachedSource(EngineSource("http://engine.test:8080", transport=mock(engine)),
                        cache=TTLCache(5.0, clock))
    assert data.slos() is data.slos() and data.slos() == typed(api_slos(), SLOResult.from_json)
    assert requests == ["/readyz", "/api/v1/slos"]  # shared by every callback within the TTL
    status = data.status()
    assert isinstance(status, Status) and status.age(now=status.read_at + 10) == pytest.approx(13.0)

    clock.now = 6.0  # the cache expired; the engine has not evaluated again: only ask that
    data.slos()
    assert requests[2:] == ["/readyz"]
    clock.now = 12.0
    engine_state["evaluated_at"] = "2027-01-15T08:00:30Z"  # a new evaluation: read it
    data.slos()
    assert requests[3:] == ["/readyz", "/api/v1/slos"]

    clock.now = 18.0
    engine_state["up"] = False  # errors are shared too, and never kept past the TTL
    assert data.slos().kind == "http" and data.canaries().kind == "http"
    assert requests[5:] == ["/readyz", "/api/v1/slos", "/api/v1/canaries"]
    clock.now = 24.0
    engine_state["up"] = True
    assert data.slos() == typed(api_slos(), SLOResult.from_json)

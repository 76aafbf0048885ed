"""Maintenance windows in the engine: the store's table, the API (the engine in process, no
tick needed: its latest snapshot is written to the store), the mcp_slo_maintenance gauge on
/metrics, and `mcp-slo maintenance` against the API served in a thread."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from mcp_slo import cli
from slo import spec
from slo.engine.api import BackgroundServer, create_app
from slo.engine.backend import Backend, BackendOptions
from slo.engine.metrics import MAINTENANCE_METRIC
from slo.engine.scheduler import Engine
from slo.engine.store import Store, StoreError
from tests.support import free_port, samples

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
SPEC = {
    "version": 1,
    "defaults": {"objectives": [
        {"name": "availability", "kind": "availability", "target": 99.0},
        {"name": "latency", "kind": "latency", "threshold": 0.5, "target": 90.0},
    ]},
    "services": {"filesystem": {"tools": {"write_file": {"objectives": [{"name": "latency"}]}}}},
    "maintenance": [
        {"name": "planned-now", "reason": "disk swap", "mode": "exclude", "services": ["filesystem"],
         "slos": ["latency"], "start": "2027-01-15T07:00:00Z", "end": "2027-01-15T09:00:00Z"},
        {"name": "nightly", "reason": "backup", "services": ["search"], "cron": "0 2 * * *", "duration": "1h"},
    ],
}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def result(service: str, slo: str, tool: str | None = None) -> dict:
    """An SLO result as the store keeps it (what the gauge reads: its key)."""
    return {"service": service, "tool": tool, "slo": slo, "kind": "availability", "description": "",
            "objective": 0.99, "window": "30d", "threshold": None, "sli": 1.0, "error_budget_remaining": 1.0,
            "error_budget_consumed": 0.0, "events": 10.0, "bad_events": 0.0, "error_budget_events": 0.1,
            "error_budget_events_remaining": 0.1, "sli_windows": {}, "burn_rates": {}, "alerts": [],
            "status": "ok", "time_to_exhaustion_seconds": None, "versions": ["v1"]}


@pytest.fixture
def engine(tmp_path) -> Iterator[Engine]:
    yield from _engine(tmp_path, None)


def _engine(tmp_path, alertmanager: str | None) -> Iterator[Engine]:
    store = Store(tmp_path / "mcp-slo.db")
    store.write_tick(NOW - 10, [result(s, o, t) for s in ("filesystem", "search") for o in ("availability", "latency")
                                for t in (None, "write_file" if s == "filesystem" else "query")], [])
    clock = Clock()
    e = Engine(spec.parse(SPEC), Backend(BackendOptions(url="http://127.0.0.1:9")), store, now=clock,
               alertmanager=alertmanager)
    e.clock = clock
    yield e
    store.close()


def gauge(client: TestClient) -> set[tuple[str, str, str, str]]:
    found = samples(client.get("/metrics").text, MAINTENANCE_METRIC)
    return {(d["service"], d["slo"], d["tool"], d["mode"]) for d, v in ((dict(k), v) for k, v in found.items())
            if v == 1}


# --- the store --------------------------------------------------------------------------------


def test_store_keeps_every_window_with_who_and_why(tmp_path):
    with Store(tmp_path / "s.db", retention_seconds=60) as store:
        a = store.open_maintenance(services=["fs"], tools=["read"], mode="silence", reason="swap", opened_by="ann",
                                   opened_at=NOW, ends_at=NOW + 3600)
        b = store.open_maintenance(services=["fs"], mode="exclude", reason="db", opened_by="bob",
                                   opened_at=NOW + 10, ends_at=NOW + 20)
        assert [r.id for r in store.maintenance_records()] == [b.id, a.id]  # newest first
        assert [r.id for r in store.maintenance_records(active_at=NOW + 15)] == [b.id, a.id]
        assert [r.id for r in store.maintenance_records(active_at=NOW + 20)] == [a.id]  # b is over
        ended, changed = store.end_maintenance(a.id, NOW + 100, "carol")
        assert changed and ended.ended_by == "carol" and ended.until == NOW + 100
        assert store.end_maintenance(a.id, NOW + 200, "dan") == (ended, False)  # already over
        assert store.end_maintenance(999, NOW, "dan") == (None, False)
        assert store.maintenance_records(active_at=NOW + 150) == []
        store.set_maintenance_silence(b.id, {"id": "abc", "error": None})
        # a tick far later prunes ticks beyond the retention, never windows
        store.write_tick(NOW + 86400, [], [])
        kept = store.maintenance_records()
        assert [(r.opened_by, r.reason, r.tools, r.silence) for r in kept] == [
            ("bob", "db", (), {"id": "abc", "error": None}), ("ann", "swap", ("read",), None)]
        assert kept[1].window().covers("fs", "latency", "read") and not kept[1].window().covers("fs", "latency")
        with pytest.raises(StoreError, match="must end after it starts"):
            store.open_maintenance(services=["fs"], mode="silence", reason="x", opened_by="x", opened_at=NOW,
                                   ends_at=NOW)


def test_store_opens_a_file_of_the_previous_schema(tmp_path):
    """A store written before the maintenance table: migrated on open, its ticks kept."""
    import sqlite3

    from slo.engine import store as store_module

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    for statement in store_module._MIGRATIONS[0]:
        db.execute(statement)
    db.execute("INSERT INTO ticks (evaluated_at, meta) VALUES (1, '{}')")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    with Store(path) as store:
        assert store.latest_tick() == (1, 1.0)
        assert store.open_maintenance(services=["fs"], mode="silence", reason="x", opened_by="x", opened_at=NOW,
                                      ends_at=NOW + 1).id == 1


# --- the API and the gauge --------------------------------------------------------------------


def test_planned_window_shows_in_the_listing_and_the_gauge(engine):
    client = TestClient(create_app(engine))
    body = client.get("/api/v1/maintenance").json()
    planned = {w["name"]: w for w in body["planned"]}
    assert planned["planned-now"]["active"] and planned["planned-now"]["current"] == {
        "start": "2027-01-15T07:00:00Z", "end": "2027-01-15T09:00:00Z"}
    assert not planned["nightly"]["active"] and planned["nightly"]["next"]["start"] == "2027-01-16T02:00:00Z"
    assert body["runtime"] == []
    # exclude, latency only: the service-level series and the tool's
    assert gauge(client) == {("filesystem", "latency", "", "exclude"), ("filesystem", "latency", "write_file", "exclude")}
    engine.clock.now = NOW + 2 * 3600  # 10:00, after its end: no sample
    assert gauge(client) == set()


def test_start_list_and_end_a_runtime_window(engine):
    client = TestClient(create_app(engine))
    started = client.post("/api/v1/maintenance", json={"service": "search", "tools": ["query"], "duration": "2h",
                                                       "reason": "reindex"}, headers={"X-MCP-SLO-User": "ann"})
    assert started.status_code == 201, started.text
    window = started.json()
    assert window["opened_by"] == "ann" and window["mode"] == "silence" and window["active"]
    assert window["starts_at"] == "2027-01-15T08:00:00Z" and window["ends_at"] == "2027-01-15T10:00:00Z"
    assert window["silence"] is None  # no Alertmanager configured
    assert gauge(client) >= {("search", "availability", "query", "silence"), ("search", "latency", "query", "silence")}
    assert not any(s == "search" and t == "" for s, _, t, _ in gauge(client))  # tool-scoped

    basic = base64.b64encode(b"bob:secret").decode()
    other = client.post("/api/v1/maintenance", json={"service": "filesystem", "duration": "30m", "reason": "x",
                                                     "mode": "exclude"}, headers={"Authorization": f"Basic {basic}"})
    assert other.json()["opened_by"] == "bob"
    assert [w["id"] for w in client.get("/api/v1/maintenance").json()["runtime"]] == [other.json()["id"], window["id"]]

    engine.clock.now += 60
    ended = client.delete(f"/api/v1/maintenance/{window['id']}", headers={"X-MCP-SLO-User": "carol"})
    assert ended.status_code == 200 and ended.json()["ended_by"] == "carol" and not ended.json()["active"]
    assert not any(s == "search" for s, *_ in gauge(client))
    again = client.post(f"/api/v1/maintenance/{window['id']}")
    assert again.status_code == 409 and "already over" in again.json()["error"]
    assert client.post("/api/v1/maintenance/12345").status_code == 404
    anonymous = client.post("/api/v1/maintenance", json={"service": "search", "duration": "1h", "reason": "x"})
    assert anonymous.json()["opened_by"] == "unknown"


@pytest.mark.parametrize(("body", "status", "error"), [
    ({"service": "nosuch", "duration": "1h", "reason": "x"}, 404, "unknown service 'nosuch'"),
    ({"service": "search", "tools": ["nope"], "duration": "1h", "reason": "x"}, 404, "unknown tool 'nope'"),
    ({"service": "search", "slos": ["nope"], "duration": "1h", "reason": "x"}, 404, "unknown SLO 'nope'"),
    ({"service": "search", "duration": "0h", "reason": "x"}, 400, "duration: "),
    ({"service": "search", "duration": "2y", "reason": "x"}, 400, "too long"),
    ({"service": "search", "duration": "1h"}, 400, "reason: a window needs a reason"),
    ({"service": "search", "duration": "1h", "reason": "a\nb"}, 400, "line break"),
    ({"service": "search", "duration": "1h", "reason": "x", "mode": "mute"}, 400, "mode: 'mute'"),
    ({"service": "se arch", "duration": "1h", "reason": "x"}, 400, "service: "),
    ({"service": "search", "duration": "1h", "reason": "x", "until": 3}, 400, "unknown field 'until'"),
    (["search"], 400, "JSON object"),
    ({"service": "search", "duration": "1h", "reason": "x" * 70_000}, 400, "larger than 64 KiB"),
])
def test_bad_start_requests(engine, body, status, error):
    client = TestClient(create_app(engine))
    answer = client.post("/api/v1/maintenance", json=body)
    assert answer.status_code == status and error in answer.json()["error"], answer.text
    assert client.get("/api/v1/maintenance").json()["runtime"] == []


def test_alertmanager_down_keeps_the_window_and_says_so(tmp_path):
    for e in _engine(tmp_path, f"http://127.0.0.1:{free_port()}"):
        client = TestClient(create_app(e))
        started = client.post("/api/v1/maintenance", json={"service": "search", "duration": "1h", "reason": "x"})
        assert started.status_code == 201
        silence = started.json()["silence"]
        assert silence["id"] is None and "did not create the silence" in silence["error"]
        assert client.get("/api/v1/maintenance").json()["runtime"][0]["silence"] == silence
        assert ("search", "availability", "", "silence") in gauge(client)


def test_listing_gives_every_occurrence_over_a_range(engine):
    """By default the last 30 days to a day ahead: the planned windows' occurrences and the
    run-time windows overlapping it, by start, each with its scope and reason."""
    client = TestClient(create_app(engine))
    engine.clock.now = NOW - 3 * 86400  # a run-time window three days ago, ended after 10 minutes
    opened = client.post("/api/v1/maintenance", json={"service": "filesystem", "tools": ["write_file"],
                                                      "duration": "1h", "reason": "swap", "mode": "exclude"},
                         headers={"X-MCP-SLO-User": "ann"}).json()
    engine.clock.now += 600
    client.delete(f"/api/v1/maintenance/{opened['id']}")
    engine.clock.now = NOW
    body = client.get("/api/v1/maintenance").json()
    assert (body["since"], body["until"]) == ("2026-12-16T08:00:00Z", "2027-01-16T08:00:00Z")
    assert len(body["planned"]) == 2 and len(body["runtime"]) == 1  # the existing fields stay
    found = body["occurrences"]
    nightly = [o for o in found if o["name"] == "nightly"]
    assert len(nightly) == 31 and nightly[0]["start"] == "2026-12-17T02:00:00Z"  # Dec 17 to Jan 16, 02:00
    assert nightly[-1] == {"start": "2027-01-16T02:00:00Z", "end": "2027-01-16T03:00:00Z", "name": "nightly",
                           "id": None, "planned": True, "mode": "silence", "services": ["search"], "tools": [],
                           "slos": [], "reason": "backup", "opened_by": None}
    runtime = next(o for o in found if not o["planned"])
    assert runtime == {"start": "2027-01-12T08:00:00Z", "end": "2027-01-12T08:10:00Z",
                       "name": f"unplanned-{opened['id']}", "id": opened["id"], "planned": False, "mode": "exclude",
                       "services": ["filesystem"], "tools": ["write_file"], "slos": [], "reason": "swap",
                       "opened_by": "ann"}
    assert [o["start"] for o in found] == sorted(o["start"] for o in found)
    assert next(o for o in found if o["name"] == "planned-now")["slos"] == ["latency"]

    # a range of its own, in RFC 3339 or unix seconds: only what overlaps it
    since, until = "2027-01-12T08:05:00Z", str(NOW - 3 * 86400 + 3600)
    names = [o["name"] for o in client.get("/api/v1/maintenance", params={"since": since, "until": until})
             .json()["occurrences"]]
    assert names == [f"unplanned-{opened['id']}"]  # over at 08:10, not at its planned 09:00
    later = client.get("/api/v1/maintenance", params={"since": "2027-01-12T08:10:00+00:00", "until": until})
    assert later.json()["occurrences"] == []  # half open: it ended at 08:10


@pytest.mark.parametrize(("params", "error"), [
    ({"since": "yesterday"}, "since: not RFC 3339 or unix seconds: 'yesterday'"),
    ({"until": "2027-01-15T08:00:00"}, "until: an RFC 3339 time needs its offset"),
    ({"since": "nan"}, "since: not a finite time"),
    ({"since": str(NOW), "until": str(NOW)}, "must be after since"),
    ({"since": str(NOW - 91 * 86400), "until": str(NOW)}, "at most 90d, ask for a shorter range"),
    ({"since": str(NOW - 20 * 86400), "until": str(NOW)}, "more than 10 maintenance occurrences"),
])
def test_a_bad_or_too_large_range_is_refused(engine, monkeypatch, params, error):
    from slo.engine import maintenance_api

    monkeypatch.setattr(maintenance_api, "MAX_OCCURRENCES", 10)  # 20 nightly ones in 20 days
    client = TestClient(create_app(engine))
    answer = client.get("/api/v1/maintenance", params=params)
    assert answer.status_code == 400 and error in answer.json()["error"], answer.text
    assert len(client.get("/api/v1/maintenance", params={"since": str(NOW - 5 * 86400)}).json()["occurrences"]) == 7


# --- the command ------------------------------------------------------------------------------


def test_maintenance_command_against_the_api(engine, capsys):
    server = BackgroundServer(create_app(engine))
    try:
        url = ["--engine", server.url]
        assert cli.main(["maintenance", "start", *url, "--service", "search", "--slo", "latency", "--for", "2h",
                         "--reason", "reindex", "--user", "ann"]) == 0
        out = capsys.readouterr().out
        assert out.startswith("1: silence search SLOs latency from 2027-01-15T08:00:00Z to 2027-01-15T10:00:00Z "
                              "(active), opened by ann: reindex")
        assert cli.main(["maintenance", "list", *url]) == 0
        out = capsys.readouterr().out
        assert "planned-now: exclude filesystem (one-off), now 2027-01-15T07:00:00Z to 2027-01-15T09:00:00Z" in out
        assert "1: silence search SLOs latency" in out
        assert cli.main(["maintenance", "end", *url, "1", "--user", "bob"]) == 0
        assert "ended 2027-01-15T08:00:00Z by bob" in capsys.readouterr().out
        # refused: exit 1; bad input: exit 2; each a one-line error
        assert cli.main(["maintenance", "end", *url, "1"]) == 1
        assert cli.main(["maintenance", "start", *url, "--service", "nosuch", "--for", "1h", "--reason", "x"]) == 1
        assert cli.main(["maintenance", "start", *url, "--service", "search", "--for", "soon", "--reason", "x"]) == 2
        errors = capsys.readouterr().err.strip().splitlines()
        assert [e.split(":")[0] for e in errors] == ["mcp-slo maintenance"] * 3, errors
        assert "already over" in errors[0] and "unknown service 'nosuch'" in errors[1] and "duration" in errors[2]
    finally:
        server.stop()
    assert cli.main(["maintenance", "list", "--engine", server.url]) == 1  # unreachable
    assert "cannot reach the engine" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["maintenance", "start", "--service", "x", "--reason", "y"])  # no --for
    assert exc.value.code == 2


def test_engine_refuses_a_bad_alertmanager_url(tmp_path, capsys):
    spec_file = tmp_path / "slo.yaml"
    spec_file.write_text("version: 1\n")
    assert cli.main(["engine", "--config", str(spec_file), "--store", str(tmp_path / "s.db"), "--once",
                     "--alertmanager", "ftp://am:9093"]) == 2
    assert capsys.readouterr().err.startswith("mcp-slo engine: --alertmanager: 'ftp://am:9093' is not an http://")
    assert not (tmp_path / "s.db").exists()

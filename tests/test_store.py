"""The engine's SQLite store: round trips, latest snapshot, retention, schema versions,
canary decisions, and whole ticks for readers in other threads and another process."""

from __future__ import annotations

import math
import multiprocessing
import queue
import sqlite3
import threading
import time

import pytest

from slo.canary.judge import Comparison, Counts, judge
from slo.engine import store as store_module
from slo.engine.store import SCHEMA_VERSION, Snapshot, Store, StoreError
from slo.results import CanaryDecision, ToolTraffic

HOSTILE = [
    'fs "prod"\n\'; DROP TABLE ticks; --',
    "服务-é-✓ 🚀",
    "back\\slash\ttab\r\n",
    "nul\x00byte",
    "%_like*wildcards?",
]


def _same(a, b) -> bool:
    """Equal, with NaN equal to NaN, and the same types all the way down (1 is not 1.0, None is not "")."""
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def decision(service: str = "fs", baseline: str = "v1", canary: str = "v2", verdict: str = "promote",
             **changes) -> CanaryDecision:
    return CanaryDecision(**{"service": service, "baseline": baseline, "canary": canary, "verdict": verdict,
                             "score": 50, "reason": "", "metrics": (), "window": "1h", "canary_age_seconds": 3600.0,
                             **changes})


def _count(path, table: str) -> int:
    with sqlite3.connect(path) as db:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "slo.db")
    yield s
    s.close()


def test_a_tick_round_trips_with_nan_none_nested_unicode_and_hostile_names(store):
    slos = [
        {"service": name, "slo": "availability", "tool": None, "status": "ok", "sli": math.nan, "budget": math.inf,
         "burn": -math.inf, "zero": -0.0, "count": 3, "ok": True, "stale": None, "tags": ["a", 1, None],
         "windows": {"5m": {"ratio": math.nan, "error": None}, "1h": {"ratio": 0.25}}}
        for name in HOSTILE
    ]
    slos.append({"service": HOSTILE[0], "slo": "availability", "tool": "read \"file\"\n", "status": "ok", "sli": 0.5})
    slos.append({"service": HOSTILE[1], "slo": "latency", "tool": "", "status": "ok", "sli": 1.0})
    tools = [{"service": name, "tool": name, "calls": 1.5, "p99": math.nan} for name in HOSTILE]
    meta = {"duration": 0.25, "errors": [], "backend": "http://prometheus:9090/?q=\"x\"", "note": "ünï"}

    tick_id = store.write_tick(1_700_000_000.5, slos, tools, meta)
    snap = store.latest()

    assert isinstance(snap, Snapshot) and snap.tick_id == tick_id and snap.evaluated_at == 1_700_000_000.5
    assert _same(snap.slos, slos) and _same(snap.tools, tools) and _same(snap.meta, meta)
    assert math.copysign(1, snap.slos[0]["zero"]) == -1
    # the indexed columns find the hostile names exactly (no escaping, no LIKE semantics)
    for name in HOSTILE:
        [found] = store.slo_history(name, "availability")
        assert found.evaluated_at == 1_700_000_000.5 and found.result.key == (name, "", "availability")
        assert math.isnan(found.result.sli)
    assert store.slo_history("%", "availability") == []
    [by_tool] = store.slo_history(HOSTILE[0], "availability", tool="read \"file\"\n")
    assert by_tool.result.sli == 0.5 and by_tool.result.tool == "read \"file\"\n"
    # "" and None both mean service level
    assert store.slo_history(HOSTILE[1], "latency", tool=None) == store.slo_history(HOSTILE[1], "latency", tool="")
    assert [r.result.sli for r in store.slo_history(HOSTILE[1], "latency")] == [1.0]
    assert store.services() == sorted(HOSTILE)


def test_a_reader_in_a_new_store_object_reads_what_was_written(tmp_path):
    with Store(tmp_path / "slo.db") as writer:
        writer.write_tick(10.0, [{"service": "a", "slo": "s", "v": math.nan}], [], None)
        with Store(tmp_path / "slo.db") as reader:  # as the dashboard would, from its own process
            snap = reader.latest()
    assert snap.meta == {} and math.isnan(snap.slos[0]["v"])


def test_latest_is_the_newest_complete_tick_and_services_come_from_it(store):
    assert store.latest() is None and store.services() == []
    first = store.write_tick(100.0, [{"service": "b", "slo": "x"}, {"service": "a", "slo": "x"}], [], {"n": 1})
    second = store.write_tick(200.0, [{"service": "c", "slo": "x"}], [{"service": "d", "tool": "t"}], {"n": 2})
    assert second > first
    snap = store.latest()
    assert (snap.tick_id, snap.evaluated_at, snap.meta) == (second, 200.0, {"n": 2})
    assert store.services() == ["c", "d"]
    # a late write of an older evaluation (a backfill) does not replace the newest
    store.write_tick(150.0, [{"service": "e", "slo": "x"}], [], {"n": 3})
    assert store.latest().tick_id == second and store.services() == ["c", "d"]
    # same time: the last written wins
    third = store.write_tick(200.0, [], [], {"n": 4})
    assert store.latest().tick_id == third and store.latest().slos == [] and store.services() == []


def test_history_is_ordered_by_time_and_filters_tool_and_range(store):
    for at in (300.0, 100.0, 200.0):
        store.write_tick(at, [
            {"service": "fs", "slo": "availability", "tool": None, "status": "ok", "events": at},
            {"service": "fs", "slo": "availability", "tool": "read", "status": "ok", "events": at},
            {"service": "fs", "slo": "latency", "status": "ok", "events": at},
        ], [])

    def times(history) -> list[float]:
        return [r.evaluated_at for r in history]

    assert times(store.slo_history("fs", "availability")) == [100.0, 200.0, 300.0]
    assert [r.result.events for r in store.slo_history("fs", "availability")] == [100.0, 200.0, 300.0]
    by_tool = store.slo_history("fs", "availability", tool="read")  # every row of the tool, and only those
    assert [(r.evaluated_at, r.result.tool, r.result.events) for r in by_tool] == [
        (at, "read", at) for at in (100.0, 200.0, 300.0)]
    assert times(store.slo_history("fs", "availability", since=200.0)) == [200.0, 300.0]
    assert times(store.slo_history("fs", "availability", until=200.0)) == [100.0, 200.0]
    assert times(store.slo_history("fs", "availability", since=150, until=250)) == [200.0]
    assert store.slo_history("fs", "availability", tool="write") == []
    assert store.slo_history("other", "availability") == []


def test_a_bad_tick_is_refused_whole_and_nothing_of_it_is_written(store, tmp_path):
    good = store.write_tick(1.0, [{"service": "a", "slo": "x"}], [], {})
    rows = [{"service": "a", "slo": "x"}] * 100
    with pytest.raises(StoreError, match=r"slos\[100\]: cannot be stored as JSON"):
        store.write_tick(2.0, rows + [{"service": "a", "slo": "x", "v": object()}], [], {})
    with pytest.raises(StoreError, match=r"slos\[100\]: 'slo' must be a string"):
        store.write_tick(2.0, rows + [{"service": "a"}], [], {})
    with pytest.raises(StoreError, match=r"tools\[0\]: 'tool' must be a string or None"):
        store.write_tick(2.0, rows, [{"service": "a", "tool": 3}], {})
    with pytest.raises(StoreError, match=r"slos\[0\]: 'service' is not valid Unicode"):
        store.write_tick(2.0, [{"service": "bad\ud800", "slo": "x"}], [], {})
    with pytest.raises(StoreError, match="evaluated_at must be finite"):
        store.write_tick(math.nan, rows, [], {})
    assert store.latest().tick_id == good
    assert _count(tmp_path / "slo.db", "ticks") == 1 and _count(tmp_path / "slo.db", "slo_results") == 1
    # a lone surrogate inside a result is fine: the JSON text escapes it
    store.write_tick(3.0, [{"service": "a", "slo": "x", "label": "bad\ud800"}], [], {})
    assert store.latest().slos[0]["label"] == "bad\ud800"


def test_retention_prunes_old_ticks_their_rows_and_old_canary_decisions(tmp_path):
    path = tmp_path / "slo.db"
    with Store(path, retention_seconds=100) as store:
        def tick(at):
            return store.write_tick(at, [{"service": "fs", "slo": "availability", "status": "ok"}],
                                    [{"service": "fs", "tool": "read", "at": at}], {"at": at})
        store.write_canary(0.0, decision(verdict="wait"))
        store.write_canary(120.0, decision(verdict="promote"))
        for at in (0.0, 50.0, 100.0, 150.0):
            tick(at)
        # cutoff 150 - 100 = 50: strictly older goes, the tick at exactly the cutoff stays
        assert [r.evaluated_at for r in store.slo_history("fs", "availability")] == [50.0, 100.0, 150.0]
        assert [d.result.verdict for d in store.canary_history("fs")] == ["promote"]
        tick(250.0)
        assert [r.evaluated_at for r in store.slo_history("fs", "availability")] == [150.0, 250.0]
        assert store.latest().evaluated_at == 250.0
        # the rows of pruned ticks are gone too, not only the tick rows
        assert [_count(path, t) for t in ("ticks", "slo_results", "tool_results")] == [2, 2, 2]
        assert store.canary_history("fs") == [] and store.canary_latest() == []  # 120 < 150: pruned by the tick
        # canary decisions age out on canary writes as well
        store.write_canary(230.0, decision(canary="v3", verdict="wait"))
        store.write_canary(221.0, decision(canary="v3", verdict="hold"))
        assert [d.result.verdict for d in store.canary_history("fs")] == ["hold", "wait"]
        store.write_canary(400.0, decision(canary="v3", verdict="rollback"))
        assert [d.evaluated_at for d in store.canary_history("fs")] == [400.0]
        assert _count(path, "canary_decisions") == 1
    with pytest.raises(StoreError, match="retention_seconds must be positive"):
        Store(path, retention_seconds=0)


def test_canary_latest_per_pair_and_history_in_time_order(store):
    def decide(at, service, baseline, canary, verdict, **changes):
        return store.write_canary(at, decision(service, baseline, canary, verdict, **changes))

    def seen(decisions) -> list[tuple]:
        return [(d.evaluated_at, d.result.service, d.result.canary, d.result.verdict) for d in decisions]

    evidence = judge(Comparison(service="fs", baseline="v1", canary="v2",
                                overall=(Counts(10_000, 10), Counts(1_000, 30)))).metrics
    assert store.canary_latest() == [] and store.canary_history("fs") == []
    decide(10.0, "fs", "v1", "v2", "wait", canary_age_seconds=math.nan)
    decide(30.0, "fs", "v1", "v2", "rollback", metrics=evidence)
    decide(20.0, "fs", "v1", "v2", "promote")  # written late, older: not the latest
    decide(15.0, "fs", "v1", "v3", "wait")
    # a decision's JSON form is stored too; the stored time wins over any copy inside it
    store.write_canary(25.0, {**decision("db", "v7", "v8").to_json(), "evaluated_at": -1})
    decide(30.0, "fs", "v1", "v3", "wait")
    decide(30.0, "fs", "v1", "v3", "promote")  # same time: the last written wins

    latest = store.canary_latest()
    assert seen(latest) == [(25.0, "db", "v8", "promote"), (30.0, "fs", "v2", "rollback"),
                            (30.0, "fs", "v3", "promote")]
    assert latest[1].result == decision(verdict="rollback", metrics=evidence)  # typed, evidence and all
    assert [d.result.canary for d in store.canary_latest("fs")] == ["v2", "v3"]
    assert store.canary_latest("nope") == []

    history = store.canary_history("fs")
    assert seen(history) == [(10.0, "fs", "v2", "wait"), (15.0, "fs", "v3", "wait"), (20.0, "fs", "v2", "promote"),
                             (30.0, "fs", "v2", "rollback"), (30.0, "fs", "v3", "wait"), (30.0, "fs", "v3", "promote")]
    assert math.isnan(history[0].result.canary_age_seconds)
    assert [d.evaluated_at for d in store.canary_history("fs", since=20.0)] == [20.0, 30.0, 30.0, 30.0]
    newest = store.canary_history("fs", limit=3)  # the newest three, still oldest first
    assert seen(newest) == [(30.0, "fs", "v2", "rollback"), (30.0, "fs", "v3", "wait"), (30.0, "fs", "v3", "promote")]
    bounded = store.canary_history("fs", since=10.0, limit=5)  # six since 10.0: the oldest left out
    assert [d.evaluated_at for d in bounded] == [15.0, 20.0, 30.0, 30.0, 30.0]
    partial = {k: v for k, v in decision().to_json().items() if k != "verdict"}
    with pytest.raises(StoreError, match="decision: verdict is not a string"):
        store.write_canary(40.0, partial)
    assert len(store.canary_history("fs")) == 6  # nothing written


def test_unreadable_rows_are_store_errors_naming_them(store, tmp_path):
    """Rows the engine did not write (another tool, a damaged file) never reach a reader as
    dicts: reading them says which row is wrong."""
    store.write_canary(10.0, decision())
    store.write_tick(10.0, [{"service": "fs", "slo": "availability", "status": "ok", "sli": "high"}],
                     [{"service": "fs", "tool": "read", "rate": "fast"}])
    with sqlite3.connect(tmp_path / "slo.db") as db:
        db.execute("INSERT INTO canary_decisions (evaluated_at, service, baseline, canary, verdict, body)"
                   " VALUES (20.0, 'fs', 'v1', 'v3', 'promote', '{\"service\": \"fs\"}')")
        db.execute("INSERT INTO canary_decisions (evaluated_at, service, baseline, canary, verdict, body)"
                   " VALUES (30.0, 'db', 'v1', 'v2', 'promote', 'not JSON')")
    with pytest.raises(StoreError, match=r"canary decision row 2 is not readable: score is not a number"):
        store.canary_history("fs")
    with pytest.raises(StoreError, match=r"canary decision row 3 is not readable: Expecting value"):
        store.canary_latest("db")
    with pytest.raises(StoreError, match=r"SLO result row 1 is not readable: sli is not a number: 'high'"):
        store.slo_history("fs", "availability")
    snap = store.latest()
    with pytest.raises(StoreError, match=r"tick 1: SLO result 0 is not readable: sli is not a number"):
        snap.results
    with pytest.raises(StoreError, match=r"tick 1: tool row 0 is not readable: rate is not a number"):
        snap.tool_traffic


def test_tool_traffic_is_stored_as_its_json_and_read_back_typed(store):
    read = ToolTraffic(service="fs", tool="read", window="5m", rate=12.5, by_status={"success": 12.0, "error": 0.5},
                       error_ratio=0.04, latency_seconds={"p50": 0.02, "p90": 0.1, "p99": None})
    store.write_tick(1.0, [], [read, {**read.to_json(), "tool": "write", "error_ratio": math.nan}])
    snap = store.latest()
    assert snap.tools[0] == read.to_json()  # as stored: the JSON form
    first, second = snap.tool_traffic
    assert first == read and snap.tool_traffic[0] is first  # read once per snapshot
    assert second.tool == "write" and math.isnan(second.error_ratio) and second.to_json()["error_ratio"] is None


def test_a_new_file_gets_the_current_schema_in_wal_mode(tmp_path):
    path = tmp_path / "new.db"
    Store(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 1
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"ticks", "slo_results", "tool_results", "canary_decisions"} <= tables
    Store(path).close()  # reopening the current version changes nothing


def test_a_newer_schema_is_refused_with_a_clear_error_and_left_alone(tmp_path):
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match=rf"schema version {SCHEMA_VERSION + 1} is newer than this mcp-slo supports \({SCHEMA_VERSION}\)"):
        Store(path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert db.execute("PRAGMA journal_mode").fetchone()[0] != "wal"


def test_files_that_are_not_stores_are_refused(tmp_path):
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE ticks (x)")
    with pytest.raises(StoreError, match="not an mcp-slo store"):
        Store(other)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        Store(junk)


def test_an_older_schema_is_migrated_keeping_its_data(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    with Store(path) as old:
        old.write_tick(5.0, [{"service": "fs", "slo": "x"}], [], {})
    step = ("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)",)
    monkeypatch.setattr(store_module, "_MIGRATIONS", [*store_module._MIGRATIONS, step])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with Store(path) as new:
        assert new.latest().slos == [{"service": "fs", "slo": "x"}]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert db.execute("SELECT count(*) FROM notes").fetchone()[0] == 0
    monkeypatch.undo()
    with pytest.raises(StoreError, match="newer"):  # and the old code now refuses it
        Store(path)


def test_a_closed_store_refuses_reads_and_writes(tmp_path):
    s = Store(tmp_path / "slo.db")
    s.write_tick(1.0, [], [], {})
    s.latest()
    s.close()
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.latest()
    with pytest.raises(StoreError, match="closed"):
        s.write_tick(2.0, [], [], {})


# -- concurrency ------------------------------------------------------------------------------

ROWS = 2000
TOOL_ROWS = 50


def _tick_rows(tick: int) -> tuple[list[dict], list[dict], dict]:
    slos = [{"service": f"svc-{j % 20}", "slo": f"slo-{j // 20}", "tool": None if j % 3 else f"tool-{j}",
             "tick": tick, "sli": j / 7} for j in range(ROWS)]
    tools = [{"service": f"svc-{j % 20}", "tool": f"tool-{j}", "tick": tick} for j in range(TOOL_ROWS)]
    return slos, tools, {"tick": tick}


def _problem(snap: Snapshot) -> str | None:
    """What is wrong with a snapshot a reader saw; None when it is one whole tick."""
    tick = snap.meta.get("tick")
    if len(snap.slos) != ROWS or len(snap.tools) != TOOL_ROWS:
        return f"tick {tick}: {len(snap.slos)} SLO rows and {len(snap.tools)} tool rows"
    mixed = {row["tick"] for row in snap.slos + snap.tools} - {tick}
    return f"tick {tick} has rows of ticks {sorted(mixed)[:5]}" if mixed else None


class _Reader:
    """Calls latest() until told to stop; counts the ticks it saw and what was wrong."""

    def __init__(self, store: Store, stop) -> None:
        self.store, self.stop = store, stop
        self.reads, self.ticks, self.problems = 0, 0, []

    def run(self, on_new_tick=None) -> None:
        last = -1
        try:
            while not self.stop.is_set():
                snap = self.store.latest()
                if snap is None:
                    continue
                self.reads += 1
                problem = _problem(snap)
                if problem:
                    self.problems.append(problem)
                tick = snap.meta["tick"]
                if tick < last:
                    self.problems.append(f"went back from tick {last} to {tick}")
                if tick != last:
                    self.ticks += 1
                    if on_new_tick:
                        on_new_tick()
                last = tick
        except Exception as exc:  # reported to the test, which fails on it
            self.problems.append(repr(exc))


def _process_reader(path: str, stop, ticks_seen, out) -> None:
    """A reader in another process, as the dashboard would be: its own Store on the same file."""
    reader = None
    try:
        with Store(path) as store:
            reader = _Reader(store, stop)

            def seen():
                with ticks_seen.get_lock():
                    ticks_seen.value += 1

            reader.run(seen)
    except Exception as exc:
        out.put({"reads": 0, "problems": [repr(exc)]})
        return
    out.put({"reads": reader.reads, "problems": reader.problems[:5]})


@pytest.mark.integration  # another process (multiprocessing's spawn)
def test_readers_in_threads_and_another_process_see_only_whole_ticks(tmp_path):
    path = tmp_path / "slo.db"
    # Ticks 1 s apart and a retention under that: each write prunes the tick readers are reading,
    # so a read that is not one transaction would find the tick but not (all) its rows.
    store = Store(path, retention_seconds=0.5)
    ctx = multiprocessing.get_context("spawn")
    proc_stop, proc_ticks, out = ctx.Event(), ctx.Value("i", 0), ctx.Queue()
    proc = ctx.Process(target=_process_reader, args=(str(path), proc_stop, proc_ticks, out), daemon=True)
    proc.start()

    stop = threading.Event()
    written, writer_errors = [0], []

    def write():
        try:
            while not stop.is_set():
                tick = written[0]
                slos, tools, meta = _tick_rows(tick)
                store.write_tick(1000.0 + tick, slos, tools, meta)
                written[0] = tick + 1
        except Exception as exc:
            writer_errors.append(exc)

    readers = [_Reader(store, stop) for _ in range(3)]
    threads = [threading.Thread(target=r.run, daemon=True) for r in readers]
    writer = threading.Thread(target=write, daemon=True)
    for t in [writer, *threads]:
        t.start()

    # Poll until every reader saw several ticks written while it read, or the deadline passes.
    deadline = time.monotonic() + 9
    while time.monotonic() < deadline and writer.is_alive() and proc.is_alive():
        if written[0] >= 20 and all(r.ticks >= 3 for r in readers) and proc_ticks.value >= 3:
            break
        stop.wait(0.02)
    stop.set()
    proc_stop.set()
    for t in [writer, *threads]:
        t.join(10)
    result = None
    try:
        deadline = time.monotonic() + 15
        while result is None and time.monotonic() < deadline and (proc.is_alive() or not out.empty()):
            try:
                result = out.get(timeout=0.1)
            except queue.Empty:
                pass
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.terminate()
        store.close()

    assert result is not None, f"the reader process gave no result (exit code {proc.exitcode})"

    assert writer_errors == []  # in particular no "database is locked"
    assert [r.problems for r in readers] == [[], [], []]
    assert result["problems"] == []
    assert written[0] >= 20, f"only {written[0]} ticks written before the deadline"
    assert all(r.ticks >= 3 for r in readers), [r.ticks for r in readers]
    assert proc_ticks.value >= 3 and result["reads"] >= 3, (proc_ticks.value, result)

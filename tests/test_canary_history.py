"""Judging the canaries' past (Engine.judge_history) against a fake Prometheus: which
instants are judged, that each is judged as a tick at that time would have, and that a
second call (a demo restarted on its kept store) writes nothing new."""

from __future__ import annotations

import argparse
import contextlib
import math
import re
from collections.abc import Iterator
from itertools import pairwise

import pytest

from collector import durations
from mcp_slo import cli
from slo import promql
from slo.engine import engine_cli
from slo.engine.backend import BackendError
from slo.engine.scheduler import Engine, history_instants, history_step
from slo.engine.store import Store
from slo.query import Sample
from slo.spec import Spec
from tests.support import wait_until

BORN = 1_800_000_000.0  # the canary's first sample
HOUR = 3600.0


class Prometheus:
    """A service 'shop' whose v1 has served 9 calls a second for days and whose canary v2
    has served 1 a second since BORN, 1% of them errors, a tenth slower than 100 ms: the
    canary queries' answers at any instant (no other query has data)."""

    def __init__(self):
        self.queries = 0
        self.asked: list[tuple[str, float]] = []  # (query kind, at)
        self.failing = (math.inf, math.inf)  # BackendError for a query at a time in [from, to)

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        self.queries += 1
        if self.failing[0] <= at < self.failing[1]:
            raise BackendError("unreachable", "connection refused", query=expr)
        versions = {"v1": (BORN - 10 * 86400, 9.0), "v2": (BORN, 1.0)}
        if expr.startswith("time() - min_over_time("):  # the versions' ages
            self.asked.append(("ages", at))
            lookback = durations.parse(re.search(r"\)\[(\w+):", expr)[1])
            return [Sample({"service": "shop", "version": v}, min(at - born, lookback))
                    for v, (born, _) in versions.items() if at > born]
        match = re.search(r"\[(\w+)\]\)\)$", expr)
        if not match or "increase(" not in expr:
            return []
        window = durations.parse(match[1])
        by_status = "status) (increase(" in expr
        self.asked.append(("status" if by_status else "buckets", at))
        out = []
        for version, (born, rate) in versions.items():
            n = rate * max(0.0, at - max(born, at - window))
            if n <= 0:
                continue
            labels = {"service": "shop", "version": version, "tool": "buy"}
            if by_status:
                out += [Sample({**labels, "status": "success"}, 0.99 * n), Sample({**labels, "status": "error"}, 0.01 * n)]
            else:
                out += [Sample({**labels, "le": "0.1"}, 0.9 * n), Sample({**labels, "le": "+Inf"}, n)]
        return out


@pytest.fixture
def prometheus() -> Prometheus:
    return Prometheus()


@pytest.fixture
def engine(prometheus, tmp_path):
    clock = [BORN + 2 * HOUR]
    # mcp-slo's metrics only: the stand-in Prometheus answers their queries
    engine = Engine(Spec(metrics="mcp-slo"), prometheus, Store(tmp_path / "engine.db"), interval=30,
                    now=lambda: clock[0])
    engine.clock = clock
    yield engine
    engine.stop()
    engine.store.close()


def times(engine: Engine) -> list[float]:
    return [d.evaluated_at for d in engine.store.canary_history("shop")]


# --- which instants ---------------------------------------------------------------------------


@pytest.mark.parametrize("life, step, count", [(2 * HOUR, 300, 23), (12 * HOUR, 300, 143), (24 * HOUR, 600, 143)])
def test_a_canarys_life_is_judged_every_5_minutes_or_at_most_150_times(life, step, count):
    until = BORN + life
    assert history_step(BORN, until) == step
    instants = history_instants(BORN, BORN - 86400, until, step)
    # from one step after its start, up to half a step before now (the live ticks' part)
    assert instants[0] == BORN + step and instants[-1] == until - step and len(instants) == count
    assert all(b - a == step for a, b in pairwise(instants))


def test_the_instants_start_at_since_on_the_canarys_grid():
    assert history_instants(BORN, BORN + 1000, BORN + 3600, 300) == [BORN + 1200 + 300 * k for k in range(8)]
    assert history_instants(BORN, BORN, BORN + 400, 300) == []  # the live tick judges the first step
    assert history_instants(BORN, BORN + 7200, BORN + 3600, 300) == []  # since after until
    with pytest.raises(ValueError, match="step"):
        history_instants(BORN, BORN, BORN + 3600, 0)


# --- judging them -----------------------------------------------------------------------------


def test_each_instant_is_judged_as_a_tick_then_would_have(engine, prometheus):
    assert engine.judge_history(since=BORN - 86400) == 23
    history = engine.store.canary_history("shop")
    assert [d.evaluated_at for d in history] == [BORN + 300 * k for k in range(1, 24)]  # oldest first
    # the canary's age is its life at each instant: what a tick then would have found
    assert [d.result.canary_age_seconds for d in history] == [300.0 * k for k in range(1, 24)]
    assert {(d.result.baseline, d.result.canary) for d in history} == {("v1", "v2")}
    # the same decisions as the ticks' code path gives at those instants
    for d in (history[0], history[11], history[-1]):
        assert d.result == engine._judge_canaries(d.evaluated_at)[0]
    # Prometheus was asked at the instants, a tick's canary queries each (plus finding the canaries now)
    asked = [at for kind, at in prometheus.asked if kind == "ages"]
    assert asked[0] == engine.now() and asked[1:24] == [d.evaluated_at for d in history]


def test_a_second_call_writes_nothing_new(engine, prometheus):
    assert engine.judge_history(since=BORN - 86400) == 23
    before, asked = times(engine), len(prometheus.asked)
    assert engine.judge_history(since=BORN - 86400) == 0
    assert times(engine) == before
    assert [kind for kind, _ in prometheus.asked[asked:]] == ["ages", "status"]  # finding the canaries only


def test_times_the_engine_judged_already_are_skipped_and_gaps_are_filled(engine):
    engine.tick()  # a live tick now
    live = engine.now()
    engine.store.write_canary(BORN + HOUR + 10, engine._judge_canaries(BORN + HOUR + 10)[0])  # a tick an hour in
    assert engine.judge_history(since=BORN - 86400) == 22  # 23, less the one next to the tick an hour in
    assert BORN + HOUR not in times(engine) and times(engine)[-1] == live
    # restarted an hour later on the same store: only the hour since is judged
    engine.clock[0] += HOUR
    assert engine.judge_history(since=BORN - 86400) == 11  # up to half a step before now
    assert times(engine)[-11:] == [live + 300 * k for k in range(1, 12)]


def test_a_failed_query_stops_the_call_and_a_later_one_judges_the_rest(engine, prometheus):
    prometheus.failing = (BORN + HOUR, math.inf)
    assert engine.judge_history(since=BORN - 86400) == 0  # now fails: nothing written, nothing raised
    prometheus.failing = (BORN + HOUR, BORN + 2 * HOUR)
    assert engine.judge_history(since=BORN - 86400) == 11  # up to an hour in
    prometheus.failing = (math.inf, math.inf)
    assert engine.judge_history(since=BORN - 86400) == 12
    assert times(engine) == [BORN + 300 * k for k in range(1, 24)]


def test_no_canary_nothing_to_judge(engine, prometheus):
    engine.clock[0] = BORN - 1  # v2 not there yet
    assert engine.judge_history(since=BORN - 86400) == 0 and times(engine) == []


@contextlib.contextmanager
def started(prometheus: Prometheus, tmp_path, interval: float = 30.0) -> Iterator[Engine]:
    """An engine started 2h into the canary's life, judging its past day; its ticks never come
    (they run on the scheduler's clock, and the engine's is in the future)."""
    engine = Engine(Spec(metrics="mcp-slo"), prometheus, Store(tmp_path / "engine.db"), interval=interval,
                    now=lambda: BORN + 2 * HOUR, judge_history=86400)
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()
        engine.store.close()


def test_start_judges_the_past_in_the_background(prometheus, tmp_path):
    with started(prometheus, tmp_path) as engine:
        wait_until(lambda: engine.health.history_decisions is not None, timeout=10, what="the past judged")
        assert engine.health.history_decisions == 23
        assert times(engine) == [BORN + 300 * k for k in range(1, 24)]


def test_start_judges_the_past_again_an_interval_after_a_failed_query(prometheus, tmp_path):
    prometheus.failing = (BORN + HOUR, BORN + 2 * HOUR)  # the canaries are found, an hour in fails
    with started(prometheus, tmp_path, interval=0.2) as engine:
        wait_until(lambda: len(times(engine)) == 11, timeout=10, what="the past up to the failure judged")
        assert engine.health.history_decisions is None
        prometheus.failing = (math.inf, math.inf)
        wait_until(lambda: engine.health.history_decisions is not None, timeout=10, what="the rest judged")
        assert engine.health.history_decisions == 23
        assert times(engine) == [BORN + 300 * k for k in range(1, 24)]


def test_the_history_to_judge_is_never_negative(prometheus, tmp_path):
    with pytest.raises(ValueError, match="history"):
        Engine(Spec(), prometheus, Store(tmp_path / "engine.db"), judge_history=-1)


def test_the_queries_are_the_ticks(prometheus):
    """The fake answers the canary queries the engine sends (the same expressions as a tick's)."""
    assert prometheus.query(promql.version_first_seen(86400, 300, "mcp-slo"), BORN + 600)[1].value == 600
    assert prometheus.query(promql.version_status_counts(300, "mcp-slo"), BORN + 600)
    assert prometheus.query(promql.version_bucket_counts(300, "mcp-slo"), BORN + 600)


# --- mcp-slo engine --judge-history -------------------------------------------------------------


def test_the_engine_command_takes_the_history_to_judge(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    engine_cli.add_arguments(parser)
    args = parser.parse_args(["--config", "examples/slo.yaml", "--store", str(tmp_path / "e.db"),
                              "--judge-history", "24h"])
    engine, _, _ = engine_cli.build(args)
    engine.store.close()
    assert engine.history_seconds == 86400
    assert cli.main(["engine", "--config", "examples/slo.yaml", "--store", str(tmp_path / "e.db"),
                     "--judge-history", "yesterday", "--once"]) == 2
    assert "--judge-history: 'yesterday' is not a duration" in capsys.readouterr().err

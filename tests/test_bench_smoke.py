"""The benchmarks run and return positive numbers. Tiny counts, no timing asserted."""

from __future__ import annotations

import json

import pytest

from bench import bench_inprocess, bench_recorder
from bench.run import BENCHMARKS, main


def _positive(result) -> None:
    assert result.rounds >= 1 and result.per_round >= 1
    for value in (result.ours, result.base, result.ratio, *result.ratio_iqr):
        assert value > 0


def test_recorder_benchmark_runs():
    result = bench_recorder.run(iterations=200, repeats=2)
    _positive(result)
    assert result.unit == "ns/op" and result.limit == bench_recorder.GOAL


@pytest.mark.parametrize("async_tool", [False, True])
@pytest.mark.parametrize("control", [False, True])
def test_inprocess_benchmark_runs(async_tool, control):
    result = bench_inprocess.run(rounds=2, calls=3, warmup=1, async_tool=async_tool, control=control)
    _positive(result)
    assert result.unit == "us/call"
    assert (result.limit is None) == control


@pytest.mark.integration  # the proxy benchmarks start servers and proxies
def test_every_registered_benchmark_runs_quick():
    for benchmark in BENCHMARKS:
        result = benchmark.run(quick=True)
        for one in result if isinstance(result, list) else [result]:
            _positive(one)


@pytest.mark.integration
def test_runner_quick(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--quick", "--only", "recorder", "inprocess-control", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert set(figures["results"]) == {"recorder", "inprocess-control"}
    assert figures["results"]["recorder"]["ours"] > 0
    assert "recorder:" in capsys.readouterr().out


def test_inprocess_breakdown_runs():
    from bench import breakdown_inprocess

    figures = breakdown_inprocess.run(quick=True)
    assert set(figures["arms"]) == set(breakdown_inprocess.ARMS)
    assert all(arm["us"] > 0 for arm in figures["arms"].values())
    assert all(ns > 0 for ns in figures["tight_loop_ns"].values())
    assert "instrumented" in breakdown_inprocess.report(figures)


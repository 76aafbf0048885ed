"""Runs mcp-slo's benchmarks; each times ours and its comparator in the same run.

    python -m bench                    # the default set
    python -m bench --quick            # smoke run: tiny counts, figures mean nothing
    python -m bench --only recorder inprocess-control
    python -m bench --all --json results.json
    python -m bench --list

A benchmark is a module with `run(*, quick=False, **params) -> bench._common.Result`.
To add one (e.g. the proxy), write bench/bench_proxy.py with such a `run` and
add a `Benchmark(...)` line to BENCHMARKS below; modules are imported only
when their benchmark runs, so one that cannot import does not stop the others.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench._common import Result, environment


@dataclass(frozen=True)
class Benchmark:
    name: str
    module: str
    summary: str
    params: Mapping[str, Any] = field(default_factory=dict)
    default: bool = True  # part of a plain `python -m bench`

    def function(self) -> Callable[..., Result]:
        return importlib.import_module(self.module).run

    def run(self, *, quick: bool = False, **overrides: Any) -> Result:
        return self.function()(quick=quick, **{**self.params, **overrides})


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("recorder", "bench.bench_recorder",
              "Recorder.begin()+end() vs prometheus-client primitives (goal <= 1.5x)"),
    Benchmark("inprocess", "bench.bench_inprocess",
              "MCPServer in-memory tools/call, sync no-op tool, instrumented vs plain (goal <= 1.01x)"),
    Benchmark("inprocess-async", "bench.bench_inprocess",
              "the same with an async no-op tool (a cheaper call, so a larger ratio)",
              {"async_tool": True}),
    Benchmark("inprocess-control", "bench.bench_inprocess",
              "A/A control: two plain servers, to read the in-process method's noise",
              {"control": True}, default=False),
    Benchmark("inprocess-async-control", "bench.bench_inprocess",
              "A/A control with the async tool",
              {"async_tool": True, "control": True}, default=False),
    Benchmark("audit-inprocess", "bench.bench_inprocess",
              "the audit trail on (JSON Lines file, default options) vs off, in-memory tools/call, sync no-op tool "
              "(goal <= 1.03x)", {"audit": True}),
    Benchmark("audit-proxy-stdio", "bench.bench_proxy",
              "mcp-slo proxy with --audit-file vs without, over stdio (goal: +0.1 ms a call)", {"audit": True}),
    Benchmark("proxy-stdio-control", "bench.bench_proxy",
              "A/A control: two default proxies over stdio, to read the proxy method's noise", {"control": True},
              default=False),
    Benchmark("proxy-stdio", "bench.bench_proxy",
              "mcp-slo proxy vs a direct connection over stdio (goals: +0.5 ms median, >= 90% throughput)"),
    Benchmark("proxy-http", "bench.bench_proxy",
              "mcp-slo proxy vs a direct connection over streamable HTTP", {"http": True}),
    Benchmark("rules", "bench.bench_rules",
              "SLO-window rules vs the 1h rules in Prometheus at 10/100/1,000 services (goal <= 1x), "
              "and the 30d SLI's accuracy (goal 0.1%)"),
    Benchmark("engine", "bench.bench_engine",
              "engine tick at 10/100/1,000 services vs per-service queries (goal: 2 s, 20 queries, 300 MB at 1,000)"),
    Benchmark("canary", "bench.bench_canary",
              "canary judge: A/A false rollbacks (goal <= 1%), power vs the fixed-sample minimum (goal <= 1.5x), "
              "beside Kayenta- and Flagger-style judges"),
    Benchmark("dashboard", "bench.bench_dashboard",
              "dashboard overview view at 10/100/1,000 services (goal at 1,000: p95 <= 200 ms for an evaluation "
              "already read, 0 Prometheus queries)"),
    Benchmark("demo-start", "bench.bench_demo_start",
              "`mcp-slo demo` with 30 days of history to its last URL line and to a fully drawn overview in "
              "headless Chromium, vs promtool recording the rules (goal: 30 s and 40 s); a second start on the kept "
              "--workdir (goal: 10 s)"),
    Benchmark("load", "bench.bench_load",
              "demo load generator: achieved vs target rate, and memory over the run", {"seconds": 60.0}),
)


def by_name(name: str) -> Benchmark:
    for b in BENCHMARKS:
        if b.name == name:
            return b
    raise KeyError(f"no benchmark {name!r}; have {[b.name for b in BENCHMARKS]}")


def select(only: Sequence[str] | None = None, everything: bool = False) -> list[Benchmark]:
    if only:
        return [by_name(n) for n in only]
    return [b for b in BENCHMARKS if everything or b.default]


def run_all(benchmarks: Sequence[Benchmark], *, quick: bool = False, out=sys.stdout) -> dict[str, Any]:
    """Run `benchmarks` one after another, printing each report; returns what
    `--json` writes: the environment, then each result (or its error)."""
    env = environment()
    env["date"] = datetime.date.today().isoformat()
    env["quick"] = quick
    print(f"mcp-slo benchmarks {env['date']}: Python {env['python']}, {env['cpus']} CPUs, {env['platform']}"
          + ("  [--quick: counts too small for the figures to mean anything]" if quick else ""), file=out)
    results: dict[str, Any] = {}
    for b in benchmarks:
        print(file=out)
        started = time.perf_counter()
        try:
            result = b.run(quick=quick)
        except Exception:
            print(f"{b.name}: FAILED\n{traceback.format_exc()}", file=out)
            results[b.name] = {"error": traceback.format_exc()}
            continue
        # a benchmark returns one Result, or several measured in the same run
        for one in result if isinstance(result, list) else [result]:
            print(one.report(), file=out)
            results[one.name] = one.as_dict()
        print(f"  ({time.perf_counter() - started:.1f} s)", file=out)
        out.flush()
    return {"environment": env, "results": results}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks that everything runs")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these benchmarks (see --list)")
    parser.add_argument("--all", action="store_true", help="also run those not in the default set (controls)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE ('-' for stdout)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is not met")
    args = parser.parse_args(argv)

    if args.list:
        for b in BENCHMARKS:
            print(f"{b.name:<24} {'' if b.default else '(not default) '}{b.summary}")
        return 0
    try:
        chosen = select(args.only, args.all)
    except KeyError as exc:
        parser.error(str(exc.args[0]))

    report = run_all(chosen, quick=args.quick, out=sys.stderr if args.json == "-" else sys.stdout)
    if args.json == "-":
        json.dump(report, sys.stdout, indent=2)
        print()
    elif args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)

    results = report["results"].values()
    if any("error" in r for r in results):
        return 2
    if args.check and not all(r["met"] for r in results):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The engine's tick at 10, 100 and 1,000 services, against a per-service evaluation.

N synthetic services (two SLOs each, 3 tools) are backfilled into a real Prometheus:
70 minutes of raw series, and the recorded SLI rates of every window and the hourly
series the rules would have written. Ours: `slo.evaluate.evaluate`, one batched query
per question. The comparator: the same numbers read per service, one query per service
and window (what a UI querying Prometheus per SLO view does), timed in the same run.
Figures: wall time of a tick, queries per tick, and the engine process's resident memory
after the ticks. Goal: 1,000 services in at most 2 s a tick, at most 20 queries, at most
300 MB, and at least 20x fewer queries than per service.

    python -m bench.bench_engine [--quick] [--services 10 100 1000]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench._common import Result, paired_result, rss_mib
from bench.bench_rules import SPEC, write_synthetic
from demo import history
from demo.prometheus import start_prometheus
from demo.stack import free_port
from slo import importers, promql
from slo.engine.backend import Backend, BackendOptions
from slo.evaluate import evaluate, read_recorded
from slo.plan import plan

GOAL_SECONDS, GOAL_QUERIES, GOAL_MIB, GOAL_FEWER = 2.0, 20, 300, 20


def write_recorded(path: Path, services: int, windows: Sequence[int], now: float) -> int:
    """The recorded SLI rates of every window, as the rules would have left them (the last
    10 minutes, one sample a minute): 3 calls/s, 1% errors, 1% slow."""
    times = [now - 600 + 60 * k for k in range(11)]
    written = 0
    with open(path, "w") as out:
        for name, value in ((promql.SLI_TOTAL, 3.0), (promql.SLI_BAD, 0.03)):
            for w in windows:
                for i in range(services):
                    for slo in ("availability", "latency"):
                        head = f'{promql.recorded(name, w)}{{service="svc-{i:04d}",slo="{slo}"}}'
                        out.write("".join(f"{head} {value} {t:.3f}\n" for t in times))
                        written += len(times)
        out.write("# EOF\n")
    return written


def per_service(backend: Backend, services: Sequence[str], windows: Sequence[int], at: float) -> dict:
    """The comparator: each service's recorded rates, one query per service and window."""
    rates: dict = {}
    for service in services:
        for w in windows:
            names = [promql.recorded(n, w) for n in (promql.SLI_TOTAL, promql.SLI_BAD)]
            expr = promql.selector("", [promql.one_of("__name__", names), promql.matcher("service", "=", service)])
            for key, per in read_recorded(backend.query(expr, at), [w]).items():
                rates.setdefault(key, {}).update(per)
    return rates


def run_one(services: int, ticks: int, say) -> Result:
    work = Path(tempfile.mkdtemp(prefix="mcp-slo-bench-engine-"))
    try:
        (work / "slo.yaml").write_text(SPEC)
        spec = importers.load(work / "slo.yaml").spec
        the_plan = plan(spec)  # once, as the engine does
        windows = the_plan.windows
        now = time.time()
        began = time.monotonic()
        samples = write_synthetic(work / "raw.om", services, now)
        samples += write_recorded(work / "recorded.om", services, windows, now)
        for om in ("raw.om", "recorded.om"):
            history.backfill(work / om, work / "data")
            (work / om).unlink()
        say(f"  engine-{services}: {samples:,} samples backfilled in {time.monotonic() - began:.0f}s")
        port = free_port()
        proc = start_prometheus(work / "prometheus", port, [], "15s", data_dir=work / "data")
        try:
            backend = Backend(BackendOptions(url=f"http://127.0.0.1:{port}", timeout=60, retries=0))
            names = [f"svc-{i:04d}" for i in range(services)]
            ours_s, base_s, ours_q, base_q = [], [], [], []
            evaluate(backend, the_plan)  # warm-up: Prometheus's caches, our imports
            for _ in range(ticks):
                q0, t0 = backend.queries, time.perf_counter()
                result = evaluate(backend, the_plan)
                ours_s.append(time.perf_counter() - t0)
                ours_q.append(backend.queries - q0)
                q0, t0 = backend.queries, time.perf_counter()
                naive = per_service(backend, names, windows, result.evaluated_at)
                base_s.append(time.perf_counter() - t0)
                base_q.append(backend.queries - q0)
            evaluated = sum(1 for r in result.slos if r.sli is not None)
            if evaluated != 2 * services or len(naive) != 2 * services:
                raise RuntimeError(f"evaluated {evaluated} SLOs and {len(naive)} per service, expected {2 * services}")
            rss = rss_mib()
        finally:
            proc.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    queries, naive_queries = statistics.median(ours_q), statistics.median(base_q)
    tick = statistics.median(ours_s)
    result = paired_result(
        name=f"engine-{services}", title=f"a tick for {services} services x 2 SLOs, batched vs per service",
        unit="s/tick", ours_label="mcp-slo engine", base_label="per-service queries",
        ours_rounds=ours_s, base_rounds=base_s, limit=None, per_round=1,
        params={"services": services, "ticks": ticks, "queries": queries, "naive_queries": naive_queries,
                "rss_mib": rss, "samples": samples},
        notes=[f"queries per tick: {queries:g} vs {naive_queries:g} per service ({naive_queries / queries:.0f}x fewer); "
               f"engine process resident memory after the ticks: {rss:.0f} MiB",
               "per-service reads only the recorded rates; the engine also discovers services and "
               "computes the per-tool breakdown"])
    if services >= 1000:
        result.goal = (f"<= {GOAL_SECONDS:g} s a tick, <= {GOAL_QUERIES} queries, <= {GOAL_MIB} MB, "
                       f">= {GOAL_FEWER}x fewer queries")
        result.goal_met = (tick <= GOAL_SECONDS and queries <= GOAL_QUERIES and rss <= GOAL_MIB
                           and naive_queries / queries >= GOAL_FEWER)
    return result


def run(*, quick: bool = False, services: Sequence[int] | None = None, ticks: int | None = None) -> list[Result]:
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731 - progress beside the report
    return [run_one(n, ticks or (2 if quick else 5), say) for n in services or ((5,) if quick else (10, 100, 1000))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--services", type=int, nargs="+")
    parser.add_argument("--ticks", type=int)
    args = parser.parse_args(argv)
    for result in run(quick=args.quick, services=args.services, ticks=args.ticks):
        print(result.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())

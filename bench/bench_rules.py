"""What the SLO rules cost Prometheus, and how close their 30-day SLI is to the truth.

cost (rules-cost-N): N synthetic services with two SLOs each (availability and latency,
30d windows) are backfilled into a real Prometheus: 70 minutes of raw series (success
and error counters and the latency histogram's threshold and +Inf buckets per tool and
version, one sample every 15 s) and 30 days of the hourly averages the SLO-window rule
reads. The generated rules for the 1h window (from the raw counters) and for the SLO
window run as two groups of their own; Prometheus's
`prometheus_rule_group_last_duration_seconds` of each is read after every evaluation and
paired. Goal: the SLO-window group costs no more than the 1h group (ratio <= 1). The 1h
rule reads every raw series, so its cost grows with tools and versions while the
SLO-window rule's does not: N = 10, 100, 1,000 run with small services (3 tools, one
version, the 1h rule's cheapest case), and N = 100 again with 10 tools and 2 versions.
At N = 10 a third group, a Sloth-style 30d rule (`sum_over_time / count_over_time` of a
5m error ratio recorded every minute), shows what averaging 43,200 samples a series costs.

accuracy (rules-accuracy): the demo stack with 31 days of history and the rules
backfilled over it; at one instant, the 30-day SLI of every demo SLO from the recorded
rules against the exact ratio of `increase(...[30d])` of the raw counters, beside a
Sloth-style average of 5m error ratios over the same data. Goal: within 0.1% relative.

    python -m bench.bench_rules [--quick] [--services 10 100 1000] [--shape TOOLS VERSIONS] [--no-accuracy]
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from alerts import rules
from bench._common import Result, paired_result
from collector import names
from demo import history
from demo.prometheus import start_prometheus
from demo.stack import StackConfig, free_port, start_stack
from slo import importers, promql, schema, spec as slo_spec
from slo.plan import plan

GOAL_ACCURACY = 0.001  # relative

SPEC = """\
version: 1
defaults:
  objectives:
    - {name: availability, kind: availability, target: 99.9, window: 30d}
    - {name: latency, kind: latency, threshold: 0.5, target: 99, window: 30d}
"""
SMALL = (3, 1)  # tools, versions: a small server (the 1h rule's cheapest case)
TYPICAL = (10, 2)  # a server like the reference filesystem one, during a canary
CALLS_PER_SECOND = 3.0  # per service, spread over its tools and versions
ERROR_SHARE = 0.01
SLOW_SHARE = 0.01  # over the 0.5 s threshold
SCRAPE = 15  # seconds between raw samples
# Raw data for the 70 minutes before now. Not beyond now: Prometheus would then refuse the
# rules' output as older than its newest block ("out of bounds").
RAW_BEFORE, AFTER = 70 * 60, 0
DAY = 86400
BENCH_INTERVAL = 3  # seconds between evaluations of the benchmark's rule groups
SLOTH_RATIO = "bench:sloth_error_ratio:rate5m"


# --- synthetic data ------------------------------------------------------------------------


def _service(i: int) -> str:
    return f"svc-{i:04d}"


def write_synthetic(path: Path, services: int, now: float, *, days: int = 30, sloth: bool = False,
                    shape: tuple[int, int] = SMALL) -> int:
    """OpenMetrics for `services` services of `shape` (tools, versions); returns the number
    of samples written."""
    raw_times = [now - RAW_BEFORE + k * SCRAPE for k in range((RAW_BEFORE + AFTER) // SCRAPE + 1)]
    hours = [now + AFTER - k * 3600 for k in range(days * 24, -1, -1)]
    tools, versions = shape
    kinds = [(f"tool-{t}", f"v{v + 1}") for t in range(tools) for v in range(versions)]
    per_step = CALLS_PER_SECOND * SCRAPE / len(kinds)
    written = 0
    with open(path, "w") as out:
        def series(head: str, values: Sequence[float], times: Sequence[float]) -> None:
            nonlocal written
            out.write("".join(f"{head} {v:.6g} {t:.3f}\n" for v, t in zip(values, times)))
            written += len(values)

        steps = range(len(raw_times))
        base = 'job="bench",instance="bench:1",method="tools/call"'
        out.write(f"# TYPE {names.OPERATIONS_FAMILY} counter\n")
        for i in range(services):
            for tool, version in kinds:
                labels = f'service="{_service(i)}",{base},version="{version}",tool="{tool}"'
                series(f'{names.OPERATIONS_TOTAL}{{{labels},status="success"}}',
                       [math.floor(k * per_step * (1 - ERROR_SHARE)) for k in steps], raw_times)
                series(f'{names.OPERATIONS_TOTAL}{{{labels},status="error"}}',
                       [math.floor(k * per_step * ERROR_SHARE) for k in steps], raw_times)
        out.write(f"# TYPE {names.OPERATION_DURATION} histogram\n")
        for i in range(services):
            for tool, version in kinds:
                labels = f'service="{_service(i)}",{base},version="{version}",tool="{tool}"'
                count = [k * per_step for k in steps]
                fast = [math.floor(c * (1 - SLOW_SHARE)) for c in count]
                series(f'{names.OPERATION_DURATION}_bucket{{{labels},le="0.5"}}', fast, raw_times)
                series(f'{names.OPERATION_DURATION}_bucket{{{labels},le="+Inf"}}', count, raw_times)
                series(f'{names.OPERATION_DURATION}_count{{{labels}}}', count, raw_times)
                series(f'{names.OPERATION_DURATION}_sum{{{labels}}}', [c * 0.1 for c in count], raw_times)
        # the hourly averages of the 5m rates, as the hourly group records them
        rate = CALLS_PER_SECOND
        for name, value in ((promql.SLI_TOTAL, {"availability": rate, "latency": rate}),
                            (promql.SLI_BAD, {"availability": rate * ERROR_SHARE, "latency": rate * SLOW_SHARE})):
            for i in range(services):
                for slo, v in value.items():
                    series(f'{promql.hourly(name)}{{service="{_service(i)}",slo="{slo}"}}', [v] * len(hours), hours)
        series(f"{promql.HOURLY_TIME}{{}}", hours, hours)
        if sloth:
            minutes = [now + AFTER - k * 60 for k in range(days * 1440, -1, -1)]
            for i in range(services):
                for slo in ("availability", "latency"):
                    series(f'{SLOTH_RATIO}{{service="{_service(i)}",slo="{slo}"}}', [0.01] * len(minutes), minutes)
        out.write("# EOF\n")
    return written


def bench_groups(services_spec: slo_spec.Spec, sloth: bool) -> list[dict]:
    """The generated 1h and SLO-window recording rules, each in a group of its own."""
    def pick(window: int, spec: slo_spec.Spec = services_spec) -> list[dict]:
        wanted = {promql.recorded(promql.SLI_TOTAL, window), promql.recorded(promql.SLI_BAD, window)}
        return [r for g in rules.rule_groups(spec) for r in g["rules"] if r.get("record") in wanted]

    interval = f"{BENCH_INTERVAL}s"
    # The same 1h rules reading mcp-slo's names only (`metrics: mcp-slo`), recorded under other
    # names: what reading OpenTelemetry's names too (the default, auto) costs where there are none.
    own = slo_spec.Spec.model_validate({**services_spec.model_dump(), "metrics": schema.MCP_SLO})
    own_1h = [{**r, "record": f"bench_mcp_slo_only:{r['record']}"} for r in pick(3600, own)]
    groups = [{"name": "bench-1h", "interval": interval, "rules": pick(3600)},
              {"name": "bench-slo-window", "interval": interval, "rules": pick(30 * DAY)},
              {"name": "bench-1h-mcp-slo-only", "interval": interval, "rules": own_1h}]
    if sloth:
        groups.append({"name": "bench-sloth-30d", "interval": interval, "rules": [{
            "record": "bench:sloth_error_ratio:rate30d",
            "expr": f"sum_over_time({SLOTH_RATIO}[30d]) / count_over_time({SLOTH_RATIO}[30d])"}]})
    return groups


# --- measuring -----------------------------------------------------------------------------

_GROUP_METRIC = re.compile(
    r'^prometheus_rule_group_last_(duration|evaluation_timestamp)_seconds\{rule_group="[^"]*;([^"]+)"\} (\S+)$')


def _group_figures(url: str) -> dict[str, tuple[float, float]]:
    """group -> (last evaluation timestamp, last duration) from Prometheus's own /metrics."""
    found: dict[str, dict[str, float]] = {}
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        m = _GROUP_METRIC.match(line)
        if m:
            found.setdefault(m.group(2), {})[m.group(1)] = float(m.group(3))
    return {g: (f.get("evaluation_timestamp", 0.0), f.get("duration", math.nan)) for g, f in found.items()}


def collect(url: str, groups: Sequence[str], rounds: int, warmup: int = 2, timeout: float = 600) -> dict[str, list[float]]:
    """Each group's evaluation durations (seconds), one per evaluation, `rounds` of them after `warmup`."""
    seen: dict[str, dict[float, float]] = {g: {} for g in groups}
    deadline = time.monotonic() + timeout
    while any(len(s) < warmup + rounds for s in seen.values()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"rule groups evaluated only {({g: len(s) for g, s in seen.items()})} times")
        for group, (at, duration) in _group_figures(url).items():
            if group in seen and at > 0:
                seen[group][at] = duration
        time.sleep(BENCH_INTERVAL / 4)  # polling a running Prometheus, bounded by the deadline
    return {g: [s[t] for t in sorted(s)][warmup:warmup + rounds] for g, s in seen.items()}


def _query(url: str, expr: str) -> list[dict]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=30).json()
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    return body["data"]["result"]


def check_outputs(url: str, services: int) -> None:
    """The rules computed what they should: a benchmark of rules that return nothing is void."""
    rate = CALLS_PER_SECOND
    for window in ("1h", "30d"):
        result = _query(url, f"{promql.SLI_TOTAL}:rate{window}")
        if len(result) != 2 * services:
            raise RuntimeError(f"rate{window}: {len(result)} series, expected {2 * services}")
        worst = max(abs(float(r["value"][1]) - rate) / rate for r in result)
        if worst > 0.05:  # the data stops at the start: the 1h window slides past its end
            raise RuntimeError(f"rate{window} off by {worst:.2%} from the synthetic {rate}/s")


@contextmanager
def _workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="mcp-slo-bench-rules-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_cost(services: int, rounds: int, say=print, shape: tuple[int, int] = SMALL) -> list[Result]:
    sloth = services <= 10 and shape == SMALL
    tools, versions = shape
    name = f"rules-cost-{services}" + ("" if shape == SMALL else f"-{tools}tools-{versions}versions")
    with _workdir() as work:
        spec_file = work / "slo.yaml"
        spec_file.write_text(SPEC)
        spec = importers.load(spec_file).spec
        now = time.time()
        began = time.monotonic()
        samples = write_synthetic(work / "data.om", services, now, sloth=sloth, shape=shape)
        history.backfill(work / "data.om", work / "data")
        (work / "data.om").unlink()
        say(f"  {name}: {samples:,} samples backfilled in {time.monotonic() - began:.0f}s")
        groups = bench_groups(spec, sloth)
        rule_file = work / "rules.yml"
        rule_file.write_text(rules.render(groups))
        port = free_port()
        proc = start_prometheus(work / "prometheus", port, [], "15s", rule_files=[str(rule_file)],
                                data_dir=work / "data")
        url = f"http://127.0.0.1:{port}"
        try:
            durations = collect(url, [g["name"] for g in groups], rounds)
            check_outputs(url, services)
        finally:
            proc.stop()
    ms = {g: [d * 1000 for d in ds] for g, ds in durations.items()}
    raw_series = services * tools * versions * 6
    result = paired_result(
        name=name, title=f"SLO-window rules vs the 1h rules, {services} services x 2 SLOs, "
                         f"{tools} tools x {versions} version(s) each",
        unit="ms/eval", ours_label="30d (hourly averages)", base_label="1h (raw counters)",
        ours_rounds=ms["bench-slo-window"], base_rounds=ms["bench-1h"], limit=1.0, per_round=1,
        params={"services": services, "tools": tools, "versions": versions, "raw_series": raw_series,
                "samples": samples, "rounds": rounds},
        notes=[f"prometheus_rule_group_last_duration_seconds of each group, {rounds} evaluations paired; "
               f"{raw_series:,} raw series at {SCRAPE}s, 720 hourly samples a 30d series"])
    schemas = paired_result(
        name=f"{name}-schemas", title=f"the 1h rules reading both schemas (auto) vs mcp-slo's only, {services} "
                                      "services, no OpenTelemetry series",
        unit="ms/eval", ours_label="auto", base_label="mcp-slo only",
        ours_rounds=ms["bench-1h"], base_rounds=ms["bench-1h-mcp-slo-only"], limit=None, per_round=1,
        params={"services": services, "tools": tools, "versions": versions, "rounds": rounds},
        notes=["the OpenTelemetry branch of each raw read selects names that have no series"])
    if sloth:
        result.notes.append(f"Sloth-style 30d (average of 43,200 5m ratios a series): "
                            f"{statistics.median(ms['bench-sloth-30d']):.2f} ms/eval, "
                            f"{statistics.median(ms['bench-sloth-30d']) / result.ours:.0f}x the SLO-window rules")
    return [result, schemas]


# --- accuracy ------------------------------------------------------------------------------


def _values(url: str, expr: str, at: float, labels: Sequence[str] = ("service", "slo")) -> dict[tuple, float]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": expr, "time": at}, timeout=60).json()
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    return {tuple(r["metric"].get(k, "") for k in labels): float(r["value"][1]) for r in body["data"]["result"]}


def exact_ratio(url: str, objective: slo_spec.Objective, service: str, at: float) -> float:
    """bad / valid events over 30 days from `increase` of the raw counters."""
    sli = promql.SLI(objective.name, objective.kind, objective.methods, objective.threshold,
                     promql.Scope(include=(service,)))
    total, bad = (_values(url, expr, at, ("service",)) for expr in sli.exact_counts(30 * DAY))
    return bad.get((service,), 0.0) / total[service,]


def run_accuracy(quick: bool, say=print) -> list[Result]:
    for noisy in ("httpx", "mcp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with _workdir() as work:
        config = StackConfig(workdir=work, scenario="regression", rate=20.0, history_days=2 if quick else 31,
                             scrape_interval="1s", seed=3, backfill_rules=True)
        began = time.monotonic()
        stack = start_stack(config)
        say(f"  rules-accuracy: stack with {config.history_days} days of history and backfilled rules "
            f"in {time.monotonic() - began:.0f}s")
        try:
            stack.start_load()
            url = stack.prometheus_url
            deadline = time.monotonic() + 120
            while not _query(url, f"{promql.ERROR_RATIO}:rate30d"):
                if time.monotonic() > deadline:
                    raise TimeoutError("the 30d rules never evaluated")
                time.sleep(0.5)  # polling the first rule evaluation, bounded by the deadline
            at = time.time()
            ours = _values(url, f'{promql.ERROR_RATIO}:rate30d{{tool=""}}', at)
            sloth = _values(url, f'avg_over_time(({promql.recorded(promql.SLI_BAD, 300)}{{tool=""}} / '
                                f'{promql.recorded(promql.SLI_TOTAL, 300)}{{tool=""}})[30d:1m])', at)
            spec = importers.load(config.slo_spec or Path(__file__).resolve().parent.parent / "examples" / "slo.yaml").spec
            rows, planned = [], plan(spec)
            for service in stack.scenario.versions:
                for objective in planned.objectives_for(service):
                    exact = exact_ratio(url, objective, service, at)
                    key = (service, objective.name)
                    rows.append((key, exact, ours[key], sloth[key]))
        finally:
            stack.close()
    errors = [abs(o - e) / e for _, e, o, _ in rows]
    sloth_errors = [abs(s - e) / e for _, e, _, s in rows]
    worst = max(errors)
    result = Result(
        name="rules-accuracy", title="30-day SLI of the recorded rules vs exact increase(...[30d])",
        unit="% rel. err", ours_label="mcp-slo rules (worst)", base_label="Sloth-style (worst)",
        ours=100 * worst, base=100 * max(sloth_errors), ours_iqr=(100 * min(errors), 100 * worst),
        base_iqr=(100 * min(sloth_errors), 100 * max(sloth_errors)), diff=100 * (worst - max(sloth_errors)),
        diff_iqr=(100 * (worst - max(sloth_errors)),) * 2, ratio=worst / max(sloth_errors),
        ratio_iqr=(worst / max(sloth_errors),) * 2, limit=None,  # one comparison: no spread
        rounds=len(rows), per_round=1, params={"history_days": config.history_days},
        notes=[f"{s}/{slo}: exact {e:.6f}, ours {o:.6f} ({(o - e) / e:+.3%}), Sloth-style {sl:.6f} ({(sl - e) / e:+.3%})"
               for (s, slo), e, o, sl in rows],
        goal=f"worst relative error <= {GOAL_ACCURACY:.1%}", goal_met=worst <= GOAL_ACCURACY)
    return [result]


def run(*, quick: bool = False, services: Sequence[int] | None = None, rounds: int | None = None,
        accuracy: bool = True, shape: tuple[int, int] | None = None) -> list[Result]:
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731 - progress beside the report
    out = []
    rounds = rounds or (3 if quick else 20)
    for n in services or ((3,) if quick else (10, 100, 1000)):
        out += run_cost(n, rounds, say, shape=shape or SMALL)
    if not quick and services is None and shape is None:  # the 1h rule grows with tools and versions, the SLO-window rule does not
        out += run_cost(100, rounds, say, shape=TYPICAL)
    if accuracy:
        out += run_accuracy(quick, say)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--services", type=int, nargs="+")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--shape", type=int, nargs=2, metavar=("TOOLS", "VERSIONS"), help="of each service (default 3 1)")
    parser.add_argument("--no-accuracy", action="store_true")
    args = parser.parse_args(argv)
    for result in run(quick=args.quick, services=args.services, rounds=args.rounds, accuracy=not args.no_accuracy,
                      shape=tuple(args.shape) if args.shape else None):
        print(result.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())

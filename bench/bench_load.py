"""The demo's load generator: does it hold its rate, and is its memory steady?

Drives both demo services (regression scenario, in process, instrumented) for
`seconds` at `rate` calls per second per service, sampling the process's RSS.
Compares the achieved rate with the target (ratio) and reports memory growth
between the first and the last quarter of the run (after warm-up).

    python -m bench.bench_load [--quick] [--seconds N] [--rate R]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

import anyio
from prometheus_client import CollectorRegistry

from bench._common import paired_result, rss_mib
from demo.load import drive
from demo.scenario import load
from demo.services import build_server


async def _measure(seconds: float, rate: float, sample_every: float):
    scenario = load("regression")
    rng = random.Random(1)
    registry = CollectorRegistry()
    servers = {(s, v): build_server(scenario, s, v, registry, rng) for s in scenario.tools for v in scenario.split}
    stop = anyio.Event()
    started: dict[str, int] = {}
    samples: list[tuple[float, float]] = []

    async def one(service: str) -> None:
        versions = {v: (servers[service, v], w) for v, w in scenario.split.items()}
        started[service] = await drive(versions, scenario.tools[service], rate, stop, rng)

    t0 = time.monotonic()
    async with anyio.create_task_group() as tg:
        for service in scenario.tools:
            tg.start_soon(one, service)
        while time.monotonic() - t0 < seconds:
            samples.append((time.monotonic() - t0, rss_mib()))
            await anyio.sleep(sample_every)
        stop.set()
    elapsed = time.monotonic() - t0
    return started, elapsed, samples


def run(*, seconds: float = 120.0, rate: float = 50.0, quick: bool = False):
    if quick:
        seconds = 3.0
    started, elapsed, samples = anyio.run(_measure, seconds, rate, max(0.5, seconds / 60))
    achieved = [started[s] / elapsed for s in sorted(started)]
    quarter = max(1, len(samples) // 4)
    early = statistics.median(m for _, m in samples[:quarter])
    late = statistics.median(m for _, m in samples[-quarter:])
    return paired_result(
        name="load", title=f"demo load generator, {len(started)} services at {rate:g} calls/s each for {seconds:g} s",
        unit="calls/s", ours_label="target", base_label="achieved",
        ours_rounds=[rate] * len(achieved), base_rounds=achieved, limit=1.02, per_round=1,
        params={"seconds": seconds, "rate": rate},
        notes=[f"RSS {samples[0][1]:.1f} MiB at start, {early:.1f} MiB in the first quarter, "
               f"{late:.1f} MiB in the last quarter ({late - early:+.1f} MiB)"],
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--rate", type=float, default=50.0)
    a = parser.parse_args(sys.argv[1:])
    print(run(seconds=a.seconds, rate=a.rate, quick=a.quick).report())

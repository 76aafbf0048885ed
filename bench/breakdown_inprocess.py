"""Where the in-process overhead goes: several middleware variants side by side.

Not a pass/fail benchmark: a diagnostic behind the suggestions in
docs/PERFORMANCE.md. Each arm is an MCPServer with the same no-op tool and
one thing put first in its middleware list:

  plain            nothing (the SDK's default middleware only)
  passthrough      `async def mw(ctx, call_next): return await call_next(ctx)`
  begin/end only   passthrough plus Recorder.begin() / end() with fixed labels
  bookkeeping      MetricsMiddleware with a recorder whose begin/end do nothing
  instrumented     MetricsMiddleware with a Recorder (what `instrument` installs)

Calls go round-robin over the arms (order reversed every other call), each
timed alone; the rounds are split over one session per arm, the order in
which the clients are entered rotated each session (entered later means
nested deeper in task groups); per round, each arm's median call time; reported: each arm's
median over rounds and its median per-round difference to `plain`.

    python -m bench.breakdown_inprocess [--quick] [--async-tool]
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
import timeit
from contextlib import AsyncExitStack
from typing import Any

import anyio
from mcp import Client
from prometheus_client import CollectorRegistry

from bench._common import quartiles
from bench.bench_inprocess import TOOL, build_server
from collector.mcpserver import MetricsMiddleware
from collector.metrics import Recorder


class NullRecorder(Recorder):
    """Records nothing: isolates the middleware's own bookkeeping."""

    def begin(self) -> float:
        return 0.0

    def end(self, method: str, tool: str, status: str, started: float, error: object = None,
            trace: tuple[str, str] | None = None, protocol: str | None = None) -> None:
        pass


ARMS = ("plain", "passthrough", "begin/end only", "bookkeeping", "instrumented")


def _servers(async_tool: bool, registries: list[CollectorRegistry]) -> dict[str, Any]:
    def recorder(cls: type[Recorder], service: str) -> Recorder:
        registries.append(CollectorRegistry())
        return cls(service, "v1", registry=registries[-1], tools=[TOOL])

    async def passthrough(ctx, call_next):
        return await call_next(ctx)

    fixed = recorder(Recorder, "fixed")

    async def begin_end_only(ctx, call_next):
        started = fixed.begin()
        result = await call_next(ctx)
        fixed.end("tools/call", TOOL, "success", started)
        return result

    first = {
        "plain": None,
        "passthrough": passthrough,
        "begin/end only": begin_end_only,
        "bookkeeping": MetricsMiddleware(recorder(NullRecorder, "null")),
        "instrumented": MetricsMiddleware(recorder(Recorder, "instrumented")),
    }
    servers = {}
    for arm, middleware in first.items():
        server = build_server(async_tool)
        if middleware is not None:
            server.middleware.insert(0, middleware)
        servers[arm] = server
    return servers


async def _measure(rounds: int, calls: int, warmup: int, sessions: int, async_tool: bool):
    registries: list[CollectorRegistry] = []
    servers = _servers(async_tool, registries)
    per_round: dict[str, list[float]] = {arm: [] for arm in servers}
    clock = time.perf_counter
    for s in range(sessions):
        names = list(servers)
        names = names[s % len(names):] + names[:s % len(names)]  # rotate who is entered first
        async with AsyncExitStack() as stack:
            calls_by_arm = [(arm, (await stack.enter_async_context(Client(servers[arm]))).call_tool)
                            for arm in names]
            for _ in range(warmup):
                for _, call in calls_by_arm:
                    await call(TOOL, {})
            n = rounds // sessions + (1 if s < rounds % sessions else 0)
            for r in range(n):
                gc.collect()
                times: dict[str, list[float]] = {arm: [] for arm in servers}
                for i in range(calls):
                    order = calls_by_arm if (i + r) % 2 == 0 else calls_by_arm[::-1]
                    for arm, call in order:
                        t0 = clock()
                        await call(TOOL, {})
                        times[arm].append(clock() - t0)
                for arm, ts in times.items():
                    per_round[arm].append(statistics.median(ts) * 1e6)
    return per_round


def tight_loop_ns(number: int = 100_000) -> dict[str, float]:
    """begin()+end() in a tight loop (warm caches), best of 5, ns per operation."""
    out = {}
    for cls in (Recorder,):
        registry = CollectorRegistry()
        rec = cls("tight", "v1", registry=registry)
        stmt = "rec.end('tools/call', 'echo', 'success', rec.begin())"
        best = min(timeit.repeat(stmt, globals={"rec": rec}, number=number, repeat=5))
        out[cls.__name__] = best / number * 1e9
    return out


def run(*, rounds: int = 36, calls: int = 100, warmup: int = 50, sessions: int = len(ARMS),
        async_tool: bool = False, quick: bool = False) -> dict[str, Any]:
    """{arm: {"us": median us/call, "diff": median per-round diff to plain, "diff_iqr": (q1, q3)}},
    plus "tight_loop_ns"."""
    if quick:
        rounds, calls, warmup, sessions = 2, 5, 2, 1
    sessions = max(1, min(sessions, rounds))
    per_round = anyio.run(_measure, rounds, calls, warmup, sessions, async_tool)
    base = per_round["plain"]
    arms: dict[str, Any] = {}
    for arm, xs in per_round.items():
        diffs = [x - b for x, b in zip(xs, base)]
        arms[arm] = {"us": statistics.median(xs), "diff": statistics.median(diffs), "diff_iqr": quartiles(diffs)}
    return {"tool": "async" if async_tool else "sync", "rounds": rounds, "calls": calls,
            "arms": arms, "tight_loop_ns": tight_loop_ns(2_000 if quick else 100_000)}


def report(figures: dict[str, Any]) -> str:
    lines = [f"in-process breakdown, {figures['tool']} no-op tool, "
             f"{figures['rounds']} rounds x {figures['calls']} calls per arm"]
    for arm in ARMS:
        a = figures["arms"][arm]
        lines.append(f"  {arm:<16} {a['us']:8.1f} us/call   vs plain {a['diff']:+6.2f} us "
                     f"(IQR {a['diff_iqr'][0]:+.2f} .. {a['diff_iqr'][1]:+.2f})")
    lines.append("  begin()+end() in a tight loop: "
                 + ", ".join(f"{k} {v:.0f} ns" for k, v in figures["tight_loop_ns"].items()))
    return "\n".join(lines)


if __name__ == "__main__":
    argv = sys.argv[1:]
    print(report(run(quick="--quick" in argv, async_tool="--async-tool" in argv)))

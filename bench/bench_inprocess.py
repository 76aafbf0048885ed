"""Cost of instrumentation on a real call: an in-memory no-op `tools/call`.

Two `mcp.server.mcpserver.MCPServer`s built by the same function with the same
tool; one is passed through `collector.instrument(...)`, which only puts
`MetricsMiddleware` in front of the SDK's default middleware (OpenTelemetry,
then the request-state boundary), which both keep. Each is driven by its own
`mcp.Client(server)` in the default mode (in-process, no transport), in the
same process and event loop.

Calls alternate between the two clients (A B, then B A, ...), each call timed
on its own. A round is `calls` calls to each server; its figure per side is
the median call time, and its ratio instrumented/plain. The result is the
median over rounds, with the interquartile range as the spread. The rounds
are split over a few pairs of connections opened in alternating order, since
the client entered second runs nested in the first one's task group.

`control=True` runs the same thing with two uninstrumented servers: the ratio
it shows is what the method reads when there is nothing to find, so a
difference smaller than its spread is not a measurement.

`both=True` compares two instrumented servers instead: `metrics="both"` (mcp-slo's
and the semantic conventions' histograms) against the default `metrics="mcp-slo"`.
`audit=True` does the same with the audit trail on (a JSON Lines file, default options) against
off; goal (issue 17): at most +3%.

    python -m bench.bench_inprocess [--quick] [--async-tool] [--control] [--both | --audit]
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.server.mcpserver import MCPServer
from prometheus_client import CollectorRegistry

from bench._common import Result, paired_result, recorded
from collector import instrument, names
from collector.mcpserver import MetricsMiddleware

GOAL = 1.01  # instrumented at most 1% slower
AUDIT_GOAL = 1.03  # the audit trail on at most 3% slower than off
TOOL = "noop"
SERVICE, VERSION = "bench", "v1"


def build_server(async_tool: bool = False) -> MCPServer:
    """The server under test; called once per side so both are identical."""
    server = MCPServer("bench", version="1.0.0")
    if async_tool:

        @server.tool(name=TOOL)
        async def noop_async() -> str:
            """Does nothing (runs on the event loop)."""
            return ""

    else:

        @server.tool(name=TOOL)
        def noop() -> str:
            """Does nothing (the SDK runs sync tools in a worker thread)."""
            return ""

    return server


async def _measure(rounds: int, calls: int, warmup: int, sessions: int, async_tool: bool, control: bool,
                   both: bool = False, audit: dict | None = None):
    registry = CollectorRegistry()
    plain = build_server(async_tool)
    other = build_server(async_tool)
    recorder = None
    if both or audit:  # the base side is instrumented with the default
        instrument(plain, service=SERVICE, version=VERSION, registry=CollectorRegistry())
    if not control:
        instrument(other, service=SERVICE, version=VERSION, registry=registry,
                   metrics="both" if both else "mcp-slo", audit=audit)
        recorder = next(m for m in other.middleware if isinstance(m, MetricsMiddleware)).recorder
        counted_before = recorded(recorder, "tools/call", TOOL, names.SUCCESS)
        ours = [type(m) for m in other.middleware]
        theirs = [type(m) for m in plain.middleware]
        if ours != ([] if both or audit else [MetricsMiddleware]) + theirs:
            raise AssertionError(f"the servers differ by more than the metrics middleware: {ours} vs {theirs}")

    plain_rounds: list[float] = []
    other_rounds: list[float] = []
    for s in range(sessions):
        # The client entered second runs nested inside the first one's task group,
        # which the A/A control showed to cost a few tenths of a percent; alternate.
        async with AsyncExitStack() as stack:
            if s % 2 == 0:
                a = await stack.enter_async_context(Client(plain))
                b = await stack.enter_async_context(Client(other))
            else:
                b = await stack.enter_async_context(Client(other))
                a = await stack.enter_async_context(Client(plain))
            n = rounds // sessions + (1 if s < rounds % sessions else 0)
            await _rounds(a.call_tool, b.call_tool, n, calls, warmup, plain_rounds, other_rounds)
            # A failing call would not have been timed like a no-op; make sure none did.
            for client in (a, b):
                last = await client.call_tool(TOOL, {})
                if last.is_error:
                    raise AssertionError(f"the tool call failed: {last}")

    if audit is not None:  # every record on disk before the file is counted
        other.middleware[0].audit.writer.flush(timeout=60)
    if recorder is not None:
        expected = sessions * (warmup + 1) + rounds * calls
        counted = recorded(recorder, "tools/call", TOOL, names.SUCCESS) - counted_before
        if counted != expected:
            raise AssertionError(f"the instrumented server recorded {counted} calls, expected {expected}")
    return plain_rounds, other_rounds


async def _rounds(call_a, call_b, rounds: int, calls: int, warmup: int,
                  plain_rounds: list[float], other_rounds: list[float]) -> None:
    clock = time.perf_counter
    for _ in range(warmup):
        await call_a(TOOL, {})
        await call_b(TOOL, {})
    for r in range(rounds):
        gc.collect()  # start every round with the same (empty) garbage
        ta: list[float] = []
        tb: list[float] = []
        for i in range(calls):
            if (i + r) % 2 == 0:
                t0 = clock()
                await call_a(TOOL, {})
                t1 = clock()
                await call_b(TOOL, {})
                t2 = clock()
                ta.append(t1 - t0)
                tb.append(t2 - t1)
            else:
                t0 = clock()
                await call_b(TOOL, {})
                t1 = clock()
                await call_a(TOOL, {})
                t2 = clock()
                tb.append(t1 - t0)
                ta.append(t2 - t1)
        ta.sort()
        tb.sort()
        plain_rounds.append(_sorted_median(ta) * 1e6)
        other_rounds.append(_sorted_median(tb) * 1e6)


def _sorted_median(xs: list[float]) -> float:
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def run(
    *,
    rounds: int = 40,
    calls: int = 100,
    warmup: int = 100,
    sessions: int = 4,
    async_tool: bool = False,
    control: bool = False,
    both: bool = False,
    audit: bool = False,
    quick: bool = False,
) -> Result:
    """Returns microseconds per call (median per round, then median over rounds).

    The rounds are spread over `sessions` pairs of client connections, opened in
    alternating order; each session starts with `warmup` untimed calls a side.
    """
    if quick:
        rounds, calls, warmup, sessions = min(rounds, 2), min(calls, 10), min(warmup, 5), min(sessions, 2)
    if rounds < 1 or calls < 1 or sessions < 1 or warmup < 0:
        raise ValueError("rounds, calls and sessions must be at least 1, warmup at least 0")
    sessions = min(sessions, rounds)
    with tempfile.TemporaryDirectory(prefix="mcp-slo-bench-audit-") as scratch:
        options = {"path": f"{scratch}/audit.jsonl"} if audit else None
        plain_us, other_us = anyio.run(_measure, rounds, calls, warmup, sessions, async_tool, control, both, options)
        audited = Path(scratch, "audit.jsonl").read_bytes().count(b"\n") if audit else 0
    kind = "async" if async_tool else "sync"
    params: dict[str, Any] = {"rounds": rounds, "calls": calls, "warmup": warmup, "sessions": sessions,
                              "tool": kind, "control": control}
    notes = [f"{kind} no-op tool" + (" (worker thread)" if not async_tool else " (on the event loop)")
             + "; figures are medians of per-call times, so rare stalls do not count"]
    if both:
        notes.append('both sides instrumented: metrics="both" (ours) vs the default metrics="mcp-slo" (base)')
    if audit:
        notes.append(f"both sides instrumented: the audit trail on (ours, {audited} records written) vs off (base)")
    if control:
        notes.append("A/A control: both servers uninstrumented; the ratio shows the method's own bias and spread")
    return paired_result(
        name="inprocess" + ("-async" if async_tool else "") + ("-control" if control else "")
             + ("-both" if both else "") + ("-audit" if audit else ""),
        title=f"MCPServer in-memory tools/call ({kind} no-op tool), "
              + ("plain vs plain (control)" if control else
                 'metrics="both" vs "mcp-slo"' if both else "audit on vs off" if audit else "instrumented vs plain"),
        unit="us/call",
        ours_label="plain (B)" if control else "both" if both else "audit on" if audit else "instrumented",
        base_label="plain (A)" if control else "mcp-slo" if both else "audit off" if audit else "plain",
        ours_rounds=other_us,
        base_rounds=plain_us,
        limit=None if control else AUDIT_GOAL if audit else GOAL,
        per_round=calls,
        params=params,
        notes=notes,
    )


if __name__ == "__main__":
    argv = sys.argv[1:]
    print(run(quick="--quick" in argv, async_tool="--async-tool" in argv, control="--control" in argv,
              both="--both" in argv, audit="--audit" in argv).report())

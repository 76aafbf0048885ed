"""mcp-slo proxy against a direct connection to the same server, in one run.

Two clients (the official SDK's) talk to two copies of bench/echo_server.py,
one directly, one through `mcp-slo proxy`. Latency: sequential calls,
alternating sides, per-call times; the added median and p99. Throughput:
`concurrency` callers at once, rounds alternating sides; time per call.

Goals (issue): at most 0.5 ms added to the median over stdio, at least 90% of
direct throughput (a time-per-call ratio of at most 1/0.9).

`--both` compares the proxy with `--metrics both` (ours) against the default proxy
(base), instead of the proxy against a direct connection; goal: at most +0.1 ms a call.
`--control` compares two default proxies (A/A): what the method reads when there is nothing to find.
`--audit` does the same with the audit trail on (`--audit-file`, default options) against
off; goal (issue 17): at most +0.1 ms per proxied call.

    python -m bench.bench_proxy [--quick] [--http] [--both | --audit | --control]
"""

from __future__ import annotations

import contextlib
import logging
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from bench._common import paired_result

ROOT = Path(__file__).resolve().parent.parent
ECHO = str(ROOT / "bench" / "echo_server.py")
PROXY = [sys.executable, "-m", "mcp_slo", "proxy", "--service", "bench", "--version", "v1", "--metrics-port", "0"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _process(argv: list[str]) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up in {timeout}s")


@contextlib.contextmanager
def _targets(http: bool, options: list[str] | None = None) -> Iterator[tuple[Any, Any]]:
    """(direct, proxied) server arguments for mcp.Client; with `options`, (the default
    proxy, the proxy with these options)."""
    both = options is not None
    ours = [*PROXY, *options] if both else PROXY
    if not http:
        base = [*PROXY, "--", sys.executable, ECHO] if both else [sys.executable, ECHO]
        yield (StdioServerParameters(command=base[0], args=base[1:], cwd=str(ROOT)),
               StdioServerParameters(command=sys.executable, args=[*ours[1:], "--", sys.executable, ECHO],
                                     cwd=str(ROOT)))
        return
    direct_port, upstream_port, proxy_port = _free_port(), _free_port(), _free_port()
    base_upstream_port = _free_port()
    base = ([*PROXY, "--upstream", f"http://127.0.0.1:{base_upstream_port}/mcp", "--listen", f"127.0.0.1:{direct_port}"]
            if both else [sys.executable, ECHO, "--http", str(direct_port)])
    with _process([sys.executable, ECHO, "--http", str(base_upstream_port)]) if both else contextlib.nullcontext(), \
            _process(base), \
            _process([sys.executable, ECHO, "--http", str(upstream_port)]), \
            _process([*ours, "--upstream", f"http://127.0.0.1:{upstream_port}/mcp",
                      "--listen", f"127.0.0.1:{proxy_port}"]):
        for port in (direct_port, upstream_port, proxy_port):
            _wait_http(f"http://127.0.0.1:{port}/mcp")
        yield f"http://127.0.0.1:{direct_port}/mcp", f"http://127.0.0.1:{proxy_port}/mcp"


async def _measure(http: bool, rounds: int, calls: int, concurrency: int, warmup: int,
                   options: list[str] | None = None):
    with _targets(http, options) as (direct_target, proxied_target):
        async with Client(direct_target) as direct, Client(proxied_target) as proxied:
            sides = {"direct": direct, "proxied": proxied}
            for client in sides.values():
                for _ in range(warmup):
                    await client.call_tool("echo", {"text": "w"})
            latency = {k: [] for k in sides}  # every call, seconds
            latency_rounds = {k: [] for k in sides}  # per-round medians
            per_call = {k: [] for k in sides}  # throughput rounds: seconds per call
            for r in range(rounds):
                order = list(sides) if r % 2 == 0 else list(sides)[::-1]
                for name in order:
                    times = []
                    for i in range(calls):
                        t0 = time.perf_counter()
                        await sides[name].call_tool("echo", {"text": str(i)})
                        times.append(time.perf_counter() - t0)
                    latency[name] += times
                    latency_rounds[name].append(statistics.median(times) * 1e6)
                for name in order:
                    async def caller(client=sides[name]) -> None:
                        for i in range(calls):
                            await client.call_tool("echo", {"text": str(i)})

                    t0 = time.perf_counter()
                    async with anyio.create_task_group() as tg:
                        for _ in range(concurrency):
                            tg.start_soon(caller)
                    per_call[name].append((time.perf_counter() - t0) / (concurrency * calls) * 1e6)
    return latency, latency_rounds, per_call


def _p99(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[98] * 1e6


def run(*, http: bool = False, rounds: int = 20, calls: int = 50, concurrency: int = 16, warmup: int = 50,
        quick: bool = False, both: bool = False, audit: bool = False, control: bool = False):
    """Two Results: latency (median of per-round medians) and throughput (time per call under load)."""
    if quick:
        rounds, calls, concurrency, warmup = 2, 5, 4, 2
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    with tempfile.TemporaryDirectory(prefix="mcp-slo-bench-audit-") as scratch:
        options = (["--metrics", "both"] if both else ["--audit-file", f"{scratch}/audit.jsonl"] if audit
                   else [] if control else None)
        latency, latency_rounds, per_call = anyio.run(_measure, http, rounds, calls, concurrency, warmup, options)
        audited = Path(scratch, "audit.jsonl").read_bytes().count(b"\n") if audit else 0
    transport = "streamable HTTP" if http else "stdio"
    added_p99 = _p99(latency["proxied"]) - _p99(latency["direct"])
    kind = "-both" if both else "-audit" if audit else "-control" if control else ""
    versus = ("proxy --metrics both vs default proxy" if both else "proxy with --audit-file vs without" if audit
              else "default proxy vs default proxy (A/A control)" if control else "mcp-slo proxy vs direct")
    ours_label, base_label = (("--metrics both", "default") if both else ("audit on", "audit off") if audit
                              else ("proxy B", "proxy A") if control else ("proxied", "direct"))
    params = {"transport": transport, "both": both, "audit": audit, "rounds": rounds, "calls": calls,
              "concurrency": concurrency}
    extra = [f"{audited} audit records written"] if audit else []
    lat = paired_result(
        name=f"proxy-{'http' if http else 'stdio'}{kind}-latency",
        title=f"{versus}, {transport}, sequential tools/call latency",
        unit="us", ours_label=ours_label, base_label=base_label,
        ours_rounds=latency_rounds["proxied"], base_rounds=latency_rounds["direct"],
        limit=None, per_round=calls, params=params,
        notes=[f"added median {statistics.median(latency['proxied']) * 1e3 - statistics.median(latency['direct']) * 1e3:+.3f} ms"
               f" (goal: {'at most +0.1 ms' if both or audit or control else 'over stdio at most +0.5 ms'}); added p99 {added_p99 / 1e3:+.3f} ms"
               f" (p99 direct {_p99(latency['direct']) / 1e3:.3f} ms, proxied {_p99(latency['proxied']) / 1e3:.3f} ms)",
               *extra],
    )
    thr = paired_result(
        name=f"proxy-{'http' if http else 'stdio'}{kind}-throughput",
        title=f"{versus}, {transport}, {concurrency} concurrent callers, time per call",
        unit="us", ours_label=ours_label, base_label=base_label,
        ours_rounds=per_call["proxied"], base_rounds=per_call["direct"],
        limit=round(1 / 0.9, 4), per_round=calls * concurrency, params=params,
        notes=[f"throughput: proxied {1e6 / statistics.median(per_call['proxied']):.0f} calls/s, "
               f"direct {1e6 / statistics.median(per_call['direct']):.0f} calls/s "
               f"({statistics.median(per_call['direct']) / statistics.median(per_call['proxied']):.1%} of direct; goal >= 90%)"],
    )
    return [lat, thr]


if __name__ == "__main__":
    for result in run(quick="--quick" in sys.argv, http="--http" in sys.argv, both="--both" in sys.argv,
                      audit="--audit" in sys.argv, control="--control" in sys.argv):
        print(result.report())
        print()

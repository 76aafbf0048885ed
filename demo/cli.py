"""`mcp-slo demo`: the demo services under load, scraped by a real Prometheus.

Prints one `NAME: URL` line per endpoint and runs until Ctrl-C (or --exit-after).
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx
from prometheus_client import CollectorRegistry

from collector import start_metrics_server
from demo import history
from demo.load import drive
from demo.processes import MissingBinary
from demo.prometheus import start_prometheus
from demo.scenarios import SPLIT, scenario
from demo.services import TOOLS, build_server


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", default="healthy", choices=["healthy", "regression"])
    parser.add_argument("--workdir", type=Path, help="keep Prometheus data here between runs (default: a temp dir)")
    parser.add_argument("--exit-after", type=float, metavar="SECONDS", help="stop everything cleanly after this long")
    parser.add_argument("--rate", type=float, default=20.0, help="calls per second per service (default 20)")
    parser.add_argument("--prometheus-port", type=int, default=9090)
    parser.add_argument("--seed", type=int, help="random seed for reproducible load")
    parser.add_argument("--history-days", type=float, default=30.0,
                        help="days of history to backfill before starting (0: none)")


def run(args: argparse.Namespace) -> int:
    if args.workdir:
        return _run(args, args.workdir)
    with tempfile.TemporaryDirectory(prefix="mcp-slo-demo-") as tmp:
        return _run(args, Path(tmp))


def _run(args: argparse.Namespace, workdir: Path) -> int:
    # Each demo tool failure is expected and counted; don't log every one.
    for noisy in ("httpx", "mcp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    rng = random.Random(args.seed)
    behaviours = scenario(args.scenario)
    try:
        past = _history(args, workdir, behaviours)
    except (MissingBinary, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    servers, exporters, targets = {}, [], []
    for service, versions in behaviours.items():
        for version, behaviour in versions.items():
            registry = CollectorRegistry()
            servers[service, version] = build_server(service, version, behaviour, registry, rng)
            if past is not None:
                history.seed_registry(registry, past, service, version)
            http_server, _ = start_metrics_server(0, registry=registry)
            exporters.append(http_server)
            target = f"127.0.0.1:{http_server.server_port}"
            targets.append(target)
            print(f"exporter {service} {version}: http://{target}/metrics", flush=True)
    try:
        prometheus = start_prometheus(workdir / "prometheus", args.prometheus_port, targets)
    except (MissingBinary, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    url = f"http://127.0.0.1:{args.prometheus_port}"
    print(f"prometheus: {url}", flush=True)
    try:
        anyio.run(_serve, servers, args, url)
    finally:
        prometheus.stop()
        for http_server in exporters:
            http_server.shutdown()
    return 0


def _history(args: argparse.Namespace, workdir: Path, behaviours) -> history.History | None:
    """Backfill 30 days into Prometheus's data directory, unless this workdir has them."""
    marker = workdir / "prometheus" / "history-done"
    if args.history_days <= 0 or marker.exists():
        return None
    say = lambda msg: print(msg, flush=True)  # noqa: E731
    past = history.generate(behaviours, end=time.time(), days=args.history_days,
                            rates={s: args.rate for s in behaviours}, split=SPLIT,
                            seed=args.seed or 0, progress=say)
    workdir.mkdir(parents=True, exist_ok=True)
    openmetrics = workdir / "history.om"
    history.write_openmetrics(past, openmetrics, progress=say)
    say("history: loading into Prometheus blocks (promtool)")
    history.backfill(openmetrics, workdir / "prometheus" / "data")
    openmetrics.unlink()
    marker.write_text("")
    say("history: done")
    return past


async def _serve(servers, args, prometheus_url: str) -> None:
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_stop_on_signal, stop)
        if args.exit_after is not None:
            tg.start_soon(_stop_after, stop, args.exit_after)
        for service, mix in TOOLS.items():
            versions = {v: (servers[service, v], weight) for v, weight in SPLIT.items()}
            tg.start_soon(drive, versions, mix, args.rate, stop)
        tg.start_soon(_report_first_samples, prometheus_url, stop)
        await stop.wait()
        tg.cancel_scope.cancel()
    print("demo stopped", flush=True)


async def _stop_on_signal(stop: anyio.Event) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            stop.set()
            return


async def _stop_after(stop: anyio.Event, seconds: float) -> None:
    await anyio.sleep(seconds)
    stop.set()


async def _report_first_samples(prometheus_url: str, stop: anyio.Event) -> None:
    """Say when Prometheus holds the first scraped samples (about one scrape interval)."""
    async with httpx.AsyncClient(timeout=2) as client:
        while not stop.is_set():
            try:
                r = await client.get(f"{prometheus_url}/api/v1/query", params={"query": "count(mcp_operations_total)"})
                if r.json()["data"]["result"]:
                    print("prometheus: first samples scraped", flush=True)
                    return
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            await anyio.sleep(0.5)

"""The local stack: demo services with /metrics, history, Prometheus, Alertmanager.

Used by `mcp-slo demo` and by the test suite's fixtures; `Stack.close()` stops
everything it started.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import anyio
import yaml
from mcp.server.mcpserver import MCPServer
from prometheus_client import CollectorRegistry

from alerts.output import comment
from collector import start_metrics_server
from demo import history, recorded
from demo.alertmanager import start_alertmanager
from demo.console import Progress, as_progress
from demo.load import drive
from demo.processes import ManagedProcess, find_binary
from demo.prometheus import JOB, start_prometheus
from demo.scenario import Scenario, load
from demo.services import build_server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class StackConfig:
    workdir: Path
    scenario: str = "healthy"  # a name in demo/scenarios, or a YAML file
    rate: float = 20.0  # calls per second per service
    history_days: float = 30.0
    prometheus_port: int = 0  # 0: a free port
    alertmanager_port: int = 0
    scrape_interval: str = "5s"
    seed: int | None = None
    # Prometheus rule files; default: those generated into demo/data/rules/ when there are any
    rule_files: list[Path] | None = None
    # Alertmanager configuration; default: demo/data/alertmanager.yml, generated from examples/slo.yaml
    alertmanager_config: Path | None = None
    # Backfill every series the rules would have recorded over the history (demo.recorded),
    # so every window and chart covers it from the start (a few seconds for 30 days).
    backfill_rules: bool = True
    slo_spec: Path | None = None  # the spec of the rules, for the backfill; default: examples/slo.yaml
    # The SLO engine (in this process, API and /metrics on engine_port, scraped by Prometheus)
    engine: bool = False
    engine_port: int = 0
    engine_interval: float = 10.0
    # The dashboard over the engine (in this process, on dashboard_port; needs the engine)
    dashboard: bool = False
    dashboard_port: int = 0


@dataclass
class Stack:
    config: StackConfig
    scenario: Scenario | None = None
    servers: dict[tuple[str, str], MCPServer] = field(default_factory=dict)
    exporters: dict[tuple[str, str], str] = field(default_factory=dict)  # -> host:port
    history: history.History | None = None
    prometheus_url: str = ""
    alertmanager_url: str = ""
    engine_url: str = ""
    engine: object = None  # slo.engine.Engine, when config.engine
    slo_spec: Path | None = None  # the spec served: config.slo_spec with the scenario's maintenance windows
    dashboard_url: str = ""
    _processes: list[ManagedProcess] = field(default_factory=list)
    _http_servers: list = field(default_factory=list)
    _api_servers: list = field(default_factory=list)
    _load_thread: threading.Thread | None = None
    _load_loop: asyncio.AbstractEventLoop | None = None
    _stop_load: anyio.Event | None = None

    def endpoints(self) -> list[tuple[str, str]]:
        out = [("prometheus", self.prometheus_url), ("alertmanager", self.alertmanager_url)]
        if self.dashboard_url:
            out.append(("dashboard", self.dashboard_url))
        if self.engine_url:
            out.append(("engine", f"{self.engine_url}/api/v1/slos"))
        out += [(f"exporter {s} {v}", f"http://{t}/metrics") for (s, v), t in self.exporters.items()]
        return out

    def processes(self) -> list[ManagedProcess]:
        return list(self._processes)

    async def drive(self, stop: anyio.Event, rate: float | None = None) -> None:
        """Run the load on every service until `stop` is set."""
        rate = self.config.rate if rate is None else rate
        async with anyio.create_task_group() as tg:
            for service, mix in self.scenario.tools.items():
                versions = {v: (self.servers[service, v], w) for v, w in self.scenario.split.items()}
                tg.start_soon(drive, versions, mix, self.scenario.rate(service, rate), stop)

    def start_load(self) -> None:
        """Run the load in a background thread (for tests); `close()` stops it."""
        started = threading.Event()

        def run() -> None:
            async def main() -> None:
                self._stop_load = anyio.Event()
                self._load_loop = asyncio.get_running_loop()
                started.set()
                await self.drive(self._stop_load)

            anyio.run(main)

        self._load_thread = threading.Thread(target=run, name="demo-load", daemon=True)
        self._load_thread.start()
        started.wait(10)

    def close(self) -> None:
        if self._load_thread is not None:
            self._load_loop.call_soon_threadsafe(self._stop_load.set)
            self._load_thread.join(10)
        if self.engine is not None:
            self.engine.stop()
        for server in self._api_servers:
            server.stop()
        if self.engine is not None:
            self.engine.store.close()
        for proc in reversed(self._processes):
            proc.stop()
        for http_server in self._http_servers:
            http_server.shutdown()


# What `make rules` generates from the demo's SLO spec
# (examples/slo.yaml); tests fail when they are out of date.
DATA = Path(__file__).parent / "data"


def default_rule_files() -> list[Path]:
    """The rule files generated from the demo's SLO spec into demo/data/rules/, if any."""
    rules = DATA / "rules"
    return sorted([*rules.glob("*.yml"), *rules.glob("*.yaml")]) if rules.is_dir() else []


def default_alertmanager_config() -> Path:
    """The Alertmanager configuration generated from the demo's SLO spec."""
    return DATA / "alertmanager.yml"


def start_stack(config: StackConfig, say: Progress | Callable[[str], None] = lambda _m: None) -> Stack:
    """Start everything, reporting each step to `say` (a plain callable gets lines of text);
    on any failure, stop what was started and raise.

    Raises demo.processes.MissingBinary (with the install command) before
    anything starts when prometheus, promtool or prometheus-alertmanager is missing.
    """
    for binary in ("prometheus", "promtool", "prometheus-alertmanager"):
        find_binary(binary)
    stack = Stack(config)
    try:
        _start(stack, as_progress(say))
    except BaseException:
        stack.close()
        raise
    return stack


def _start(stack: Stack, progress: Progress) -> None:
    config = stack.config
    rng = random.Random(config.seed)
    stack.scenario = scenario = load(config.scenario)
    prom_dir = config.workdir / "prometheus"
    started_at = time.monotonic()  # live incidents are scheduled from here
    stack.slo_spec = _slo_spec(config, scenario, time.time())
    registries = {}
    for service, versions in scenario.versions.items():
        for version in versions:
            registry = registries[service, version] = CollectorRegistry()
            stack.servers[service, version] = build_server(scenario, service, version, registry, rng, started_at)
            http_server, _ = start_metrics_server(0, registry=registry)
            stack._http_servers.append(http_server)
            stack.exporters[service, version] = f"127.0.0.1:{http_server.server_port}"

    # History, then live counters seeded where it ends, all before Prometheus
    # starts scraping: backfilled and live samples join as one series.
    marker = prom_dir / "history-done"
    if config.history_days > 0 and not marker.exists():
        targets = {key: {"job": JOB, "instance": target} for key, target in stack.exporters.items()}
        stack.history = _backfill(config, scenario, targets, prom_dir, stack.slo_spec, progress)
        for (service, version), registry in registries.items():
            history.seed_registry(registry, stack.history, service, version)
        marker.write_text("")
    elif config.history_days > 0:
        progress.step(f"history: kept from the last run in {prom_dir}, no backfill")

    progress.step("starting Alertmanager")
    am_port = config.alertmanager_port or free_port()
    am_config = config.alertmanager_config or _alertmanager_config(stack)
    stack._processes.append(start_alertmanager(config.workdir / "alertmanager", am_port, am_config.read_text()))
    stack.alertmanager_url = f"http://127.0.0.1:{am_port}"

    prom_port = config.prometheus_port or free_port()
    stack.prometheus_url = f"http://127.0.0.1:{prom_port}"
    api = None
    if config.engine:
        progress.step("starting the SLO engine's API")
        api = _start_engine(stack)
    progress.step("starting Prometheus" + (" on the history" if config.history_days > 0 else ""))
    rule_files = default_rule_files() if config.rule_files is None else config.rule_files
    stack._processes.append(start_prometheus(
        prom_dir, prom_port, list(stack.exporters.values()), config.scrape_interval,
        rule_files=[str(f) for f in rule_files], alertmanager=f"127.0.0.1:{am_port}",
        engine=f"{api.host}:{api.port}" if api else None,
    ))
    if stack.engine is not None:
        stack.engine.start()
        if config.dashboard:
            progress.step("starting the dashboard")
            _start_dashboard(stack)
        # The URLs come after the engine's first results, so the dashboard has them to show.
        progress.step("engine: first evaluation")
        _wait_first_tick(stack.engine)
    progress.done()


def _wait_first_tick(engine) -> None:
    """Until the engine's first tick has ended (it may fail: the engine logs why and retries)."""
    deadline = time.monotonic() + engine.timeout + 5
    while engine.health.last_duration is None and time.monotonic() < deadline:
        time.sleep(0.05)


def _start_dashboard(stack: Stack) -> None:
    """The dashboard over the engine's API, served from a thread (Werkzeug)."""
    import threading

    from werkzeug.serving import make_server

    from dashboard.app import create_app
    from dashboard.source import EngineSource

    app = create_app(EngineSource(stack.engine_url), stack.prometheus_url, stack.engine.spec,
                     alertmanager_url=stack.alertmanager_url)
    server = make_server("127.0.0.1", stack.config.dashboard_port, app.server, threaded=True)
    threading.Thread(target=server.serve_forever, name="mcp-slo-dashboard", daemon=True).start()
    stack._http_servers.append(server)
    stack.dashboard_url = f"http://127.0.0.1:{server.server_port}"


def _start_engine(stack: Stack):
    """The SLO engine on the stack's Prometheus, its API listening before Prometheus
    starts (which scrapes its /metrics); it ticks once Prometheus is up."""
    from slo import importers
    from slo.engine.api import BackgroundServer, create_app
    from slo.engine.backend import Backend, BackendOptions
    from slo.engine.scheduler import Engine
    from slo.engine.store import Store

    config = stack.config
    spec = importers.load(stack.slo_spec).spec
    timeout = 0.8 * config.engine_interval
    backend = Backend(BackendOptions(url=stack.prometheus_url, timeout=timeout / 2, retries=1))
    # judge_history: the canaries judged over their life in the history too, in the engine's
    # background from its start (a few seconds for a 12h canary: not worth holding the URLs for)
    # alertmanager: run-time maintenance windows (`mcp-slo maintenance start`) get their silence there
    stack.engine = Engine(spec, backend, Store(config.workdir / "engine.db"), interval=config.engine_interval,
                          timeout=timeout, judge_history=config.history_days * 86400,
                          alertmanager=stack.alertmanager_url)
    api = BackgroundServer(create_app(stack.engine), port=config.engine_port)
    stack._api_servers.append(api)
    stack.engine_url = api.url
    return api


def _backfill(config: StackConfig, scenario: Scenario, targets, prom_dir: Path, spec_path: Path,
              progress: Progress) -> history.History:
    """Draw the history and load it into Prometheus's data directory, with the series the
    rules would have recorded over it (config.backfill_rules): two promtool processes,
    the raw counters' started while the recorded series are computed."""
    past = history.generate(scenario, end=time.time(), days=config.history_days,
                            rates={s: scenario.rate(s, config.rate) for s in scenario.versions}, seed=config.seed or 0,
                            progress=progress.step)  # a step per service
    config.workdir.mkdir(parents=True, exist_ok=True)
    files = [config.workdir / "history.om"]
    loads = []
    try:
        progress.step("history: writing the samples")
        history.write_openmetrics(past, files[0], targets,
                                  progress=lambda msg: progress.note(msg.removeprefix("history: ")))
        loads.append(history.Backfill(files[0], prom_dir / "data"))
        if config.backfill_rules:
            from slo import importers
            from slo.plan import plan

            progress.step("history: computing the series the rules record")
            series = recorded.record(past, plan(importers.load(spec_path).spec))
            files.append(config.workdir / "recorded.om")
            count = recorded.write_openmetrics(series, files[1], past.timestamps[-1])
            progress.note(f"{count:,} samples of {len(series)} recorded series")
            loads.append(history.Backfill(files[1], prom_dir / "data"))
        progress.step("history: loading into Prometheus blocks (promtool)")
        for load_ in loads:
            load_.wait()
    finally:
        for f in files:
            f.unlink(missing_ok=True)
    progress.done()
    return past


def _slo_spec(config: StackConfig, scenario: Scenario, started: float) -> Path:
    """The SLO spec the stack serves: the configured one (examples/slo.yaml by default), with
    the scenario's maintenance windows added at their times from `started` (written to the
    workdir)."""
    base = config.slo_spec or default_slo_spec()
    if not scenario.maintenance:
        return base
    raw = yaml.safe_load(base.read_text())

    def instant(offset: float) -> str:
        return datetime.fromtimestamp(round(started + offset), UTC).isoformat().replace("+00:00", "Z")

    raw["maintenance"] = [*(raw.get("maintenance") or []), *(
        {"name": f"scenario-{i + 1}", "reason": w.reason, "mode": w.mode, "services": [w.service],
         "start": instant(w.start), "end": instant(w.start + w.duration)}
        for i, w in enumerate(scenario.maintenance))]
    config.workdir.mkdir(parents=True, exist_ok=True)
    path = config.workdir / "slo.yaml"
    # the header names files: escaped, so that a name cannot start YAML
    path.write_text(comment(f"{base} with the {scenario.name} scenario's maintenance windows")
                    + yaml.safe_dump(raw, sort_keys=False))
    return path


def _alertmanager_config(stack: Stack) -> Path:
    """The demo's Alertmanager configuration; with the scenario's maintenance windows (in the
    spec served), generated again from that spec, so that it mutes them too."""
    if stack.slo_spec == (stack.config.slo_spec or default_slo_spec()):
        return default_alertmanager_config()
    from alerts import alertmanager
    from slo import importers

    path = stack.config.workdir / "alertmanager.yml"
    path.write_text(alertmanager.render(importers.load(stack.slo_spec).spec, source=str(stack.slo_spec)))
    return path


def default_slo_spec() -> Path:
    """The SLO spec the demo's rules are generated from (`make rules`)."""
    return Path(__file__).resolve().parent.parent / "examples" / "slo.yaml"

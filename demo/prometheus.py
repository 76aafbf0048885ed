"""A real Prometheus as a managed child process, with a generated configuration."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx

from demo.processes import ManagedProcess, find_binary


JOB = "mcp"  # the scrape job of every exporter


ENGINE_JOB = "mcp-slo-engine"  # the SLO engine's own /metrics


def prometheus_config(targets: Sequence[str], scrape_interval: str = "5s", rule_files: Sequence[str] = (),
                      alertmanager: str | None = None, engine: str | None = None) -> str:
    lines = [
        "global:",
        f"  scrape_interval: {scrape_interval}",
        f"  evaluation_interval: {scrape_interval}",
        "scrape_configs:",
        f"  - job_name: {JOB}",
        "    static_configs:",
        "      - targets: [" + ", ".join(f'"{t}"' for t in targets) + "]",
    ]
    if engine:
        lines += [f"  - job_name: {ENGINE_JOB}", "    static_configs:", f'      - targets: ["{engine}"]']
    if rule_files:
        lines += ["rule_files:"] + [f'  - "{f}"' for f in rule_files]
    if alertmanager:
        lines += ["alerting:", "  alertmanagers:", "    - static_configs:", f'        - targets: ["{alertmanager}"]']
    return "\n".join(lines) + "\n"


def start_prometheus(workdir: Path, port: int, targets: Sequence[str], scrape_interval: str = "5s",
                     ready_timeout: float = 30.0, rule_files: Sequence[str] = (),
                     alertmanager: str | None = None, data_dir: Path | None = None,
                     engine: str | None = None, exemplars: bool = True) -> ManagedProcess:
    """Start Prometheus on 127.0.0.1:port scraping `targets` (and the SLO engine at
    `engine`, host:port); returns once /-/ready answers. Its data lives in `data_dir`, by
    default workdir/data. With `exemplars` it keeps the exemplars (trace ids) scraped with the
    duration buckets, for the latency charts to mark."""
    binary = find_binary("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(prometheus_config(targets, scrape_interval, rule_files, alertmanager, engine))
    proc = ManagedProcess(
        "prometheus",
        [binary, f"--config.file={config}", f"--storage.tsdb.path={data_dir or workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle",
         # the default 15d would drop most of the 30-day history and any 30d SLO window
         "--storage.tsdb.retention.time=60d",
         # Prometheus 2.x drops scraped exemplars unless this experimental feature is on
         *(["--enable-feature=exemplar-storage"] if exemplars else [])],
        workdir / "prometheus.log",
    ).start()
    url = f"http://127.0.0.1:{port}"
    proc.wait_until(lambda: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200, ready_timeout, "/-/ready")
    return proc

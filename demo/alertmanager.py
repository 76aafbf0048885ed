"""A real Alertmanager as a managed child process."""

from __future__ import annotations

from pathlib import Path

import httpx

from demo.processes import ManagedProcess, find_binary

# A configuration that notifies nobody (alerts still show in Alertmanager's UI
# and API). The demo stack uses demo/data/alertmanager.yml, generated from its SLO spec.
DEFAULT_CONFIG = """\
route:
  receiver: nobody
  group_by: [alertname, service, slo]
receivers:
  - name: nobody
"""


def start_alertmanager(workdir: Path, port: int, config: str = DEFAULT_CONFIG,
                       ready_timeout: float = 30.0) -> ManagedProcess:
    """Start Alertmanager on 127.0.0.1:port (clustering off); returns once /-/ready answers."""
    binary = find_binary("prometheus-alertmanager")
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "alertmanager.yml"
    config_file.write_text(config)
    proc = ManagedProcess(
        "alertmanager",
        [binary, f"--config.file={config_file}", f"--storage.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        workdir / "alertmanager.log",
    ).start()
    url = f"http://127.0.0.1:{port}"
    proc.wait_until(lambda: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200, ready_timeout, "/-/ready")
    return proc

"""`mcp-slo demo` runs the demo services under load with a real Prometheus,
prints its endpoints and stops cleanly."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import httpx
import pytest

from demo.demo_cli import _StopRequest
from tests import binaries
from tests.support import free_port, wait_until


@pytest.mark.integration
def processes_using(path) -> dict[int, str]:
    """PIDs (and command lines) of live processes whose command line mentions `path`."""
    found = {}
    for proc_dir in Path("/proc").iterdir():
        if proc_dir.name.isdigit():
            try:
                cmdline = (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(path) in cmdline:
                found[int(proc_dir.name)] = cmdline
    return found


@pytest.mark.integration
def test_demo_serves_every_service_version_to_prometheus_and_exits_cleanly(tmp_path):
    binaries.require("prometheus")
    port = free_port()
    workdir = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_slo", "demo", "--exit-after", "40", "--prometheus-port", str(port),
         "--workdir", str(workdir),
         "--scenario", "regression", "--rate", "40", "--seed", "1", "--alertmanager-port", "0", "--engine-port", "0",
         "--dashboard-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: any(line.startswith(f"prometheus: {url}") for line in lines), timeout=60,
                   what="the prometheus endpoint line")

        def both_versions_of_both_services():
            r = httpx.get(f"{url}/api/v1/query",
                          params={"query": 'sum by (service, version) (mcp_operations_total{method="tools/call"})'})
            got = {(s["metric"]["service"], s["metric"]["version"]) for s in r.json()["data"]["result"]}
            return got == {("filesystem", "v1"), ("filesystem", "v2"), ("analytics", "v1"), ("analytics", "v2")}

        wait_until(both_versions_of_both_services, timeout=20, what="samples of every service and version")
        # the SLO engine runs too, and Prometheus scrapes its results
        binaries.wait_for_promql(url, 'mcp_slo_status{job="mcp-slo-engine",service="analytics",slo="latency"}',
                                 timeout=30)
        # and the dashboard over it
        dashboard = next(line.split(": ", 1)[1].strip() for line in lines if line.startswith("dashboard: "))
        assert httpx.get(f"{dashboard}/healthz", timeout=5).json() == {"status": "ok"}
        assert "mcp-slo" in httpx.get(dashboard, timeout=5).text
        children = processes_using(workdir)
        assert any("prometheus " in c or "/prometheus " in c for c in children.values()), children
        assert any("alertmanager" in c for c in children.values()), children
        # 30 days of history for every service and version (the canary's two hours),
        # and live counters continued it without a reset
        for offset, versions in (("29d", {"v1"}), ("1h", {"v1", "v2"})):
            old = httpx.get(f"{url}/api/v1/query", params={
                "query": f"count by (service, version) (mcp_operations_total offset {offset})"}).json()
            got = {(r["metric"]["service"], r["metric"]["version"]) for r in old["data"]["result"]}
            assert got == {(s, v) for s in ("filesystem", "analytics") for v in versions}, (offset, got)
        resets = httpx.get(f"{url}/api/v1/query", params={"query": "sum(resets(mcp_operations_total[1h]))"}).json()
        assert float(resets["data"]["result"][0]["value"][1]) == 0
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(5)
    output = "".join(lines)
    for name in ("exporter filesystem v1: http://", "exporter analytics v2: http://", "alertmanager: http://",
                 "engine: http://", "demo stopped"):
        assert name in output, output
    # Every process the demo started is gone (by PID), and nothing answers on Prometheus's port.
    assert {pid for pid in children if Path(f"/proc/{pid}").exists()} == set()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=1)


@pytest.mark.integration
def test_a_missing_prometheus_gives_the_install_command_and_exit_code_2(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mcp_slo", "demo", "--exit-after", "1", "--workdir", str(tmp_path / "wd")],
        env={"PATH": str(tmp_path), "HOME": str(tmp_path)}, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "prometheus is not on PATH" in done.stderr
    assert "apt-get install --no-install-recommends prometheus" in done.stderr
    assert not (tmp_path / "wd").exists()  # nothing started, nothing written


def start_demo(tmp_path, *extra: str) -> tuple[subprocess.Popen, Path, list[str]]:
    workdir = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_slo", "demo", "--prometheus-port", "0", "--alertmanager-port", "0",
         "--engine-port", "0", "--dashboard-port", "0", "--history-days", "0", "--workdir", str(workdir), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    wait_until(lambda: any(line.startswith("exporter analytics v2:") for line in lines), timeout=60,
               what="the endpoint lines")
    return proc, workdir, lines


@pytest.mark.integration
def test_ctrl_c_stops_everything(tmp_path):
    binaries.require("prometheus")
    proc, workdir, lines = start_demo(tmp_path)
    children = processes_using(workdir)
    assert len(children) >= 2, children
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=60)  # a loaded CI machine: the engine's tick and the servers wind down
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the demo did not stop within 60 s of Ctrl-C; it printed:\n" + "".join(lines))
    assert code == 0, "".join(lines)
    assert {pid for pid in children if Path(f"/proc/{pid}").exists()} == set()


@pytest.mark.integration
def test_a_crashed_demo_leaves_no_orphans(tmp_path):
    binaries.require("prometheus")
    proc, workdir, lines = start_demo(tmp_path)
    children = processes_using(workdir)
    assert len(children) >= 2, children
    proc.kill()  # SIGKILL: no clean-up code runs in the demo
    proc.wait(timeout=10)
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() and _alive(pid) for pid in children),
               timeout=15, what="the demo's children to exit after it was killed")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited and only waits for its parent's wait()


def test_a_signal_before_the_event_loop_runs_still_stops_the_demo():
    # The CI failure this guards against: a Ctrl-C raised as KeyboardInterrupt inside a weakref
    # callback was ignored by Python and the demo ran on. The handler must only record it.
    request = _StopRequest()
    request(signal.SIGINT, None)  # before the loop exists: nothing raised, remembered

    async def serve() -> tuple[bool, bool]:
        early, late = anyio.Event(), anyio.Event()
        request.wake(early)
        first = early.is_set()
        request.wake(late)
        request.requested = False
        request(signal.SIGTERM, None)
        await asyncio.wait_for(late.wait(), 5)
        return first, late.is_set()

    assert anyio.run(serve) == (True, True)
    request(signal.SIGINT, None)  # after the loop closed: still nothing raised

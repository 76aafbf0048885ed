"""Helpers for the proxy tests: starting `mcp-slo proxy`, talking raw JSON-RPC
lines to it, and reading its /metrics."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.support import operations, samples, scrape, wait_until

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ROOT / "tests" / "servers"
PYTHON = sys.executable
VERSION = "v1"


def proxy_command(service: str, metrics_port: int, *options: str) -> list[str]:
    """`mcp-slo proxy` as a command line, before any `-- COMMAND`."""
    return [PYTHON, "-m", "mcp_slo", "proxy", "--service", service, "--version", VERSION,
            "--metrics-port", str(metrics_port), *options]


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def metrics_text(port: int) -> str:
    return scrape(f"http://127.0.0.1:{port}/metrics")


def active(text: str, service: str, version: str = VERSION) -> float:
    return samples(text, "mcp_operations_active").get((("service", service), ("version", version)), 0.0)


def assert_counts(port: int, service: str, expected: Mapping, *, in_flight: float = 0, timeout: float = 10) -> None:
    """Poll until /metrics shows exactly `expected` and `in_flight` operations active."""
    want = {k: float(v) for k, v in dict(expected).items() if v}

    def matches() -> bool:
        text = metrics_text(port)
        return operations(text, service=service) == want and active(text, service) == in_flight

    try:
        wait_until(matches, timeout=timeout, what="exact counts")
    except AssertionError:
        text = metrics_text(port)
        got = operations(text, service=service)
        assert got == want, f"/metrics counts {got}, expected {want}"
        assert active(text, service) == in_flight, f"{active(text, service)} active, expected {in_flight}"
        raise


def wait_for_metrics(port: int) -> None:
    wait_until(lambda: metrics_text(port), timeout=15, what=f"/metrics on port {port}")


def wait_for_http(url: str) -> None:
    def up() -> bool:
        httpx.get(url, timeout=1)  # any answer will do: the port accepts connections
        return True

    wait_until(up, timeout=15, what=url)


def stop(proc: subprocess.Popen, timeout: float = 3) -> int:
    """Terminate a process if it is still running, kill it if it must; its exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(timeout)


@contextmanager
def running(args: list[str], *, stop_timeout: float = 3, **popen) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(args, env=popen.pop("env", child_env()), **popen)
    try:
        yield proc
    finally:
        stop(proc, stop_timeout)


class RawStdio:
    """A process spoken to in raw lines: what a stdio MCP client sends and reads."""

    def __init__(self, args: list[str], env: Mapping[str, str] | None = None):
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(env) if env is not None else child_env(),
        )
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._stderr: list[bytes] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self._lines.put(line)
        self._lines.put(None)

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:  # type: ignore[union-attr]
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        return b"".join(self._stderr).decode(errors="replace")

    def send_line(self, line: bytes) -> None:
        self.proc.stdin.write(line)  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]

    def send(self, message: object) -> bytes:
        line = json.dumps(message).encode() + b"\n"
        self.send_line(line)
        return line

    def request(self, request_id: object, method: str, params: dict | None = None) -> bytes:
        message: dict = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        return self.send(message)

    def recv_line(self, timeout: float = 10) -> bytes:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line from the proxy in {timeout}s; stderr:\n{self.stderr}") from None
        if line is None:
            self._lines.put(None)
            raise AssertionError(f"the proxy closed its stdout; stderr:\n{self.stderr}")
        return line

    def recv(self, timeout: float = 10) -> dict:
        return json.loads(self.recv_line(timeout))

    def at_eof(self, timeout: float = 10) -> bool:
        try:
            return self._lines.get(timeout=timeout) is None
        except queue.Empty:
            return False

    def close_stdin(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]

    def wait(self, timeout: float = 15) -> int:
        return self.proc.wait(timeout)

    def __enter__(self) -> RawStdio:
        return self

    def __exit__(self, *exc: object) -> None:
        stop(self.proc)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass


# --- sessions of the official client ------------------------------------------


def handshake(client: Client, mode: str) -> Counter:
    """What opening the session counted."""
    if client.protocol_version >= "2026":
        return Counter({("server/discover", "", "success"): 1})
    counted = Counter({("initialize", "", "success"): 1})
    if mode == "auto":
        counted["server/discover", "", "error"] += 1  # the probe a handshake-era server refused
    return counted


async def tool_session(
    client: Client, *, client_timeout: str = "timeout", elicit: bool = True
) -> tuple[list, Counter, list]:
    """Every outcome against tests/servers/tool_server.py; returns what the client saw,
    the counts it must produce, and the progress it was sent.

    `client_timeout` is how the client's own deadline is counted: `timeout` when the
    client says so in notifications/cancelled; over 2026-07-28 streamable HTTP the
    client just closes the response stream, which can only be counted `cancelled`.
    `elicit`: whether the server can ask the client (not in handshake-era JSON-response mode).
    """
    seen: list = []
    expected: Counter = Counter()
    progress: list = []

    listed = await client.list_tools()
    seen.append(sorted(t.name for t in listed.tools))
    expected["tools/list", "", "success"] += 1

    seen.append((await client.call_tool("add", {"a": 2, "b": 3})).model_dump())
    expected["tools/call", "add", "success"] += 1
    failed = await client.call_tool("fail", {"message": "no luck"})
    assert failed.is_error
    seen.append(failed.model_dump())
    expected["tools/call", "fail", "error"] += 1
    unknown = await client.call_tool("no_such_tool", {})
    assert unknown.is_error
    seen.append(unknown.model_dump())
    expected["tools/call", "_other", "error"] += 1

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    seen.append((await client.call_tool("progress", {"steps": 3}, progress_callback=on_progress)).model_dump())
    expected["tools/call", "progress", "success"] += 1

    if elicit:
        seen.append((await client.call_tool("greet", {})).model_dump())
        # handshake-era: one call, during which the server asks the client (elicitation/create);
        # 2026-07-28: the server answers input_required and the client calls again with the answer
        expected["tools/call", "greet", "success"] += 1 if client.protocol_version < "2026" else 2

    try:
        await client.call_tool("slow", {"seconds": 30}, read_timeout_seconds=0.2)
    except MCPError as exc:
        seen.append(exc.code)
    else:
        raise AssertionError("slow did not time out")
    expected["tools/call", "slow", client_timeout] += 1

    with anyio.move_on_after(0.2) as scope:
        await client.call_tool("slow", {"seconds": 30})
    assert scope.cancelled_caught
    expected["tools/call", "slow", "cancelled"] += 1

    seen.append((await client.call_tool("echo", {"text": "still fine"})).model_dump())
    expected["tools/call", "echo", "success"] += 1
    return seen, expected, progress

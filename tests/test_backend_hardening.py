"""The engine's PromQL client against a server answering far more than any real answer:
the reply is cut at the size limit (64 MiB by default, `max_response_bytes`, the
engine's --max-response-size), the memory it takes stays bounded by that limit and is
given back, and the next answer works. The huge bodies are streamed by the server here,
never held in memory by the test."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mcp_slo import cli
from slo.engine.backend import DEFAULT_MAX_RESPONSE_BYTES, Backend, BackendError, BackendOptions
from slo.query import Sample
from tests.support import free_port

MiB = 1024 * 1024
GOOD = {"status": "success", "data": {"resultType": "vector", "result": [
    {"metric": {"service": "fs"}, "value": [1700000000, "1"]}]}}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        owner: Streamer = self.server.owner  # type: ignore[attr-defined]
        if owner.size is None:
            body = json.dumps(GOOD).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if owner.declare:
            self.send_header("Content-Length", str(owner.size))
        self.end_headers()  # without a Content-Length, the body ends when the connection closes
        # what starts like an answer and never ends: one 64 KiB buffer written over and over
        chunk = b'{"status": "success", "data": {"resultType": "vector", "result": [' + b" " * (65536 - 66)
        sent = 0
        try:
            while sent < owner.size:
                piece = chunk[:owner.size - sent]
                self.wfile.write(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: what the tests want
        finally:
            owner.sent.append(sent)

    def log_message(self, *args) -> None:
        pass


class Streamer:
    """An HTTP server on 127.0.0.1 answering every request with a body of `size` bytes
    (streamed; its Content-Length given when `declare`), or a small good answer when
    `size` is None; `sent` records the bytes written per huge answer before the client
    hung up."""

    def __init__(self, size: int | None):
        self.size = size
        self.declare = False
        self.sent: list[int] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.owner = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def streamer() -> Iterator[Streamer]:
    server = Streamer(None)
    yield server
    server.close()


def traced_peak(call) -> tuple[float, float, BaseException | None]:
    """(peak, still held after the call) of Python allocations during `call()`, in MiB, and
    what it raised."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    raised = None
    try:
        call()
    except BaseException as exc:  # noqa: BLE001 - returned to the test
        raised = exc
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (peak - base) / MiB, (held - base) / MiB, raised


def test_the_default_limit_is_64_mib_and_bounds_the_memory(streamer):
    assert DEFAULT_MAX_RESPONSE_BYTES == 64 * MiB
    streamer.size = 100 * MiB  # above the default limit
    backend = Backend(BackendOptions(url=streamer.url, timeout=20, retries=0))
    try:
        peak, held, raised = traced_peak(lambda: backend.query("up"))
        assert isinstance(raised, BackendError), raised
        assert raised.kind == "bad_response" and "\n" not in str(raised)
        assert "reply larger than the 64 MiB limit" in str(raised) and "query: up" in str(raised)
        assert peak < 64 + 8, f"{peak:.1f} MiB held while reading a reply cut at 64 MiB"
        assert held < 1, f"{held:.1f} MiB still held after the failed call"
        # and the backend goes on: the next answer is read in full
        streamer.size = None
        assert backend.query("up") == [Sample({"service": "fs"}, 1.0)]
    finally:
        backend.close()


def test_a_configured_limit_cuts_a_gigabyte_answer_early(streamer):
    streamer.size = 1024 * MiB
    backend = Backend(BackendOptions(url=streamer.url, timeout=20, retries=0, max_response_bytes=2 * MiB))
    try:
        began = time.monotonic()
        peak, held, raised = traced_peak(lambda: backend.query("up"))
        assert isinstance(raised, BackendError) and "reply larger than the 2 MiB limit" in str(raised), raised
        assert time.monotonic() - began < 5
        assert peak < 2 + 6, f"{peak:.1f} MiB"
        assert held < 1, f"{held:.1f} MiB"
        # the client hung up: the server wrote what the socket buffers took, not the gigabyte
        deadline = time.monotonic() + 10
        while not streamer.sent and time.monotonic() < deadline:
            time.sleep(0.02)
        assert streamer.sent and streamer.sent[0] < 64 * MiB, streamer.sent
        streamer.size = None
        assert backend.query("up") == [Sample({"service": "fs"}, 1.0)]
    finally:
        backend.close()


def test_a_declared_size_over_the_limit_is_refused_before_reading(streamer):
    streamer.size, streamer.declare = 1024 * MiB, True
    backend = Backend(BackendOptions(url=streamer.url, timeout=20, retries=0, max_response_bytes=8 * MiB))
    try:
        peak, _, raised = traced_peak(lambda: backend.query("up"))
        assert isinstance(raised, BackendError) and raised.kind == "bad_response", raised
        assert f"reply larger than the 8 MiB limit (Content-Length {1024 * MiB})" in str(raised)
        assert peak < 2, f"{peak:.1f} MiB"
    finally:
        backend.close()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "64MiB"])
def test_the_limit_must_be_a_positive_number_of_bytes(bad):
    with pytest.raises(ValueError, match="max_response_bytes must be a positive integer"):
        BackendOptions(url="http://127.0.0.1:9090", max_response_bytes=bad)


def test_the_engine_option_sets_the_limit(streamer, tmp_path, capsys):
    streamer.size = 256 * MiB
    args = ["engine", "--config", "examples/slo.yaml", "--prometheus", streamer.url, "--store",
            str(tmp_path / "e.db"), "--once", "--max-response-size", "1MiB"]
    assert cli.main(args) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] is False and "reply larger than the 1 MiB limit" in summary["error"], summary
    for bad in ("0", "lots", "-5MiB", "1.5KiB"):
        assert cli.main([*args[:-2], f"--max-response-size={bad}"]) == 2
        err = capsys.readouterr().err
        assert "--max-response-size" in err and len(err.strip().splitlines()) == 1, err


# `mcp-slo engine` as a process that reports its own peak resident memory (VmHWM, since
# its exec: the rusage of a child would count the test process it was forked from)
_REPORTING_PEAK = """
import sys
from mcp_slo import cli
code = cli.main(sys.argv[1:])
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(int(peak.split()[1]) / 1024, file=sys.stderr)
sys.exit(code)
"""


def _engine_peak_rss(prometheus: str, store: str) -> tuple[int, float, str]:
    """Run `mcp-slo engine --once` as a process: (exit code, peak resident MiB, stdout)."""
    done = subprocess.run([sys.executable, "-c", _REPORTING_PEAK, "engine", "--config", "examples/slo.yaml",
                           "--prometheus", prometheus, "--store", store, "--once"],
                          capture_output=True, text=True, timeout=120)
    return done.returncode, float(done.stderr.strip().splitlines()[-1]), done.stdout


@pytest.mark.integration
def test_the_engine_process_stays_within_the_limit(streamer, tmp_path):
    """The engine's peak resident memory on a 128 MiB answer is its memory without any
    answer plus at most the 64 MiB limit (and some slack), not a multiple of the answer."""
    code, baseline, _ = _engine_peak_rss(f"http://127.0.0.1:{free_port()}", str(tmp_path / "a.db"))
    assert code == 1
    streamer.size = 128 * MiB
    code, peak, out = _engine_peak_rss(streamer.url, str(tmp_path / "b.db"))
    assert code == 1 and "reply larger than the 64 MiB limit" in json.loads(out)["error"], out
    assert peak < baseline + 64 + 24, f"peak {peak:.0f} MiB against {baseline:.0f} MiB without an answer"

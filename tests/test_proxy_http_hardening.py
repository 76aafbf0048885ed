"""The streamable HTTP proxy against hostile clients: request targets that try to
reach another host, bodies too large to hold, and connections that never finish
their request. Each test runs a real `mcp-slo proxy` process in front of a real
(scripted) upstream and speaks raw HTTP over sockets where a client library
would refuse to send what an attacker sends.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from tests.proxy_support import PYTHON, child_env, metrics_text, proxy_command, running, wait_for_http, wait_for_metrics
from tests.servers.scripted_http import ScriptedUpstream, serve
from tests.support import free_port, wait_until

JSONRPC_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
MiB = 1 << 20

# Runs the rest of the command line with at most N open files, keeping the pid.
LIMIT_FDS = "import os, resource, sys; n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); " \
            "os.execv(sys.argv[2], sys.argv[2:])"


class Proxy:
    def __init__(self, proc: subprocess.Popen, port: int, metrics_port: int, stderr: Path):
        self.proc, self.port, self.metrics_port, self.stderr = proc, port, metrics_port, stderr
        self.url = f"http://127.0.0.1:{port}/mcp"

    def stderr_text(self) -> str:
        return self.stderr.read_text(errors="replace")

    def open_files(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def peak_rss(self) -> int:
        """The process's peak resident memory so far (VmHWM), in bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc status")

    def call(self, request_id: int = 1) -> httpx.Response:
        return httpx.post(self.url, content=rpc(request_id, "tools/list"), headers=JSONRPC_HEADERS, timeout=5)


@contextmanager
def proxy(upstream_url: str, tmp_path: Path, *options: str, fd_limit: int | None = None) -> Iterator[Proxy]:
    port, metrics_port = free_port(), free_port()
    command = proxy_command("hardened", metrics_port, "--upstream", upstream_url,
                            "--listen", f"127.0.0.1:{port}", *options)
    if fd_limit is not None:
        command = [PYTHON, "-c", LIMIT_FDS, str(fd_limit), *command]
    stderr = tmp_path / f"proxy-{port}.stderr"
    with stderr.open("wb") as err, running(command, stderr=err, env=child_env()) as proc:
        wait_for_metrics(metrics_port)
        wait_for_http(f"http://127.0.0.1:{port}/")
        yield Proxy(proc, port, metrics_port, stderr)


@pytest.fixture
def upstreams():
    """(the proxy's upstream, a decoy nothing may reach, the upstream's MCP URL, the decoy's port)."""
    upstream, decoy = ScriptedUpstream(), ScriptedUpstream()
    upstream_port, decoy_port = free_port(), free_port()
    with serve(upstream, upstream_port), serve(decoy, decoy_port):
        yield upstream, decoy, f"http://127.0.0.1:{upstream_port}/mcp", decoy_port


def rpc(request_id: object, method: str) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method}).encode()


def read_answer(sock: socket.socket, timeout: float = 10) -> bytes:
    """Everything the peer sends until it closes (or resets) the connection."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def read_one_response(sock: socket.socket, timeout: float = 10) -> bytes:
    """One response with a Content-Length, leaving the connection open."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def exchange(port: int, request: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        return read_answer(sock, timeout)


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), f"not an HTTP answer: {answer[:200]!r}"
    return int(answer.split(b" ", 2)[1])


def body_of(answer: bytes) -> bytes:
    return answer.partition(b"\r\n\r\n")[2]


# --- 1. the request target cannot choose the host --------------------------------


@pytest.mark.integration
def test_a_request_target_cannot_send_the_proxy_anywhere_but_its_upstream(upstreams, tmp_path):
    upstream, decoy, upstream_url, decoy_port = upstreams
    hostile = [
        f"*@127.0.0.1:{decoy_port}/x",  # the userinfo trick of the issue
        "*",
        f"*%40127.0.0.1:{decoy_port}/x",
        f"//127.0.0.1:{decoy_port}/x",  # authority-relative
        f"///127.0.0.1:{decoy_port}/x",
        f"/%2F%2F127.0.0.1:{decoy_port}/x",  # authority-relative once decoded
        f"/%2f127.0.0.1:{decoy_port}/x",
        f"/x@127.0.0.1:{decoy_port}/y",
        f"/mcp%40127.0.0.1:{decoy_port}",
        f"/\\127.0.0.1:{decoy_port}/x",  # a backslash some servers read as a slash
        f"/mcp%5C127.0.0.1:{decoy_port}",
        f"@127.0.0.1:{decoy_port}/x",  # these three the HTTP parser refuses itself
        f"%2A@127.0.0.1:{decoy_port}/x",
        f"\\\\127.0.0.1:{decoy_port}/x",
    ]
    with proxy(upstream_url, tmp_path) as p:
        del upstream.requests[:]  # the proxy's start was awaited with a GET through it
        for target in hostile:
            for method in ("GET", "POST"):
                body = rpc(1, "tools/list") if method == "POST" else b""
                request = (f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{p.port}\r\n"
                           f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                           f"Connection: close\r\n\r\n").encode() + body
                answer = exchange(p.port, request)
                assert status_of(answer) == 400, (target, answer[:300])
                text = body_of(answer)
                assert str(decoy_port).encode() not in text, "the answer echoes the request target"
                assert text.count(b"\n") <= 1 and b"Traceback" not in text, text
        assert decoy.requests == [] and upstream.requests == []

        # An absolute-form target is allowed by HTTP/1.1; its authority is ignored.
        request = (f"POST http://127.0.0.1:{decoy_port}/mcp HTTP/1.1\r\nHost: 127.0.0.1:{decoy_port}\r\n"
                   f"Content-Type: application/json\r\nAccept: application/json\r\n"
                   f"Content-Length: {len(rpc(2, 'ping'))}\r\nConnection: close\r\n\r\n").encode() + rpc(2, "ping")
        answer = exchange(p.port, request)
        assert status_of(answer) == 200
        assert decoy.requests == [] and [r["path"] for r in upstream.requests] == ["/mcp"]

        # legitimate paths and queries still pass, "@" in a query included
        r = httpx.post(p.url + "?who=a@b", content=rpc(3, "tools/list"), headers=JSONRPC_HEADERS, timeout=5)
        assert r.status_code == 200 and upstream.requests[-1]["query"] == b"who=a@b"
        assert p.proc.poll() is None
        assert decoy.requests == []
        assert "Traceback" not in p.stderr_text()


# --- 3. bodies are bounded ---------------------------------------------------------------


def send_until_answered(port: int, head: bytes, chunks: Iterable[bytes]) -> tuple[bytes, int]:
    """Send `head`, then `chunks` until the proxy answers or stops reading; returns
    (the answer, how many body bytes were sent)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        for chunk in chunks:
            sock.settimeout(0)
            try:
                early = sock.recv(65536, socket.MSG_PEEK)
            except BlockingIOError:
                early = None
            except OSError:
                break
            if early is not None:
                break  # answered (or closed) already
            sock.settimeout(10)
            try:
                sock.sendall(chunk)
            except OSError:  # the proxy closed the connection: stop sending
                break
            sent += len(chunk)
        return read_answer(sock), sent


def chunked(total: int, size: int = MiB) -> Iterator[bytes]:
    data = b"x" * size
    frame = f"{size:x}\r\n".encode() + data + b"\r\n"
    for _ in range(total // size):
        yield frame
    yield b"0\r\n\r\n"


@pytest.mark.integration
def test_a_too_large_body_is_refused_without_being_held_in_memory(upstreams, tmp_path):
    upstream, decoy, upstream_url, decoy_port = upstreams
    with proxy(upstream_url, tmp_path) as p:  # the default bound: 4 MiB
        assert p.call().status_code == 200
        before = p.peak_rss()
        announced = 200 * MiB

        # A Content-Length over the bound is answered before any of the body is read.
        head = (f"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {announced}\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", p.port)) as sock:
            sock.sendall(head + b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"pad":"')
            answer = read_answer(sock, timeout=10)
        assert status_of(answer) == 413, answer[:300]
        assert b"pad" not in body_of(answer)

        # A chunked body is counted as it arrives and refused at the bound.
        head = b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        answer, sent = send_until_answered(p.port, head, chunked(announced))
        assert status_of(answer) == 413, answer[:300]
        assert sent < announced / 4, f"the proxy read {sent} bytes of an oversized body"

        # A body under the bound is relayed.
        head = (f"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {3 * MiB}\r\nConnection: close\r\n\r\n").encode()
        answer, sent = send_until_answered(p.port, head, [b"x" * MiB] * 3)
        assert status_of(answer) == 400  # relayed: the upstream refuses a body that is not JSON

        grown = p.peak_rss() - before
        assert grown < 40 * MiB, f"the proxy's peak memory grew by {grown / MiB:.0f} MiB"
        assert all(len(r["body"]) <= 4 * MiB for r in upstream.requests)

        # the proxy carries on
        assert p.call(2).status_code == 200
        assert p.proc.poll() is None and "Traceback" not in p.stderr_text()


@pytest.mark.integration
def test_the_body_bound_is_an_option(upstreams, tmp_path):
    upstream, decoy, upstream_url, decoy_port = upstreams
    with proxy(upstream_url, tmp_path, "--max-body-bytes", "100") as p:
        del upstream.requests[:]  # the GET that awaited the proxy's start
        small = rpc(1, "tools/list")
        assert len(small) <= 100 and p.call().status_code == 200
        big = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"pad": "p" * 200}}).encode()
        r = httpx.post(p.url, content=big, headers=JSONRPC_HEADERS, timeout=5)
        assert r.status_code == 413
        assert r.json()["error"]["code"] == -32600 and "pad" not in r.text
        assert len(upstream.requests) == 1


# --- 4. connections and the time to send a request are bounded ---------------------------


@pytest.mark.integration
def test_an_unfinished_request_is_closed_after_the_header_timeout(upstreams, tmp_path):
    upstream, decoy, upstream_url, decoy_port = upstreams
    with proxy(upstream_url, tmp_path, "--header-timeout", "1") as p:
        del upstream.requests[:]  # the GET that awaited the proxy's start
        with socket.create_connection(("127.0.0.1", p.port)) as headers_only, \
                socket.create_connection(("127.0.0.1", p.port)) as body_stalled, \
                socket.create_connection(("127.0.0.1", p.port)) as silent:
            headers_only.sendall(b"POST /mcp HTTP/1.1\r\nHost: x\r\n")
            body_stalled.sendall(b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            started = time.monotonic()
            answers = [read_answer(s, timeout=10) for s in (headers_only, body_stalled, silent)]
            waited = time.monotonic() - started
        assert waited < 8, f"the connections were held {waited:.1f}s"
        assert [status_of(a) for a in answers] == [408, 408, 408], answers
        assert upstream.requests == []

        # on a kept-alive connection, the next request's headers are bounded too
        with socket.create_connection(("127.0.0.1", p.port)) as kept:
            body = rpc(1, "tools/list")
            kept.sendall(b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            assert status_of(read_one_response(kept)) == 200
            kept.sendall(b"POST /mcp HTTP/1.1\r\nHost: x\r\n")
            assert status_of(read_answer(kept, timeout=10)) == 408
        assert p.call().status_code == 200


def _raise_own_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"needs {wanted} open files, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


@pytest.mark.integration
def test_slow_header_connections_leave_metrics_and_calls_working(upstreams, tmp_path):
    upstream, decoy, upstream_url, decoy_port = upstreams
    attackers, max_connections, fd_limit = 2000, 200, 1024
    _raise_own_fd_limit(attackers + 500)
    options = ("--max-connections", str(max_connections), "--header-timeout", "2")
    with proxy(upstream_url, tmp_path, *options, fd_limit=fd_limit) as p, ExitStack() as stack:
        assert p.call().status_code == 200
        sockets = []
        for _ in range(attackers):
            sock = stack.enter_context(socket.socket())
            sock.settimeout(5)
            try:
                sock.connect(("127.0.0.1", p.port))
                sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: x\r\n")  # and never the rest
            except OSError:
                pass  # refused already
            sockets.append(sock)

        # /metrics answers while the connections are held
        wait_until(lambda: "mcp_operations_total" in metrics_text(p.metrics_port), timeout=10,
                   what="/metrics under a slow-header flood")
        assert p.open_files() < 2 * max_connections + 300

        def call_ok() -> bool:
            return p.call(2).status_code == 200

        wait_until(call_ok, timeout=20, what="an MCP call after the slow connections timed out")

        def all_closed() -> bool:
            for sock in sockets:
                sock.setblocking(False)
                try:
                    while sock.recv(65536):
                        pass
                except BlockingIOError:
                    return False  # still open, nothing to read
                except OSError:
                    pass  # reset: closed
            return True

        wait_until(all_closed, timeout=20, what="the proxy to close every slow connection")
        assert p.open_files() < 100
    log = p.stderr_text()
    assert len(log) < 20_000, f"{len(log)} bytes of log:\n{log[:2000]}"
    assert "Traceback" not in log


# --- the options ------------------------------------------------------------------------


@pytest.mark.integration
def test_the_bounds_show_in_help():
    out = subprocess.run([PYTHON, "-m", "mcp_slo", "proxy", "--help"], capture_output=True, text=True,
                         env=child_env(), timeout=60)
    assert out.returncode == 0
    for option in ("--max-body-bytes", "--max-connections", "--header-timeout"):
        assert option in out.stdout, option


@pytest.mark.integration
@pytest.mark.parametrize("option, value", [("--max-body-bytes", "0"), ("--max-connections", "0"),
                                           ("--header-timeout", "-1"), ("--max-body-bytes", "lots")])
def test_a_bad_bound_is_a_one_line_error(option, value):
    command = proxy_command("bad", free_port(), "--upstream", "http://127.0.0.1:1/mcp",
                            "--listen", f"127.0.0.1:{free_port()}", option, value)
    out = subprocess.run(command, capture_output=True, text=True, env=child_env(), timeout=60)
    assert out.returncode == 2
    assert option in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) <= 3  # argparse prints its usage first


# --- the log rate limiter ---------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _record(msg: str, *args: object, name: str = "collector.proxy", level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_a_repeated_log_line_is_written_once_per_interval_with_a_count():
    from collector.logfilter import RateLimitFilter

    clock = _Clock()
    limiter = RateLimitFilter(interval=10, clock=clock)
    passed = []
    for n in range(5):
        record = _record("request %r was never answered", n)
        if limiter.filter(record):
            passed.append(record.getMessage())
    other = _record("upstream failed")
    assert limiter.filter(other)  # another message is not held back by the first
    clock.now += 10
    later = _record("request %r was never answered", 99)
    assert limiter.filter(later)
    assert passed == ["request 0 was never answered"]
    assert later.getMessage() == "request 99 was never answered (4 more suppressed)"
    clock.now += 10
    again = _record("request %r was never answered", 100)
    assert limiter.filter(again) and again.getMessage() == "request 100 was never answered"
    # debug lines are all written: who asks for them wants every one
    assert all(limiter.filter(_record("relayed %d", n, level=logging.DEBUG)) for n in range(3))


# --- no client data in the log ---------------------------------------------------------

CARD = "4111111111111111"


@pytest.mark.integration
@pytest.mark.parametrize("level", ["warning", "debug"])
def test_request_ids_and_urls_never_reach_the_log(upstreams, tmp_path, level):
    """Ids, paths and queries are the client's data: a timed-out request, a cancelled
    one and one the upstream fails must be logged without them, at any level."""
    upstream, _, url, _ = upstreams
    with proxy(url, tmp_path, "--request-timeout", "0.5", "--log-level", level) as p:
        target = f"{p.url}?card={CARD}"
        timed_out = httpx.post(target, content=rpc(f"card-{CARD}", "hang"), headers=JSONRPC_HEADERS, timeout=10)
        assert timed_out.json()["error"]["code"] == -32001
        with pytest.raises(httpx.TimeoutException):  # the client gives up: cancelled
            httpx.post(target, content=rpc(f"cancel-{CARD}", "hang"), headers=JSONRPC_HEADERS, timeout=0.1)
        wait_until(lambda: "hang" in upstream.disconnected, timeout=10)
    log = p.stderr_text()
    assert CARD not in log, log
    assert "timed out" in log  # what happened is still said, in a sum

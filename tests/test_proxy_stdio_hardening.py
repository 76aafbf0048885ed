"""`mcp-slo proxy -- COMMAND` under abuse: oversized lines, secrets in messages,
a crashing server, floods of timeouts; and `--metrics-port 0`.

The integration tests run the real proxy process in front of a real server;
the unit tests pin the pieces (line splitting, envelope of a dropped line,
aggregated warnings) on their own.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from collector.proxy.framing import DEFAULT_MAX_MESSAGE_BYTES, LineSplitter, Oversized, partial_message
from collector.proxy.tracker import RepeatedWarning
from tests.proxy_support import (
    PYTHON,
    SERVERS,
    RawStdio,
    assert_counts,
    child_env,
    metrics_text,
    proxy_command,
    wait_for_metrics,
)
from tests.support import free_port, operations, wait_until

MiB = 1 << 20
CARD = "4929123456781234"


def scripted_server(tmp_path: Path) -> list[str]:
    return [PYTHON, str(SERVERS / "scripted_stdio.py"), str(tmp_path / "server.log")]


def sent(tmp_path: Path, request_id: object) -> bool:
    """Whether the scripted server answered this request (its log says so)."""
    return f"sent {json.dumps(request_id)}" in (tmp_path / "server.log").read_text().splitlines()


def proxied(service: str, port: int, server: list[str], *options: str) -> list[str]:
    return [*proxy_command(service, port, *options), "--", *server]


def memory_kib(pid: int, field: str) -> int:
    """A line of /proc/PID/status in KiB, e.g. VmRSS (now) or VmHWM (peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


class LoggedStdio(RawStdio):
    """RawStdio with the proxy's stderr in a file: complete once the process exited."""

    def __init__(self, args: list[str], stderr_path: Path):
        self.stderr_path = stderr_path
        with stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                         env=child_env())
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._read_stdout, daemon=True).start()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass


# --- unit: line splitting with a bound -----------------------------------------------


def test_the_default_bound_is_a_few_mebibytes():
    assert DEFAULT_MAX_MESSAGE_BYTES == 4 * MiB


def test_lines_within_the_bound_pass_whole_and_longer_ones_are_cut_out():
    splitter = LineSplitter(max_line=10)
    got = []
    for chunk in (b"0123456789\nabc", b"defghijklmnop", b"qrstuvwxyz" * 100, b"END\nok\n"):
        got += splitter.feed(chunk)
    assert got[0] == b"0123456789\n"  # exactly at the bound (the newline does not count)
    over = got[1]
    assert isinstance(over, Oversized)
    assert over.size == len(b"abcdefghijklmnop" + b"qrstuvwxyz" * 100 + b"END\n")
    assert over.head.startswith(b"abcdefghij") and over.tail.endswith(b"zEND")
    assert got[2:] == [b"ok\n"]
    assert splitter.buffered() == 0


def test_an_oversized_line_never_buffers_past_the_bound():
    splitter = LineSplitter(max_line=64 * 1024)
    for _ in range(200):
        assert splitter.feed(b"x" * MiB) == []
        assert splitter.buffered() <= 128 * 1024
    assert isinstance(splitter.rest(), Oversized)  # the stream ended inside it
    assert splitter.feed(b"next\n") == [b"next\n"]


def test_an_oversized_line_in_one_chunk_is_cut_out_too():
    splitter = LineSplitter(max_line=4)
    got = splitter.feed(b'{"id":1}\n{}\n')
    assert isinstance(got[0], Oversized) and got[0].size == 9 and got[1] == b"{}\n"


@pytest.mark.parametrize("line, want", [
    # python SDK order: the envelope first
    (b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"big","arguments":{"t":"' + b"x" * 5000
     + b'"}}}\n', {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "big"}}),
    # typescript SDK order: the envelope after the params
    (b'{"method":"tools/call","params":{"arguments":{"t":"' + b"x" * 5000 + b'"},"name":"big"},'
     b'"jsonrpc":"2.0","id":"a\\"b"}\r\n', {"method": "tools/call", "id": 'a"b', "jsonrpc": "2.0", "params": {}}),
    # a response: where its result starts is all that is known
    (b'{"result":{"content":[' + b"1," * 5000 + b'1]},"jsonrpc":"2.0","id":3}\n', {"id": 3, "jsonrpc": "2.0",
                                                                                 "result": None}),
    # an id inside the params is not the message's id
    (b'{"params":{"id":5,"t":"' + b"x" * 5000 + b'"},"method":"ping"}\n', {"method": "ping", "params": {}}),
    (b'{"method":"ping","params":{"t":"' + b"x" * 5000 + b'","id":5}}\n', {"method": "ping", "params": {}}),
    # not an object, or garbage
    (b"[" + b"1," * 5000 + b"1]\n", {}),
    (b"x" * 9000 + b"}\n", {}),
])
def test_the_envelope_of_a_dropped_line(line, want):
    splitter = LineSplitter(max_line=1000)
    (over,) = splitter.feed(line)
    assert isinstance(over, Oversized)
    assert partial_message(over) == want


# --- unit: aggregated warnings -----------------------------------------------------


def test_a_repeated_warning_is_logged_at_once_then_summed_up_per_interval(caplog):
    now = [100.0]
    warning = RepeatedWarning("things went wrong", interval=10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="collector.proxy"):
        warning.add()
        warning.add(5000)
        now[0] += 5
        warning.report()  # not yet: the interval has not passed
        now[0] += 5
        warning.report()
        warning.report()  # nothing new
        now[0] += 60
        warning.add(2)  # a quiet period passed: at once
        warning.add(3)
        warning.report(final=True)  # at exit, whatever the interval
    assert [r.getMessage() for r in caplog.records] == [
        "things went wrong: 1",
        "things went wrong: 5000 in the last 10s",
        "things went wrong: 2",
        "things went wrong: 3 in the last 0s",
    ]


# --- integration: oversized lines ----------------------------------------------------


@pytest.mark.integration
def test_a_200_megabyte_line_without_a_newline_is_not_held_and_the_session_goes_on(tmp_path):
    port = free_port()
    with RawStdio(proxied("big", port, scripted_server(tmp_path))) as proxy:
        wait_for_metrics(port)
        baseline = memory_kib(proxy.proc.pid, "VmRSS")
        proxy.send_line(b'{"jsonrpc":"2.0","id":"big","method":"tools/call","params":{"name":"x","arguments":{"t":"')
        chunk = b"x" * MiB
        for _ in range(200):  # a write blocks while the pipe is full: the proxy has read all but a pipe's worth
            proxy.proc.stdin.write(chunk)  # type: ignore[union-attr]
        proxy.proc.stdin.flush()  # type: ignore[union-attr]
        peak = memory_kib(proxy.proc.pid, "VmHWM")
        now = memory_kib(proxy.proc.pid, "VmRSS")
        print(f"proxy RSS: {baseline} KiB at start, {now} KiB now, {peak} KiB at most")
        assert peak < baseline + 40 * 1024, f"peak RSS {peak} KiB (started at {baseline} KiB)"

        proxy.send_line(b'"}}}\n')
        answer = proxy.recv(timeout=30)
        assert answer["id"] == "big" and answer["error"]["code"] == -32600, answer
        assert "too large" in answer["error"]["message"]
        proxy.request(2, "ping")
        assert proxy.recv()["id"] == 2
        assert_counts(port, "big", {("tools/call", "_other", "error"): 1, ("ping", "", "success"): 1})
        warnings = [line for line in proxy.stderr.splitlines() if "--max-message-bytes" in line]
        assert len(warnings) == 1 and "xxxx" not in proxy.stderr, proxy.stderr


@pytest.mark.integration
def test_oversized_client_lines_answered_by_id_wherever_it_is_or_dropped(tmp_path):
    port = free_port()
    limit = 64 * 1024
    with RawStdio(proxied("over", port, scripted_server(tmp_path), "--max-message-bytes", str(limit))) as proxy:
        wait_for_metrics(port)
        # the typescript SDK's order: the id comes last
        proxy.send_line(b'{"method":"tools/list","params":{"cursor":"' + b"c" * (2 * limit) +
                        b'"},"jsonrpc":"2.0","id":41}\n')
        assert proxy.recv() == {"jsonrpc": "2.0", "id": 41, "error": {
            "code": -32600, "message": f"Request too large: over the proxy's limit of {limit} bytes"}}
        # a notification has no id: dropped, nothing to answer
        proxy.send_line(b'{"jsonrpc":"2.0","method":"notifications/message","params":{"t":"' + b"n" * (2 * limit) +
                        b'"}}\n')
        # exactly at the limit: relayed (the server's answer, which echoes it, is over the limit)
        filler = b"f" * (limit - len(b'{"jsonrpc":"2.0","id":42,"method":"ping","params":{"t":""}}'))
        line = b'{"jsonrpc":"2.0","id":42,"method":"ping","params":{"t":"' + filler + b'"}}\n'
        assert len(line) == limit + 1
        proxy.send_line(line)
        assert proxy.recv()["error"]["code"] == -32603  # the next answer: nothing came for the notification
        wait_until(lambda: sent(tmp_path, 42), what="the server answering 42")
        assert_counts(port, "over", {("tools/list", "", "error"): 1, ("ping", "", "error"): 1})
        assert not sent(tmp_path, 41)
        wait_until(lambda: proxy.stderr.count("--max-message-bytes") == 3, what="three warnings")


@pytest.mark.integration
def test_an_oversized_response_from_the_server_becomes_an_error_for_its_request(tmp_path):
    """The scripted server echoes each request inside its answer, escaped: a
    request of 40 KB of backslashes gets an answer of over 80 KB."""
    port = free_port()
    with RawStdio(proxied("resp", port, scripted_server(tmp_path), "--max-message-bytes", "65536")) as proxy:
        wait_for_metrics(port)
        proxy.request(1, "tools/call", {"name": "echo", "arguments": {"t": "\\" * 20_000}})
        assert proxy.recv() == {"jsonrpc": "2.0", "id": 1, "error": {
            "code": -32603, "message": "Response too large: over the proxy's limit of 65536 bytes"}}
        proxy.request(2, "ping")
        assert proxy.recv()["id"] == 2
        assert_counts(port, "resp", {("tools/call", "_other", "error"): 1, ("ping", "", "success"): 1})


# --- integration: no message content in the log ----------------------------------------

# Writes every line it reads back as a line that is not JSON (so the proxy sees
# garbage carrying the client's bytes), then answers requests except "hang".
GARBAGE_SERVER = r"""
import json, sys
for line in sys.stdin.buffer:
    sys.stdout.buffer.write(b"! " + line)
    try:
        msg = json.loads(line)
    except ValueError:
        msg = None
    if isinstance(msg, dict) and "id" in msg and msg.get("method") != "hang":
        answer = {"jsonrpc": "2.0", "id": msg["id"], "result": {"echo": line.decode()}}
        sys.stdout.buffer.write(json.dumps(answer).encode() + b"\n")
    sys.stdout.buffer.flush()
"""


@pytest.mark.integration
@pytest.mark.parametrize("level", ["warning", "debug"])
def test_secrets_in_messages_never_reach_the_log(tmp_path, level):
    port = free_port()
    command = proxied("secret", port, [PYTHON, "-c", GARBAGE_SERVER], "--log-level", level,
                      "--request-timeout", "0.5", "--max-message-bytes", "4096")
    with LoggedStdio(command, tmp_path / "stderr") as proxy:
        wait_for_metrics(port)

        def answer(request_id) -> dict:
            while True:  # skip the server's garbage lines
                line = proxy.recv_line()
                if not line.startswith(b"! "):
                    message = json.loads(line)
                    assert message["id"] == request_id, message
                    return message

        # a tools/call line missing its closing brace, the card in its first 80 bytes
        proxy.send_line(b'{"id":1,"method":"tools/call","params":{"arguments":{"card":"' + CARD.encode() +
                        b'"},"name":"pay"}\n')
        # a valid one
        proxy.request(2, "tools/call", {"name": "pay", "arguments": {"card": CARD}})
        assert "result" in answer(2)
        # ids are the client's data too: reused while pending, then timed out
        proxy.request(f"card-{CARD}", "hang", {"card": CARD})
        proxy.request(f"card-{CARD}", "hang", {"card": CARD})
        assert answer(f"card-{CARD}")["error"]["code"] == -32001
        # over the size limit
        proxy.request(3, "tools/call", {"name": "pay", "arguments": {"card": CARD, "pad": "p" * 8000}})
        assert answer(3)["error"]["code"] == -32600
        proxy.close_stdin()
        assert proxy.wait() == 0
    log = proxy.stderr
    assert CARD not in log and CARD[:8] not in log and "pay" not in log, log
    assert "not JSON" in log  # what happened is still said, without the content
    if level == "debug":
        assert "tools/call" in log and "bytes" in log  # the method and the size


# --- integration: the metrics port, the exit grace, timeouts in bulk --------------------


@pytest.mark.integration
def test_metrics_port_zero_prints_the_port_it_picked(tmp_path):
    with RawStdio(proxied("anyport", 0, scripted_server(tmp_path))) as proxy:
        found = wait_until(lambda: re.search(r"^mcp-slo proxy: metrics on http://127\.0\.0\.1:(\d+)/metrics$",
                                             proxy.stderr, re.MULTILINE), what="the metrics URL on stderr")
        port = int(found.group(1))
        proxy.request(1, "ping")
        assert proxy.recv()["id"] == 1
        assert_counts(port, "anyport", {("ping", "", "success"): 1})


def crash_after_some_work(proxy: RawStdio, port: int) -> None:
    wait_for_metrics(port)
    proxy.request(1, "ping")
    assert proxy.recv()["id"] == 1
    proxy.request(2, "hang")
    proxy.request(3, "crash", {"code": 7})
    assert {proxy.recv()["id"], proxy.recv()["id"]} == {2, 3}  # both answered -32000 by the proxy
    assert proxy.at_eof()  # the client is told at once: stdout closed


FINAL_COUNTS = {("ping", "", "success"): 1, ("other", "", "error"): 2}


@pytest.mark.integration
def test_after_a_crash_metrics_stay_up_until_sigterm_then_the_exit_code_is_the_servers(tmp_path):
    port = free_port()
    with RawStdio(proxied("crash", port, scripted_server(tmp_path), "--exit-grace", "120")) as proxy:
        crash_after_some_work(proxy, port)
        assert_counts(port, "crash", FINAL_COUNTS)
        assert proxy.proc.poll() is None
        wait_until(lambda: "exited with code 7" in proxy.stderr and "--exit-grace" in proxy.stderr,
                   what="the warning about the exit")
        started = time.monotonic()
        proxy.proc.send_signal(signal.SIGTERM)  # ends the grace period early
        assert proxy.wait(timeout=10) == 7
        assert time.monotonic() - started < 10


@pytest.mark.integration
def test_after_a_crash_the_proxy_exits_by_itself_once_the_grace_period_is_over(tmp_path):
    port = free_port()
    with RawStdio(proxied("crash", port, scripted_server(tmp_path), "--exit-grace", "3")) as proxy:
        crash_after_some_work(proxy, port)
        assert operations(metrics_text(port), service="crash") == FINAL_COUNTS
        assert proxy.wait(timeout=30) == 7


@pytest.mark.integration
def test_a_client_that_closes_the_session_is_not_kept_waiting_by_the_grace_period(tmp_path):
    port = free_port()
    with RawStdio(proxied("bye", port, scripted_server(tmp_path), "--exit-grace", "120")) as proxy:
        wait_for_metrics(port)
        proxy.close_stdin()
        assert proxy.wait(timeout=20) == 0


@pytest.mark.integration
def test_many_timeouts_give_a_few_log_lines_that_add_up(tmp_path):
    port = free_port()
    count = 2000
    with RawStdio(proxied("flood", port, scripted_server(tmp_path), "--request-timeout", "0.5")) as proxy:
        wait_for_metrics(port)
        proxy.send_line(b"".join(json.dumps({"jsonrpc": "2.0", "id": i, "method": "hang"}).encode() + b"\n"
                                 for i in range(count)))
        assert sorted(proxy.recv()["id"] for _ in range(count)) == list(range(count))
        assert_counts(port, "flood", {("other", "", "timeout"): count})

        def reported() -> list[int]:
            return [int(n) for n in re.findall(r"requests timed out \(.*\): (\d+)", proxy.stderr)]

        assert len(reported()) <= 2, proxy.stderr
        wait_until(lambda: sum(reported()) == count, timeout=30, what="the summary line")
        assert len(reported()) <= 2, proxy.stderr
        assert len([line for line in proxy.stderr.splitlines() if "timed out" in line]) <= 2, proxy.stderr


@pytest.mark.integration
@pytest.mark.parametrize("option, value, message", [
    ("--max-message-bytes", "0", "--max-message-bytes must be at least 1"),
    ("--exit-grace", "-1", "--exit-grace cannot be negative"),
])
def test_bad_bounds_are_refused_in_one_line(option, value, message):
    done = subprocess.run([*proxy_command("bad", 0, option, value), "--", PYTHON, "-c", "pass"],
                          capture_output=True, text=True, env=child_env(), timeout=30)
    assert done.returncode == 2 and done.stderr.strip() == f"mcp-slo proxy: {message}", done.stderr

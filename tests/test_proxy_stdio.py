"""`mcp-slo proxy -- COMMAND`: a stdio MCP server measured from outside.

Real servers (the npm reference filesystem server, the official SDK's
MCPServer) driven by the official MCP client, directly and through the proxy:
the client must get the same answers, and /metrics must count exactly what the
client did. A scripted raw JSON-RPC server covers the edge cases byte by byte.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError
from prometheus_client import CollectorRegistry

from collector.metrics import Recorder
from collector.proxy.stdio import run_stdio_proxy
from collector.proxy.tracker import Tracker

from tests import session
from tests.binaries import require
from tests.proxy_support import (
    PYTHON,
    ROOT,
    SERVERS,
    VERSION,
    RawStdio,
    active,
    assert_counts,
    child_env,
    handshake,
    metrics_text,
    proxy_command,
    tool_session,
    wait_for_metrics,
)
from tests.support import free_port, operations, registry_text, scrape, wait_until

pytestmark = pytest.mark.integration

MODES = ["legacy", "auto"]
FILESYSTEM_PACKAGE = "@modelcontextprotocol/server-filesystem"


def params(command: list[str]) -> StdioServerParameters:
    return StdioServerParameters(command=command[0], args=command[1:], env=child_env(), cwd=str(ROOT))


def proxied(service: str, port: int, server: list[str], *options: str) -> list[str]:
    return [*proxy_command(service, port, *options), "--", *server]


async def check_counts(port: int, service: str, expected: Counter) -> None:
    # Read while the proxy still runs: it exits with the session.
    await anyio.to_thread.run_sync(lambda: assert_counts(port, service, expected))


# --- the reference filesystem server from npm ------------------------------------


@pytest.fixture(scope="session")
def filesystem_server() -> Path:
    """The npm package installed once per test session into .cache/npm (gitignored)."""
    npm = require("npm")
    require("node")
    prefix = ROOT / ".cache" / "npm"
    done = subprocess.run(
        [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--prefer-offline", FILESYSTEM_PACKAGE],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, f"npm install {FILESYSTEM_PACKAGE} failed:\n{done.stdout}\n{done.stderr}"
    entry = prefix / "node_modules" / FILESYSTEM_PACKAGE / "dist" / "index.js"
    assert entry.is_file(), f"{entry} missing after npm install"
    return entry


def populate(root: Path) -> None:
    """The same tree before each session, so both sessions see the same files."""
    if root.exists():
        shutil.rmtree(root)
    (root / "docs").mkdir(parents=True)
    (root / "notes.txt").write_text("first line\nsecond line\n")
    (root / "docs" / "guide.md").write_text("# Guide\n\nUse the proxy.\n")
    (root / "docs" / "todo.md").write_text("- measure\n- alert\n")


async def filesystem_session(client: Client, root: Path) -> tuple[list, Counter]:
    """A realistic session; returns what the client saw and the counts it must produce."""
    seen: list = []
    expected: Counter = Counter()

    async def call(tool: str, arguments: dict, *, fails: bool = False, label: str | None = None) -> None:
        result = await client.call_tool(tool, arguments)
        assert result.is_error is fails, result
        seen.append(result.model_dump())
        expected["tools/call", label or tool, "error" if fails else "success"] += 1

    listed = await client.list_tools()
    seen.append(sorted(t.name for t in listed.tools))
    expected["tools/list", "", "success"] += 1

    await call("read_text_file", {"path": str(root / "notes.txt")})
    await call("write_file", {"path": str(root / "docs" / "new.md"), "content": "written through MCP\n"})
    await call("read_text_file", {"path": str(root / "docs" / "new.md")})
    await call("search_files", {"path": str(root), "pattern": "*.md"})
    await call("list_directory", {"path": str(root / "docs")})
    await call("list_allowed_directories", {})
    await call("read_text_file", {"path": "/etc/hostname"}, fails=True)  # outside the allowed directory
    await call("read_text_file", {"path": str(root / "missing.txt")}, fails=True)
    await call("no_such_tool", {}, fails=True, label="_other")
    return seen, expected


@pytest.mark.parametrize("mode", MODES)
def test_filesystem_server_answers_the_same_and_is_counted_exactly(filesystem_server, tmp_path, mode):
    root = (tmp_path / "files").resolve()
    server = ["node", str(filesystem_server), str(root)]
    port = free_port()
    roots_asked: list[str] = []

    async def list_roots(context) -> types.ListRootsResult:
        # The server asks the client for its roots: a server-to-client request.
        roots_asked.append("asked")
        return types.ListRootsResult(roots=[types.Root(uri=root.as_uri(), name="files")])

    async def run(command: list[str], measure: bool):
        populate(root)
        async with Client(params(command), mode=mode, list_roots_callback=list_roots) as client:
            seen, expected = await filesystem_session(client, root)
            expected += handshake(client, mode)
            if measure:
                await check_counts(port, "filesystem", expected)
            return seen

    async def main():
        direct = await run(server, measure=False)
        asked_directly = len(roots_asked)
        through_proxy = await run(proxied("filesystem", port, server), measure=True)
        return direct, asked_directly, through_proxy

    direct, asked_directly, through_proxy = anyio.run(main)
    assert through_proxy == direct
    assert (root / "docs" / "new.md").read_text() == "written through MCP\n"
    # roots/list went server -> client -> server through the proxy too, and was not counted
    assert asked_directly >= 1 and len(roots_asked) == 2 * asked_directly


# --- the official SDK's MCPServer ------------------------------------------------


TOOL_SERVER = [PYTHON, str(SERVERS / "tool_server.py")]


@pytest.mark.parametrize("mode", MODES)
def test_python_server_outcomes_through_the_proxy(mode):
    port = free_port()
    elicited: list[str] = []

    async def elicit(context, request: types.ElicitRequestParams) -> types.ElicitResult:
        elicited.append(request.message)
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    async def run(command: list[str], measure: bool):
        async with Client(params(command), mode=mode, elicitation_callback=elicit) as client:
            seen, expected, progress = await tool_session(client)
            expected += handshake(client, mode)
            if measure:
                await check_counts(port, "tools", expected)
            return seen, progress

    async def main():
        return await run(TOOL_SERVER, False), await run(proxied("tools", port, TOOL_SERVER), True)

    (direct, direct_progress), (through_proxy, proxy_progress) = anyio.run(main)
    assert through_proxy == direct
    assert proxy_progress == direct_progress == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]
    assert elicited == ["What is your name?"] * 2


@pytest.mark.parametrize("mode", MODES)
def test_proxy_counts_what_in_process_instrumentation_counts(mode):
    """The shared outcome session against a server instrumented in process, behind the
    proxy: both /metrics must show the same series with the same counts."""
    inside, outside = free_port(), free_port()
    server = [PYTHON, str(SERVERS / "mcpserver_app.py"), str(inside)]

    async def main():
        async with Client(params(proxied("outcomes", outside, server)), mode=mode) as client:
            expected = await session.exercise(client)
            expected[session.handshake(client)] += 1

            def both_agree() -> None:
                assert_counts(outside, "outcomes", expected)
                assert_counts(inside, "outcomes", expected)

            await anyio.to_thread.run_sync(both_agree)

    anyio.run(main)


def test_fifty_concurrent_calls_on_one_connection():
    port = free_port()
    calls, rounds = 50, 20

    async def main():
        async with Client(params(proxied("busy", port, TOOL_SERVER))) as client:
            await client.list_tools()  # else each first call lists the tools itself
            wrong: list[tuple[str, str]] = []

            async def one(text: str) -> None:
                result = await client.call_tool("echo", {"text": text})
                if result.content[0].text != text:
                    wrong.append((text, result.content[0].text))

            for r in range(rounds):
                async with anyio.create_task_group() as tg:
                    for c in range(calls):
                        tg.start_soon(one, f"{r}-{c}")
            assert wrong == []
            expected = Counter({("tools/call", "echo", "success"): calls * rounds, ("tools/list", "", "success"): 1})
            expected += handshake(client, "auto")
            await check_counts(port, "busy", expected)

    anyio.run(main)


# --- edge cases, byte by byte with a scripted server -------------------------------


@pytest.fixture
def scripted(tmp_path):
    """`mcp-slo proxy` in front of the scripted server, spoken to in raw lines;
    yields (proxy, metrics port, server log)."""
    log = tmp_path / "server.log"
    log.touch()
    port = free_port()

    def start(*options: str, env=None) -> RawStdio:
        raw = RawStdio(proxied("raw", port, [PYTHON, str(SERVERS / "scripted_stdio.py"), str(log)], *options), env=env)
        started.append(raw)
        wait_for_metrics(port)
        return raw

    started: list[RawStdio] = []
    yield start, port, log
    for raw in started:
        raw.__exit__()


def sent(log: Path, request_id: object) -> bool:
    return f"sent {json.dumps(request_id)}" in log.read_text().splitlines()


def test_lines_pass_through_unchanged_both_ways(scripted):
    start, port, log = scripted
    with start() as proxy:
        # odd but valid JSON from the client: spacing, key order, escapes, non-ASCII
        line = b'{ "params" : {"name":"x", "arguments": {"t": "caf\\u00e9 \xe2\x9c\x93"}},"id":"abc","method":"tools/call" ,"jsonrpc":"2.0"}\n'
        proxy.send_line(line)
        answer = proxy.recv_line()
        # the server saw the exact bytes, and the client gets the server's exact bytes
        assert json.loads(answer)["result"]["echo"] == line.decode()
        assert answer.startswith(b'{"jsonrpc":  "2.0", "id":  "abc", "result":  {"echo":  ')
        assert "héllo ✓".encode() in answer

        proxy.request(7, "ping")
        assert proxy.recv()["id"] == 7
        # notifications pass through and are not counted
        proxy.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        proxy.send({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}})
        # string and number ids are different requests
        proxy.request("7", "tools/list")
        assert proxy.recv()["id"] == "7"
        # a successful call proves the tool exists: it gets its own label
        assert_counts(port, "raw", {("tools/call", "x", "success"): 1, ("ping", "", "success"): 1,
                                    ("tools/list", "", "success"): 1})
        proxy.close_stdin()
        assert proxy.wait() == 0


def test_server_to_client_requests_are_forwarded_not_counted(scripted):
    start, port, log = scripted
    with start() as proxy:
        proxy.request(1, "ask")
        asked = proxy.recv()
        assert asked == {"jsonrpc": "2.0", "id": "srv-1", "method": "sampling/createMessage", "params": {"maxTokens": 5}}
        proxy.send({"jsonrpc": "2.0", "id": "srv-1", "result": {"role": "assistant"}})
        answer = proxy.recv()
        assert answer["id"] == 1 and answer["result"] == {"client said": {"role": "assistant"}}
        # only the client's request: neither the server's request nor the client's answer to it
        assert_counts(port, "raw", {("other", "", "success"): 1})


def test_batches_count_each_request(scripted):
    start, port, log = scripted
    with start() as proxy:
        proxy.send([{"jsonrpc": "2.0", "id": 1, "method": "batch-me"},
                    {"jsonrpc": "2.0", "method": "notifications/initialized"}])
        answer = proxy.recv()
        assert [m["id"] for m in answer] == [1, "extra"]  # the unmatched "extra" passes through too
        assert_counts(port, "raw", {("other", "", "success"): 1})


def test_a_line_that_is_not_json_is_forwarded_and_not_counted(scripted):
    start, port, log = scripted
    with start() as proxy:
        proxy.send_line(b"this is {not json\n")
        # the server answers it as the spec says; the proxy relays that answer
        assert proxy.recv() == {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}
        proxy.request(2, "tools/list")
        assert proxy.recv()["id"] == 2
        assert_counts(port, "raw", {("tools/list", "", "success"): 1})
        assert "not JSON" in proxy.stderr


def test_a_ten_megabyte_message_passes_through(scripted):
    start, port, log = scripted
    with start("--max-message-bytes", str(32 * 1024 * 1024)) as proxy:  # the default is 4 MiB
        text = "x" * (10 * 1024 * 1024)
        line = proxy.request(3, "tools/call", {"name": "big", "arguments": {"text": text}})
        answer = proxy.recv_line(timeout=30)
        assert json.loads(answer)["result"]["echo"] == line.decode()
        proxy.request(4, "ping")
        assert proxy.recv()["id"] == 4
        assert_counts(port, "raw", {("tools/call", "big", "success"): 1, ("ping", "", "success"): 1})


def test_cancellation_is_counted_at_once_and_the_late_answer_still_forwarded(scripted):
    start, port, log = scripted
    with start() as proxy:
        proxy.request(5, "slow", {"seconds": 1.0})
        proxy.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
                    "params": {"requestId": 5, "reason": "user pressed stop"}})
        assert_counts(port, "raw", {("other", "", "cancelled"): 1})
        assert proxy.recv()["id"] == 5  # forwarded, as without the proxy
        proxy.request(6, "slow", {"seconds": 1.0})
        proxy.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
                    "params": {"requestId": 6, "reason": "Request timed out"}})
        assert proxy.recv()["id"] == 6
        assert_counts(port, "raw", {("other", "", "cancelled"): 1, ("other", "", "timeout"): 1})


def test_a_request_never_answered_times_out(scripted):
    start, port, log = scripted
    with start("--request-timeout", "0.5") as proxy:
        proxy.request(8, "hang")
        wait_until(lambda: active(metrics_text(port), "raw") == 1, what="one request in flight")
        assert proxy.recv(timeout=10) == {"jsonrpc": "2.0", "id": 8,
                                          "error": {"code": -32001, "message": "Request timed out"}}
        assert_counts(port, "raw", {("other", "", "timeout"): 1})

        # a late answer is dropped: the client already got one for that id
        proxy.request(9, "slow", {"seconds": 1.0})
        assert proxy.recv(timeout=10)["error"]["code"] == -32001
        wait_until(lambda: sent(log, 9), what="the late answer")
        proxy.request(10, "ping")
        assert proxy.recv()["id"] == 10  # not the late answer to 9
        assert_counts(port, "raw", {("other", "", "timeout"): 2, ("ping", "", "success"): 1})
        assert "requests timed out" in proxy.stderr


def test_progress_restarts_the_request_timeout(scripted):
    start, port, log = scripted
    with start("--request-timeout", "0.6") as proxy:
        # 1.2 s of work, but never 0.6 s without news
        proxy.request(1, "progress", {"count": 6, "every": 0.2, "_meta": {"progressToken": "p1"}})
        received = [proxy.recv() for _ in range(7)]
        assert [m.get("method") for m in received[:6]] == ["notifications/progress"] * 6
        assert received[6]["id"] == 1 and "result" in received[6]
        assert_counts(port, "raw", {("other", "", "success"): 1})


def test_sigterm_stops_the_server_and_the_proxy(scripted):
    start, port, log = scripted
    with start() as proxy:
        wait_until(lambda: "scripted server ready" in proxy.stderr, what="the server to start")
        proxy.request(1, "hang")
        wait_until(lambda: active(metrics_text(port), "raw") == 1, what="the request in flight")
        proxy.proc.terminate()
        # the server was told to stop too; its pending request is answered, not left hanging
        assert proxy.recv()["error"]["code"] == -32000
        assert proxy.wait() == 128 + 15  # the server's status: killed by SIGTERM


def test_a_crashing_server_fails_pending_requests_and_the_proxy_exits_with_its_code(scripted):
    start, port, log = scripted
    with start("--exit-grace", "0") as proxy:  # test_proxy_stdio_hardening.py covers the grace period
        proxy.request(11, "hang")
        proxy.request("twelve", "crash", {"code": 7})
        answers = {m["id"]: m for m in (proxy.recv(), proxy.recv())}
        closed = {"code": -32000, "message": "Connection closed"}
        assert answers == {11: {"jsonrpc": "2.0", "id": 11, "error": closed},
                           "twelve": {"jsonrpc": "2.0", "id": "twelve", "error": closed}}
        assert proxy.at_eof()
        assert proxy.wait() == 7
    # with no grace period /metrics is gone with the proxy: the errors were counted
    # before it exited, which test_crash_mid_request_is_counted_as_error_in_process checks


def test_crash_mid_request_is_counted_as_error_in_process(tmp_path):
    """The Python API: the proxy in this process, so /metrics can be read after it exits."""
    registry = CollectorRegistry()
    tracker = Tracker(Recorder("crashy", VERSION, registry=registry))
    to_proxy, client_in = anyio.create_memory_object_stream[bytes](10)
    client_out = LineSink()

    async def main() -> int:
        async with anyio.create_task_group() as tg:
            code = None

            async def proxy() -> None:
                nonlocal code
                code = await run_stdio_proxy([PYTHON, str(SERVERS / "scripted_stdio.py"), str(tmp_path / "log")],
                                             tracker, client_in=client_in, client_out=client_out)

            tg.start_soon(proxy)
            await to_proxy.send(b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}\n')
            await client_out.wait_for(1)
            await to_proxy.send(b'{"jsonrpc":"2.0","id":2,"method":"hang"}\n')
            await to_proxy.send(b'{"jsonrpc":"2.0","id":3,"method":"crash","params":{"code":9}}\n')
        return code

    assert anyio.run(main) == 9
    answers = [json.loads(line) for line in client_out.lines]
    assert [a["id"] for a in answers[1:]] == [2, 3] and {a["error"]["code"] for a in answers[1:]} == {-32000}
    assert client_out.closed
    text = registry_text(registry)
    assert operations(text, service="crashy") == {("tools/list", "", "success"): 1, ("other", "", "error"): 2}
    assert active(text, "crashy") == 0


class LineSink:
    """A client's reading end for the in-process proxy."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.closed = False
        self._changed = anyio.Event()

    async def send(self, data: bytes) -> None:
        self.lines.append(data)
        self._changed.set()
        self._changed = anyio.Event()

    async def aclose(self) -> None:
        self.closed = True

    async def wait_for(self, count: int) -> None:
        with anyio.fail_after(10):
            while len(self.lines) < count:
                await self._changed.wait()


def test_sdk_client_gets_an_error_when_the_server_crashes_mid_request():
    port = free_port()

    async def main():
        async with Client(params(proxied("crashy", port, TOOL_SERVER)), mode="legacy") as client:
            await client.call_tool("echo", {"text": "before"})
            with pytest.raises(MCPError) as failed:
                await client.call_tool("crash", {"code": 5})
            assert failed.value.code == -32000  # answered by the proxy: the client does not hang

    anyio.run(main)


def test_the_exit_code_and_stderr_of_the_server_pass_through(scripted):
    start, port, log = scripted
    with start() as proxy:
        wait_until(lambda: "scripted server ready" in proxy.stderr, what="the server's stderr")
        proxy.close_stdin()
        assert proxy.at_eof()
        assert proxy.wait() == 0


def test_stdin_and_stdout_may_be_files(tmp_path):
    """Not pipes (a terminal, a file): the proxy reads and writes them with threads."""
    requests = tmp_path / "requests.jsonl"
    requests.write_bytes(b"".join(json.dumps({"jsonrpc": "2.0", "id": i, "method": "ping"}).encode() + b"\n"
                                  for i in range(3)))
    answers = tmp_path / "answers.jsonl"
    command = proxied("files", free_port(), [PYTHON, str(SERVERS / "scripted_stdio.py"), str(tmp_path / "log")])
    with requests.open("rb") as stdin, answers.open("wb") as stdout:
        done = subprocess.run(command, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=child_env(), timeout=30)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["id"] for line in answers.read_bytes().splitlines()] == [0, 1, 2]


def test_service_and_version_from_the_environment(tmp_path):
    port = free_port()
    log = tmp_path / "log"
    command = [PYTHON, "-m", "mcp_slo", "proxy", "--metrics-port", str(port), "--",
               PYTHON, str(SERVERS / "scripted_stdio.py"), str(log)]
    with RawStdio(command, env=child_env(MCP_SLO_SERVICE="env-service", MCP_SLO_VERSION="v9")) as proxy:
        proxy.request(1, "ping")
        assert proxy.recv()["id"] == 1
        wait_until(lambda: operations(scrape(f"http://127.0.0.1:{port}/metrics"), service="env-service",
                                      version="v9") == {("ping", "", "success"): 1.0}, what="the ping")


def test_bad_command_lines_are_refused_clearly():
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([PYTHON, "-m", "mcp_slo", "proxy", *args], capture_output=True, text=True,
                              env=child_env(MCP_SLO_SERVICE=""), timeout=30)

    neither = run("--service", "s", "--metrics-port", "0")
    assert neither.returncode == 2 and "either a server command" in neither.stderr
    no_service = run("--metrics-port", "0", "--", PYTHON, "-c", "pass")
    assert no_service.returncode == 2 and "MCP_SLO_SERVICE" in no_service.stderr
    missing = run("--service", "s", "--metrics-port", "0", "--", "/no/such/server")
    assert missing.returncode == 127 and "/no/such/server" in missing.stderr

"""`mcp-slo proxy --audit-file`: the audit trail of requests relayed over stdio (the npm reference
filesystem server) and streamable HTTP (the official SDK's server), from many concurrent clients
driven by the official client. The records must equal what /metrics counted, per method, tool and
status, with the right session, client, identity and client IP, and the chain must hold."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import Implementation

from collector.audit.chain import verify
from tests.audit_support import AUDIENCE, ISSUER, signing_keys, token, write_jwks
from tests.proxy_support import (
    PYTHON,
    ROOT,
    child_env,
    metrics_text,
    proxy_command,
    running,
    wait_for_http,
    wait_for_metrics,
)
from tests.support import free_port, operations, samples, wait_until
from tests.test_proxy_http import http_proxy, tool_server
from tests.test_proxy_stdio import filesystem_server, params, populate, proxied  # noqa: F401 - a fixture

pytestmark = pytest.mark.integration

PROXIES, CALLERS = 5, 10  # stdio: one client per proxy process, each with concurrent callers
HTTP_CLIENTS, CALLS = 50, 6


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def counted(records_: list[dict]) -> Counter:
    return Counter((r["method"], r["tool"] or "", r["status"]) for r in records_)


def test_stdio_proxies_in_front_of_the_filesystem_server(filesystem_server, tmp_path):  # noqa: F811
    root = (tmp_path / "files").resolve()
    populate(root)
    server = ["node", str(filesystem_server), str(root)]
    ports = [free_port() for _ in range(PROXIES)]
    files = [tmp_path / "audit" / f"proxy-{i}.jsonl" for i in range(PROXIES)]
    seen: list[Counter] = [Counter() for _ in range(PROXIES)]

    async def caller(client: Client, i: int, n: int) -> None:
        await client.call_tool("read_text_file", {"path": str(root / "notes.txt")})
        await client.call_tool("list_directory", {"path": str(root / "docs")})
        missing = await client.call_tool("read_text_file", {"path": str(root / f"missing-{n}.txt")})
        assert missing.is_error

    async def one_proxy(i: int) -> None:
        command = proxied("filesystem", ports[i], server, "--audit-file", str(files[i]))
        async with Client(params(command), client_info=Implementation(name=f"host-{i}", version="1.4")) as client:
            await client.list_tools()
            async with anyio.create_task_group() as tg:
                for n in range(CALLERS):
                    tg.start_soon(caller, client, i, n)
            # what /metrics counted, read while the proxy runs (it exits with the session)
            seen[i] = await anyio.to_thread.run_sync(lambda: Counter(operations(metrics_text(ports[i]),
                                                                                service="filesystem")))

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(PROXIES):
                tg.start_soon(one_proxy, i)

    anyio.run(main)
    for i, path in enumerate(files):
        # the proxy drains its trail as it exits
        wait_until(lambda p=path, c=seen[i]: p.is_file() and len(records(p)) == sum(c.values()), timeout=20,
                   what=f"{path.name} holding every request")
        found = records(path)
        assert counted(found) == seen[i]
        assert seen[i][("tools/call", "read_text_file", "error")] == CALLERS  # failures are there too
        assert {r["session_id"] for r in found} != {None} and len({r["session_id"] for r in found}) == 1
        assert {(r["client"]["name"], r["client"]["version"]) for r in found} == {(f"host-{i}", "1.4")}
        assert all(r["service"] == "filesystem" and r["client_ip"] is None and r["identity"] is None for r in found)
        reads = [r for r in found if r["tool"] == "read_text_file"]
        assert all(r["params"] == {"path": {"type": "string", "size": len(str(root / "notes.txt"))}}
                   for r in reads if r["status"] == "success")
        failed = next(r for r in reads if r["status"] == "error")
        assert failed["error"]["message"] and failed["response_bytes"] > 0
        assert all(r["request_bytes"] > 0 and r["duration_seconds"] >= 0 for r in found)
        assert verify([path], None).ok
    assert len({records(p)[0]["session_id"] for p in files}) == PROXIES  # one session per proxy run


def test_http_proxy_records_sessions_client_ips_and_verified_users(tmp_path):
    keys = signing_keys()
    jwks = write_jwks(tmp_path / "jwks.json", keys)
    path = tmp_path / "audit" / "http.jsonl"
    options = ("--audit-file", str(path), "--audit-jwks", str(jwks), "--audit-issuer", ISSUER,
               "--audit-audience", AUDIENCE, "--audit-user-claim", "preferred_username")
    with tool_server() as upstream, http_proxy(upstream, "tools-http", *options) as (url, port):

        async def one(n: int) -> None:
            # even clients: handshake-era sessions; odd: 2026-07-28 single exchanges; the last one forges its token
            signer = "other" if n == HTTP_CLIENTS - 1 else None
            bearer = token(keys, signer=signer, preferred_username=f"user-{n}", sub=f"sub-{n}")
            http = httpx2.AsyncClient(headers={"authorization": f"Bearer {bearer}"}, timeout=30)
            async with http, Client(streamable_http_client(url, http_client=http), mode="legacy" if n % 2 == 0
                                    else "auto", client_info=Implementation(name=f"client-{n}", version="2")) as client:
                for i in range(CALLS):
                    await client.call_tool("echo", {"text": f"{n}-{i}"})

        async def main() -> None:
            async with anyio.create_task_group() as tg:
                for n in range(HTTP_CLIENTS):
                    tg.start_soon(one, n)

        anyio.run(main)
        text = metrics_text(port)
        seen = Counter(operations(text, service="tools-http"))
        wait_until(lambda: path.is_file() and len(records(path)) == sum(seen.values()), timeout=20,
                   what="a record of every request")
    found = records(path)
    assert counted(found) == seen
    assert seen[("tools/call", "echo", "success")] == HTTP_CLIENTS * CALLS
    calls = [r for r in found if r["tool"] == "echo"]
    by_client: dict[str, list[dict]] = {}
    for r in calls:
        by_client.setdefault(r["client"]["name"], []).append(r)
    assert sorted(by_client) == sorted(f"client-{n}" for n in range(HTTP_CLIENTS))
    for name, mine in by_client.items():
        n = int(name.split("-")[1])
        users = {(r["identity"]["user"], r["identity"]["subject"], r["identity"]["verified"]) for r in mine}
        assert users == {(f"user-{n}", f"sub-{n}", n != HTTP_CLIENTS - 1)}, name
        assert {r["client_ip"] for r in mine} == {"127.0.0.1"}
        ids = {r["session_id"] for r in mine}
        if n % 2 == 0:  # one session per handshake-era client, as its Mcp-Session-Id header said
            assert len(ids) == 1 and None not in ids, (name, ids)
        else:  # 2026-07-28: no session to name
            assert ids == {None}, (name, ids)
    session_ids = [next(iter({r["session_id"] for r in by_client[f"client-{n}"]})) for n in range(0, HTTP_CLIENTS, 2)]
    assert len(set(session_ids)) == HTTP_CLIENTS // 2
    assert all("Bearer" not in json.dumps(r) for r in found)
    assert verify([path], None).ok


def test_an_audit_sink_on_a_full_pipe_slows_no_relayed_call_in_drop_mode(tmp_path):
    """The audit trail to the HTTP proxy's stdout, a pipe nobody reads: it fills, the writer
    stalls on it, and the calls go on while the records that do not fit are counted as dropped."""
    config = tmp_path / "audit.json"
    config.write_text(json.dumps({"stdout": True, "queue_size": 10}))
    port, metrics_port = free_port(), free_port()
    calls = 400
    with tool_server() as upstream:
        command = proxy_command("piped", metrics_port, "--upstream", upstream, "--listen", f"127.0.0.1:{port}",
                                "--audit-config", str(config))
        with running(command, stdout=subprocess.PIPE):  # never read: a full pipe after about 64 KiB
            wait_for_metrics(metrics_port)
            wait_for_http(f"http://127.0.0.1:{port}/")

            async def main() -> None:
                async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                    for i in range(calls):
                        result = await client.call_tool("echo", {"text": f"{i} " + "x" * 200})
                        assert not result.is_error

            anyio.run(main)  # every call answered while the sink could not write
            text = metrics_text(metrics_port)
    dropped = samples(text, "mcp_audit_records_dropped_total")[(("reason", "queue_full"),)]
    written = samples(text, "mcp_audit_records_total")[(("sink", "stdout"),)]
    counted = sum(operations(text, service="piped").values())
    assert counted == calls + 2  # the calls, server/discover and the client's tools/list
    assert dropped > 0 and written < counted - dropped  # the pipe took some; the queue holds the rest


@pytest.mark.parametrize("options, message", [
    (["--audit-file", "/proc/no/such/dir/audit.jsonl"], "audit: "),
    (["--audit-params", "full"], "audit: the audit options need a file"),
    (["--audit-file", "x.jsonl", "--audit-issuer", "https://idp/"], "audit: issuer and audience need jwks"),
    (["--audit-file", "x.jsonl", "--audit-retention", "forever"], "audit: retention 'forever' is not a duration"),
    (["--audit-file", "x.jsonl", "--audit-jwks", "/no/such/jwks.json"], "audit: "),
    (["--audit-config", "{config}"], "audit: stdout: the stdio proxy's standard output is the MCP stream"),
])
def test_bad_audit_options_are_refused_in_one_line(tmp_path, options, message):
    config = tmp_path / "audit.json"
    config.write_text(json.dumps({"stdout": True}))
    options = [o.replace("{config}", str(config)) for o in options]
    done = subprocess.run([*proxy_command("x", free_port(), *options), "--", PYTHON, "-c", "pass"],
                          check=False, capture_output=True, text=True, env=child_env(), cwd=tmp_path,
                          timeout=30)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not (ROOT / "x.jsonl").exists()

"""`mcp-slo proxy --upstream URL --listen HOST:PORT`: a streamable HTTP MCP
server measured from outside.

The official SDK's MCPServer over streamable HTTP (SSE and JSON responses,
sessions in the handshake era, single exchanges in 2026-07-28) driven by the
official client directly and through the proxy; a scripted upstream in this
process for headers, status codes, streaming, timeouts and disconnects.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial

import anyio
import httpx
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.proxy_support import (
    PYTHON,
    SERVERS,
    active,
    assert_counts,
    handshake,
    metrics_text,
    proxy_command,
    running,
    tool_session,
    wait_for_http,
    wait_for_metrics,
)
from tests.servers.scripted_http import SESSION, ScriptedUpstream, serve
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration

MODES = ["legacy", "auto"]
JSONRPC_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


@contextmanager
def http_proxy(upstream: str, service: str, *options: str) -> Iterator[tuple[str, int]]:
    """`mcp-slo proxy` in front of `upstream`; yields (the proxy's MCP URL, its metrics port)."""
    port, metrics_port = free_port(), free_port()
    command = proxy_command(service, metrics_port, "--upstream", upstream, "--listen", f"127.0.0.1:{port}", *options)
    with running(command):
        wait_for_metrics(metrics_port)
        wait_for_http(f"http://127.0.0.1:{port}/")
        yield f"http://127.0.0.1:{port}/mcp", metrics_port


@contextmanager
def tool_server(json_response: bool = False) -> Iterator[str]:
    """tests/servers/tool_server.py over streamable HTTP; yields its MCP URL."""
    port = free_port()
    command = [PYTHON, str(SERVERS / "tool_server.py"), "--http", str(port), *(["--json"] if json_response else [])]
    # short grace: a graceful shutdown would wait for the slow calls the tests abandoned
    with running(command, stop_timeout=0.5):
        url = f"http://127.0.0.1:{port}/mcp"
        wait_for_http(url)
        yield url


async def check_counts(port: int, service: str, expected: Counter) -> None:
    await anyio.to_thread.run_sync(lambda: assert_counts(port, service, expected))


def rpc(request_id: object, method: str, params: dict | None = None) -> bytes:
    message: dict = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message).encode()


# --- the official SDK on both ends -------------------------------------------------


@pytest.mark.parametrize("response", ["sse", "json"])
@pytest.mark.parametrize("mode", MODES)
def test_sdk_sessions_answer_the_same_and_are_counted_exactly(mode, response):
    elicited: list[str] = []

    async def elicit(context, request: types.ElicitRequestParams) -> types.ElicitResult:
        elicited.append(request.message)
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    with tool_server(json_response=response == "json") as upstream, http_proxy(upstream, "tools-http") as (url, port):

        async def run(target: str, measure: bool):
            async with Client(target, mode=mode, elicitation_callback=elicit) as client:
                modern = client.protocol_version >= "2026"
                seen, expected, progress = await tool_session(
                    client,
                    client_timeout="cancelled" if modern else "timeout",
                    # a handshake-era server answering in JSON has no stream to ask the client on
                    elicit=modern or response == "sse",
                )
                expected += handshake(client, mode)
                if measure:
                    await check_counts(port, "tools-http", expected)
                return seen, progress

        async def main():
            return await run(upstream, False), await run(url, True)

        direct, through_proxy = anyio.run(main)
    assert through_proxy == direct
    assert len(elicited) in (0, 2) and elicited == ["What is your name?"] * len(elicited)


def test_a_server_crashing_mid_request_is_an_error_and_the_client_does_not_hang():
    with tool_server() as upstream, http_proxy(upstream, "crashy-http") as (url, port):

        async def main():
            async with Client(url, mode="legacy") as client:
                await client.list_tools()
                with pytest.raises(MCPError):
                    await client.call_tool("crash", {"code": 4})
                expected = Counter({("tools/list", "", "success"): 1, ("tools/call", "crash", "error"): 1})
                await check_counts(port, "crashy-http", expected + handshake(client, "legacy"))

        anyio.run(main)


def test_fifty_concurrent_clients_lose_nothing():
    clients, calls = 50, 40
    with tool_server() as upstream, http_proxy(upstream, "busy-http") as (url, port):
        wrong: list[tuple[str, str]] = []

        async def one_client(n: int) -> None:
            async with Client(url) as client:
                await client.list_tools()
                for i in range(calls):
                    text = f"{n}-{i}"
                    result = await client.call_tool("echo", {"text": text})
                    if result.content[0].text != text:
                        wrong.append((text, result.content[0].text))

        async def main():
            async with anyio.create_task_group() as tg:
                for n in range(clients):
                    tg.start_soon(one_client, n)

        anyio.run(main)
        assert wrong == []
        # every client numbers its requests from the same start: ids collide across clients
        assert_counts(port, "busy-http", {("server/discover", "", "success"): clients,
                                          ("tools/list", "", "success"): clients,
                                          ("tools/call", "echo", "success"): clients * calls})


# --- a scripted upstream ---------------------------------------------------------------


@pytest.fixture
def scripted():
    """Yields start(*proxy options) -> (upstream, upstream URL, proxy URL, metrics port)."""
    upstream = ScriptedUpstream()
    upstream_port = free_port()
    upstream_url = f"http://127.0.0.1:{upstream_port}/mcp"
    with serve(upstream, upstream_port), ExitStack() as stack:

        def start(*options: str):
            url, port = stack.enter_context(http_proxy(upstream_url, "scripted", *options))
            return upstream, upstream_url, url, port

        yield start


def test_headers_pass_through_except_hop_by_hop_ones(scripted):
    upstream, upstream_url, url, port = scripted()
    body = rpc(1, "tools/call", {"name": "lookup", "arguments": {"q": "ünïcode"}})
    sent = {
        **JSONRPC_HEADERS,
        "authorization": "Bearer t0ken",
        "mcp-session-id": "client-session",
        "mcp-protocol-version": "2025-11-25",
        "last-event-id": "e41",
        "x-custom": "kept",
        "connection": "keep-alive, x-hop",
        "x-hop": "dropped: the Connection header names it",
        "proxy-authorization": "Basic cHJveHk=",
    }
    r = httpx.post(url + "?tenant=a", content=body, headers=sent, timeout=10)
    assert r.status_code == 200
    received = upstream.requests[-1]
    seen = upstream.headers_of(-1)
    for name in ("authorization", "mcp-session-id", "mcp-protocol-version", "last-event-id", "x-custom",
                 "content-type", "accept"):
        assert seen[name] == sent[name], name
    assert "x-hop" not in seen and "proxy-authorization" not in seen
    assert seen["host"] == upstream_url.split("/")[2]
    assert received["body"] == body and received["query"] == b"tenant=a" and received["path"] == "/mcp"
    # the response: status, MCP headers and the exact bytes
    assert r.headers["mcp-session-id"] == SESSION and r.headers["x-upstream"] == "scripted"
    assert r.content == upstream.last_answer
    # a successful call proves the tool exists
    assert_counts(port, "scripted", {("tools/call", "lookup", "success"): 1})


def test_sse_is_relayed_event_by_event_unchanged(scripted):
    upstream, upstream_url, url, port = scripted()
    first = (b'event: message\r\nid: e1\r\ndata: {"jsonrpc": "2.0", "method": "notifications/progress", '
             b'"params": {"progressToken": 9, "progress": 1}}\r\n\r\n')
    last = b'event: message\r\nid: e2\r\ndata: {"jsonrpc": "2.0", "id": 9, "result": {"streamed": true}}\r\n\r\n'
    with httpx.Client(timeout=10) as client:
        with client.stream("POST", url, content=rpc(9, "stream"), headers=JSONRPC_HEADERS) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            chunks = r.iter_raw()
            got = b""
            while len(got) < len(first):
                got += next(chunks)
            # the first event arrived while the upstream still holds the answer back
            assert got == first
            assert active(metrics_text(port), "scripted") == 1
            assert client.post(url, content=rpc(10, "release"), headers=JSONRPC_HEADERS).status_code == 200
            got += b"".join(chunks)
    assert got == first + last
    assert_counts(port, "scripted", {("other", "", "success"): 2})


def test_status_codes_bodies_and_methods_pass_through(scripted):
    upstream, upstream_url, url, port = scripted()
    with httpx.Client(timeout=10, headers=JSONRPC_HEADERS) as client:
        gone = client.post(url, content=rpc(1, "gone"))
        assert (gone.status_code, gone.text) == (404, "Session not found")
        nullid = client.post(url, content=rpc(2, "nullid"))
        assert nullid.status_code == 400 and nullid.json()["error"]["code"] == -32600
        notification = client.post(url, content=b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
        assert notification.status_code == 202 and notification.content == b""
        garbage = client.post(url, content=b"{not json")
        assert garbage.status_code == 400 and garbage.json()["error"]["code"] == -32700
        batch = client.post(url, content=b"[" + rpc(3, "tools/list") + b"," + rpc("4", "ping") + b"]")
        assert [m["id"] for m in batch.json()] == [3, "4"]
        elsewhere = client.post(url.replace("/mcp", "/other"), content=rpc(5, "ping"))
        assert elsewhere.status_code == 200 and upstream.requests[-1]["path"] == "/other"
        deleted = client.delete(url, headers={"mcp-session-id": SESSION})
        assert deleted.status_code == 200 and deleted.headers["x-deleted"] == "yes"
        assert upstream.headers_of(-1)["mcp-session-id"] == SESSION

        # the standalone GET stream: server-to-client messages pass, nothing is counted
        with client.stream("GET", url, headers={"accept": "text/event-stream", "mcp-session-id": SESSION}) as r:
            events = b""
            for chunk in r.iter_raw():
                events += chunk
                if events.count(b"\r\n\r\n") == 2:
                    break
        assert b'"method": "roots/list"' in events and b"list_changed" in events
    wait_until(lambda: "GET" in upstream.disconnected, what="the upstream GET stream to close")
    assert_counts(port, "scripted", {("other", "", "error"): 2,  # gone and nullid
                                     ("tools/list", "", "success"): 1, ("ping", "", "success"): 1})


def test_unanswered_requests_time_out_and_the_upstream_request_is_closed(scripted):
    upstream, upstream_url, url, port = scripted("--request-timeout", "0.5")
    with httpx.Client(timeout=10, headers=JSONRPC_HEADERS) as client:
        r = client.post(url, content=rpc(1, "hang"))
        assert r.status_code == 200
        assert r.json() == {"jsonrpc": "2.0", "id": 1, "error": {"code": -32001, "message": "Request timed out"}}
        sse = client.post(url, content=rpc("two", "hang-sse"))
        events = [e for e in sse.content.split(b"\r\n\r\n") if e.strip()]
        assert b"working" in events[0]  # the upstream's event, then the proxy's answer
        assert sse.content.endswith(b'data: {"jsonrpc":"2.0","id":"two","error":{"code":-32001,'
                                    b'"message":"Request timed out"}}\n\n')
    wait_until(lambda: sorted(upstream.disconnected) == ["hang", "hang-sse"], what="the upstream to see both close")
    assert_counts(port, "scripted", {("other", "", "timeout"): 2})


def test_a_client_that_disconnects_has_cancelled(scripted):
    upstream, upstream_url, url, port = scripted()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url, content=rpc(1, "hang"), headers=JSONRPC_HEADERS, timeout=httpx.Timeout(10, read=0.3))
    wait_until(lambda: upstream.disconnected == ["hang"], what="the upstream to see the cancellation")
    assert_counts(port, "scripted", {("other", "", "cancelled"): 1})


def test_a_cancel_notification_in_the_same_session_counts_once(scripted):
    upstream, upstream_url, url, port = scripted()
    session = {**JSONRPC_HEADERS, "mcp-session-id": "s-42"}

    async def main():
        async with httpx.AsyncClient(timeout=10) as client, anyio.create_task_group() as tg:
            tg.start_soon(partial(client.post, url, content=rpc(7, "hang"), headers=session))
            await anyio.to_thread.run_sync(lambda: wait_until(lambda: active(metrics_text(port), "scripted") == 1))
            # another session using the same id is another request
            other = await client.post(url, content=rpc(7, "ping"), headers={**session, "mcp-session-id": "s-43"})
            assert other.status_code == 200
            cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7, "reason": "user"}}
            assert (await client.post(url, content=json.dumps(cancel), headers=session)).status_code == 202
            await anyio.to_thread.run_sync(lambda: assert_counts(port, "scripted", {
                ("other", "", "cancelled"): 1, ("ping", "", "success"): 1}))
            tg.cancel_scope.cancel()  # the client stops waiting: no second count

    anyio.run(main)
    wait_until(lambda: upstream.disconnected == ["hang"], what="the abandoned request to close")
    assert_counts(port, "scripted", {("other", "", "cancelled"): 1, ("ping", "", "success"): 1})


def test_an_unreachable_upstream_is_a_counted_error():
    nowhere = f"http://127.0.0.1:{free_port()}/mcp"
    with http_proxy(nowhere, "down") as (url, port):
        r = httpx.post(url, content=rpc(1, "tools/list"), headers=JSONRPC_HEADERS, timeout=10)
        assert r.status_code == 502
        assert r.json()["id"] == 1 and r.json()["error"]["code"] == -32000
        assert_counts(port, "down", {("tools/list", "", "error"): 1})

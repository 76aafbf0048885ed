"""A scripted streamable-HTTP upstream for the proxy's edge cases (no MCP SDK),
served in a thread of the test process so tests can look at what it received.

POST bodies are JSON-RPC; the method of a single request picks the behaviour:

- "stream": an SSE response (CRLF line endings, event ids): a progress
  notification, then, once a "release" request arrived, the result;
- "hang": no answer until the connection closes; "hang-sse": an SSE
  response with one notification, then nothing;
- "nullid": HTTP 400 with a JSON-RPC error whose id is null;
- "gone": HTTP 404 with a text body (like an unknown session);
- "release": releases "stream";
- anything else: a JSON result echoing the body and the headers received, with
  an Mcp-Session-Id and a custom header in the response.

A batch gets a JSON array of results; notifications and responses get 202.
GET opens an SSE stream carrying a server-to-client request and a notification,
held open until the client leaves; DELETE answers 200.
Every request is recorded in `requests`, and every connection the proxy closed
while waiting in `disconnected`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import uvicorn

from tests.support import wait_until

SESSION = "scripted-session-1"


class ScriptedUpstream:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.disconnected: list[str] = []
        self._release: anyio.Event | None = None
        self.last_answer = b""

    def headers_of(self, index: int) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.requests[index]["headers"]}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.requests.append({"method": scope["method"], "path": scope["path"], "query": scope["query_string"],
                              "headers": list(scope["headers"]), "body": body})
        if scope["method"] == "GET" and scope["path"] != "/mcp":
            await _respond(send, 404, b"Not Found", content_type=b"text/plain")
        elif scope["method"] == "GET":
            await self._get_stream(receive, send)
        elif scope["method"] == "DELETE":
            await _respond(send, 200, b"", [(b"x-deleted", b"yes")])
        else:
            await self._post(scope, body, receive, send)

    async def _post(self, scope: dict, body: bytes, receive: Any, send: Any) -> None:
        try:
            msg = json.loads(body)
        except ValueError:
            await _respond(send, 400, b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}')
            return
        if isinstance(msg, list):
            results = [{"jsonrpc": "2.0", "id": m["id"], "result": {"n": i}} for i, m in enumerate(msg) if "method" in m and "id" in m]
            await _respond(send, 200, json.dumps(results).encode())
            return
        if "id" not in msg or "method" not in msg:
            await _respond(send, 202, b"", content_type=None)
            return
        method, request_id = msg["method"], msg["id"]
        if method == "stream":
            self._release = anyio.Event()
            await _start_sse(send)
            await _event(send, {"jsonrpc": "2.0", "method": "notifications/progress",
                                "params": {"progressToken": request_id, "progress": 1}}, event_id="e1")
            await self._release.wait()
            await _event(send, {"jsonrpc": "2.0", "id": request_id, "result": {"streamed": True}}, event_id="e2")
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        elif method == "hang":
            await _until_disconnect(receive)
            self.disconnected.append(method)
        elif method == "hang-sse":
            await _start_sse(send)
            await _event(send, {"jsonrpc": "2.0", "method": "notifications/message", "params": {"data": "working"}})
            await _until_disconnect(receive)
            self.disconnected.append(method)
        elif method == "nullid":
            await _respond(send, 400, b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request"}}')
        elif method == "gone":
            await _respond(send, 404, b"Session not found", content_type=b"text/plain")
        elif method == "release":
            if self._release is not None:
                self._release.set()
            await _respond(send, 200, json.dumps({"jsonrpc": "2.0", "id": request_id, "result": {}}).encode())
        else:
            headers = {k.decode(): v.decode() for k, v in scope["headers"]}
            result = {"jsonrpc": "2.0", "id": request_id, "result": {"body": body.decode(), "headers": headers}}
            self.last_answer = json.dumps(result, indent=1).encode()  # odd formatting on purpose
            await _respond(send, 200, self.last_answer,
                           [(b"mcp-session-id", SESSION.encode()), (b"x-upstream", b"scripted")])

    async def _get_stream(self, receive: Any, send: Any) -> None:
        await _start_sse(send)
        await _event(send, {"jsonrpc": "2.0", "id": "s1", "method": "roots/list"})
        await _event(send, {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        await _until_disconnect(receive)
        self.disconnected.append("GET")


async def _respond(send: Any, status: int, body: bytes, headers: list | None = None,
                   content_type: bytes | None = b"application/json") -> None:
    all_headers = list(headers or [])
    if content_type:
        all_headers.append((b"content-type", content_type))
    all_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def _start_sse(send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})


async def _event(send: Any, message: dict, event_id: str | None = None) -> None:
    data = b"event: message\r\n" + (f"id: {event_id}\r\n".encode() if event_id else b"")
    data += b"data: " + json.dumps(message).encode() + b"\r\n\r\n"
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _until_disconnect(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


@contextmanager
def serve(app: Any, port: int) -> Iterator[None]:
    """Serve an ASGI app on 127.0.0.1:port in a thread, for the duration of the block."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=10, what="the scripted upstream")
        yield
    finally:
        server.should_exit = True
        thread.join(10)

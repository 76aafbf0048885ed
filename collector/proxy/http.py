"""The streamable HTTP proxy: an ASGI app relaying every request to an upstream
MCP server and counting the JSON-RPC requests POSTed to its MCP endpoint.

- The MCP endpoint is the upstream URL's path; the proxy serves it at the same
  path. Other paths (OAuth metadata, health checks) are relayed uncounted.
- Methods, paths, queries, status codes and end-to-end headers pass through
  (Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, Authorization, ...);
  hop-by-hop headers do not. Bodies are relayed unchanged, except that an
  upstream content-encoding is decoded (the header is dropped accordingly).
- JSON responses are read whole (one message or a batch); SSE responses are
  relayed event by event as they arrive, each event's bytes unchanged.
- Requests are keyed by `(session, id)`: the Mcp-Session-Id when there is one
  (a legacy client cancels with a separate POST in the same session), else the
  POST itself (2026-07-28 requests are self-contained; closing the response
  stream is their cancellation).

The proxy answers for itself only when the upstream cannot: a POST whose
requests are not answered within the request timeout gets a JSON-RPC -32001
"Request timed out" error for each (counted `timeout`); an unreachable
upstream gets HTTP 502 with a JSON-RPC -32000 error (counted `error`).
A client that disconnects with requests pending has cancelled them: counted
`cancelled` (the reason is unknown: a 2026-07-28 client whose own deadline
passed just closes the stream too), and the upstream request is closed so the
server sees the cancellation as well.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import logging
import math
import sys
from collections.abc import Hashable
from typing import Any

import anyio
import httpx

from collector.proxy.framing import NOT_JSON, SseEvent, SseSplitter, parse_json, sse_message
from collector.proxy.tracker import CONNECTION_CLOSED, REQUEST_TIMEOUT, Key, Tracker, error_response

logger = logging.getLogger("mcp_slo.proxy")

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Host and Content-Length are set for the upstream request; Expect was answered
# by the proxy's own server; without Accept-Encoding the upstream answers
# uncompressed, which the proxy must read anyway (and relays uncompressed).
REQUEST_DROP = HOP_BY_HOP | {"host", "content-length", "accept-encoding", "expect"}
# Bodies are relayed decoded and re-framed by the proxy's own server.
RESPONSE_DROP = HOP_BY_HOP | {"content-length", "content-encoding"}

CONNECT_TIMEOUT = 10.0
UPSTREAM_TRANSPORTS = 8
KEEPALIVE_PER_TRANSPORT = 8
# The proxy enforces its own deadlines; only connecting is bounded here.
TIMEOUTS = {"connect": CONNECT_TIMEOUT, "read": None, "write": None, "pool": None}
SWEEP_INTERVAL = 1.0

_exchange_ids = itertools.count()


def filter_headers(raw: list[tuple[bytes, bytes]], drop: frozenset[str]) -> list[tuple[bytes, bytes]]:
    """End-to-end headers of `raw`, names lowercased: without `drop` and without
    the headers the Connection header names."""
    named = set()
    for name, value in raw:
        if name.lower() == b"connection":
            named.update(token.strip().lower() for token in value.decode("latin-1").split(","))
    return [
        (name.lower(), value)
        for name, value in raw
        if (lowered := name.decode("latin-1").lower()) not in drop and lowered not in named
    ]


def _header(raw: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in raw:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _fail_sniffio_imports_fast() -> None:
    """httpcore asks for sniffio whenever it sets up a lock; when sniffio is not
    installed every ask is a failed import searching sys.path, a third of the
    proxy's CPU under load. A None entry makes that import fail at once, which
    is what it does anyway (httpcore then assumes asyncio)."""
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


class Upstream:
    """Sends requests to the upstream server with httpx transports, skipping
    httpx.Client: a proxy must not keep cookies, follow redirects or add headers
    of its own, and the client layer costs CPU on every request.

    Several transports are used in turn: httpcore's pool does work quadratic in
    its number of connections on every request, so many small pools cost far
    less CPU than one big one under concurrency.
    """

    def __init__(self, url: httpx.URL, transports: int = UPSTREAM_TRANSPORTS):
        self.url = url
        self._origin = str(url.copy_with(raw_path=b"/"))[:-1]
        self._urls: dict[bytes, httpx.URL] = {}
        ssl_context = httpx.create_ssl_context()  # loading certificates once is enough
        self._transports = [
            httpx.AsyncHTTPTransport(
                verify=ssl_context,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=KEEPALIVE_PER_TRANSPORT),
            )
            for _ in range(transports)
        ]
        self._turn = itertools.cycle(self._transports)

    def request(self, method: str, raw_path: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> httpx.Request:
        url = self._urls.get(raw_path)
        if url is None:
            if len(self._urls) > 1000:  # paths with ever-changing queries
                self._urls.clear()
            url = self._urls[raw_path] = httpx.URL(self._origin + raw_path.decode("latin-1"))
        # httpx.Request adds Host and Content-Length, nothing else.
        return httpx.Request(method, url, headers=headers, content=body, extensions={"timeout": TIMEOUTS})

    async def send(self, request: httpx.Request) -> httpx.Response:
        """The response, its body not read yet."""
        response = await next(self._turn).handle_async_request(request)
        response.request = request
        return response

    async def aclose(self) -> None:
        for transport in self._transports:
            await transport.aclose()


class HttpProxy:
    """ASGI app: the streamable HTTP proxy in front of `upstream` (the MCP endpoint URL).

    Serve it with lifespan events on (uvicorn does by default): they run the
    sweep that times out requests left without a waiting exchange, and close
    the upstream connections at shutdown.
    """

    def __init__(self, upstream: str, tracker: Tracker):
        url = httpx.URL(upstream)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"the upstream must be an http(s) URL, got {upstream!r}")
        self.upstream = url
        self.mcp_path = url.path or "/"
        _fail_sniffio_imports_fast()
        self.tracker = tracker
        self._upstream: Upstream | None = None
        # Keys of requests whose POST is still being relayed: that exchange
        # enforces their deadline itself (and answers the client).
        self.owned: set[Key] = set()

    @property
    def to_upstream(self) -> Upstream:
        if self._upstream is None:
            self._upstream = Upstream(self.upstream)
        return self._upstream

    async def aclose(self) -> None:
        if self._upstream is not None:
            await self._upstream.aclose()
            self._upstream = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await _Exchange(self, scope, receive, send).run()
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        # websockets are not part of MCP: the server closes them

    async def _lifespan(self, receive: Any, send: Any) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.sweep)
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            tg.cancel_scope.cancel()
        await self.aclose()
        await send({"type": "lifespan.shutdown.complete"})

    async def sweep(self) -> None:
        """Time out requests no exchange is waiting for any more: their response
        stream ended (resumably) and they were never resumed."""
        while True:
            await anyio.sleep(SWEEP_INTERVAL)
            for _, request_id in self.tracker.expire(skip=self.owned):
                logger.warning("request %r was never answered; counted as timed out", request_id)

    @staticmethod
    def raw_path(scope: dict[str, Any]) -> bytes:
        """Path and query of a request, as the client sent them."""
        raw_path = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            raw_path += b"?" + scope["query_string"]
        return raw_path


class _Exchange:
    """One HTTP request relayed upstream, and its response relayed back."""

    def __init__(self, proxy: HttpProxy, scope: dict[str, Any], receive: Any, send: Any):
        self.proxy = proxy
        self.tracker = proxy.tracker
        self.scope = scope
        self.receive = receive
        self._send = send
        self.headers: list[tuple[bytes, bytes]] = scope["headers"]
        session = _header(self.headers, b"mcp-session-id")
        self.session: Hashable = session if session else ("post", next(_exchange_ids))
        self.is_mcp = scope["path"] == proxy.mcp_path
        self.keys: list[Key] = []
        self.batch = False
        self.started = False  # response headers sent
        self.finished = False  # response complete
        self.disconnected = False
        self.resumable = False  # an SSE event carried an id: the client may resume the stream

    async def run(self) -> None:
        body = await self._read_body()
        if body is None:
            return  # the client went away before sending its request
        if self.is_mcp and self.scope["method"] == "POST":
            self._account_request(body)
        self.proxy.owned.update(self.keys)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch_disconnect, tg.cancel_scope)
                await self._relay(body)
                tg.cancel_scope.cancel()
        finally:
            self.proxy.owned.difference_update(self.keys)
            if self.disconnected:
                # The client closed the connection while waiting: it cancelled.
                for _, request_id in self.tracker.cancel(self.keys):
                    logger.info("request %r cancelled: the client closed the connection", request_id)
            elif not self.resumable:
                # Nothing more will answer these on this exchange.
                self.tracker.fail(self.keys)

    async def _read_body(self) -> bytes | None:
        chunks = []
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _account_request(self, body: bytes) -> None:
        parsed = parse_json(body)
        if parsed is NOT_JSON:
            # Relayed unchanged: the server answers it (HTTP 400 / -32700), as without the proxy.
            logger.warning("a POST body is not JSON (%d bytes); relaying it unchanged, not counted", len(body))
            return
        self.batch = isinstance(parsed, list)
        self.keys = self.tracker.from_client(parsed, self.session)

    def _remaining(self) -> float:
        """Seconds until this POST's first pending request times out (inf: none can)."""
        deadline = self.tracker.deadline_of(self.keys)
        return math.inf if deadline == math.inf else max(deadline - self.tracker.clock(), 0.0)

    async def _watch_disconnect(self, cancel_scope: anyio.CancelScope) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                if not self.finished:
                    self.disconnected = True
                    cancel_scope.cancel()
                return

    # -- relaying -----------------------------------------------------------------

    async def _relay(self, body: bytes) -> None:
        upstream = self.proxy.to_upstream
        request = upstream.request(
            self.scope["method"], self.proxy.raw_path(self.scope), filter_headers(self.headers, REQUEST_DROP), body
        )
        response: httpx.Response | None = None
        try:
            with anyio.move_on_after(self._remaining()):
                response = await upstream.send(request)
            if response is None:
                await self._answer_timeout()
                return
            content_type = response.headers.get("content-type", "").lower()
            if self.is_mcp and content_type.startswith("text/event-stream"):
                await self._relay_sse(response)
            elif self.keys and content_type.startswith("application/json"):
                await self._relay_json(response)
            else:
                await self._relay_raw(response)
        except httpx.HTTPError as exc:
            logger.warning("upstream %s %s failed: %r", request.method, request.url, exc)
            self.resumable = False  # the upstream failed: nothing will answer
            if not self.started:
                await self._answer_unavailable(exc)
            elif not self.finished:
                await self._body(b"", more=False)
        finally:
            if response is not None:
                with anyio.CancelScope(shield=True):
                    await response.aclose()

    async def _start(self, response: httpx.Response, extra: list[tuple[bytes, bytes]] = ()) -> None:
        headers = filter_headers(response.headers.raw, RESPONSE_DROP) + list(extra)
        await self._send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        self.started = True

    async def _body(self, data: bytes, *, more: bool = True) -> None:
        if not more:
            self.finished = True
        await self._send({"type": "http.response.body", "body": data, "more_body": more})

    async def _relay_raw(self, response: httpx.Response) -> None:
        await self._start(response)
        async for chunk in response.aiter_bytes():
            await self._body(chunk)
        await self._body(b"", more=False)

    async def _relay_json(self, response: httpx.Response) -> None:
        body = None
        with anyio.move_on_after(self._remaining()):
            body = await response.aread()
        if body is None:
            await self._answer_timeout()
            return
        parsed = parse_json(body)
        if parsed is not NOT_JSON:
            self.tracker.from_server(parsed, self.session)
            # An error with a null id answers the request whose id could not be read.
            if isinstance(parsed, dict) and parsed.get("id") is None and isinstance(parsed.get("error"), dict):
                self.tracker.fail(self.keys, code=parsed["error"].get("code"))
        await self._start(response, [(b"content-length", str(len(body)).encode())])
        await self._body(body, more=False)

    async def _relay_sse(self, response: httpx.Response) -> None:
        await self._start(response)
        splitter = SseSplitter()
        chunks = response.aiter_bytes()
        timed_out = False
        while True:
            with anyio.move_on_after(self._remaining()) as timer:
                try:
                    chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    break
            if timer.cancelled_caught:
                timed_out = True
                break
            for event in splitter.feed(chunk):
                await self._relay_event(event)
        if timed_out:
            # Only whole events were relayed, so the client's stream is at an event boundary.
            for _, request_id in self.tracker.time_out(self.keys):
                logger.warning("request %r got no answer in %gs; answering it as timed out", request_id,
                               self.tracker.request_timeout)
                error = error_response(request_id, REQUEST_TIMEOUT, "Request timed out")
                await self._body(sse_message(json.dumps(error, separators=(",", ":")).encode()))
        else:
            for event in splitter.feed(b"", eof=True):
                await self._relay_event(event)
            rest = splitter.rest()
            if rest:
                await self._body(rest)
        await self._body(b"", more=False)

    async def _relay_event(self, event: SseEvent) -> None:
        if event.id:
            self.resumable = True
        if event.event == "message" and event.data:
            parsed = parse_json(event.data)
            if parsed is not NOT_JSON and not self.tracker.from_server(parsed, self.session):
                return  # a late answer to a request already answered as timed out
        await self._body(event.raw)

    # -- the proxy's own answers ------------------------------------------------------

    async def _answer(self, status: int, errors: list[dict[str, Any]]) -> None:
        payload: object = errors if self.batch else (errors[0] if errors else None)
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        self.started = True
        await self._body(body, more=False)

    async def _answer_timeout(self) -> None:
        closed = self.tracker.time_out(self.keys)
        for _, request_id in closed:
            logger.warning("request %r got no answer in %gs; answering it as timed out", request_id,
                           self.tracker.request_timeout)
        # Every request of the POST is answered; only those still pending are counted here.
        await self._answer(200, [error_response(k[1], REQUEST_TIMEOUT, "Request timed out") for k in self.keys])

    async def _answer_unavailable(self, exc: Exception) -> None:
        self.tracker.fail(self.keys)
        message = f"Upstream MCP server unavailable: {type(exc).__name__}"
        await self._answer(502, [error_response(k[1], CONNECTION_CLOSED, message) for k in self.keys])


def parse_listen(listen: str) -> tuple[str, int]:
    """HOST:PORT (or [V6]:PORT, or just PORT) -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", listen
    host = host.strip("[]") or "127.0.0.1"
    try:
        return host, int(port)
    except ValueError:
        raise ValueError(f"--listen must be HOST:PORT, got {listen!r}") from None


async def serve_http_proxy(
    upstream: str,
    tracker: Tracker,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    log_level: str = "warning",
) -> None:
    """Serve the proxy with uvicorn until it is told to stop (SIGINT/SIGTERM)."""
    import uvicorn

    app = HttpProxy(upstream, tracker)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        # The upstream's own Server and Date headers pass through.
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=5,
    )
    await uvicorn.Server(config).serve()


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

What a client cannot make the proxy do (each refusal is a one-line JSON-RPC
error with a null id that echoes nothing of the request, and closes the
connection; none is counted, as no request was read):

- reach any host but the upstream: the upstream URL fixes scheme, host and
  port, and the client's request target must be a plain path ("/..."); a
  target with an authority in any disguise ("*@host:port/x", "//host/x",
  "@", a backslash, their percent-encoded forms) or "*" gets HTTP 400.
  (An absolute-form target "http://other/x" is allowed by HTTP/1.1: its
  authority is dropped by the server and "/x" goes to the upstream.)
- hold a large body in memory: a body over `max_body_bytes` gets HTTP 413,
  from its Content-Length before any of it is read, else as soon as the
  bytes read pass the bound;
- hold a connection by sending slowly: headers not complete within
  `header_timeout` seconds get HTTP 408 (see `serve_http_proxy`), and so does
  a body that pauses that long;
- open connections without bound: past `max_connections` a new connection
  gets HTTP 503 and is closed at once, so the proxy's open files (and the
  /metrics server in the same process) never run out.
"""

from __future__ import annotations

import asyncio
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

from collector.audit.relayed import Connection
from collector.logfilter import install_rate_limit
from collector.proxy.framing import DEFAULT_MAX_MESSAGE_BYTES, NOT_JSON, SseEvent, SseSplitter, parse_json, sse_message
from collector.proxy.tracker import CONNECTION_CLOSED, REQUEST_TIMEOUT, Key, Tracker, error_response

logger = logging.getLogger(__name__)

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

# The bounds on clients (see the module docstring), with the CLI options that change them.
# --max-body-bytes: one message, the same bound as a stdio line (MCP messages are small)
DEFAULT_MAX_BODY_BYTES = DEFAULT_MAX_MESSAGE_BYTES
DEFAULT_MAX_CONNECTIONS = 1000  # --max-connections
DEFAULT_HEADER_TIMEOUT = 10.0  # --header-timeout
# Open files needed besides client connections and their upstream ones: listening
# sockets, /metrics, idle upstream connections (UPSTREAM_TRANSPORTS * KEEPALIVE_PER_TRANSPORT), logs.
FD_RESERVE = 128

CONNECT_TIMEOUT = 10.0
UPSTREAM_TRANSPORTS = 8
KEEPALIVE_PER_TRANSPORT = 8
# The proxy enforces its own deadlines; only connecting is bounded here.
TIMEOUTS = {"connect": CONNECT_TIMEOUT, "read": None, "write": None, "pool": None}
SWEEP_INTERVAL = 1.0
INVALID_REQUEST = -32600  # JSON-RPC: the proxy's refusals

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

    def url_for(self, target: bytes) -> httpx.URL:
        """The upstream URL with `target` (a path and query from `upstream_target`) as
        its path and query: scheme, host and port always the upstream's own, as they
        are set apart from the target (never by joining strings). Raises
        httpx.InvalidURL for a target httpx cannot send."""
        url = self._urls.get(target)
        if url is None:
            if len(self._urls) > 1000:  # paths with ever-changing queries
                self._urls.clear()
            url = self._urls[target] = self.url.copy_with(raw_path=target)
        return url

    def request(self, method: str, url: httpx.URL, headers: list[tuple[bytes, bytes]], body: bytes) -> httpx.Request:
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

    def __init__(
        self,
        upstream: str,
        tracker: Tracker,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        body_timeout: float | None = DEFAULT_HEADER_TIMEOUT,
    ):
        """`max_body_bytes`: larger request bodies get HTTP 413; `body_timeout`: a
        request body pausing this many seconds gets HTTP 408 (None: no limit)."""
        if max_body_bytes <= 0 or (body_timeout is not None and body_timeout <= 0):
            raise ValueError("max_body_bytes and body_timeout must be positive")
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
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
        self.tracker.report(final=True)
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
            # Timeouts are counted and logged in sums by the tracker (a flood gives few lines).
            self.tracker.expire(skip=self.owned)
            self.tracker.report()


def upstream_target(scope: dict[str, Any]) -> bytes | None:
    """Path and query to request from the upstream, as the client sent them; None
    when the request target is not a plain path (see `_plain_path`)."""
    raw_path = scope.get("raw_path") or scope["path"].encode()
    # Checked as sent and as decoded: the upstream may decode "%2F%2F" to "//".
    if not (_plain_path(raw_path) and _plain_path(scope["path"].encode("utf-8", "surrogateescape"))):
        return None
    query = scope.get("query_string")
    return raw_path + b"?" + query if query else raw_path


def _plain_path(path: bytes) -> bool:
    """Whether `path` is "/..." with nothing that could be read as an authority:
    not "//host" (authority-relative), no "@" (userinfo), no backslash (a slash
    to some parsers). The HTTP parser has refused spaces and control characters."""
    return path.startswith(b"/") and not path.startswith(b"//") and b"@" not in path and b"\\" not in path


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
        self.connection: Connection | None = None  # for the audit trail, when there is one

    async def run(self) -> None:
        url = self._upstream_url()
        if url is None:
            logger.warning("refused a request whose target is not a plain path")
            await self._refuse(400, "Bad request target: it must be a path starting with '/'")
            return
        body = await self._read_body()
        if body is None:
            return  # the client went away, or was refused, before its request was read
        if self.is_mcp and self.scope["method"] == "POST":
            self._account_request(body)
        self.proxy.owned.update(self.keys)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch_disconnect, tg.cancel_scope)
                await self._relay(url, body)
                tg.cancel_scope.cancel()
        finally:
            self.proxy.owned.difference_update(self.keys)
            if self.disconnected:
                # The client closed the connection while waiting: it cancelled.
                if self.tracker.cancel(self.keys):
                    logger.debug("%s cancelled: the client closed the connection", self.scope["method"])
            elif not self.resumable:
                # Nothing more will answer these on this exchange.
                self.tracker.fail(self.keys)

    def _upstream_url(self) -> httpx.URL | None:
        target = upstream_target(self.scope)
        if target is None:
            return None
        try:
            return self.proxy.to_upstream.url_for(target)
        except httpx.InvalidURL:
            return None

    async def _read_body(self) -> bytes | None:
        """The request body; None if the client went away, or was refused for a body
        over max_body_bytes (413) or pausing body_timeout seconds (408)."""
        limit = self.proxy.max_body_bytes
        if _declared_length(self.headers) > limit:
            return await self._refuse_too_large()  # before reading (or asking for: Expect) any of it
        chunks, size = [], 0
        while True:
            message = None
            with anyio.move_on_after(self.proxy.body_timeout):
                message = await self.receive()
            if message is None:
                logger.warning("refused a request whose body paused over %gs (--header-timeout)",
                               self.proxy.body_timeout)
                return await self._refuse(408, "Request body not received in time")
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:  # a chunked body, or one longer than its Content-Length said
                return await self._refuse_too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _refuse_too_large(self) -> None:
        logger.warning("refused a request body over %d bytes (--max-body-bytes)", self.proxy.max_body_bytes)
        await self._refuse(413, f"Request body over {self.proxy.max_body_bytes} bytes")

    def _account_request(self, body: bytes) -> None:
        parsed = parse_json(body)
        if parsed is NOT_JSON:
            # Relayed unchanged: the server answers it (HTTP 400 / -32700), as without the proxy.
            logger.warning("a POST body is not JSON (%d bytes); relaying it unchanged, not counted", len(body))
            return
        self.batch = isinstance(parsed, list)
        protocol = _header(self.headers, b"mcp-protocol-version")
        if self.tracker.audit is None:
            self.keys = self.tracker.from_client(parsed, self.session, protocol)
            return
        client = self.scope.get("client")
        self.connection = Connection(self.session if isinstance(self.session, str) else None,
                                     client[0] if client else None, self.headers)
        self.keys = self.tracker.from_client(parsed, self.session, protocol, size=len(body),
                                             connection=self.connection)

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

    async def _relay(self, url: httpx.URL, body: bytes) -> None:
        upstream = self.proxy.to_upstream
        request = upstream.request(self.scope["method"], url, filter_headers(self.headers, REQUEST_DROP), body)
        response: httpx.Response | None = None
        try:
            with anyio.move_on_after(self._remaining()):
                response = await upstream.send(request)
            if response is None:
                await self._answer_timeout()
                return
            if self.connection is not None and self.connection.session_id is None:
                # An initialize's answer names the new session; its audit record carries it.
                self.connection.session_id = response.headers.get("mcp-session-id") or None
            content_type = response.headers.get("content-type", "").lower()
            if self.is_mcp and content_type.startswith("text/event-stream"):
                await self._relay_sse(response)
            elif self.keys and content_type.startswith("application/json"):
                await self._relay_json(response)
            else:
                await self._relay_raw(response)
        except httpx.HTTPError as exc:
            # Never the URL: its path and query are the client's and may carry secrets.
            logger.warning("upstream request failed: %s", type(exc).__name__)
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
            self.tracker.from_server(parsed, self.session, size=len(body))
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
            size = len(event.data.encode()) if self.tracker.audit is not None else None
            if parsed is not NOT_JSON and not self.tracker.from_server(parsed, self.session, size=size):
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

    async def _refuse(self, status: int, message: str) -> None:
        """Answer a request the proxy will not relay, and close the connection so no
        more of it is read. The message is fixed text: nothing of the request is echoed."""
        body = refusal_body(message)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        self.started = True
        await self._body(body, more=False)

    async def _answer_timeout(self) -> None:
        self.tracker.time_out(self.keys)
        # Every request of the POST is answered; only those still pending are counted here.
        await self._answer(200, [error_response(k[1], REQUEST_TIMEOUT, "Request timed out") for k in self.keys])

    async def _answer_unavailable(self, exc: Exception) -> None:
        message = f"Upstream MCP server unavailable: {type(exc).__name__}"
        self.tracker.fail(self.keys, why=message)
        await self._answer(502, [error_response(k[1], CONNECTION_CLOSED, message) for k in self.keys])


def refusal_body(message: str) -> bytes:
    """A JSON-RPC error with a null id (no request was read): the body of every refusal."""
    return json.dumps(error_response(None, INVALID_REQUEST, message), separators=(",", ":")).encode()


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int:
    """The request's Content-Length (the HTTP parser has checked it), 0 if none."""
    value = _header(headers, b"content-length")
    return int(value) if value and value.strip().isdigit() else 0


async def serve_http_proxy(
    upstream: str,
    tracker: Tracker,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    log_level: str = "warning",
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    header_timeout: float = DEFAULT_HEADER_TIMEOUT,
) -> None:
    """Serve the proxy with uvicorn until it is told to stop (SIGINT/SIGTERM).

    Bounds what clients can hold (see the module docstring): `max_body_bytes`
    per request body, `max_connections` open at once, `header_timeout` seconds
    to send a request's headers (and the longest pause in its body). The soft
    open-files limit is raised to what `max_connections` needs; when the hard
    limit is lower, fewer connections are served (with a warning). uvicorn logs
    through the root logger, whose handlers are rate-limited (collector.logfilter).
    """
    import uvicorn

    if max_connections <= 0 or header_timeout <= 0:
        raise ValueError("max_connections and header_timeout must be positive")
    app = HttpProxy(upstream, tracker, max_body_bytes=max_body_bytes, body_timeout=header_timeout)
    max_connections = _fit_open_files(max_connections)
    install_rate_limit()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=_bounded_protocol(max_connections, header_timeout),
        # At most this many connections are accepted in one go, each holding a file until refused.
        backlog=min(max_connections, 2048),
        log_level=log_level,
        log_config=None,  # the root logger's handlers, rate-limited, not uvicorn's own
        access_log=False,
        lifespan="on",
        # The upstream's own Server and Date headers pass through.
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=5,
    )
    await uvicorn.Server(config).serve()


def _fit_open_files(max_connections: int) -> int:
    """Raise the soft open-files limit to what `max_connections` need: each client
    connection may hold one to the upstream, and as many again can be accepted at
    once before they are refused. When the hard limit is too low, serve fewer
    connections: the proxy must never run out of files (nor /metrics with it)."""
    try:
        import resource
    except ImportError:  # not on POSIX: nothing to fit
        return max_connections
    needed = 3 * max_connections + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < needed:
        fitted = max(1, (soft - FD_RESERVE) // 3)
        logger.warning("only %d open files allowed: serving at most %d connections, not %d (--max-connections)",
                       soft, fitted, max_connections)
        return fitted
    return max_connections


def _answer_and_close(transport: Any, status: int, message: str) -> None:
    """Answer a connection without a request the app will see, and close it."""
    body = refusal_body(message)
    reason = {408: b"Request Timeout", 503: b"Service Unavailable"}[status]
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
    transport.write(head % (status, reason, len(body)) + body)
    transport.close()


def _bounded_protocol(max_connections: int, header_timeout: float) -> type:
    """uvicorn's HTTP protocol, bounded: uvicorn answers 503 over its concurrency
    limit only once a request's headers arrive, and waits for them forever."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class BoundedHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        """Past `max_connections` a new connection is answered 503 and closed at
        once; a request whose headers are not complete `header_timeout` seconds
        after the connection opened, or after its first bytes on a kept-alive
        connection, is answered 408 and closed. (Between requests uvicorn's own
        keep-alive timeout applies.)"""

        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                self.connections.discard(self)
                logger.warning("refused a connection: %d open already (--max-connections)", max_connections)
                _answer_and_close(transport, 503, "Too many connections")
                return
            self._await_headers()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.transport.is_closing():
                self._stop_waiting()
            elif self.cycle is None or self.cycle.response_complete:
                self._await_headers()  # a request has begun; its headers are not all here
            else:
                self._stop_waiting()  # the request's headers arrived: the app has it

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_waiting()
            super().connection_lost(exc)

        def _await_headers(self) -> None:
            if self._header_timer is None:  # once per request: trickling bytes do not extend it
                self._header_timer = self.loop.call_later(header_timeout, self._headers_too_slow)

        def _stop_waiting(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                logger.warning("closed a connection whose request headers took over %gs (--header-timeout)",
                               header_timeout)
                _answer_and_close(self.transport, 408, "Request headers not received in time")

    return BoundedHTTPProtocol

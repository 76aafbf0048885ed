"""The engine's PromQL client (slo.engine.backend): against a real Prometheus, and against
small hostile HTTP servers started here on loopback (garbage, slow, failing, checking
credentials, TLS)."""

from __future__ import annotations

import base64
import datetime
import gzip
import ipaddress
import json
import logging
import math
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from slo.engine.backend import Backend, BackendError, BackendOptions
from slo.query import Sample
from tests import binaries
from tests.support import free_port, wait_until

SECRET_PASSWORD = "pa55-w0rd-never-shown"
SECRET_TOKEN = "tok-3e1f-never-shown"
SECRET_TENANT = "tenant-never-shown"
TOKEN_ENV = "MCP_SLO_TEST_PROM_TOKEN"


# --- a scriptable HTTP server ------------------------------------------------------------


class Script(BaseHTTPRequestHandler):
    """Replies with what the owning `Hostile` server's route for the path says."""

    def do_GET(self) -> None:
        owner: Hostile = self.server.owner  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        owner.received.append({"path": url.path, "params": {k: v[0] for k, v in parse_qs(url.query).items()},
                               "headers": dict(self.headers)})
        route = owner.routes.get(url.path)
        try:
            if route is None:
                reply(self, 404, "404 page not found\n", "text/plain")
            else:
                route(self)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the client gave up first: that is what some tests check

    def log_message(self, *args) -> None:
        pass


class Hostile:
    """An HTTP(S) server on 127.0.0.1 (a free port) in a thread: `routes` maps a path
    to a function writing the reply; `received` records each request."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.routes: dict[str, Callable[[BaseHTTPRequestHandler], None]] = {}
        self.received: list[dict] = []
        self.release = threading.Event()  # slow handlers wait on it; set when closing
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Script)
        self.server.daemon_threads = True
        self.server.owner = self  # type: ignore[attr-defined]
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"

    def json(self, path: str, doc, status: int = 200) -> None:
        self.routes[path] = lambda h: reply(h, status, json.dumps(doc), "application/json")

    def raw(self, path: str, body: str | bytes, status: int = 200, content_type: str = "application/json") -> None:
        self.routes[path] = lambda h: reply(h, status, body, content_type)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def reply(handler: BaseHTTPRequestHandler, status: int, body: str | bytes, content_type: str,
          headers: dict[str, str] | None = None) -> None:
    data = body.encode() if isinstance(body, str) else body
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


def vector(*samples: tuple[dict, str]) -> dict:
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": labels, "value": [1700000000.5, value]} for labels, value in samples]}}


ONE = vector(({}, "1"))


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    server = Hostile()
    yield server
    server.close()


@pytest.fixture
def backends() -> Iterator[Callable[..., Backend]]:
    """A factory of Backends (closed at the end): backends(url, **options)."""
    made: list[Backend] = []

    def make(url: str, **options) -> Backend:
        options.setdefault("timeout", 2.0)
        backend = Backend(BackendOptions(url=url, **options))
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


def one_line(exc: BackendError) -> str:
    message = str(exc)
    assert "\n" not in message and message.strip() == message, message
    return message


# --- a real Prometheus -------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus() -> Iterator[str]:
    """A real Prometheus scraping a static /metrics page every second; yields its URL."""
    binaries.require("prometheus")
    exporter = Hostile()
    exporter.raw("/metrics", "# TYPE backend_test_gauge gauge\nbackend_test_gauge{color=\"blue\"} 42\n",
                 content_type="text/plain; version=0.0.4")
    try:
        with binaries.prometheus([exporter.url.removeprefix("http://")], scrape_interval="1s") as url:
            yield url
    finally:
        exporter.close()


@pytest.fixture
def prom(prometheus, backends) -> Backend:
    return backends(prometheus, timeout=5.0)


@pytest.mark.integration
def test_prometheus_vector_and_scalar(prom):
    assert prom.query("vector(1)") == [Sample({}, 1.0)]
    assert prom.query("1+1") == [Sample({}, 2.0)]
    assert prom.query('label_replace(vector(3), "a", "b", "", "")') == [Sample({"a": "b"}, 3.0)]
    assert prom.query("vector(1) == 2") == []
    assert prom.queries == 4


@pytest.mark.integration
def test_prometheus_special_values(prom):
    [nan] = prom.query("vector(0) / 0")
    assert math.isnan(nan.value) and nan.labels == {}
    assert prom.query("vector(1) / 0") == [Sample({}, math.inf)]
    assert prom.query("vector(-1) / 0") == [Sample({}, -math.inf)]
    [scalar_nan] = prom.query("0 / 0")
    assert math.isnan(scalar_nan.value)


@pytest.mark.integration
def test_prometheus_scraped_series(prom):
    up = wait_until(lambda: prom.query('up{job="mcp"}'), timeout=30, what="the first scrape")
    assert len(up) == 1
    assert up[0].value == 1.0
    assert up[0].labels["__name__"] == "up" and up[0].labels["job"] == "mcp"
    [gauge] = wait_until(lambda: prom.query("backend_test_gauge"), timeout=30, what="the gauge")
    assert gauge == Sample({"__name__": "backend_test_gauge", "color": "blue", "instance": up[0].labels["instance"],
                            "job": "mcp"}, 42.0)
    # an aggregation drops __name__, and so does the Sample
    assert prom.query("sum by (color) (backend_test_gauge)") == [Sample({"color": "blue"}, 42.0)]


@pytest.mark.integration
def test_prometheus_instant_query_at_a_time(prom):
    assert prom.query("time()", at=1700000000.25) == [Sample({}, 1700000000.25)]


@pytest.mark.integration
def test_prometheus_range_query(prom):
    # a start off whole seconds: the library alone would round it
    start = math.floor(time.time()) - 20 + 0.25
    series = prom.query_range('label_replace(vector(1), "k", "v", "", "")', start, start + 10, 1)
    assert len(series) == 1
    labels, points = series[0]
    assert labels == {"k": "v"}
    assert [t for t, _ in points] == [start + i for i in range(11)]
    assert all(v == 1.0 for _, v in points)
    [(labels, points)] = prom.query_range("time()", start, start + 4, 2)
    assert labels == {} and points == [(start + i, start + i) for i in (0, 2, 4)]
    [(_, points)] = prom.query_range("vector(0) / 0", start, start + 1, 1)
    assert len(points) == 2 and all(math.isnan(v) for _, v in points)
    assert prom.query_range('up{job="no-such-job"}', start, start + 10, 1) == []


@pytest.mark.integration
def test_prometheus_syntax_error(prom):
    with pytest.raises(BackendError) as caught:
        prom.query("sum(rate(up[5m])")
    assert caught.value.kind == "query"
    assert caught.value.error_type == "bad_data" and caught.value.status == 400
    message = one_line(caught.value)
    assert "parse error" in message
    assert "sum(rate(up[5m])" in message and prom.url in message
    with pytest.raises(BackendError) as caught:
        prom.query_range("rate(up)", time.time() - 60, time.time(), 15)
    assert caught.value.kind == "query" and "range vector" in str(caught.value)


@pytest.mark.integration
def test_prometheus_wrong_result_type(prom):
    with pytest.raises(BackendError) as caught:
        prom.query("up[1m]")
    assert caught.value.kind == "query" and "not a matrix" in str(caught.value)


@pytest.mark.integration
def test_prometheus_ready(prom):
    assert prom.ready()


# --- replies that are not what the API promises ------------------------------------------


GARBAGE = [
    pytest.param(200, "text/html", "<html><body>Login</body></html>", "bad_response", "not JSON", id="html"),
    pytest.param(200, "application/json", '{"status": "success", "data": {', "bad_response", "not JSON",
                 id="invalid-json"),
    pytest.param(200, "application/json", "", "bad_response", "(empty body)", id="empty"),
    pytest.param(200, "application/json", '{"status": "success"}', "bad_response", '"data"', id="no-data"),
    pytest.param(200, "application/json", '{"status": "success", "data": null}', "bad_response", '"data"',
                 id="null-data"),
    pytest.param(200, "application/json", "[1, 2]", "bad_response", "not a Prometheus API reply", id="list"),
    pytest.param(200, "application/json", '{"data": {"resultType": "vector", "result": []}}', "bad_response",
                 "not a Prometheus API reply", id="no-status"),
    pytest.param(200, "application/json", '{"status": "error", "errorType": "execution", "error": "boom"}',
                 "query", "Prometheus error execution: boom", id="status-error"),
    pytest.param(200, "application/json", '{"status": "success", "data": {"resultType": "banana", "result": []}}',
                 "bad_response", "unexpected resultType 'banana'", id="unknown-type"),
    pytest.param(200, "application/json", '{"status": "success", "data": {"result": []}}',
                 "bad_response", "unexpected resultType None", id="no-type"),
    pytest.param(200, "application/json", '{"status": "success", "data": {"resultType": "string", "result": [1, "a"]}}',
                 "query", "not a string", id="string"),
    pytest.param(200, "application/json", '{"status": "success", "data": {"resultType": "vector", "result": {}}}',
                 "bad_response", "not a list", id="result-object"),
    pytest.param(200, "application/json", '{"status": "success", "data": {"resultType": "vector", "result": [1]}}',
                 "bad_response", "not an object", id="element-number"),
    pytest.param(200, "application/json", json.dumps(vector(({}, "abc"))), "bad_response",
                 "value is not a number: 'abc'", id="value-text"),
    pytest.param(200, "application/json", json.dumps(vector(({}, None))), "bad_response",
                 "value is not a number: None", id="value-null"),
    pytest.param(200, "application/json", json.dumps(vector(({}, "1_000"))), "bad_response",
                 "value is not a number", id="value-underscore"),
    pytest.param(200, "application/json", json.dumps(vector(({}, True))), "bad_response",
                 "value is not a number", id="value-bool"),
    pytest.param(200, "application/json",
                 '{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": ["x", "1"]}]}}',
                 "bad_response", "timestamp is not a number", id="timestamp-text"),
    pytest.param(200, "application/json",
                 '{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1]}]}}',
                 "bad_response", "[timestamp, value]", id="short-sample"),
    pytest.param(200, "application/json",
                 '{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {"a": 1}, "value": [1, "1"]}]}}',
                 "bad_response", "labels are not an object of strings", id="label-number"),
    pytest.param(200, "application/json",
                 '{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "histogram": [1, {}]}]}}',
                 "query", "native histogram", id="native-histogram"),
    pytest.param(200, "application/json", '{"status": "success", "data": {"resultType": "scalar", "result": "1"}}',
                 "bad_response", "[timestamp, value]", id="scalar-not-pair"),
    pytest.param(200, "application/json", "[" * 100000 + "]" * 100000, "bad_response", "not JSON", id="deep-json"),
    pytest.param(500, "text/html", "<h1>Internal Server Error</h1>", "http", "HTTP 500 Internal Server Error",
                 id="500-html"),
    pytest.param(404, "text/plain", "404 page not found", "http", "HTTP 404", id="404"),
    pytest.param(400, "application/json", '{"status": "error", "errorType": "bad_data", "error": "invalid parameter"}',
                 "query", "Prometheus error bad_data: invalid parameter", id="400-prometheus"),
    pytest.param(503, "application/json",
                 '{"status": "error", "errorType": "timeout", "error": "query timed out in expression evaluation"}',
                 "timeout", "query timed out in expression evaluation", id="server-timeout"),
]


@pytest.mark.parametrize("status, content_type, body, kind, fragment", GARBAGE)
def test_garbage_instant(hostile, backends, status, content_type, body, kind, fragment):
    hostile.raw("/api/v1/query", body, status, content_type)
    backend = backends(hostile.url)
    with pytest.raises(BackendError) as caught:
        backend.query('sum(rate(mcp_operations_total{service="fs"}[5m]))')
    assert caught.value.kind == kind
    message = one_line(caught.value)
    assert fragment in message
    assert message.startswith(f"instant query to {hostile.url} failed: ")
    assert message.endswith('; query: sum(rate(mcp_operations_total{service="fs"}[5m]))')
    assert len(message) < 600
    assert len(hostile.received) == 1  # none of these is retried


RANGE_GARBAGE = [
    pytest.param('{"status": "success", "data": {"resultType": "vector", "result": []}}', "bad_response",
                 "must give a matrix", id="vector"),
    pytest.param('{"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": 1}]}}',
                 "bad_response", '"values" is a int', id="values-number"),
    pytest.param('{"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "x"]]}]}}',
                 "bad_response", "value is not a number: 'x'", id="value-text"),
    pytest.param('{"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1e999, "1"]]}]}}',
                 "bad_response", "timestamp is not finite", id="timestamp-infinite"),
    pytest.param('{"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "histograms": [[1, {}]]}]}}',
                 "query", "native histogram", id="native-histogram"),
]


@pytest.mark.parametrize("body, kind, fragment", RANGE_GARBAGE)
def test_garbage_range(hostile, backends, body, kind, fragment):
    hostile.raw("/api/v1/query_range", body)
    with pytest.raises(BackendError) as caught:
        backends(hostile.url).query_range("up", 1000, 1060, 15)
    assert caught.value.kind == kind
    message = one_line(caught.value)
    assert fragment in message and message.startswith("range query to ") and message.endswith("; query: up")


def test_parses_replies(hostile, backends):
    hostile.json("/api/v1/query", vector(({"__name__": "up", "job": "a"}, "1"), ({"job": "b"}, "NaN"),
                                         ({"job": "c"}, "+Inf"), ({"job": "d"}, "-Inf"), ({"job": "e"}, "1e-3")))
    samples = backends(hostile.url).query("up")
    assert [s.labels for s in samples] == [{"__name__": "up", "job": "a"}, {"job": "b"}, {"job": "c"}, {"job": "d"},
                                           {"job": "e"}]
    values = [s.value for s in samples]
    assert values[0] == 1.0 and math.isnan(values[1]) and values[2:] == [math.inf, -math.inf, 0.001]


def test_query_parameters(hostile, backends):
    hostile.json("/api/v1/query", ONE)
    hostile.json("/api/v1/query_range", {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"a": "b"}, "values": [[1000.5, "1"], [1015.5, "NaN"]]}]}})
    backend = backends(hostile.url, timeout=1.5)
    backend.query("up", at=1700000000.125)
    [(labels, points)] = backend.query_range("up", 1000.5, 1015.5, 7.5)
    assert labels == {"a": "b"} and points[0] == (1000.5, 1.0) and math.isnan(points[1][1])
    instant, ranged = (r["params"] for r in hostile.received)
    assert instant == {"query": "up", "time": "1700000000.125", "timeout": "1500ms"}
    # exact times, not the library's whole seconds
    assert ranged == {"query": "up", "start": "1000.5", "end": "1015.5", "step": "7.5", "timeout": "1500ms"}
    with pytest.raises(ValueError):
        backend.query_range("up", 2000, 1000, 15)
    with pytest.raises(ValueError):
        backend.query_range("up", 1000, 2000, 0)
    with pytest.raises(ValueError):
        backend.query("up", at=math.nan)


def test_gzip_and_chunked_reply(hostile, backends):
    body = gzip.compress(json.dumps(vector(*[({"i": str(i)}, str(i)) for i in range(5000)])).encode())

    def chunked(handler):
        handler.protocol_version = "HTTP/1.1"
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.send_header("Connection", "close")
        handler.end_headers()
        for i in range(0, len(body), 1000):
            part = body[i:i + 1000]
            handler.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        handler.wfile.write(b"0\r\n\r\n")

    hostile.routes["/api/v1/query"] = chunked
    samples = backends(hostile.url).query("x")
    assert len(samples) == 5000 and samples[4999] == Sample({"i": "4999"}, 4999.0)


def test_truncated_body(hostile, backends):
    def truncated(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        handler.wfile.write(b'{"status": "success"')

    hostile.routes["/api/v1/query"] = truncated
    with pytest.raises(BackendError) as caught:
        backends(hostile.url).query("x")
    assert caught.value.kind == "bad_response" and "incomplete" in one_line(caught.value)


def test_prometheus_warnings_are_logged(hostile, backends, caplog):
    hostile.json("/api/v1/query", {**ONE, "warnings": ["PromQL info: metric might not be a counter"]})
    with caplog.at_level(logging.WARNING, logger="slo.engine.backend"):
        assert backends(hostile.url).query("rate(x[5m])") == [Sample({}, 1.0)]
    assert "metric might not be a counter" in caplog.text and "rate(x[5m])" in caplog.text


def test_long_query_is_shortened_in_messages(hostile, backends):
    hostile.raw("/api/v1/query", "oops", 500, "text/plain")
    expr = "sum(\n  rate(x[5m])\n)" + " + vector(1)" * 100
    with pytest.raises(BackendError) as caught:
        backends(hostile.url).query(expr)
    message = one_line(caught.value)
    assert "query: sum( rate(x[5m]) ) + vector(1)" in message and message.endswith("...")
    assert caught.value.query == expr  # the whole query stays available to the caller


# --- failures of the transport: bounded, classified ----------------------------------------


def test_connection_refused_is_fast(backends):
    port = free_port()  # nothing listens there
    backend = backends(f"http://127.0.0.1:{port}", timeout=5.0, retries=1)
    started = time.monotonic()
    with pytest.raises(BackendError) as caught:
        backend.query("up")
    elapsed = time.monotonic() - started
    assert caught.value.kind == "unreachable"
    assert "connection refused" in one_line(caught.value) and f"127.0.0.1:{port}" in str(caught.value)
    assert elapsed < 2.0
    assert backend.queries == 1


def test_slow_server_times_out_within_the_bound(hostile, backends):
    hostile.routes["/api/v1/query"] = lambda h: (hostile.release.wait(30), reply(h, 200, json.dumps(ONE),
                                                                                 "application/json"))
    backend = backends(hostile.url, timeout=0.5, retries=1)
    started = time.monotonic()
    with pytest.raises(BackendError) as caught:
        backend.query("up")
    elapsed = time.monotonic() - started
    assert caught.value.kind == "timeout"
    assert "no answer within 0.5s (2 attempts)" in one_line(caught.value)
    assert 0.9 < elapsed < 2.5
    assert len(hostile.received) == 2  # one retry, no more


def test_trickled_body_times_out_within_the_bound(hostile, backends):
    """Headers at once, then a byte every 0.2 s: no single read times out, the call does."""
    body = json.dumps(ONE).encode()

    def trickle(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        for byte in body:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            if hostile.release.wait(0.2):
                return

    hostile.routes["/api/v1/query"] = trickle
    backend = backends(hostile.url, timeout=0.5, retries=1)
    started = time.monotonic()
    with pytest.raises(BackendError) as caught:
        backend.query("up")
    elapsed = time.monotonic() - started
    assert caught.value.kind == "timeout" and "reply body not received within 1s" in one_line(caught.value)
    assert elapsed < 2.5


def test_no_retries(hostile, backends):
    hostile.routes["/api/v1/query"] = lambda h: (hostile.release.wait(30), None)
    backend = backends(hostile.url, timeout=0.3, retries=0)
    started = time.monotonic()
    with pytest.raises(BackendError) as caught:
        backend.query("up")
    assert caught.value.kind == "timeout" and "attempts" not in str(caught.value)
    assert time.monotonic() - started < 1.5
    assert len(hostile.received) == 1


@pytest.mark.parametrize("status", [502, 504])
def test_gateway_errors_are_retried_once(hostile, backends, status):
    hostile.raw("/api/v1/query", "<html>Bad Gateway</html>", status, "text/html")
    with pytest.raises(BackendError) as caught:
        backends(hostile.url, retries=1).query("up")
    assert caught.value.kind == "http" and caught.value.status == status
    assert f"HTTP {status}" in one_line(caught.value) and "Bad Gateway" in str(caught.value)
    assert len(hostile.received) == 2


def test_retry_after_is_not_slept(hostile, backends):
    hostile.routes["/api/v1/query"] = lambda h: reply(h, 503, "busy", "text/plain", {"Retry-After": "3600"})
    started = time.monotonic()
    with pytest.raises(BackendError) as caught:
        backends(hostile.url, retries=3).query("up")
    assert caught.value.kind == "http" and caught.value.status == 503
    assert time.monotonic() - started < 2.0


def test_gateway_error_then_success(hostile, backends):
    answers = iter([502, 200])

    def flaky(handler):
        status = next(answers)
        reply(handler, status, json.dumps(ONE) if status == 200 else "bad gateway", "application/json")

    hostile.routes["/api/v1/query"] = flaky
    assert backends(hostile.url, retries=1).query("up") == [Sample({}, 1.0)]


def test_server_closing_the_connection(hostile, backends):
    hostile.routes["/api/v1/query"] = lambda h: h.connection.shutdown(2)
    with pytest.raises(BackendError) as caught:
        backends(hostile.url, retries=1).query("up")
    assert caught.value.kind == "unreachable" and "connection closed by the server" in one_line(caught.value)
    assert len(hostile.received) == 2


def test_unknown_host(backends):
    with pytest.raises(BackendError) as caught:
        backends("http://no-such-host.invalid:9090", retries=0).query("up")
    assert caught.value.kind == "unreachable"


# --- credentials: sent, never shown --------------------------------------------------------


def checking(hostile: Hostile, expected: dict[str, str]) -> None:
    """Answer queries only when the request carries the `expected` headers; 401 otherwise."""

    def route(handler):
        if all(handler.headers.get(name) == value for name, value in expected.items()):
            reply(handler, 200, json.dumps(ONE), "application/json")
        else:
            reply(handler, 401, "Unauthorized", "text/plain", {"WWW-Authenticate": "Basic"})

    hostile.routes["/api/v1/query"] = route
    hostile.routes["/-/ready"] = route


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_and_extra_headers(hostile, backends):
    checking(hostile, {"Authorization": basic("slo", SECRET_PASSWORD), "X-Scope-OrgID": SECRET_TENANT})
    good = backends(hostile.url, basic_auth=("slo", SECRET_PASSWORD), headers={"X-Scope-OrgID": SECRET_TENANT})
    assert good.query("up") == [Sample({}, 1.0)]
    assert good.ready()
    for wrong in (dict(basic_auth=("slo", "wrong"), headers={"X-Scope-OrgID": SECRET_TENANT}),
                  dict(basic_auth=("slo", SECRET_PASSWORD)),
                  dict(headers={"X-Scope-OrgID": SECRET_TENANT})):
        backend = backends(hostile.url, **wrong)
        with pytest.raises(BackendError) as caught:
            backend.query("up")
        assert caught.value.kind == "http" and caught.value.status == 401
        assert "HTTP 401 Unauthorized" in one_line(caught.value)
        assert not backend.ready()


def test_credentials_in_the_url(hostile, backends):
    checking(hostile, {"Authorization": basic("slo user", SECRET_PASSWORD)})
    address = hostile.url.removeprefix("http://")
    backend = backends(f"http://slo%20user:{SECRET_PASSWORD}@{address}/")
    assert backend.url == hostile.url
    assert backend.options.basic_auth == ("slo user", SECRET_PASSWORD)
    assert backend.query("up") == [Sample({}, 1.0)]
    assert SECRET_PASSWORD not in repr(backend.options) and SECRET_PASSWORD not in repr(backend)
    hostile.raw("/api/v1/query", "nope", 500, "text/plain")
    with pytest.raises(BackendError) as caught:
        backend.query("up")
    assert SECRET_PASSWORD not in str(caught.value) and "slo user" not in str(caught.value)
    with pytest.raises(ValueError) as invalid:
        BackendOptions(url=f"ftp://u:{SECRET_PASSWORD}@{address}")
    assert SECRET_PASSWORD not in str(invalid.value)


def test_bearer_token_read_at_each_request(hostile, backends, monkeypatch):
    checking(hostile, {"Authorization": f"Bearer {SECRET_TOKEN}", "X-Scope-OrgID": SECRET_TENANT})
    backend = backends(hostile.url, bearer_token_env=TOKEN_ENV, headers={"X-Scope-OrgID": SECRET_TENANT})
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(BackendError) as caught:
        backend.query("up")
    assert caught.value.kind == "http"
    assert f"environment variable {TOKEN_ENV}, the bearer token, is not set" in one_line(caught.value)
    monkeypatch.setenv(TOKEN_ENV, SECRET_TOKEN + "\n")  # as read from a file
    assert backend.query("up") == [Sample({}, 1.0)]
    monkeypatch.setenv(TOKEN_ENV, "rotated-token")
    with pytest.raises(BackendError) as caught:
        backend.query("up")
    assert "is not set" not in str(caught.value)
    sent = [r["headers"].get("Authorization") for r in hostile.received]
    assert sent == [None, f"Bearer {SECRET_TOKEN}", "Bearer rotated-token"]


def test_no_secret_in_messages_reprs_or_logs(hostile, backends, monkeypatch, caplog):
    """A server echoing the request headers back, in error pages and in Prometheus errors;
    every message, repr and log line (urllib3's and requests' at DEBUG too) stays clean."""
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests", "slo.engine.backend"):
        caplog.set_level(logging.DEBUG, logger=name)
    monkeypatch.setenv(TOKEN_ENV, SECRET_TOKEN)
    echo_headers = lambda h: " ".join(f"{k}: {v}" for k, v in h.headers.items())  # noqa: E731
    replies = {
        "/api/v1/query": lambda h: reply(h, 500, f"<pre>{echo_headers(h)}</pre>", "text/html"),
        "/api/v1/query_range": lambda h: reply(h, 200, json.dumps(
            {"status": "error", "errorType": "bad_data", "error": echo_headers(h)}), "application/json"),
        "/-/ready": lambda h: reply(h, 404, "not here", "text/plain"),
    }
    hostile.routes.update(replies)
    address = hostile.url.removeprefix("http://")
    with_token = backends(hostile.url, bearer_token_env=TOKEN_ENV, headers={"X-Scope-OrgID": SECRET_TENANT})
    with_password = backends(f"http://slo:{SECRET_PASSWORD}@{address}", headers={"X-Scope-OrgID": SECRET_TENANT})
    with_header = backends(hostile.url, headers={"Authorization": f"Bearer {SECRET_TOKEN}"})
    texts = []
    for backend in (with_token, with_password, with_header):
        texts += [repr(backend), repr(backend.options), str(backend.options)]
        for call in (lambda: backend.query("up"), lambda: backend.query_range("up", 1000, 1060, 15)):
            with pytest.raises(BackendError) as caught:
                call()
            texts += [str(caught.value), repr(caught.value)]
        assert not backend.ready()
    # the servers did receive the secrets the messages hide
    assert {r["headers"].get("X-Scope-OrgID") for r in hostile.received} == {SECRET_TENANT, None}
    assert any(SECRET_TOKEN in str(r["headers"]) for r in hostile.received)
    assert any("***" in t for t in texts)
    secrets = [SECRET_PASSWORD, SECRET_TOKEN, SECRET_TENANT, base64.b64encode(f"slo:{SECRET_PASSWORD}".encode()).decode()]
    logged = caplog.text + " ".join(str(r.args) for r in caplog.records)
    assert caplog.records  # urllib3 did log each request
    for secret in secrets:
        for text in texts:
            assert secret not in text
        assert secret not in logged


def test_options_repr_masks_everything():
    options = BackendOptions(url="https://prom.example:9090/prometheus/", headers={"X-Scope-OrgID": SECRET_TENANT},
                             basic_auth=("slo", SECRET_PASSWORD), ca_file="/etc/ssl/ca.pem")
    text = repr(options)
    assert SECRET_TENANT not in text and SECRET_PASSWORD not in text
    assert "'X-Scope-OrgID': '***'" in text and "('slo', '***')" in text
    assert options.url == "https://prom.example:9090/prometheus"
    assert str(options) == text


@pytest.mark.parametrize("options, fragment", [
    (dict(url="prom:9090"), "http(s)://"),
    (dict(url="http://prom:9090/?a=b"), "query string"),
    (dict(url="http://prom:9090", timeout=0), "timeout"),
    (dict(url="http://prom:9090", timeout=math.inf), "timeout"),
    (dict(url="http://prom:9090", retries=-1), "retries"),
    (dict(url="http://prom:9090", retries=100), "retries"),
    (dict(url="http://u:p@prom:9090", basic_auth=("u", "p")), "both"),
    (dict(url="http://prom:9090", basic_auth=("u", "p"), bearer_token_env="T"), "not both"),
    (dict(url="http://prom:9090", basic_auth=("u",)), "pair"),
    (dict(url="http://prom:9090", headers={"X": "a\r\nInjected: 1"}), "one line"),
    (dict(url="http://prom:9090", headers={"Bad Name": "a"}), "header name"),
    (dict(url="http://prom:9090", headers={"Authorization": "x"}, bearer_token_env="T"), "conflicts"),
    (dict(url="http://prom:9090", verify=False, ca_file="/x"), "verify"),
])
def test_invalid_options(options, fragment):
    with pytest.raises(ValueError) as caught:
        BackendOptions(**options)
    assert fragment in str(caught.value)
    assert "a\r\nInjected" not in str(caught.value)


def test_missing_ca_file(tmp_path):
    with pytest.raises(ValueError, match="ca_file not found"):
        Backend(BackendOptions(url="https://prom:9090", ca_file=str(tmp_path / "nope.pem")))


# --- readiness, counting -------------------------------------------------------------------


def test_ready_endpoint(hostile, backends):
    hostile.raw("/-/ready", "Prometheus Server is Ready.\n", content_type="text/plain")
    backend = backends(hostile.url)
    assert backend.ready()
    assert backend.queries == 0
    hostile.raw("/-/ready", "Service Unavailable", 503, "text/plain")
    assert not backend.ready()
    assert [r["path"] for r in hostile.received] == ["/-/ready", "/-/ready"]


@pytest.mark.parametrize("status", [404, 400])
def test_ready_without_ready_endpoint_asks_a_query(hostile, backends, status):
    """Mimir under /prometheus answers /-/ready with 404, older VictoriaMetrics with 400."""
    hostile.raw("/prometheus/-/ready", "unsupported path", status, "text/plain")
    hostile.json("/prometheus/api/v1/query", ONE)
    backend = backends(hostile.url + "/prometheus")
    assert backend.ready()
    assert [(r["path"], r["params"].get("query")) for r in hostile.received] == [
        ("/prometheus/-/ready", None), ("/prometheus/api/v1/query", "vector(1)")]
    hostile.raw("/prometheus/api/v1/query", "<html>", 200, "text/html")
    assert not backend.ready()
    hostile.json("/prometheus/api/v1/query", vector(({}, "0")))
    assert not backend.ready()


def test_ready_when_unreachable_or_slow(hostile, backends):
    assert not backends(f"http://127.0.0.1:{free_port()}").ready()
    hostile.routes["/-/ready"] = lambda h: hostile.release.wait(30)
    started = time.monotonic()
    assert not backends(hostile.url, timeout=0.3, retries=0).ready()
    assert time.monotonic() - started < 1.5


def test_query_count(hostile, backends):
    hostile.json("/api/v1/query", ONE)
    hostile.json("/api/v1/query_range", {"status": "success", "data": {"resultType": "matrix", "result": []}})
    backend = backends(hostile.url)
    backend.query("a")
    backend.query_range("b", 0, 60, 15)
    hostile.raw("/api/v1/query", "x", 500, "text/plain")
    with pytest.raises(BackendError):
        backend.query("c")
    assert backend.queries == 3
    assert backend.reset_queries() == 3
    assert backend.queries == 0
    backend.query_range("d", 0, 60, 15)
    assert backend.queries == 1


def test_concurrent_queries(hostile, backends):
    """Each thread gets its own reply, and the count adds up."""

    def echo(handler):
        expr = parse_qs(urlsplit(handler.path).query)["query"][0]
        time.sleep(0.01)
        reply(handler, 200, json.dumps(vector(({"q": expr}, "1"))), "application/json")

    hostile.routes["/api/v1/query"] = echo
    backend = backends(hostile.url)
    results: dict[str, list[Sample]] = {}

    def run(i: int) -> None:
        for j in range(10):
            results[f"q{i}-{j}"] = backend.query(f"q{i}-{j}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 80 and all(samples == [Sample({"q": q}, 1.0)] for q, samples in results.items())
    assert backend.queries == 80


# --- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> dict[str, str]:
    """A CA and a server certificate for 127.0.0.1 signed by it (PEM files)."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    work = tmp_path_factory.mktemp("tls")

    def build(subject, issuer, public_key, signing_key, ca: bool, issuer_key=None):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key or public_key),
                                  critical=False))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
                critical=True)
        else:
            builder = (builder
                       .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                      critical=False)
                       .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
        return builder.sign(signing_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mcp-slo test CA")])
    ca = build(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), ca_name, key.public_key(),
                 ca_key, ca=False, issuer_key=ca_key.public_key())
    paths = {"ca": str(work / "ca.pem"), "cert": str(work / "server.pem"), "key": str(work / "server.key")}
    (work / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (work / "server.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (work / "server.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                        serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    return paths


@pytest.fixture
def tls_server(certificates) -> Iterator[Hostile]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates["cert"], certificates["key"])
    server = Hostile(tls=context)
    server.json("/api/v1/query", ONE)
    yield server
    server.close()


def test_tls_default_verification_fails(tls_server, backends):
    backend = backends(tls_server.url, retries=0)
    with pytest.raises(BackendError) as caught:
        backend.query("up")
    assert caught.value.kind == "unreachable"
    assert "TLS error: certificate verify failed" in one_line(caught.value)
    assert not backend.ready()


def test_tls_with_ca_file(tls_server, backends, certificates):
    assert backends(tls_server.url, ca_file=certificates["ca"]).query("up") == [Sample({}, 1.0)]


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_without_verification(tls_server, backends):
    assert backends(tls_server.url, verify=False).query("up") == [Sample({}, 1.0)]

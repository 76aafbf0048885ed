"""The engine's PromQL client: instant and range queries against Prometheus or any
server speaking its HTTP API (Thanos, Mimir, Cortex, VictoriaMetrics).

It wraps prometheus-api-client's `PrometheusConnect` and adds what the engine needs
from a backend that may be slow, down, misconfigured or hostile:

- Bounded time. Each attempt is bounded by `timeout` (connect and every read), there
  are at most `retries` retries, and the whole body must arrive within the call's
  budget, so a call returns or fails within about `timeout * (retries + 1)`, even
  when a server trickles its answer a byte at a time. The server is asked to give up
  at the same timeout (the API's `timeout` parameter).
- Bounded memory. A reply larger than `max_response_bytes` (64 MiB by default) is
  not read further: the call fails and what was read is let go, so a broken or
  hostile server cannot make the engine hold hundreds of megabytes.
- One exception, `BackendError`, with a `kind` the engine can count
  ("timeout", "unreachable", "http", "bad_response", "query") and a one-line message
  naming what failed, the query and the URL. Nothing else escapes from a query: not
  the library's KeyError on a reply without "data", not a JSON error on an HTML page.
- No secret in messages, reprs or logs: header values, passwords and tokens are
  masked, credentials in the URL are moved to basic auth and never shown, and any
  secret a server echoes back in its body is blanked out of the message.

prometheus-api-client keeps only `data.result` of a reply (it drops `status`,
`resultType`, `error` and `warnings`), answers any status but 200 with a bare
exception carrying the raw body, lets KeyError or a JSON error escape on a body it
does not expect, rounds range query times to whole seconds and retries 3 times with
backoff by default. So the client gives it its own session, whose response hook reads the body
(within the deadline) and keeps the raw response; the reply is then validated here,
whatever the library made of it.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
import urllib3.exceptions
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from requests.auth import AuthBase
from urllib3.util.retry import Retry

from slo import promql
from slo.query import Sample, Series

_LOG = logging.getLogger(__name__)

KINDS = ("timeout", "unreachable", "http", "bad_response", "query")
MAX_RETRIES = 5
# A reply larger than this is refused rather than held in memory (BackendOptions.max_response_bytes);
# parsed, a reply takes about ten times its size.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# Statuses retried (within `retries`): a proxy or load balancer in front of the server
# failing for a moment. Not 503, which Prometheus sends for a query that timed out.
RETRY_STATUSES = (502, 504)
BACKOFF_FACTOR = 0.1  # urllib3 waits 0, 0.2, 0.4, ... s before the 1st, 2nd, 3rd retry
BACKOFF_MAX = 1.0
# /-/ready answers meaning "no such endpoint here" (Mimir or a VictoriaMetrics cluster
# under a path prefix: 404; older VictoriaMetrics: 400), so readiness is asked by query.
_NO_READY_ENDPOINT = (400, 404, 405)
_QUERY_SHOWN = 160  # characters of a query shown in an error message
_BODY_SHOWN = 160  # characters of a reply body shown in an error message
_MASK = "***"
_NAME_RESOLUTION = tuple(filter(None, [getattr(urllib3.exceptions, "NameResolutionError", None)]))  # urllib3 2


class BackendError(Exception):
    """A query or readiness check that failed; `str()` is one line naming what failed,
    the query and the base URL (never a credential).

    kind: "timeout" (no answer in time, or the server's own query timeout),
    "unreachable" (connection refused, DNS, TLS, connection reset),
    "http" (a status other than 200 without a Prometheus error in the body),
    "bad_response" (not JSON, not the Prometheus API's shape, values that are not
    numbers), "query" (Prometheus refused or failed the query: `error_type` and its
    message, or a result of the wrong type for the call).
    """

    def __init__(self, kind: str, message: str, *, query: str | None = None, url: str = "",
                 status: int | None = None, error_type: str | None = None):
        if kind not in KINDS:
            raise ValueError(f"unknown BackendError kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.query = query
        self.url = url
        self.status = status
        self.error_type = error_type


@dataclass(frozen=True, repr=False)
class BackendOptions:
    """How to reach the server. Credentials in `url` (https://user:pass@host) are moved
    to `basic_auth`, so `url` never holds them; `repr()` masks every header value,
    password and token."""

    url: str
    timeout: float = 10.0  # seconds per attempt: connect, and each read
    retries: int = 1  # retries after a connection error, a timeout, a 502 or 504
    headers: Mapping[str, str] = field(default_factory=dict)  # e.g. X-Scope-OrgID for Mimir/Cortex
    basic_auth: tuple[str, str] | None = None
    bearer_token_env: str | None = None  # environment variable holding a token, read at each request
    verify: bool = True  # TLS certificate verification
    ca_file: str | None = None  # CA bundle to verify the server with
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES  # a larger reply fails the call

    def __post_init__(self) -> None:
        parts = urlsplit(str(self.url).strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be http(s)://host[:port][/path], got {_display_url(str(self.url))!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"url must not have a query string or fragment: {_display_url(str(self.url))!r}")
        basic_auth = self.basic_auth
        if parts.username is not None or parts.password is not None:
            if basic_auth is not None:
                raise ValueError("credentials given both in the url and in basic_auth")
            basic_auth = (unquote(parts.username or ""), unquote(parts.password or ""))
        object.__setattr__(self, "url", _display_url(urlunsplit(parts)).rstrip("/"))
        if basic_auth is not None:
            if (not isinstance(basic_auth, (tuple, list)) or len(basic_auth) != 2
                    or not all(isinstance(part, str) for part in basic_auth)):
                raise ValueError("basic_auth must be a (user, password) pair of strings")
            basic_auth = (basic_auth[0], basic_auth[1])
        object.__setattr__(self, "basic_auth", basic_auth)
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)) \
                or not math.isfinite(self.timeout) or self.timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {self.timeout!r}")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) \
                or not 0 <= self.retries <= MAX_RETRIES:
            raise ValueError(f"retries must be an integer from 0 to {MAX_RETRIES}, got {self.retries!r}")
        headers = dict(self.headers or {})
        for name, value in headers.items():
            if not isinstance(name, str) or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
                raise ValueError(f"invalid header name {name!r}")
            if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
                raise ValueError(f"the value of header {name} must be a string on one line")
        object.__setattr__(self, "headers", MappingProxyType(headers))
        if self.bearer_token_env is not None:
            if not isinstance(self.bearer_token_env, str) or not self.bearer_token_env:
                raise ValueError("bearer_token_env must be the name of an environment variable")
            if basic_auth is not None:
                raise ValueError("use either basic auth or a bearer token, not both")
        if (basic_auth is not None or self.bearer_token_env) and \
                any(name.lower() == "authorization" for name in headers):
            raise ValueError("an Authorization header conflicts with basic_auth / bearer_token_env")
        if self.ca_file is not None and not self.verify:
            raise ValueError("ca_file is set but verify is False")
        if isinstance(self.max_response_bytes, bool) or not isinstance(self.max_response_bytes, int) \
                or self.max_response_bytes <= 0:
            raise ValueError(f"max_response_bytes must be a positive integer, got {self.max_response_bytes!r}")

    def __repr__(self) -> str:
        headers = {name: _MASK for name in self.headers}
        basic = None if self.basic_auth is None else (self.basic_auth[0], _MASK)
        return (f"BackendOptions(url={self.url!r}, timeout={self.timeout!r}, retries={self.retries!r}, "
                f"headers={headers!r}, basic_auth={basic!r}, bearer_token_env={self.bearer_token_env!r}, "
                f"verify={self.verify!r}, ca_file={self.ca_file!r}, max_response_bytes={self.max_response_bytes!r})")

    __str__ = __repr__


class _BearerFromEnv(AuthBase):
    """Authorization: Bearer <token>, the token read from the environment at each request
    (so a rotated token is used at once). No header when the variable is unset or empty."""

    def __init__(self, variable: str):
        self.variable = variable

    def __call__(self, request):
        token = os.environ.get(self.variable, "").strip()
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        return request

    def __repr__(self) -> str:
        return f"_BearerFromEnv({self.variable!r})"


class _Abort(Exception):
    """Raised by the response hook: the body could not be read (kind, detail)."""

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class _Malformed(Exception):
    """A reply that is JSON but not what the API documents (detail, kind)."""

    def __init__(self, detail: str, kind: str = "bad_response"):
        super().__init__(detail)
        self.kind = kind


class _Watchdog:
    """Shuts a response's socket down at `deadline`, which ends a read blocked on it."""

    def __init__(self, raw, deadline: float):
        self.fired = False
        self._sock = _socket_of(raw)
        self._timer = None
        if self._sock is not None:
            self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _socket_of(raw):
    """The socket under a urllib3 response, or None (then reads are bounded per chunk only)."""
    connection = getattr(raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        sock = getattr(getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


class Backend:
    """Queries one Prometheus-compatible server. Thread-safe; `close()` when done."""

    def __init__(self, options: BackendOptions):
        if options.ca_file is not None and not os.path.isfile(options.ca_file):
            raise ValueError(f"ca_file not found: {options.ca_file}")
        self.options = options
        self.url = options.url
        self._timeout = float(options.timeout)
        attempts = options.retries + 1
        backoff = sum(min(BACKOFF_MAX, BACKOFF_FACTOR * 2 ** (n - 1)) for n in range(2, attempts))
        # The deadline of a whole call, body included (see _read_body).
        self._budget = self._timeout * attempts + backoff
        self._local = threading.local()
        self._lock = threading.Lock()
        self._queries = 0

        session = requests.Session()
        session.verify = options.ca_file if options.ca_file else options.verify
        session.headers.update({"Accept": "application/json", "User-Agent": "mcp-slo"})
        session.headers.update(options.headers)
        if options.basic_auth is not None:
            session.auth = options.basic_auth
        elif options.bearer_token_env:
            session.auth = _BearerFromEnv(options.bearer_token_env)
        session.hooks["response"].append(self._read_body)
        self._session = session
        # The library mounts an adapter with this Retry on the session for URLs under
        # self.url, so ready()'s GET /-/ready on the same session gets it too.
        self._prom = PrometheusConnect(url=self.url, session=session, retry=_retry(options.retries),
                                       timeout=self._timeout)
        # Asks the server to give up when the client does (the API's `timeout` parameter).
        self._server_timeout = f"{max(1, round(self._timeout * 1000))}ms"
        if not options.verify:
            _LOG.warning("TLS certificate verification is disabled for %s", self.url)

    # --- public API --------------------------------------------------------------------

    @property
    def queries(self) -> int:
        """Queries sent so far (instant and range, failed ones included)."""
        return self._queries

    def reset_queries(self) -> int:
        """Set the query count back to 0; returns what it was (the count since the last reset)."""
        with self._lock:
            count, self._queries = self._queries, 0
        return count

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """An instant query at `at` (Unix seconds; default: the server's now). A vector
        gives one Sample per series, a scalar one Sample with empty labels."""
        params = {"timeout": self._server_timeout}
        if at is not None:
            params["time"] = _timestamp_param(at, "at")
        self._count()
        data = self._api("instant query", expr, lambda: self._prom.custom_query(expr, params=params))
        try:
            return _instant_result(data)
        except _Malformed as exc:
            raise self._error(exc.kind, "instant query", expr, exc.args[0]) from None

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        """A range query from `start` to `end` (Unix seconds) every `step` seconds:
        [(labels, [(timestamp, value), ...]), ...]."""
        start_param = _timestamp_param(start, "start")
        end_param = _timestamp_param(end, "end")
        if end < start:
            raise ValueError(f"end ({end}) is before start ({start})")
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not math.isfinite(step) or step <= 0:
            raise ValueError(f"step must be a positive number of seconds, got {step!r}")
        # The library takes datetimes and rounds them to whole seconds: the exact times
        # go in params, which it lets override its own.
        params = {"start": start_param, "end": end_param, "timeout": self._server_timeout}
        self._count()
        data = self._api("range query", expr, lambda: self._prom.custom_query_range(
            expr, start_time=datetime.fromtimestamp(start, timezone.utc),
            end_time=datetime.fromtimestamp(end, timezone.utc), step=repr(float(step)), params=params))
        try:
            return _matrix_result(data)
        except _Malformed as exc:
            raise self._error(exc.kind, "range query", expr, exc.args[0]) from None

    def ready(self) -> bool:
        """Whether the server answers queries: GET /-/ready, or where the server has no
        such endpoint (Mimir, a VictoriaMetrics cluster), the query `vector(1)` (counted
        in `queries`). Never raises; the reason it is not ready is logged."""
        try:
            response = self._exchange("readiness check", None, lambda: self._session.get(
                f"{self.url}/-/ready", timeout=self._timeout))
        except BackendError as exc:
            _LOG.info("not ready: %s", exc)
            return False
        if response.status_code == 200:
            return True
        if response.status_code not in _NO_READY_ENDPOINT:
            _LOG.info("not ready: %s/-/ready answered HTTP %s", self.url, response.status_code)
            return False
        try:
            samples = self.query(promql.READY)
        except BackendError as exc:
            _LOG.info("not ready: %s", exc)
            return False
        if len(samples) == 1 and samples[0].value == 1:
            return True
        _LOG.info("not ready: %s answered %s with %r", self.url, promql.READY, samples)
        return False

    def close(self) -> None:
        self._prom.close()

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Backend({self.url!r})"

    # --- one exchange ------------------------------------------------------------------

    def _count(self) -> None:
        with self._lock:
            self._queries += 1

    def _api(self, op: str, expr: str, send: Callable[[], Any]) -> dict:
        """Run `send` (a library call) and return the reply's validated `data` object."""
        started = time.monotonic()
        response = self._exchange(op, expr, send)
        data = self._envelope(response, op, expr)
        _LOG.debug("%s took %.3fs: %s", op, time.monotonic() - started, _shorten(expr, _QUERY_SHOWN))
        return data

    def _exchange(self, op: str, expr: str | None, send: Callable[[], Any]) -> requests.Response:
        """Run `send` within the call's deadline; the last response received, whatever its
        status; transport failures as BackendError."""
        state = self._local
        state.response = None
        state.deadline = time.monotonic() + self._budget
        try:
            send()
        except _Abort as exc:
            raise self._error(exc.kind, op, expr, exc.detail) from None
        except PrometheusApiClientException:
            pass  # a status other than 200: the response is judged below
        except (requests.exceptions.InvalidJSONError, ValueError, KeyError, TypeError, IndexError, RecursionError):
            pass  # the library choked on the body: the response is judged below
        except requests.RequestException as exc:
            kind, detail = self._describe(exc)
            raise self._error(kind, op, expr, detail) from None
        except OSError as exc:  # e.g. requests: "Could not find a suitable TLS CA certificate bundle"
            raise self._error("unreachable", op, expr, _one_line(str(exc))) from None
        finally:
            state.deadline = None
        response = state.response
        state.response = None
        if response is None:
            raise self._error("bad_response", op, expr, "no response")
        return response

    def _read_body(self, response: requests.Response, *args, **kwargs) -> requests.Response:
        """requests' response hook, called before the body is read: read it within the
        call's deadline (a socket timeout bounds each read, not a trickled body) and
        keep the response for `_exchange`."""
        state = self._local
        deadline = getattr(state, "deadline", None)
        if deadline is None:
            return response
        raw = response.raw
        read1 = getattr(raw, "read1", None)  # urllib3 >= 2.3: at most one socket read
        # Older urllib3 reads whole chunks, so a trickled body would hold a read past the
        # deadline: a watchdog shuts the socket down at the deadline instead.
        watchdog = None if read1 else _Watchdog(raw, deadline)
        limit = self.options.max_response_bytes
        # One growing buffer rather than a list of chunks: a large buffer is its own
        # allocation, handed back to the system when freed, where thousands of chunks
        # would leave the reading thread's heap fragmented and the process large.
        body = bytearray()
        try:
            declared = _content_length(response)
            if declared is not None and declared > limit:  # refused before reading any of it
                raise _Abort("bad_response", f"reply larger than the {_size(limit)} limit (Content-Length {declared})")
            reads = iter(lambda: read1(65536, decode_content=True) or b"", b"") if read1 else \
                raw.stream(65536, decode_content=True)
            for chunk in reads:
                if len(body) + len(chunk) > limit:
                    raise _Abort("bad_response", f"reply larger than the {_size(limit)} limit")
                body += chunk
                if time.monotonic() > deadline:
                    raise _Abort("timeout", f"reply body not received within {self._budget:g}s")
            missing = getattr(raw, "length_remaining", None)  # urllib3 < 2 does not check Content-Length
            if watchdog is not None and watchdog.fired:
                raise _Abort("timeout", f"reply body not received within {self._budget:g}s")
            if isinstance(missing, int) and missing > 0:
                raise _Abort("bad_response", f"incomplete reply: {missing} bytes short of its Content-Length")
        except _Abort:
            # let go of what was read now: the exception's traceback keeps this frame alive
            # for as long as anyone holds the error
            del body
            response.close()
            raise
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            del body
            response.close()
            if watchdog is not None and watchdog.fired:
                raise _Abort("timeout", f"reply body not received within {self._budget:g}s") from None
            raise _Abort(*self._describe(exc)) from None
        finally:
            if watchdog is not None:
                watchdog.cancel()
        response._content = bytes(body)  # what requests' .content and .json() read
        del body
        response._content_consumed = True
        release = getattr(raw, "release_conn", None)
        if release is not None:
            release()
        state.response = response
        return response

    def _envelope(self, response: requests.Response, op: str, expr: str) -> dict:
        """The `data` object of an API reply; anything else as BackendError."""
        status = response.status_code
        body = response.content or b""
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            doc = None
        if isinstance(doc, dict) and doc.get("status") == "error":
            error_type = _one_line(str(doc.get("errorType") or "unknown"))
            message = _one_line(str(doc.get("error") or "(no message)"))
            kind = "timeout" if error_type == "timeout" else "query"
            raise self._error(kind, op, expr, f"Prometheus error {error_type}: {message}", status=status,
                              error_type=error_type)
        if status != 200:
            reason = f" {response.reason}" if response.reason else ""
            hint = ""
            variable = self.options.bearer_token_env
            if status in (401, 403) and variable and not os.environ.get(variable, "").strip():
                hint = f" (environment variable {variable}, the bearer token, is not set)"
            raise self._error("http", op, expr, f"HTTP {status}{reason}{hint}: {self._snippet(body)}",
                              status=status)
        if doc is None:
            content_type = response.headers.get("Content-Type") or "none"
            raise self._error("bad_response", op, expr,
                              f"reply is not JSON (Content-Type {content_type}): {self._snippet(body)}")
        if not isinstance(doc, dict) or doc.get("status") != "success":
            raise self._error("bad_response", op, expr,
                              f'reply is not a Prometheus API reply (no "status": "success"): {self._snippet(body)}')
        data = doc.get("data")
        if not isinstance(data, dict):
            raise self._error("bad_response", op, expr, f'reply has no "data" object: {self._snippet(body)}')
        warnings = doc.get("warnings")
        if warnings:
            _LOG.warning("%s of %s: Prometheus warns: %s (query: %s)", op, self.url,
                         self._redact(_one_line("; ".join(map(str, warnings)))), _shorten(expr, _QUERY_SHOWN))
        return data

    # --- messages ----------------------------------------------------------------------

    def _describe(self, exc: BaseException) -> tuple[str, str]:
        """(kind, detail) for a transport failure, from requests' or urllib3's exception
        and what it wraps (with retries, a read timeout arrives as a ConnectionError)."""
        chain = _chain(exc)

        def has(*types):
            return next((e for e in chain if isinstance(e, types)), None)

        attempts = self.options.retries + 1
        tries = f" ({attempts} attempts)" if attempts > 1 else ""
        if has(ConnectionRefusedError):
            return "unreachable", f"connection refused{tries}"
        if has(socket.gaierror, *_NAME_RESOLUTION):
            return "unreachable", "cannot resolve the host name"
        if has(urllib3.exceptions.SSLError, requests.exceptions.SSLError, ssl.SSLError):
            reason = has(ssl.SSLError)
            if isinstance(reason, ssl.SSLCertVerificationError):
                text = f"certificate verify failed: {reason.verify_message}"
            else:
                text = getattr(reason, "reason", None) or (str(reason) if reason else "handshake failed")
            return "unreachable", f"TLS error: {_one_line(str(text))}"
        if has(urllib3.exceptions.ReadTimeoutError, requests.exceptions.ReadTimeout):
            return "timeout", f"no answer within {self._timeout:g}s{tries}"
        new_connection = has(urllib3.exceptions.NewConnectionError)
        if new_connection is None and has(urllib3.exceptions.ConnectTimeoutError, requests.exceptions.ConnectTimeout):
            return "timeout", f"connection not established within {self._timeout:g}s{tries}"
        if has(urllib3.exceptions.ProxyError, requests.exceptions.ProxyError):
            return "unreachable", "proxy error"
        if has(ConnectionResetError, ConnectionAbortedError, BrokenPipeError) or \
                any(type(e).__name__ == "RemoteDisconnected" for e in chain):
            return "unreachable", "connection closed by the server"
        if has(urllib3.exceptions.DecodeError, requests.exceptions.ContentDecodingError):
            return "bad_response", "reply body cannot be decoded"
        if has(urllib3.exceptions.ProtocolError, requests.exceptions.ChunkedEncodingError):
            return "bad_response", "reply body incomplete or malformed"
        if has(requests.exceptions.TooManyRedirects):
            return "bad_response", "too many redirects"
        os_error = next((e for e in chain if isinstance(e, OSError) and e.strerror), None)
        if os_error is not None:
            return "unreachable", f"cannot connect: {os_error.strerror}"
        return "unreachable", f"cannot connect ({type(exc).__name__})"

    def _error(self, kind: str, op: str, expr: str | None, detail: str, *, status: int | None = None,
               error_type: str | None = None) -> BackendError:
        query = f"; query: {_shorten(expr, _QUERY_SHOWN)}" if expr is not None else ""
        message = self._redact(f"{op} to {self.url} failed: {_one_line(detail)}{query}")
        return BackendError(kind, message, query=expr, url=self.url, status=status, error_type=error_type)

    def _snippet(self, body: bytes) -> str:
        if not body:
            return "(empty body)"
        return _shorten(body[:4 * _BODY_SHOWN].decode("utf-8", "replace"), _BODY_SHOWN)

    def _secrets(self) -> list[str]:
        options = self.options
        secrets = [value for value in options.headers.values()]
        if options.basic_auth is not None:
            user, password = options.basic_auth
            secrets += [password, base64.b64encode(f"{user}:{password}".encode()).decode()]
        if options.bearer_token_env:
            secrets.append(os.environ.get(options.bearer_token_env, "").strip())
        return sorted((s for s in secrets if s), key=len, reverse=True)

    def _redact(self, text: str) -> str:
        """`text` with every secret this backend sends (header values, the password and
        its base64 form, the token) masked: a server may echo them back."""
        for secret in self._secrets():
            text = text.replace(secret, _MASK)
        return text


# --- result parsing ----------------------------------------------------------------------


def _instant_result(data: dict) -> list[Sample]:
    result_type, result = data.get("resultType"), data.get("result")
    if result_type == "scalar":
        return [Sample({}, _point(result)[1])]
    if result_type == "vector":
        if not isinstance(result, list):
            raise _Malformed(f'"result" of a vector is a {type(result).__name__}, not a list')
        samples = []
        for element in result:
            if not isinstance(element, dict):
                raise _Malformed(f"vector element is a {type(element).__name__}, not an object")
            if "value" not in element and "histogram" in element:
                raise _Malformed("the result has native histogram samples; only float samples are supported",
                                 "query")
            samples.append(Sample(_labels(element.get("metric")), _point(element.get("value"))[1]))
        return samples
    if result_type in ("matrix", "string"):
        raise _Malformed(f"an instant query must give a vector or a scalar, not a {result_type}", "query")
    raise _Malformed(f"unexpected resultType {_shorten(repr(result_type), 40)}")


def _matrix_result(data: dict) -> list[Series]:
    result_type, result = data.get("resultType"), data.get("result")
    if result_type != "matrix":
        raise _Malformed(f"a range query must give a matrix, got resultType {_shorten(repr(result_type), 40)}")
    if not isinstance(result, list):
        raise _Malformed(f'"result" of a matrix is a {type(result).__name__}, not a list')
    series = []
    for element in result:
        if not isinstance(element, dict):
            raise _Malformed(f"matrix element is a {type(element).__name__}, not an object")
        if element.get("histograms"):
            raise _Malformed("the result has native histogram samples; only float samples are supported", "query")
        values = element.get("values", [])
        if not isinstance(values, list):
            raise _Malformed(f'"values" is a {type(values).__name__}, not a list')
        series.append((_labels(element.get("metric")), [_point(v) for v in values]))
    return series


def _labels(metric: Any) -> dict[str, str]:
    if metric is None:
        return {}
    if not isinstance(metric, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metric.items()):
        raise _Malformed(f"labels are not an object of strings: {_shorten(repr(metric), 80)}")
    return dict(metric)


def _point(point: Any) -> tuple[float, float]:
    """(timestamp, value) of a [<unix seconds>, "<value>"] pair."""
    if not isinstance(point, (list, tuple)) or len(point) != 2:
        raise _Malformed(f"a sample must be [timestamp, value], got {_shorten(repr(point), 80)}")
    timestamp = _number(point[0], "timestamp")
    if not math.isfinite(timestamp):
        raise _Malformed(f"timestamp is not finite: {_shorten(repr(point[0]), 40)}")
    return timestamp, _number(point[1], "value")


def _number(value: Any, what: str) -> float:
    """A float from Prometheus' JSON: a number, or a string such as "0.5", "NaN", "+Inf"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and "_" not in value:
        try:
            return float(value)
        except ValueError:
            pass
    raise _Malformed(f"{what} is not a number: {_shorten(repr(value), 40)}")


# --- helpers -----------------------------------------------------------------------------


def _retry(retries: int) -> Retry:
    """A bounded Retry: connection errors, read timeouts and 502/504, at most `retries`
    times, short backoff, never sleeping on a Retry-After header, and the last response
    returned (not an exception) when the statuses persist."""
    settings = dict(total=retries, connect=retries, read=retries, status=retries,
                    backoff_factor=BACKOFF_FACTOR, status_forcelist=RETRY_STATUSES,
                    allowed_methods=frozenset({"GET", "HEAD"}), raise_on_status=False,
                    respect_retry_after_header=False)
    try:
        return Retry(backoff_max=BACKOFF_MAX, **settings)
    except TypeError:  # urllib3 1.x: no backoff_max (its default cap is 120s)
        return Retry(**settings)


def _timestamp_param(value: float, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite Unix time in seconds, got {value!r}")
    return repr(float(value))


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and everything it wraps: causes, contexts, args, urllib3's `reason`."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < 20:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        wrapped = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        todo += [e for e in wrapped if isinstance(e, BaseException)]
    return seen


def _display_url(url: str) -> str:
    """`url` without credentials (user:password@)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(invalid url)"
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _content_length(response: requests.Response) -> int | None:
    """The Content-Length a reply declares, or None (none, or not a number)."""
    value = response.headers.get("Content-Length", "")
    return int(value) if value.strip().isdigit() else None


def _size(n: int) -> str:
    """A byte count as written in the options: 67108864 -> "64 MiB"."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} bytes"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _shorten(text: str, limit: int) -> str:
    text = _one_line(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."

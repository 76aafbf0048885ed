"""JSON-RPC accounting for the instrumenting proxy, shared by both transports.

The transports forward the raw bytes unchanged and hand the tracker a parsed
copy of every message. The tracker counts client-to-server requests, once,
with the same labels as the in-process middleware:

- a request opens an operation (`Recorder.begin`);
- the server's response closes it: `result` -> `classify.result_status`,
  `error` -> `classify.error_status(code)`;
- a client `notifications/cancelled` for a pending request closes it at once
  with `classify.cancel_status(reason)`; a later response is still forwarded
  but not counted again;
- a request unanswered by its deadline is closed as `timeout` by the
  transport (which also answers the client); the late response is dropped;
- requests pending when the connection ends are closed as `error`.

Requests the server sends to the client (sampling, elicitation, roots) and the
client's answers to them are never counted: they only pass through.

Deadlines: every request gets `request_timeout` seconds, restarted whenever
the server reports progress on it (the spec allows resetting the timeout on
progress), except the requests that stay open by design
(`LONG_LIVED_METHODS`), which never time out.

Request ids are unique per connection, so every request is keyed by
`(scope, id)`: the stdio proxy has one scope, the HTTP proxy uses the MCP
session (or the single POST when there is no session).

Audit: with an audit trail (`collector.audit.relayed.RelayAudit`), every request counted
also gets one audit record, opened and closed with it, under the same status.

Logging: never message content, ids included (they are the client's data);
timeouts are summed up by `RepeatedWarning` (one line per REPORT_INTERVAL at
most), and the transport calls `report()` so the sums get logged.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Container, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from collector import classify, names, semconv
from collector.metrics import Recorder, method_label
from collector.tracecontext import Trace, trace_of

if TYPE_CHECKING:
    from collector.audit.relayed import Connection, Note, RelayAudit

logger = logging.getLogger(__name__)

DEFAULT_REQUEST_TIMEOUT = 300.0

# Requests answered only when the client is done with them: a 2026-07-28
# subscription stream, and the wait for a task's result.
LONG_LIVED_METHODS = frozenset({"subscriptions/listen", "tasks/result"})

# JSON-RPC error codes the proxy itself answers with (the MCP SDKs use the same).
REQUEST_TIMEOUT = classify.REQUEST_TIMEOUT  # -32001
CONNECTION_CLOSED = -32000

# How many timed-out request ids are remembered so their late responses can be
# dropped; beyond this the oldest are forgotten (a server that never answers
# must not grow the proxy's memory).
MAX_ABANDONED = 10_000

# A warning that can repeat per message is logged at most once per this many seconds.
REPORT_INTERVAL = 10.0

Key = tuple[Hashable, Hashable]


class RepeatedWarning:
    """A warning about an event that may happen very often (a flood of timeouts):
    the first in a quiet period is logged at once, as "EVENT: N"; later ones are
    counted and logged as "EVENT: N in the last Ss" by `report()` once
    `interval` seconds have passed since the last line."""

    def __init__(self, event: str, *, interval: float = REPORT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic):
        self.event = event
        self.interval = interval
        self.clock = clock
        self._unreported = 0
        self._last_logged = -math.inf

    def add(self, count: int = 1) -> None:
        if count <= 0:
            return
        quiet = self._unreported == 0 and self.clock() - self._last_logged >= self.interval
        self._unreported += count
        if quiet:
            self._log(": %d", self._unreported)

    def report(self, *, final: bool = False) -> None:
        """Log what was counted since the last line, if the interval is over
        (`final`: at once, the proxy is exiting)."""
        elapsed = self.clock() - self._last_logged
        if self._unreported and (final or elapsed >= self.interval):
            self._log(": %d in the last %.0fs", self._unreported, elapsed)

    def _log(self, counts: str, *args: object) -> None:
        # The event is part of the format string, so a filter that tells lines
        # apart by it (collector.logfilter) sees one kind of line per event.
        logger.warning(self.event.replace("%", "%%") + counts, *args)
        self._unreported = 0
        self._last_logged = self.clock()


def is_request_id(value: object) -> bool:
    """JSON-RPC ids the proxy can track: strings and numbers (MCP forbids null)."""
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def messages(parsed: object) -> Iterator[dict[str, Any]]:
    """The JSON-RPC messages in a parsed JSON value: one object, or a batch array."""
    if isinstance(parsed, dict):
        yield parsed
    elif isinstance(parsed, list):
        for item in parsed:
            if isinstance(item, dict):
                yield item


def is_request(msg: dict[str, Any]) -> bool:
    return isinstance(msg.get("method"), str) and is_request_id(msg.get("id"))


def is_response(msg: dict[str, Any]) -> bool:
    return "method" not in msg and ("result" in msg or "error" in msg) and "id" in msg


def error_response(request_id: object, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _progress_token(params: object) -> object:
    meta = params.get("_meta") if isinstance(params, dict) else None
    token = meta.get("progressToken") if isinstance(meta, dict) else None
    return token if is_request_id(token) else None


# 2026-07-28 requests carry their protocol version in params._meta
PROTOCOL_VERSION_META_KEY = "io.modelcontextprotocol/protocolVersion"


def _meta_protocol(params: object) -> object:
    meta = params.get("_meta") if isinstance(params, dict) else None
    return meta.get(PROTOCOL_VERSION_META_KEY) if isinstance(meta, dict) else None


def _integer(code: object) -> int | None:
    """A JSON-RPC error code for error.type: an integer, else unknown."""
    return code if isinstance(code, int) and not isinstance(code, bool) else None


@dataclass
class _Pending:
    method: str  # already a label
    tool: object  # tools/call params.name as sent, labelled when the outcome is known
    started: float  # Recorder.begin()
    deadline: float  # on the tracker's clock; inf for long-lived requests
    progress_token: object = None
    trace: Trace | None = None  # params._meta.traceparent, for exemplars
    protocol: str | None = None  # mcp.protocol.version, when the semantic conventions are recorded
    audit: Note | None = None  # the audit trail's note of the request, when there is a trail


class Tracker:
    """Counts the client's requests of one proxy in a `Recorder`.

    Not thread-safe: call it from one event loop.
    """

    def __init__(
        self,
        recorder: Recorder,
        *,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        audit: RelayAudit | None = None,
    ):
        if not request_timeout > 0:
            raise ValueError("the request timeout must be positive")
        self.recorder = recorder
        self.request_timeout = request_timeout
        self.clock = clock
        self.audit = audit
        self._pending: dict[Key, _Pending] = {}
        # The pending requests that have a deadline, in deadline order: every
        # deadline is "now + request_timeout" when set, so appending keeps the
        # order and the first entry is always the next to expire.
        self._deadlines: dict[Key, None] = {}
        # (scope, progress token) -> the pending request it reports on
        self._progress: dict[Key, Key] = {}
        # Requests the proxy answered itself on timeout: their late responses are dropped.
        self._abandoned: OrderedDict[Key, None] = OrderedDict()
        # The protocol version the last initialize negotiated (stdio: the connection's;
        # HTTP requests carry theirs in the MCP-Protocol-Version header).
        self._semconv = recorder.metrics != semconv.MCP_SLO
        self.negotiated: str | None = None
        self.timeouts = RepeatedWarning(
            f"requests timed out (no answer within {request_timeout:g}s; the proxy answered them with error "
            f"{REQUEST_TIMEOUT})", clock=clock,
        )

    # -- messages -------------------------------------------------------------

    def from_client(self, parsed: object, scope: Hashable = None, protocol: str | None = None, *,
                    size: int | None = None, connection: Connection | None = None) -> list[Key]:
        """Account a parsed message (or batch) the client sent; returns the keys
        of the requests it opened. `protocol`: the request's MCP-Protocol-Version header;
        for the audit trail, `size`: the message's bytes, `connection`: where it came from."""
        opened = []
        for msg in messages(parsed):
            if is_request(msg):
                opened.append(self._open(msg, scope, protocol))
                if self.audit is not None:
                    self._pending[opened[-1]].audit = self.audit.opened(
                        msg, size if msg is parsed else None, connection, protocol)
            elif msg.get("method") == "notifications/cancelled" and "id" not in msg:
                params = msg.get("params")
                if isinstance(params, dict) and is_request_id(params.get("requestId")):
                    reason = params.get("reason")
                    self._close([(scope, params["requestId"])], classify.cancel_status(reason),
                                why=reason if isinstance(reason, str) and reason else "cancelled by the client")
            # Anything else is a notification or the client's answer to a
            # server-to-client request: forwarded, never counted.
        return opened

    def from_server(self, parsed: object, scope: Hashable = None, *, size: int | None = None) -> bool:
        """Account a parsed message (or batch) the server sent; False when it must
        not be forwarded because it only answers requests the proxy already
        answered (timed out). `size`: its bytes, for the audit trail."""
        forward = False
        seen = False
        for msg in messages(parsed):
            seen = True
            if not is_response(msg) or not is_request_id(msg.get("id")):
                # server-to-client requests and notifications pass through
                if msg.get("method") == "notifications/progress":
                    self._on_progress(msg.get("params"), scope)
                forward = True
                continue
            key = (scope, msg["id"])
            pending = self._take(key)
            if pending is None:
                if key in self._abandoned:
                    del self._abandoned[key]
                    logger.debug("dropping a late response: the proxy already answered its request as timed out")
                    continue
                forward = True  # unknown id, or a request already counted as cancelled
                continue
            forward = True
            self._end(pending, *self._status_of(pending, msg), response=msg, size=size if msg is parsed else None)
        return forward or not seen

    # -- outcomes decided by the transport ---------------------------------

    def next_deadline(self) -> float | None:
        """When the next pending request times out, on `clock`; None if none can."""
        for key in self._deadlines:
            return self._pending[key].deadline
        return None

    def deadline_of(self, keys: Iterable[Key]) -> float:
        """The earliest deadline of these requests still pending (inf if none)."""
        return min((p.deadline for k in keys if (p := self._pending.get(k)) is not None), default=math.inf)

    def expire(self, now: float | None = None, skip: Container[Key] = ()) -> list[Key]:
        """Close every request whose deadline passed (except those in `skip`) as
        `timeout`; returns their keys so the transport can answer the client."""
        now = self.clock() if now is None else now
        expired = []
        for key in self._deadlines:
            if self._pending[key].deadline > now:
                break
            if key not in skip:
                expired.append(key)
        return self.time_out(expired)

    def time_out(self, keys: Iterable[Key]) -> list[Key]:
        """Close these requests, if still pending, as `timeout`; their late
        responses will be dropped. Returns the keys actually closed."""
        closed = self._close(keys, names.TIMEOUT, why="Request timed out (answered by the proxy)",
                             code=REQUEST_TIMEOUT)
        for key in closed:
            self._abandoned[key] = None
        while len(self._abandoned) > MAX_ABANDONED:
            self._abandoned.popitem(last=False)
        self.timeouts.add(len(closed))
        return closed

    def cancel(self, keys: Iterable[Key], reason: object = None) -> list[Key]:
        """Close these requests, if still pending, as cancelled by the client
        (e.g. it closed the HTTP response stream)."""
        return self._close(keys, classify.cancel_status(reason), why="cancelled: the client closed the connection")

    def fail(self, keys: Iterable[Key] | None = None, code: object = None, why: str | None = None) -> list[Key]:
        """Close these requests (default: all pending), if still pending, as failed:
        the connection ended before they were answered (`error`), or an error
        with this JSON-RPC `code` answered them without naming their id."""
        status = names.ERROR if code is None else classify.error_status(code)
        why = why or ("Connection closed before the response" if code is None
                      else "an error response without the request's id")
        return self._close(list(self._pending) if keys is None else keys, status, _integer(code),
                           why=why, code=CONNECTION_CLOSED if code is None else _integer(code))

    def is_pending(self, key: Key) -> bool:
        return key in self._pending

    def pending_count(self) -> int:
        return len(self._pending)

    def report(self, *, final: bool = False) -> None:
        """Log the sums of repeated warnings that are due; call it every second or
        so, and with `final` when the proxy stops."""
        self.timeouts.report(final=final)

    # -- internals ---------------------------------------------------------------

    def _open(self, msg: dict[str, Any], scope: Hashable, protocol: str | None = None) -> Key:
        key = (scope, msg["id"])
        method = method_label(msg["method"])
        params = msg.get("params")
        tool = params.get("name") if method == "tools/call" and isinstance(params, dict) else None
        self._abandoned.pop(key, None)
        earlier = self._take(key)
        if earlier is not None:
            # The client reused the id of a request still in flight: its answer can
            # no longer be told apart, so the client has given up on the first one.
            logger.warning("the client reused the id of a request still pending; counting the first as cancelled")
            self._end(earlier, names.CANCELLED, why="the client reused its id for another request")
        long_lived = msg["method"] in LONG_LIVED_METHODS
        deadline = math.inf if long_lived else self.clock() + self.request_timeout
        pending = _Pending(method, tool, self.recorder.begin(), deadline, _progress_token(params), trace_of(params))
        if self._semconv:
            pending.protocol = (semconv.protocol_version(protocol) or semconv.protocol_version(_meta_protocol(params))
                                or self.negotiated)
        self._pending[key] = pending
        if not long_lived:
            self._deadlines[key] = None
        if pending.progress_token is not None:
            self._progress[(scope, pending.progress_token)] = key
        return key

    def _on_progress(self, params: object, scope: Hashable) -> None:
        token = params.get("progressToken") if isinstance(params, dict) else None
        key = self._progress.get((scope, token)) if is_request_id(token) else None
        if key is None or key not in self._deadlines:
            return
        # The server is working on it: restart its clock (and keep the queue in order).
        del self._deadlines[key]
        self._deadlines[key] = None
        self._pending[key].deadline = self.clock() + self.request_timeout

    def _take(self, key: Key) -> _Pending | None:
        pending = self._pending.pop(key, None)
        if pending is not None:
            self._deadlines.pop(key, None)
            if pending.progress_token is not None:
                self._progress.pop((key[0], pending.progress_token), None)
        return pending

    def _status_of(self, pending: _Pending, msg: dict[str, Any]) -> tuple[str, object]:
        """The status of a response, and what error.type needs: the error code, or a tool error."""
        if "error" in msg:
            error = msg["error"]
            code = error.get("code") if isinstance(error, dict) else None
            return classify.error_status(code), _integer(code)
        result = msg.get("result")
        status = classify.result_status(pending.method, result)
        if status == names.SUCCESS:
            if pending.method == "tools/list":
                self.recorder.tools.learn_from_list_result(result)
            elif pending.method == "initialize" and self._semconv and isinstance(result, dict):
                self.negotiated = semconv.protocol_version(result.get("protocolVersion")) or self.negotiated
            return status, None
        return status, semconv.TOOL_ERROR

    def _close(self, keys: Iterable[Key], status: str, error: object = None, *, why: str,
               code: int | None = None) -> list[Key]:
        """Close these requests, unanswered by the server: `why`, and the JSON-RPC `code` the
        client was answered with (default: `error`, when it is a code), are for the audit trail."""
        code = code if code is not None or not isinstance(error, int) else error
        closed = []
        for key in keys:
            pending = self._take(key)
            if pending is not None:
                self._end(pending, status, error, why=why, code=code)
                closed.append(key)
        return closed

    def _end(self, pending: _Pending, status: str, error: object = None, *, response: dict[str, Any] | None = None,
             size: int | None = None, why: str | None = None, code: int | None = None) -> None:
        rec = self.recorder
        tool = rec.tool_label(pending.method, pending.tool, succeeded=status == names.SUCCESS)
        rec.end(pending.method, tool, status, pending.started, error, pending.trace, pending.protocol)
        if pending.audit is not None:
            self.audit.closed(pending.audit, status, time.perf_counter() - pending.started,  # type: ignore[union-attr]
                              pending.trace, response=response, size=size, code=code, reason=why)

"""The audit record of each request the proxy relays (`collector.proxy`), over stdio or
streamable HTTP, with the status the metrics counted it under.

The proxy's `Tracker` tells this module when a request opens (`opened`: the message as parsed,
its size on the wire, the connection it came on) and when it closes (`closed`: the response or
why there is none). On the event loop only the note is taken and queued; the record (parameters
by mode, redaction, the bearer token's identity, verified against the JWKS when configured) is
built on the writer's thread, so an audited request costs the relay a few attribute writes.

Who the client is: the `clientInfo` of its initialize (remembered per session), or of the
request's own `_meta` (2026-07-28 requests carry it). The session: the Mcp-Session-Id over HTTP
(learnt from initialize's response), one id per proxy run over stdio, none over HTTP without
sessions.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from collector.audit.config import AuditConfig, format_time
from collector.audit.fields import (
    bounded,
    client_info,
    error_field,
    json_size,
    new_id,
    tool_error_text,
)
from collector.audit.identity import JwtVerifier, expiry, from_bearer
from collector.audit.redact import filter_headers
from collector.audit.writer import AuditWriter
from collector.tracecontext import parse_traceparent

CLIENT_INFO_META_KEY = "io.modelcontextprotocol/clientInfo"  # 2026-07-28 requests carry their client's
PROTOCOL_META_KEY = "io.modelcontextprotocol/protocolVersion"
MAX_SESSIONS = 10_000  # sessions whose client is remembered; the oldest are forgotten
MAX_IDENTITIES = 1024  # bearer tokens whose identity is remembered (verifying one costs a signature check)
IDENTITY_TTL = 60.0  # seconds an identity is reused before the token is read again


@dataclass(slots=True)
class Connection:
    """What the transport knows of where a request came from. `session_id` may be learnt after
    the request opened (an initialize's response names the new session)."""

    session_id: str | None = None
    client_ip: str | None = None
    headers: Sequence[tuple[bytes, bytes]] = ()  # the HTTP request's, as received

    def header(self, name: bytes) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value.decode("latin-1")
        return None


@dataclass(slots=True)
class Note:
    """A request as it arrived (taken on the event loop, read on the writer's thread)."""

    wall: float
    message: Mapping[str, Any]
    size: int | None  # bytes on the wire; None inside a batch (then measured as compact JSON)
    connection: Connection
    client: dict[str, Any] | None
    protocol: str | None


class RelayAudit:
    """Submits a record per relayed request to `writer`, for `service` and `version`."""

    def __init__(self, writer: AuditWriter, config: AuditConfig, service: str, version: str,
                 verifier: JwtVerifier | None = None):
        self.writer, self.config, self.service, self.version = writer, config, service, version
        self.verifier = verifier
        self.stdio = Connection(session_id=uuid.uuid4().hex)  # a stdio proxy serves one client per run
        # session -> (client, protocol version) from its initialize (event loop only)
        self._sessions: OrderedDict[str, tuple[dict[str, Any] | None, str | None]] = OrderedDict()
        # Authorization header -> (identity, until when it may be reused) (writer's thread only)
        self._identities: OrderedDict[str, tuple[dict[str, Any] | None, float]] = OrderedDict()

    @classmethod
    def from_config(cls, config: AuditConfig, service: str, version: str, **writer_options: Any) -> RelayAudit:
        verifier = JwtVerifier(config.jwks, config.issuer, config.audience) if config.jwks else None
        return cls(AuditWriter.from_config(config, service=service, version=version, **writer_options), config,
                   service, version, verifier)

    def close(self) -> None:
        self.writer.close()

    # --- the event loop ---

    def opened(self, message: Mapping[str, Any], size: int | None, connection: Connection | None,
               protocol: str | None) -> Note:
        """A request arrived; `protocol`: its MCP-Protocol-Version header, if any."""
        connection = connection or self.stdio
        params = message.get("params")
        meta = params.get("_meta") if isinstance(params, Mapping) else None
        meta = meta if isinstance(meta, Mapping) else {}
        if message.get("method") == "initialize" and isinstance(params, Mapping):
            client, negotiated = client_info(params.get("clientInfo")), params.get("protocolVersion")
        elif CLIENT_INFO_META_KEY in meta:
            client, negotiated = client_info(meta.get(CLIENT_INFO_META_KEY)), None
        else:
            client, negotiated = self._sessions.get(connection.session_id or "", (None, None))
        protocol = protocol or meta.get(PROTOCOL_META_KEY) or negotiated
        return Note(time.time(), message, size, connection, client,
                    protocol if isinstance(protocol, str) else None)

    def closed(self, note: Note, status: str, duration: float, trace: tuple[str, str] | None, *,
               response: Mapping[str, Any] | None = None, size: int | None = None,
               code: int | None = None, reason: str | None = None) -> None:
        """The request ended: answered by `response` (`size` bytes on the wire), or not, with the
        JSON-RPC `code` the proxy answered and why."""
        session = note.connection.session_id
        if note.message.get("method") == "initialize" and status == "success" and session and response:
            result = response.get("result")
            version = result.get("protocolVersion") if isinstance(result, Mapping) else None
            note.protocol = version if isinstance(version, str) else note.protocol  # the one agreed on
            self._sessions[session] = (note.client, note.protocol)
            self._sessions.move_to_end(session)
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        outcome = {"status": status, "duration": duration, "trace": trace, "response": response,
                   "size": size, "code": code, "reason": reason, "session": session}
        self.writer.submit(partial(self.record, note, outcome))

    # --- the writer's thread ---

    def record(self, note: Note, outcome: Mapping[str, Any]) -> dict[str, Any]:
        message, connection = note.message, note.connection
        method = message.get("method")
        params = message.get("params") if isinstance(message.get("params"), Mapping) else {}
        tool = params.get("name") if method == "tools/call" else None
        arguments = params.get("arguments") if method in ("tools/call", "prompts/get") else None
        response = outcome["response"]
        trace = outcome["trace"] or parse_traceparent(connection.header(b"traceparent"))
        return {
            "time": format_time(note.wall),
            "request_id": new_id(),
            "jsonrpc_id": bounded(message.get("id")),
            "session_id": outcome["session"],
            "client": note.client,
            "protocol_version": bounded(note.protocol),
            "identity": self._identity(connection),
            "client_ip": connection.client_ip,
            "headers": self._headers(connection),
            "service": self.service,
            "version": self.version,
            "method": bounded(method),
            "tool": bounded(tool) if isinstance(tool, str) else None,
            "resource": bounded(params.get("uri")) if isinstance(method, str) and method.startswith("resources/")
            else None,
            "prompt": bounded(params.get("name")) if method == "prompts/get" else None,
            "params": self.config.record_params(tool if isinstance(tool, str) else None,
                                                arguments if isinstance(arguments, Mapping) else {})
            if arguments is not None else None,
            "status": outcome["status"],
            "error": _error(outcome, arguments, self.config.params_mode(tool if isinstance(tool, str) else None)
                            == "full"),
            "duration_seconds": round(outcome["duration"], 6),
            "request_bytes": note.size if note.size is not None else json_size(message),
            "response_bytes": outcome["size"] if outcome["size"] is not None or response is None
            else json_size(response),
            "trace_id": trace[0] if trace else None,
        }

    def _identity(self, connection: Connection) -> dict[str, Any] | None:
        """The bearer token's claims (verified when a JWKS is configured), reused for a minute
        and never past the token's expiry."""
        authorization = connection.header(b"authorization")
        if authorization is None:
            return None
        now = time.time()
        cached = self._identities.get(authorization)
        if cached is not None and cached[1] > now:
            return cached[0]
        identity = from_bearer(authorization, self.verifier, self.config.user_claim, self.config.email_claim)
        until = min(now + IDENTITY_TTL, expiry(authorization) or math.inf)
        self._identities[authorization] = (identity, until)
        self._identities.move_to_end(authorization)
        while len(self._identities) > MAX_IDENTITIES:
            self._identities.popitem(last=False)
        return identity

    def _headers(self, connection: Connection) -> dict[str, str] | None:
        if not self.config.header_allow or not connection.headers:
            return None
        raw = {key.decode("latin-1"): value.decode("latin-1") for key, value in connection.headers}
        return filter_headers(raw, self.config.header_allow, self.config.header_deny) or None


def _error(outcome: Mapping[str, Any], arguments: Any, keep_values: bool) -> dict[str, Any] | None:
    """{code, message} of a request that did not succeed: the JSON-RPC error's, a tool result's
    text (isError), or what the proxy answered in place of a response (and why); argument
    values it repeats masked unless they are kept."""
    if outcome["status"] == "success":
        return None
    response = outcome["response"]
    if isinstance(response, Mapping):
        error = response.get("error")
        if isinstance(error, Mapping):
            return error_field(error.get("code"), error.get("message"), arguments, keep_values=keep_values)
        return error_field(None, tool_error_text(response.get("result")), arguments, keep_values=keep_values)
    return error_field(outcome["code"], outcome["reason"], arguments, keep_values=keep_values)

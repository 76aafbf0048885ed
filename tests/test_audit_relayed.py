"""The proxy's audit trail, message by message: every request the tracker counts gets one record
under the same status, with what the proxy saw of it on the wire (sizes, session, client, bearer
identity, client IP, trace) and, for requests nobody answered, what the proxy answered and why."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from prometheus_client import CollectorRegistry

from collector.audit import relayed
from collector.audit.config import AuditConfig
from collector.audit.relayed import Connection, RelayAudit
from collector.audit.writer import AuditWriter
from collector.metrics import Recorder
from collector.proxy.tracker import Tracker
from tests.audit_support import AUDIENCE, ISSUER, signing_keys, token, write_jwks
from tests.support import operations, registry_text
from tests.test_audit_inprocess import SECRETS
from tests.test_audit_writer import MemorySink

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Setup:
    """A tracker auditing into memory, with the metrics it counts."""

    def __init__(self, verifier=None, **options):
        self.registry = CollectorRegistry()
        self.sink = MemorySink()
        self.config = AuditConfig.from_mapping({"stdout": True, **options})
        writer = AuditWriter([self.sink], registry=self.registry)
        self.audit = RelayAudit(writer, self.config, "files", "v2", verifier)
        self.clock = Clock()
        self.tracker = Tracker(Recorder("files", "v2", registry=self.registry), request_timeout=10, clock=self.clock,
                               audit=self.audit)

    def client(self, message, scope=None, **kw):
        return self.tracker.from_client(message, scope, size=len(json.dumps(message)), **kw)

    def server(self, message, scope=None):
        return self.tracker.from_server(message, scope, size=len(json.dumps(message)))

    def records(self) -> list[dict]:
        assert self.audit.writer.flush(timeout=10)
        return self.sink.records

    def counted(self) -> dict:
        return operations(registry_text(self.registry), service="files")


def request(request_id, method, params=None) -> dict:
    message = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def call(request_id, tool, arguments=None, **extra) -> dict:
    return request(request_id, "tools/call", {"name": tool, "arguments": arguments or {}, **extra})


def result(request_id, value=None) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "result": {} if value is None else value}


def initialize(request_id=0, name="claude-code", version="2.1") -> dict:
    return request(request_id, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                              "clientInfo": {"name": name, "version": version}})


def by_id(records: list[dict]) -> dict:
    return {r["jsonrpc_id"]: r for r in records}


def test_every_outcome_has_one_record_under_the_metrics_status():
    s = Setup()
    s.client(initialize())
    s.server(result(0, {"protocolVersion": "2025-11-25", "capabilities": {}, "serverInfo": {"name": "x", "version": "1"}}))
    s.client(request("list", "tools/list"))  # so the metrics label the tools by name too
    s.server(result("list", {"tools": [{"name": n, "inputSchema": {}} for n in ("read_file", "slow", "hang")]}))
    s.client(call(1, "read_file", {"path": "/etc/hosts"}))
    s.server(result(1, {"content": [{"type": "text", "text": "127.0.0.1 localhost"}]}))
    s.client(call(2, "read_file", {"path": "/nope"}))
    s.server(result(2, {"content": [{"type": "text", "text": "ENOENT: /nope"}], "isError": True}))
    s.client(request(3, "resources/read", {"uri": "file:///a"}))
    s.server({"jsonrpc": "2.0", "id": 3, "error": {"code": -32002, "message": "Resource not found"}})
    s.client(call(4, "slow"))
    s.client({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 4, "reason": "user"}})
    s.client(call(5, "hang"))
    s.clock.now += 11
    assert s.tracker.expire() == [(None, 5)]
    s.client(request(6, "prompts/get", {"name": "review", "arguments": {"file": "a.py"}}))
    s.client(request(7, "ping"))
    s.tracker.fail()  # the server exited with 6 and 7 pending
    records = s.records()
    assert Counter((r["method"], r["tool"] or "", r["status"]) for r in records) == s.counted()
    r = by_id(records)
    assert {k: r[k]["status"] for k in r} == {0: "success", "list": "success", 1: "success", 2: "error", 3: "error", 4: "cancelled",
                                              5: "timeout", 6: "error", 7: "error"}
    assert r[1]["error"] is None and r[1]["params"] == {"path": {"type": "string", "size": 10}}
    assert r[2]["error"] == {"code": None, "message": "ENOENT: [value]"}  # the argument it repeats: names mode
    assert r[3]["error"] == {"code": -32002, "message": "Resource not found"} and r[3]["resource"] == "file:///a"
    assert r[4]["error"] == {"code": None, "message": "user"}
    assert r[5]["error"] == {"code": -32001, "message": "Request timed out (answered by the proxy)"}
    assert r[6]["error"] == {"code": -32000, "message": "Connection closed before the response"}
    assert r[6]["prompt"] == "review" and r[6]["params"] == {"file": {"type": "string", "size": 4}}
    # sizes are the messages' bytes as given; unanswered requests have no response size
    assert r[1]["request_bytes"] == len(json.dumps(call(1, "read_file", {"path": "/etc/hosts"})))
    assert r[1]["response_bytes"] > 0 and r[5]["response_bytes"] is None
    # one stdio run: one session, the client of its initialize on every record
    assert {x["session_id"] for x in records} == {s.audit.stdio.session_id}
    assert {json.dumps(x["client"]) for x in records} == {'{"name": "claude-code", "version": "2.1"}'}
    assert {x["protocol_version"] for x in records} == {"2025-11-25"}
    assert all(x["service"] == "files" and x["version"] == "v2" and x["identity"] is None for x in records)
    assert all(x["duration_seconds"] >= 0 for x in records)
    assert r[5]["duration_seconds"] >= 0  # the tracker's clock is fake; durations are real


def test_a_batch_measures_each_request_as_compact_json():
    s = Setup()
    s.client([call(1, "a"), call(2, "b")])
    s.server([result(2), result(1)])
    r = by_id(s.records())
    compact = len(json.dumps(call(1, "a"), separators=(",", ":")))
    assert r[1]["request_bytes"] == compact and r[1]["response_bytes"] == len('{"jsonrpc":"2.0","id":1,"result":{}}')


def test_http_sessions_clients_identity_and_traces():
    keys = signing_keys()
    s = Setup(user_claim="preferred_username", header_allow=["user-agent", "authorization"])
    # a handshake-era session: initialize carries no session id; its answer names it
    init = Connection(None, "10.1.2.3", [(b"user-agent", b"claude/2"), (b"authorization", b"Bearer " +
                                                                          token(keys).encode())])
    s.client(initialize(0, "ide", "1.0"), ("post", 1), connection=init)
    init.session_id = "sess-A"  # what the HTTP exchange learns from the response's Mcp-Session-Id
    s.server(result(0, {"protocolVersion": "2025-06-18"}), ("post", 1))
    later = Connection("sess-A", "10.1.2.3", [(b"traceparent", TRACEPARENT.encode())])
    s.client(call(1, "read"), "sess-A", connection=later)
    s.server(result(1), "sess-A")
    # a 2026-07-28 request: no session, its client and protocol in its own _meta
    modern = call(2, "read", _meta={"io.modelcontextprotocol/clientInfo": {"name": "cli", "version": "3"},
                                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                    "traceparent": TRACEPARENT})
    s.client(modern, ("post", 2), connection=Connection(None, "::1"))
    s.server(result(2), ("post", 2))
    r = by_id(s.records())
    assert r[0]["session_id"] == "sess-A" and r[0]["client"] == {"name": "ide", "version": "1.0"}
    assert r[1]["session_id"] == "sess-A" and r[1]["client"] == {"name": "ide", "version": "1.0"}
    assert r[1]["protocol_version"] == "2025-06-18" and r[1]["trace_id"] == TRACEPARENT[3:35]
    assert r[2]["session_id"] is None and r[2]["client"] == {"name": "cli", "version": "3"}
    assert r[2]["protocol_version"] == "2026-07-28" and r[2]["trace_id"] == TRACEPARENT[3:35]
    assert r[0]["client_ip"] == "10.1.2.3" and r[2]["client_ip"] == "::1"
    # the token's claims, unverified without a JWKS; the token and the Authorization header never
    assert r[0]["identity"]["verified"] is False and r[0]["identity"]["user"] == "ana"
    assert r[0]["headers"] == {"user-agent": "claude/2"}
    assert "Bearer" not in json.dumps(s.records()) and token(keys).split(".")[2] not in json.dumps(s.records())


def test_bearer_tokens_are_verified_once_per_token_and_never_past_expiry(tmp_path, monkeypatch):
    from collector.audit.identity import JwtVerifier

    keys = signing_keys()
    verifier = JwtVerifier(write_jwks(tmp_path / "jwks.json", keys), issuer=ISSUER, audience=AUDIENCE)
    s = Setup(verifier)
    calls = []
    real = relayed.from_bearer
    monkeypatch.setattr(relayed, "from_bearer", lambda *a, **k: calls.append(1) or real(*a, **k))
    good = Connection("s", "127.0.0.1", [(b"authorization", f"Bearer {token(keys)}".encode())])
    forged = Connection("s", "127.0.0.1", [(b"authorization", f"Bearer {token(keys, signer='other')}".encode())])
    for n, connection in enumerate([good, good, good, forged]):
        s.client(call(n, "t"), "s", connection=connection)
        s.server(result(n), "s")
    r = by_id(s.records())
    assert [r[n]["identity"]["verified"] for n in range(4)] == [True, True, True, False]
    assert r[3]["identity"]["error"] == "bad signature" and r[0]["identity"]["email"] == "ana@example.com"
    assert len(calls) == 2  # the good token was verified once, then reused
    # a token about to expire is not reused past its exp
    expiring = Connection("s", "127.0.0.1", [(b"authorization", f"Bearer {token(keys, exp=1)}".encode())])
    s.client(call(9, "t"), "s", connection=expiring)
    s.server(result(9), "s")
    s.client(call(10, "t"), "s", connection=expiring)
    s.server(result(10), "s")
    assert by_id(s.records())[10]["identity"]["error"] == "expired" and len(calls) == 4


@pytest.mark.parametrize("options, kept", [
    ({}, False),
    ({"params": "redacted"}, False),
    ({"params": "full", "tool_classification": {"echo": "restricted"}}, False),
    ({"params": "full"}, True),
])
def test_secrets_in_arguments_and_error_messages(options, kept):
    s = Setup(**options)
    s.client(call(1, "echo", {"text": json.dumps(SECRETS), **SECRETS}))
    s.server({"jsonrpc": "2.0", "id": 1, "error": {"code": -32603, "message": f"bad login {SECRETS['note']}"}})
    written = json.dumps(s.records())
    assert ("hunter2-Correct-Horse" in written) is kept
    assert "4111 1111 1111 1111" not in written.split('"error"')[1]  # error messages are always redacted
    assert "alice@example.com" not in written.split('"error"')[1]


def test_sessions_remembered_are_bounded(monkeypatch):
    monkeypatch.setattr(relayed, "MAX_SESSIONS", 3)
    s = Setup()
    for n in range(5):
        connection = Connection(f"s{n}")
        s.client(initialize(n, f"c{n}"), f"s{n}", connection=connection)
        s.server(result(n, {"protocolVersion": "2025-11-25"}), f"s{n}")
    assert list(s.audit._sessions) == ["s2", "s3", "s4"]


@pytest.mark.parametrize("params, kept", [("names", False), ("redacted", False), ("full", True)])
def test_an_error_that_repeats_an_argument_keeps_it_only_where_values_are_kept(params, kept):
    """Servers echo their input in errors (pydantic quotes it as input_value=...): the message
    must not keep what the parameters mode leaves out."""
    s = Setup(params=params)
    s.client(call(1, "open", {"path": "/home/ana/contract-2027.pdf", "mode": "rw"}))
    s.server(result(1, {"content": [{"type": "text", "text": "cannot open /home/ana/contract-2027.pdf"}],
                        "isError": True}))
    s.client(call(2, "open", {"path": "/x", "pin": "884211"}))
    s.server({"jsonrpc": "2.0", "id": 2, "error": {"code": -32602, "message": (
        "1 validation error\npin\n  Unexpected keyword argument [type=unexpected_keyword_argument, "
        "input_value='884211', input_type=str]")}})
    r = by_id(s.records())
    assert ("contract-2027" in r[1]["error"]["message"]) is kept
    assert ("884211" in r[2]["error"]["message"]) is kept
    assert r[2]["error"]["message"].startswith("1 validation error\npin\n  Unexpected keyword argument")

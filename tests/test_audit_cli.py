"""`mcp-slo audit verify` and `mcp-slo audit query` on files written by the file sink."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from collector.audit.chain import Chain
from collector.audit.config import format_time
from collector.audit.sinks import JsonlFileSink
from collector.command import FAILED, OK, USAGE
from mcp_slo import cli

NOW = time.time()


def record(n: int, age: float, **fields) -> dict:
    """A record as the instrumentation writes it, `age` seconds old."""
    base = {
        "time": format_time(NOW - age), "request_id": f"req-{n}", "jsonrpc_id": n, "session_id": "sess-1",
        "service": "files", "version": "v1", "method": "tools/call", "tool": "read_file", "status": "success",
        "duration_seconds": 0.0123, "identity": {"user": "ana", "email": "ana@example.com", "subject": "u-1",
                                                 "verified": True},
        "client": {"name": "claude-code", "version": "1.0"}, "params": {"path": {"type": "string", "size": 9}},
        "error": None, "request_bytes": 120, "response_bytes": 900, "trace_id": f"{n:032x}",
    }
    return {**base, **fields}


RECORDS = [
    record(1, 9000),
    record(2, 5400, tool="write_file", identity={"user": "bob", "email": "bob@example.com", "verified": False}),
    record(3, 4000, status="error", error={"code": -32603, "message": "disk full"}),
    record(4, 1800, service="analytics", tool="query", version="v2"),
    record(5, 600, status="timeout", identity={"user": None, "email": "cy@example.com", "subject": "u-9"}),
    record(6, 60),
]


@pytest.fixture
def trail(tmp_path) -> list[Path]:
    """The records over three files, as the sink rotates them; the set in a shuffled order."""
    sink = JsonlFileSink(tmp_path / "audit.jsonl", rotate_every=None)
    chain = Chain()
    for start in (0, 2, 4):
        sink.write([chain.seal(r) for r in RECORDS[start:start + 2]])
        if start < 4:
            sink.rotate()
    sink.close()
    return [sink.path, *sink.rotated()[::-1]]


def run(capsys, *args: str | Path) -> tuple[int, str, str]:
    code = cli.main(["audit", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


# --- verify -----------------------------------------------------------------------------------


def test_verify_an_intact_trail(capsys, trail, monkeypatch):
    monkeypatch.delenv("MCP_SLO_AUDIT_KEY", raising=False)
    code, out, err = run(capsys, "verify", *trail)
    assert (code, out, err) == (OK, "intact: 6 records, seq 1..6, 3 files\n", "")


def test_verify_names_a_removed_record(capsys, trail, monkeypatch):
    monkeypatch.delenv("MCP_SLO_AUDIT_KEY", raising=False)
    middle = sorted(trail)[1]  # the second rotated file: seq 3 and 4
    lines = middle.read_text().splitlines(keepends=True)
    middle.write_text(lines[1])
    code, out, err = run(capsys, "verify", *trail)
    assert code == FAILED and out == ""
    assert err == f"mcp-slo audit: {middle}:1 (seq 4): seq 3 removed before it\n"


def test_verify_names_a_changed_record(capsys, trail, monkeypatch):
    monkeypatch.delenv("MCP_SLO_AUDIT_KEY", raising=False)
    current = trail[0]
    lines = current.read_text().splitlines(keepends=True)
    changed = json.loads(lines[1])
    changed["status"] = "error"
    lines[1] = json.dumps(changed) + "\n"
    current.write_text("".join(lines))
    code, _, err = run(capsys, "verify", *trail)
    assert code == FAILED and err.startswith(f"mcp-slo audit: {current}:2 (seq 6) was changed")
    assert err.count("\n") == 1


def test_verify_with_a_key(capsys, tmp_path, monkeypatch):
    sink = JsonlFileSink(tmp_path / "keyed.jsonl", rotate_every=None)
    chain = Chain(b"the key")
    sink.write([chain.seal(r) for r in RECORDS])
    sink.close()
    monkeypatch.setenv("AUDIT_KEY_FOR_TEST", "the key")
    assert run(capsys, "verify", sink.path, "--key-env", "AUDIT_KEY_FOR_TEST")[0] == OK
    monkeypatch.setenv("AUDIT_KEY_FOR_TEST", "not the key")
    code, _, err = run(capsys, "verify", sink.path, "--key-env", "AUDIT_KEY_FOR_TEST")
    assert code == FAILED and "wrong key" in err
    monkeypatch.delenv("AUDIT_KEY_FOR_TEST")
    code, _, err = run(capsys, "verify", sink.path, "--key-env", "AUDIT_KEY_FOR_TEST")
    assert (code, err) == (USAGE, "mcp-slo audit: --key-env: $AUDIT_KEY_FOR_TEST is not set\n")
    monkeypatch.setenv("MCP_SLO_AUDIT_KEY", "the key")  # the default variable
    assert run(capsys, "verify", sink.path)[0] == OK


def test_verify_a_missing_file_and_no_action(capsys, tmp_path):
    code, _, err = run(capsys, "verify", tmp_path / "nope.jsonl")
    assert (code, err) == (USAGE, f"mcp-slo audit: no such file: {tmp_path / 'nope.jsonl'}\n")
    code, _, err = run(capsys)
    assert code == USAGE and "verify or query" in err


# --- query ------------------------------------------------------------------------------------


def query(capsys, trail, *args) -> list[str]:
    code, out, err = run(capsys, "query", *trail, *args)
    assert (code, err) == (OK, "")
    return [json.loads(line)["request_id"] for line in out.splitlines()]


def test_query_everything_in_chain_order(capsys, trail):
    assert query(capsys, trail) == [f"req-{n}" for n in range(1, 7)]


@pytest.mark.parametrize(("args", "expected"), [
    (("--user", "bob"), ["req-2"]),
    (("--user", "cy@example.com"), ["req-5"]),
    (("--user", "u-9"), ["req-5"]),
    (("--service", "analytics"), ["req-4"]),
    (("--tool", "read_file"), ["req-1", "req-3", "req-5", "req-6"]),
    (("--status", "error"), ["req-3"]),
    (("--since", "1h"), ["req-4", "req-5", "req-6"]),
    (("--until", "1h"), ["req-1", "req-2", "req-3"]),
    (("--since", "2h", "--until", "45m", "--tool", "read_file"), ["req-3"]),
    (("--since", format_time(NOW - 1000)), ["req-5", "req-6"]),
    (("--user", "nobody"), []),
])
def test_query_filters(capsys, trail, args, expected):
    assert query(capsys, trail, *args) == expected


def test_query_as_a_table(capsys, trail):
    code, out, _ = run(capsys, "query", *trail, "--format", "table", "--status", "error")
    assert code == OK
    header, row = out.splitlines()
    assert header.split() == ["time", "user", "service", "version", "tool", "status", "seconds", "request_id"]
    assert row.split() == [RECORDS[2]["time"], "ana", "files", "v1", "read_file", "error", "0.012", "req-3"]


@pytest.mark.parametrize("option", ["--since", "--until"])
@pytest.mark.parametrize("value", ["yesterday", "1 hour", "-5m", "2025-13-01T00:00:00Z"])
def test_query_a_bad_time(capsys, trail, option, value):
    code, out, err = run(capsys, "query", *trail, f"{option}={value}")
    assert code == USAGE and out == "" and err.count("\n") == 1
    assert err.startswith(f"mcp-slo audit: {option} {value!r}: use an RFC 3339 time")


def test_query_skips_lines_that_are_not_records(capsys, trail):
    with open(trail[0], "a") as file:
        file.write("{torn\n")
    code, out, err = run(capsys, "query", *trail, "--status", "timeout")
    assert code == OK and [json.loads(line)["request_id"] for line in out.splitlines()] == ["req-5"]
    assert err == "mcp-slo audit: skipped 1 line(s) that are not JSON records\n"


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["audit", "--help"])
    assert exit_.value.code == 0 and "verify" in capsys.readouterr().out

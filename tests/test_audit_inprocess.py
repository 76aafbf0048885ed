"""instrument(server, audit=...): one audit record per request the metrics count, with the same
status, from many concurrent clients in memory, on the official SDK's MCPServer and on FastMCP;
nothing sensitive kept; the chain intact."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.types import Implementation
from prometheus_client import CollectorRegistry

from collector import instrument
from collector.audit.chain import verify
from collector.audit.fields import MAX_NAME
from tests.servers import fastmcp_app, mcpserver_app
from tests.support import operations, registry_text, samples

CLIENTS = 50
ROUNDS = 6  # each: echo, refuse, crash, a resource, a prompt
SECRETS = {"password": "hunter2-Correct-Horse", "note": "card 4111 1111 1111 1111, mail alice@example.com",
           "token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"}


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def run_clients(server, clients: int, rounds: int) -> None:
    async def one(n: int) -> None:
        async with Client(server, client_info=Implementation(name=f"client-{n}", version="9.1")) as client:
            for i in range(rounds):
                await client.call_tool("echo", {"text": f"{n}-{i}"})
                await client.call_tool("refuse", {})
                await client.call_tool("crash", {})
                await client.read_resource("note://readme")
                await client.get_prompt("greet", {"name": f"user {n}"})

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for n in range(clients):
                tg.start_soon(one, n)

    anyio.run(main)


KINDS = ["mcpserver", "fastmcp"]


def audited(tmp_path: Path, kind: str = "mcpserver", **options):
    """(what mcp.Client connects to, the registry, the audit file, the request audit)."""
    registry = CollectorRegistry()
    path = tmp_path / "audit" / "mcp.jsonl"
    app = fastmcp_app.build() if kind == "fastmcp" else mcpserver_app.build()
    server = instrument(app, service="busy", version="v1", registry=registry, audit={"path": str(path), **options})
    target = server._mcp_server if kind == "fastmcp" else server  # FastMCP runs on a low-level Server
    return target, registry, path, target.middleware[0].audit


@pytest.mark.parametrize("kind", KINDS)
def test_every_request_the_metrics_count_has_one_record_with_the_same_status(tmp_path, kind):
    server, registry, path, audit = audited(tmp_path, kind)
    writer = audit.writer
    run_clients(server, CLIENTS, ROUNDS)
    assert writer.flush(timeout=30)
    counted = operations(registry_text(registry), service="busy")
    found = records(path)
    assert Counter((r["method"], r["tool"] or "", r["status"]) for r in found) == counted
    assert counted[("tools/call", "crash", "error")] == CLIENTS * ROUNDS  # every outcome is there
    assert counted[("tools/call", "refuse", "error")] == CLIENTS * ROUNDS
    # each client by the name and version it gave in the handshake; no HTTP: the run's session
    for r in found:
        assert r["service"] == "busy" and r["version"] == "v1"
        assert r["duration_seconds"] >= 0 and r["request_bytes"] > 0 and len(r["request_id"]) == 32
        assert r["time"].endswith("Z") and r["identity"] is None and r["client_ip"] is None  # no auth, no HTTP
    assert Counter(r["client"]["name"] for r in found if r["method"] == "tools/call") == {
        f"client-{n}": 3 * ROUNDS for n in range(CLIENTS)}
    assert {r["client"]["version"] for r in found} == {"9.1"}
    assert {r["session_id"] for r in found} == {audit.run_id}
    assert len({r["request_id"] for r in found}) == len(found)
    # what each method keeps
    echo = next(r for r in found if r["tool"] == "echo")
    assert echo["params"]["text"] in ({"type": "string", "size": 3}, {"type": "string", "size": 4})  # "n-i"
    assert echo["error"] is None and echo["response_bytes"] > 0
    refused = next(r for r in found if r["tool"] == "refuse")
    assert refused["error"]["code"] is None and refused["error"]["message"].endswith("refused on purpose")
    crashed = next(r for r in found if r["tool"] == "crash")
    assert crashed["status"] == "error" and crashed["error"]["message"]
    assert next(r for r in found if r["method"] == "resources/read")["resource"] == "note://readme"
    assert next(r for r in found if r["method"] == "prompts/get")["prompt"] == "greet"
    # the chain holds, and the audit counters agree with the file
    assert verify([path], None).ok
    text = registry_text(registry)
    assert samples(text, "mcp_audit_records_total")[(("sink", writer.sinks[0].name),)] == len(found)
    assert samples(text, "mcp_audit_records_dropped_total")[(("reason", "queue_full"),)] == 0
    writer.close()


@pytest.mark.parametrize("options, kept", [
    ({}, False),  # names only, the default
    ({"params": "redacted"}, False),
    ({"params": "full", "tool_classification": {"echo": "restricted"}}, False),
    ({"params": "full"}, True),
])
@pytest.mark.parametrize("kind", KINDS)
def test_secrets_in_arguments_and_errors_are_kept_only_in_full_mode(tmp_path, kind, options, kept):
    server, _registry, path, audit = audited(tmp_path, kind, **options)
    writer = audit.writer

    async def main() -> None:
        async with Client(server) as client:
            await client.call_tool("echo", {"text": json.dumps(SECRETS), **SECRETS})
            await client.call_tool("echo", {"text": SECRETS["note"]})

    anyio.run(main)
    assert writer.flush(timeout=10)
    written = path.read_text()
    assert [r["tool"] for r in records(path) if r["method"] == "tools/call"] == ["echo", "echo"]
    for secret in (SECRETS["password"], "4111 1111 1111 1111", "alice@example.com", SECRETS["token"]):
        assert (secret in written) is kept, (secret, options)
    writer.close()


def test_a_hostile_tool_name_is_recorded_bounded_and_escaped(tmp_path):
    """A client chooses the names it sends: a huge one is cut, a line break or markup cannot
    start another record (JSON escapes it), and the trail still verifies."""
    server, _registry, path, audit = audited(tmp_path)
    writer = audit.writer
    name = 'x\n{"seq": 1}<script>' + "y" * 100_000

    async def main() -> None:
        async with Client(server) as client:
            await client.call_tool(name, {})

    anyio.run(main)
    assert writer.flush(timeout=10)
    found = records(path)  # one JSON object per line: the line break did not split one
    called = next(r for r in found if r["method"] == "tools/call")
    assert called["tool"].startswith('x\n{"seq": 1}<script>') and called["tool"].endswith("…[cut]")
    assert len(called["tool"]) <= MAX_NAME + len("…[cut]") and called["status"] == "error"
    assert verify([path], None).ok
    writer.close()

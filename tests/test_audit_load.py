"""The audit trail under load: rotation and retention while many threads write, and real MCP
calls in front of a sink that stalls (drop mode keeps them going and counts the drops; block
mode holds them until the sink moves again)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import anyio
from mcp import Client
from prometheus_client import CollectorRegistry

from collector import instrument
from collector.audit.chain import Chain, verify
from collector.audit.config import AuditConfig
from collector.audit.requests import RequestAudit
from collector.audit.sinks import JsonlFileSink
from collector.audit.writer import AuditWriter
from tests.servers import mcpserver_app
from tests.test_audit_writer import DEADLINE, MemorySink, sample, wait_for

THREADS, PER_THREAD = 8, 1500


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def load(writer: AuditWriter, phase: str) -> None:
    def submit(t: int) -> None:
        for i in range(PER_THREAD):
            assert writer.submit({"request_id": f"{phase}-{t}-{i}", "tool": "read", "note": "x" * 80})

    workers = [threading.Thread(target=submit, args=(t,)) for t in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert writer.flush(timeout=DEADLINE)


def ids(paths: list[Path]) -> list[str]:
    return [json.loads(line)["request_id"] for p in paths for line in p.read_text().splitlines()]


def test_rotation_and_retention_under_load(tmp_path):
    hour = 3600.0
    clock = Clock(time.time())
    registry = CollectorRegistry()
    sink = JsonlFileSink(tmp_path / "audit.jsonl", max_bytes=64 * 1024, rotate_every=None, retention=hour,
                         clock=clock)
    writer = AuditWriter([sink], queue_size=100_000, chain=Chain(b"k"), registry=registry)
    load(writer, "first")
    first = [*sink.rotated(), sink.path]
    assert len(first) > 10  # rotated many times while 8 threads wrote
    assert sorted(ids(first)) == sorted(f"first-{t}-{i}" for t in range(THREADS) for i in range(PER_THREAD))
    assert verify(first, b"k").ok
    clock.now += 2 * hour  # every file rotated so far is now past retention
    load(writer, "second")
    assert writer.close(timeout=DEADLINE)
    kept = [*sink.rotated(), sink.path]
    assert not set(first[:-1]) & set(kept)  # the rotated files of the first hour were deleted at a rotation
    verdict = verify(kept, b"k")
    assert verdict.ok and verdict.first_seq > 1 and verdict.last_seq == 2 * THREADS * PER_THREAD
    assert verdict.records == verdict.last_seq - verdict.first_seq + 1  # nothing missing in what is kept
    second = {f"second-{t}-{i}" for t in range(THREADS) for i in range(PER_THREAD)}
    assert second <= set(ids(kept))  # nothing of the second hour lost
    assert sample(registry, "mcp_audit_records_total", sink="jsonl") == 2 * THREADS * PER_THREAD
    assert sample(registry, "mcp_audit_records_dropped_total", reason="queue_full") == 0


def stalled_server(when_full: str, queue_size: int):
    """An instrumented server whose audit sink is stuck in its first write until `gate` is set."""
    gate = threading.Event()
    sink = MemorySink(gate)
    registry = CollectorRegistry()
    server = instrument(mcpserver_app.build(), service="stall", version="v1", registry=registry)
    middleware = server.middleware[0]
    config = AuditConfig(when_full=when_full, queue_size=queue_size)
    writer = AuditWriter([sink], queue_size=queue_size, when_full=when_full, registry=registry)
    middleware.audit = RequestAudit(writer, config, "stall", "v1")
    return server, sink, gate, writer, registry


def test_a_stalled_sink_in_drop_mode_slows_no_call_and_counts_the_drops():
    server, sink, gate, writer, registry = stalled_server("drop", queue_size=10)
    calls = 200

    async def main() -> None:
        async with Client(server) as client:
            for i in range(calls):
                result = await client.call_tool("echo", {"text": str(i)})
                assert not result.is_error

    anyio.run(main)  # every call completed while the sink never wrote a record
    assert sink.records == []
    dropped = sample(registry, "mcp_audit_records_dropped_total", reason="queue_full")
    accepted = sink.pending + 10  # the batch stuck in the sink, and a full queue
    assert dropped >= calls - accepted and dropped > 0
    gate.set()
    assert writer.close(timeout=DEADLINE)
    assert len(sink.records) + dropped == sample(registry, "mcp_operations_total", service="stall", version="v1",
                                                  method="tools/call", tool="echo", status="success") + 2
    # (+2: the handshake's initialize and the client's first listing are audited too)


def test_a_stalled_sink_in_block_mode_holds_calls_until_it_moves():
    server, sink, gate, writer, _registry = stalled_server("block", queue_size=5)
    done: list[int] = []

    def client() -> None:
        async def main() -> None:
            async with Client(server) as c:
                for i in range(50):
                    await c.call_tool("echo", {"text": str(i)})
                    done.append(i)

        anyio.run(main)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    assert sink.waiting.wait(DEADLINE)
    # the calls stop once the queue is full: each waits for room before it returns
    assert wait_for(lambda: _stuck(done))
    assert thread.is_alive() and len(done) < 50
    gate.set()
    thread.join(DEADLINE)
    assert done == list(range(50))
    assert writer.close(timeout=DEADLINE)
    assert len([r for r in sink.records if r["method"] == "tools/call"]) == 50  # none lost


def _stuck(done: list[int], quiet: float = 0.5) -> bool:
    """No call finished for `quiet` seconds (polled; a moving client would have finished one)."""
    before = len(done)
    deadline = time.monotonic() + quiet
    while time.monotonic() < deadline:
        if len(done) != before:
            return False
        time.sleep(0.01)
    return True

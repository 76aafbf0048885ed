"""The audit writer: concurrent submits written once each in one chain, drop and block modes
when the queue is full, failing sinks retried without losing or duplicating records, and a
restart continuing the chain."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from collector.audit import writer as writer_module
from collector.audit.chain import Chain, digest, verify
from collector.audit.config import AuditConfig
from collector.audit.sinks import JsonlFileSink
from collector.audit.writer import AuditWriter

DEADLINE = 20.0


def wait_for(predicate, timeout: float = DEADLINE) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class MemorySink:
    name = "memory"

    def __init__(self, gate: threading.Event | None = None, failures: int = 0):
        self.records: list[dict] = []
        self.gate = gate
        self.failures = failures
        self.error = OSError("disk full")
        self.calls = 0
        self.pending = 0  # records in the write under way
        self.waiting = threading.Event()
        self.closed = False

    def write(self, records):
        self.calls += 1
        self.pending = len(records)
        if self.gate is not None:
            self.waiting.set()
            assert self.gate.wait(DEADLINE), "the test never opened the gate"
        if self.failures:
            self.failures -= 1
            raise self.error
        self.records.extend(records)

    def close(self):
        self.closed = True

    def last_record(self):
        return self.records[-1] if self.records else None


def sample(registry: CollectorRegistry, name: str, **labels) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def _read(paths) -> list[dict]:
    return [json.loads(line) for path in paths for line in Path(path).read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def fast_retry(monkeypatch):
    monkeypatch.setattr(writer_module, "RETRY_AFTER", (0.005, 0.02))


def test_concurrent_submits_are_each_written_once_in_one_chain(tmp_path, registry):
    sink = JsonlFileSink(tmp_path / "audit.jsonl", max_bytes=20000, rotate_every=None)
    memory = MemorySink()
    writer = AuditWriter([sink, memory], queue_size=100000, chain=Chain(b"key"), registry=registry)
    threads, per_thread = 8, 400

    def submit(t):
        for i in range(per_thread):
            assert writer.submit({"request_id": f"{t}-{i}", "tool": "read"})

    workers = [threading.Thread(target=submit, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert writer.close(timeout=DEADLINE)
    total = threads * per_thread
    files = [*sink.rotated(), sink.path]
    written = _read(files)
    assert sorted(r["request_id"] for r in written) == sorted(f"{t}-{i}" for t in range(threads)
                                                             for i in range(per_thread))
    assert [r["seq"] for r in written] == list(range(1, total + 1))
    # each thread's records keep the order it submitted them in
    for t in range(threads):
        mine = [int(r["request_id"].split("-")[1]) for r in written if r["request_id"].startswith(f"{t}-")]
        assert mine == list(range(per_thread))
    verdict = verify(files, b"key")
    assert verdict.ok and verdict.records == total and len(files) > 2
    assert memory.records == written and memory.closed
    assert sample(registry, "mcp_audit_records_total", sink="jsonl") == total
    assert sample(registry, "mcp_audit_records_total", sink="memory") == total
    assert sample(registry, "mcp_audit_records_dropped_total", reason="queue_full") == 0


def test_drop_mode_never_blocks_and_counts_the_drops(registry):
    gate = threading.Event()
    sink = MemorySink(gate)
    writer = AuditWriter([sink], queue_size=5, when_full="drop", registry=registry)
    assert writer.submit({"n": 0})
    assert sink.waiting.wait(DEADLINE)  # the writer holds record 0 in a slow write; the queue is empty
    started = time.monotonic()
    accepted = [writer.submit({"n": n}) for n in range(1, 101)]
    assert time.monotonic() - started < 5  # no submit waited for the stuck sink
    assert accepted == [True] * 5 + [False] * 95
    assert sample(registry, "mcp_audit_records_dropped_total", reason="queue_full") == 95
    gate.set()
    assert writer.close(timeout=DEADLINE)
    assert [r["n"] for r in sink.records] == [0, 1, 2, 3, 4, 5]
    assert sample(registry, "mcp_audit_records_total", sink="memory") == 101 - 95


def test_block_mode_waits_for_room_and_loses_nothing(registry):
    gate = threading.Event()
    sink = MemorySink(gate)
    writer = AuditWriter([sink], queue_size=2, when_full="block", registry=registry)
    submitted = []

    def submit():
        for n in range(200):
            writer.submit({"n": n})
            submitted.append(n)

    producer = threading.Thread(target=submit)
    producer.start()
    assert sink.waiting.wait(DEADLINE)
    # the sink is stuck on its first batch: the producer fills the queue (2) and then waits
    assert wait_for(lambda: len(submitted) == sink.pending + 2)
    assert producer.is_alive() and len(submitted) < 200 and sink.records == []
    gate.set()
    producer.join(DEADLINE)
    assert writer.close(timeout=DEADLINE)
    assert [r["n"] for r in sink.records] == list(range(200))
    assert sample(registry, "mcp_audit_records_dropped_total", reason="queue_full") == 0


def test_a_failing_sink_is_retried_logged_once_and_the_others_go_on(registry, fast_retry, caplog):
    failing = MemorySink(failures=3)
    healthy = MemorySink()
    healthy.name = "healthy"
    writer = AuditWriter([failing, healthy], registry=registry)
    with caplog.at_level(logging.ERROR, logger="collector.audit.writer"):
        for n in range(10):
            writer.submit({"n": n})
            assert writer.flush(DEADLINE)
        assert wait_for(lambda: len(failing.records) == 10)
    assert [r["seq"] for r in failing.records] == list(range(1, 11))  # kept, then written once, in order
    assert [r["seq"] for r in healthy.records] == list(range(1, 11))
    assert sample(registry, "mcp_audit_write_errors_total", sink="memory") == 3
    assert sample(registry, "mcp_audit_write_errors_total", sink="healthy") == 0
    logged = [r for r in caplog.records if "failed to write" in r.getMessage()]
    assert len(logged) == 1 and "OSError: disk full" in logged[0].getMessage()
    assert writer.close(timeout=DEADLINE)


def test_a_sink_failing_for_long_keeps_at_most_the_queue_size(registry, fast_retry):
    failing = MemorySink(failures=10**9)
    writer = AuditWriter([failing], queue_size=10, registry=registry)
    for n in range(30):
        assert writer.submit({"n": n})
        assert writer.flush(DEADLINE)
    failing.failures = 0
    assert wait_for(lambda: len(failing.records) == 10)
    assert [r["n"] for r in failing.records] == list(range(20, 30))  # the newest kept
    assert sample(registry, "mcp_audit_records_dropped_total", reason="backlog") == 20
    assert writer.close(timeout=DEADLINE)


def test_an_unexpected_error_does_not_stop_the_writer(registry, caplog):
    sink = MemorySink()
    writer = AuditWriter([sink], registry=registry)
    writer.submit({"bad": object()})  # not JSON: hashed as its text
    writer.submit({"n": 1})
    assert writer.close(timeout=DEADLINE)
    assert [r["seq"] for r in sink.records] == [1, 2]
    assert sink.records[0]["hash"] == digest(sink.records[0])


def test_close_drains_and_a_late_submit_is_dropped(registry):
    sink = MemorySink()
    writer = AuditWriter([sink], registry=registry)
    for n in range(500):
        writer.submit({"n": n})
    assert writer.close(timeout=DEADLINE)
    assert len(sink.records) == 500 and sink.closed
    assert writer.submit({"n": 500}) is False
    assert sample(registry, "mcp_audit_records_dropped_total", reason="closed") == 1
    assert writer.close(timeout=DEADLINE)  # twice is fine


def test_a_restart_continues_the_chain(tmp_path, registry):
    path = tmp_path / "audit.jsonl"
    first = AuditWriter([JsonlFileSink(path, max_bytes=3000, rotate_every=None)], registry=registry)
    for n in range(40):
        first.submit({"n": n})
    assert first.close(timeout=DEADLINE)
    second_sink = JsonlFileSink(path, max_bytes=3000, rotate_every=None)
    second = AuditWriter([second_sink], registry=CollectorRegistry())  # no chain: resumed from the file
    assert second.chain.last_seq == 40
    for n in range(40, 80):
        second.submit({"n": n})
    assert second.close(timeout=DEADLINE)
    files = [*second_sink.rotated(), path]
    verdict = verify(files, None)
    assert verdict.ok and verdict.records == 80
    assert [r["n"] for r in _read(files)] == list(range(80))


def test_a_new_keyed_chain_beside_an_existing_trail_resumes_it(tmp_path, registry):
    path = tmp_path / "audit.jsonl"
    for n in range(3):  # three runs of the process, each building Chain(key) afresh
        writer = AuditWriter([JsonlFileSink(path)], chain=Chain(b"key"), registry=CollectorRegistry())
        assert writer.chain.last_seq == 2 * n and writer.chain.key == b"key"
        writer.submit({"run": n})
        writer.submit({"run": n})
        assert writer.close(timeout=DEADLINE)
    assert verify([path], b"key").records == 6
    resumed = Chain(b"key", last_seq=6, last_hash=writer.chain.last_hash)
    kept = AuditWriter([JsonlFileSink(path)], chain=resumed, registry=registry)
    assert kept.chain is resumed and kept.close(timeout=DEADLINE)  # a chain that is already under way is kept


def test_from_config_with_a_key(tmp_path, registry):
    config = AuditConfig.from_mapping({"path": str(tmp_path / "audit.jsonl"), "key_env": "TEST_AUDIT_KEY",
                                       "queue_size": 50, "when_full": "block"})
    environ = {"TEST_AUDIT_KEY": "s3cr3t"}
    writer = AuditWriter.from_config(config, registry=registry, environ=environ)
    assert (writer.queue_size, writer.when_full) == (50, "block")
    writer.submit({"n": 1})
    assert writer.close(timeout=DEADLINE)
    again = AuditWriter.from_config(config, registry=CollectorRegistry(), environ=environ)
    again.submit({"n": 2})
    assert again.close(timeout=DEADLINE)
    assert verify([tmp_path / "audit.jsonl"], b"s3cr3t").records == 2
    assert verify([tmp_path / "audit.jsonl"], None).kind == "wrong_key"
    with pytest.raises(ValueError, match="needs a file"):
        AuditWriter.from_config(AuditConfig(), registry=CollectorRegistry())


def test_bad_arguments(registry):
    with pytest.raises(ValueError, match="when_full"):
        AuditWriter([MemorySink()], when_full="wait", registry=registry)
    with pytest.raises(ValueError, match="queue_size"):
        AuditWriter([MemorySink()], queue_size=0, registry=CollectorRegistry())


# --- the options ------------------------------------------------------------------------------


def test_options_from_a_mapping():
    config = AuditConfig.from_mapping({
        "path": "audit/mcp.jsonl", "max_bytes": "10MiB", "rotate_every": "12h", "retention": "30d",
        "params": "redacted", "tool_classification": {"read_file": "public", "pay": "restricted",
                                                      "query": "confidential"},
        "full_tools": ["debug_echo"], "header_allow": ["X-Request-Id"], "queue_size": 500, "when_full": "block",
        "stdout": True,
    })
    assert (config.path, config.max_bytes, config.rotate_every, config.retention) == (
        Path("audit/mcp.jsonl"), 10 * 1024 * 1024, 43200, 30 * 86400)
    assert config.header_allow == ("X-Request-Id",) and config.full_tools == frozenset({"debug_echo"})
    assert AuditConfig.from_mapping({"max_bytes": "10MB", "rotate_every": None}).max_bytes == 10_000_000
    assert AuditConfig.from_mapping({"rotate_every": "never"}).rotate_every is None
    assert AuditConfig() == AuditConfig.from_mapping({})


def test_which_parameter_mode_applies_to_a_tool():
    config = AuditConfig.from_mapping({"params": "full", "full_tools": ["echo", "query"],
                                       "tool_classification": {"pay": "restricted", "query": "confidential",
                                                               "search": "confidential"}})
    assert [config.params_mode(t) for t in ("pay", "query", "search", "echo", "other", None)] == [
        "names", "full", "redacted", "full", "full", "full"]
    names_only = AuditConfig.from_mapping({"tool_classification": {"pay": "restricted"}, "full_tools": ["echo"]})
    assert [names_only.params_mode(t) for t in ("pay", "echo", "other")] == ["names", "full", "names"]
    arguments = {"card": "4111 1111 1111 1111", "note": "hi"}
    assert config.record_params("search", arguments) == {"card": "[REDACTED:card]", "note": "hi"}
    assert config.record_params("pay", arguments) == {"card": {"type": "string", "size": 19},
                                                      "note": {"type": "string", "size": 2}}
    assert config.record_params("echo", arguments) == arguments


@pytest.mark.parametrize(("options", "message"), [
    ({"params": "everything"}, "params 'everything': use one of names, redacted, full"),
    ({"max_bytes": -5}, "max_bytes -5 must be positive"),
    ({"max_bytes": "-5MiB"}, "max_bytes '-5MiB' is not a size like 100MiB"),
    ({"max_bytes": "10 parsecs"}, "is not a size"),
    ({"queue_size": 0}, "queue_size must be positive, not 0"),
    ({"queue_size": "many"}, "queue_size must be a whole number"),
    ({"retention": "-1d"}, "retention '-1d' is not a duration"),
    ({"retention": 0}, "retention 0 must be positive"),
    ({"rotate_every": "soon"}, "rotate_every 'soon' is not a duration"),
    ({"tool_classification": {"pay": "secret"}}, "tool 'pay': unknown classification 'secret'"),
    ({"default_classification": "top"}, "default_classification: unknown classification 'top'"),
    ({"full_tools": ["pay"], "tool_classification": {"pay": "restricted"}}, "tool 'pay' is restricted"),
    ({"full_tools": "pay"}, "full_tools must be a list of names"),
    ({"when_full": "wait"}, "when_full 'wait': use one of drop, block"),
    ({"key_env": "NOT A NAME"}, "is not an environment variable name"),
    ({"stdout": "yes"}, "stdout must be true or false"),
    ({"issuer": "https://login.example.com/"}, "issuer and audience need jwks"),
    ({"paramz": "names"}, "unknown audit option 'paramz'"),
])
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(ValueError, match=None) as error:
        AuditConfig.from_mapping(options)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_record_times():
    from collector.audit.config import format_time, parse_time

    assert format_time(1735689600.5) == "2025-01-01T00:00:00.500Z"
    assert parse_time("2025-01-01T00:00:00.500Z") == 1735689600.5
    assert parse_time("2025-01-01T01:00:00+01:00") == parse_time("2025-01-01T00:00:00") == 1735689600


def test_close_retries_a_failing_sink_and_counts_what_it_never_took(registry, fast_retry):
    """A sink failing at shutdown gets its kept records retried until close's deadline; what it
    never takes is dropped, counted and logged, not lost silently."""
    recovering = MemorySink(failures=3)
    writer = AuditWriter([recovering], registry=registry)
    for n in range(5):
        writer.submit({"n": n})
    assert writer.close(timeout=DEADLINE)
    assert [r["n"] for r in recovering.records] == list(range(5))
    broken = MemorySink(failures=10**9)
    other = CollectorRegistry()
    writer = AuditWriter([broken], registry=other)
    for n in range(7):
        writer.submit({"n": n})
    started = time.monotonic()
    assert writer.close(timeout=1.0)
    assert time.monotonic() - started < DEADLINE  # bounded by close's timeout, not forever
    assert broken.records == [] and sample(other, "mcp_audit_records_dropped_total", reason="backlog") == 7

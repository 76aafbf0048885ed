"""The audit trail as OpenTelemetry logs: each record arrives at an OTLP/HTTP receiver as one log
record whose body is the sealed record (its chain verifiable from the copy), with the fields a
query filters on as attributes; a refused export is retried by the writer, losing nothing."""

from __future__ import annotations

import json

import pytest
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from prometheus_client import CollectorRegistry

from collector.audit.chain import Chain, digest
from collector.audit.config import AuditConfig
from collector.audit.otlp_sink import OtlpLogSink
from collector.audit.writer import AuditWriter
from tests.otlp_receiver import otlp_receiver
from tests.test_audit_writer import DEADLINE, sample

RECORDS = 40


def record(n: int) -> dict:
    return {"time": f"2026-12-07T10:00:{n % 60:02d}.250Z", "request_id": f"r{n}", "service": "files", "version": "v2",
            "method": "tools/call", "tool": "read", "status": "success" if n % 4 else "error",
            "session_id": "s1", "identity": {"user": "ana", "email": "ana@example.com"}, "client_ip": "10.0.0.7",
            "client": {"name": "ide", "version": "1"}, "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}


@pytest.fixture
def fast_retry(monkeypatch):
    from collector.audit import writer as writer_module

    monkeypatch.setattr(writer_module, "RETRY_AFTER", (0.01, 0.05))


def test_records_arrive_as_log_records_and_a_refused_export_is_retried(fast_retry):
    with otlp_receiver() as receiver:
        # the collector is down for a while: the exporter's own retries (within its 0.5 s) give up,
        # and the writer keeps the batch and retries it
        receiver.fail = 4
        registry = CollectorRegistry()
        exporter = OTLPLogExporter(endpoint=f"{receiver.url}/v1/logs", timeout=0.5)
        sink = OtlpLogSink("files", "v2", exporter=exporter)
        writer = AuditWriter([sink], chain=Chain(b"key"), registry=registry)
        for n in range(RECORDS):
            assert writer.submit(record(n))
        assert writer.close(timeout=DEADLINE)
        received = receiver.log_records()
    assert receiver.refused == 4 and sample(registry, "mcp_audit_write_errors_total", sink="otlp") >= 1
    assert len(received) == RECORDS  # each once: none lost to the refusals, none doubled by the retries
    bodies = [json.loads(r.body.string_value) for _, r in received]
    assert [b["request_id"] for b in bodies] == [f"r{n}" for n in range(RECORDS)]
    assert [b["seq"] for b in bodies] == list(range(1, RECORDS + 1))
    assert all(digest(b, b"key") == b["hash"] for b in bodies)  # verifiable downstream
    resource, first = received[0]
    assert resource["service.name"] == "files" and resource["service.version"] == "v2"
    attributes = {kv.key: kv.value for kv in first.attributes}
    assert attributes["gen_ai.tool.name"].string_value == "read"
    assert attributes["user.id"].string_value == "ana" and attributes["client.address"].string_value == "10.0.0.7"
    assert attributes["mcp.audit.seq"].int_value == 1
    assert first.event_name == "mcp.audit" and first.severity_text == "WARN"  # r0 failed
    assert received[1][1].severity_text == "INFO"
    assert first.time_unix_nano == 1796637600250000000  # the request's time, not the export's
    assert first.trace_id.hex() == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert sample(registry, "mcp_audit_records_total", sink="otlp") == RECORDS


def test_the_otlp_sink_from_the_options(monkeypatch, tmp_path):
    with otlp_receiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        config = AuditConfig.from_mapping({"otlp": True, "path": str(tmp_path / "a.jsonl")})
        writer = AuditWriter.from_config(config, registry=CollectorRegistry(), service="files", version="v2")
        assert [s.name for s in writer.sinks] == ["jsonl", "otlp"]
        writer.submit(record(1))
        assert writer.close(timeout=DEADLINE)
        assert len(receiver.log_records()) == 1
    with pytest.raises(ValueError, match="otlp must be true or false"):
        AuditConfig.from_mapping({"otlp": "yes"})

"""The OpenTelemetry side of the exporter: the semantic conventions' names, their
Prometheus form next to the OpenTelemetry SDK's own exporter, and the OTLP push."""

from __future__ import annotations

import subprocess
import sys
import time

import anyio
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from collector import instrument, names, semconv
from collector.metrics import Recorder
from collector.tracecontext import active_span_reader, parse_traceparent, trace_of
from tests.proxy_support import PYTHON, SERVERS, child_env, proxy_command
from tests.support import free_port, wait_until

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_names_are_the_semantic_conventions_own():
    pytest.importorskip("opentelemetry.semconv")
    from opentelemetry.semconv._incubating.attributes import (
        gen_ai_attributes,
        mcp_attributes,
        rpc_attributes,
    )
    from opentelemetry.semconv._incubating.metrics import mcp_metrics
    from opentelemetry.semconv.attributes import (
        error_attributes,
        network_attributes,
        service_attributes,
    )

    assert semconv.DURATION == mcp_metrics.MCP_SERVER_OPERATION_DURATION
    assert semconv.METHOD_NAME == mcp_attributes.MCP_METHOD_NAME
    assert semconv.PROTOCOL_VERSION == mcp_attributes.MCP_PROTOCOL_VERSION
    assert semconv.TOOL_NAME == gen_ai_attributes.GEN_AI_TOOL_NAME
    assert semconv.PROMPT_NAME == gen_ai_attributes.GEN_AI_PROMPT_NAME
    assert semconv.ERROR_TYPE == error_attributes.ERROR_TYPE
    assert semconv.RPC_RESPONSE_STATUS_CODE == rpc_attributes.RPC_RESPONSE_STATUS_CODE
    assert semconv.NETWORK_TRANSPORT == network_attributes.NETWORK_TRANSPORT
    assert semconv.PIPE == network_attributes.NetworkTransportValues.PIPE.value
    assert semconv.TCP == network_attributes.NetworkTransportValues.TCP.value
    assert semconv.SERVICE_NAME == service_attributes.SERVICE_NAME
    assert semconv.SERVICE_VERSION == service_attributes.SERVICE_VERSION
    assert semconv.OTHER_ERROR == error_attributes.ErrorTypeValues.OTHER.value


def test_traceparent_parsing_ignores_anything_malformed():
    assert parse_traceparent(TRACEPARENT) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    for bad in (None, 7, "", "00-" + "0" * 32 + "-b7ad6b7169203331-01", TRACEPARENT.upper(),
                TRACEPARENT + "-x", "ff" + TRACEPARENT[2:], TRACEPARENT[:-1] + "g", "x" * 10_000):
        assert parse_traceparent(bad) is None, bad


def test_a_request_trace_comes_from_meta_else_from_the_active_span():
    from opentelemetry.sdk.trace import TracerProvider

    assert trace_of({"name": "add", "_meta": {"traceparent": TRACEPARENT}}) == parse_traceparent(TRACEPARENT)
    assert trace_of({"name": "add"}) is None and trace_of({"_meta": None}) is None and trace_of("x") is None
    active = active_span_reader()
    assert active() is None  # no span here (the MCP SDK's own are non-recording: invalid, also None)
    with TracerProvider().get_tracer("test").start_as_current_span("tools/call") as span:
        ids = span.get_span_context()
        assert active() == (format(ids.trace_id, "032x"), format(ids.span_id, "016x"))
    assert active() is None


# (method, tool, status, error the adapter passes, protocol, seconds) and the attributes
# OpenTelemetry's instrumentation would set, spelled with the conventions' own keys below.
OPERATIONS = [
    ("tools/call", "add", names.SUCCESS, None, "2025-06-18", 0.003),
    ("tools/call", "add", names.SUCCESS, None, "2025-06-18", 0.07),
    ("tools/call", "add", names.ERROR, semconv.TOOL_ERROR, "2025-06-18", 0.7),
    ("tools/call", names.OTHER_TOOL, names.ERROR, -32602, "2025-06-18", 45.0),
    ("tools/list", "", names.SUCCESS, None, "2025-06-18", 0.015),
    ("tools/call", "add", names.TIMEOUT, None, "2025-06-18", 400.0),
    (names.OTHER_METHOD, "", names.ERROR, -32601, None, 1.5),
]


def _otel_attributes(method, tool, status, error, protocol) -> dict:
    from opentelemetry.semconv._incubating.attributes import (
        gen_ai_attributes,
        mcp_attributes,
        rpc_attributes,
    )
    from opentelemetry.semconv.attributes import error_attributes, network_attributes

    attrs = {mcp_attributes.MCP_METHOD_NAME: "_OTHER" if method == names.OTHER_METHOD else method,
             network_attributes.NETWORK_TRANSPORT: "pipe"}
    if tool:
        attrs[gen_ai_attributes.GEN_AI_TOOL_NAME] = tool
    if protocol:
        attrs[mcp_attributes.MCP_PROTOCOL_VERSION] = protocol
    if isinstance(error, int):
        attrs[error_attributes.ERROR_TYPE] = attrs[rpc_attributes.RPC_RESPONSE_STATUS_CODE] = str(error)
    elif error:
        attrs[error_attributes.ERROR_TYPE] = error
    elif status == names.TIMEOUT:
        attrs[error_attributes.ERROR_TYPE] = "timeout"
    return attrs


def _families(text: str) -> dict:
    """name -> {labels (sorted items): value} for the semconv histogram and target_info."""
    out: dict = {}
    for family in text_string_to_metric_families(text):
        if family.name in (semconv.PROMETHEUS_DURATION, "target_info", "target"):
            for s in family.samples:
                out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_prometheus_form_is_the_otel_exporters():
    """Our families and the OpenTelemetry SDK with its Prometheus exporter, for the same operations."""
    pytest.importorskip("opentelemetry.exporter.prometheus")
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource

    registry = CollectorRegistry()
    rec = Recorder("svc", "v7", registry=registry, metrics=semconv.OTEL, transport=semconv.PIPE)
    reader = PrometheusMetricReader()  # registers itself with the global registry until shut down
    provider = MeterProvider(metric_readers=[reader],
                             resource=Resource.create({"service.name": "svc", "service.version": "v7"}))
    try:
        histogram = provider.get_meter(semconv.SCOPE_NAME, semconv.scope_version()).create_histogram(
            semconv.DURATION, unit="s", description=semconv.DURATION_HELP,
            explicit_bucket_boundaries_advisory=list(semconv.BUCKETS))
        for method, tool, status, error, protocol, seconds in OPERATIONS:
            rec.begin()
            rec.end(method, tool, status, time.perf_counter() - seconds, error, None, protocol)
            histogram.record(seconds, _otel_attributes(method, tool, status, error, protocol))
        ours = _families(generate_latest(registry).decode())
        theirs = _families(generate_latest(REGISTRY).decode())
    finally:
        provider.shutdown()

    duration = semconv.PROMETHEUS_DURATION
    for suffix in ("_bucket", "_count"):
        assert ours[duration + suffix] == theirs[duration + suffix]
    series = len(OPERATIONS) - 1  # the first two share their attributes
    assert len(ours[duration + "_count"]) == series
    assert len(ours[duration + "_bucket"]) == series * (len(semconv.BUCKETS) + 1)
    # sums: the same keys; values within the timer's jitter
    assert ours[duration + "_sum"].keys() == theirs[duration + "_sum"].keys()
    for key, value in theirs[duration + "_sum"].items():
        assert ours[duration + "_sum"][key] == pytest.approx(value, abs=0.01)
    # target_info: ours has service_name/service_version, the SDK's the same plus its own
    [(ours_info, one)] = ours["target_info"].items()
    [(their_info, _)] = theirs["target_info"].items()
    assert one == 1.0 and set(ours_info) <= set(their_info)
    assert dict(ours_info) == {"service_name": "svc", "service_version": "v7"}


def test_the_default_writes_no_semconv_family():
    registry = CollectorRegistry()
    rec = Recorder("svc", "v1", registry=registry)
    rec.begin()
    rec.end("tools/list", "", names.SUCCESS, time.perf_counter(), None, ("a" * 32, "b" * 16))
    text = generate_latest(registry).decode()
    assert semconv.PROMETHEUS_DURATION not in text and "target_info" not in text
    assert 'mcp_operations_total{method="tools/list"' in text


def test_metrics_otel_alone_serves_no_mcp_slo_family():
    registry = CollectorRegistry()
    rec = Recorder("svc", "v1", registry=registry, metrics=semconv.OTEL)
    rec.begin()
    rec.end("tools/list", "", names.SUCCESS, time.perf_counter())
    text = generate_latest(registry).decode()
    assert "mcp_operations" not in text and "mcp_operation_duration" not in text
    assert f'{semconv.PROMETHEUS_DURATION}_count{{mcp_method_name="tools/list"' in text


@pytest.mark.integration
def test_a_missing_extra_is_one_line_naming_it():
    code = ("import sys\nsys.modules['opentelemetry.sdk'] = None\nfrom collector.command import CommandError\n"
            "try:\n    import collector.otlp\nexcept CommandError as e:\n    print(e.message)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().startswith("OTLP export needs the otel extra: pip install 'mcp-slo[otel]'")
    assert len(out.strip().splitlines()) == 1


@pytest.mark.integration
def test_otlp_push_in_process(monkeypatch):
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from mcp import Client
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    from tests.otlp_receiver import otlp_receiver

    server = MCPServer("otlp-test", version="1.0")

    @server.tool()
    def add(a: int, b: int) -> int:
        return a + b

    @server.tool()
    def fail() -> str:
        raise ToolError("no luck")

    with otlp_receiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.version=9.9.9,deployment.environment.name=test")
        monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "600000")  # only the force_flush below exports
        instrument(server, service="ours", version="v1", registry=CollectorRegistry(), metrics=semconv.OTEL,
                   otlp=True)
        recorder = server.middleware[0].recorder

        async def session() -> None:
            async with Client(server) as client:
                for i in range(3):
                    await client.call_tool("add", {"a": i, "b": 1}, meta={"traceparent": TRACEPARENT})
                assert (await client.call_tool("fail", {})).is_error

        anyio.run(session)
        assert recorder.otlp.force_flush()
        points = wait_until(lambda: receiver.histogram_points(semconv.DURATION), what="an OTLP export")
        recorder.otlp.shutdown()

    calls = {(p[1].get(semconv.TOOL_NAME), p[1].get(semconv.ERROR_TYPE)): p for p in points
             if p[1][semconv.METHOD_NAME] == "tools/call"}
    assert set(calls) == {("add", None), ("fail", semconv.TOOL_ERROR)}
    resource, attrs, point = calls["add", None]
    assert point.count == 3 and sum(point.bucket_counts) == 3
    assert list(point.explicit_bounds) == [float(b) for b in semconv.BUCKETS]
    assert attrs == {semconv.METHOD_NAME: "tools/call", semconv.TOOL_NAME: "add",
                     semconv.PROTOCOL_VERSION: attrs[semconv.PROTOCOL_VERSION]}
    assert semconv.protocol_version(attrs[semconv.PROTOCOL_VERSION])
    assert calls["fail", semconv.TOOL_ERROR][2].count == 1
    # the environment wins over our service and version
    assert resource[semconv.SERVICE_NAME] == "from-env" and resource[semconv.SERVICE_VERSION] == "9.9.9"
    assert resource["deployment.environment.name"] == "test"


@pytest.mark.integration
def test_proxy_otlp_exports_everything_when_it_exits():
    """Only the export at exit can carry these counts: the interval is ten minutes."""
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    from tests.otlp_receiver import otlp_receiver

    with otlp_receiver() as receiver:
        env = child_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_METRIC_EXPORT_INTERVAL="600000",
                        OTEL_RESOURCE_ATTRIBUTES="team=mcp")
        env.pop("OTEL_SERVICE_NAME", None)
        argv = proxy_command("proxied", free_port(), "--metrics", "both", "--otlp", "--exit-grace", "0",
                             "--", PYTHON, str(SERVERS / "tool_server.py"))
        params = StdioServerParameters(command=argv[0], args=argv[1:], env=env)

        async def session() -> None:
            async with Client(params) as client:
                await client.call_tool("add", {"a": 1, "b": 2}, meta={"traceparent": TRACEPARENT})
                await client.call_tool("add", {"a": 1, "b": 3})
                assert (await client.call_tool("fail", {"message": "x"})).is_error

        anyio.run(session)
        points = wait_until(lambda: receiver.histogram_points(semconv.DURATION), timeout=20,
                            what="the OTLP export at exit")

    calls = {(p[1].get(semconv.TOOL_NAME), p[1].get(semconv.ERROR_TYPE)): p for p in points
             if p[1][semconv.METHOD_NAME] == "tools/call"}
    assert {k: p[2].count for k, p in calls.items()} == {("add", None): 2, ("fail", semconv.TOOL_ERROR): 1}
    resource, attrs, _ = calls["add", None]
    assert attrs[semconv.NETWORK_TRANSPORT] == semconv.PIPE
    assert semconv.protocol_version(attrs.get(semconv.PROTOCOL_VERSION))
    assert resource[semconv.SERVICE_NAME] == "proxied" and resource[semconv.SERVICE_VERSION] == "v1"
    assert resource["team"] == "mcp"

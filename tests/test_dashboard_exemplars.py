"""Exemplars on the service page's latency chart: the slowest traced requests, marked with their
trace ids. Their parsing, the cap per slice of the range and the escaping as plain functions; the
page through its render function; then a real Prometheus with exemplar storage scraping an
OpenMetrics endpoint served here (a histogram observed with trace ids), and one without exemplar
storage (no markers, no error). Last, the demo's load sends the trace context they come from.
"""

from __future__ import annotations

import random
import re
import tempfile
import time
from pathlib import Path

import anyio
import pytest
from mcp.server.mcpserver import Context, MCPServer
from prometheus_client import CollectorRegistry, Histogram, start_http_server

from collector import names
from collector.metrics import Recorder
from dashboard import service_data as sd
from dashboard.pages import service as page
from dashboard.prometheus import Exemplar, Metrics, exemplar_list
from dashboard.source import SourceError
from demo.load import drive, traceparent
from demo.prometheus import start_prometheus
from tests import binaries
from tests.support import free_port, wait_until
from tests.test_dashboard_service import (
    NOW,
    ROWS,
    SLOS,
    FakeMetrics,
    FakeSource,
    by_name,
    full_metrics,
    tr_of,
)

SERVICE = "filesystem"
MARKERS = "exemplars (slowest traced requests)"


def exemplar(at: float, value: float, trace: str, tool: str = "read_file") -> Exemplar:
    return Exemplar({"service": SERVICE, "tool": tool, "le": "0.5"}, {"trace_id": trace}, value, at)


def latency_answer(tr: sd.TimeRange) -> list:
    return [({"quantile": "0.99"}, [(tr.start, 0.2), (tr.end, 0.3)])]


# --- plain functions ---------------------------------------------------------------------------


def test_prometheus_answers_are_read_and_what_cannot_be_drawn_is_left_out():
    data = [{"seriesLabels": {"__name__": "mcp_operation_duration_seconds_bucket", "tool": "read_file", "le": "1"},
             "exemplars": [{"labels": {"trace_id": "abc"}, "value": "0.7", "timestamp": 1_800_000_000.5},
                           {"labels": {"trace_id": "nan"}, "value": "NaN", "timestamp": 1_800_000_000},
                           {"labels": {"trace_id": "no time"}, "value": "0.1"}, "not an exemplar"]},
            {"seriesLabels": {}, "exemplars": None}, 7]
    assert exemplar_list(data) == [Exemplar({"__name__": "mcp_operation_duration_seconds_bucket", "tool": "read_file",
                                             "le": "1"}, {"trace_id": "abc"}, 0.7, 1_800_000_000.5)]
    assert exemplar_list([]) == [] and exemplar_list(None) is None and exemplar_list({"data": []}) is None


def test_a_busy_service_draws_the_slowest_few_of_each_slice_of_the_range_each_once():
    tr = tr_of("1h")
    rng = random.Random(7)
    many = [exemplar(tr.start + rng.uniform(0, tr.end - tr.start), rng.uniform(0.001, 1.0), f"t{i}")
            for i in range(10_000)]
    slowest = exemplar(tr.start + 10, 9.0, "slowest")
    scraped_again = slowest._replace(time=tr.start + 15)  # exposed without a time: stored at each scrape
    outside = [exemplar(tr.start - 1, 50.0, "before"), exemplar(tr.end + 1, 50.0, "after")]
    kept = sd.slowest_exemplars([*many, scraped_again, slowest, slowest, *outside], tr)
    assert len(kept) == sd.EXEMPLAR_SLOTS * sd.EXEMPLARS_PER_SLOT
    assert [e for e in kept if e.labels["trace_id"] == "slowest"] == [slowest]  # once, when first seen
    assert not {"before", "after"} & {e.labels["trace_id"] for e in kept}
    assert [e.time for e in kept] == sorted(e.time for e in kept)
    slot = (tr.end - tr.start) / sd.EXEMPLAR_SLOTS
    first = sorted((e.value for e in [*many, slowest] if e.time < tr.start + slot), reverse=True)
    assert sorted((e.value for e in kept if e.time < tr.start + slot), reverse=True) == first[:sd.EXEMPLARS_PER_SLOT]


def test_the_markers_show_the_trace_id_tool_time_and_duration_as_plain_text():
    tr = tr_of("1h")
    hostile = exemplar(tr.start + 60, 0.25, "<a href=https://evil.example>x</a>", tool="<b>write</b>")
    figure = sd.latency_figure(latency_answer(tr), ROWS, tr, [exemplar(tr.start + 30, 0.0421, "4bf92f35"), hostile])
    markers = by_name(figure)[MARKERS]
    assert markers["mode"] == "markers" and markers["x"] == [(tr.start + 30) * 1000, (tr.start + 60) * 1000]
    assert markers["y"] == [0.0421, 0.25]
    assert markers["customdata"][0] == ["4bf92f35", "read_file", "2027-01-15 07:00:30 UTC", "42.1 ms"]
    assert markers["customdata"][1][:2] == ["&lt;a href=https://evil.example&gt;x&lt;/a&gt;", "&lt;b&gt;write&lt;/b&gt;"]


def test_no_exemplars_draw_no_markers_and_an_unreadable_answer_is_a_note_not_a_broken_chart():
    tr = tr_of("1h")
    plain = sd.latency_figure(latency_answer(tr), ROWS, tr)
    assert MARKERS not in by_name(plain) and not plain["layout"]["annotations"]
    assert sd.latency_figure(latency_answer(tr), ROWS, tr, []) == plain
    down = SourceError("http", "Prometheus at http://prom.test:9090 answered HTTP 404")
    noted = sd.latency_figure(latency_answer(tr), ROWS, tr, down)
    assert noted["data"] == plain["data"]  # the quantiles and the SLO threshold are still drawn
    assert [a["text"] for a in noted["layout"]["annotations"]] == [f"No exemplars: {down.message}"]


class ExemplarMetrics(FakeMetrics):
    """The page test's fake Prometheus, with exemplars."""

    def __init__(self, exemplars, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._exemplars = exemplars

    def exemplars(self, expr, start, end):
        self.asked.append(expr)
        return self._exemplars


def test_the_service_page_marks_the_exemplars_of_its_tools_call_buckets():
    tr = tr_of("6h")
    full = full_metrics(tr)
    metrics = ExemplarMetrics([exemplar(NOW - 600, 0.8, "4bf92f3577b34da6a3ce929d0e0e4736")],
                              full.ranges, full.instants, full._alerts)
    r = page.render(FakeSource(SLOS), metrics, "/services/filesystem", "?range=6h&refresh=off", now=NOW)
    assert by_name(r.figures["latency"])[MARKERS]["customdata"][0][0] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert 'mcp_operation_duration_seconds_bucket{service="filesystem",method="tools/call"}' in metrics.asked
    failing = ExemplarMetrics(SourceError("http", "HTTP 503"), full.ranges, full.instants, full._alerts)
    r = page.render(FakeSource(SLOS), failing, "/services/filesystem", "?range=6h&refresh=off", now=NOW)
    assert MARKERS not in by_name(r.figures["latency"]) and "p50 (estimate)" in by_name(r.figures["latency"])


# --- on a real Prometheus ----------------------------------------------------------------------


TRACES = {0.003: "0af7651916cd43dd8448eb211c80319c", 0.04: "4bf92f3577b34da6a3ce929d0e0e4736",
          2.0: "a3ce929d0e0e47364bf92f3577b34da6"}  # one per bucket: a bucket keeps its latest exemplar


@pytest.fixture(scope="module")
def exporter():
    """An OpenMetrics endpoint (prometheus_client answers OpenMetrics, with exemplars, when the
    scraper asks for it, as Prometheus does) with a tools/call duration of each of TRACES."""
    registry = CollectorRegistry()
    durations = Histogram(names.OPERATION_DURATION, "tools/call durations", ["service", "version", "method", "tool"],
                          registry=registry, buckets=(0.005, 0.05, 0.5, 5.0))
    for seconds, trace in TRACES.items():
        durations.labels(SERVICE, "v1", "tools/call", "read_file").observe(seconds, exemplar={"trace_id": trace})
    durations.labels("other", "v1", "tools/call", "list_directory").observe(1.0, exemplar={"trace_id": "f" * 32})
    observed_at = time.time()
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    yield f"127.0.0.1:{server.server_port}", observed_at
    server.shutdown()
    thread.join(timeout=5)


def chart_range() -> sd.TimeRange:
    return sd.time_range("?range=1h", time.time())


def charted(metrics: Metrics) -> tuple[list[Exemplar] | SourceError, dict]:
    """The exemplars the service page reads now, and its latency chart drawn with them."""
    tr = chart_range()
    exemplars = sd.read_exemplars(metrics, SERVICE, tr)
    return exemplars, sd.latency_figure(latency_answer(tr), [], tr, exemplars)


@pytest.mark.integration
def test_a_prometheus_with_exemplar_storage_gives_the_markers_their_trace_ids(exporter):
    target, _ = exporter
    with binaries.prometheus([target]) as url:
        metrics = Metrics(url, ttl=0.0)

        def all_scraped():
            exemplars, figure = charted(metrics)
            return isinstance(exemplars, list) and len(exemplars) >= len(TRACES) and MARKERS in by_name(figure) \
                and figure

        # the chart's range ends at its last whole step (15 s): wait for it to pass the observations
        figure = wait_until(all_scraped, timeout=60, interval=0.5, what="the exemplars scraped, within the range")
        markers = by_name(figure)[MARKERS]
        assert sorted(zip(markers["y"], (c[0] for c in markers["customdata"]))) == sorted(TRACES.items())
        assert {c[1] for c in markers["customdata"]} == {"read_file"}  # the other service's are not asked for
        # a query Prometheus refuses is an error to show, not an exception
        refused = metrics.exemplars("sum(", 0, time.time())
        assert isinstance(refused, SourceError) and "HTTP 400" in refused.message
        metrics.close()


@pytest.mark.integration
def test_a_prometheus_without_exemplar_storage_gives_no_markers_and_no_error(exporter):
    target, observed_at = exporter
    binaries.require("prometheus")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="prom-") as work:
        proc = start_prometheus(Path(work), port, [target], "1s", exemplars=False)
        try:
            url = f"http://127.0.0.1:{port}"
            binaries.wait_for_promql(url, f'{names.OPERATION_DURATION}_bucket{{service="{SERVICE}"}}')
            metrics = Metrics(url, ttl=0.0)
            # the observations within the chart's range, where storage would have kept them
            wait_until(lambda: chart_range().end >= observed_at, timeout=30, interval=0.5,
                       what="the chart's range to reach the observations")
            exemplars, figure = charted(metrics)
            assert exemplars == [] and MARKERS not in by_name(figure) and not figure["layout"]["annotations"]
            metrics.close()
        finally:
            proc.stop()


OTEL_TRACE = "5b8efff798038103d269b633813fc60c"


@pytest.fixture(scope="module")
def otel_exporters():
    """Two OpenTelemetry-only exporters (mcp-slo's recorder with metrics="otel": the
    conventions' histogram and target_info, as an SDK's Prometheus exporter writes them), one
    per service, each with one traced slow tools/call."""
    servers = []
    for service, trace in ((SERVICE, OTEL_TRACE), ("other", "e" * 32)):
        registry = CollectorRegistry()
        recorder = Recorder(service, "v1", registry=registry, metrics="otel")
        recorder.end("tools/call", "read_file", names.SUCCESS, recorder.begin() - 1.5, trace=(trace, "1" * 16))
        servers.append(start_http_server(0, addr="127.0.0.1", registry=registry))
    yield [f"127.0.0.1:{server.server_port}" for server, _ in servers]
    for server, thread in servers:
        server.shutdown()
        thread.join(timeout=5)


@pytest.mark.integration
def test_opentelemetry_exemplars_are_matched_to_the_service_by_its_scrape_target(otel_exporters):
    """The conventions' series name no service (target_info does): the page reads the exemplars
    of its service's targets only, with the tool from gen_ai_tool_name."""
    with binaries.prometheus(otel_exporters) as url:
        metrics = Metrics(url, ttl=0.0)
        tr = lambda: sd.time_range("?range=1h", time.time())
        found = wait_until(lambda: sd.read_exemplars(metrics, SERVICE, tr(), "otel") or None, timeout=60,
                           interval=0.5, what="the OpenTelemetry exemplars of the service")
        assert {(e.labels["trace_id"], e.series["tool"]) for e in found} == {(OTEL_TRACE, "read_file")}
        assert all(e.value >= 1.5 for e in found)
        assert sd.read_exemplars(metrics, SERVICE, tr(), "mcp-slo") == []  # mcp-slo's names: none here
        assert {e.labels["trace_id"] for e in sd.read_exemplars(metrics, SERVICE, tr(), "auto")} == {OTEL_TRACE}
        metrics.close()


# --- the demo's load ---------------------------------------------------------------------------


def test_the_demo_load_sends_a_w3c_traceparent_of_a_new_sampled_trace_with_each_call():
    seen: list[str] = []
    server = MCPServer("traced")

    @server.tool()
    def search(query: str, ctx: Context) -> str:
        seen.append((ctx.request_context.meta or {}).get("traceparent", ""))
        return query

    async def run() -> int:
        stop = anyio.Event()
        with anyio.fail_after(30):
            return await load(stop)

    async def load(stop: anyio.Event) -> int:
        async def stop_after_calls():
            while len(seen) < 5:
                await anyio.sleep(0.01)
            stop.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_after_calls)
            return await drive({"v1": (server, 1.0)}, {"search": 1.0}, 100.0, stop)

    assert anyio.run(run) >= 5
    assert all(re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", t) for t in seen), seen
    assert len({t[3:35] for t in seen}) == len(seen)  # a trace each
    assert traceparent(random.Random(0)) != traceparent(random.Random(1))

"""Unit tests of the metric families and the Recorder hot path."""

from __future__ import annotations

import gc

import pytest
from prometheus_client import CollectorRegistry, Histogram

from collector import names
from collector.metrics import Recorder, ToolNames, method_label
from tests.support import registry_text, samples


def test_histogram_buckets_match_prometheus_client_observe():
    registry = CollectorRegistry()
    rec = Recorder("s", "v1", registry=registry, buckets=[0.1, 0.5])
    reference = Histogram("ref", "reference", buckets=[0.1, 0.5], registry=CollectorRegistry())
    for seconds in (0.02, 0.3, 0.9, 0.2):
        started = rec.begin()
        rec.end("tools/call", "t", names.SUCCESS, started - seconds)
        reference.observe(seconds + 1e-6)
    got = samples(registry_text(registry), "mcp_operation_duration_seconds_bucket")
    want = {b.labels["le"]: b.value for b in reference.collect()[0].samples if b.name == "ref_bucket"}
    assert {dict(k)["le"]: v for k, v in got.items()} == want == {"0.1": 1, "0.5": 3, "+Inf": 4}


def test_active_gauge_counts_in_flight_and_cancelled_is_not_observed():
    registry = CollectorRegistry()
    rec = Recorder("s", "v1", registry=registry)
    a, b = rec.begin(), rec.begin()
    assert samples(registry_text(registry), "mcp_operations_active")[(("service", "s"), ("version", "v1"))] == 2
    rec.end("tools/call", "t", names.CANCELLED, a)
    rec.end("tools/call", "t", names.TIMEOUT, b)
    text = registry_text(registry)
    assert samples(text, "mcp_operations_active")[(("service", "s"), ("version", "v1"))] == 0
    assert sum(samples(text, "mcp_operation_duration_seconds_count").values()) == 1  # the timeout only
    with pytest.raises(ValueError, match="unknown status"):
        rec.end("tools/call", "t", "weird", rec.begin())


def test_two_recorders_of_one_service_share_the_gauge():
    registry = CollectorRegistry()
    first, second = Recorder("s", "v1", registry=registry), Recorder("s", "v1", registry=registry)
    first.begin()
    second.begin()
    assert samples(registry_text(registry), "mcp_operations_active")[(("service", "s"), ("version", "v1"))] == 2


def test_fresh_registries_never_reuse_stale_families():
    # a registry's id() can be reused once it is garbage-collected
    for _ in range(50):
        registry = CollectorRegistry()
        rec = Recorder("s", "v1", registry=registry)
        rec.end("ping", "", names.SUCCESS, rec.begin())
        assert "mcp_operations_total" in registry_text(registry)
        del registry, rec
        gc.collect()


def test_method_label_is_closed():
    assert method_label("tools/call") == "tools/call"
    assert method_label("server/discover") == "server/discover"
    assert method_label("evil/method\n{}") == "other"
    assert method_label(None) == "other"


def test_tool_names_are_bounded():
    tools = ToolNames(limit=3, known=["a"])
    assert tools.label("a") == "a"
    assert tools.label("b") == "_other"
    assert tools.label("b", confirmed=True) == "b"
    tools.learn_from_list_result({"tools": [{"name": "c"}, {"name": "d"}, "junk", {"nope": 1}]})
    assert tools.label("c") == "c" and tools.label("d") == "_other"  # the cap is 3
    assert tools.label("e", confirmed=True) == "_other"
    assert tools.label(["not", "a", "name"]) == "_other"


def test_a_failing_lookup_is_an_unknown_tool():
    def lookup(_name):
        raise RuntimeError("registry exploded")

    assert ToolNames(lookup=lookup).label("x") == "_other"


def test_operations_of_a_dropped_recorder_still_count():
    registry = CollectorRegistry()
    rec = Recorder("gone", "v1", registry=registry)
    rec.end("ping", "", names.SUCCESS, rec.begin())
    del rec
    gc.collect()
    assert samples(registry_text(registry), "mcp_operations_total")[
        (("method", "ping"), ("service", "gone"), ("status", "success"), ("tool", ""), ("version", "v1"))] == 1


def test_the_queue_of_finished_operations_stays_small_between_scrapes():
    from collector import metrics

    rec = Recorder("busy", "v1", registry=CollectorRegistry())
    for _ in range(10 * metrics.FLUSH_EVERY):
        rec.end("ping", "", names.SUCCESS, rec.begin())
        assert len(rec._done) < metrics.FLUSH_EVERY


def test_scrapes_from_another_thread_lose_nothing():
    import threading

    registry = CollectorRegistry()
    rec = Recorder("threads", "v1", registry=registry)
    stop = threading.Event()

    def scrape_often():
        while not stop.is_set():
            registry_text(registry)

    scraper = threading.Thread(target=scrape_often)
    scraper.start()
    for _ in range(50_000):
        rec.end("tools/call", "t", names.SUCCESS, rec.begin())
    stop.set()
    scraper.join()
    text = registry_text(registry)
    assert samples(text, "mcp_operations_total")[
        (("method", "tools/call"), ("service", "threads"), ("status", "success"), ("tool", "t"), ("version", "v1"))
    ] == 50_000
    assert sum(v for k, v in samples(text, "mcp_operation_duration_seconds_bucket").items()
               if dict(k)["le"] == "+Inf") == 50_000

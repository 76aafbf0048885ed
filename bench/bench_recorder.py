"""Cost of one instrumented operation: `Recorder.begin()` + `Recorder.end(...)`.

Compared with the floor any implementation on prometheus-client pays for the
same three series: with children already looked up, a gauge child inc and dec,
a counter child inc, a histogram child observe, and the two
`time.perf_counter()` calls the timing needs. Both sides use metric families
declared the same way (names, label names, buckets) in fresh registries.

    python -m bench.bench_recorder [--quick]
"""

from __future__ import annotations

import sys
import time
from itertools import repeat

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bench._common import Result, gc_paused, paired_result, recorded
from collector import names
from collector.metrics import Recorder

GOAL = 1.5  # ours at most 1.5x the floor
METHOD, TOOL, STATUS = "tools/call", "echo", names.SUCCESS
SERVICE, VERSION = "bench", "v1"


def _time_ours(rec: Recorder, n: int) -> int:
    begin, end = rec.begin, rec.end
    clock = time.perf_counter_ns
    with gc_paused():
        t0 = clock()
        for _ in repeat(None, n):
            started = begin()
            end(METHOD, TOOL, STATUS, started)
        return clock() - t0


def _time_floor(counter, histogram, gauge, n: int) -> int:
    g_inc, g_dec, c_inc, h_observe = gauge.inc, gauge.dec, counter.inc, histogram.observe
    perf_counter = time.perf_counter
    clock = time.perf_counter_ns
    with gc_paused():
        t0 = clock()
        for _ in repeat(None, n):
            g_inc()
            started = perf_counter()
            elapsed = perf_counter() - started
            c_inc()
            h_observe(elapsed)
            g_dec()
        return clock() - t0


def _floor_children(registry: CollectorRegistry):
    """The same three families as collector.metrics declares, with cached children."""
    counter = Counter(names.OPERATIONS_FAMILY, "floor", names.OPERATION_LABELS, registry=registry)
    histogram = Histogram(names.OPERATION_DURATION, "floor", names.DURATION_LABELS,
                          buckets=names.DEFAULT_BUCKETS, registry=registry)
    gauge = Gauge(names.OPERATIONS_ACTIVE, "floor", names.ACTIVE_LABELS, registry=registry,
                  multiprocess_mode="livesum")
    return (
        counter.labels(SERVICE, VERSION, METHOD, TOOL, STATUS),
        histogram.labels(SERVICE, VERSION, METHOD, TOOL),
        gauge.labels(SERVICE, VERSION),
    )


def run(*, iterations: int = 50_000, repeats: int = 21, quick: bool = False) -> Result:
    """Time `iterations` operations per side, `repeats` times, interleaved.

    Repeats alternate which side goes first (ours, floor, floor, ours, ...) so a
    slow patch of the machine hits both. Returns ns per operation.
    """
    if quick:
        iterations, repeats = min(iterations, 2_000), min(repeats, 3)
    if iterations < 1 or repeats < 1:
        raise ValueError("iterations and repeats must be at least 1")

    ours_registry, floor_registry = CollectorRegistry(), CollectorRegistry()
    rec = Recorder(SERVICE, VERSION, registry=ours_registry)
    floor = _floor_children(floor_registry)

    counted_before = recorded(rec, METHOD, TOOL, STATUS)
    # Warm-up: fills the recorder's child cache and both code paths.
    warmup = min(iterations, 1_000)
    _time_ours(rec, warmup)
    _time_floor(*floor, warmup)

    ours_ns: list[float] = []
    floor_ns: list[float] = []
    for i in range(repeats):
        if i % 2 == 0:
            o = _time_ours(rec, iterations)
            f = _time_floor(*floor, iterations)
        else:
            f = _time_floor(*floor, iterations)
            o = _time_ours(rec, iterations)
        ours_ns.append(o / iterations)
        floor_ns.append(f / iterations)

    # The recorder really counted every operation timed (and the warm-up).
    counted = recorded(rec, METHOD, TOOL, STATUS) - counted_before
    expected = warmup + iterations * repeats
    if counted != expected:
        raise AssertionError(f"the recorder counted {counted} operations, expected {expected}")
    if ours_registry.get_sample_value(names.OPERATIONS_TOTAL, {
        "service": SERVICE, "version": VERSION, "method": METHOD, "tool": TOOL, "status": STATUS,
    }) != counted:
        raise AssertionError("the recorder's series are missing from the registry it was given")
    notes: list[str] = []

    return paired_result(
        name="recorder",
        title="Recorder.begin() + end() vs prometheus-client primitives (cached children)",
        unit="ns/op",
        ours_label="Recorder",
        base_label="floor",
        ours_rounds=ours_ns,
        base_rounds=floor_ns,
        limit=GOAL,
        per_round=iterations,
        params={"iterations": iterations, "repeats": repeats},
        notes=notes,
    )


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv[1:]).report())

"""30 days of realistic history for the demo services, backfilled into Prometheus.

Traffic follows the day (low at 04:00 UTC, high at 16:00) and the week (quieter
weekends); past incidents of different burn rates are written in; the canary
(v2) starts two hours before now. Counts are drawn per step (Poisson traffic,
binomial errors, multinomial latency buckets from a log-normal), accumulated
into counters and written as OpenMetrics for `promtool tsdb
create-blocks-from openmetrics`.

The live exporters are then seeded with the final counter values
(`seed_registry`), so backfilled and live series join without a reset or jump.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from collector import names
from collector.metrics import families
from demo.processes import find_binary
from demo.scenario import Scenario

DAY = 86400.0


WEEKEND = 0.45  # the weekend's traffic relative to the weekdays'
WEEKEND_RAMP = 4 * 3600.0  # the traffic eases into and out of the weekend over these hours around midnight


def traffic_profile(ts: np.ndarray) -> np.ndarray:
    """Relative traffic at unix times `ts`: 0.25 at 04:00 UTC up to 1.0 at 16:00; weekends
    x0.45, eased in and out linearly over 4 hours around midnight (no cliff at 00:00 UTC)."""
    hour = (ts % DAY) / 3600.0
    daily = 0.25 + 0.75 * 0.5 * (1 - np.cos(2 * np.pi * (hour - 4) / 24))
    # the share of the weekend in the RAMP around each instant (a step, averaged over the ramp)
    lo, hi = ts - WEEKEND_RAMP / 2, ts + WEEKEND_RAMP / 2
    at_lo, at_hi = _is_weekend(lo), _is_weekend(hi)
    midnight = np.floor(hi / DAY) * DAY  # the day boundary between lo and hi, where they differ
    entering = (hi - midnight) / WEEKEND_RAMP
    share = np.where(at_lo == at_hi, at_lo, np.where(at_hi, entering, 1 - entering))
    return daily * (1 - (1 - WEEKEND) * share)


def _is_weekend(ts: np.ndarray) -> np.ndarray:
    weekday = ((ts // DAY).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday: 0 = Monday
    return (weekday >= 5).astype(float)


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


@dataclass
class History:
    """Cumulative series (and the in-flight gauge) on a common time grid; `final` holds each
    series' last value."""

    timestamps: np.ndarray
    # (metric sample name, labels as a tuple of pairs) -> (first step index, cumulative values)
    series: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[int, np.ndarray]] = field(default_factory=dict)

    @property
    def final(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {key: float(values[-1]) for key, (_, values) in self.series.items()}


def generate(
    scenario: Scenario,
    *,
    end: float,
    days: float = 30.0,
    step: float = 120.0,
    rates: Mapping[str, float],
    buckets: Sequence[float] = names.DEFAULT_BUCKETS,
    seed: int = 0,
    progress: Callable[[str], None] = lambda _msg: None,
) -> History:
    """Draw the history of every service and version from `end - days` to `end`.

    `rates` are each service's calls per second at `end`; the rest of the
    history follows `traffic_profile` around them (but for the scenario's `steady`
    services, flat), so live traffic picks up
    where the history stops. Calls and errors per step are the expected
    numbers, rounded with the remainder carried to the next step: no sampling
    noise, so the history's error ratio over any window is exactly what the
    scenario says (live traffic is random). Latencies are drawn.
    """
    rng = np.random.default_rng(seed)
    ts = end - step * np.arange(int(days * DAY / step) - 1, -1, -1)
    history = History(timestamps=ts)
    profile = traffic_profile(ts) / traffic_profile(np.array([end]))[0]
    canary_from = int(np.searchsorted(ts, end - scenario.canary_age)) if scenario.canary else 0
    bounds = np.asarray(buckets, dtype=float)
    for service, versions in scenario.versions.items():
        progress(f"history: drawing {days:g} days of {service}")
        curve = np.ones(len(ts)) if service in scenario.steady else profile
        for version, behaviour in versions.items():
            is_canary = version == scenario.canary
            first = canary_from if is_canary else 0
            busy = np.zeros(len(ts) - first)  # seconds spent in calls per step, all tools
            share = np.full(len(ts), scenario.split.get(version, 0.0))
            if scenario.canary and not is_canary:  # before the canary exists the others share all traffic
                share[:canary_from] = scenario.split.get(version, 0.0) / (1 - scenario.split[scenario.canary])
            for tool, mix in scenario.tools[service].items():
                tb = behaviour.for_tool(tool)
                error_ratio = np.full(len(ts), tb.error_ratio)
                median = np.full(len(ts), tb.median)
                for inc in scenario.incidents_for(service, version):
                    during = (ts >= end + inc.start) & (ts < end + inc.start + inc.duration)
                    if inc.error_ratio is not None:
                        error_ratio[during] = inc.error_ratio
                    median[during] *= inc.latency_factor
                sl = slice(first, None)
                calls = _carried(rates[service] * curve[sl] * share[sl] * mix * step)
                errors = _carried(calls * error_ratio[sl])
                cdf = _normal_cdf((np.log(bounds)[None, :] - np.log(median[sl])[:, None]) / tb.sigma)
                probs = np.diff(np.concatenate([np.zeros((len(cdf), 1)), cdf, np.ones((len(cdf), 1))], axis=1), axis=1)
                per_bucket = rng.multinomial(calls, np.clip(probs, 0, None))
                seconds = calls * median[sl] * math.exp(tb.sigma**2 / 2)

                base = (("service", service), ("version", version), ("method", "tools/call"), ("tool", tool))
                history.series[names.OPERATIONS_TOTAL, base + (("status", names.SUCCESS),)] = (
                    first, np.cumsum(calls - errors))
                history.series[names.OPERATIONS_TOTAL, base + (("status", names.ERROR),)] = (first, np.cumsum(errors))
                cumulative_buckets = np.cumsum(np.cumsum(per_bucket, axis=1), axis=0)
                for i, bound in enumerate([*map(_le, bounds), "+Inf"]):
                    history.series[f"{names.OPERATION_DURATION}_bucket", base + (("le", bound),)] = (
                        first, cumulative_buckets[:, i])
                history.series[f"{names.OPERATION_DURATION}_count", base] = (first, np.cumsum(calls))
                history.series[f"{names.OPERATION_DURATION}_sum", base] = (first, np.cumsum(seconds))
                busy += seconds
            # operations in flight when scraped: on average the seconds spent per second
            # (Little's law), drawn as a count
            history.series[names.OPERATIONS_ACTIVE, (("service", service), ("version", version))] = (
                first, rng.poisson(busy / step).astype(np.int64))
            if first > 0:
                _start_at_zero(history, service, version, first)
    return history


def _start_at_zero(history: History, service: str, version: str, first: int) -> None:
    """A version that starts within the history (the canary) was scraped at 0 a step before
    its first calls, as a new exporter is. Without that sample, rate() and increase() near
    its start extrapolate each series from its first count, differently per bucket (and the
    canary judge saw false regressions in the judged past)."""
    for key, (start, values) in list(history.series.items()):
        labels = dict(key[1])
        if start == first and labels["service"] == service and labels["version"] == version:
            history.series[key] = (first - 1, np.concatenate([np.zeros(1, dtype=values.dtype), values]))


def _carried(expected: np.ndarray) -> np.ndarray:
    """Whole counts per step whose running total stays within 0.5 of the expected one."""
    return np.diff(np.floor(np.cumsum(expected) + 0.5), prepend=0).astype(np.int64)


def _le(bound: float) -> str:
    # prometheus-client writes bucket bounds as floats ("1.0"); match it so live
    # and backfilled buckets are the same series.
    return repr(float(bound))


_FAMILIES = (
    (names.OPERATIONS_FAMILY, "counter", (names.OPERATIONS_TOTAL,)),
    (names.OPERATIONS_ACTIVE, "gauge", (names.OPERATIONS_ACTIVE,)),
    (names.OPERATION_DURATION, "histogram", tuple(f"{names.OPERATION_DURATION}_{s}" for s in ("bucket", "count", "sum"))),
)


def write_openmetrics(history: History, path: Path, targets: Mapping[tuple[str, str], Mapping[str, str]],
                      progress: Callable[[str], None] = lambda _msg: None) -> int:
    """Write `history` as OpenMetrics text, one series after another; returns the number of samples.

    `targets` gives each (service, version) the labels Prometheus adds when it
    scrapes that exporter (job, instance), so backfilled and live samples are
    the same series.
    """
    written = 0
    stamps = [f"{t:.3f}" for t in history.timestamps]
    with open(path, "w") as out:
        for family, kind, sample_names in _FAMILIES:
            out.write(f"# TYPE {family} {kind}\n")
            for (name, labels), (first, values) in history.series.items():
                if name not in sample_names:
                    continue
                d = dict(labels)
                scraped = targets[d["service"], d["version"]].items()
                head = name + "{" + ",".join(f'{k}="{v}"' for k, v in (*labels, *scraped)) + "} "
                fmt = "{:.6f}" if name.endswith("_sum") else "{:.0f}"
                out.write("".join(f"{head}{fmt.format(v)} {t}\n" for v, t in zip(values, stamps[first:])))
                written += len(values)
            progress(f"history: wrote {written:,} samples")
        out.write("# EOF\n")
    return written


def backfill(openmetrics: Path, data_dir: Path) -> None:
    """Turn the OpenMetrics file into TSDB blocks in Prometheus's data directory."""
    Backfill(openmetrics, data_dir).wait()


class Backfill:
    """A running `promtool tsdb create-blocks-from openmetrics`; several can run at once
    into one data directory (Prometheus merges blocks that overlap in time)."""

    def __init__(self, openmetrics: Path, data_dir: Path):
        self.openmetrics = openmetrics
        data_dir.mkdir(parents=True, exist_ok=True)
        # 168h blocks: promtool's default 2h blocks make a 30-day backfill ~50x slower.
        self._process = subprocess.Popen(
            [find_binary("promtool"), "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=168h",
             str(openmetrics), str(data_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )

    def wait(self) -> None:
        """Wait for promtool; RuntimeError with its last words when it failed."""
        _, stderr = self._process.communicate()
        if self._process.returncode != 0:
            raise RuntimeError(f"promtool could not backfill {self.openmetrics}:\n{stderr[-2000:]}")


def seed_registry(registry: CollectorRegistry, history: History, service: str, version: str) -> None:
    """Start the live counters of (service, version) where the history ends."""
    fams = families(registry)
    final = history.final
    for (name, labels), value in final.items():
        d = dict(labels)
        if d["service"] != service or d["version"] != version:
            continue
        if name == names.OPERATIONS_TOTAL:
            fams.operations.labels(service, version, d["method"], d["tool"], d["status"]).inc(value)
        elif name == f"{names.OPERATION_DURATION}_count":
            child = fams.duration.labels(service, version, d["method"], d["tool"])
            base = tuple(labels)
            # Histogram children hold per-bucket (not cumulative) counts; there
            # is no public API to add many observations at once.
            previous = 0.0
            for i, bound in enumerate([*map(_le, fams.buckets), "+Inf"]):
                cumulative = final[f"{names.OPERATION_DURATION}_bucket", base + (("le", bound),)]
                child._buckets[i].inc(cumulative - previous)
                previous = cumulative
            child._sum.inc(final[f"{names.OPERATION_DURATION}_sum", base])

"""What the canary judge is asked, from Prometheus, for every service at once.

Per service: the versions with tools/call traffic over the spec's `max_lookback`; the
baseline (the spec's `canary.baseline` when that version has traffic, else the version
with the most); every other version with traffic is a canary. Each canary is compared
with the baseline over the canary's life (its first sample, rounded up to a grid of
windows and bounded by `max_lookback`), so both versions are counted over the same
period. Queries: the versions' ages, their traffic over the lookback, then two per
distinct window (requests by status, duration buckets), each covering every service.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from collector import durations, names
from slo import promql
from slo.query import Querier, Sample
from slo.canary.judge import Comparison, Counts
from slo.plan import Plan
from slo.spec import Spec

# Analysis windows are rounded up to one of these (seconds), so services share queries.
WINDOW_GRID = (300, 600, 900, 1800, 3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400)
PAGE_BURN = 14.4  # the fastest page tier's burn rate: a canary burning this fast is rolled back
AGE_STEPS = 288  # resolution of the age query: the lookback in this many steps


@dataclass(frozen=True)
class Pair:
    service: str
    baseline: str
    canary: str
    window: int  # seconds
    age: float  # seconds since the canary's first sample (at the age query's resolution)


def _by(samples: Iterable[Sample], *labels: str) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for s in samples:
        if math.isfinite(s.value):
            key = tuple(s.labels.get(k, "") for k in labels)
            out[key] = out.get(key, 0.0) + s.value
    return out


def window_for(age: float, lookback: float) -> int:
    """The analysis window: the canary's age rounded up to the grid, at most the lookback."""
    for w in WINDOW_GRID:
        if w >= age:
            return int(min(w, lookback))
    return int(lookback)


def pairs(spec: Spec, ages: list[Sample], traffic: list[Sample],
          baselines: Mapping[str, str] | None = None) -> list[Pair]:
    """Baseline and canaries per service, from the versions' ages and request counts;
    `baselines` (service -> version) overrides the spec's."""
    age = _by(ages, "service", "version")
    requests = _by([s for s in traffic if s.labels.get("status") != names.CANCELLED], "service", "version")
    by_service: dict[str, dict[str, float]] = {}
    for (service, version), n in requests.items():
        if n > 0 and service:
            by_service.setdefault(service, {})[version] = n
    out = []
    for service, versions in sorted(by_service.items()):
        if len(versions) < 2:
            continue
        settings = spec.canary_for(service)
        wanted = (baselines or {}).get(service) or settings.baseline
        baseline = wanted if wanted in versions else max(versions, key=lambda v: (versions[v], v))
        lookback = durations.parse(settings.max_lookback)
        for canary in sorted(v for v in versions if v != baseline):
            canary_age = age.get((service, canary), lookback)
            out.append(Pair(service, baseline, canary, window_for(canary_age, lookback), canary_age))
    return out


def counts(status: dict, buckets: dict, service: str, version: str, tool: str | None = None) -> Counts:
    """One version's counts (one tool's, or all tools') from the window's query results."""
    def match(key: tuple[str, ...]) -> bool:
        return key[0] == service and key[1] == version and (tool is None or key[2] == tool)

    by_status: dict[str, float] = {}
    for key, n in status.items():
        if match(key):
            by_status[key[3]] = by_status.get(key[3], 0.0) + n
    cumulative: dict[float, float] = {}
    for key, n in buckets.items():
        if match(key):
            try:
                bound = float(key[3])
            except ValueError:
                continue
            cumulative[bound] = cumulative.get(bound, 0.0) + n
    requests = sum(n for st, n in by_status.items() if st != names.CANCELLED)
    errors = by_status.get(names.ERROR, 0.0) + by_status.get(names.TIMEOUT, 0.0)
    return Counts(requests=requests, errors=errors, buckets=tuple(sorted(cumulative.items())))


def find_pairs(backend: Querier, spec: Spec, at: float, baselines: Mapping[str, str] | None = None) -> list[Pair]:
    """Every canary of every service at `at`, with its baseline, age and window (two queries)."""
    longest = max(durations.parse(spec.canary_for(s).max_lookback) for s in {*spec.services, ""})
    ages = backend.query(promql.version_first_seen(longest, max(60.0, longest / AGE_STEPS), spec.metrics), at)
    traffic = backend.query(promql.version_status_counts(longest, spec.metrics), at)
    return pairs(spec, ages, traffic, baselines)


def comparisons(backend: Querier, planned: Plan, at: float,
                baselines: Mapping[str, str] | None = None) -> list[tuple[Pair, Comparison]]:
    """Every canary of every service, ready for the judge, with its analysis window."""
    spec = planned.spec
    found = find_pairs(backend, spec, at, baselines)
    results: dict[int, tuple[dict, dict]] = {}
    for window in sorted({p.window for p in found}):
        results[window] = (
            _by(backend.query(promql.version_status_counts(window, spec.metrics), at),
                "service", "version", "tool", "status"),
            _by(backend.query(promql.version_bucket_counts(window, spec.metrics), at), "service", "version", "tool", "le"))
    out = []
    for p in found:
        status, buckets = results[p.window]
        settings = spec.canary_for(p.service)
        tools = sorted({key[2] for key in status if key[0] == p.service and key[1] in (p.baseline, p.canary)})
        overall = (counts(status, buckets, p.service, p.baseline), counts(status, buckets, p.service, p.canary))
        objectives = planned.objectives_for(p.service)
        latency = next((o.threshold for o in objectives if o.kind == "latency"), None)
        availability = next((o for o in objectives if o.kind == "availability"), None)
        canary = overall[1]
        burning = bool(availability and canary.requests >= spec.alerting.min_events
                       and canary.errors / canary.requests > PAGE_BURN * availability.error_budget)
        out.append((p, Comparison(
            service=p.service, baseline=p.baseline, canary=p.canary, overall=overall,
            tools={t: (counts(status, buckets, p.service, p.baseline, t), counts(status, buckets, p.service, p.canary, t))
                   for t in tools},
            latency_threshold=latency, canary_page_burn=burning, min_requests=settings.min_requests,
            alpha=settings.alpha, error_regression=settings.error_regression,
            latency_regression=settings.latency_regression)))
    return out

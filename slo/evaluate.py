"""One evaluation of every SLO of every service: what the engine does on each tick.

`evaluate(backend, plan, at)` asks Prometheus a fixed handful of questions, whatever the
number of services (every query covers all of them; all PromQL comes from slo.promql).
The plan (slo.plan) is the spec resolved once: a tick only combines it with the services
Prometheus has, it never goes back to the spec.

1. discovery: which services, versions and tools have MCP series;
2. the SLI rates of every window: the recording rules' series in one query when
   Prometheus has them, otherwise one raw query per window missing from them;
3. the per-tool breakdown: request rates by status and duration buckets (5m).

Everything else is arithmetic here (`assess`), on plain numbers, so tests can check it
without Prometheus. A number that cannot be known (no traffic, NaN) is None, never 0 or
100%: an SLO without valid events in its window is `no_data`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from slo import promql
from slo.query import Querier, Sample
from slo.plan import Plan, ScaledTier
# the statuses are defined with the results; importers of slo.evaluate find them here too
from slo.results import (CRITICAL, EXHAUSTED, NO_DATA, OK, STATUSES, WARNING, AlertState, SLOResult,  # noqa: F401
                         ToolTraffic)
from slo.spec import Objective

STATUS_CODES = {OK: 0, WARNING: 1, CRITICAL: 2, EXHAUSTED: 3, NO_DATA: 4}  # mcp_slo_status's value

TOOL_WINDOW = 300  # the per-tool breakdown's window
QUANTILES = (0.5, 0.9, 0.99)
EXHAUSTION_WINDOW = 3600  # time to exhaustion assumes the burn rate of the last hour goes on

Key = tuple[str, str, str]  # (service, tool or "", slo)
Rates = dict[Key, dict[int, tuple[float | None, float | None]]]  # window -> (valid, bad) events per second


class TickTimeout(Exception):
    """The tick ran out of time; nothing of it is kept."""


@dataclass
class Evaluation:
    evaluated_at: float
    slos: list[SLOResult]
    tools: list[ToolTraffic]
    meta: dict = field(default_factory=dict)


# --- what to evaluate ---------------------------------------------------------------------


@dataclass(frozen=True)
class Instance:
    """One SLO of one service (or of one tool of it)."""

    service: str
    tool: str  # "" for the service as a whole
    objective: Objective

    @property
    def key(self) -> Key:
        return (self.service, self.tool, self.objective.name)


def instances(plan: Plan, discovered: Iterable[str]) -> list[Instance]:
    """The defaults for every discovered service, the spec's services (discovered or not:
    a service the spec names and Prometheus lacks is `no_data`), and per-tool objectives."""
    out = []
    for service in sorted(set(discovered) | set(plan.services)):
        out += [Instance(service, "", o) for o in plan.objectives_for(service)]
        for tool, objectives in plan.tool_objectives.get(service, {}).items():
            out += [Instance(service, tool, o) for o in objectives]
    return out


# --- the arithmetic -----------------------------------------------------------------------


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def error_ratio(valid: float | None, bad: float | None) -> float | None:
    """bad / valid; None without valid events (never an invented 0 or 100%)."""
    valid, bad = _finite(valid), _finite(bad)
    if valid is None or valid <= 0:
        return None
    return min(max((bad or 0.0) / valid, 0.0), 1.0)  # a counter reset can make a rate briefly negative


def assess(instance: Instance, windows: Mapping[int, tuple[float | None, float | None]], tiers: list[ScaledTier],
           min_events: int, versions: Iterable[str] = ()) -> SLOResult:
    """The result of one SLO from its (valid, bad) rates per window (seconds)."""
    o = instance.objective
    w = int(o.window_seconds)
    budget = o.error_budget
    ratios = {s: error_ratio(*windows.get(s, (None, None))) for s in sorted(windows)}
    burn = {s: (r / budget if r is not None else None) for s, r in ratios.items()}
    valid_rate, bad_rate = (_finite(v) for v in windows.get(w, (None, None)))
    ratio = ratios.get(w)

    events = valid_rate * w if valid_rate is not None else None
    bad_events = (bad_rate or 0.0) * w if valid_rate is not None else None
    remaining = 1 - ratio / budget if ratio is not None else None
    allowed = budget * events if events is not None else None

    def events_in(seconds: int) -> float:
        rate = _finite(windows.get(seconds, (None, None))[0])
        return rate * seconds if rate is not None else 0.0

    alerts = []
    for st in tiers:
        long_, short = burn.get(st.long_window), burn.get(st.short_window)
        enough = events_in(st.long_window) >= min_events
        firing = long_ is not None and short is not None and long_ > st.tier.burn_rate and short > st.tier.burn_rate
        alerts.append(AlertState(tier=st.tier.name, severity=st.tier.severity, burn_rate_threshold=st.tier.burn_rate,
                                 long_window=promql.duration(st.long_window),
                                 short_window=promql.duration(st.short_window),
                                 firing=bool(firing and enough), low_traffic=bool(firing and not enough)))

    if ratio is None:
        status = NO_DATA
    elif any(a.firing and a.severity == "page" for a in alerts):
        status = CRITICAL
    elif remaining is not None and remaining <= 0 and (events or 0) >= min_events:
        status = EXHAUSTED
    elif any(a.firing for a in alerts):
        status = WARNING
    else:
        status = OK

    # At the last hour's burn rate b the budget goes at b / window per second.
    current = burn.get(EXHAUSTION_WINDOW)
    if remaining is None or current is None:
        exhaustion = None
    elif remaining <= 0:
        exhaustion = 0.0
    else:
        exhaustion = remaining * w / current if current > 0 else None  # None: never, at this rate

    return SLOResult(
        service=instance.service,
        tool=instance.tool or None,
        slo=o.name,
        kind=o.kind,
        description=o.description,
        objective=o.objective,
        window=promql.duration(w),
        threshold=o.threshold,
        sli=1 - ratio if ratio is not None else None,
        error_budget_remaining=remaining,
        error_budget_consumed=1 - remaining if remaining is not None else None,
        events=events,
        bad_events=bad_events,
        error_budget_events=allowed,
        error_budget_events_remaining=allowed - bad_events if allowed is not None else None,
        sli_windows={promql.duration(s): (1 - r if r is not None else None) for s, r in ratios.items()},
        burn_rates={promql.duration(s): b for s, b in burn.items()},
        alerts=tuple(alerts),
        status=status,
        time_to_exhaustion_seconds=exhaustion,
        versions=tuple(versions),
    )


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus's histogram_quantile on (upper bound, cumulative rate) pairs: linear
    interpolation within the bucket; an estimate, as good as the buckets."""
    buckets = sorted(b for b in buckets if not math.isnan(b[1]))
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # in the +Inf bucket: the highest finite bound, as Prometheus does
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def tool_rows(status_rates: list[Sample], bucket_rates: list[Sample]) -> list[ToolTraffic]:
    """Per (service, tool): requests per second, error ratio and latency quantiles."""
    rows: dict[tuple[str, str], dict] = {}
    for s in status_rates:
        key = (s.labels.get("service", ""), s.labels.get("tool", ""))
        row = rows.setdefault(key, {"by_status": {}})
        row["by_status"][s.labels.get("status", "")] = _finite(s.value) or 0.0
    buckets: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for s in bucket_rates:
        try:
            bound = float(s.labels.get("le", "nan"))
        except ValueError:
            continue
        buckets.setdefault((s.labels.get("service", ""), s.labels.get("tool", "")), []).append((bound, s.value))
    out = []
    for (service, tool), row in sorted(rows.items()):
        by_status = row["by_status"]
        valid = sum(v for st, v in by_status.items() if st != "cancelled")
        bad = by_status.get("error", 0.0) + by_status.get("timeout", 0.0)
        quantiles = {f"p{round(q * 100)}": histogram_quantile(q, buckets.get((service, tool), [])) for q in QUANTILES}
        out.append(ToolTraffic(service=service, tool=tool, window=promql.duration(TOOL_WINDOW),
                               rate=sum(by_status.values()), by_status=by_status, error_ratio=error_ratio(valid, bad),
                               latency_seconds=quantiles))
    return out


# --- talking to Prometheus ----------------------------------------------------------------


def _key(labels: Mapping[str, str]) -> Key:
    return (labels.get("service", ""), labels.get("tool", ""), labels.get("slo", ""))


def read_recorded(samples: list[Sample], windows: Iterable[int]) -> Rates:
    by_name = {promql.recorded(n, w): (n, w) for n in (promql.SLI_TOTAL, promql.SLI_BAD) for w in windows}
    rates: Rates = {}
    for s in samples:
        found = by_name.get(s.labels.get("__name__", ""))
        if found is None:
            continue
        name, w = found
        valid, bad = rates.setdefault(_key(s.labels), {}).get(w, (None, None))
        if name == promql.SLI_TOTAL:
            valid = s.value
        else:
            bad = s.value
        rates[_key(s.labels)][w] = (valid, bad)
    return rates


def read_raw(samples: list[Sample], window: int, rates: Rates) -> None:
    """Fold a raw_slis result (event counts of the parts total, bad or good) into `rates`."""
    parts: dict[Key, dict[str, float]] = {}
    for s in samples:
        parts.setdefault(_key(s.labels), {})[s.labels.get("part", "")] = s.value / window
    for key, p in parts.items():
        valid = p.get("total")
        if "good" in p:
            bad = valid - p["good"] if valid is not None else None
        else:
            bad = p.get("bad", 0.0 if valid is not None else None)
        rates.setdefault(key, {})[window] = (valid, bad)


class Deadline:
    def __init__(self, seconds: float | None):
        self.end = time.monotonic() + seconds if seconds else math.inf

    def check(self, what: str) -> None:
        if time.monotonic() > self.end:
            raise TickTimeout(f"the tick ran out of time before {what}")


def evaluate(backend: Querier, plan: Plan, at: float | None = None, *, deadline: float | None = None,
             now: Callable[[], float] = time.time) -> Evaluation:
    """Evaluate every SLO of `plan` (slo.plan.plan(spec)) at time `at` (default now); raises
    slo.engine.backend.BackendError or TickTimeout, never returns half a tick."""
    started = time.monotonic()
    at = now() if at is None else at
    limit = Deadline(deadline)
    queries_before = backend.queries

    limit.check("discovery")
    found = backend.query(promql.discovery(plan.schema), at)
    services: dict[str, set[str]] = {}
    for s in found:
        if s.labels.get("service"):
            services.setdefault(s.labels["service"], set()).add(s.labels.get("version", ""))
    todo = instances(plan, services)

    windows = sorted(set(plan.windows) | {EXHAUSTION_WINDOW})  # the plan's windows include every objective's
    limit.check("the recorded SLIs")
    rates = read_recorded(backend.query(promql.recorded_slis(windows), at), windows)
    # A long window's recorded rate averages what the rules recorded so far: trust it only
    # once the rules have covered the window (an hour's slack), else ask the raw counters.
    hours = backend.query(promql.recorded_hours(max(windows)), at)
    covered = max((s.value for s in hours if math.isfinite(s.value)), default=0.0) * 3600 + 3600
    for per in rates.values():
        for w in [w for w in per if w > promql.LONGEST_RAW_WINDOW and w > covered]:
            del per[w]
    have = {w for per in rates.values() for w in per}
    missing = [w for w in windows if w not in have]
    for w in missing:  # no recording rules for this window (yet): the raw counters
        limit.check(f"the raw {promql.duration(w)} SLIs")
        read_raw(backend.query(promql.raw_slis(plan.slis, w), at), w, rates)

    results = []
    for i in todo:
        tiers = plan.tiers[int(i.objective.window_seconds)]
        results.append(assess(i, rates.get(i.key, {}), tiers, plan.spec.alerting.min_events,
                              versions=sorted(services.get(i.service, ()))))

    limit.check("the per-tool breakdown")
    tools = tool_rows(backend.query(promql.tool_status_rates(TOOL_WINDOW, schema=plan.schema), at),
                      backend.query(promql.tool_bucket_rates(TOOL_WINDOW, schema=plan.schema), at))
    meta = {"duration_seconds": time.monotonic() - started, "queries": backend.queries - queries_before,
            "services": len(services), "slos": len(results),
            "raw_windows": [promql.duration(w) for w in missing],
            "source": "recording rules" if not missing else ("raw" if len(missing) == len(windows) else "mixed")}
    return Evaluation(evaluated_at=at, slos=results, tools=tools, meta=meta)

"""One evaluation of every SLO of every service: what the engine does on each tick.

`evaluate(backend, plan, at)` asks Prometheus a fixed handful of questions, whatever the
number of services (every query covers all of them; all PromQL comes from slo.promql).
The plan (slo.plan) is the spec resolved once: a tick only combines it with the services
Prometheus has, it never goes back to the spec.

1. discovery: which services, versions and tools have MCP series;
2. the SLI rates of every window: the recording rules' series in one query when
   Prometheus has them, otherwise one raw query per window missing from them;
3. with `exclude` maintenance windows in a window of an SLO series: that window from the
   raw counters, and the events of each window's interval, taken out (slo.exclusion);
4. the per-tool breakdown: request rates by status and duration buckets (5m).

Everything else is arithmetic here (`assess`), on plain numbers, so tests can check it
without Prometheus. A number that cannot be known (no traffic, NaN) is None, never 0 or
100%: an SLO without valid events in its window is `no_data`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from slo import exclusion, promql
from slo.exclusion import Excluded
from slo.maintenance import Window, active
from slo.query import Querier, Sample
from slo.plan import Plan, ScaledTier
# the statuses are defined with the results; importers of slo.evaluate find them here too
from slo.results import (CRITICAL, EXHAUSTED, NO_DATA, OK, STATUSES, WARNING, AlertState, SLOResult,  # noqa: F401
                         ToolTraffic)
from slo.significance import wilson_lower
from slo.spec import Objective

log = logging.getLogger(__name__)

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


def significant(valid: float | None, bad: float | None, window: int, threshold: float, z: float) -> bool:
    """The significance guard of a tier (slo.significance, as promql.significant_burn): the
    Wilson lower bound of the error ratio of the window's events is over `threshold`."""
    ratio = error_ratio(valid, bad)
    if ratio is None:
        return False
    return wilson_lower(ratio, valid * window, z) > threshold


def assess(instance: Instance, windows: Mapping[int, tuple[float | None, float | None]], tiers: list[ScaledTier],
           min_events: int, versions: Iterable[str] = (), *, z: float | None = None, silenced: bool = False,
           excluded: Excluded = exclusion.NOTHING) -> SLOResult:
    """The result of one SLO from its (valid, bad) rates per window (seconds), what the
    exclude windows took out of them over the SLO window (`excluded`, for the record).

    Its alert states follow the generated rules (promql.burn_alert): the tiers as the SLO's
    alert settings have them (a tier it turns off is absent; alerts off: none), the low-traffic
    guard (`min_events`), the significance guard (`z`, None: off) and, with `silenced`, a
    maintenance window on now that holds every alert of the SLO back."""
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
        tier = o.alert_tier(st.tier)  # the SLO's own severity and `for`; None: off for this SLO
        if tier is None:
            continue
        long_, short = burn.get(st.long_window), burn.get(st.short_window)
        over = long_ is not None and short is not None and long_ > tier.burn_rate and short > tier.burn_rate
        enough = events_in(st.long_window) >= min_events
        sure = z is None or significant(*windows.get(st.long_window, (None, None)), st.long_window,
                                        tier.burn_rate * budget, z)
        alerts.append(AlertState(tier=tier.name, severity=tier.severity, burn_rate_threshold=tier.burn_rate,
                                 long_window=promql.duration(st.long_window),
                                 short_window=promql.duration(st.short_window),
                                 firing=bool(over and enough and sure and not silenced),
                                 low_traffic=bool(over and not enough), for_=tier.for_,
                                 insignificant=bool(over and not sure), silenced=silenced))

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
        excluded_seconds=excluded.seconds,
        excluded_events=excluded.events,
        excluded_bad_events=excluded.bad_events,
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


def raw_counts(samples: list[Sample]) -> dict[Key, tuple[float | None, float | None]]:
    """(valid, bad) events per SLO series of a raw_slis result (counts of the parts total,
    bad or good)."""
    parts: dict[Key, dict[str, float]] = {}
    for s in samples:
        parts.setdefault(_key(s.labels), {})[s.labels.get("part", "")] = s.value
    out = {}
    for key, p in parts.items():
        valid = p.get("total")
        if "good" in p:
            bad = valid - p["good"] if valid is not None else None
        else:
            bad = p.get("bad", 0.0 if valid is not None else None)
        out[key] = (valid, bad)
    return out


def _per_second(counts: tuple[float | None, float | None], window: int) -> tuple[float | None, float | None]:
    return tuple(c / window if c is not None else None for c in counts)


def read_raw(samples: list[Sample], window: int, rates: Rates) -> None:
    """Fold a raw_slis result (event counts of the parts total, bad or good) into `rates`."""
    for key, counts in raw_counts(samples).items():
        rates.setdefault(key, {})[window] = _per_second(counts, window)


class Deadline:
    def __init__(self, seconds: float | None):
        self.end = time.monotonic() + seconds if seconds else math.inf

    def check(self, what: str) -> None:
        if time.monotonic() > self.end:
            raise TickTimeout(f"the tick ran out of time before {what}")


def _exclude(backend: Querier, plan: Plan, todo: list[Instance], maintenance: Sequence[Window], windows: list[int],
             raw_already: list[int], rates: Rates, at: float, limit: Deadline,
             cache: exclusion.Cache | None) -> tuple[dict, dict]:
    """Take the exclude windows' events out of `rates` (slo.exclusion): returns what was taken
    out per series and window, and the tick's meta about it."""
    found, left_in = exclusion.cuts(maintenance, [i.key for i in todo], windows, at)
    slis = {k: sli for k in found if (sli := exclusion.series_sli(plan.slis, k)) is not None}
    found = {k: per for k, per in found.items() if k in slis}
    if left_in:
        log.warning("%d maintenance intervals are left in the SLOs' numbers: at most %d are taken out per tick",
                    left_in, exclusion.MAX_INTERVALS)
    if not found:  # no exclude window in any window of the tick: the meta says nothing either
        return {}, ({"excluded_intervals": 0, "excluded_intervals_read": 0, "excluded_intervals_left_in": left_in}
                    if left_in else {})

    def read(slis_: list[promql.SLI], seconds: int, when: float) -> dict[Key, tuple[float | None, float | None]]:
        limit.check("the excluded events")
        return raw_counts(backend.query(promql.raw_slis(slis_, seconds), when))

    # the windows an interval falls in, from the raw counters (unless read so already): the
    # recorded rates may have left a window out already
    for w in sorted({w for per in found.values() for w in per} - set(raw_already)):
        keys = [k for k, per in found.items() if w in per]
        counted = read([slis[k] for k in keys], w, at)
        for k in keys:
            rates.setdefault(k, {})[w] = _per_second(counted.get(k, (None, None)), w)
    measured, reads = exclusion.measure(found, slis, read, at, cache)
    meta = {"excluded_intervals": len(measured), "excluded_intervals_read": reads, "excluded_intervals_left_in": left_in}
    return exclusion.subtract(rates, found, measured), meta


def evaluate(backend: Querier, plan: Plan, at: float | None = None, *, deadline: float | None = None,
             now: Callable[[], float] = time.time, maintenance: Sequence[Window] | None = None,
             excluded_cache: exclusion.Cache | None = None) -> Evaluation:
    """Evaluate every SLO of `plan` (slo.plan.plan(spec)) at time `at` (default now); raises
    slo.engine.backend.BackendError or TickTimeout, never returns half a tick.

    `maintenance`: the windows in force (the engine adds its run-time ones); default the
    spec's planned ones. Their `exclude` intervals are left out of the numbers, and a window
    on at `at` holds the alerts of the SLOs it covers back. `excluded_cache`: the counts of
    the intervals over, kept across ticks (slo.exclusion.Cache)."""
    windows_in_force = plan.spec.maintenance if maintenance is None else maintenance
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
    excluded, exclusion_meta = _exclude(backend, plan, todo, windows_in_force, windows, missing, rates, at, limit,
                                        excluded_cache)

    on_now = active(windows_in_force, at)
    results = []
    for i in todo:
        slo_window = int(i.objective.window_seconds)
        results.append(assess(i, rates.get(i.key, {}), plan.tiers[slo_window], plan.spec.alerting.min_events,
                              versions=sorted(services.get(i.service, ())), z=plan.spec.alerting.z,
                              silenced=any(w.covers(i.service, i.objective.name, i.tool) for w in on_now),
                              excluded=excluded.get(i.key, {}).get(slo_window, exclusion.NOTHING)))

    limit.check("the per-tool breakdown")
    tools = tool_rows(backend.query(promql.tool_status_rates(TOOL_WINDOW, schema=plan.schema), at),
                      backend.query(promql.tool_bucket_rates(TOOL_WINDOW, schema=plan.schema), at))
    meta = {"duration_seconds": time.monotonic() - started, "queries": backend.queries - queries_before,
            "services": len(services), "slos": len(results),
            "raw_windows": [promql.duration(w) for w in missing],
            "source": "recording rules" if not missing else ("raw" if len(missing) == len(windows) else "mixed"),
            **exclusion_meta}
    return Evaluation(evaluated_at=at, slos=results, tools=tools, meta=meta)

"""`promtool test rules` suites generated from the SLO spec: the behavioural proof of
the generated rules.

Every objective is checked: each named service's, each per-tool one, and the defaults
on a service the spec never names (which gets them through discovery). Counters and
histograms go in minute by minute, the rules run at a 1-minute evaluation interval, and
each scenario checks the alerts of each objective:

- `outage`: every call bad. No alert before; a page within `page_within` of the start
  (3 minutes for a 99.9% 30d SLO with the Workbook tiers: one minute of errors puts the
  1h error ratio over 14.4 x 0.1%, then `for: 2m`).
- `recovery`: an outage long enough for every page tier to fire, then healthy traffic:
  every page tier fires during it; no page is left `resolve_within` after it ends (the
  longest page short window, 30m, plus 5m).
- `burn-2x`: a sustained 2x burn raises a burn-rate ticket and the budget-exhausted
  ticket (the rules have run for hours only, the window holds little), and a page only
  from a page tier below 2x. Tiers within 5% of the burn a scenario makes (`MARGIN`) are
  neither expected to fire nor not to.
- `burn-0.5x`: a sustained 0.5x burn raises no alert at all.
- `quiet-hour`: one bad call in a quiet hour (fewer calls than `alerting.min_events` in
  the fastest page tier's windows, but few enough that the bad call alone would page
  without the guard: `quiet_hour_control` checks that) raises no page from that tier.
- `significance`: at one call a minute (`QUIET`), a single bad call after a busy hour never
  pages although the fastest page tier's long window holds `min_events` and its ratio is
  over the threshold (`significance_control` checks that rules without the guard page on
  it); and a full outage pages within `page_within` at that traffic (5 minutes at 99.9%).
  The busy side, the Workbook's timings unchanged, is `outage`: the scenarios' traffic is
  `BUSY` calls a minute, where the guard delays no page (tests/test_alert_policy.py).
- `alert-policy`: for objectives whose `alerts` change the spec's, an outage long enough for
  every tier: a tier turned off never fires, a changed one fires with its own severity and
  labels, an objective with its alerts off raises none while its error ratio is recorded.
- `absent-data`: a named service without data raises `MCPSLOAbsentData` after
  `alerting.absent_for`, a ticket, with its annotations.

Each objective's tiers are the spec's as its `alerts` change them (`tiers`); with the
significance guard on, a long window's crossing is where the Wilson lower bound of its error
ratio passes the threshold (`reach`).

For latency objectives a bad call is one slower than the threshold (histogram buckets on
both sides of it are fed), so the same scenarios show that a latency SLO alerts when the
share of slow calls burns its budget. Inputs also carry what the SLIs must ignore:
cancelled calls, and another method that always fails and is always slow.

Inputs are in the names the spec's `metrics:` reads (`auto` reads both: mcp-slo's are used):
mcp-slo's counter and histogram (`mcp_slo_series`), or for `otel` the semantic conventions'
histogram per error.type as an OpenTelemetry SDK's Prometheus exporter scraped by Prometheus
has it, the service in `target_info` only (`otel_series`).

A service's availability and latency objectives share one input (errors feed one, slow
calls the other), and services share a test group, since each group costs promtool a
full evaluation of every rule per minute; objectives that would disturb each other (two
of the same kind on one service, a tool and its service) get their own groups.

Timings are bounds from simple arithmetic on the spec (`page_within`, `resolve_within`,
`fires_within`, `exhausted_within`), never a re-implementation of the rules in Python.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate

from alerts import rules
from collector import durations, names, semconv
from slo import promql, schema, significance
from slo.plan import ScaledTier, plan, scale_tiers
from slo.spec import Objective, ObjectiveAlerts, Spec

MINUTE = 60
WARMUP = 60  # minutes of healthy traffic before each incident
VERSION = "v1"
CANCELLED_SHARE = 1.5  # cancelled calls per call that finished: if they counted as good, 2x would look like 0.8x
NOISE_METHOD = "tools/list"  # always fails, always slow: outside every tools/call SLI
NOISE_PER_MINUTE = 50.0
SCENARIOS = ("outage", "recovery", "burn-2x", "burn-0.5x", "quiet-hour", "significance", "alert-policy", "absent-data")
# maintenance windows in the rules: run for a few specs (tests/test_rules_maintenance.py), not every one
MAINTENANCE_SCENARIOS = ("maintenance-silence", "maintenance-exclude")


# --- what is tested ------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One objective under test."""

    service: str
    objective: Objective
    tool: str | None = None

    @property
    def name(self) -> str:
        who = f"{self.service} tool {self.tool}" if self.tool else self.service
        o = self.objective
        sli = f"latency <= {o.threshold:g}s" if o.kind == "latency" else "availability"
        return f"{who} {o.name} ({sli}, {o.target:g}% over {o.window})"

    @property
    def short_name(self) -> str:
        return " ".join(p for p in (self.service, self.tool, self.objective.name) if p)

    def labels(self) -> dict[str, str]:
        """The labels that identify this objective's alerts (tool="" matches no tool label)."""
        return {"service": self.service, "slo": self.objective.name, "tool": self.tool or ""}


@dataclass
class Subject:
    """Objectives sharing one input: a service (or one of its tools), at most one
    availability and one latency objective."""

    service: str
    tool: str | None
    cases: dict[str, Case] = field(default_factory=dict)  # kind -> case


def discovered_service(spec: Spec) -> str:
    name = "discovered-service"
    while name in spec.services:
        name += "-x"
    return name


def cases(spec: Spec) -> list[Case]:
    p = plan(spec)
    out = []
    for service, objectives in p.service_objectives.items():
        out += [Case(service, o) for o in objectives]
        for tool, tool_objectives in p.tool_objectives[service].items():
            out += [Case(service, o, tool) for o in tool_objectives]
    out += [Case(discovered_service(spec), o) for o in p.default_objectives]
    return out


def packed(spec: Spec) -> list[list[Subject]]:
    """Subjects packed into promtool test groups: a service appears once per group, a subject
    has at most one objective of each kind."""
    subjects: list[Subject] = []
    for case in cases(spec):
        for s in subjects:
            if (s.service, s.tool) == (case.service, case.tool) and case.objective.kind not in s.cases:
                s.cases[case.objective.kind] = case
                break
        else:
            subjects.append(Subject(case.service, case.tool, {case.objective.kind: case}))
    groups: list[list[Subject]] = []
    for s in subjects:
        for g in groups:
            if all(other.service != s.service for other in g):
                g.append(s)
                break
        else:
            groups.append([s])
    return groups


# --- timing bounds -------------------------------------------------------------------------


def _minutes(seconds: float) -> int:
    return int(seconds // MINUTE)


def _for(st: ScaledTier) -> int:
    return math.ceil(durations.parse(st.tier.for_) / MINUTE)


def tiers(spec: Spec, o: Objective, severity: str | None = None) -> list[ScaledTier]:
    """The tiers of `severity` (any: None) that alert for `o`, as its alerts change them."""
    own = [t for tier in spec.alerting.tiers if (t := o.alert_tier(tier)) is not None]
    return [st for st in scale_tiers(own, o.window_seconds) if severity in (None, st.tier.severity)]


@dataclass(frozen=True)
class Guard:
    """The significance guard as a scenario meets it: steady `per_minute` calls, the spec's z
    (None: no guard) and min_events."""

    per_minute: float
    z: float | None
    min_events: int

    @classmethod
    def of(cls, spec: Spec, per_minute: float | None = None) -> Guard:
        return cls(per_minute or calls_per_minute(spec), spec.alerting.z, spec.alerting.min_events)

    def can_fire(self, st: ScaledTier) -> bool:
        """The long window holds min_events."""
        return self.per_minute * _minutes(st.long_window) >= self.min_events


# A tier whose burn rate is within this factor of the burn a scenario makes may fire or
# not (the two are equal up to rounding): no check depends on it.
MARGIN = 1.05


def _reachable(o: Objective, burn: float) -> float:
    """The highest burn rate an input can make: every call bad is 1 / budget."""
    return min(burn, 1 / o.error_budget)


def must_fire(st: ScaledTier, o: Objective, burn: float) -> bool:
    """The tier fires on a sustained `burn`: its burn rate is clearly below it."""
    return st.tier.burn_rate * MARGIN <= _reachable(o, burn)


def may_fire(st: ScaledTier, o: Objective, burn: float) -> bool:
    """The tier may fire on a sustained `burn` (it is not clearly above it)."""
    return st.tier.burn_rate < _reachable(o, burn) * MARGIN


def page_tiers(spec: Spec, o: Objective) -> list[ScaledTier]:
    """The page tiers a full outage of busy traffic triggers."""
    guard = Guard.of(spec)
    return [st for st in tiers(spec, o, "page")
            if must_fire(st, o, math.inf) and fires_after_outage(o, st, guard) is not None]


def reach(window: int, share: float, guard: Guard | None = None, ratio: float = 1.0) -> int | None:
    """Minutes from the start of a sustained burn (after `WARMUP` healthy minutes) until the
    error ratio over `window` (seconds) exceeds `share` (0 < share < 1) of the burn's own
    error ratio.

    k minutes in, a window of L minutes full of traffic holds k/L of the burn: it crosses
    `share` after floor(share x L) + 1 minutes. Windows over 6h average the recorded 5m
    rates (five minutes behind) since the rules started: while the window holds less than
    L minutes of data, the ratio is k / (WARMUP + k) of the burn's, over `share` after
    floor(WARMUP x share / (1 - share)) + 1 minutes. Windows over 3d add up hourly
    averages of the 5m rates, up to an hour behind.

    With a `guard` whose z is set, the Wilson lower bound (slo.significance) of the window's
    error ratio (`ratio`, the burn's own, times the share of the window it fills) over the
    window's events (steady traffic: calls a minute x the minutes of data) must pass too; None
    when it never does.
    """
    length = _minutes(window)
    full = math.floor(share * length + 1e-9) + 1
    raw = window <= promql.LONGEST_RAW_WINDOW
    behind = 0 if raw else 5 + (_minutes(promql.HOURLY_WINDOW) if window > promql.LONGEST_BASE_WINDOW else 0)
    if raw:
        plain = full
    else:
        young = math.floor(WARMUP * share / (1 - share) + 1e-9) + 1
        plain = behind + (young if WARMUP + young <= length else full)
    if guard is None or guard.z is None:
        return plain
    for k in range(1, length + 1):
        minutes = min(length, WARMUP + k)  # of data in the window
        events = guard.per_minute * (minutes if raw else length)  # a raw rate extrapolates no further than its data
        if significance.wilson_lower(ratio * k / minutes, events, guard.z) > share * ratio * (1 + 1e-9):
            return max(plain, behind + k)
    return None


def fires_after_outage(o: Objective, st: ScaledTier, guard: Guard | None = None) -> int | None:
    """Minutes from the start of a full outage (after `WARMUP` healthy minutes) to the tier
    firing: both windows over burn x budget (`reach`, the long one significantly with a
    `guard`), then the tier's `for`; None if the guard holds it back."""
    share = st.tier.burn_rate * o.error_budget
    if guard is not None and not guard.can_fire(st):
        return None
    long_ = reach(st.long_window, share, guard)
    return None if long_ is None else max(long_, reach(st.short_window, share)) + _for(st)


def page_within(spec: Spec, o: Objective, per_minute: float | None = None) -> tuple[int, ScaledTier] | None:
    """Minutes from the start of a full outage at `per_minute` calls a minute (default: the
    scenarios' busy traffic) to the first page, and its tier; None if no page tier can fire."""
    guard = Guard.of(spec, per_minute)
    timed = [(t, st) for st in page_tiers(spec, o) if (t := fires_after_outage(o, st, guard)) is not None]
    return min(timed, key=lambda x: x[0], default=None)


def resolve_within(spec: Spec, o: Objective) -> int:
    """Minutes after an outage ends by which no page is left: once a tier's short window holds
    no minute of the outage its condition is false. The longest short window of a page tier
    that may have fired, plus 5."""
    return max(_minutes(st.short_window) for st in tiers(spec, o, "page") if may_fire(st, o, math.inf)) + 5


def fires_within(spec: Spec, o: Objective, severity: str, burn: float) -> int | None:
    """Minutes from the start of a sustained `burn` (after `WARMUP` healthy minutes) by which a
    tier of `severity` fires, with 30 to spare; None if no such tier is clearly below `burn`.
    Both windows reach the tier's burn rate (`reach`), five more minutes for the rates to
    settle, then the tier's `for`."""
    guard, ratio = Guard.of(spec), _reachable(o, burn) * o.error_budget
    times = []
    for st in tiers(spec, o, severity):
        if must_fire(st, o, burn):
            share = st.tier.burn_rate / _reachable(o, burn)
            long_ = reach(st.long_window, share, guard, ratio)
            if long_ is not None:
                times.append(max(long_, reach(st.short_window, share)) + 5 + _for(st))
    return min(times) + 30 if times else None


def ticket_within(spec: Spec, o: Objective, burn: float) -> int | None:
    """`fires_within` for the ticket tiers."""
    return fires_within(spec, o, "ticket", burn)


def exhausted_within(o: Objective, burn: float) -> int | None:
    """Minutes from the start of a sustained `burn` by which the budget-exhausted ticket fires,
    with 30 to spare: the SLO window's error ratio over the budget (`reach`), then its `for`;
    None unless `burn` is clearly over 1."""
    if burn < MARGIN:
        return None
    return reach(int(o.window_seconds), 1 / burn) + 5 + math.ceil(durations.parse(rules.EXHAUSTED_FOR) / MINUTE) + 30


def quiet_tier(spec: Spec, o: Objective) -> ScaledTier | None:
    """The page tier the quiet-hour scenario is about: the fastest (the shortest long window).
    Slower ones may page on its one bad call (their windows hold the busy hour: enough
    events for the guard, and for a budget of a few events in a million, too many bad)."""
    return min(page_tiers(spec, o), key=lambda st: st.long_window, default=None)


def quiet_calls_per_hour(spec: Spec, o: Objective) -> int | None:
    """Calls an hour in the quiet-hour scenario: fewer than `min_events` in the fastest page
    tier's long window, yet so few that one bad call alone puts the ratio over that tier's
    threshold (1/n > burn x budget). None when no count fits."""
    fastest = quiet_tier(spec, o)
    if fastest is None or spec.alerting.min_events <= 1:
        return None
    per_hour = min(30, math.ceil(1 / (fastest.tier.burn_rate * o.error_budget)) - 1)
    if per_hour < 1 or per_hour * fastest.long_window / 3600 >= spec.alerting.min_events:
        return None
    return per_hour


BUSY = 1000  # calls a minute: the significance guard keeps the Workbook's timings (docs/alerting.md)


def calls_per_minute(spec: Spec) -> float:
    """Enough traffic for the low-traffic guard to pass on every long window, and busy enough
    for the significance guard to change no timing."""
    shortest = min((st.long_window for c in cases(spec) for st in scale_tiers(spec.alerting.tiers,
                                                                                     c.objective.window_seconds)),
                   default=3600)
    return float(max(BUSY, math.ceil(2 * spec.alerting.min_events / (shortest / MINUTE))))


# --- inputs ---------------------------------------------------------------------------------


class Traffic:
    """Calls per minute and, per objective kind, bad calls per minute (errors for availability,
    calls slower than the threshold for latency), from minute 1; counters are 0 at minute 0."""

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute
        self.calls: list[float] = []
        self.bad: dict[str, list[float]] = {"availability": [], "latency": []}

    @property
    def minutes(self) -> int:
        return len(self.calls)

    def run(self, minutes: int, bad_share: dict[str, float] | None = None) -> Traffic:
        shares = bad_share or {}
        self.calls += [self.rate] * minutes
        for kind, bad in self.bad.items():
            bad += [self.rate * shares.get(kind, 0.0)] * minutes
        return self

    def quiet(self, minutes: int, per_hour: int, bad_at: int) -> Traffic:
        """`per_hour` calls evenly spaced; the call nearest minute `bad_at` of the phase is bad."""
        calls = [0.0] * minutes
        every = 60 / per_hour
        for i in range(int(minutes / every)):
            calls[min(minutes - 1, round(i * every))] += 1
        bad_minute = min((m for m, c in enumerate(calls) if c), key=lambda m: abs(m - bad_at))
        self.calls += calls
        for bad in self.bad.values():
            bad += [1.0 if m == bad_minute else 0.0 for m in range(minutes)]
        return self


def values(increments: Sequence[float]) -> str:
    """promtool's expanding notation for a counter from 0 with these per-minute increments:
    each run of equal increments becomes `start+stepxN`."""
    cumulative = [0.0, *accumulate(increments)]
    n = len(cumulative) - 1
    tokens: list[str] = []
    i = 0
    while i < n:
        step = cumulative[i + 1] - cumulative[i]
        j = i + 1
        while j < n and math.isclose(cumulative[j + 1] - cumulative[j], step, rel_tol=1e-9, abs_tol=1e-9):
            j += 1
        if not tokens:
            tokens.append(f"0+{promql.number(step)}x{j}")
        elif j - i == 1:
            tokens.append(promql.number(cumulative[j]))
        else:
            tokens.append(f"{promql.number(cumulative[i + 1])}+{promql.number(step)}x{j - i - 1}")
        i = j
    return " ".join(tokens) if tokens else "0"


def series(metric: str, labels: dict[str, str], increments: Sequence[float]) -> dict:
    matchers = [promql.matcher(k, "=", v) for k, v in labels.items()]
    return {"series": promql.selector(metric, matchers), "values": values(increments)}


def _tool(spec: Spec, subject: Subject) -> str:
    if subject.tool:
        return subject.tool
    configured = spec.services[subject.service].tools if subject.service in spec.services else {}
    tool = "search"  # a tool with no objective of its own
    while tool in configured:
        tool += "_x"
    return tool


@dataclass(frozen=True)
class Load:
    """One subject's calls, per minute, as the exporters are to show them."""

    service: str
    method: str
    tool: str
    calls: list[float]
    errors: list[float]
    slow: list[float]  # slower than the threshold
    noise: list[float]  # NOISE_METHOD calls: failed, slower than every bucket
    threshold: float  # the bound good calls fall in; the slow ones fall in the next


def input_series(spec: Spec, subject: Subject, traffic: Traffic) -> list[dict]:
    """Counters and histogram of one subject, in the names of the spec's metrics schema: good
    calls take the latency threshold's bucket, slow ones the next; the noise method always
    fails and is slower than every bucket."""
    av, lat = subject.cases.get("availability"), subject.cases.get("latency")
    objectives = [case.objective for case in subject.cases.values()]
    method = next((o.methods[0] for o in objectives if o.methods != promql.ALL_METHODS), "tools/call")
    # the noise method is traffic an SLI must ignore: none, for an objective over every method
    ignored = not any(o.methods == promql.ALL_METHODS or NOISE_METHOD in o.methods for o in objectives)
    zero = [0.0] * traffic.minutes
    load = Load(subject.service, method, _tool(spec, subject) if method == "tools/call" else "", traffic.calls,
                traffic.bad["availability"] if av else zero, traffic.bad["latency"] if lat else zero,
                [NOISE_PER_MINUTE if ignored else 0.0] * traffic.minutes,
                lat.objective.threshold if lat else spec.buckets[len(spec.buckets) // 2])
    if spec.metrics == schema.OTEL:
        return otel_series(spec, load)
    return mcp_slo_series(spec, load)


def _bucket_increments(bounds: Sequence[float], threshold: float, calls: Sequence[float],
                       slow: Sequence[float]) -> list[tuple[float, list[float]]]:
    """(bound, increments) of cumulative buckets holding `calls`, `slow` of them above the
    threshold: none below it, the fast ones in it, all above (+Inf last)."""
    out = []
    for bound in [*bounds, math.inf]:
        if math.isclose(bound, threshold):
            inc = [c - s for c, s in zip(calls, slow)]
        else:
            inc = [0.0] * len(calls) if bound < threshold else list(calls)
        out.append((bound, inc))
    return out


def mcp_slo_series(spec: Spec, load: Load) -> list[dict]:
    """mcp-slo's names (collector.names): the operations counter by status (cancelled calls
    too, 1.5 per finished one) and the duration histogram."""
    base = {"service": load.service, "version": VERSION, "method": load.method, "tool": load.tool}
    noise = {**base, "method": NOISE_METHOD, "tool": ""}
    zero = [0.0] * len(load.calls)
    ops = names.OPERATIONS_TOTAL
    out = [
        series(ops, {**base, "status": names.SUCCESS}, [c - e for c, e in zip(load.calls, load.errors)]),
        series(ops, {**base, "status": names.ERROR}, [e / 2 for e in load.errors]),
        series(ops, {**base, "status": names.TIMEOUT}, [e / 2 for e in load.errors]),
        series(ops, {**base, "status": names.CANCELLED}, [c * CANCELLED_SHARE for c in load.calls]),
        series(ops, {**noise, "status": names.ERROR}, load.noise),
    ]
    bucket = f"{names.OPERATION_DURATION}_bucket"
    for bound, inc in _bucket_increments(spec.buckets, load.threshold, load.calls, load.slow):
        out.append(series(bucket, {**base, "le": promql.le(bound)}, inc))
        out.append(series(bucket, {**noise, "le": promql.le(bound)}, load.noise if math.isinf(bound) else zero))
    out.append(series(f"{names.OPERATION_DURATION}_count", base, load.calls))
    out.append(series(f"{names.OPERATION_DURATION}_count", noise, load.noise))
    return out


# The error.type values of failed calls and their shares (a tool result with isError, a JSON-RPC
# internal error, a timeout): the SLI counts every non-empty one as an error.
OTEL_ERRORS = ((semconv.TOOL_ERROR, 0.5), ("-32603", 0.25), (semconv.TIMEOUT_ERROR, 0.25))
OTEL_JOB = "mcp"  # one scrape job for every service: only target_info tells them apart


def otel_le(bound: float) -> str:
    """A bound as OpenTelemetry's Prometheus exporter writes the conventions' bounds: "1", "0.2"."""
    if math.isinf(bound):
        return "+Inf"
    return str(int(bound)) if bound.is_integer() else repr(bound)


def otel_series(spec: Spec, load: Load) -> list[dict]:
    """The semantic conventions' names, as an OpenTelemetry SDK's Prometheus exporter scraped by
    Prometheus has them: the duration histogram per error.type ("" for success; no cancelled
    calls, which it does not record), with otel_scope_* labels and the target's job and
    instance, and the resource (service name and version) in target_info alone."""
    target = {"job": OTEL_JOB, "instance": f"{load.service}:9464"}
    scope = {"otel_scope_name": semconv.SCOPE_NAME, "otel_scope_version": "1.0.0"}
    base = {**target, schema.METHOD: load.method, schema.TOOL: load.tool, **scope}
    noise = {**base, schema.METHOD: NOISE_METHOD, schema.TOOL: "", schema.ERROR_TYPE: "-32603"}
    zero = [0.0] * len(load.calls)
    # slow calls among the successes first, the rest spread over the errors by their shares
    slow_ok = [min(s, c - e) for c, e, s in zip(load.calls, load.errors, load.slow)]
    kinds = [("", [c - e for c, e in zip(load.calls, load.errors)], slow_ok)]
    kinds += [(error_type, [e * share for e in load.errors],
               [(s - ok) * share for s, ok in zip(load.slow, slow_ok)]) for error_type, share in OTEL_ERRORS]
    histogram = schema.OTEL_DURATION
    resource = {**target, schema.SERVICE_NAME: load.service, schema.SERVICE_VERSION: VERSION}
    out = [{**series(schema.TARGET_INFO, resource, zero), "values": f"1+0x{len(zero)}"}]  # a gauge, always 1
    for error_type, calls, slow in kinds:
        labels = {**base, schema.ERROR_TYPE: error_type}
        out += [series(f"{histogram}_bucket", {**labels, "le": otel_le(bound)}, inc)
                for bound, inc in _bucket_increments(spec.buckets, load.threshold, calls, slow)]
        out.append(series(f"{histogram}_count", labels, calls))
    out += [series(f"{histogram}_bucket", {**noise, "le": otel_le(bound)}, load.noise if math.isinf(bound) else zero)
            for bound in [*spec.buckets, math.inf]]
    out.append(series(f"{histogram}_count", noise, load.noise))
    return out


# --- checks -----------------------------------------------------------------------------------


def _at(minute: int) -> str:
    return promql.duration(minute * MINUTE) if minute else "0m"


def expect(expr: str, minute: int, present: bool, labels: str = "{}") -> dict:
    """`expr` returns the one sample `labels` 1 at `minute`, or nothing."""
    return {"expr": expr, "eval_time": _at(minute), "exp_samples": [{"labels": labels, "value": 1}] if present else []}


def firing(case: Case, alertname: str | None = None, **labels: str) -> str:
    return promql.alerts(alertname, "firing", **case.labels(), **labels)


def _any(expr: str) -> str:
    return f"max({expr})"


def alert_labels(spec: Spec, case: Case, st: ScaledTier) -> str:
    """The full label set of a burn-rate alert's ALERTS series but its name and
    `rules.TUNED_FOR` (which the rules add to tell apart SLOs with their own `for` or links)."""
    labels = {"alertname": rules.BURN_ALERT, "alertstate": "firing",
              **{k: v for k, v in case.labels().items() if v}, "severity": st.tier.severity,
              "tier": st.tier.name, "window": promql.duration(case.objective.window_seconds), **spec.alerting.labels,
              **st.tier.labels}
    return "{" + ", ".join(promql.matcher(k, "=", v) for k, v in labels.items()) + "}"


def fires_as(spec: Spec, case: Case, st: ScaledTier, minute: int) -> dict:
    """The tier `st` of `case` fires at `minute` with exactly its labels (`alert_labels`)."""
    expr = f"max without ({rules.TUNED_FOR}) ({firing(case, rules.BURN_ALERT, tier=st.tier.name)})"
    return expect(expr, minute, True, labels=alert_labels(spec, case, st))


def _describe(subjects: list[Subject]) -> str:
    return "; ".join(c.name for s in subjects for c in s.cases.values())


def _group(spec: Spec, title: str, subjects: list[Subject], traffic: dict[int, Traffic], checks: list[dict],
           more_inputs: Sequence[dict] = ()) -> dict:
    inputs = [item for i, s in enumerate(subjects) for item in input_series(spec, s, traffic[i])]
    inputs += more_inputs
    return {"name": f"{title} [{_describe(subjects)}]", "interval": "1m", "input_series": inputs,
            "promql_expr_test": checks}


def outage(spec: Spec, subjects: list[Subject]) -> dict | None:
    timed = [(c, page_within(spec, c.objective)) for s in subjects for c in s.cases.values()]
    timed = [(c, p) for c, p in timed if p is not None]
    if not timed:
        return None
    length = max(within for _, (within, _) in timed) + 5
    checks = []
    for case, (within, first) in timed:
        checks += [
            expect(firing(case), WARMUP, False),
            expect(_any(firing(case, rules.BURN_ALERT, severity="page")), WARMUP + within, True),
            fires_as(spec, case, first, WARMUP + within),
        ]
    traffic = {i: Traffic(calls_per_minute(spec)).run(WARMUP).run(length, {"availability": 1, "latency": 1})
               for i in range(len(subjects))}
    return _group(spec, "every call bad from 1h: no alert before, a page within "
                  + ", ".join(f"{w}m ({c.short_name})" for c, (w, _) in timed), subjects, traffic, checks)


def recovery(spec: Spec, subjects: list[Subject]) -> dict | None:
    relevant = [c for s in subjects for c in s.cases.values() if page_tiers(spec, c.objective)]
    if not relevant:
        return None
    guard = Guard.of(spec)
    length = max(fires_after_outage(c.objective, st, guard) for c in relevant for st in page_tiers(spec, c.objective)) + 2
    stop = WARMUP + length
    after = max(resolve_within(spec, c.objective) for c in relevant)
    checks = []
    for case in relevant:
        checks += [expect(_any(firing(case, rules.BURN_ALERT, tier=st.tier.name)), stop, True)
                   for st in page_tiers(spec, case.objective)]
        checks.append(expect(firing(case, severity="page"), stop + resolve_within(spec, case.objective), False))
    traffic = {i: Traffic(calls_per_minute(spec)).run(WARMUP).run(length, {"availability": 1, "latency": 1})
               .run(after + 1) for i in range(len(subjects))}
    return _group(spec, f"every call bad for {length}m, then none: every page tier fires, no page "
                  f"{', '.join(sorted({f'{resolve_within(spec, c.objective)}m' for c in relevant}))} after",
                  subjects, traffic, checks)


BURN = 2.0  # the burn-2x scenario's burn rate


def _exhausted_alert(spec: Spec, o: Objective) -> bool:
    return spec.alerting.budget_exhausted_alert and o.alerts.enabled


def _burn_horizon(spec: Spec, subjects: list[Subject]) -> int:
    o = [c.objective for s in subjects for c in s.cases.values()]
    times = [fires_within(spec, x, severity, BURN) for x in o for severity in ("page", "ticket")]
    times += [exhausted_within(x, _reachable(x, BURN)) for x in o if _exhausted_alert(spec, x)]
    return WARMUP + max([t for t in times if t is not None] or [12 * 60])


def burn_2x(spec: Spec, subjects: list[Subject]) -> dict:
    """A 2x burn (every call bad, for a budget over 50%): the ticket tiers below 2x fire, and
    the budget-exhausted ticket; a page only from a page tier below 2x, never when every
    page tier is clearly above."""
    horizon = _burn_horizon(spec, subjects)
    checks = []
    for s in subjects:
        for case in s.cases.values():
            o = case.objective
            if fires_within(spec, o, "page", BURN) is not None:
                checks.append(expect(_any(firing(case, rules.BURN_ALERT, severity="page")), horizon, True))
            elif not any(may_fire(st, o, BURN) for st in tiers(spec, o, "page")):
                checks.append(expect(promql.ever(firing(case, severity="page"), horizon * MINUTE), horizon, False))
            if ticket_within(spec, o, BURN) is not None:
                checks.append(expect(_any(firing(case, rules.BURN_ALERT, severity="ticket")), horizon, True))
            if _exhausted_alert(spec, o) and exhausted_within(o, _reachable(o, BURN)) is not None:
                checks.append(expect(_any(firing(case, rules.EXHAUSTED_ALERT, severity="ticket")), horizon, True))
    traffic = {i: Traffic(calls_per_minute(spec)).run(WARMUP).run(
        horizon - WARMUP, {k: min(1.0, BURN * c.objective.error_budget) for k, c in s.cases.items()})
        for i, s in enumerate(subjects)}
    return _group(spec, f"a 2x burn for {_at(horizon - WARMUP)}: tickets, a page only from a tier below 2x",
                  subjects, traffic, checks)


def burn_half(spec: Spec, subjects: list[Subject]) -> dict:
    horizon = _burn_horizon(spec, subjects)
    checks = [expect(promql.ever(firing(c), horizon * MINUTE), horizon, False)
              for s in subjects for c in s.cases.values()]
    traffic = {i: Traffic(calls_per_minute(spec)).run(horizon, {k: 0.5 * c.objective.error_budget
                                                                for k, c in s.cases.items()})
               for i, s in enumerate(subjects)}
    return _group(spec, f"a 0.5x burn for {_at(horizon)}: no alert", subjects, traffic, checks)


def quiet_hour(spec: Spec, subjects: list[Subject], expect_page: bool = False) -> dict | None:
    """One bad call in the second of two quiet hours after a busy one. With `expect_page`
    (the rules generated with min_events 0) the same input must page: the guard is what holds
    the page back, not the input."""
    per_hour = {}
    for i, s in enumerate(subjects):
        counts = [quiet_calls_per_hour(spec, c.objective) for c in s.cases.values()]
        if all(n is not None for n in counts):
            per_hour[i] = min(counts)
    if not per_hour:
        return None
    end = WARMUP + 120
    checks = [expect(promql.ever(firing(c, rules.BURN_ALERT, tier=quiet_tier(spec, c.objective).tier.name),
                                 end * MINUTE), end, expect_page)
              for i, s in enumerate(subjects) if i in per_hour for c in s.cases.values()]
    traffic = {i: Traffic(calls_per_minute(spec)).run(WARMUP).quiet(120, per_hour.get(i, 30), bad_at=90)
               for i in range(len(subjects))}
    calls = ", ".join(f"{subjects[i].service}{' ' + subjects[i].tool if subjects[i].tool else ''}: {n}"
                      for i, n in per_hour.items())
    title = "one bad call in a quiet hour (calls an hour: " + calls + ")"
    return _group(spec, title + (": a page without the low-traffic guard" if expect_page else ": no page"),
                  subjects, traffic, checks)


QUIET = 1.0  # calls a minute of the significance scenario's quiet service


def stray_error_matters(spec: Spec, o: Objective) -> bool:
    """One bad call in the fastest page tier's long window at `QUIET` calls a minute passes
    min_events and that tier's threshold, and is not significant: the guard alone holds the
    page back. (At a 99.9999% target it is significant: a 16,667x burn pages.)"""
    fastest, z = quiet_tier(spec, o), spec.alerting.z
    if fastest is None or z is None:
        return False
    events = QUIET * _minutes(fastest.long_window)
    threshold = fastest.tier.burn_rate * o.error_budget
    return (events >= spec.alerting.min_events and 1 / events > threshold
            and significance.wilson_lower(1 / events, events, z) < threshold)


def significance_guard(spec: Spec, subjects: list[Subject], expect_page: bool = False) -> list[dict]:
    """At one call a minute: a single bad call after a busy hour raises no page from the fastest
    page tier, though its long window holds min_events and its ratio is over the threshold (with
    `expect_page`, for rules without the guard: it pages); and a full outage pages within
    `page_within` at that traffic (5 minutes at 99.9% with the Workbook tiers). The busy side,
    the Workbook's timings, is the `outage` scenario at `BUSY` calls a minute."""
    stray = [c for s in subjects for c in s.cases.values() if stray_error_matters(spec, c.objective)]
    out = []
    if stray:
        end = WARMUP + 120
        checks = [expect(promql.ever(firing(c, rules.BURN_ALERT, tier=quiet_tier(spec, c.objective).tier.name),
                                     end * MINUTE), end, expect_page) for c in stray]
        traffic = {i: Traffic(calls_per_minute(spec)).run(WARMUP).quiet(120, int(QUIET * 60), bad_at=90)
                   for i in range(len(subjects))}
        title = f"one bad call at {QUIET:g} call a minute after a busy hour: "
        out.append(_group(spec, title + ("a page without the significance guard" if expect_page else "no page"),
                          subjects, traffic, checks))
    if expect_page:
        return out
    timed = [(c, p) for s in subjects for c in s.cases.values() if (p := page_within(spec, c.objective, QUIET))]
    if timed:
        length = max(within for _, (within, _) in timed) + 5
        checks = [expect(_any(firing(c, rules.BURN_ALERT, severity="page")), WARMUP + within, True)
                  for c, (within, _) in timed]
        traffic = {i: Traffic(QUIET).run(WARMUP).run(length, {"availability": 1, "latency": 1})
                   for i in range(len(subjects))}
        out.append(_group(spec, f"every call bad at {QUIET:g} call a minute: a page within "
                          + ", ".join(f"{w}m ({c.short_name})" for c, (w, _) in timed), subjects, traffic, checks))
    return out


def significance_control(spec: Spec, rule_file: str) -> str:
    """The stray-error input expecting a page, for rules generated with `confidence: 0`."""
    return suite(rule_file, [g for subjects in packed(spec) for g in significance_guard(spec, subjects, expect_page=True)])


def alert_policy(spec: Spec, subjects: list[Subject]) -> dict | None:
    """An outage long enough for every tier to fire, for the objectives whose `alerts` change
    the spec's: a tier turned off never fires, a changed one fires with its own severity and
    labels, an objective with its alerts off raises none while its error ratio is recorded."""
    changed = [c for s in subjects for c in s.cases.values() if c.objective.alerts != ObjectiveAlerts()]
    if not changed:
        return None
    guard = Guard.of(spec)
    every = {c.short_name: scale_tiers(spec.alerting.tiers, c.objective.window_seconds) for c in changed}
    own = {c.short_name: tiers(spec, c.objective) for c in changed}
    times = [t for c in changed for st in every[c.short_name] + own[c.short_name]
             if (t := fires_after_outage(c.objective, st, guard)) is not None]
    end = WARMUP + max(times, default=60) + 2
    checks = []
    for case in changed:
        fires = {st.tier.name: st for st in own[case.short_name]}
        for st in every[case.short_name]:
            if st.tier.name not in fires:
                checks.append(expect(promql.ever(firing(case, rules.BURN_ALERT, tier=st.tier.name), end * MINUTE),
                                     end, False))
        for st in fires.values():
            if must_fire(st, case.objective, math.inf) and fires_after_outage(case.objective, st, guard) is not None:
                checks.append(fires_as(spec, case, st, end))
        if not case.objective.alerts.enabled:
            checks.append(expect(promql.ever(firing(case), end * MINUTE), end, False))
            ratio = promql.selector(promql.recorded(promql.ERROR_RATIO, promql.BASE_WINDOW),
                                    [promql.matcher(k, "=", v) for k, v in case.labels().items()])
            checks.append(expect(_any(ratio), end, True))  # every call bad: its SLI is still recorded
    traffic = {i: Traffic(calls_per_minute(spec)).run(WARMUP).run(end - WARMUP, {"availability": 1, "latency": 1})
               for i in range(len(subjects))}
    return _group(spec, f"every call bad for {end - WARMUP}m: per-SLO alert settings "
                  "(tiers off, severity, for and labels changed, alerts off)", subjects, traffic, checks)


def _absent_minutes(spec: Spec) -> int:
    return math.ceil(durations.parse(spec.alerting.absent_for) / MINUTE)


def _others_reporting(spec: Spec, service: str, minutes: int) -> list[dict]:
    """The inputs of every named service but `service` (or a discovered one), `minutes` long."""
    others = [s for s in spec.services if s != service] or [discovered_service(spec)]
    return [item for s in others for item in input_series(spec, Subject(s, None), Traffic(60.0).run(minutes))]


def absent_data(spec: Spec, service: str) -> dict:
    """No series for `service` while the other named services report."""
    minutes = _absent_minutes(spec)
    return {
        "name": f"{service}: no data for {spec.alerting.absent_for} raises {rules.ABSENT_ALERT}, a ticket",
        "interval": "1m",
        "input_series": _others_reporting(spec, service, minutes + 2),
        "alert_rule_test": [
            {"alertname": rules.ABSENT_ALERT, "eval_time": _at(minutes - 1), "exp_alerts": []},
            {"alertname": rules.ABSENT_ALERT, "eval_time": _at(minutes), "exp_alerts": [absent_alert(spec, service)]},
        ],
    }


def absent_alert(spec: Spec, service: str) -> dict:
    """The absent-data ticket of `service` as promtool expects it."""
    a = spec.alerting
    return {
        "exp_labels": {"severity": "ticket", "service": service, **a.labels},
        "exp_annotations": {
            "summary": f"{service}: no MCP metrics in Prometheus",
            "description": (f"Prometheus has had no MCP operation series for {service} for {a.absent_for}: its SLOs "
                            "cannot be evaluated. Is the exporter or proxy running, and is it scraped?"),
            "runbook_url": a.runbook_url.format(service=service, slo="absent-data", tool=""),
            "dashboard_url": a.dashboard_url.format(service=service, slo="absent-data", tool=""),
        },
    }


# --- maintenance windows ---------------------------------------------------------------------
# The engine's gauge (promql.MAINTENANCE) as Prometheus scrapes it from two engines: 1 every
# minute an occurrence is on, a stale marker when it ends (the engine stops exporting the
# series), nothing otherwise. Occurrences are [start, end) in minutes.

ENGINE_JOB = "mcp-slo-engine"
ENGINES = ("engine-a:9090", "engine-b:9090")  # both export the gauge: the rules must count it once
Occurrence = tuple[int, int]


def _gauge_values(occurrences: Sequence[Occurrence]) -> str:
    """promtool values: "_" before and between occurrences, 1 during one, "stale" at its end."""
    tokens: list[str] = []
    at = 0
    for start, end in sorted(occurrences):
        if start > at:
            tokens.append(f"_x{start - at}")
        tokens += [f"1x{end - start - 1}", "stale"]
        at = end + 1
    return " ".join(tokens)


def maintenance_series(case: Case, mode: str, occurrences: Sequence[Occurrence]) -> list[dict]:
    """The gauge of `case`'s SLO series in `mode`, with the labels the engine gives it (no
    tool label for a service-level series) and each engine's job and instance."""
    labels = {k: v for k, v in case.labels().items() if v} | {"mode": mode, "job": ENGINE_JOB}
    values = _gauge_values(occurrences)
    return [{"series": promql.selector(promql.MAINTENANCE, [promql.matcher(k, "=", v) for k, v in
                                                            (labels | {"instance": engine}).items()]),
             "values": values} for engine in ENGINES]


def _gauges(subjects: list[Subject], mode: str, occurrences: Sequence[Occurrence]) -> list[dict]:
    return [item for s in subjects for c in s.cases.values() for item in maintenance_series(c, mode, occurrences)]


def _outage_length(spec: Spec, subjects: list[Subject]) -> tuple[list[tuple[Case, int]], int]:
    """The cases a full outage pages, the minutes it takes each, and an outage long enough for
    all (as the `outage` scenario: its page is what a window must hold back)."""
    timed = [(c, p[0]) for s in subjects for c in s.cases.values() if (p := page_within(spec, c.objective))]
    return timed, max((w for _, w in timed), default=0) + 5


def _recorded_of(case: Case, name: str) -> str:
    return promql.selector(name, [promql.matcher(k, "=", v) for k, v in case.labels().items()])


def _silent(cases: Iterable[Case], until: int) -> list[dict]:
    """No alert of any of `cases` fired from the start to `until`."""
    return [expect(promql.ever(firing(c), until * MINUTE), until, False) for c in cases]


def _pages_after(spec: Spec, subjects: list[Subject], mode: str, title: str, late: int = 0) -> dict | None:
    """A window of healthy traffic, then (5 minutes after it ends: an exclude window's 5m rates
    come back then) an outage: it pages within `page_within` of its start, `late` minutes more.
    The window is within the `WARMUP` the timings assume (the windows over 6h average since the
    rules started: a longer healthy start would page later)."""
    timed, length = _outage_length(spec, subjects)
    if not timed:
        return None
    checks = [expect(_any(firing(c, rules.BURN_ALERT, severity="page")), WARMUP + within + late, True)
              for c, within in timed]
    checks += _silent((c for c, _ in timed), WARMUP)
    traffic = {i: Traffic(calls_per_minute(spec)).run(WARMUP).run(length, {"availability": 1, "latency": 1})
               for i in range(len(subjects))}
    return _group(spec, title, subjects, traffic, checks, _gauges(subjects, mode, [(WARMUP - 35, WARMUP - 5)]))


def maintenance_silence(spec: Spec, subjects: list[Subject]) -> list[dict]:
    """A `silence` window: an outage inside it raises no alert while its events count (the error
    ratio is recorded); one-off, and recurring (the outage in the second occurrence); the same
    outage after the window ends pages at the usual time."""
    timed, length = _outage_length(spec, subjects)
    if not timed:
        return []
    everyone = [c for s in subjects for c in s.cases.values()]
    out = []
    for first in ([], [(WARMUP, WARMUP + 30)]):  # one-off, recurring
        start = WARMUP + (60 if first else 0)
        window = (start, start + length + 10)
        last = window[1] - 1
        checks = _silent(everyone, last)
        checks += [expect(f"count({_recorded_of(c, promql.recorded(promql.ERROR_RATIO, promql.BASE_WINDOW))} > 0)",
                          last, True) for c in everyone]  # the events count
        traffic = {i: Traffic(calls_per_minute(spec)).run(start + 5).run(length, {"availability": 1, "latency": 1})
                   .run(5) for i in range(len(subjects))}
        kind = "recurring, in its second occurrence" if first else "one-off"
        out.append(_group(spec, f"silence window ({kind}) over every call bad for {length}m: no alert, the error "
                          "ratio recorded", subjects, traffic, checks, _gauges(subjects, promql.SILENCE, [*first, window])))
    after = _pages_after(spec, subjects, promql.SILENCE, "every call bad 5m after a silence window: a page within "
                         + _timings(timed))
    return [*out, *([after] if after else [])]


def _timings(timed: list[tuple[Case, int]], late: int = 0) -> str:
    return ", ".join(f"{w + late}m ({c.short_name})" for c, w in timed)


REMAINING_TOLERANCE = 1e-9  # the budget left after an exclude window is the one before, to float rounding
# For a window's length (+5m) after an exclude window, that window averages the recorded 5m rates,
# which take 5 minutes to weigh a minute fully (as the 1d and 3d windows always do): a page can
# come up to this many minutes later than with the raw rate.
EXCLUDE_LAG = 5


def _tail(spec: Spec, subjects: list[Subject], every_tier: bool) -> int:
    """Minutes after an exclude window until the recorded windows that may alert hold none of its
    time: with `every_tier` the longest raw window of a tier (the longer ones average the 5m
    rates, which left it out), else the short windows of the page tiers (a page needs both); at
    least 1h (the budget left reads the 1h rate); plus 5 for the 5m rates and 5 to spare."""
    windows = [promql.HOURLY_WINDOW]
    for c in (c for s in subjects for c in s.cases.values()):
        if every_tier:
            windows += [w for st in tiers(spec, c.objective) for w in (st.long_window, st.short_window)
                        if w <= promql.LONGEST_RAW_WINDOW]
        else:
            windows += [st.short_window for st in tiers(spec, c.objective, "page")]
    return _minutes(max(windows)) + 10


def maintenance_exclude(spec: Spec, subjects: list[Subject]) -> list[dict]:
    """An `exclude` window over a 0.5x burn: an outage filling it raises no alert, during it or
    after it ends (until no window holds its time), and the budget left then is what it was
    before the window (`REMAINING_TOLERANCE`); one-off, and recurring (the outage in the second
    occurrence); an outage 5 minutes after the window pages at the usual time, up to
    `EXCLUDE_LAG` minutes later."""
    timed, length = _outage_length(spec, subjects)
    if not timed:
        return []
    everyone = [c for s in subjects for c in s.cases.values()]
    half = {i: {k: 0.5 * c.objective.error_budget for k, c in s.cases.items()} for i, s in enumerate(subjects)}
    out = []
    for first in ([], [(WARMUP, WARMUP + 30)]):  # one-off, recurring
        tail = _tail(spec, subjects, every_tier=not first)  # every tier once, the pages in the recurring one
        start = WARMUP + (60 if first else 0)
        window = (start, start + length)  # the outage fills it: its 5m rates must stay out 5m after it too
        end = window[1] + tail
        checks = _silent(everyone, end)
        for c in everyone:
            left = _recorded_of(c, promql.BUDGET_REMAINING)
            before = f"{left} offset {_at(end - (WARMUP - 1))}"
            checks.append(expect(f"max(abs({left} - {before}) < bool {promql.number(REMAINING_TOLERANCE)})", end, True))
        traffic = {i: Traffic(calls_per_minute(spec)).run(start, half[i]).run(length, {"availability": 1, "latency": 1})
                   .run(tail, half[i]) for i in range(len(subjects))}
        kind = "recurring, in its second occurrence" if first else "one-off"
        out.append(_group(spec, f"exclude window ({kind}) of {length}m, every call bad in it, in a 0.5x burn: no alert "
                          f"until {tail}m after it, the budget left as before", subjects, traffic, checks,
                          _gauges(subjects, promql.EXCLUDE, [*first, window])))
    after = _pages_after(spec, subjects, promql.EXCLUDE, "every call bad 5m after an exclude window: a page within "
                         + _timings(timed, EXCLUDE_LAG), late=EXCLUDE_LAG)
    return [*out, *([after] if after else [])]


def absent_in_maintenance(spec: Spec, service: str) -> dict:
    """No series for `service` while a window covers one of its service-level SLO series: no
    absent-data ticket until `alerting.absent_for` after the window ends."""
    minutes = _absent_minutes(spec)
    o = plan(spec).objectives_for(service)[0]
    end = minutes + 5
    return {
        "name": f"{service}: no data in a maintenance window: {rules.ABSENT_ALERT} only {spec.alerting.absent_for} "
                "after it ends",
        "interval": "1m",
        "input_series": [*_others_reporting(spec, service, end + minutes + 2),
                         *maintenance_series(Case(service, o), promql.SILENCE, [(0, end)])],
        "alert_rule_test": [
            {"alertname": rules.ABSENT_ALERT, "eval_time": _at(end + minutes - 1), "exp_alerts": []},
            {"alertname": rules.ABSENT_ALERT, "eval_time": _at(end + minutes), "exp_alerts": [absent_alert(spec, service)]},
        ],
    }


def scenario(spec: Spec, name: str) -> list[dict]:
    """The test groups of one scenario."""
    if name == "absent-data":
        return [absent_data(spec, s) for s in spec.services]
    if name == "significance":
        return [g for subjects in packed(spec) for g in significance_guard(spec, subjects)]
    if name == "maintenance-silence":
        return ([g for subjects in packed(spec) for g in maintenance_silence(spec, subjects)]
                + [absent_in_maintenance(spec, s) for s in spec.services])
    if name == "maintenance-exclude":
        return [g for subjects in packed(spec) for g in maintenance_exclude(spec, subjects)]
    build = {"outage": outage, "recovery": recovery, "burn-2x": burn_2x, "burn-0.5x": burn_half,
             "quiet-hour": quiet_hour, "alert-policy": alert_policy}[name]
    return [g for subjects in packed(spec) if (g := build(spec, subjects)) is not None]


def suite(rule_file: str, tests: list[dict]) -> str:
    """A promtool test file."""
    return rules.dump({
        "rule_files": [rule_file],
        "evaluation_interval": "1m",
        # promtool evaluates groups in no fixed order unless told; Prometheus runs them independently
        "group_eval_order": [rules.OBJECTIVES_GROUP, rules.SLO_GROUP],
        "tests": tests,
    })


def suites(spec: Spec, rule_file: str, scenarios: Iterable[str] = SCENARIOS) -> dict[str, str]:
    """File name -> promtool test file, one per scenario (`rule_file` relative to it)."""
    out = {}
    for name in scenarios:
        tests = scenario(spec, name)
        if tests:
            out[f"{name}.test.yml"] = suite(rule_file, tests)
    return out


def quiet_hour_control(spec: Spec, rule_file: str) -> str:
    """The quiet-hour input expecting a page, for rules generated with `min_events: 0`."""
    tests = [g for subjects in packed(spec) if (g := quiet_hour(spec, subjects, expect_page=True)) is not None]
    return suite(rule_file, tests)

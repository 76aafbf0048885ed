"""The canary judge: counts of a baseline and a canary version in, a verdict with its
evidence out. Pure: no Prometheus, no I/O.

The engine calls `judge` on every tick with the counts accumulated since the canary
started (`increase()` of counters and histogram buckets), so every decision rests on
request counts, never on per-step points, and every rollback rests on a test that stays
valid however often it is repeated, so re-judging every 30 s does not inflate the false
rollback rate.

The tests, for the service as a whole and for each tool (the family of K tests):
- errors: the canary's share of all bad events (errors and timeouts) against its share
  of valid traffic (conditional binomial, exact), sound when the baseline has no errors;
- latency (when there are histogram buckets): Mann-Whitney U on the buckets, as the
  probability that a canary request is slower (CLES);
- slow_share (when the SLO has a latency threshold): the share of requests slower than
  the threshold, tested like errors.

Each test is planned for a regression of the guide's size: the error ratio (or slow share)
times `error_regression` (2), or up by 0.1 point if that is more, so a baseline without
errors still has a target; latency times `latency_regression` (1.2), whose CLES is worked
out from the service's own histogram. A test rolls back (slo.canary.stats explains both):
- by its group-sequential boundary: at information fraction t (the information so far
  over what 80% power against the planned regression needs), when its one-sided p-value
  is at most 1 - Phi(b / sqrt(t)), b spending SEQUENTIAL_SHARE of alpha / K over t <= 1
  under continuous monitoring, then rising; this catches a regression of the planned size
  with about 1.3 times the requests of a fixed-sample test (bench/bench_canary.py);
- or by its e-value reaching K / ((1 - SEQUENTIAL_SHARE) alpha): always valid, for any t,
  and quick on regressions much larger than planned.
So the family-wise false rollback rate stays <= alpha over every tick and every test.

The verdict:
- `rollback` if the canary burns its own error budget at a page-tier rate, whatever the
  comparison says;
- `inconclusive` while the canary has fewer than `min_requests` requests;
- `rollback` if any test rejects;
- `inconclusive` if a test only looks worse at the fixed-sample level (Holm-adjusted
  p-value <= alpha) without rejecting yet: promotion waits for the evidence to settle
  either way (this can only delay a promotion, never cause a rollback);
- `promote` if nothing rejects and every test of the service as a whole has reached its
  planned information (t >= 1 for a canary regressed by the planned amount): a regression
  of that size would have been rolled back with probability >= 80% (POWER), larger ones
  more. Per-tool tests with too little traffic lower the score and are named in the
  reason, but do not hold promotion: the service-wide tests cover their traffic, and a
  rarely called tool could otherwise hold a release forever;
- `inconclusive` otherwise (the reason says how many canary requests are needed).

Score (0-100): 0 on rollback; otherwise the percentage of the family's tests that passed
(enough information, no regression, not even a fixed-sample hint of one). Monotone: every
test that passes adds the same amount, every test that fails makes it 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from slo.canary import stats
from slo.results import Effect, Evidence, Sequential, Side

PROMOTE, ROLLBACK, INCONCLUSIVE = "promote", "rollback", "inconclusive"
PASSED, FAILED, INSUFFICIENT = "passed", "failed", "insufficient"
ERRORS, LATENCY, SLOW_SHARE = "errors", "latency", "slow_share"

# The regression a promotion must have been able to catch (the guide's size; the spec's
# canary.error_regression and canary.latency_regression change it per service).
ERROR_REGRESSION = 2.0  # the canary's error ratio (or slow share) doubling...
REGRESSION_MIN_INCREASE = 0.001  # ...or rising by 0.1 point, whichever is more
LATENCY_REGRESSION = 1.2  # every request 20% slower
FALLBACK_CLES = 0.6  # the planned CLES when the histogram cannot tell (all in one bucket)
POWER = 0.8  # the probability of catching it that a promotion requires
SEQUENTIAL_SHARE = 0.9  # of alpha, spent by the boundaries; the rest by the e-values
CLES_TAU = 0.1  # the normal mixture's prior scale for CLES - 1/2 (effects around 0.6)


@dataclass(frozen=True)
class Counts:
    """One version, over the analysis window (counts may be fractional: rate * window)."""

    requests: float  # valid requests (success + error + timeout; cancelled excluded)
    errors: float  # error + timeout
    buckets: tuple[tuple[float, float], ...] = ()  # ('le' upper bound, cumulative count), ascending, last +Inf


@dataclass(frozen=True)
class Comparison:
    """What the judge is asked: is `canary` worse than `baseline` for `service`?"""

    service: str
    baseline: str
    canary: str
    overall: tuple[Counts, Counts]  # (baseline, canary)
    tools: dict[str, tuple[Counts, Counts]] = field(default_factory=dict)  # per tool, same shape
    latency_threshold: float | None = None  # the SLO's threshold (seconds): share of requests over it
    canary_page_burn: bool = False  # the canary burns its own error budget at a page-tier rate
    min_requests: int = 200  # canary requests before anything but 'inconclusive'
    alpha: float = 0.01  # family-wise false rollback rate, over all ticks
    error_regression: float = ERROR_REGRESSION  # the planned regressions (see the module's docstring)
    latency_regression: float = LATENCY_REGRESSION


@dataclass
class Decision:
    verdict: str  # promote | rollback | inconclusive
    score: int  # 0-100
    reason: str  # one sentence for a release manager
    metrics: tuple[Evidence, ...] = ()  # evidence, one per test (metric and tool)


# --- input ----------------------------------------------------------------------------------


@dataclass
class _Version:
    requests: float
    errors: float
    bounds: tuple[float, ...]  # finite and +Inf upper bounds, () without histogram
    per_bucket: list[float]  # non-cumulative counts


def _number(value: float, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")
    return number


def _version(counts: Counts, where: str) -> _Version:
    """Validated counts of one version, with per-bucket (non-cumulative) histogram counts."""
    requests = _number(counts.requests, f"{where}: requests")
    errors = _number(counts.errors, f"{where}: errors")
    if errors > requests:
        # increase() extrapolates each counter on its own: tolerate a little excess.
        if errors > requests + max(1.0, 0.01 * requests):
            raise ValueError(f"{where}: {errors:g} errors for {requests:g} requests")
        errors = requests
    bounds: list[float] = []
    per_bucket: list[float] = []
    previous = 0.0
    for i, pair in enumerate(counts.buckets):
        try:
            bound, cumulative = (float(x) for x in pair)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: bucket {i} must be (upper bound, cumulative count), got {pair!r}") from None
        if math.isnan(bound) or (bounds and bound <= bounds[-1]):
            raise ValueError(f"{where}: bucket bounds must be ascending, got {bound:g} after "
                             f"{bounds[-1] if bounds else float('nan'):g}")
        if not math.isfinite(cumulative) or cumulative < 0:
            raise ValueError(f"{where}: bucket le={bound:g} has count {cumulative!r}")
        bounds.append(bound)
        per_bucket.append(max(0.0, cumulative - previous))  # extrapolation can break monotonicity
        previous = max(previous, cumulative)
    if bounds and bounds[-1] != math.inf:
        raise ValueError(f"{where}: the last bucket must be le=+Inf, got le={bounds[-1]:g}")
    return _Version(requests, errors, tuple(bounds), per_bucket)


# --- one test -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Design:
    """The family's sequential design: per test, the boundary b (in units of the score
    process), the drift that crosses it by t = 1 with probability POWER, and the e-value
    threshold."""

    boundary: float
    drift: float
    e_threshold: float

    @classmethod
    def for_family(cls, tests: int, alpha: float) -> Design:
        boundary = stats.sequential_boundary(SEQUENTIAL_SHARE * alpha / tests)
        return cls(boundary, stats.design_drift(boundary, POWER), tests / ((1.0 - SEQUENTIAL_SHARE) * alpha))


NO_EVIDENCE = {"baseline": None, "canary": None, "effect": None}  # a test that could not run


@dataclass
class _Test:
    name: str
    tool: str | None
    evidence: dict  # Evidence's baseline, canary, effect and latency_threshold, as far as known
    p_value: float = 1.0  # fixed-sample one-sided p-value (evidence; Holm)
    p_sequential: float = 1.0  # the p-value held against the boundary's level
    information: float = 0.0  # fraction of the planned information so far: the boundary's clock
    planned: float = 0.0  # the same had the canary regressed by the planned amount (promotion)
    e_value: float = 1.0
    canary_requests: float = 0.0
    no_data: str = ""  # why the test could not be run
    p1: float | None = None  # the regression planned for (error ratio or slow share)
    p0: float | None = None
    cles: float | None = None  # the planned CLES (latency)


def _ratio(bad: float, total: float) -> float | None:
    return bad / total if total > 0 else None


def _binomial_test(name: str, tool: str | None, b_total: float, b_bad: float, c_total: float, c_bad: float,
                   level: float, factor: float, design: Design) -> _Test:
    """Errors or slow share: the exact conditional binomial test, its planned information
    (in bad events) and its binomial mixture e-value."""
    evidence = {
        "baseline": Side(requests=b_total, bad=b_bad, ratio=_ratio(b_bad, b_total)),
        "canary": Side(requests=c_total, bad=c_bad, ratio=_ratio(c_bad, c_total)),
    }
    test = _Test(name, tool, evidence, canary_requests=c_total)
    if b_total <= 0 or c_total <= 0:
        test.no_data = f"no {'baseline' if b_total <= 0 else 'canary'} traffic"
        return test
    share = c_total / (c_total + b_total)
    test.p_value = test.p_sequential = stats.conditional_binomial_p(c_bad, b_bad, share)
    test.e_value = stats.binomial_mixture_evalue(c_bad, b_bad, share)
    k = int(math.floor(c_bad + 0.5))
    m = k + int(math.floor(b_bad + 0.5))
    low, high = stats.binomial_interval(k, m, level)

    def odds_ratio(pi: float) -> float | None:  # share of bad events -> ratio of bad ratios
        return None if pi >= 1.0 else pi / (1.0 - pi) * (1.0 - share) / share

    value = None
    if b_bad > 0:
        value = (c_bad / c_total) / (b_bad / b_total)
    elif c_bad == 0:
        value = 1.0 if m == 0 else None
    evidence["effect"] = Effect(measure="ratio of bad ratios (canary / baseline)", value=value,
                                low=odds_ratio(low) if m else 0.0, high=odds_ratio(high) if m else None, level=level)
    # The plan uses the pooled bad ratio: under H0 it tells nothing about how the bad events
    # split between the versions, so the boundary's clock cannot lean on the test statistic.
    p0 = (b_bad + c_bad) / (b_total + c_total)
    p1 = min(1.0, max(factor * p0, p0 + REGRESSION_MIN_INCREASE))
    test.p0, test.p1 = p0, p1
    if p1 <= p0:  # every request fails already: the canary cannot do worse
        test.planned = math.inf
        return test
    pi1 = share * p1 / (share * p1 + (1.0 - share) * p0)
    per_event = (pi1 - share) ** 2 / (share * (1.0 - share)) / design.drift ** 2
    test.information = m * per_event
    test.planned = (c_total * p1 + b_total * p0) * per_event
    return test


def _latency_test(tool: str | None, base: _Version, can: _Version, level: float, factor: float,
                  design: Design) -> _Test:
    """Mann-Whitney on the buckets: p-value, CLES with interval, planned information for a
    CLES of `factor` times slower, normal mixture e-value."""
    n_b, n_c = sum(base.per_bucket), sum(can.per_bucket)
    evidence = {"baseline": Side(requests=n_b), "canary": Side(requests=n_c)}
    test = _Test(LATENCY, tool, evidence, canary_requests=n_c)
    if n_b <= 0 or n_c <= 0:
        test.no_data = f"no {'baseline' if n_b <= 0 else 'canary'} latency histogram"
        return test
    mw = stats.mann_whitney_buckets(can.per_bucket, base.per_bucket, level)
    test.p_value = mw.p_value
    test.e_value = stats.cles_evalue(mw, CLES_TAU)
    evidence["effect"] = Effect(measure="CLES: P(canary request slower) + P(tie) / 2", value=mw.cles,
                                low=mw.low, high=mw.high, level=level, u=mw.u, z=mw.z)
    pairs = n_c * n_b
    null = mw.variance / (pairs * pairs)
    if null <= 0:  # a single occupied bucket: assume the information of tie-free data
        null = (n_c + n_b + 1.0) / (12.0 * pairs)
    # The boundary sees the larger of the two variances, as the e-value does: "not slower"
    # includes distributions that differ without being shifted.
    test.p_sequential = stats.normal_cdf(-(mw.cles - 0.5) / math.sqrt(max(null, mw.variance_cles)))
    pooled = [x + y for x, y in zip(base.per_bucket, can.per_bucket)]  # H0: one distribution
    cles = stats.planned_cles(pooled, base.bounds, factor)
    test.cles = cles if cles is not None and cles >= 0.501 else FALLBACK_CLES
    test.information = test.planned = (test.cles - 0.5) ** 2 / null / design.drift ** 2
    return test


def _slow_counts(v: _Version, threshold: float, where: str) -> tuple[float, float]:
    """(requests in the histogram, requests slower than the threshold)."""
    for i, bound in enumerate(v.bounds):
        if math.isclose(bound, threshold, rel_tol=1e-9):
            total = sum(v.per_bucket)
            return total, sum(v.per_bucket[i + 1:])
    raise ValueError(f"{where}: the latency threshold {threshold:g} s is not a bucket bound "
                     f"(bounds: {', '.join(f'{b:g}' for b in v.bounds)})")


def _required(test: _Test) -> int | None:
    """About how many canary requests give the test its planned information (None: out of
    reach). Information grows in proportion to the requests."""
    if test.planned <= 0 or test.canary_requests <= 0:
        return None
    return math.ceil(test.canary_requests / test.planned)


# --- the verdict ------------------------------------------------------------------------------


def judge(c: Comparison) -> Decision:
    """Compare the canary with the baseline: verdict, score, reason and per-test evidence."""
    if not 0.0 < c.alpha < 0.5:
        raise ValueError(f"canary alpha must be in (0, 0.5), got {c.alpha!r}")
    if c.min_requests < 1:
        raise ValueError(f"canary min_requests must be >= 1, got {c.min_requests!r}")
    if not c.error_regression > 1.0 or not c.latency_regression > 1.0:
        raise ValueError(f"canary regressions must be factors > 1, got errors x{c.error_regression!r}, "
                         f"latency x{c.latency_regression!r}")
    level = 1.0 - c.alpha
    scopes: list[tuple[str | None, tuple[Counts, Counts]]] = [(None, c.overall)]
    scopes += sorted(c.tools.items())
    parsed = []
    for tool, (base, can) in scopes:
        place = "overall" if tool is None else f"tool {tool!r}"
        b = _version(base, f"{c.service} {place}, baseline {c.baseline}")
        v = _version(can, f"{c.service} {place}, canary {c.canary}")
        if b.bounds and v.bounds and (len(b.bounds) != len(v.bounds) or not all(
                math.isclose(x, y, rel_tol=1e-9) for x, y in zip(b.bounds, v.bounds))):
            raise ValueError(f"{c.service} {place}: baseline and canary histograms have different buckets")
        parsed.append((tool, b, v))
    with_buckets = bool(parsed[0][1].bounds or parsed[0][2].bounds)
    per_scope = 1 + (with_buckets and 1 + (c.latency_threshold is not None))
    design = Design.for_family(per_scope * len(parsed), c.alpha)

    tests: list[_Test] = []
    for tool, b, v in parsed:
        place = "overall" if tool is None else f"tool {tool!r}"
        tests.append(_binomial_test(ERRORS, tool, b.requests, b.errors, v.requests, v.errors, level,
                                    c.error_regression, design))
        if not with_buckets:
            continue
        if b.bounds and v.bounds:
            tests.append(_latency_test(tool, b, v, level, c.latency_regression, design))
        else:
            tests.append(_Test(LATENCY, tool, {}, no_data="no latency histogram"))
        if c.latency_threshold is None:
            continue
        if b.bounds and v.bounds:
            b_total, b_slow = _slow_counts(b, c.latency_threshold, f"{c.service} {place}")
            c_total, c_slow = _slow_counts(v, c.latency_threshold, f"{c.service} {place}")
            test = _binomial_test(SLOW_SHARE, tool, b_total, b_slow, c_total, c_slow, level,
                                  c.error_regression, design)
            test.evidence["latency_threshold"] = c.latency_threshold
            tests.append(test)
        else:
            tests.append(_Test(SLOW_SHARE, tool, {"latency_threshold": c.latency_threshold},
                               no_data="no latency histogram"))
    assert len(tests) == per_scope * len(parsed)

    adjusted = stats.holm([t.p_value for t in tests])
    metrics = []
    for test, p_adj in zip(tests, adjusted):
        reject_at = stats.sequential_level(design.boundary, test.information)
        by = "boundary" if test.p_sequential <= reject_at else "e-value" if test.e_value >= design.e_threshold \
            else None
        power = stats.power_by(design.boundary, design.drift, test.planned)
        suspect = by is None and p_adj <= c.alpha
        status = FAILED if by else PASSED if test.planned >= 1.0 and not suspect else INSUFFICIENT
        required = _required(test) if status == INSUFFICIENT and test.planned < 1.0 else None
        note = test.no_data or None
        if not note and suspect:
            note = "worse by the fixed-sample test (Holm-adjusted p <= alpha), not yet by the sequential one"
        metrics.append(Evidence(
            name=test.name, tool=test.tool, **{**NO_EVIDENCE, **test.evidence}, p_value=test.p_value, p_adjusted=p_adj,
            sequential=Sequential(p_value=test.p_sequential, reject_at=reject_at, information=test.information,
                                  planned_information=test.planned, boundary=design.boundary),
            e_value=test.e_value, e_threshold=design.e_threshold, rejected_by=by, power=power,
            required_requests=required, status=status,
            planned_cles=test.cles if test.name == LATENCY else None, note=note))

    verdict, reason = _verdict(c, tests, metrics)
    passed = sum(m.status == PASSED for m in metrics)
    score = 0 if verdict == ROLLBACK else round(100 * passed / len(metrics))
    return Decision(verdict=verdict, score=score, reason=reason, metrics=tuple(metrics))


def _verdict(c: Comparison, tests: list[_Test], metrics: list[Evidence]) -> tuple[str, str]:
    cv, bv = c.canary, c.baseline
    n_c = c.overall[1].requests
    failed = [(t, m) for t, m in zip(tests, metrics) if m.status == FAILED]
    if c.canary_page_burn:
        return ROLLBACK, f"{cv} is burning its own error budget at a page-tier rate: roll back, " \
                         f"whatever the comparison with {bv} says."
    if n_c < c.min_requests:
        return INCONCLUSIVE, f"{cv} has served {n_c:,.0f} requests, fewer than the {c.min_requests:,} " \
                             f"needed before a verdict: wait."
    if failed:
        failed.sort(key=lambda tm: tm[0].p_sequential)
        head_test, head = failed[0]
        also = ""
        if len(failed) > 1:
            also = "; also worse: " + ", ".join(_scope_name(t) for t, _ in failed[1:])
        if head.rejected_by == "boundary":
            why = (f"{_p(head.sequential.p_value)}, where the sequential test needs "
                   f"p <= {_num(head.sequential.reject_at)} at this point")
        else:
            why = f"always-valid evidence {_num(head.e_value)} where {_num(head.e_threshold)} is needed"
        return ROLLBACK, f"{_worse(c, head_test, head)} ({why}{also}): roll back."
    suspects = [(t, m) for t, m in zip(tests, metrics) if m.p_adjusted <= c.alpha]
    if suspects:
        test, m = min(suspects, key=lambda tm: tm[1].p_value)
        return INCONCLUSIVE, (f"{_worse(c, test, m)} ({_p(m.p_value)}), which is not yet conclusive for a "
                              f"test repeated on every tick: wait.")
    overall = [(t, m) for t, m in zip(tests, metrics) if t.tool is None]
    waiting = [(t, m) for t, m in overall if m.status != PASSED]
    if not waiting:
        errors = overall[0][0]
        thin = [t.tool for t, m in zip(tests, metrics) if t.tool is not None and m.status != PASSED]
        note = ""
        if thin:
            tools = list(dict.fromkeys(thin))
            names = f"tool '{tools[0]}'" if len(tools) == 1 else f"{len(tools)} tools" if len(tools) > 3 \
                else "tools " + ", ".join(f"'{name}'" for name in tools)
            note = f" (too little traffic to judge {names} on their own)"
        return PROMOTE, (f"{cv} is no worse than {bv} after {n_c:,.0f} requests, enough to catch its error "
                         f"ratio rising from {_pct(errors.p0)} to {_pct(errors.p1)}"
                         f"{' or its requests slowing by ' + _slower(c) if len(overall) > 1 else ''}"
                         f"{note}: promote.")
    test, m = waiting[0]
    if test.no_data:
        return INCONCLUSIVE, f"No regression so far, but {test.name.replace('_', ' ')} cannot be compared " \
                             f"yet ({test.no_data}): wait."
    needed = m.required_requests
    need = f"about {needed:,} needed" if needed else "far more needed"
    return INCONCLUSIVE, (f"No regression so far, but {cv}'s {test.canary_requests:,.0f} requests are not "
                          f"enough to catch {_target(c, test)} ({need}): wait.")


def _scope_name(t: _Test) -> str:
    what = {ERRORS: "errors", LATENCY: "latency", SLOW_SHARE: "slow requests"}[t.name]
    return what if t.tool is None else f"{what} of tool '{t.tool}'"


def _worse(c: Comparison, t: _Test, m: Evidence) -> str:
    cv, bv = c.canary, c.baseline
    subject = "requests" if t.tool is None else f"calls to tool '{t.tool}'"
    if t.name == ERRORS:
        return f"{cv} fails {_pct(m.canary.ratio)} of {subject} against {_pct(m.baseline.ratio)} for {bv}"
    if t.name == SLOW_SHARE:
        return (f"{cv} answers {_pct(m.canary.ratio)} of {subject} in over {c.latency_threshold:g} s "
                f"against {_pct(m.baseline.ratio)} for {bv}")
    one, where = ("request", "") if t.tool is None else ("call", f" on {subject}")
    return (f"{cv} is slower than {bv}{where}: a {cv} {one} is slower than a {bv} {one} "
            f"{100 * m.effect.value:.0f}% of the time, ties counting half")


def _target(c: Comparison, t: _Test) -> str:
    if t.name == ERRORS:
        return f"its error ratio rising from {_pct(t.p0)} to {_pct(t.p1)}"
    if t.name == SLOW_SHARE:
        return f"its share of requests over {c.latency_threshold:g} s rising from {_pct(t.p0)} to {_pct(t.p1)}"
    return (f"its requests slowing by {_slower(c)} (a {c.canary} request slower than a {c.baseline} one "
            f"{t.cles:.0%} of the time on these buckets)")


def _slower(c: Comparison) -> str:
    return f"{c.latency_regression - 1:.0%}"


def _pct(x: float | None) -> str:
    if x is None:
        return "n/a"
    v = 100.0 * x
    if v == 0 or v >= 1:
        return f"{v:.1f}%"
    return f"{v:.2g}%" if v < 0.1 else f"{v:.2f}%"


def _p(p: float) -> str:
    if p <= 0.0:
        return "p < 1e-300"  # underflowed
    return f"p = {p:.1e}" if p < 0.001 else f"p = {p:.3f}"


def _num(x: float) -> str:
    if x >= 1e4:
        return f"{x:.1e}"
    return f"{x:.0f}" if x >= 10 else f"{x:.2g}"

"""How well the canary judge decides: false rollbacks, power and time to a decision,
beside a Kayenta-style and a Flagger-style judge on the same simulated traffic.

Each simulated canary run is 2 h of 30 s ticks at a 10% canary share; every tick the
judge (`slo.canary.judge.judge`) is asked about the counts accumulated since the canary
started, as the engine does (overall counts only, latency threshold 0.5 s). Per tick,
each version gets Poisson requests, binomial errors and log-normal latencies binned
into the default histogram buckets (and their sum, for a per-step mean latency).

- canary-aa: identical versions (1% errors, same latency), >= 1,000 runs; a run is a
  false rollback if any tick says rollback. Goal: at most 1%. Also: the share promoted
  within the run and the time to promote.
- canary-power-errors, canary-power-latency: the error ratio doubling (1% -> 2%) and the
  median latency x1.2. The power as a function of the canary's request count, and the
  count by which 80% of runs were rolled back, against the fixed-sample minimum for 80%
  power (`stats.fixed_sample_size`, `stats.fixed_sample_size_cles`, same alpha). Goal:
  at most 1.5x that minimum.
- canary-time: time to rollback (regressions) and to promote (A/A), median and p90.
- canary-judges: the three judges on the same runs, for independent traffic,
  autocorrelated traffic (a shared, slowly varying AR(1) multiplier on both versions'
  error ratio and latency: per-step points are no longer independent) and low traffic
  (1 request/s in all). Kayenta-style: Mann-Whitney U on the per-tick error ratio and mean
  latency series, 98% confidence, a metric failing when the test says "higher" and the
  canary's median per-step value exceeds the baseline's by more than 25%, analysed every
  30 min over the data since the start. Flagger-style: every minute, the canary's success
  rate over that minute >= 99% and its p99 (from the buckets) <= 500 ms, rollback at the
  5th failed check.

The judge costs about 3 ms a call, too much for every tick of every run. Ticks where it
cannot roll back are not judged: vectorized screens show it (each test's z short of its
boundary's lowest point by more than a margin, and an upper bound on its e-value, its largest
likelihood ratio, below the e-value threshold), and the judge decides the other ticks. The
first promotion is looked for in the first `promote_runs` runs of each scenario only:
ticks are skipped while the canary has well under the requests the judge says it needs,
then every tick is judged (the verdict flickers while a test hovers near its plan).
`--exact` judges every tick of every run instead, and checks the screens.

    python -m bench.bench_canary [--quick] [--runs N] [--hours H] [--workers W] [--promote-runs N] [--exact]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from bench._common import Result, paired_result
from collector.names import DEFAULT_BUCKETS
from slo.canary import stats
from slo.canary.judge import (ERRORS, LATENCY, PASSED, PROMOTE, ROLLBACK, SLOW_SHARE, Comparison, Counts, Design,
                              judge)

# --- the simulated canary ---------------------------------------------------------------------

TICK = 30.0  # seconds between two judgements, as the engine ticks
SHARE = 0.1  # the canary's share of requests
RATE = 20.0  # requests per second, both versions together
LOW_RATE = 1.0
HOURS = 2.0
ERROR_RATIO = 0.01
MEDIAN, SIGMA = 0.05, 0.8  # log-normal latency (s): p99 about 0.32 s, 0.2% over the threshold
THRESHOLD = 0.5  # the SLO's latency threshold (s), a bucket bound
ERROR_FACTOR, LATENCY_FACTOR = 2.0, 1.2  # the regressions
# Autocorrelated traffic: log multiplier x_t = PHI x_{t-1} + sqrt(1 - PHI^2) e_t, shared by
# both versions (load, a flaky dependency): e-folding time 20 ticks (10 min).
AR_PHI, AR_ERRORS, AR_LATENCY = 0.95, 0.5, 0.25
ALPHA, MIN_REQUESTS = 0.01, 200  # the Comparison defaults the engine uses
BOUNDS = tuple(DEFAULT_BUCKETS) + (math.inf,)
SEED = 20_240_611
CHUNK = 25  # runs a task simulates and judges (fixed, so results do not depend on the worker count)
NEAR = 0.7  # judge every tick once the canary has this share of the requests the judge needs to promote
GROWTH = 1.2  # and skip at most to this many times the canary's requests of the last judged tick

GOAL_FALSE_ROLLBACKS = 0.01
GOAL_POWER_RATIO = 1.5
POWER = 0.8
POWER_GRID = (200, 300, 400, 600, 800, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000)
FIXED_TICKS = 120  # the fixed-sample judge may pick any of the first 120 ticks (1 h) for its one look

KAYENTA_EVERY = 60  # ticks between analyses (30 min), each over the data since the start
KAYENTA_CONFIDENCE = 0.98
KAYENTA_TOLERANCE = 0.25
FLAGGER_SUCCESS = 0.99  # minimum success rate over the last minute
FLAGGER_P99 = 0.5  # seconds, maximum p99 over the last minute
FLAGGER_THRESHOLD = 5  # failed checks before a rollback
FLAGGER_ITERATIONS = 10  # passing checks before Flagger promotes (its analysis then ends)

KINDS = ("independent", "autocorrelated", "low")
CASES = ("aa", "errors", "latency")
CASE_TITLES = {"aa": "A/A", "errors": f"errors x{ERROR_FACTOR:g}", "latency": f"latency x{LATENCY_FACTOR:g}"}
JUDGES = ("mcp-slo", "kayenta", "flagger", "flagger-promoting")
JUDGE_TITLES = {"mcp-slo": "mcp-slo judge", "kayenta": "Kayenta-style", "flagger": "Flagger-style",
                "flagger-promoting": f"Flagger, promoting after {FLAGGER_ITERATIONS} passes"}


@dataclass(frozen=True)
class Scenario:
    kind: str  # independent | autocorrelated | low
    case: str  # aa | errors | latency
    rate: float
    autocorrelated: bool
    errors: tuple[float, float]  # error ratio (baseline, canary)
    medians: tuple[float, float]  # latency median (baseline, canary)

    @property
    def seed_key(self) -> tuple[int, int]:  # stable, whichever scenarios a run asks for
        return KINDS.index(self.kind), CASES.index(self.case)


def scenario(kind: str, case: str) -> Scenario:
    errors = (ERROR_RATIO, ERROR_RATIO * (ERROR_FACTOR if case == "errors" else 1.0))
    medians = (MEDIAN, MEDIAN * (LATENCY_FACTOR if case == "latency" else 1.0))
    return Scenario(kind, case, LOW_RATE if kind == "low" else RATE, kind == "autocorrelated", errors, medians)


@dataclass
class Version:
    """One version's traffic per run and tick: (runs, ticks) arrays, buckets (runs, ticks, 9)."""

    requests: np.ndarray
    errors: np.ndarray
    buckets: np.ndarray  # per tick and bucket; `cumulative` makes them cumulative over time and `le`
    latency_sum: np.ndarray  # seconds, for the per-step mean latency

    def cumulative(self) -> Version:
        """Counts since the canary started, buckets cumulative over `le` too (Prometheus style)."""
        return Version(self.requests.cumsum(axis=1), self.errors.cumsum(axis=1),
                       self.buckets.cumsum(axis=1).cumsum(axis=2), self.latency_sum.cumsum(axis=1))


def _ar1(rng: np.random.Generator, runs: int, ticks: int) -> np.ndarray:
    """Stationary AR(1) paths with unit variance, one per run."""
    x = np.empty((runs, ticks))
    x[:, 0] = rng.standard_normal(runs)
    noise = rng.standard_normal((runs, ticks)) * math.sqrt(1.0 - AR_PHI ** 2)
    for t in range(1, ticks):
        x[:, t] = AR_PHI * x[:, t - 1] + noise[:, t]
    return x


def _version(rng: np.random.Generator, rate: float, error_ratio: float, median: float,
             error_mult: np.ndarray, log_latency_shift: np.ndarray) -> Version:
    runs, ticks = error_mult.shape
    requests = rng.poisson(rate * TICK, size=(runs, ticks))
    errors = rng.binomial(requests, np.clip(error_ratio * error_mult, 0.0, 1.0))
    # One latency per request: its tick's log-normal, binned by `le` (x <= bound), summed per tick.
    which = np.repeat(np.arange(runs * ticks), requests.ravel())
    log_latency = math.log(median) + log_latency_shift.ravel()[which] + SIGMA * rng.standard_normal(which.size)
    bucket = np.searchsorted(np.log(DEFAULT_BUCKETS), log_latency, side="left")
    buckets = np.bincount(which * len(BOUNDS) + bucket, minlength=runs * ticks * len(BOUNDS))
    latency_sum = np.bincount(which, weights=np.exp(log_latency), minlength=runs * ticks)
    return Version(requests, errors, buckets.reshape(runs, ticks, len(BOUNDS)), latency_sum.reshape(runs, ticks))


def simulate(sc: Scenario, runs: int, ticks: int, rng: np.random.Generator) -> tuple[Version, Version]:
    """(baseline, canary) traffic of `runs` canary runs of `ticks` ticks."""
    if sc.autocorrelated:
        x = _ar1(rng, runs, ticks)
        error_mult = np.exp(AR_ERRORS * x - AR_ERRORS ** 2 / 2)  # mean 1
        log_shift = AR_LATENCY * x
    else:
        error_mult, log_shift = np.ones((runs, ticks)), np.zeros((runs, ticks))
    return tuple(_version(rng, sc.rate * share, err, med, error_mult, log_shift)  # type: ignore[return-value]
                 for share, err, med in zip((1.0 - SHARE, SHARE), sc.errors, sc.medians))


# --- our judge --------------------------------------------------------------------------------

TESTS = (ERRORS, LATENCY, SLOW_SHARE)  # the judge's tests of overall counts
N_TESTS = len(TESTS)  # its Bonferroni K
DESIGN = Design.for_family(N_TESTS, ALPHA)  # the judge's boundary, planned drift and e-value threshold
LOG_E_THRESHOLD = math.log(DESIGN.e_threshold)
Z_MARGIN = 0.5  # the screens' z may fall short of the boundary by this much (exact p-values, variances)
SLOW_BUCKET = DEFAULT_BUCKETS.index(THRESHOLD)


def _log_lr_binomial(bad_c: np.ndarray, bad_b: np.ndarray, share: np.ndarray) -> np.ndarray:
    """log of the largest likelihood ratio (canary share of bad events pi > share against
    pi = share): m KL(k/m || share) when k/m > share, else 0. The judge's mixture e-value
    averages such ratios, so it is never larger."""
    m = bad_c + bad_b
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(m > 0, bad_c / np.maximum(m, 1), 0.0)
        kl = (np.where(p > 0, p * np.log(p / share), 0.0)
              + np.where(p < 1, (1 - p) * np.log((1 - p) / (1 - share)), 0.0))
    return np.where(p > share, m * kl, 0.0)


def _binomial_z(bad_c: np.ndarray, bad_b: np.ndarray, total_c: np.ndarray, total_b: np.ndarray) -> np.ndarray:
    """z of the judge's conditional binomial test, vectorized (the normal approximation of
    its exact p-value, whose upper tail is heavier here: the exact test rejects less)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        share = total_c / (total_c + total_b)
        m = bad_c + bad_b
        z = (bad_c - m * share) / np.sqrt(m * share * (1.0 - share))
    return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)


def _latency_z(base_le: np.ndarray, can_le: np.ndarray) -> np.ndarray:
    """Mann-Whitney z of canary against baseline on cumulative buckets, with the
    tie-corrected null variance: the judge's variance is never smaller, its z never larger."""
    b = np.diff(base_le, axis=-1, prepend=0.0)
    c = np.diff(can_le, axis=-1, prepend=0.0)
    n_b, n_c = base_le[..., -1], can_le[..., -1]
    u = (c * (base_le - b + 0.5 * b)).sum(axis=-1)
    t = b + c
    n = n_b + n_c
    with np.errstate(divide="ignore", invalid="ignore"):
        ties = (t ** 3 - t).sum(axis=-1) / (n * (n - 1))
        variance = n_c * n_b / 12.0 * ((n + 1) - ties)
        z = (u - 0.5 * n_c * n_b) / np.sqrt(variance)
    return np.where(variance > 0, z, 0.0)


def could_roll_back(base: Version, can: Version) -> np.ndarray:
    """(runs, ticks): True where some test may reject. Its boundary never asks for a z
    below b (b / sqrt(t) up to t = 1, then rising), so a z short of b by more than a margin
    cannot reject; nor can an e-value whose upper bound (the largest likelihood ratio) is
    under the threshold. Other ticks are not judged; `every_tick` checks the judge agrees."""
    total_b, total_c = base.buckets[..., -1], can.buckets[..., -1]
    slow_b, slow_c = total_b - base.buckets[..., SLOW_BUCKET], total_c - can.buckets[..., SLOW_BUCKET]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = can.requests / (can.requests + base.requests)
        histogram_share = total_c / (total_c + total_b)
    latency_z = _latency_z(base.buckets, can.buckets)
    z = np.maximum(np.maximum(_binomial_z(can.errors, base.errors, can.requests, base.requests),
                              _binomial_z(slow_c, slow_b, total_c, total_b)), latency_z)
    errors = _log_lr_binomial(can.errors, base.errors, share)
    slow = _log_lr_binomial(slow_c, slow_b, histogram_share)
    latency = np.where(latency_z > 0, latency_z ** 2 / 2, 0.0)  # the CLES e-value is at most exp(z^2 / 2)
    e_near = np.maximum(np.maximum(errors, slow), latency) >= LOG_E_THRESHOLD - 1e-9
    return (can.requests >= MIN_REQUESTS) & ((z >= DESIGN.boundary - Z_MARGIN) | e_near)


def _counts(v: Version, r: int, t: int) -> Counts:
    return Counts(float(v.requests[r, t]), float(v.errors[r, t]),
                  tuple(zip(BOUNDS, v.buckets[r, t].astype(float).tolist())))


def _comparison(base: Version, can: Version, r: int, t: int) -> Comparison:
    return Comparison("bench", "baseline", "canary", overall=(_counts(base, r, t), _counts(can, r, t)),
                      latency_threshold=THRESHOLD, min_requests=MIN_REQUESTS, alpha=ALPHA)


def fixed_sample_rejects(base: Version, can: Version, t: int, alpha: float) -> np.ndarray:
    """Per run: does a fixed-sample judge, looking once at tick `t` (fixed in advance),
    reject with the same three tests (exact conditional binomial for errors and slow share,
    Mann-Whitney on the buckets) at family-wise alpha (Bonferroni)? The comparator of the
    power benchmark, on the same runs and the same ticks."""
    runs = can.requests.shape[0]
    out = np.zeros(runs, dtype=bool)
    for r in range(runs):
        share = can.requests[r, t] / (can.requests[r, t] + base.requests[r, t])
        b_le, c_le = base.buckets[r, t], can.buckets[r, t]
        slow_share = c_le[-1] / (c_le[-1] + b_le[-1])
        p = min(stats.conditional_binomial_p(can.errors[r, t], base.errors[r, t], share),
                stats.conditional_binomial_p(c_le[-1] - c_le[SLOW_BUCKET], b_le[-1] - b_le[SLOW_BUCKET], slow_share),
                stats.mann_whitney_buckets(np.diff(c_le, prepend=0.0).tolist(),
                                           np.diff(b_le, prepend=0.0).tolist()).p_value)
        out[r] = p <= alpha / N_TESTS
    return out


NOT_SEARCHED = -2  # promote tick of a run whose first promotion was not looked for


class RunJudge:
    """Our judge over one simulated run: the first rollback and the first promotion."""

    def __init__(self, base: Version, can: Version, candidates: np.ndarray, r: int):
        self.base, self.can, self.r = base, can, r
        self.candidates = candidates  # ticks where a rollback is possible
        self.calls = 0
        self.rollback_test = -1  # index in TESTS of the test with the most evidence at the rollback

    def decide(self, t: int):
        self.calls += 1
        return judge(_comparison(self.base, self.can, self.r, t))

    def first_rollback(self) -> int | None:
        for t in self.candidates:
            decision = self.decide(t)
            if decision.verdict == ROLLBACK:
                self.rollback_test = self._leading_test(decision)
                return int(t)
        return None

    @staticmethod
    def _leading_test(decision) -> int:
        """The rejecting test furthest past its boundary (smallest p over the level to reject)."""
        failed = [m for m in decision.metrics if m.rejected_by]
        return TESTS.index(min(failed, key=lambda m: m.sequential.p_value / max(m.sequential.reject_at, 1e-300)).name)

    @staticmethod
    def _needed(decision, n_c: float) -> float:
        """Canary requests before the judge could promote, by its own account."""
        need = n_c + 1
        for m in decision.metrics:
            if m.tool is not None or m.status == PASSED:
                continue
            if m.required_requests:
                need = max(need, m.required_requests)
            else:  # no information yet: out of reach for now
                need = math.inf
        return need

    def first_promote(self, end: int) -> int | None:
        """The first tick before `end` the judge promotes. Ticks are skipped while the canary
        has under NEAR of the requests the judge says it needs; from there every tick is
        judged, since the verdict flickers while a test's power hovers around 80%. That
        estimate moves with the baseline's ratios, so a skip never goes beyond GROWTH times
        the canary's requests."""
        requests = self.can.requests[self.r]
        t = int(np.searchsorted(requests, MIN_REQUESTS))  # below min_requests: inconclusive
        while t < end:
            decision = self.decide(t)
            if decision.verdict == PROMOTE:
                return t
            if decision.verdict == ROLLBACK:
                raise AssertionError(f"run {self.r} tick {t}: a rollback before the first one found")
            target = min(NEAR * self._needed(decision, requests[t]), GROWTH * requests[t])
            t = max(t + 1, int(np.searchsorted(requests, target)))
        return None

    def every_tick(self) -> tuple[int | None, int | None]:
        """The reference: judge every tick (up to the first rollback), checking the screens."""
        promote = None
        candidates = set(self.candidates.tolist())
        for t in range(self.can.requests.shape[1]):
            decision = self.decide(t)
            if decision.verdict == ROLLBACK and t not in candidates:
                raise AssertionError(f"run {self.r} tick {t}: the judge rolls back where the screens said it could not")
            if decision.verdict == PROMOTE and promote is None:
                promote = t
            if decision.verdict == ROLLBACK:
                self.rollback_test = self._leading_test(decision)
                return t, promote
        return None, promote


# --- the comparators ----------------------------------------------------------------------


def mann_whitney_z(x: np.ndarray, y: np.ndarray) -> float:
    """z of Mann-Whitney U for x against y (> 0: x tends to be larger), normal
    approximation with the tie correction; average ranks for ties."""
    nx, ny = len(x), len(y)
    _, inverse, counts = np.unique(np.concatenate([x, y]), return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]
    u = ranks[:nx].sum() - nx * (nx + 1) / 2.0
    n = nx + ny
    variance = nx * ny / 12.0 * ((n + 1) - (counts ** 3 - counts).sum() / (n * (n - 1)))
    return 0.0 if variance <= 0 else (u - nx * ny / 2.0) / math.sqrt(variance)


def kayenta_metric_fails(canary: np.ndarray, baseline: np.ndarray) -> bool:
    """Kayenta-style classification of one metric (direction: increase), per-step values
    with NaNs removed: the test says the canary is higher at 98% confidence (two-sided),
    and the canary's median exceeds the baseline's by more than the 25% tolerance."""
    canary, baseline = canary[~np.isnan(canary)], baseline[~np.isnan(baseline)]
    if len(canary) < 2 or len(baseline) < 2:
        return False  # no data: Kayenta leaves the metric out
    z = mann_whitney_z(canary, baseline)
    p = 2.0 * (1.0 - stats.normal_cdf(abs(z)))
    higher = z > 0 and p < 1.0 - KAYENTA_CONFIDENCE
    return higher and np.median(canary) > (1.0 + KAYENTA_TOLERANCE) * np.median(baseline)


def kayenta(base: Version, can: Version) -> np.ndarray:
    """Per run, the tick of the first failing analysis (-1: none). Every KAYENTA_EVERY ticks,
    over the per-tick points since the start; one failing metric fails the analysis (with
    two metrics its score is at most 50, below any usual marginal threshold)."""
    runs, ticks = can.requests.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        series = [(v.errors / v.requests, v.latency_sum / v.requests) for v in (base, can)]
    out = np.full(runs, -1)
    for r in range(runs):
        for end in range(KAYENTA_EVERY, ticks + 1, KAYENTA_EVERY):
            if any(kayenta_metric_fails(c[r, :end], b[r, :end]) for b, c in zip(*series)):
                out[r] = end - 1
                break
    return out


def histogram_p99(per_bucket: np.ndarray) -> np.ndarray:
    """Prometheus's histogram_quantile(0.99, ...) over the last axis (per-bucket counts):
    linear within the bucket, the highest finite bound when it falls in +Inf, NaN without data."""
    cum = per_bucket.cumsum(axis=-1).astype(float)
    total = cum[..., -1]
    rank = 0.99 * total
    i = np.argmax(cum >= rank[..., None], axis=-1)
    upper_bounds = np.array(BOUNDS[:-1] + (BOUNDS[-2],))
    lower_bounds = np.array((0.0,) + BOUNDS[:-2] + (BOUNDS[-2],))
    below = np.where(i > 0, np.take_along_axis(cum, np.maximum(i - 1, 0)[..., None], -1)[..., 0], 0.0)
    inside = np.take_along_axis(cum, i[..., None], -1)[..., 0] - below
    lo, hi = lower_bounds[i], upper_bounds[i]
    with np.errstate(divide="ignore", invalid="ignore"):
        value = lo + (hi - lo) * np.where(inside > 0, (rank - below) / inside, 1.0)
    return np.where(total > 0, value, np.nan)


def flagger(can: Version, promoting: bool) -> np.ndarray:
    """Per run, the tick of the Flagger-style rollback (-1: none): a check every minute on
    that minute's canary traffic, rollback at the FLAGGER_THRESHOLD-th failed check
    (failed checks accumulate, as Flagger's FailedChecks does); no traffic fails a check.
    With `promoting`, the analysis ends with a promotion after FLAGGER_ITERATIONS passes."""
    runs, ticks = can.requests.shape
    n_minutes = ticks // 2

    def per_minute(a: np.ndarray) -> np.ndarray:
        return a[:, :2 * n_minutes:2] + a[:, 1:2 * n_minutes:2]

    requests, errors = per_minute(can.requests), per_minute(can.errors)
    p99 = histogram_p99(per_minute(can.buckets))
    failed = ((requests == 0) | (errors > (1.0 - FLAGGER_SUCCESS) * requests + 1e-9)
              | ~(p99 <= FLAGGER_P99 + 1e-12))
    rolled = np.cumsum(failed, axis=1) >= FLAGGER_THRESHOLD
    first = np.where(rolled.any(axis=1), rolled.argmax(axis=1), -1)
    if promoting:
        promoted = np.cumsum(~failed, axis=1) >= FLAGGER_ITERATIONS
        first_promoted = np.where(promoted.any(axis=1), promoted.argmax(axis=1), n_minutes)
        first = np.where(first > first_promoted, -1, first)
    return np.where(first >= 0, 2 * first + 1, -1)


# --- one task: a chunk of runs of one scenario -------------------------------------------------


@dataclass(frozen=True)
class Task:
    scenario: Scenario
    chunk: int
    runs: int
    ticks: int
    exact: bool = False
    promote_runs: int = 0  # look for the first promotion in this many of the scenario's first runs


def run_task(task: Task) -> dict[str, np.ndarray]:
    """Simulate a chunk of runs and judge them with the three judges; ticks (-1: never)."""
    rng = np.random.default_rng(np.random.SeedSequence([SEED, *task.scenario.seed_key, task.chunk]))
    base, can = simulate(task.scenario, task.runs, task.ticks, rng)
    cum_b, cum_c = base.cumulative(), can.cumulative()
    screen = could_roll_back(cum_b, cum_c)
    rollback, promote, calls, test = (np.full(task.runs, -1) for _ in range(4))
    for r in range(task.runs):
        run = RunJudge(cum_b, cum_c, np.flatnonzero(screen[r]), r)
        if task.exact:
            rb, pr = run.every_tick()
        else:
            rb = run.first_rollback()
            # Finding the first promotion costs judgements (one a tick near it): the first runs only.
            searched = task.chunk * CHUNK + r < task.promote_runs
            pr = run.first_promote(task.ticks if rb is None else rb) if searched else NOT_SEARCHED
        rollback[r] = -1 if rb is None else rb
        promote[r] = -1 if pr is None else pr
        calls[r], test[r] = run.calls, run.rollback_test
    at = np.maximum(rollback, 0)
    fixed = np.zeros((task.runs, min(task.ticks, FIXED_TICKS)), dtype=bool)
    if task.scenario.case != "aa" and task.scenario.kind == "independent":
        for t in range(fixed.shape[1]):
            fixed[:, t] = fixed_sample_rejects(cum_b, cum_c, t, ALPHA)
    return {
        "fixed_sample": fixed,
        "canary_requests": cum_c.requests[:, :fixed.shape[1]],
        "mcp-slo": rollback, "promote": promote, "judge_calls": calls, "rollback_test": test,
        "canary_at_rollback": np.where(rollback >= 0, cum_c.requests[np.arange(task.runs), at], -1),
        "canary_final": cum_c.requests[:, -1],
        "kayenta": kayenta(base, can),
        "flagger": flagger(can, promoting=False),
        "flagger-promoting": flagger(can, promoting=True),
    }


def simulate_all(scenarios: Sequence[Scenario], runs: int, ticks: int, workers: int, exact: bool = False,
                 promote_runs: int = 0) -> dict[Scenario, dict[str, np.ndarray]]:
    """Every scenario's runs, in fixed chunks (seeded by scenario and chunk), over `workers` processes."""
    tasks = [Task(sc, k, min(CHUNK, runs - k * CHUNK), ticks, exact, promote_runs)
             for sc in scenarios for k in range(math.ceil(runs / CHUNK))]
    order = sorted(range(len(tasks)), key=lambda i: tasks[i].chunk * CHUNK >= promote_runs)  # slow ones first
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            done = list(pool.map(run_task, [tasks[i] for i in order]))
    else:
        done = [run_task(tasks[i]) for i in order]
    outcomes = dict(zip(order, done))
    merged: dict[Scenario, dict[str, np.ndarray]] = {}
    for sc in scenarios:
        parts = [outcomes[i] for i, t in enumerate(tasks) if t.scenario == sc]  # in chunk order
        merged[sc] = {key: np.concatenate([o[key] for o in parts]) for key in parts[0]}
    return merged


# --- figures ------------------------------------------------------------------------------


def minutes(tick: np.ndarray | int) -> np.ndarray:
    """Time of a tick's judgement since the canary started (tick 0 is judged after 30 s)."""
    return (np.asarray(tick) + 1) * TICK / 60.0


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a proportion."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def decision_minutes(ticks: np.ndarray) -> np.ndarray:
    """Sorted decision times (min) of runs, inf for a run that ended undecided."""
    return np.sort(np.where(ticks >= 0, minutes(ticks), np.inf))


def quantile_min(ticks: np.ndarray, q: float) -> float:
    """The q-quantile of the decision times over all runs (inf: later than the run)."""
    m = decision_minutes(ticks)
    return float(m[max(0, math.ceil(q * len(m)) - 1)])


def quantiles_min(ticks: np.ndarray, horizon: float) -> str:
    """'median .. min, p90 .. min' over all runs, '> horizon' where the runs ended undecided."""
    def one(q: float) -> str:
        v = quantile_min(ticks, q)
        return f"{v:.1f} min" if math.isfinite(v) else f"> {horizon:g} min"
    return f"median {one(0.5)}, p90 {one(0.9)}" if len(ticks) else "no runs"


def latency_probabilities(median: float) -> np.ndarray:
    """Probability of each bucket for a log-normal latency."""
    cdf = [stats.normal_cdf(math.log(b / median) / SIGMA) for b in DEFAULT_BUCKETS] + [1.0]
    return np.diff(cdf, prepend=0.0)


def bucketed_cles() -> tuple[float, float]:
    """(CLES on the buckets, ties counting half; CLES of the continuous latencies) of the
    latency regression: the judge sees only the former."""
    qb, qc = latency_probabilities(MEDIAN), latency_probabilities(MEDIAN * LATENCY_FACTOR)
    bucketed = float((qc * (np.cumsum(qb) - qb / 2)).sum())
    continuous = stats.normal_cdf(math.log(LATENCY_FACTOR) / (SIGMA * math.sqrt(2)))
    return bucketed, continuous


def requests_for_power(at_rollback: np.ndarray) -> float:
    """The canary request count by which POWER of the runs were rolled back (inf: never)."""
    n = np.sort(np.where(at_rollback >= 0, at_rollback, np.inf))
    return float(n[math.ceil(POWER * len(n)) - 1])


def scenario_params(runs: int, ticks: int) -> dict:
    return {"runs": runs, "ticks": ticks, "tick_s": TICK, "hours": ticks * TICK / 3600, "canary_share": SHARE,
            "rate_per_s": RATE, "low_rate_per_s": LOW_RATE, "error_ratio": ERROR_RATIO,
            "latency_median_s": MEDIAN, "latency_sigma": SIGMA, "latency_threshold_s": THRESHOLD,
            "alpha": ALPHA, "min_requests": MIN_REQUESTS, "seed": SEED}


def by_test(out: dict[str, np.ndarray]) -> str:
    """How many rollbacks each test led (had the most evidence)."""
    codes = out["rollback_test"][out["mcp-slo"] >= 0]
    return ", ".join(f"{name.replace('_', ' ')} {int((codes == i).sum())}" for i, name in enumerate(TESTS))


def aa_result(out: dict[str, np.ndarray], runs: int, ticks: int) -> Result:
    false = int((out["mcp-slo"] >= 0).sum())
    rate = false / runs
    low, high = wilson(false, runs)
    searched = out["promote"][out["promote"] != NOT_SEARCHED]
    horizon = ticks * TICK / 60
    ours = max(100 * rate, 1e-6)  # kept > 0 so the ratio stays defined with no false rollback
    goal = 100 * GOAL_FALSE_ROLLBACKS
    return Result(
        name="canary-aa", title=f"A/A false rollbacks: {runs:,} runs of {horizon / 60:g} h at {RATE:g} req/s, "
                                f"{SHARE:.0%} canary, judged every {TICK:g} s",
        unit="%", ours_label="mcp-slo judge", base_label="goal", ours=ours, base=goal, ours_iqr=(ours, ours),
        base_iqr=(goal, goal), diff=ours - goal, diff_iqr=(ours - goal,) * 2, ratio=ours / goal,
        ratio_iqr=(ours / goal,) * 2, limit=None, rounds=1, per_round=runs, params=scenario_params(runs, ticks),
        notes=[f"false rollbacks: {false} of {runs:,} runs ({pct(rate)}, 95% CI {pct(low)} .. {pct(high)})"
               + (f", at {', '.join(f'{m:.1f}' for m in decision_minutes(out['mcp-slo'])[:false])} min; "
                  f"by test (the most evidence): {by_test(out)}; the judge's bound at alpha {ALPHA:g} is "
                  f"{pct(ALPHA)}, {pct(ALPHA / N_TESTS)} a test" if false else ""),
               f"promoted within the run (first {len(searched)} runs): {pct(float((searched >= 0).mean()))}; "
               f"time to promote {quantiles_min(searched, horizon)}",
               f"judge calls: {out['judge_calls'].sum():,} ({out['judge_calls'].mean():.1f} a run; ticks that "
               "cannot roll back are not judged, see the module docstring)"],
        goal=f"false rollback rate <= {GOAL_FALSE_ROLLBACKS:.0%}", goal_met=rate <= GOAL_FALSE_ROLLBACKS)


def fixed_minimum(case: str, alpha: float = ALPHA) -> int:
    """Canary requests a fixed-sample test needs for POWER against the regression of `case`."""
    if case == "errors":
        return stats.fixed_sample_size(ERROR_RATIO, ERROR_RATIO * ERROR_FACTOR, SHARE, alpha, POWER)
    return stats.fixed_sample_size_cles(bucketed_cles()[0], SHARE, alpha, POWER)


def fixed_for_power(fixed: np.ndarray, requests: np.ndarray) -> float:
    """Canary requests (median over runs) at the first tick where a single look of the
    fixed-sample judge rejects in POWER of the runs (inf: none within FIXED_TICKS)."""
    reached = np.flatnonzero(fixed.mean(axis=0) >= POWER)
    return float(np.median(requests[:, reached[0]])) if len(reached) else math.inf


def power_result(case: str, out: dict[str, np.ndarray], runs: int, ticks: int, bootstrap: int) -> Result:
    cap = float(np.median(out["canary_final"]))  # canary requests in a whole run
    at, fixed, requests = out["canary_at_rollback"], out["fixed_sample"], out["canary_requests"]
    formula = fixed_minimum(case)
    if case == "errors":
        what = f"error ratio {pct(ERROR_RATIO)} -> {pct(ERROR_RATIO * ERROR_FACTOR)}"
        yardstick = "stats.fixed_sample_size: two proportions, Fleiss, normal approximation"
    else:
        cles, continuous = bucketed_cles()
        what = f"median latency x{LATENCY_FACTOR:g} (log-normal, sigma {SIGMA:g})"
        yardstick = (f"stats.fixed_sample_size_cles at the CLES on the buckets, {cles:.3f}; on continuous "
                     f"latencies, CLES {continuous:.3f}, it would be "
                     f"{stats.fixed_sample_size_cles(continuous, SHARE, ALPHA, POWER)}")
    n80 = min(requests_for_power(at), cap)  # censored at a whole run's canary requests
    reached = n80 < cap
    n80_fixed = fixed_for_power(fixed, requests)
    # The spread of both 80% points: the same bootstrap resamples of the runs, paired.
    rng = np.random.default_rng(SEED)
    samples = [rng.integers(0, runs, runs) for _ in range(bootstrap)]
    ours = [min(requests_for_power(at[i]), cap) for i in samples]
    base = [fixed_for_power(fixed[i], requests[i]) for i in samples]
    curve = ", ".join(f"{n:,}: {pct(float(((at >= 0) & (at <= n)).mean()))}" for n in POWER_GRID if n <= cap)
    searched = out["promote"][out["promote"] != NOT_SEARCHED]
    wrong = int((searched >= 0).sum())  # promotions are only looked for before the first rollback
    bonferroni = fixed_minimum(case, ALPHA / N_TESTS)
    result = paired_result(
        name=f"canary-power-{case}",
        title=f"canary requests to roll back 80% of runs, {what}, vs a fixed-sample judge",
        unit="requests", ours_label="mcp-slo judge, every tick (80% rolled back)",
        base_label="fixed-sample judge, one look (80% rejected)",
        ours_rounds=ours, base_rounds=base, limit=GOAL_POWER_RATIO, per_round=runs,
        params={**scenario_params(runs, ticks), "case": case, "bootstrap": bootstrap, "power": POWER},
        notes=[f"80% of runs rolled back by {n80:,.0f} canary requests"
               + ("" if reached else f" (not reached within the run: > {cap:,.0f})")
               + f"; a fixed-sample judge making the same three tests (exact binomial, Mann-Whitney on the buckets) "
                 f"at the same family-wise alpha {ALPHA:g} (Bonferroni), looking once at the best tick fixed in "
                 f"advance, on the same runs, rejects 80% at {n80_fixed:,.0f}: ratio {n80 / n80_fixed:.2f} (goal line); figures over {bootstrap} paired "
                 "bootstrap resamples of the runs",
               f"the textbook minimum for one test at alpha {ALPHA:g} ({yardstick}) is {formula:,}: ratio "
               f"{n80 / formula:.2f}; at alpha {ALPHA:g}/{N_TESTS}, {bonferroni:,}: ratio {n80 / bonferroni:.2f}; "
               f"min_requests alone is {MIN_REQUESTS / formula:.2f}x the former",
               f"power by canary requests: {curve}",
               f"rolled back within the run: {pct(float((at >= 0).mean()))}; time to rollback "
               f"{quantiles_min(out['mcp-slo'], ticks * TICK / 60)}",
               f"promoted before any rollback (a missed regression): {wrong} of the first {len(searched)} runs"])
    if not reached:
        result.goal, result.goal_met = f"80% power within {GOAL_POWER_RATIO:g}x the fixed-sample judge", False
    return result


def time_result(outs: dict[Scenario, dict[str, np.ndarray]], runs: int, ticks: int) -> Result:
    rollbacks = outs[scenario("independent", "errors")]["mcp-slo"]
    horizon = ticks * TICK / 60
    fixed = fixed_minimum("errors") / (RATE * SHARE * 60)  # minutes to collect a fixed-sample test's requests
    # quartiles over all runs; a run not rolled back counts as the whole run (censored)
    q1, median, q3 = (min(quantile_min(rollbacks, q), horizon) for q in (0.25, 0.5, 0.75))
    notes = [f"a fixed-sample test with {POWER:.0%} power for the error regression decides once, after "
             f"{fixed_minimum('errors'):,} canary requests ({fixed:.1f} min at {RATE * SHARE:g} canary req/s)",
             "over all runs, '>' where more runs than that were still undecided when they ended:"]
    for sc, out in outs.items():
        if sc.case == "aa":
            searched = out["promote"][out["promote"] != NOT_SEARCHED]
            notes.append(f"{sc.kind}, A/A: promoted {pct(float((searched >= 0).mean()))} of the first "
                         f"{len(searched)} runs, time to promote {quantiles_min(searched, horizon)}")
        else:
            notes.append(f"{sc.kind}, {CASE_TITLES[sc.case]}: rolled back {pct(float((out['mcp-slo'] >= 0).mean()))}, "
                         f"time to rollback {quantiles_min(out['mcp-slo'], horizon)}")
    return Result(
        name="canary-time", title=f"time to roll back an error ratio x{ERROR_FACTOR:g} ({RATE:g} req/s, "
                                  f"{SHARE:.0%} canary) vs a fixed-sample test's duration",
        unit="min", ours_label="mcp-slo judge (median)", base_label="fixed-sample test", ours=median,
        base=fixed, ours_iqr=(q1, q3), base_iqr=(fixed, fixed), diff=median - fixed,
        diff_iqr=(q1 - fixed, q3 - fixed), ratio=median / fixed, ratio_iqr=(q1 / fixed, q3 / fixed),
        limit=None, rounds=1, per_round=runs, params=scenario_params(runs, ticks), notes=notes)


def judges_result(outs: dict[Scenario, dict[str, np.ndarray]], runs: int, ticks: int) -> Result:
    """The three judges side by side: a table in the notes; ours vs the best comparator on
    the mean error (the mean of the A/A false rollback rate and the regression miss rate)."""
    kinds = list(dict.fromkeys(sc.kind for sc in outs))

    def rate(sc: Scenario, j: str) -> float:
        return float((outs[sc][j] >= 0).mean())

    def mean_error(j: str) -> float:
        false = [rate(sc, j) for sc in outs if sc.case == "aa"]
        missed = [1.0 - rate(sc, j) for sc in outs if sc.case != "aa"]
        parts = [float(np.mean(x)) for x in (false, missed) if x]
        return float(np.mean(parts))

    cases = [c for c in CASES if any(sc.case == c for sc in outs)]

    def cell(sc: Scenario, j: str) -> str:  # share rolled back (median time to rollback)
        if sc not in outs:
            return f" {'':>24}"
        decided = outs[sc][j][outs[sc][j] >= 0]
        when = f"med {np.median(minutes(decided)):.0f} min" if len(decided) else "-"
        return f" {pct(rate(sc, j)):>7} ({when:>14})"

    table = [f"{'traffic':<15} {'judge':<38}" + "".join(
        f" {('A/A false rollbacks' if c == 'aa' else CASE_TITLES[c] + ' caught'):>24}" for c in cases)]
    table += [f"{kind:<15} {JUDGE_TITLES[j]:<38}" + "".join(cell(scenario(kind, c), j) for c in cases)
              for kind in kinds for j in JUDGES]
    errors = {j: mean_error(j) for j in JUDGES}
    best = min(("kayenta", "flagger", "flagger-promoting"), key=lambda j: errors[j])
    ours, base = max(100 * errors["mcp-slo"], 1e-6), max(100 * errors[best], 1e-6)
    notes = [f"{len(kinds)} traffic kinds x {len(cases)} cases, {runs:,} runs each of {ticks * TICK / 3600:g} h; "
             "share of runs rolled back within the run (median time to rollback):", *table,
             "mean error (mean of the A/A false rollback rate and the regression miss rate): "
             + ", ".join(f"{JUDGE_TITLES[j]} {pct(errors[j])}" for j in JUDGES),
             f"traffic: independent {RATE:g} req/s; autocorrelated {RATE:g} req/s with a shared AR(1) multiplier "
             f"(phi {AR_PHI:g} a tick, log-sd {AR_ERRORS:g} on the error ratio, {AR_LATENCY:g} on latency); "
             f"low {LOW_RATE:g} req/s ({LOW_RATE * SHARE * TICK:g} canary requests a tick)",
             f"Kayenta-style: every {KAYENTA_EVERY * TICK / 60:g} min over the {TICK:g} s points since the start, "
             f"Mann-Whitney at {KAYENTA_CONFIDENCE:.0%} and a {KAYENTA_TOLERANCE:.0%} tolerance on medians; "
             f"Flagger-style: every minute, success rate >= {FLAGGER_SUCCESS:.0%} and p99 <= {FLAGGER_P99 * 1000:g} ms "
             f"over that minute, rollback at {FLAGGER_THRESHOLD} failed checks"]
    return Result(
        name="canary-judges", title="mcp-slo vs Kayenta-style vs Flagger-style judges on the same runs",
        unit="% err", ours_label="mcp-slo judge", base_label=f"best comparator: {JUDGE_TITLES[best]}",
        ours=ours, base=base, ours_iqr=(ours, ours), base_iqr=(base, base), diff=ours - base,
        diff_iqr=(ours - base,) * 2, ratio=ours / base, ratio_iqr=(ours / base,) * 2, limit=None,
        rounds=1, per_round=runs * len(outs),
        params={**scenario_params(runs, ticks), "kinds": kinds, "kayenta_every_ticks": KAYENTA_EVERY,
                "kayenta_confidence": KAYENTA_CONFIDENCE, "kayenta_tolerance": KAYENTA_TOLERANCE,
                "flagger_success": FLAGGER_SUCCESS, "flagger_p99_s": FLAGGER_P99,
                "flagger_threshold": FLAGGER_THRESHOLD, "flagger_iterations": FLAGGER_ITERATIONS},
        notes=notes)


# --- entry points -------------------------------------------------------------------------------


def run(*, quick: bool = False, runs: int | None = None, hours: float | None = None, workers: int | None = None,
        kinds: Sequence[str] = KINDS, promote_runs: int | None = None, bootstrap: int | None = None,
        exact: bool = False) -> list[Result]:
    """The canary judgement benchmark. `runs` per scenario (3 cases x `kinds`); the first
    `promote_runs` of each scenario are searched for their first promotion (the costly part)."""
    runs = runs or (12 if quick else 1000)
    ticks = round((hours or (1.0 if quick else HOURS)) * 3600 / TICK)
    workers = workers or (1 if quick else os.cpu_count() or 1)
    promote_runs = min(runs, promote_runs or (4 if quick else 200))
    bootstrap = bootstrap or (20 if quick else 200)
    scenarios = [scenario(k, c) for k in kinds for c in CASES]
    began = time.perf_counter()
    outs = simulate_all(scenarios, runs, ticks, workers, exact, promote_runs)
    print(f"  canary: {len(scenarios)} scenarios x {runs:,} runs in {time.perf_counter() - began:.0f} s "
          f"on {workers} worker(s)", file=sys.stderr, flush=True)
    results = []
    if "independent" in kinds:
        results.append(aa_result(outs[scenario("independent", "aa")], runs, ticks))
        results += [power_result(c, outs[scenario("independent", c)], runs, ticks, bootstrap)
                    for c in ("errors", "latency")]
        results.append(time_result(outs, runs, ticks))
    results.append(judges_result(outs, runs, ticks))
    for r in results:
        r.params = {**r.params, "promote_runs": promote_runs, "exact": exact, "workers": workers}
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, help="runs a scenario (default 1000, --quick 12)")
    parser.add_argument("--hours", type=float, help=f"length of a run (default {HOURS:g}, --quick 1)")
    parser.add_argument("--workers", type=int, help="processes (default: the CPU count, --quick 1)")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--promote-runs", type=int,
                        help="runs a scenario searched for a promotion (default 200, --quick 4)")
    parser.add_argument("--exact", action="store_true", help="judge every tick (slow: a reference for the shortcuts)")
    args = parser.parse_args(argv)
    for result in run(quick=args.quick, runs=args.runs, hours=args.hours, workers=args.workers,
                      kinds=args.kinds, promote_runs=args.promote_runs, exact=args.exact):
        print(result.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())

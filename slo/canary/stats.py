"""The statistics of the canary judge.

Everything here works on counts: request and error counters and histogram buckets summed
over the canary's life, never on per-step time series (whose autocorrelated points are
not independent evidence). For each question:

- a fixed-sample test (a p-value), valid when looked at once; reported as evidence, and
  held against a group-sequential boundary (see "a group-sequential boundary" below) that
  keeps it valid when it is looked at on every tick;
- an always-valid test (an e-value: a nonnegative supermartingale under the null
  hypothesis), valid however often it is looked at. By Ville's inequality,
  P(sup_t E_t >= 1/alpha) <= alpha, so the judge may roll back the first time an e-value
  reaches 1/alpha (corrected for multiplicity) while keeping the false rollback rate at
  most alpha. Slower than the boundary for the regression planned, quicker for much
  larger ones.

The special functions (normal distribution, incomplete beta, Beta density and quantiles)
are scipy's; what is written here is what scipy does not offer. scipy is imported on first
use, inside the functions: the dashboard and the Grafana generator import the judge for
its constants only, and scipy.stats takes most of a second to import.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

_LOG_E_CAP = 700.0  # e-values are returned at most exp(700) ~ 1e304, so they stay finite
_SMALLEST = sys.float_info.min  # below it floats lose precision (subnormal) before they reach 0

# --- normal distribution and binomial tails (scipy) ----------------------------------------


def normal_cdf(x: float) -> float:
    """P(Z <= x) for a standard normal Z (accurate in both tails)."""
    from scipy.special import ndtr

    return float(ndtr(x))


def normal_logcdf(x: float) -> float:
    """log P(Z <= x), finite far into the lower tail, where the probability itself underflows."""
    from scipy.special import log_ndtr

    return float(log_ndtr(x))


def normal_ppf(p: float) -> float:
    """The standard normal quantile z with P(Z <= z) = p (the inverse of `normal_cdf`)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"normal_ppf: probability {p!r} is not in [0, 1]")
    from scipy.special import ndtri

    return float(ndtri(p))


def binom_sf(k: float, n: float, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), as the regularized incomplete beta I_p(k, n - k + 1).

    k <= 0 gives 1, k > n gives 0; ~1e-13 relative for n up to 1e8 and beyond, far into
    the tail. (scipy.stats.binom.sf calls the same Boost function with ~150 us of overhead;
    scipy.special.bdtrc loses digits: 0.3% off at n = 1e7.)
    """
    if n < 0 or not 0.0 <= p <= 1.0:
        raise ValueError(f"binom_sf: need n >= 0 and 0 <= p <= 1, got n={n!r}, p={p!r}")
    k = math.ceil(k)
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    from scipy.special import betainc

    return float(betainc(k, n - k + 1, p))


def binomial_interval(k: int, m: int, level: float = 0.95) -> tuple[float, float]:
    """The Clopper-Pearson (exact) confidence interval for a binomial proportion after k
    successes in m trials: never narrower than the nominal level, sound at k = 0 or m.
    Its ends are Beta quantiles."""
    if m <= 0:
        return 0.0, 1.0
    from scipy.special import betaincinv

    tail = (1.0 - level) / 2.0
    low = 0.0 if k <= 0 else float(betaincinv(k, m - k + 1, tail))
    high = 1.0 if k >= m else float(betaincinv(k + 1, m - k, 1.0 - tail))
    return low, high


# --- errors: the conditional binomial test ----------------------------------------------


def _count(x: float, what: str) -> int:
    """A count from Prometheus (rate * window, so possibly fractional), to the nearest integer."""
    if not math.isfinite(x) or x < 0:
        raise ValueError(f"{what} must be a finite count >= 0, got {x!r}")
    return int(math.floor(x + 0.5))


def _check_share(share: float) -> float:
    if not 0.0 < share < 1.0:
        raise ValueError(f"the canary's traffic share must be strictly between 0 and 1, got {share!r}")
    return float(share)


def conditional_binomial_p(canary_bad: float, baseline_bad: float, share: float) -> float:
    """One-sided p-value of "the canary's bad ratio is higher than the baseline's".

    Given the m = canary_bad + baseline_bad bad events of both versions, each is the
    canary's with probability pi = s p_c / (s p_c + (1 - s) p_b), where s is the canary's
    share of valid traffic and p_c, p_b the bad ratios. So pi <= s exactly when p_c <= p_b
    (with requests routed at random, whatever the ratios). Under H0 (pi = s),
    canary_bad ~ Binomial(m, s) and p = P(X >= canary_bad). The test is exact, needs no
    variance estimate and stays sound when the baseline has no bad events at all
    (m = 0 gives p = 1). Counts are rounded to the nearest integer.
    """
    share = _check_share(share)
    k = _count(canary_bad, "canary bad events")
    m = k + _count(baseline_bad, "baseline bad events")
    return binom_sf(k, m, share)


def default_prior(share: float) -> tuple[float, float]:
    """The Beta prior of `binomial_mixture_evalue` for a canary with traffic share s.

    Beta(a, b) with a = 4 and its mean at pi1 = 2s / (1 + s), the share of bad events
    that would be the canary's if its bad ratio were double the baseline's (0.18 for
    s = 0.1): b = a (1 - pi1) / pi1. On the log-odds scale, where a ratio r of bad ratios
    is a shift of log r, a Beta(4, b) has a standard deviation of about 0.55 whatever s
    is (b grows like 1/s): truncated to pi > s, its median is a ratio of 2 and 80% of it
    lies between ratios 1.2 and 3.9 for any s <= 0.1 (1.3 to 9 at s = 0.5).
    The shape a = 4 was chosen by simulation at s = 0.1 and a 1% baseline: against a = 0.5
    to 16, it is within ~10% of the best 80%-power sample size for ratios 1.5, 2, 3 and 5
    (a = 16 gains a little at ratio 2 and loses at ratio 5; flatter priors lose at 1.5-2).
    """
    share = _check_share(share)
    pi1 = 2.0 * share / (1.0 + share)
    a = 4.0
    return a, a * (1.0 - pi1) / pi1


def binomial_mixture_evalue(canary_bad: float, baseline_bad: float, share: float,
                            prior: tuple[float, float] | None = None) -> float:
    """The always-valid version of `conditional_binomial_p`: an e-value for H0: pi <= s.

    With k = canary_bad bad events out of m in total, the likelihood ratio of pi1 against
    s, (pi1/s)^k ((1-pi1)/(1-s))^(m-k), is a supermartingale in the sequence of bad events
    whenever pi <= s and pi1 > s (each event multiplies it by a factor whose mean,
    pi pi1/s + (1-pi)(1-pi1)/(1-s), is linear in pi and 1 at pi = s). So is its mixture
    over a Beta(a, b) prior truncated to pi1 > s:

        Lambda = [int_s^1 (pi/s)^k ((1-pi)/(1-s))^(m-k) dBeta(pi; a, b)] / P_Beta(pi > s)
               = B(k+a, m-k+b) (1 - I_s(k+a, m-k+b)) / [B(a, b) (1 - I_s(a, b)) s^k (1-s)^(m-k)]
               = T(k+a, m-k+b) / T(a, b),   T(a, b) = P(Beta(a, b) > s) / f_{a,b}(s)

    (f the Beta density: B(a, b) = s^(a-1) (1-s)^(b-1) / f_{a,b}(s), so the beta functions
    and s^k (1-s)^(m-k) cancel). T, a tail over a density, stays moderate where both
    underflow, and no term of size m log m is ever formed: Lambda stays accurate to ~1e-10
    relative for counts up to 1e8. By Ville's inequality, rejecting when Lambda >= 1/alpha
    at any tick keeps the false rejection rate <= alpha. The prior defaults to
    `default_prior(s)`. Counts are rounded to the nearest integer; the result is capped at
    ~1e304.
    """
    share = _check_share(share)
    a, b = prior if prior is not None else default_prior(share)
    k = _count(canary_bad, "canary bad events")
    j = _count(baseline_bad, "baseline bad events")
    if k == 0 and j == 0:
        return 1.0
    log_e = _log_tail_over_density(k + a, j + b, share) - _log_tail_over_density(a, b, share)
    return math.exp(min(log_e, _LOG_E_CAP))


def _log_tail_over_density(a: float, b: float, x: float) -> float:
    """log(P(Beta(a, b) > x) / f(x)), f the Beta(a, b) density; +inf when x lies so far
    below the distribution's mass that f(x) underflows (the e-value is then capped anyway)."""
    from scipy.special import betaincc

    tail = float(betaincc(a, b, x))
    if tail < _SMALLEST:
        return _log_tail_over_density_far_above(a, b, x)
    return math.log(tail) - _log_beta_density(a, b, x)


# betaln is a difference of log-gammas, so it loses about eps (a+b) log(a+b): < 1e-10 below
# this. Above it (counts of 1e4 and more), Boost's density keeps ~1e-12 up to 1e8, but costs
# ~100 us a call through scipy.stats (betaln: ~3 us).
_BETALN_ACCURATE_BELOW = 1e4


def _log_beta_density(a: float, b: float, x: float) -> float:
    """log f(x) for the Beta(a, b) density, 0 < x < 1 (-inf where f(x) underflows)."""
    if a + b < _BETALN_ACCURATE_BELOW:
        from scipy.special import betaln

        return (a - 1.0) * math.log(x) + (b - 1.0) * math.log1p(-x) - float(betaln(a, b))
    from scipy.stats import beta

    density = float(beta.pdf(x, a, b))
    return math.log(density) if density >= _SMALLEST else -math.inf


def _log_tail_over_density_far_above(a: float, b: float, x: float) -> float:
    """`_log_tail_over_density` when x lies so far above the mass that the tail underflows
    (a much better canary on a busy service): the integral over (x, 1) of f(y) / f(x),
    which falls from 1 at y = x, in log space (tanh-sinh quadrature, ~1e-12 relative)."""
    import numpy as np
    from scipy.integrate import tanhsinh

    def log_ratio(y):  # log(f(y) / f(x)), without the beta function
        return (a - 1.0) * np.log1p((y - x) / x) + (b - 1.0) * np.log1p(-(y - x) / (1.0 - x))

    result = tanhsinh(log_ratio, x, 1.0, log=True)
    if not result.success:
        raise ArithmeticError(f"Beta tail: no convergence for a={a!r}, b={b!r}, x={x!r}")
    return float(np.real(result.integral))


# --- latency: Mann-Whitney on histogram buckets -----------------------------------------


@dataclass(frozen=True)
class MannWhitney:
    """Mann-Whitney U of canary against baseline on histogram buckets."""

    u: float  # pairs (canary, baseline) where the canary request is slower, ties counting 1/2
    cles: float  # U / (n_c n_b): P(canary slower) + P(tie) / 2
    variance: float  # tie-corrected variance of U under H0 (same distribution)
    z: float  # (U - n_c n_b / 2) / sqrt(variance); 0 when the variance is 0
    p_value: float  # one-sided, canary slower (normal approximation)
    low: float  # confidence interval for the CLES (normal approximation, null variance)
    high: float
    variance_cles: float  # variance of the CLES estimate without assuming H0 (DeLong, placements)
    n_canary: float
    n_baseline: float


def mann_whitney_buckets(canary_counts: Sequence[float], baseline_counts: Sequence[float],
                         level: float = 0.95) -> MannWhitney:
    """Mann-Whitney U test that canary requests are slower, on per-bucket counts.

    The counts are per bucket (not cumulative) over the same ordered bounds; each bucket is
    a tie group, since the histogram cannot order requests within it. U counts the
    (canary, baseline) pairs where the canary request lies in a higher bucket, plus half
    the pairs in the same bucket, so CLES = U / (n_c n_b) = P(canary slower) + P(tie) / 2.

    - variance: the tie-corrected variance of U when both versions have the same
      distribution, n_c n_b / 12 * (N + 1 - sum(t^3 - t) / (N (N - 1))) over the buckets'
      totals t; it gives z and the one-sided p-value (normal approximation, no continuity
      correction).
    - low, high: a confidence interval for the CLES, CLES -+ z_{(1+level)/2} sqrt(variance)
      / (n_c n_b): a normal approximation using the tie-corrected variance under H0, which
      is right near CLES = 0.5 and usually wider than needed far from it.
    - variance_cles: DeLong's estimate of the CLES estimate's variance (the variances of
      the placements: the share of baseline requests each canary request beats, and the
      converse), consistent whether or not the distributions are the same.
    """
    if len(canary_counts) != len(baseline_counts):
        raise ValueError(f"Mann-Whitney: {len(canary_counts)} canary buckets against "
                         f"{len(baseline_counts)} baseline buckets")
    c = [float(x) for x in canary_counts]
    b = [float(x) for x in baseline_counts]
    if any(not math.isfinite(x) or x < 0 for x in c + b):
        raise ValueError("Mann-Whitney: bucket counts must be finite and >= 0")
    n_c, n_b = sum(c), sum(b)
    if n_c <= 0 or n_b <= 0:
        raise ValueError("Mann-Whitney: both versions need at least one observation")
    n = n_c + n_b
    pairs = n_c * n_b
    u = 0.0
    below = 0.0
    ties = 0.0
    canary_place = []  # share of baseline requests a canary request in this bucket beats
    for ci, bi in zip(c, b):
        place = (below + 0.5 * bi) / n_b
        canary_place.append(place)
        u += ci * place * n_b
        below += bi
        t = ci + bi
        ties += t * t * t - t
    cles = u / pairs
    variance = pairs / 12.0 * ((n + 1.0) - (ties / (n * (n - 1.0)) if n > 1 else 0.0))
    variance = max(variance, 0.0)
    if variance > 0.0:
        z = (u - 0.5 * pairs) / math.sqrt(variance)
        p_value = normal_cdf(-z)
    else:
        z, p_value = 0.0, 1.0  # every request in one bucket: U is the same under any labelling
    half = normal_ppf(0.5 + level / 2.0) * math.sqrt(variance) / pairs
    # DeLong: placements of the baseline requests (share of canary requests slower than each).
    above = n_c
    s_c = s_b = 0.0
    for ci, bi, place in zip(c, b, canary_place):
        above -= ci
        s_c += ci * (place - cles) ** 2
        s_b += bi * ((above + 0.5 * ci) / n_c - cles) ** 2
    variance_cles = 0.0
    if n_c > 1 and n_b > 1:
        variance_cles = s_c / (n_c - 1.0) / n_c + s_b / (n_b - 1.0) / n_b
    return MannWhitney(u=u, cles=cles, variance=variance, z=z, p_value=p_value,
                       low=max(0.0, cles - half), high=min(1.0, cles + half),
                       variance_cles=variance_cles, n_canary=n_c, n_baseline=n_b)


def shift_weights(bounds: Sequence[float], factor: float) -> list[tuple[int, float]]:
    """How to read a histogram whose every latency is multiplied by `factor` (> 0) off the
    original's cumulative counts: for each bound x (ascending, the last +Inf), (k, w) such
    that the shifted cumulative count at x is C[k-1] + w (C[k] - C[k-1]) (C[-1] = 0), with
    requests spread evenly inside each bucket (the first from 0). Requests in the +Inf
    bucket stay there."""
    if not factor > 0.0:
        raise ValueError(f"shift_weights: factor must be > 0, got {factor!r}")
    out = []
    for x in bounds:
        if x == math.inf:
            out.append((len(bounds) - 1, 1.0))
            continue
        y = x / factor
        k = next(i for i, bound in enumerate(bounds) if y <= bound)
        if bounds[k] == math.inf:  # beyond the last finite bound: nothing there to spread
            out.append((k, 0.0))
            continue
        lower = bounds[k - 1] if k else 0.0
        out.append((k, (y - lower) / (bounds[k] - lower)))
    return out


def shifted_cles(per_bucket: Sequence[float], bounds: Sequence[float], factor: float) -> float | None:
    """The CLES Mann-Whitney on these buckets would measure between this latency
    distribution with every request `factor` times slower and the distribution itself:
    the bucket-level size of "latency x factor" for this service (None without requests)."""
    total = float(sum(per_bucket))
    if total <= 0.0:
        return None
    cumulative, running = [], 0.0
    for count in per_bucket:
        running += count
        cumulative.append(running / total)
    shifted, previous = [], 0.0
    for k, w in shift_weights(bounds, factor):
        below = cumulative[k - 1] if k else 0.0
        value = max(previous, below + w * (cumulative[k] - below))
        shifted.append(value - previous)
        previous = value
    cles, below = 0.0, 0.0
    for q, count in zip(shifted, per_bucket):
        p = count / total
        cles += q * (below + 0.5 * p)
        below += p
    return cles


def lognormal_fit(per_bucket: Sequence[float], bounds: Sequence[float]) -> tuple[float, float] | None:
    """(mu, sigma) of the log-normal that best fits a histogram, or None when it cannot be
    fitted (fewer than two finite bounds with requests on both sides).

    A probit fit: at each finite bound x with a cumulative share F strictly between 0 and
    1, Phi^-1(F) = (log x - mu) / sigma; weighted least squares with the inverse variance
    of Phi^-1(F), phi(z)^2 / (F (1 - F)). Latencies are close to log-normal far more often
    than they are spread evenly inside a bucket, which is all the buckets say otherwise."""
    total = float(sum(per_bucket))
    if total <= 0.0:
        return None
    points = []
    running = 0.0
    for count, bound in zip(per_bucket, bounds):
        running += count
        share = running / total
        if bound == math.inf or bound <= 0.0 or not 1e-9 < share < 1.0 - 1e-9:
            continue
        z = normal_ppf(share)
        weight = math.exp(-z * z) / (2.0 * math.pi) / (share * (1.0 - share))
        points.append((math.log(bound), z, weight))
    if len(points) < 2:
        return None
    sw = sum(w for _, _, w in points)
    mx = sum(w * x for x, _, w in points) / sw
    mz = sum(w * z for _, z, w in points) / sw
    sxx = sum(w * (x - mx) ** 2 for x, _, w in points)
    sxz = sum(w * (x - mx) * (z - mz) for x, z, w in points)
    if sxx <= 0.0 or sxz <= 0.0:
        return None
    slope = sxz / sxx  # 1 / sigma
    return mx - mz / slope, 1.0 / slope


def planned_cles(per_bucket: Sequence[float], bounds: Sequence[float], factor: float) -> float | None:
    """The CLES that Mann-Whitney on these buckets would measure if every request were
    `factor` times slower: on the log-normal fitted to the histogram (`lognormal_fit`),
    binned into the same buckets, else on the histogram itself (`shifted_cles`)."""
    fit = lognormal_fit(per_bucket, bounds)
    if fit is None:
        return shifted_cles(per_bucket, bounds, factor)
    mu, sigma = fit

    def shares(shift: float) -> list[float]:
        cdf = [1.0 if b == math.inf else normal_cdf((math.log(b) - mu - shift) / sigma) if b > 0 else 0.0
               for b in bounds]
        return [c - (cdf[i - 1] if i else 0.0) for i, c in enumerate(cdf)]

    base, slower = shares(0.0), shares(math.log(factor))
    cles, below = 0.0, 0.0
    for q, p in zip(slower, base):
        cles += q * (below + 0.5 * p)
        below += p
    return cles


# --- the mixture SPRT for asymptotically normal estimates --------------------------------


def normal_mixture_evalue(effect: float, variance: float, tau: float) -> float:
    """One-sided mixture SPRT (Johari et al., "Always valid inference", 2017): an e-value
    for H0: theta <= 0, from an asymptotically normal estimate `effect` of theta with
    variance V (decreasing like 1/n as data accrue).

    For each theta1 > 0, exp((theta1 effect - theta1^2 / 2) / V) is (asymptotically) a
    martingale when theta = 0 and a supermartingale when theta < 0. Mixing over the
    half-normal prior theta1 ~ |N(0, tau^2)| keeps that, and gives in closed form

        Lambda = 2 sqrt(V/(V+tau^2)) exp(tau^2 effect^2 / (2 V (V+tau^2)))
                 * Phi(effect tau / sqrt(V (V+tau^2)))

    i.e. Johari's two-sided mixture times 2 Phi(.), which is near 2 for a clearly harmful
    effect and tends to 0 for a harmless one. (The two-sided mixture is not valid for the
    one-sided null: a large harmless effect would make it grow.) Over-estimating V keeps
    the supermartingale property, so a conservative variance is safe. Returns 1 when
    V <= 0 (no information); capped at ~1e304.
    """
    if tau <= 0.0:
        raise ValueError(f"normal_mixture_evalue: tau must be > 0, got {tau!r}")
    if not variance > 0.0 or not math.isfinite(effect):
        return 1.0
    t2 = tau * tau
    total = variance + t2
    log_e = (math.log(2.0) + 0.5 * math.log(variance / total) + t2 * effect * effect / (2.0 * variance * total)
             + normal_logcdf(effect * tau / math.sqrt(variance * total)))
    return math.exp(min(log_e, _LOG_E_CAP))


def cles_evalue(mw: MannWhitney, tau: float) -> float:
    """The always-valid test that canary requests are slower: `normal_mixture_evalue` on
    effect = CLES - 1/2 with the larger of the two variance estimates of the CLES (the
    tie-corrected one under H0 and DeLong's). The null hypothesis "not slower" includes
    distributions that differ without being shifted (e.g. wider), where the H0 variance
    can be too small; over-estimating the variance keeps the e-value valid."""
    pairs = mw.n_canary * mw.n_baseline
    variance = max(mw.variance / (pairs * pairs), mw.variance_cles)
    return normal_mixture_evalue(mw.cles - 0.5, variance, tau)


# --- a group-sequential boundary under continuous monitoring ----------------------------
#
# The judge looks at the same test on every tick. Re-testing at a fixed level would inflate
# false rollbacks; an e-value alone is valid but pays for it in sample size (about 2.4 times
# a fixed-sample test's requests for 80% power in the benchmark). A group-sequential design
# (Lan and DeMets) plans the information the test needs, I_max, and spends alpha as the
# information fraction t = I / I_max grows. With the z-statistic Z(t) at fraction t, the
# score process B(t) = Z(t) sqrt(t) is a Brownian motion under H0 (for counts that accrue
# independently), and under a regression of the planned size a Brownian motion with drift
# theta per unit of t. The boundary on B is flat at b up to t = 1, the continuous-monitoring
# form of O'Brien-Fleming's (P(sup_{t<=1} W(t) >= b) = 2 (1 - Phi(b)), the reflection
# principle), then rises by CONTINUATION_SLOPE per unit of t, so a canary that has just
# missed it by t = 1 can still be caught a little later instead of waiting for the e-value.
# Given W(1) = w < b, P(sup_{s>=0} W'(s) - d s >= b - w) = exp(-2 d (b - w)); averaged over
# w < b, the continuation adds at most exp(2 d^2 - 2 d b) Phi(b - 2 d). Both parts are
# bounds over continuous monitoring, so any number of looks, at any times, keeps the false
# rejection rate below alpha, with no record of earlier looks needed. The cost: 80% power
# at t = 1 needs a drift a little above a fixed-sample test's z_{1-alpha} + z_{power}.

# Steeper costs less alpha (a lower b), shallower catches more just after t = 1. At 10%
# canary traffic judged every 30 s (bench/bench_canary.py, 400 runs), requests to roll back
# 80% of runs against a fixed-sample judge: slope 1: 1.59x, 1.5: 1.32x, 2: 1.25x, 3: 1.40x,
# 5: 1.73x for errors x2; 2 and 3 alike for latency x1.2.
CONTINUATION_SLOPE = 2.0


def false_rejection_bound(boundary: float, slope: float = CONTINUATION_SLOPE) -> float:
    """Upper bound on P(a standard Brownian motion ever crosses the boundary)."""
    return (2.0 * (1.0 - normal_cdf(boundary))
            + math.exp(2.0 * slope * slope - 2.0 * slope * boundary + normal_logcdf(boundary - 2.0 * slope)))


def sequential_boundary(alpha: float, slope: float = CONTINUATION_SLOPE) -> float:
    """The smallest b whose boundary a standard Brownian motion ever crosses with probability
    at most alpha (`false_rejection_bound`)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"sequential_boundary: alpha must be in (0, 1), got {alpha!r}")
    lo, hi = normal_ppf(1.0 - alpha / 2.0), normal_ppf(1.0 - alpha / 2.0) + 2.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if false_rejection_bound(mid, slope) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def crossing_probability(boundary: float, drift: float) -> float:
    """P(sup_{t<=1} W(t) + drift t >= boundary) for a standard Brownian motion W (drift >= 0):
    Phi(drift - b) + exp(2 drift b) Phi(-drift - b)."""
    return min(1.0, normal_cdf(drift - boundary)
               + math.exp(2.0 * drift * boundary + normal_logcdf(-drift - boundary)))


def design_drift(boundary: float, power: float) -> float:
    """The drift with which the flat part of the boundary is crossed by t = 1 with
    probability `power`: the planned effect, in standard errors at the planned information."""
    if not 0.0 < power < 1.0:
        raise ValueError(f"design_drift: power must be in (0, 1), got {power!r}")
    lo, hi = 0.0, boundary + normal_ppf(power) + 1.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if crossing_probability(boundary, mid) >= power:
            hi = mid
        else:
            lo = mid
    return hi


def sequential_level(boundary: float, information: float, slope: float = CONTINUATION_SLOPE) -> float:
    """The one-sided p-value at or below which the test rejects at information fraction t:
    1 - Phi(B / sqrt(t)) for the boundary B = b (t <= 1) or b + slope (t - 1) (t > 1);
    0 (never) before any information."""
    if not information > 0.0:
        return 0.0
    bound = boundary + slope * max(0.0, information - 1.0)
    return normal_cdf(-bound / math.sqrt(information))


def power_by(boundary: float, drift: float, information: float) -> float:
    """P(the boundary is crossed by information fraction t) for a regression of the planned
    size (drift `drift` per unit of t): time-scaling of `crossing_probability`."""
    t = min(information, 1.0)
    if t <= 0.0:
        return 0.0
    root = math.sqrt(t)
    return crossing_probability(boundary / root, drift * root)


# --- multiplicity ------------------------------------------------------------------------
#
# The e-values need no adjustment of this kind: the judge holds each against K / alpha
# (Bonferroni). Each is a test supermartingale, so P(e_i ever >= K/alpha) <= alpha/K and any
# of them ever rejecting has probability <= alpha, over every tick and under any dependence
# between the tests (the same requests feed several). e-BH would be more powerful with many
# regressions but controls only the false discovery rate; one false rollback is what matters.


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order: the i-th smallest p is
    multiplied by (K - i + 1), made monotone and capped at 1. Rejecting adjusted p <= alpha
    controls the family-wise error rate for a single look."""
    k = len(pvalues)
    order = sorted(range(k), key=lambda i: pvalues[i])
    adjusted = [1.0] * k
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (k - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


# --- fixed-sample yardsticks ---------------------------------------------------------------


def fixed_sample_size(p0: float, p1: float, share: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Canary requests a fixed-sample one-sided test needs to detect a bad ratio going from
    p0 (baseline) to p1 (canary) with the given power, when the canary gets `share` of the
    traffic (kappa = (1 - share) / share baseline requests per canary request).

    The normal approximation for two proportions with unequal allocation (Fleiss, without
    continuity correction): n_c = [z_a sqrt(pbar qbar (1 + 1/kappa))
    + z_b sqrt(p1 q1 + p0 q0 / kappa)]^2 / (p1 - p0)^2 with pbar = (p1 + kappa p0)/(1 + kappa).
    It is the yardstick of the power benchmark: no test, sequential or not, does much better.
    """
    share = _check_share(share)
    if not 0.0 <= p0 < p1 <= 1.0:
        raise ValueError(f"fixed_sample_size: need 0 <= p0 < p1 <= 1, got p0={p0!r}, p1={p1!r}")
    kappa = (1.0 - share) / share
    z_a, z_b = normal_ppf(1.0 - alpha), normal_ppf(power)
    pbar = (p1 + kappa * p0) / (1.0 + kappa)
    root = (z_a * math.sqrt(pbar * (1.0 - pbar) * (1.0 + 1.0 / kappa))
            + z_b * math.sqrt(p1 * (1.0 - p1) + p0 * (1.0 - p0) / kappa))
    return math.ceil(root * root / (p1 - p0) ** 2)


def fixed_sample_size_cles(cles: float, share: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Canary requests a fixed-sample one-sided Mann-Whitney test needs to detect a latency
    shift of the given CLES (P(canary slower)) with the given power: Noether's formula,
    N = (z_a + z_b)^2 / (12 s (1 - s) (CLES - 1/2)^2) requests in all, s N of them the
    canary's (continuous latencies, no ties)."""
    share = _check_share(share)
    if not 0.5 < cles < 1.0:
        raise ValueError(f"fixed_sample_size_cles: CLES must be in (0.5, 1), got {cles!r}")
    z = normal_ppf(1.0 - alpha) + normal_ppf(power)
    total = z * z / (12.0 * share * (1.0 - share) * (cles - 0.5) ** 2)
    return math.ceil(share * total)

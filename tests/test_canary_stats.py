"""The canary judge's statistics against independent computations: closed forms, exact
sums, brute force on expanded samples, numerical integration, and Monte Carlo runs of
continuous monitoring (fixed seeds)."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import pytest
from scipy import special

from slo.canary import stats
from slo.canary.judge import CLES_TAU


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def exact_tails(n: int, p: Fraction) -> list[float]:
    """[P(X >= k) for k = 0..n+1], X ~ Bin(n, p), summed exactly in rationals."""
    tails = [Fraction(0)] * (n + 2)
    for i in range(n, -1, -1):
        tails[i] = tails[i + 1] + math.comb(n, i) * p**i * (1 - p) ** (n - i)
    return [float(t) for t in tails]


# --- special functions ---------------------------------------------------------------------


def test_normal_cdf_textbook_values():
    assert stats.normal_cdf(0.0) == 0.5
    assert rel(stats.normal_cdf(1.959963984540054), 0.975) < 1e-15
    assert rel(stats.normal_cdf(-3.0), 0.0013498980316301035) < 1e-14
    assert rel(stats.normal_cdf(-10.0), 7.619853024160527e-24) < 1e-13
    assert rel(stats.normal_cdf(1.0) + stats.normal_cdf(-1.0), 1.0) < 1e-15


def test_normal_logcdf_continues_into_the_far_tail():
    for x in (-5.0, -20.0, -29.0):
        assert abs(stats.normal_logcdf(x) - math.log(stats.normal_cdf(x))) < 1e-12
    # Far into the tail (the cdf underflows to 0 below about -38.5).
    for x in (-31.0, -35.0, -37.0):
        assert rel(stats.normal_logcdf(x), math.log(stats.normal_cdf(x))) < 1e-12
    assert math.isfinite(stats.normal_logcdf(-100.0))
    mills = -0.5 * 100**2 - math.log(100 * math.sqrt(2 * math.pi))  # log(phi(x) / |x|), x = -100
    assert stats.normal_logcdf(-100.0) == pytest.approx(mills, rel=1e-6)


@pytest.mark.parametrize("p, z", [(0.5, 0.0), (0.8, 0.8416212335729143), (0.95, 1.6448536269514722),
                                  (0.975, 1.959963984540054), (0.99, 2.3263478740408408),
                                  (0.999, 3.090232306167813)])
def test_normal_ppf_textbook_quantiles(p, z):
    assert abs(stats.normal_ppf(p) - z) < 1e-14
    assert abs(stats.normal_ppf(1 - p) + z) < 1e-14


def test_normal_ppf_of_the_smallest_probabilities_does_not_overflow():
    assert stats.normal_ppf(5e-324) == pytest.approx(-38.47, abs=0.01)
    assert stats.normal_ppf(1e-310) == pytest.approx(-37.66, abs=0.01)


def test_normal_ppf_inverts_the_cdf_in_both_tails():
    for p in (1e-300, 1e-100, 1e-20, 1e-8, 0.001, 0.02425, 0.1, 0.3, 0.49, 0.7, 0.97575, 0.9999):
        assert rel(stats.normal_cdf(stats.normal_ppf(p)), p) < 1e-12
    assert stats.normal_ppf(0.0) == -math.inf and stats.normal_ppf(1.0) == math.inf
    with pytest.raises(ValueError):
        stats.normal_ppf(1.5)


def test_binom_sf_edge_cases():
    assert stats.binom_sf(0, 10, 0.3) == 1.0
    assert stats.binom_sf(-3, 10, 0.3) == 1.0
    assert stats.binom_sf(11, 10, 0.3) == 0.0
    assert stats.binom_sf(0, 0, 0.3) == 1.0 and stats.binom_sf(1, 0, 0.3) == 0.0
    assert stats.binom_sf(1, 10, 0.0) == 0.0 and stats.binom_sf(10, 10, 1.0) == 1.0
    assert rel(stats.binom_sf(10, 10, 0.3), 0.3**10) < 1e-12
    assert rel(stats.binom_sf(1, 10, 0.3), 1 - 0.7**10) < 1e-12


def test_binom_sf_small_n_against_exact_sums():
    worst = 0.0
    for n in (1, 2, 7, 30, 200):
        for p in (Fraction(1, 10**4), Fraction(1, 100), Fraction(1, 10), Fraction(1, 2), Fraction(9, 10)):
            tails = exact_tails(n, p)
            for k in range(0, n + 2):
                if tails[k] > 1e-250:
                    worst = max(worst, rel(stats.binom_sf(k, n, float(p)), tails[k]))
    assert worst < 1e-10


def test_binom_sf_hundred_million_trials():
    n = 10**8
    # Centre: P(X >= n/2 + 1) = (1 - P(X = n/2)) / 2, P(X = n/2) = sqrt(2 / (pi n)) (1 - 1/(4n) + ...).
    mode = math.sqrt(2 / (math.pi * n)) * (1 - 1 / (4 * n))
    assert rel(stats.binom_sf(n // 2 + 1, n, 0.5), (1 - mode) / 2) < 1e-10
    # Tail at p = 1e-6 (mean 100): sum the pmf by its ratio recurrence, an independent route.
    p = 1e-6
    pmf = math.exp(n * math.log1p(-p))
    terms = []
    for i in range(400):
        terms.append(pmf)
        pmf *= (n - i) / (i + 1) * p / (1 - p)
    for k in (1, 80, 130, 180):
        assert rel(stats.binom_sf(k, n, p), math.fsum(terms[k:])) < 1e-10


def test_binomial_interval_is_clopper_pearson():
    low, high = stats.binomial_interval(3, 20, 0.95)
    assert rel(stats.binom_sf(3, 20, low), 0.025) < 1e-9  # P(X >= 3 | low) = 2.5%
    assert rel(1 - stats.binom_sf(4, 20, high), 0.025) < 1e-9  # P(X <= 3 | high) = 2.5%
    assert stats.binomial_interval(0, 20)[0] == 0.0 and stats.binomial_interval(20, 20)[1] == 1.0
    assert stats.binomial_interval(0, 0) == (0.0, 1.0)


# --- errors ----------------------------------------------------------------------------------


def test_conditional_binomial_p_against_brute_force():
    for canary_bad, baseline_bad, share in ((0, 0, 0.1), (0, 9, 0.1), (3, 10, 0.1), (7, 10, 0.1),
                                            (12, 3, 0.5), (5, 0, 0.1), (40, 200, 0.2)):
        m = canary_bad + baseline_bad
        brute = math.fsum(math.comb(m, i) * share**i * (1 - share) ** (m - i) for i in range(canary_bad, m + 1))
        assert rel(stats.conditional_binomial_p(canary_bad, baseline_bad, share), brute) < 1e-10


def test_conditional_binomial_p_rounds_fractional_counts_and_handles_no_baseline_errors():
    assert stats.conditional_binomial_p(2.6, 9.4, 0.1) == stats.conditional_binomial_p(3, 9, 0.1)
    assert stats.conditional_binomial_p(0, 0, 0.1) == 1.0
    # Baseline without errors: 4 canary errors out of 4, each the canary's with chance 10%.
    assert rel(stats.conditional_binomial_p(4, 0, 0.1), 1e-4) < 1e-12
    with pytest.raises(ValueError):
        stats.conditional_binomial_p(1, 1, 0.0)
    with pytest.raises(ValueError):
        stats.conditional_binomial_p(-1, 1, 0.1)


def numeric_binomial_mixture(k: int, j: int, share: float, a: float, b: float) -> float:
    """The e-value's defining integral, on a grid."""
    pi = np.linspace(share, 1.0, 400_001)[:-1]  # the integrand vanishes at 1
    log_prior = (a - 1) * np.log(pi) + (b - 1) * np.log1p(-pi)
    log_lr = k * np.log(pi / share) + j * np.log((1 - pi) / (1 - share))
    shift = log_prior.max()
    numerator = np.trapezoid(np.exp(log_lr + log_prior - shift), pi)
    mass = np.trapezoid(np.exp(log_prior - shift), pi)
    return float(numerator / mass)


def test_binomial_mixture_evalue_against_numerical_integration():
    for k, j, share in ((0, 5, 0.1), (3, 10, 0.1), (10, 20, 0.1), (30, 100, 0.1), (5, 0, 0.1),
                        (20, 15, 0.5), (4, 300, 0.02)):
        a, b = stats.default_prior(share)
        assert rel(stats.binomial_mixture_evalue(k, j, share), numeric_binomial_mixture(k, j, share, a, b)) < 1e-5
    assert stats.binomial_mixture_evalue(0, 0, 0.1) == 1.0
    assert rel(stats.binomial_mixture_evalue(7, 20, 0.1, prior=(1.0, 1.0)),
               numeric_binomial_mixture(7, 20, 0.1, 1.0, 1.0)) < 1e-5


def test_binomial_mixture_evalue_where_the_beta_tail_underflows():
    """A much better canary on a busy service: P(Beta(k+a, j+b) > share) is below 1e-308,
    yet the e-value is a modest number, here integrated over the first 60 e-foldings of its
    integrand from pi = share (a fine grid where it falls steeply)."""
    for k, j, share in ((0, 8_000, 0.1), (0, 90_000, 0.1), (500, 18_000, 0.1), (50_000, 900_000, 0.1),
                        (3, 100_000, 0.02)):
        a, b = stats.default_prior(share)
        assert special.betaincc(k + a, j + b, share) < 1e-308
        slope = (j + b - 1) / (1 - share) - (k + a - 1) / share  # of the log-integrand at pi = share
        pi = share + np.linspace(0.0, 60.0 / slope, 200_001)
        log_prior = (a - 1) * np.log(pi / share) + (b - 1) * np.log1p(-(pi - share) / (1 - share))
        log_lr = k * np.log(pi / share) + j * np.log1p(-(pi - share) / (1 - share))
        numerator = np.trapezoid(np.exp(log_lr + log_prior), pi)
        whole = np.linspace(share, 1.0, 400_001)[:-1]
        mass = np.trapezoid(np.exp((a - 1) * np.log(whole / share) + (b - 1) * np.log((1 - whole) / (1 - share))),
                            whole)
        assert rel(stats.binomial_mixture_evalue(k, j, share), numerator / mass) < 1e-6, (k, j)


def log_gamma_exact(z: Decimal) -> Decimal:
    """log Gamma(z) to ~40 digits: Stirling's series at z + n >= 1000, recurrence down to z."""
    shift = Decimal(0)
    while z < 1000:
        shift -= z.ln()
        z += 1
    pi = Decimal("3.141592653589793238462643383279502884197169399375")
    series = sum(c / z ** (2 * i + 1) for i, c in enumerate(
        (Decimal(1) / 12, Decimal(-1) / 360, Decimal(1) / 1260, Decimal(-1) / 1680, Decimal(1) / 1188)))
    return (z - Decimal("0.5")) * z.ln() - z + (2 * pi).ln() / 2 + series + shift


def test_binomial_mixture_evalue_at_a_hundred_million_requests():
    """The slow-share test of 1e8 canary requests against 9e8 (5.6% of them slow, 5.7% on the
    canary): Lambda = B(A, B) Q(A, B) / [B(a, b) Q(a, b) s^(A-a) (1-s)^(B-b)] in 50-digit
    arithmetic, A = k + a and B = j + b as the code rounds them. Terms of ~1e7 cancel down to
    log Lambda ~ 212, which hand-written Stirling forms got 2.4e-9 wrong."""
    k, j, share = 5_693_161, 50_764_869, 0.1
    a, b = stats.default_prior(share)
    big_a, big_b = k + a, j + b
    with localcontext() as exact:
        exact.prec = 50
        d = Decimal
        log_beta = [log_gamma_exact(d(x)) + log_gamma_exact(d(y)) - log_gamma_exact(d(x) + d(y))
                    for x, y in ((big_a, big_b), (a, b))]
        # Q(A, B) = 1 - 5e-98 (the p-value's tail): its log is 0 to 97 digits; Q(a, b) is scipy's.
        log_e = (log_beta[0] - log_beta[1] - d(math.log(special.betaincc(a, b, share)))
                 - (d(big_a) - d(a)) * d(share).ln() - (d(big_b) - d(b)) * (1 - d(share)).ln())
    assert 200 < log_e < 220
    assert abs(math.log(stats.binomial_mixture_evalue(k, j, share)) - float(log_e)) < 1e-10


def test_binomial_mixture_evalue_grows_with_the_canary_share_of_bad_events():
    values = [stats.binomial_mixture_evalue(k, 100 - k, 0.1) for k in range(0, 101, 5)]
    assert values == sorted(values)
    assert values[2] < 1 < values[-1]  # 10 of 100 (the share) is no evidence, 100 of 100 is
    assert math.isfinite(stats.binomial_mixture_evalue(10**6, 0, 0.1))  # capped, never inf


def test_default_prior_is_centred_on_a_doubling_at_any_share():
    for share in (0.01, 0.1, 0.5):
        a, b = stats.default_prior(share)
        assert rel(a / (a + b), 2 * share / (1 + share)) < 1e-12
    a, b = stats.default_prior(0.1)
    assert abs(a / (a + b) - 0.1818) < 1e-4


# --- latency -------------------------------------------------------------------------------


def brute_force_mann_whitney(canary: list[int], baseline: list[int]):
    """U, tie-corrected variance (the exact permutation variance of the midranks) and
    DeLong's variance, on the individual observations (bucket indexes)."""
    u = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in canary for y in baseline)
    values = canary + baseline
    n_c, n_b, n = len(canary), len(baseline), len(values)
    ordered = sorted(values)
    midrank = {v: (ordered.index(v) + 1 + n - ordered[::-1].index(v)) / 2 for v in set(values)}
    mean = (n + 1) / 2
    variance = n_c * n_b / (n * (n - 1)) * sum((midrank[v] - mean) ** 2 for v in values)
    cles = u / (n_c * n_b)
    v10 = [sum(1.0 if x > y else 0.5 if x == y else 0.0 for y in baseline) / n_b for x in canary]
    v01 = [sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in canary) / n_c for y in baseline]
    delong = (sum((v - cles) ** 2 for v in v10) / (n_c - 1) / n_c
              + sum((v - cles) ** 2 for v in v01) / (n_b - 1) / n_b)
    return u, variance, delong


def test_mann_whitney_buckets_against_expanded_samples():
    rng = np.random.default_rng(7)
    for _ in range(25):
        buckets = int(rng.integers(1, 7))
        canary = rng.integers(0, 6, buckets).tolist()
        baseline = rng.integers(0, 9, buckets).tolist()
        canary[int(rng.integers(0, buckets))] += 2
        baseline[int(rng.integers(0, buckets))] += 2
        mw = stats.mann_whitney_buckets(canary, baseline)
        expanded_c = [i for i, count in enumerate(canary) for _ in range(count)]
        expanded_b = [i for i, count in enumerate(baseline) for _ in range(count)]
        u, variance, delong = brute_force_mann_whitney(expanded_c, expanded_b)
        pairs = len(expanded_c) * len(expanded_b)
        assert mw.u == pytest.approx(u, abs=1e-9)
        assert mw.cles == pytest.approx(u / pairs, abs=1e-12)
        assert mw.variance == pytest.approx(variance, rel=1e-9, abs=1e-9)
        assert mw.variance_cles == pytest.approx(delong, rel=1e-9, abs=1e-12)
        if variance > 0:
            z = (u - pairs / 2) / math.sqrt(variance)
            assert mw.z == pytest.approx(z, rel=1e-9, abs=1e-12)
            assert mw.p_value == pytest.approx(stats.normal_cdf(-z), rel=1e-9)
            half = 1.959963984540054 * math.sqrt(variance) / pairs
            assert mw.low == pytest.approx(max(0.0, u / pairs - half))
            assert mw.high == pytest.approx(min(1.0, u / pairs + half))
        else:
            assert mw.p_value == 1.0


def test_mann_whitney_buckets_direction_and_errors():
    slower = stats.mann_whitney_buckets([0, 10, 30], [30, 10, 0])
    faster = stats.mann_whitney_buckets([30, 10, 0], [0, 10, 30])
    assert slower.cles > 0.5 > faster.cles and slower.p_value < 0.001 < 0.999 < faster.p_value
    single = stats.mann_whitney_buckets([5, 0], [7, 0])  # one occupied bucket: no information
    assert single.cles == 0.5 and single.variance == 0.0 and single.p_value == 1.0
    with pytest.raises(ValueError):
        stats.mann_whitney_buckets([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        stats.mann_whitney_buckets([0, 0], [1, 2])


def numeric_half_normal_mixture(effect: float, variance: float, tau: float) -> float:
    theta = np.linspace(0.0, 12 * tau, 400_001)
    log_lr = (theta * effect - theta**2 / 2) / variance
    prior = 2 * np.exp(-theta**2 / (2 * tau**2)) / (tau * math.sqrt(2 * math.pi))
    return float(np.trapezoid(np.exp(log_lr) * prior, theta))


def test_normal_mixture_evalue_against_numerical_integration():
    for effect, variance, tau in ((0.05, 1e-3, 0.1), (-0.02, 1e-3, 0.1), (0.0, 1e-2, 0.1),
                                  (0.1, 1e-4, 0.1), (0.3, 0.05, 0.2)):
        assert rel(stats.normal_mixture_evalue(effect, variance, tau),
                   numeric_half_normal_mixture(effect, variance, tau)) < 1e-7


def test_normal_mixture_evalue_is_one_sided():
    harmful = stats.normal_mixture_evalue(0.05, 1e-4, 0.1)
    harmless = stats.normal_mixture_evalue(-0.05, 1e-4, 0.1)
    assert harmful > 1e4 and harmless < 0.1
    values = [stats.normal_mixture_evalue(effect, 1e-4, 0.1) for effect in (-0.05, -0.01, 0.0, 0.01, 0.05)]
    assert values == sorted(values) and values[2] < 1
    # The two-sided mixture is symmetric; the one-sided one is it times 2 Phi(.).
    two_sided = math.sqrt(1e-4 / (1e-4 + 0.01)) * math.exp(0.01 * 0.05**2 / (2 * 1e-4 * (1e-4 + 0.01)))
    assert rel(harmful, two_sided * 2 * stats.normal_cdf(0.05 * 0.1 / math.sqrt(1e-4 * (1e-4 + 0.01)))) < 1e-12
    assert stats.normal_mixture_evalue(0.1, 0.0, 0.1) == 1.0


# --- multiplicity --------------------------------------------------------------------------


def test_holm_adjusted_pvalues():
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert stats.holm([]) == []


# --- fixed-sample yardsticks -----------------------------------------------------------------


def test_fixed_sample_size_textbook_equal_allocation():
    # Per group, one-sided alpha 5%, power 80%, 1% -> 2%: [z_a sqrt(2 pq) + z_b sqrt(p1q1 + p0q0)]^2 / d^2.
    z_a, z_b = 1.6448536269514722, 0.8416212335729143
    expected = (z_a * math.sqrt(2 * 0.015 * 0.985) + z_b * math.sqrt(0.02 * 0.98 + 0.01 * 0.99)) ** 2 / 0.01**2
    assert stats.fixed_sample_size(0.01, 0.02, 0.5) == math.ceil(expected) == 1826
    # Noether: N = (z_a + z_b)^2 / (12 * 1/4 * (0.1)^2) for a CLES of 0.6, half of it the canary's.
    assert stats.fixed_sample_size_cles(0.6, 0.5) == math.ceil(0.5 * (z_a + z_b) ** 2 / (3 * 0.01))


def test_fixed_sample_size_has_the_stated_power_with_unequal_allocation():
    """The pooled one-sided z-test at the computed size detects 1% -> 2% at a 10% share
    about 80% of the time (20,000 simulated experiments)."""
    n_c = stats.fixed_sample_size(0.01, 0.02, 0.1)
    n_b = 9 * n_c
    rng = np.random.default_rng(11)
    x_c = rng.binomial(n_c, 0.02, 20_000)
    x_b = rng.binomial(n_b, 0.01, 20_000)
    pooled = (x_c + x_b) / (n_c + n_b)
    z = (x_c / n_c - x_b / n_b) / np.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_b))
    assert 0.76 < np.mean(z > 1.6448536269514722) < 0.84


def test_fixed_sample_size_cles_has_the_stated_power():
    """Mann-Whitney at Noether's size detects a normal shift with CLES 0.6 at a 10% share
    about 80% of the time (2,000 simulated experiments, ranks computed with numpy)."""
    shift = math.sqrt(2) * stats.normal_ppf(0.6)  # P(Y > X) = Phi(shift / sqrt 2) = 0.6
    n_c = stats.fixed_sample_size_cles(0.6, 0.1)
    n_b = 9 * n_c
    rng = np.random.default_rng(12)
    canary = rng.normal(shift, 1.0, (2000, n_c))
    baseline = rng.normal(0.0, 1.0, (2000, n_b))
    values = np.concatenate([canary, baseline], axis=1)
    ranks = values.argsort(axis=1).argsort(axis=1) + 1
    u = ranks[:, :n_c].sum(axis=1) - n_c * (n_c + 1) / 2
    n = n_c + n_b
    z = (u - n_c * n_b / 2) / math.sqrt(n_c * n_b * (n + 1) / 12)
    assert 0.75 < np.mean(z > 1.6448536269514722) < 0.85


# --- continuous monitoring (Monte Carlo) -----------------------------------------------------

RUNS, LOOKS, ALPHA = 2000, 50, 0.05
TOLERANCE = 3 * math.sqrt(ALPHA * (1 - ALPHA) / RUNS)  # three Monte Carlo standard errors


def cumulative_error_counts(rng, runs, looks, per_look, share, p_baseline, p_canary):
    """Cumulative (canary requests, canary errors, baseline requests, baseline errors) at every
    look, requests routed to the canary at random with probability `share`."""
    canary = rng.binomial(per_look, share, (runs, looks))
    canary_errors = rng.binomial(canary, p_canary)
    baseline_errors = rng.binomial(per_look - canary, p_baseline)
    return (canary.cumsum(1).tolist(), canary_errors.cumsum(1).tolist(),
            (per_look - canary).cumsum(1).tolist(), baseline_errors.cumsum(1).tolist())


def test_binomial_mixture_keeps_false_rejections_under_alpha_over_50_looks():
    """A/A: 2,000 canaries at 1% errors, 10% of 1,000 requests per look, judged on the
    cumulative counts at each of 50 looks. The e-value ever reaching 1/alpha must happen in
    at most alpha of the runs; the fixed-sample p-value, looked at as often, exceeds it."""
    rng = np.random.default_rng(2024)
    n_c, k_c, n_b, k_b = cumulative_error_counts(rng, RUNS, LOOKS, 1000, 0.1, 0.01, 0.01)
    ever_e = ever_p = 0
    for r in range(RUNS):
        rejected_e = rejected_p = False
        for t in range(LOOKS):
            share = n_c[r][t] / (n_c[r][t] + n_b[r][t])
            if not rejected_e and stats.binomial_mixture_evalue(k_c[r][t], k_b[r][t], share) >= 1 / ALPHA:
                rejected_e = True
            if not rejected_p and stats.conditional_binomial_p(k_c[r][t], k_b[r][t], share) <= ALPHA:
                rejected_p = True
            if rejected_e and rejected_p:
                break
        ever_e += rejected_e
        ever_p += rejected_p
    assert ever_e / RUNS <= ALPHA + TOLERANCE
    assert ever_p / RUNS > 2 * ALPHA  # repeated fixed-sample tests inflate false rollbacks


def test_normal_mixture_on_cles_keeps_false_rejections_under_alpha_over_50_looks():
    """A/A on latency histograms (the project's default buckets, lognormal latencies): the
    CLES e-value as the judge computes it, on cumulative buckets at each of 50 looks."""
    bounds = np.array([0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0])
    cdf = np.array([stats.normal_cdf((math.log(b) - math.log(0.12)) / 0.9) for b in bounds])
    probs = np.diff(np.concatenate([[0.0], cdf, [1.0]]))
    rng = np.random.default_rng(99)
    canary = rng.multinomial(20, probs, (RUNS, LOOKS)).cumsum(1).tolist()
    baseline = rng.multinomial(180, probs, (RUNS, LOOKS)).cumsum(1).tolist()
    ever_e = ever_p = 0
    for r in range(RUNS):
        rejected_e = rejected_p = False
        for t in range(LOOKS):
            mw = stats.mann_whitney_buckets(canary[r][t], baseline[r][t])
            rejected_e = rejected_e or stats.cles_evalue(mw, CLES_TAU) >= 1 / ALPHA
            rejected_p = rejected_p or mw.p_value <= ALPHA
            if rejected_e and rejected_p:
                break
        ever_e += rejected_e
        ever_p += rejected_p
    assert ever_e / RUNS <= ALPHA + TOLERANCE
    assert ever_p / RUNS > 2 * ALPHA


def test_binomial_mixture_catches_a_doubling_within_a_few_thousand_canary_requests():
    """1% -> 2% errors at a 10% share, looks every ~100 canary requests: nearly every run
    rejects (e >= 1/alpha) by 5,000 canary requests, and 80% of them by 2.5 times what a
    fixed-sample test needs for 80% power (912; it must fix its size in advance and look
    once). Observed: median 950, 80% by ~1,800."""
    runs, looks = 300, 60
    rng = np.random.default_rng(5)
    n_c, k_c, n_b, k_b = cumulative_error_counts(rng, runs, looks, 1000, 0.1, 0.01, 0.02)
    detected_at = []
    for r in range(runs):
        at = math.inf
        for t in range(looks):
            share = n_c[r][t] / (n_c[r][t] + n_b[r][t])
            if stats.binomial_mixture_evalue(k_c[r][t], k_b[r][t], share) >= 1 / ALPHA:
                at = n_c[r][t]
                break
        detected_at.append(at)
    detected_at = np.array(detected_at)
    fixed = stats.fixed_sample_size(0.01, 0.02, 0.1, ALPHA, 0.8)
    assert fixed == 912
    assert np.mean(detected_at <= 5000) >= 0.95
    assert np.mean(detected_at <= 2.5 * fixed) >= 0.8


# --- the sequential boundary ------------------------------------------------------------


def brownian_paths(rng: np.random.Generator, runs: int, horizon: float, steps: int, drift: float = 0.0):
    """(times, paths): standard Brownian motion plus drift t, sampled at `steps` points."""
    dt = horizon / steps
    increments = rng.standard_normal((runs, steps)) * math.sqrt(dt) + drift * dt
    return np.arange(1, steps + 1) * dt, increments.cumsum(1)


def critical_z(boundary: float, times: np.ndarray) -> np.ndarray:
    """The z at or above which the p-value is at or below `sequential_level` (inf: never)."""
    levels = [stats.sequential_level(boundary, t) for t in times]
    return np.array([-stats.normal_ppf(level) if level > 0 else math.inf for level in levels])


def test_sequential_boundary_solves_its_bound():
    for alpha in (0.003, 0.01, 0.05 / 3):
        b = stats.sequential_boundary(alpha)
        assert stats.false_rejection_bound(b) == pytest.approx(alpha, rel=1e-9)
        # the continuation costs a little: b is above the flat boundary's z_{1 - alpha/2}
        assert stats.normal_ppf(1 - alpha / 2) < b < stats.normal_ppf(1 - alpha / 2) + 0.3


def test_crossing_probability_against_simulation():
    rng = np.random.default_rng(11)
    b = 2.5
    for drift in (0.0, 2.0, 3.5):
        _, paths = brownian_paths(rng, 20_000, 1.0, 2_000, drift)
        simulated = np.mean(paths.max(1) >= b)
        exact = stats.crossing_probability(b, drift)
        # discrete sampling misses a few crossings (Siegmund: about 0.58 sqrt(dt) of boundary)
        assert exact - 0.03 <= simulated <= exact + 0.01, (drift, simulated, exact)
    assert stats.crossing_probability(b, 0.0) == pytest.approx(2 * (1 - stats.normal_cdf(b)))


def test_design_drift_gives_the_power_by_t_1():
    b = stats.sequential_boundary(0.003)
    theta = stats.design_drift(b, 0.8)
    assert stats.crossing_probability(b, theta) == pytest.approx(0.8, abs=1e-9)
    # A fixed-sample test at the same alpha needs z_{1-a} + z_{0.8}: sequential costs < 20%.
    fixed = stats.normal_ppf(1 - 0.003) + stats.normal_ppf(0.8)
    assert 1.0 < (theta / fixed) ** 2 < 1.2
    assert stats.power_by(b, theta, 1.0) == pytest.approx(0.8, abs=1e-9)
    assert stats.power_by(b, theta, 0.5) < 0.5 and stats.power_by(b, theta, 0.0) == 0.0


def test_sequential_level_keeps_false_rejections_under_alpha_at_any_number_of_looks():
    """Under H0, rejecting whenever the one-sided p-value of Z(t) = B(t)/sqrt(t) is at or
    below `sequential_level(b, t)`, looked at 3,000 times up to t = 3 (so past the flat
    part), happens in at most alpha of the runs; the same p-value looked at once would
    reject in alpha/2 of them at t = 1, and a fixed level of alpha looked at every time in
    far more."""
    alpha = 0.05  # large enough to be measured with 20,000 runs
    b = stats.sequential_boundary(alpha)
    rng = np.random.default_rng(7)
    times, paths = brownian_paths(rng, 20_000, 3.0, 3_000)
    z = paths / np.sqrt(times)
    critical = critical_z(b, times)
    rejected = np.mean((z >= critical).any(1))
    assert 0.5 * alpha <= rejected <= alpha, rejected
    assert np.mean((z >= stats.normal_ppf(1 - alpha)).any(1)) > 3 * alpha


def test_sequential_level_catches_the_planned_drift_by_t_1_and_more_after():
    b = stats.sequential_boundary(0.003)
    theta = stats.design_drift(b, 0.8)
    rng = np.random.default_rng(8)
    times, paths = brownian_paths(rng, 20_000, 2.0, 2_000, theta)
    z = paths / np.sqrt(times)
    caught = z >= critical_z(b, times)
    by_1 = np.mean(caught[:, times <= 1.0].any(1))
    assert 0.77 <= by_1 <= 0.81, by_1  # 80% by t = 1, less a little for discrete looks
    assert np.mean(caught.any(1)) > 0.9  # the continuation catches most of the rest by t = 2


# --- planning a latency regression ------------------------------------------------------

BOUNDS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, math.inf)


def lognormal_buckets(mu: float, sigma: float, n: float = 1.0) -> list[float]:
    cdf = [1.0 if b == math.inf else stats.normal_cdf((math.log(b) - mu) / sigma) for b in BOUNDS]
    return [n * (c - (cdf[i - 1] if i else 0.0)) for i, c in enumerate(cdf)]


def test_lognormal_fit_recovers_a_lognormal_and_refuses_what_it_cannot_fit():
    mu, sigma = stats.lognormal_fit(lognormal_buckets(math.log(0.08), 0.7, 5000), BOUNDS)
    assert mu == pytest.approx(math.log(0.08), abs=1e-9) and sigma == pytest.approx(0.7, abs=1e-9)
    one_bucket = [0, 0, 100, 0, 0, 0, 0, 0, 0]
    assert stats.lognormal_fit(one_bucket, BOUNDS) is None  # no bound with requests on both sides
    assert stats.lognormal_fit([0] * 9, BOUNDS) is None


def test_planned_cles_is_what_mann_whitney_sees_between_a_lognormal_and_it_slower():
    base = lognormal_buckets(math.log(0.05), 0.8)
    slower = lognormal_buckets(math.log(0.05 * 1.2), 0.8)
    expected = stats.mann_whitney_buckets(slower, base).cles
    assert stats.planned_cles(base, BOUNDS, 1.2) == pytest.approx(expected, abs=1e-9)
    assert stats.planned_cles(base, BOUNDS, 1.5) > expected > 0.5


def test_planned_cles_falls_back_to_spreading_requests_inside_their_bucket():
    one_bucket = [0, 0, 100, 0, 0, 0, 0, 0, 0]  # all in (0.05, 0.1]
    # x1.2 moves the top sixth of (0.05, 0.1] past 0.1 (evenly spread: (0.1 - 0.1/1.2) / 0.05)
    moved = (0.1 - 0.1 / 1.2) / 0.05
    assert stats.planned_cles(one_bucket, BOUNDS, 1.2) == pytest.approx(moved + (1 - moved) * 0.5)
    assert stats.shift_weights(BOUNDS, 1.0)[3] == (3, 1.0)
    assert stats.planned_cles([0] * 9, BOUNDS, 1.2) is None

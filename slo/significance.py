"""Is a burn significant? The Wilson score lower bound of an error ratio.

A burn-rate tier compares the error ratio over its long window, p = bad / n, with the
tier's threshold, burn_rate x error budget. With few events, p jumps by 1/n per bad
event: at one call a minute, one failed call in an hour is p = 1/60 = 1.67%, a 16.7x burn
of a 99.9% SLO, over the 14.4x of the fastest page tier. The guard asks instead whether
the *true* error ratio is above the threshold with confidence `c`: the lower bound of the
Wilson score interval of p (one-sided, z = the standard normal quantile of c; 1.645 at
95%) must be above it:

    lower = (p + z²/2n - z √(p(1 - p)/n + z²/4n²)) / (1 + z²/n)

It is never above p, goes to p as n grows (the correction is about z √(p(1-p)/n)), and is
1 / (1 + z²/n) for p = 1 (every call bad). At 99.9% and the 14.4x page (threshold 1.44%):

- one bad call in 60 (one call a minute, one failed in the hour): p = 1.67%, lower = 0.37%:
  no page;
- a full outage at one call a minute: k minutes in, the 1h window holds 60 calls, k of them
  bad (p = k/60): lower = 0.37% at k = 1, 1.11% at k = 2, 2.01% at k = 3: the page's long
  window is over the threshold 3 minutes in (the 5m window at once), and it fires after
  `for: 2m`: about 5 minutes, within 10;
- 1,000 calls a minute: 60,000 events an hour, one minute of outage is p = 1.67%,
  lower = 1.58%: over the threshold at once, as without the guard (the Workbook's timing).

`slo.promql.significant_burn` writes the same arithmetic in PromQL; this module is for the
code that predicts or replays the rules (the promtool suites, the demo's history).
"""

from __future__ import annotations

from statistics import NormalDist
from typing import TypeVar

Number = TypeVar("Number")  # a float, or a numpy array of them


def z_score(confidence: float) -> float:
    """The one-sided standard normal quantile of `confidence` (0.95 -> 1.645)."""
    return NormalDist().inv_cdf(confidence)


def wilson_lower(p: Number, n: Number, z: float) -> Number:
    """The lower bound of the Wilson score interval of the ratio `p` of `n` events (floats or
    numpy arrays; NaN or inf where n is 0, as in PromQL)."""
    z2 = z * z
    return (p + z2 / (2 * n) - z * (p * (1 - p) / n + z2 / (4 * n * n)) ** 0.5) / (1 + z2 / n)

"""The canaries page's data: the engine's canary decisions (and their log) made into rows and
figures for the page.

    canary_rows(decisions)                    # the list: one row per canary, rollbacks first
    evidence_rows(decision)                   # baseline and canary side by side, per test and tool
    latency = bucket_shares(samples, "v1", "v2")  # Prometheus's answer to latency_query(decision)
    latency_figure(latency, decision)         # the two distributions as bars over the buckets
    score_figure(history, chart_start(decisions, history, start), end)   # the score over the canaries' life
    decision_log(history)                     # newest first, a row per run of one verdict

Plain functions on the engine's decisions as the source reads them (dashboard.source: typed,
with their times) and Prometheus samples, no Dash: the page's callbacks stay thin and tests
call these directly. Figures are plain plotly dicts. What the evidence means is in slo/canary/judge.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timezone

from collector import durations
from dashboard.colors import VERDICT_COLORS
from dashboard.formatting import NONE, fmt_duration, fmt_threshold
from dashboard.plot_text import plot_text
from slo import promql
from slo.canary.judge import (
    ERRORS,
    FAILED,
    INCONCLUSIVE,
    INSUFFICIENT,
    LATENCY,
    PASSED,
    PROMOTE,
    ROLLBACK,
)
from slo.engine import answers
from slo.query import Sample
from slo.results import CanaryDecision, Evaluated, Evidence
from slo.schema import AUTO

VERDICTS = (ROLLBACK, INCONCLUSIVE, PROMOTE)  # the list's order: act on rollbacks first
STATUS_LABELS = {PASSED: "passed", FAILED: "worse", INSUFFICIENT: "not enough data"}
LOG_SIZE = 50  # the decision log's rows on the page
VERSION_COLORS = ("#546e7a", "#ef6c00")  # baseline, canary
PAIR_COLORS = ("#1565c0", "#6a1b9a", "#00838f", "#ad1457")  # one line per canary of a service


# --- numbers as text -----------------------------------------------------------------------


def fmt_pct(x: float | None) -> str:
    """A ratio as a percentage with the digits a small one needs: 0.02 -> "2.0%", 0.00043 -> "0.043%"."""
    if x is None:
        return NONE
    v = 100.0 * x
    if v == 0 or v >= 1:
        return f"{v:.1f}%"
    return f"{v:.2g}%" if v < 0.1 else f"{v:.2f}%"


def fmt_p(p: float | None) -> str:
    """A p-value: 0.0123 -> "0.012", 3.2e-7 -> "3.2e-07"."""
    if p is None:
        return NONE
    if p <= 0.0:
        return "< 1e-300"  # underflowed
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def fmt_count(n: float | None) -> str:
    """Counts come from increase(), so they are fractional: shown whole."""
    return NONE if n is None else f"{n:,.0f}"


def _factor(x: float | None) -> str:
    """A ratio of ratios; None is an unbounded interval's end (no bad event to divide by)."""
    if x is None:
        return "∞"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:,.0f}"


def _prob(x: float | None) -> str:
    return NONE if x is None else f"{x:.3f}"


def plot_time(seconds: float) -> str:
    """A time for a plotly date axis, in UTC without a zone suffix (plotly ignores zones)."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def versions(decision: CanaryDecision) -> str:
    return f"{decision.canary} vs {decision.baseline}"


def fmt_age(decision: CanaryDecision) -> str:
    """How long the canary has had traffic (the engine's canary_age_seconds)."""
    age = decision.canary_age_seconds
    return NONE if age is None else fmt_duration(age)


# --- the list ------------------------------------------------------------------------------


def canary_rows(decisions: Iterable[Evaluated[CanaryDecision]]) -> list[dict]:
    """One row per canary: rollbacks first, then inconclusive, then promote; by service and canary."""
    rank = {v: i for i, v in enumerate(VERDICTS)}
    rows = []
    for e in decisions:
        d = e.result
        rows.append({"service": d.service, "baseline": d.baseline, "canary": d.canary, "versions": versions(d),
                     "verdict": d.verdict, "score": d.score, "reason": d.reason, "window": d.window or NONE,
                     "age": fmt_age(d), "evaluated_at": answers.rfc3339(e.evaluated_at), "stale": e.stale})
    return sorted(rows, key=lambda r: (rank.get(r["verdict"], len(rank)), r["service"], r["canary"]))


# --- side by side ----------------------------------------------------------------------------


def evidence_rows(decision: CanaryDecision) -> list[dict]:
    """One row per test of the judge (errors, latency, slow share; service-wide, then per tool),
    every number as text: the baseline and the canary, the effect (canary against baseline) with
    its interval, the sequential p-value against the level it must reach, the information
    reached and the test's status."""
    return [_evidence_row(m) for m in decision.metrics]


def _evidence_row(m: Evidence) -> dict:
    effect = m.effect
    if m.name == LATENCY:
        test = "Latency (CLES)"
        sides = [fmt_count(side.requests) + " requests" if side else NONE for side in (m.baseline, m.canary)]
        effect_text = (NONE if effect is None or effect.value is None else
                       f"{_prob(effect.value)} [{_prob(effect.low)}, {_prob(effect.high)}]")
        meaning = "the probability that a canary request is slower than a baseline one (0.5: alike)"
    else:
        test = "Error ratio" if m.name == ERRORS else f"Slower than {fmt_threshold(m.latency_threshold)}"
        sides = [f"{fmt_pct(side.ratio)} ({fmt_count(side.bad)} of {fmt_count(side.requests)})" if side else NONE
                 for side in (m.baseline, m.canary)]
        effect_text = NONE
        if effect is not None:
            value = NONE if effect.value is None else f"×{_factor(effect.value)}"
            effect_text = f"{value} [{_factor(effect.low)}, {_factor(effect.high)}]"
        meaning = "the canary's ratio divided by the baseline's (1: alike)"
    level = effect.level if effect is not None else None
    planned = m.sequential.planned_information
    notes = [m.note] if m.note else []
    if m.required_requests:
        notes.append(f"about {m.required_requests:,} canary requests needed")
    if m.rejected_by == "e-value" and m.e_threshold is not None:
        e = "∞" if m.e_value is None else f"{m.e_value:.3g}"  # None: infinite in JSON
        notes.append(f"always-valid evidence {e}, over the {m.e_threshold:.3g} needed")
    return {
        "test": test, "tool": m.tool or "all tools", "scope": "tool" if m.tool else "service",
        "baseline": sides[0], "canary": sides[1], "effect": effect_text,
        "effect_title": meaning + (f"; {level:.0%} interval" if level else ""),
        "p_value": fmt_p(m.sequential.p_value), "reject_at": fmt_p(m.sequential.reject_at),
        "rejected": m.rejected_by is not None,
        # of the planned information, which promotion needs (slo.canary.judge): 100% and more is enough
        "information": NONE if planned is None else f"{100 * planned:.0f}%",
        "status": m.status, "status_label": STATUS_LABELS.get(m.status, m.status or NONE), "note": "; ".join(notes),
    }


# --- latency distributions ------------------------------------------------------------------------


def latency_query(decision: CanaryDecision, schema: str = AUTO) -> str:
    """The PromQL for the baseline's and the canary's buckets over the decision's window, in the
    metrics `schema` reads."""
    window = durations.parse(decision.window or "1h")
    return promql.canary_latency_buckets(decision.service, (decision.baseline, decision.canary), window, schema)


def bucket_shares(samples: Iterable[Sample], baseline: str, canary: str) -> dict | None:
    """Per version, the share of its requests in each bucket (non-cumulative), from
    `latency_query`'s answer: {"bounds": [0.01, ..., inf], "baseline": [...], "canary": [...],
    "requests": {"baseline": n, "canary": n}}; a version without requests has shares None.
    None when neither has a histogram."""
    cumulative: dict[str, dict[float, float]] = {baseline: {}, canary: {}}
    for s in samples:
        version = s.labels.get("version")
        try:
            bound = float(s.labels.get("le", ""))
        except ValueError:
            continue
        if version in cumulative and math.isfinite(s.value):
            cumulative[version][bound] = cumulative[version].get(bound, 0.0) + s.value
    bounds = sorted({b for counts in cumulative.values() for b in counts})
    if not bounds:
        return None
    out: dict = {"bounds": bounds, "requests": {}}
    for role, version in (("baseline", baseline), ("canary", canary)):
        per_bucket, seen = [], 0.0
        for b in bounds:
            # increase() extrapolates each bucket alone: a cumulative count may dip, never a share below 0
            count = cumulative[version].get(b, seen)
            per_bucket.append(max(0.0, count - seen))
            seen = max(seen, count)
        total = sum(per_bucket)
        out["requests"][role] = total
        out[role] = [n / total for n in per_bucket] if total > 0 else None
    return out


def bucket_labels(bounds: list[float]) -> list[str]:
    """"≤ 10 ms", "10 ms – 50 ms", ..., "> 10 s": what a request is known to have taken."""
    labels, lower = [], None
    for b in bounds:
        if math.isinf(b):
            labels.append("any" if lower is None else f"> {fmt_threshold(lower)}")
        elif lower is None:
            labels.append(f"≤ {fmt_threshold(b)}")
        else:
            labels.append(f"{fmt_threshold(lower)} – {fmt_threshold(b)}")
        lower = b
    return labels


def latency_figure(shares: dict, decision: CanaryDecision) -> dict:
    """The baseline's and the canary's latency distributions as two bar series over the buckets."""
    labels = bucket_labels(shares["bounds"])
    data = []
    for role, color in zip(("baseline", "canary"), VERSION_COLORS):
        if shares.get(role) is None:
            continue
        n = shares["requests"][role]
        version = decision.baseline if role == "baseline" else decision.canary
        data.append({"type": "bar", "name": f"{plot_text(version)} ({role}, {fmt_count(n)} requests)",
                     "x": labels,
                     "y": [100 * s for s in shares[role]], "marker": {"color": color},
                     "customdata": [fmt_count(s * n) for s in shares[role]],
                     "hovertemplate": "%{x}: %{y:.2f}% of requests (about %{customdata})<extra></extra>"})
    return {"data": data, "layout": {
        "title": {"text": f"Latency of tools/call over the canary's window ({plot_text(decision.window)}): "
                          "estimates from histogram buckets", "font": {"size": 14}},
        "barmode": "group", "height": 320, "margin": {"l": 50, "r": 20, "t": 50, "b": 60},
        "yaxis": {"title": {"text": "% of the version's requests"}, "rangemode": "tozero"},
        "xaxis": {"title": {"text": "duration bucket"}},
        "legend": {"orientation": "h", "y": -0.25}}}


# --- history ----------------------------------------------------------------------------------


def _pairs(history: list[Evaluated[CanaryDecision]]) -> dict[tuple, list[Evaluated[CanaryDecision]]]:
    out: dict[tuple, list[Evaluated[CanaryDecision]]] = {}
    for e in history:
        out.setdefault((e.result.baseline, e.result.canary), []).append(e)
    return out


def chart_start(current: Iterable[Evaluated[CanaryDecision]], history: list[Evaluated[CanaryDecision]],
                start: float) -> float:
    """Where a service's score chart begins: the range's `start`, or later when its canaries are
    younger: at the first traffic of its oldest current canary (its decision's time less its
    age) or at the first decision logged in the range, whichever is earlier. A canary two hours
    old has its two hours drawn across the chart, not as a sliver at the right of seven days."""
    births = [e.evaluated_at - e.result.canary_age_seconds for e in current if e.result.canary_age_seconds is not None]
    births += [e.evaluated_at for e in history[:1]]  # oldest first
    return max(start, min(births)) if births else start


def score_figure(history: list[Evaluated[CanaryDecision]], start: float, end: float) -> dict:
    """The score (0-100) of each canary of a service over [start, end], one line per canary,
    each point coloured by its verdict; says so when the log was cut at its bound."""
    data = []
    for i, ((baseline, canary), decisions) in enumerate(sorted(_pairs(history).items(), key=lambda kv: str(kv[0]))):
        data.append({"type": "scatter", "mode": "lines+markers",
                     "name": f"{plot_text(canary)} vs {plot_text(baseline)}",
                     "x": [plot_time(e.evaluated_at) for e in decisions], "y": [e.result.score for e in decisions],
                     "line": {"color": PAIR_COLORS[i % len(PAIR_COLORS)], "width": 1.5, "shape": "hv"},
                     "marker": {"size": 5, "color": [VERDICT_COLORS.get(e.result.verdict, "#9e9e9e")
                                                     for e in decisions]},
                     "customdata": [e.result.verdict for e in decisions],
                     "hovertemplate": "%{x}: %{customdata}, score %{y}<extra>%{fullData.name}</extra>"})
    title = "Canary score over time (0: roll back, 100: every test passed)"
    if len(history) >= answers.HISTORY_LIMIT and history[0].evaluated_at > start:
        title += f"; the last {len(history):,} decisions"
    return {"data": data, "layout": {
        "title": {"text": title, "font": {"size": 14}}, "height": 280,
        "margin": {"l": 50, "r": 20, "t": 50, "b": 40},
        "xaxis": {"type": "date", "range": [plot_time(start), plot_time(end)], "title": {"text": "UTC"}},
        "yaxis": {"range": [-3, 103], "title": {"text": "score"}},
        "legend": {"orientation": "h", "y": -0.2}}}


def decision_log(history: list[Evaluated[CanaryDecision]]) -> list[dict]:
    """The decisions newest first, a row per run of one canary's decisions with one verdict
    (from the first to the last, how many, their scores), so that the page's LOG_SIZE rows reach
    back over the canaries' whole life rather than their last ticks. `changed` marks a run whose
    verdict differs from the one before it for the same canary (the moments a release manager
    looks for)."""
    runs: list[dict] = []
    current: dict[tuple, dict] = {}  # (baseline, canary) -> its latest run
    for e in history:  # oldest first
        d, pair = e.result, (e.result.baseline, e.result.canary)
        run = current.get(pair)
        if run is not None and run["verdict"] == d.verdict:
            run.update(last=e.evaluated_at, count=run["count"] + 1, score=d.score, reason=d.reason,
                       low=min(run["low"], d.score), high=max(run["high"], d.score))
            continue
        current[pair] = {"first": e.evaluated_at, "last": e.evaluated_at, "count": 1, "versions": versions(d),
                         "verdict": d.verdict, "score": d.score, "low": d.score, "high": d.score, "reason": d.reason,
                         "changed": run is not None}
        runs.append(current[pair])
    runs.sort(key=lambda r: r["last"], reverse=True)
    return [{**r, "evaluated_at": answers.rfc3339(r["last"]), "first_at": answers.rfc3339(r["first"]),
             "scores": str(r["score"]) if r["low"] == r["high"] else f"{r['low']}–{r['high']}"} for r in runs]

"""The generated rules' recorded series over the demo's history, computed in Python.

Had the rules run while the history was scraped, Prometheus would hold every recorded
series over it: the SLI rates of every window, the error ratios, the budget left, the
objectives and the hourly samples. This module computes those values from the same
cumulative counters the history writes, with Prometheus's own arithmetic (rate's
extrapolation, inclusive range boundaries, `or` and `sum by`), at the rule groups'
instants; they go into the same backfill as the raw counters, so every chart and every
long window covers the history from the first second. tests/test_recorded.py checks the
values against Prometheus evaluating the generated rules on the backfilled data.

Every instant is computed; the samples are written every minute for the last few days
(the live rules' 1d and 3d windows average them, so their density must be the live one)
and every `SPARSE_STEP` before, which every chart step and lookup still finds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from alerts.rules import BURN_ALERT, EXHAUSTED_ALERT, EXHAUSTED_FOR
from collector import durations, names
from demo.history import History
from slo import promql, significance
from slo.plan import Plan
from slo.promql import SLI, Scope
from slo.spec import Objective

INTERVAL = 60  # the rule groups' interval (seconds), as in the generated rules
SPARSE_STEP = 240  # older samples: within Prometheus's 5m lookback, so instant queries find one
DENSE_SPAN = promql.LONGEST_BASE_WINDOW + 2 * promql.HOURLY_WINDOW  # written every minute before the end
HOURLY_OFFSET = 30  # the hourly group's instants: 30 s past the hour, between two 1m instants

Labels = tuple[tuple[str, str], ...]


@dataclass
class Recorded:
    """One recorded series: its name, labels and samples (unix seconds, values)."""

    name: str
    labels: Labels
    timestamps: np.ndarray
    values: np.ndarray


def record(history: History, p: Plan) -> list[Recorded]:
    """Every series the generated rules record, at the rule instants within the history."""
    ms = np.round(history.timestamps * 1000).astype(np.int64)  # Prometheus keeps milliseconds
    first = -(-int(ms[0]) // (INTERVAL * 1000)) * INTERVAL * 1000
    at = np.arange(first, int(ms[-1]) + 1, INTERVAL * 1000, dtype=np.int64)
    raw = _Raw(history, ms, at)
    out: list[Recorded] = []

    def add(name: str, key: Labels, values: np.ndarray, when: np.ndarray = at) -> None:
        out.append(Recorded(name, key, when / 1000.0, values))

    # mcp-slo-objectives: objective, info and error budget wherever a scope's services are found
    budgets: dict[Labels, np.ndarray] = {}
    windows_of: dict[Labels, str] = {}
    objective_of: dict[Labels, Objective] = {}  # for its alert settings
    for po in p.objectives:
        o = po.objective
        for key, seen in raw.discovered(po.scope).items():
            slo_key = _with(key, slo=o.name)
            objective = np.where(seen, o.objective, np.nan)
            add(promql.OBJECTIVE, slo_key, objective)
            info = {"slo": o.name, "kind": o.kind, "window": promql.duration(o.window_seconds)}
            if o.threshold is not None:
                info["threshold"] = promql.le(o.threshold)
            add(promql.INFO, _with(key, **info), np.where(seen, 1.0, np.nan))
            budgets[slo_key] = 1 - objective
            windows_of[slo_key] = info["window"]
            objective_of[slo_key] = o
    for key, budget in budgets.items():
        add(promql.ERROR_BUDGET, key, budget)

    # mcp-slo: the SLI rates of every window, then the error ratios and the budget left
    rates: dict[tuple[str, int], dict[Labels, np.ndarray]] = {}
    for w in (w for w in p.windows if w <= promql.LONGEST_RAW_WINDOW):
        for sli in p.slis:
            total, bad = raw.sli(sli, w)
            rates.setdefault((promql.SLI_TOTAL, w), {}).update(total)
            rates.setdefault((promql.SLI_BAD, w), {}).update(bad)
    hourly: dict[str, dict[Labels, np.ndarray]] = {}
    hourly_at = np.arange(-(-(int(at[0]) - HOURLY_OFFSET * 1000) // 3_600_000) * 3_600_000 + HOURLY_OFFSET * 1000,
                          int(at[-1]) + 1, 3_600_000, dtype=np.int64)
    for name in (promql.SLI_TOTAL, promql.SLI_BAD):
        base = rates[name, promql.BASE_WINDOW]
        for w in (w for w in p.windows if w > promql.LONGEST_RAW_WINDOW):
            if w <= promql.LONGEST_BASE_WINDOW:
                rates[name, w] = {k: _average(v, w // INTERVAL) for k, v in base.items()}
        if any(w > promql.LONGEST_BASE_WINDOW for w in p.windows):
            hourly[name] = {k: _average_at(v, at, hourly_at, promql.HOURLY_WINDOW) for k, v in base.items()}
            for w in (w for w in p.windows if w > promql.LONGEST_BASE_WINDOW):
                recent = [rates[name, r] for r in promql.SINCE_WINDOWS]
                rates[name, w] = {k: _long_window(hourly[name][k], hourly_at, [r.get(k) for r in recent], at, w)
                                  for k in base}
    for (name, w), by_key in rates.items():
        for key, values in by_key.items():
            add(promql.recorded(name, w), key, values)
    ratios: dict[int, dict[Labels, np.ndarray]] = {}
    remaining: dict[Labels, np.ndarray] = {}
    for w in p.windows:
        totals = rates[promql.SLI_TOTAL, w]
        for key, bad in rates[promql.SLI_BAD, w].items():
            if key in totals:
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = ratios.setdefault(w, {})[key] = bad / totals[key]
                add(promql.recorded(promql.ERROR_RATIO, w), key, ratio)
                if w in p.slo_windows and windows_of.get(key) == promql.duration(w) and key in budgets:
                    with np.errstate(divide="ignore", invalid="ignore"):
                        remaining[key] = 1 - ratio / budgets[key]
                    add(promql.BUDGET_REMAINING, key, remaining[key])
    out += _alerts(p, at, rates, ratios, budgets, objective_of, remaining)

    # mcp-slo-hourly
    for name, by_key in hourly.items():
        for key, values in by_key.items():
            add(promql.hourly(name), key, values, hourly_at)
    if hourly:
        add(promql.HOURLY_TIME, (), hourly_at / 1000.0, hourly_at)
    return out


def _alerts(p: Plan, at: np.ndarray, rates, ratios, budgets, objective_of, remaining) -> list[Recorded]:
    """ALERTS over the history, as the burn-rate and budget-exhausted rules would have raised
    them (pending until their `for` has passed, then firing): one sample per rule instant
    while active, with the rules' labels; and ALERTS_FOR_STATE (when each became active), from
    which Prometheus restores an alert's `for` at start, so an alert active at the end of the
    history fires at once. The canary and absent-data alerts need the live engine and
    scrapes: none in the history. Each SLO's alert settings apply (tiers off or changed,
    alerts off), and the significance guard (slo.significance) as the rules have it."""
    alerting = p.spec.alerting
    out = []

    def alert(name: str, active: dict[Labels, np.ndarray], hold: str, **labels: str) -> None:
        hold_ms = durations.parse(hold) * 1000
        for key, on in active.items():
            since = _active_since(on, at)
            firing = on & (at - since >= hold_ms)
            every = {**dict(key), **alerting.labels, **labels}
            for state, mask in (("pending", on & ~firing), ("firing", firing)):
                if mask.any():
                    out.append(Recorded("ALERTS", _with((("alertname", name), ("alertstate", state)), **every),
                                        at[mask] / 1000.0, np.ones(int(mask.sum()))))
            if on.any():  # when each became active: Prometheus restores `for` from it at start
                out.append(Recorded("ALERTS_FOR_STATE", _with((("alertname", name),), **every),
                                    at[on] / 1000.0, since[on] / 1000.0))

    z = alerting.z
    for w in p.slo_windows:
        window = promql.duration(w)
        keys = [k for k in budgets if promql.duration(objective_of[k].window_seconds) == window]
        for st in p.tiers[w]:
            long_, short = ratios.get(st.long_window, {}), ratios.get(st.short_window, {})
            totals = rates.get((promql.SLI_TOTAL, st.long_window), {})
            for key in (k for k in keys if k in long_ and k in short and k in totals):
                tier = objective_of[key].alert_tier(st.tier)
                if tier is None:
                    continue
                events = totals[key] * st.long_window
                with np.errstate(invalid="ignore", divide="ignore"):
                    on = ((long_[key] / budgets[key] > tier.burn_rate)
                          & (short[key] / budgets[key] > tier.burn_rate)
                          & (events >= alerting.min_events))
                    if z is not None:
                        on &= significance.wilson_lower(long_[key], events, z) / budgets[key] > tier.burn_rate
                alert(BURN_ALERT, {key: on}, tier.for_, severity=tier.severity, tier=tier.name, window=window,
                      **tier.labels)
        if alerting.budget_exhausted_alert:
            totals = rates.get((promql.SLI_TOTAL, w), {})
            with np.errstate(invalid="ignore"):
                spent = {k: (remaining[k] <= 0) & (totals[k] * w >= alerting.min_events)
                         for k in keys if k in remaining and k in totals and objective_of[k].alerts.enabled}
            alert(EXHAUSTED_ALERT, spent, EXHAUSTED_FOR, severity="ticket", window=window)
    return out


def _active_since(on: np.ndarray, at: np.ndarray) -> np.ndarray:
    """For each instant, when the current run of `on` began (where `on` is false: the instant)."""
    starts = np.where(on & ~np.concatenate([[False], on[:-1]]), at, 0)
    return np.where(on, np.maximum.accumulate(starts), at)


def written(series: Recorded, end: float) -> Iterator[tuple[float, float]]:
    """The samples of `series` to write: every one in the last DENSE_SPAN before `end`,
    every SPARSE_STEP before; none where the rule gave no result."""
    keep = (series.timestamps >= end - DENSE_SPAN) | (np.round(series.timestamps) % SPARSE_STEP == 0)
    if series.name in (promql.HOURLY_TIME, "ALERTS", "ALERTS_FOR_STATE") or series.name.endswith("_hourly"):
        keep[:] = True  # the 30d windows sum every hourly one; an alert's start and end are to the minute
    keep &= ~np.isnan(series.values)
    return zip(series.timestamps[keep], series.values[keep])


# --- the raw counters ---------------------------------------------------------------------


class _Raw:
    """The history's counters and PromQL's rate() over them at the rule instants."""

    def __init__(self, history: History, ms: np.ndarray, at: np.ndarray):
        self.history, self.ms, self.at = history, ms, at

    def _series(self, name: str, sli_or_scope: SLI | Scope, **wanted: Iterable[str]) -> Iterator[tuple[dict, int, np.ndarray]]:
        """The raw series of `name` an SLI's (or a scope's) matchers select; `wanted` label
        values further restrict them (a label absent from `wanted` is not restricted)."""
        scope = sli_or_scope.scope if isinstance(sli_or_scope, SLI) else sli_or_scope
        methods = sli_or_scope.methods if isinstance(sli_or_scope, SLI) else promql.ALL_METHODS
        for (n, labels), (first, values) in self.history.series.items():
            d = dict(labels)
            service = d.get("service", "")
            if n != name or (scope.include and service not in scope.include) or service in scope.exclude:
                continue
            if scope.tool is not None and d.get("tool") != scope.tool:
                continue
            if methods != promql.ALL_METHODS and d.get("method") not in methods:
                continue
            if all(d.get(k, "") in allowed for k, allowed in wanted.items()):
                yield d, first, values

    def _key(self, d: dict, scope: Scope) -> Labels:
        return tuple((k, d.get(k, "")) for k in scope.by)

    def discovered(self, scope: Scope) -> dict[Labels, np.ndarray]:
        """`group by (...) (mcp_operations_total{scope})`: where each key has a sample
        within the 5m lookback (the history has no gaps: from its first sample on)."""
        out: dict[Labels, np.ndarray] = {}
        for d, first, _ in self._series(names.OPERATIONS_TOTAL, scope):
            key = self._key(d, scope)
            seen = self.at >= self.ms[first]
            out[key] = out[key] | seen if key in out else seen
        return out

    def _sum_rate(self, series: Iterable[tuple[dict, int, np.ndarray]], scope: Scope, window: int) -> dict[Labels, np.ndarray]:
        """`sum by (scope) (rate(series[window]))`: NaN where no series had two samples."""
        sums: dict[Labels, np.ndarray] = {}
        for d, first, values in series:
            r = _rate(self.ms[first:], values, self.at, window * 1000)
            key = self._key(d, scope)
            if key in sums:
                sums[key] = np.where(np.isnan(sums[key]), r, np.where(np.isnan(r), sums[key], sums[key] + r))
            else:
                sums[key] = r
        return sums

    def sli(self, sli: SLI, window: int) -> tuple[dict[Labels, np.ndarray], dict[Labels, np.ndarray]]:
        """The SLI's recorded total and bad rates over `window`, keyed by its labels."""
        scope = sli.scope
        statuses = [names.SUCCESS, names.ERROR, names.TIMEOUT]  # status != "cancelled"
        if sli.kind == "availability":
            total = self._sum_rate(self._series(names.OPERATIONS_TOTAL, sli, status=statuses), scope, window)
            errors = self._sum_rate(self._series(names.OPERATIONS_TOTAL, sli, status=[names.ERROR, names.TIMEOUT]),
                                    scope, window)
            # `errors or on (...) 0 * total`: errors where there are some, else 0 where traffic is
            bad = {k: np.where(np.isnan(errors[k]), 0 * t, errors[k]) if k in errors else 0 * t for k, t in total.items()}
            bad.update({k: e for k, e in errors.items() if k not in total})
        else:
            total = self._sum_rate(self._series(f"{names.OPERATION_DURATION}_count", sli), scope, window)
            good = self._sum_rate(self._series(f"{names.OPERATION_DURATION}_bucket", sli, le=[promql.le(sli.threshold)]),
                                  scope, window)
            bad = {k: t - good[k] for k, t in total.items() if k in good}
        return ({_with(k, slo=sli.slo): v for k, v in total.items()},
                {_with(k, slo=sli.slo): v for k, v in bad.items()})


def _rate(ms: np.ndarray, values: np.ndarray, at: np.ndarray, window_ms: int) -> np.ndarray:
    """PromQL's rate(counter[window]) at each instant of `at` (Prometheus 2's
    extrapolatedRate over the samples in [t - window, t]); NaN with fewer than two."""
    lo = np.searchsorted(ms, at - window_ms, side="left")
    hi = np.searchsorted(ms, at, side="right") - 1
    n = hi - lo + 1
    ok = n >= 2
    lo, hi = np.where(ok, lo, 0), np.where(ok, hi, 1 if len(ms) > 1 else 0)
    v0, v1 = values[lo].astype(float), values[hi].astype(float)
    t0, t1 = ms[lo], ms[hi]
    increase = v1 - v0  # the history's counters never reset
    with np.errstate(divide="ignore", invalid="ignore"):
        sampled = (t1 - t0) / 1000.0
        to_start = (t0 - (at - window_ms)) / 1000.0
        to_end = (at - t1) / 1000.0
        average = sampled / np.maximum(n - 1, 1)
        # a counter cannot have been negative: extrapolate back no further than its zero
        to_zero = np.where((increase > 0) & (v0 >= 0), sampled * (v0 / increase), np.inf)
        to_start = np.minimum(to_start, to_zero)
        threshold = average * 1.1
        span = (sampled + np.where(to_start < threshold, to_start, average / 2)
                + np.where(to_end < threshold, to_end, average / 2))
        rate = increase * (span / sampled) / (window_ms / 1000.0)
    return np.where(ok, rate, np.nan)


# --- averages over recorded samples --------------------------------------------------------


def _running(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Running sums and counts of the present (non-NaN) values, from 0: the sum or count of
    values[i:j] is sums[j] - sums[i]."""
    present = ~np.isnan(values)
    return (np.concatenate([[0.0], np.cumsum(np.where(present, values, 0.0))]),
            np.concatenate([[0], np.cumsum(present)]))


def _average(values: np.ndarray, steps: int) -> np.ndarray:
    """avg_over_time(x[steps * INTERVAL]) at each instant of the 1m grid: the samples in
    [t - window, t], both ends included (steps + 1 of them where all exist)."""
    sums, counts = _running(values)
    i = np.arange(len(values))
    lo = np.maximum(i - steps, 0)
    n = counts[i + 1] - counts[lo]
    with np.errstate(invalid="ignore"):
        return np.where(n > 0, (sums[i + 1] - sums[lo]) / np.maximum(n, 1), np.nan)


def _average_at(values: np.ndarray, at: np.ndarray, when: np.ndarray, window: int) -> np.ndarray:
    """avg_over_time(x[window]) at the instants `when`, of the samples of x at `at`."""
    sums, counts = _running(values)
    lo = np.searchsorted(at, when - window * 1000, side="left")
    hi = np.searchsorted(at, when, side="right")
    n = counts[hi] - counts[lo]
    with np.errstate(invalid="ignore"):
        return np.where(n > 0, (sums[hi] - sums[lo]) / np.maximum(n, 1), np.nan)


def _long_window(hourly: np.ndarray, hourly_at: np.ndarray, recent: list[np.ndarray | None], at: np.ndarray,
                 window: int) -> np.ndarray:
    """promql.long_window_rate at each instant: the hourly samples in the window times an
    hour, plus the time since the last hourly sample from the recent rates (the recorded
    rates of promql.SINCE_WINDOWS, interpolated as promql.since_last_hour does), minus the
    same span one window back from those rates then; the parts that exist, over the whole
    window."""
    sums, counts = _running(hourly)
    hi = np.searchsorted(hourly_at, at, side="right")  # hourly samples at or before t
    lo = np.searchsorted(hourly_at, at - window * 1000, side="left")
    n_hours = counts[hi] - counts[lo]
    hours = np.where(n_hours > 0, (sums[hi] - sums[lo]) * promql.HOURLY_WINDOW, np.nan)
    # lag: t - the last hourly timestamp within 2h (0 when there is none)
    last = np.where(hi > 0, hourly_at[np.maximum(hi - 1, 0)], -1)
    lag = np.where((hi > 0) & (last >= at - 2 * 3_600_000), (at - last) / 1000.0 + promql.HOURS_LAG, 0.0)
    weights = _since_weights(lag, promql.SINCE_WINDOWS)
    nothing = np.full(len(at), np.nan)
    since = [rate * weight if rate is not None else nothing for rate, weight in zip(recent, weights)]
    # the same span one window back: the rates `window` earlier (the instants are a whole
    # number of intervals apart; none before the first)
    back = window // INTERVAL
    before = [-1 * np.concatenate([nothing[:back], rate[:-back]])[:len(at)] * weight if rate is not None else nothing
              for rate, weight in zip(recent, weights)]
    parts = np.stack([hours, *since, *before])
    exists = ~np.isnan(parts).all(axis=0)
    return np.where(exists, np.nansum(parts, axis=0) / window, np.nan)


def _since_weights(lag: np.ndarray, windows: tuple[int, int, int]) -> list[np.ndarray]:
    """The weights of the 5m, 30m and 1h rates in the events of the last `lag` seconds: the
    piecewise-linear interpolation of their counts (promql.since_last_hour)."""
    w5, w30, w1h = windows
    c1, c2, c3 = (np.clip(lag - lo, 0, hi - lo) for lo, hi in ((0, w5), (w5, w30), (w30, w1h)))
    beyond = np.clip(lag - w1h, 0, None)
    return [c1 - c2 * w5 / (w30 - w5), c2 * w30 / (w30 - w5) - c3 * w30 / (w1h - w30), c3 * w1h / (w1h - w30) + beyond]


def _with(key: Labels, **labels: str) -> Labels:
    """`key` with `labels` added, empty values dropped (Prometheus has no empty labels)."""
    return tuple((k, v) for k, v in (*key, *labels.items()) if v != "")


def write_openmetrics(series: list[Recorded], path, end: float) -> int:
    """Write the samples `written` keeps as OpenMetrics text for promtool; returns how many."""
    count = 0
    with open(path, "w") as out:
        for name in sorted({s.name for s in series}):
            out.write(f"# TYPE {name} gauge\n")
            for s in (s for s in series if s.name == name):
                head = name + "{" + ",".join(f'{k}="{v}"' for k, v in s.labels) + "} "
                lines = [f"{head}{_number(v)} {t:.0f}\n" for t, v in written(s, end)]
                out.write("".join(lines))
                count += len(lines)
        out.write("# EOF\n")
    return count


def _number(value: float) -> str:
    return repr(float(value)) if np.isfinite(value) else ("+Inf" if value > 0 else "-Inf")

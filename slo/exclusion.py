"""The engine's numbers without the `exclude` maintenance windows (slo.maintenance): a
window's events count neither as good nor as bad, in the SLI and in the budget.

For every SLO series (service, tool, slo) and every window w of a tick at `at`, the exclude
windows covering the series give merged intervals in [at - w, at) (`cuts`). The valid and
bad events of each interval (a, b) are read from the raw counters, `increase` over b - a
evaluated at b: one query per distinct interval for every series it covers, whatever the
windows it falls in (`measure`). They are taken from the series' events over w (`subtract`),
which the engine then reads from the raw counters too, `increase` over w at `at`: the
recorded rates may already leave a window's 5m rates out (the rules drop them while the
mcp_slo_maintenance gauge is on), and the same events must not be taken out twice. What
remains keeps rate x w = events, so every number after it (SLI, budget, burn rates, the
low-traffic and significance guards) is of the remaining events.

The work is bounded: at most MAX_INTERVALS distinct intervals per tick (a daily window in a
30d SLO is 30 of them, an hourly one 720). Beyond, the oldest are left in (their events
count) and the tick's meta says how many. An interval over for SETTLED seconds has all its
samples: its counts are kept in a `Cache` the engine holds across ticks, so a tick asks only
for the intervals still going on or just over (counts backfilled later into an interval
already cached are not seen until the engine restarts).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from slo.maintenance import Window, intervals_for
from slo.promql import SLI, Scope

MAX_INTERVALS = 100
SETTLED = 600  # seconds after an interval's end when its samples are all in (scrapes, remote write)

Key = tuple[str, str, str]  # (service, tool or "", slo)
Counts = tuple[float | None, float | None]  # (valid, bad) events
Cut = tuple[float, int]  # an interval as (its end, its whole seconds): PromQL ranges are whole seconds
Cuts = dict[Key, dict[int, list[Cut]]]  # series -> window -> the intervals taken out of it


@dataclass(frozen=True)
class Excluded:
    """What was taken out of one window of one SLO series: its time and its events."""

    seconds: float = 0.0
    events: float | None = 0.0  # valid events; None when the window's own are unknown
    bad_events: float | None = 0.0


NOTHING = Excluded()


def series_sli(slis: Iterable[SLI], key: Key) -> SLI | None:
    """The SLI of the plan that counts the series `key`, narrowed to that series alone (so a
    query for a few series does not read every service of a shared scope)."""
    service, tool, slo = key
    for sli in slis:
        scope = sli.scope
        if sli.slo != slo or (scope.tool or "") != tool:
            continue
        if (scope.include and service not in scope.include) or service in scope.exclude:
            continue
        return replace(sli, scope=Scope(include=(service,), tool=scope.tool))
    return None


def cuts(windows: Sequence[Window], keys: Iterable[Key], tick_windows: Iterable[int], at: float,
         limit: int = MAX_INTERVALS) -> tuple[Cuts, int]:
    """The exclude intervals of every SLO series in each of the tick's windows, and how many
    distinct intervals over `limit` were left in (the oldest)."""
    excluding = [w for w in windows if w.mode == "exclude"]
    tick_windows = sorted(tick_windows)
    if not excluding or not tick_windows:
        return {}, 0
    longest = tick_windows[-1]
    out: Cuts = {}
    for key in keys:
        service, tool, slo = key
        mine = [w for w in excluding if w.covers(service, slo, tool)]
        whole = intervals_for(mine, service, slo, tool, at - longest, at) if mine else []
        for w in tick_windows:
            # the longest window's intervals clipped to this one's: what intervals_for gives for it
            clipped = [(b, round(b - max(a, at - w))) for a, b in whole if b > at - w]
            if kept := [c for c in clipped if c[1] >= 1]:
                out.setdefault(key, {})[w] = kept
    distinct = sorted({c for per in out.values() for cs in per.values() for c in cs}, reverse=True)  # newest first
    if len(distinct) <= limit:
        return out, 0
    keep = set(distinct[:limit])
    trimmed: Cuts = {}
    for key, per in out.items():
        for w, cs in per.items():
            if kept := [c for c in cs if c in keep]:
                trimmed.setdefault(key, {})[w] = kept
    return trimmed, len(distinct) - limit


class Cache:
    """Counts of settled intervals by (end, seconds, SLI), the least recently used dropped
    beyond `size` (an interval clipped by a window's start is a new one each tick: used once)."""

    def __init__(self, size: int = 20 * MAX_INTERVALS):
        self.size = size
        self._counts: dict[tuple[float, int, SLI], Counts] = {}

    def get(self, end: float, seconds: int, sli: SLI) -> Counts | None:
        found = self._counts.pop((end, seconds, sli), None)
        if found is not None:
            self._counts[end, seconds, sli] = found  # the most recently used, last
        return found

    def put(self, end: float, seconds: int, sli: SLI, counts: Counts) -> None:
        self._counts[end, seconds, sli] = counts
        while len(self._counts) > self.size:
            del self._counts[next(iter(self._counts))]


def measure(found: Cuts, slis: Mapping[Key, SLI], read: Callable[[list[SLI], int, float], dict[Key, Counts]],
            at: float, cache: Cache | None = None) -> tuple[dict[Cut, dict[Key, Counts]], int]:
    """The events of every interval of `found`, for the series it covers, and how many reads
    it took: `read(slis, seconds, end)` is the raw counts over `seconds` evaluated at `end`,
    one call per distinct interval not in `cache` (a series without events there: 0)."""
    covered: dict[Cut, set[Key]] = {}
    for key, per in found.items():
        for cs in per.values():
            for c in cs:
                covered.setdefault(c, set()).add(key)
    out: dict[Cut, dict[Key, Counts]] = {}
    reads = 0
    for (end, seconds), keys in sorted(covered.items()):
        settled = cache is not None and end <= at - SETTLED
        counts = {k: c for k in keys if settled and (c := cache.get(end, seconds, slis[k])) is not None}
        if todo := sorted(keys - set(counts)):
            got = read([slis[k] for k in todo], seconds, end)
            reads += 1
            for k in todo:
                counts[k] = got.get(k, (0.0, 0.0))
                if settled:
                    cache.put(end, seconds, slis[k], counts[k])
        out[end, seconds] = counts
    return out, reads


def subtract(rates: dict[Key, dict[int, Counts]], found: Cuts,
             measured: Mapping[Cut, Mapping[Key, Counts]]) -> dict[Key, dict[int, Excluded]]:
    """Take each interval's events out of the (valid, bad) rates of the windows it falls in,
    in place; returns what was taken out of each. A counter reset or Prometheus's
    extrapolation cannot make what remains negative, nor more bad than valid."""
    out: dict[Key, dict[int, Excluded]] = {}
    for key, per in found.items():
        for w, cs in per.items():
            valid_ex = sum(_count(measured[c].get(key, (0.0, 0.0))[0]) for c in cs)
            bad_ex = sum(_count(measured[c].get(key, (0.0, 0.0))[1]) for c in cs)
            seconds = float(sum(s for _, s in cs))
            valid_rate, bad_rate = rates.get(key, {}).get(w, (None, None))
            if valid_rate is None or not math.isfinite(valid_rate):  # unknown: nothing to take out of
                out.setdefault(key, {})[w] = Excluded(seconds, None, None)
                continue
            valid = max(valid_rate * w - valid_ex, 0.0)
            bad = min(max(_count(bad_rate) * w - bad_ex, 0.0), valid)
            rates[key][w] = (valid / w, bad / w)
            out.setdefault(key, {})[w] = Excluded(seconds, valid_ex, bad_ex)
    return out


def _count(x: float | None) -> float:
    """A count or rate as a number: 0 for none (a series without errors has no bad series)."""
    return x if x is not None and math.isfinite(x) else 0.0

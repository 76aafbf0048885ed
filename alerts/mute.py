"""Planned maintenance windows (slo.maintenance) as Alertmanager time intervals and muted routes.

Each window Alertmanager can express becomes a top-level `time_intervals` entry named after the
window, in the window's time zone (`location`, Alertmanager 0.25+), so its alerts are muted in
Alertmanager too: silence and exclude windows alike (an excluded SLO's alerts are held back as
well). What translates:

  - one-off windows: their dates (years, months, days_of_month) and times;
  - RRULEs with FREQ=DAILY|WEEKLY|MONTHLY|YEARLY, INTERVAL=1 and the filters BYDAY (plain
    weekdays), BYMONTHDAY and BYMONTH, at DTSTART's time of day (a DTSTART still to come
    restricts the dates to those from it on);
  - cron expressions with a fixed minute and hour and lists or ranges of days, months and
    weekdays (both days and weekdays restricted: cron's "either", two intervals);
  - an occurrence crossing midnight: one range per day it touches, the next day's weekday
    (or day of month while it stays in the month).

What does not (COUNT, UNTIL, INTERVAL>1, BYSETPOS, BYHOUR, numbered weekdays, cron steps, L, W,
#, seconds, a window a DST change of its zone falls in: Alertmanager mutes by wall clock, the
window lasts `duration` of elapsed time) is left to the engine, whose mcp_slo_maintenance
gauge the rules read; `refusals` says which and why.

The routes: Alertmanager's first matching route decides, and a muted route only mutes its own
notifications, so each scope gets a route placed before the usual ones, holding a copy of them,
every one muted by the scope's windows. Scopes that overlap (fs, and fs's latency SLO) also get
a route for their intersection, first, muted by the windows of both.
"""

from __future__ import annotations

import bisect
import calendar
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from slo.maintenance import YEAR, Window

DAY = 1440  # minutes
# Alertmanager's weekdays in its order (a range "monday:friday" runs Sunday to Saturday); Days
# keeps Python's (0 = Monday)
AM_WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
RRULE_DAYS = {code: i for i, code in enumerate(("MO", "TU", "WE", "TH", "FR", "SA", "SU"))}
CRON_NAMES = {name: i for i, name in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep",
                                                 "oct", "nov", "dec"), 1)}
CRON_DAYS = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
FILTERS = {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH", "WKST"}
FREQUENCIES = {"DAILY", "WEEKLY", "MONTHLY", "YEARLY"}
MAX_ROUTES = 64  # intersections of overlapping scopes: beyond this, the config is no longer readable


class Unexpressible(ValueError):
    """A window Alertmanager's time intervals cannot express: the reason, one line."""


@dataclass(frozen=True)
class Days:
    """Which dates: weekdays (0 = Monday), days of the month (negative: from the month's end),
    months (1-12); None is every one. `since` limits it to dates from that one on."""

    weekdays: frozenset[int] | None = None
    monthdays: frozenset[int] | None = None
    months: frozenset[int] | None = None
    since: date | None = None


@dataclass(frozen=True)
class Muting:
    """The windows translated (name -> time intervals) and those left to the engine."""

    intervals: dict[str, list[dict[str, Any]]]
    refused: list[tuple[Window, str]]


def plan(windows: Iterable[Window], now: float) -> Muting:
    """Translate every window; `now` dates the DST check (the next year's occurrences) and
    drops a DTSTART restriction already past."""
    intervals, refused = {}, []
    for w in windows:
        try:
            intervals[w.name] = time_intervals(w, now)
        except Unexpressible as exc:
            refused.append((w, str(exc)))
    return Muting(intervals, refused)


def refusals(windows: Iterable[Window], now: float) -> list[str]:
    """One line per window left to the engine, naming it and why."""
    return [f"maintenance window {w.name!r} is not muted in Alertmanager (the engine's mcp_slo_maintenance "
            f"gauge and the rules hold its alerts back): {why}" for w, why in plan(windows, now).refused]


def time_intervals(w: Window, now: float) -> list[dict[str, Any]]:
    """The window's `time_intervals` list; Unexpressible says why not."""
    location = {"location": w.timezone}
    if w.kind == "one-off":
        _check_dst(w, now, None)
        return [{**piece, **location} for piece in _one_off(w)]
    rules, minute = _rrule(w, now) if w.rrule is not None else _cron(w.cron)
    _check_dst(w, now, minute)
    seconds = w.duration_seconds
    if seconds % 60:
        raise Unexpressible(f"duration {w.duration} is not whole minutes (Alertmanager's times are minutes)")
    out = []
    for days in rules:
        for offset, times in _day_ranges(minute, int(seconds // 60)):
            for piece in _dates(_shift(days, offset, w)):
                out.append({"times": [times], **piece, **location})
    return out


# --- one-off windows -------------------------------------------------------------------------


def _one_off(w: Window) -> list[dict[str, Any]]:
    """A date-by-date cover of [start, end) in the window's zone: the first and last days'
    times, the whole days between as day ranges (one per month)."""
    start, end = (datetime.fromtimestamp(t, w.zone) for t in w.bounds)
    if start.second or end.second or start.microsecond or end.microsecond:
        raise Unexpressible("its start or end is not on a whole minute (Alertmanager's times are minutes)")
    pieces, day = [], start.date()
    whole: list[date] = []
    while day <= end.date():
        lo = _minutes(start) if day == start.date() else 0
        hi = _minutes(end) if day == end.date() else DAY
        if (lo, hi) == (0, DAY):
            whole.append(day)
        elif hi > lo:
            pieces.append({"times": [_times(lo, hi)], **_on(day.year, [day.month], [day.day])})
        day += timedelta(days=1)
    by_month: dict[tuple[int, int], list[int]] = {}
    for d in whole:
        by_month.setdefault((d.year, d.month), []).append(d.day)
    pieces += [_on(year, [month], days) for (year, month), days in by_month.items()]
    return pieces


def _on(year: int, months: list[int], days: list[int]) -> dict[str, Any]:
    return {"years": [str(year)], "months": _ranges(months), "days_of_month": _ranges(days)}


# --- recurring windows -----------------------------------------------------------------------


def _rrule(w: Window, now: float) -> tuple[list[Days], int]:
    """([Days], minute of the day) of an RRULE window (its time of day is DTSTART's)."""
    parts: dict[str, str] = {}
    for part in w.rrule.strip().removeprefix("RRULE:").split(";"):
        key, _, value = part.partition("=")
        parts[key.strip().upper()] = value.strip().upper()
    if extra := sorted(set(parts) - FILTERS):
        why = ("Alertmanager's intervals have no end" if {"COUNT", "UNTIL"} & set(extra)
               else "only BYDAY, BYMONTHDAY and BYMONTH filters translate")
        raise Unexpressible(f"its RRULE uses {', '.join(extra)}: {why}")
    freq = parts.get("FREQ", "")
    if freq not in FREQUENCIES:
        raise Unexpressible(f"its RRULE is FREQ={freq}: only DAILY, WEEKLY, MONTHLY and YEARLY translate")
    if parts.get("INTERVAL", "1") != "1":
        raise Unexpressible(f"its RRULE has INTERVAL={parts['INTERVAL']}: every other week (or month) has "
                            "no Alertmanager time interval")
    first = datetime.fromtimestamp(w.start_time, w.zone)
    if first.second or first.microsecond:
        raise Unexpressible("its start is not on a whole minute (Alertmanager's times are minutes)")
    weekdays = _rrule_days(parts["BYDAY"]) if "BYDAY" in parts else None
    monthdays = frozenset(_int(x, "BYMONTHDAY") for x in parts["BYMONTHDAY"].split(",")) \
        if "BYMONTHDAY" in parts else None
    months = frozenset(_int(x, "BYMONTH") for x in parts["BYMONTH"].split(",")) if "BYMONTH" in parts else None
    if weekdays is None and monthdays is None:  # RFC 5545's defaults from DTSTART (as dateutil fills them)
        if freq == "WEEKLY":
            weekdays = frozenset({first.weekday()})
        elif freq in ("MONTHLY", "YEARLY"):
            monthdays = frozenset({first.day})
            if freq == "YEARLY" and months is None:
                months = frozenset({first.month})
    since = first.date() if w.start_time > now else None
    return [Days(weekdays, monthdays, months, since)], _minutes(first)


def _rrule_days(text: str) -> frozenset[int]:
    days = set()
    for code in text.split(","):
        if code not in RRULE_DAYS:
            raise Unexpressible(f"its RRULE has BYDAY={code}: only plain weekdays (MO, TU, ...) translate")
        days.add(RRULE_DAYS[code])
    return frozenset(days)


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise Unexpressible(f"its RRULE has {what}={text}, not a number") from None


def _cron(expr: str) -> tuple[list[Days], int]:
    """([Days], minute of the day) of a cron window: minute and hour fixed."""
    minute, hour, dom, month, dow = expr.split()
    if not (minute.isdigit() and hour.isdigit()):
        raise Unexpressible(f"its cron {expr!r} has no fixed minute and hour: one time of day translates")
    monthdays = _cron_field(dom, {}, expr)
    months = _cron_field(month, CRON_NAMES, expr)
    weekdays = _cron_field(dow, CRON_DAYS, expr)
    if weekdays is not None:
        weekdays = frozenset((d - 1) % 7 for d in weekdays)  # cron: 0 and 7 are Sunday
    start = int(hour) * 60 + int(minute)
    if monthdays is not None and weekdays is not None:  # cron runs on either
        return [Days(None, monthdays, months), Days(weekdays, None, months)], start
    return [Days(weekdays, monthdays, months)], start


def _cron_field(text: str, names: dict[str, int], expr: str) -> frozenset[int] | None:
    if text == "*":
        return None
    out = set()
    for item in text.lower().split(","):
        ends = item.split("-")
        if len(ends) > 2 or not all(e.isdigit() or e in names for e in ends):
            raise Unexpressible(f"its cron {expr!r} has {item!r}: only numbers, names, lists and ranges translate")
        lo, hi = (int(e) if e.isdigit() else names[e] for e in (ends[0], ends[-1]))
        out.update(range(lo, hi + 1))
    return frozenset(out)


def _day_ranges(start: int, length: int) -> list[tuple[int, dict[str, str]]]:
    """[(days after the occurrence's start day, its times)] of an occurrence `length` minutes
    long from minute `start` of its day."""
    out, offset = [], 0
    while start + length > offset * DAY:
        lo = max(start - offset * DAY, 0)
        hi = min(start + length - offset * DAY, DAY)
        out.append((offset, _times(lo, hi)))
        offset += 1
    return out


def _shift(days: Days, offset: int, w: Window) -> Days:
    """The dates `offset` days after those of `days` (a part of an occurrence crossing midnight)."""
    if offset == 0:
        return days
    if days.monthdays is not None and any(d < 1 or d + offset > 28 for d in days.monthdays):
        raise Unexpressible("it crosses midnight from a day of the month (BYMONTHDAY) near the month's end: "
                            "the next day's date changes month")
    if days.months is not None and days.monthdays is None:
        raise Unexpressible("it crosses midnight with BYMONTH: the next day may be in another month")
    weekdays = None if days.weekdays is None else frozenset((d + offset) % 7 for d in days.weekdays)
    monthdays = None if days.monthdays is None else frozenset(d + offset for d in days.monthdays)
    since = None if days.since is None else days.since + timedelta(days=offset)
    return Days(weekdays, monthdays, days.months, since)


def _dates(days: Days) -> list[dict[str, Any]]:
    """The interval fields (weekdays, days_of_month, months, years) for `days`: one mapping, or
    three when `since` restricts them (the later years; its year's later months; its month's
    days from it on)."""
    base = {"weekdays": days.weekdays, "days_of_month": days.monthdays, "months": days.months}
    if days.since is None:
        return [_fields(**base)]
    s = days.since
    months = set(range(1, 13)) if days.months is None else set(days.months)
    last = calendar.monthrange(s.year, s.month)[1]
    in_month = {d if d > 0 else last + 1 + d for d in days.monthdays} if days.monthdays else set(range(1, last + 1))
    out = [_fields(**base, years=f"{s.year + 1}:9999")]
    if later := {m for m in months if m > s.month}:
        out.append(_fields(**{**base, "months": later}, years=str(s.year)))
    if s.month in months and (from_day := {d for d in in_month if d >= s.day}):
        out.append(_fields(**{**base, "months": {s.month}, "days_of_month": from_day}, years=str(s.year)))
    return out


def _fields(weekdays, days_of_month, months, years: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if weekdays is not None:
        out["weekdays"] = [AM_WEEKDAYS[a] if a == b else f"{AM_WEEKDAYS[a]}:{AM_WEEKDAYS[b]}"
                           for a, b in _spans(sorted((d + 1) % 7 for d in weekdays))]
    if days_of_month is not None:
        out["days_of_month"] = _ranges(days_of_month)
    if months is not None:
        out["months"] = _ranges(months)
    if years is not None:
        out["years"] = [years]
    return out


def _spans(values: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted integers as (first, last) runs of consecutive ones."""
    out: list[list[int]] = []
    for v in values:
        if out and v == out[-1][1] + 1:
            out[-1][1] = v
        else:
            out.append([v, v])
    return [(a, b) for a, b in out]


def _ranges(values: Iterable[int]) -> list[str]:
    """Integers as Alertmanager's ranges: "3", "1:5" (negative days apart: -1 is not after 31)."""
    values = sorted(values)
    negative, positive = [v for v in values if v < 0], [v for v in values if v > 0]
    return [str(a) if a == b else f"{a}:{b}" for part in (negative, positive) for a, b in _spans(part)]


def _minutes(moment: datetime) -> int:
    return moment.hour * 60 + moment.minute


def _times(lo: int, hi: int) -> dict[str, str]:
    return {"start_time": f"{lo // 60:02d}:{lo % 60:02d}", "end_time": f"{hi // 60:02d}:{hi % 60:02d}"}


# --- DST --------------------------------------------------------------------------------------


def _check_dst(w: Window, now: float, minute: int | None) -> None:
    """Unexpressible when a change of the zone's UTC offset makes Alertmanager's wall-clock
    times differ from the window's occurrences in the next year: a change inside an
    occurrence (its `duration` is elapsed time), a repeated hour an occurrence touches (both
    passes would be muted), or a start moved by a skipped hour (not at `minute` of its day)."""
    changes = transitions(w.zone, now, now + YEAR)
    if not changes:
        return
    at = [t for t, _ in changes]
    occurrences = [w.bounds] if w.kind == "one-off" else w.occurrences(now, now + YEAR)
    for start, end in occurrences:
        local = datetime.fromtimestamp(start, w.zone)
        moved = minute is not None and _minutes(local) != minute
        i = bisect.bisect_left(at, start - 4 * 3600)  # no zone's offset changes by more than 4 hours
        for t, delta in changes[i:]:
            if t > end + abs(delta):
                break
            repeated = delta < 0 and start < t - delta and end > t + delta
            if moved or repeated or start < t < end:
                when = datetime.fromtimestamp(t, w.zone).date().isoformat()
                raise Unexpressible(f"on {when} a DST change of {w.timezone} falls in or next to it and "
                                    "Alertmanager mutes by wall clock (a time of day away from the change, "
                                    "or timezone UTC, translates)")


def transitions(zone: ZoneInfo, since: float, until: float) -> list[tuple[float, float]]:
    """The changes of `zone`'s UTC offset between `since` and `until`: (when, by how many
    seconds: negative when clocks go back), found hour by hour and narrowed to the second."""
    out = []
    step = 3600.0
    t, before = since, _offset(zone, since)
    while t < until:
        after = _offset(zone, t + step)
        if after != before:
            lo, hi = t, t + step
            while hi - lo > 1:
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if _offset(zone, mid) == before else (lo, mid)
            out.append((hi, after - before))
            before = after
        t += step
    return out


def _offset(zone: ZoneInfo, t: float) -> float:
    return datetime.fromtimestamp(t, zone).utcoffset().total_seconds()


# --- routes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """The alerts a window covers: services, and tools and SLOs (None: every one)."""

    services: frozenset[str]
    tools: frozenset[str] | None
    slos: frozenset[str] | None

    @classmethod
    def of(cls, w: Window) -> Scope:
        return cls(frozenset(w.services), frozenset(w.tools) or None, frozenset(w.slos) or None)

    def __and__(self, other: Scope) -> Scope | None:
        parts = [self.services & other.services, _meet(self.tools, other.tools), _meet(self.slos, other.slos)]
        return None if any(p is not None and not p for p in parts) else Scope(*parts)

    def matchers(self) -> list[str]:
        return [_matcher(label, values) for label, values in
                (("service", self.services), ("tool", self.tools), ("slo", self.slos)) if values is not None]


def _meet(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    return b if a is None else a if b is None else a & b


def _matcher(label: str, values: frozenset[str]) -> str:
    """label="value", or label=~"a|b" with the names' regex characters escaped (the matcher's
    own quoting doubles a backslash)."""
    names = sorted(values)
    if len(names) == 1:
        return f'{label}="{names[0]}"'
    pattern = "|".join(re.escape(n) for n in names).replace("\\", "\\\\")
    return f'{label}=~"{pattern}"'


def routes(windows: Sequence[Window], muting: Muting, usual: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The muted routes to put before the `usual` ones: one per scope of the translated windows
    and per intersection of overlapping scopes (larger sets of windows first, so an alert's
    first match is the route of every window covering it)."""
    scopes: dict[Scope, list[str]] = {}
    for w in windows:
        if w.name in muting.intervals:
            scopes.setdefault(Scope.of(w), []).append(w.name)
    keys = list(scopes)
    singles: list[tuple[tuple[int, ...], Scope]] = [((i,), s) for i, s in enumerate(keys)]
    meets: list[tuple[tuple[int, ...], Scope]] = []
    frontier = singles
    while frontier and len(meets) <= MAX_ROUTES:
        frontier = [((*members, j), meet) for members, scope in frontier for j in range(members[-1] + 1, len(keys))
                    if (meet := scope & keys[j]) is not None]
        meets += frontier
    # Larger sets first (stable: the spec's order within a size); past MAX_ROUTES an alert in
    # several scopes is muted by the first one's windows only (the engine's gauge still covers it)
    meets.sort(key=lambda item: -len(item[0]))
    out = []
    for members, scope in [*meets[:MAX_ROUTES], *singles]:
        names = [name for i in members for name in scopes[keys[i]]]
        out.append({"matchers": scope.matchers(), "mute_time_intervals": names,
                    "routes": [{**r, "mute_time_intervals": names} for r in usual]})
    return out

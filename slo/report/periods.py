"""Calendar periods for SLO reports: months, quarters, ISO weeks, years and free ranges in
the report's time zone, with their days and weeks.

    november = parse_period("2026-11", zone_of("Europe/Paris"))
    november.start          # 2026-11-01 00:00:00+01:00 (2026-10-31T23:00Z)
    november.seconds        # 2592000.0: 30 days, no DST change in it
    november.days()         # 30 Day(date, start, end)
    november.weeks()        # 2026-W44 (Sunday 1 only) .. 2026-W49 (Monday 30 only)
    previous_period("month", time.time(), zone)   # what a scheduled report writes

Conventions:

- A period is half open, [start, end): `end` is the first instant after it, so consecutive
  periods share a bound and every instant lies in exactly one of them (`contains`).
- Bounds are local midnights in the report's zone (UTC by default): November 2026 in
  Europe/Paris starts at 2026-11-01T00:00+01:00, i.e. 2026-10-31T23:00Z. `start` and `end`
  are aware datetimes in the zone, `start_ts` and `end_ts` the same instants in unix seconds.
- A day in the zone is not always 24 h long: 23 h on the day clocks go forward, 25 h on the
  day they go back. So March 2026 in Paris lasts 31*86400 - 3600 seconds and October
  31*86400 + 3600. `seconds` is the real elapsed time, which is what an SLO's error budget
  is measured against; counting 24 h per calendar day would be off by the DST shift.
- A day starts at the first instant that shows its date. Where clocks jump over midnight
  (America/Santiago in September: 23:59:59 -04 is followed by 01:00:00 -03) it starts at
  01:00; where midnight happens twice (America/Havana in November: 00:59:59 -04 is followed
  by 00:00:00 -05) it starts at the first of the two, and the day has 25 h.
- Weeks are ISO 8601 weeks: Monday to Sunday, numbered within the ISO year, whose week 1 is
  the one holding the year's first Thursday. So 2026-W01 starts on Monday 2025-12-29, and a
  year has a week 53 when it starts on a Thursday (or on a Wednesday in a leap year).
- `days()` and `weeks()` cover the period and are clipped to it: a free range's first and
  last days, a month's first and last weeks, may be partial (`partial`).

Python's arithmetic between two aware datetimes of the same ZoneInfo is wall-clock arithmetic
(and their comparison ignores `fold`), so everything here that measures or orders instants
goes through unix seconds (`timestamp()`); wall-clock times are built with
`datetime(..., tzinfo=zone)` and an explicit `fold`.

Standard library only (zoneinfo, datetime): no Prometheus, no engine.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Kind = Literal["month", "quarter", "week", "year", "range"]
Zone = ZoneInfo | timezone
KINDS = ("month", "quarter", "week", "year", "range")
CALENDAR_KINDS = ("month", "quarter", "week", "year")  # those `period_of` and `previous_period` know
FIRST_YEAR, LAST_YEAR = 1970, 9999  # before 1970 there are no metrics to report on
FORMS = "YYYY-MM (a month), YYYY-Qn (a quarter), YYYY-Www (an ISO week) or YYYY (a year)"
BOUND_FORMS = ("an RFC 3339 time like 2026-11-03T10:00:00Z or 2026-11-03T10:00:00+01:00, "
               "a date like 2026-11-03 (midnight in the report's time zone) or now")
ONE_DAY = timedelta(days=1)

# [0-9], not \d: \d also matches other scripts' digits, which int() would then accept.
_PERIOD_FORMS = {
    "year": re.compile(r"([0-9]{4})"),
    "month": re.compile(r"([0-9]{4})-([0-9]{2})"),
    "quarter": re.compile(r"([0-9]{4})-Q([0-9])"),
    "week": re.compile(r"([0-9]{4})-W([0-9]{2})"),
}
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# RFC 3339 (seconds optional, as people write them); fromisoformat alone accepts more forms.
_TIME = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)"
                   r"([Zz]|[+-][0-9]{2}:[0-9]{2})?")


# --- intervals ---------------------------------------------------------------------------------


class _Interval:
    """What a period, a day and a week share: [start, end) in unix seconds."""

    start: datetime
    end: datetime

    @property
    def start_ts(self) -> float:
        return self.start.timestamp()

    @property
    def end_ts(self) -> float:
        return self.end.timestamp()

    @property
    def seconds(self) -> float:
        """Real elapsed seconds (through UTC, not wall clocks: a DST day is 23 or 25 h)."""
        return self.end_ts - self.start_ts

    def contains(self, ts: float) -> bool:
        return self.start_ts <= ts < self.end_ts


@dataclass(frozen=True)
class Day(_Interval):
    """A calendar day in the period's zone, clipped to the period (`partial` then)."""

    date: date
    start: datetime
    end: datetime
    partial: bool = False

    def __str__(self) -> str:
        return self.date.isoformat()


@dataclass(frozen=True)
class Week(_Interval):
    """An ISO week (Monday to Sunday in the period's zone), clipped to the period."""

    label: str  # "2026-W44", in the ISO year (2026-W01 starts on 2025-12-29)
    start: datetime
    end: datetime
    partial: bool = False

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class Period(_Interval):
    """A report's period: [start, end) in `zone`, named by `label`."""

    label: str  # "2026-11", "2026-Q4", "2026-W47", "2026", "2026-11-03T00:00+01:00..2026-11-17T00:00+01:00"
    kind: Kind
    start: datetime
    end: datetime
    zone: tzinfo  # a ZoneInfo, or UTC

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown period kind {self.kind!r}: use one of {', '.join(KINDS)}")
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError(f"period {self.label!r}: start and end must be timezone-aware")
        if self.start_ts >= self.end_ts:
            raise ValueError(f"period {self.label!r} is empty: its start must be before its end")

    def __str__(self) -> str:
        return self.label

    def is_complete(self, now_ts: float) -> bool:
        """The period has ended at `now_ts` (its end is exclusive: complete at that instant)."""
        return now_ts >= self.end_ts

    def days(self) -> list[Day]:
        """Every calendar day of the zone overlapping the period, clipped to it."""
        out = []
        day = _day_of(self.start_ts, self.zone)
        begin = _day_start(day, self.zone)
        while begin.timestamp() < self.end_ts:
            after = _day_start_or_none(_plus_days(day, 1), self.zone)
            start, end, partial = self._clip(begin, after)
            out.append(Day(day, start, end, partial))
            if after is None:  # 9999-12-31, the last day datetime represents
                break
            day, begin = day + ONE_DAY, after
        return out

    def weeks(self) -> list[Week]:
        """Every ISO week (Monday start) overlapping the period, clipped to it."""
        out = []
        first = _day_of(self.start_ts, self.zone)
        monday = first - timedelta(days=first.weekday())
        begin = _day_start(monday, self.zone)
        while begin.timestamp() < self.end_ts:
            after = _day_start_or_none(_plus_days(monday, 7), self.zone)
            iso = monday.isocalendar()
            start, end, partial = self._clip(begin, after)
            out.append(Week(f"{iso.year:04d}-W{iso.week:02d}", start, end, partial))
            if after is None:
                break
            monday, begin = monday + timedelta(days=7), after
        return out

    def _clip(self, begin: datetime, after: datetime | None) -> tuple[datetime, datetime, bool]:
        """[begin, after) clipped to the period, and whether that cut it (compared in unix
        seconds: datetimes of one zone compare by wall clock, ignoring fold)."""
        cut_start = begin.timestamp() < self.start_ts
        cut_end = after is None or after.timestamp() > self.end_ts
        return (self.start if cut_start else begin), (self.end if cut_end else after), cut_start or cut_end


# --- time zones and days -----------------------------------------------------------------------


def zone_of(name: str | None) -> Zone:
    """The time zone `name`: None or "UTC" is UTC, else an IANA name; ValueError otherwise."""
    if name is None or name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory, "Europe"
        raise ValueError(f"unknown time zone {name[:60]!r}: use an IANA name like Europe/Paris") from None


def _zone(zone: tzinfo | str | None) -> tzinfo:
    return zone if isinstance(zone, tzinfo) else zone_of(zone)


def _exists(moment: datetime) -> bool:
    """The wall-clock time `moment` (with its fold) happens: it is not in a DST gap."""
    try:
        back = datetime.fromtimestamp(moment.timestamp(), moment.tzinfo)
    except (OverflowError, ValueError):  # past 9999-12-31 in UTC: no better answer there
        return True
    return back.replace(tzinfo=None) == moment.replace(tzinfo=None)  # naive ==: fold ignored


def _day_start(day: date, zone: tzinfo) -> datetime:
    """The first instant of the calendar day `day` in `zone`, as an aware datetime there.

    Usually its midnight. When midnight happens twice (clocks go back from 01:00 to 00:00)
    the earlier one: fold=0 there. When it does not happen (clocks jump from 00:00 to
    01:00), the instant of the jump: fold is then meaningless, both readings of 00:00 land
    outside the day (one on the previous evening, one after the jump), and the jump lies
    between them."""
    wall = datetime(day.year, day.month, day.day, tzinfo=zone)
    readings = sorted((wall.replace(fold=0), wall.replace(fold=1)), key=datetime.timestamp)
    for moment in readings:
        if _exists(moment):
            return moment
    # In the gap: the earlier reading shows the previous day, the later one this day; the
    # first second that shows this day is the transition (transitions fall on whole seconds).
    lo, hi = math.floor(readings[0].timestamp()), math.ceil(readings[1].timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).date() >= day:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, zone)


def _day_start_or_none(day: date | None, zone: tzinfo) -> datetime | None:
    """`_day_start`, or None past what datetime represents (the day after 9999-12-31)."""
    if day is None:
        return None
    try:
        return _day_start(day, zone)
    except (OverflowError, ValueError):
        return None


def _plus_days(day: date, n: int) -> date | None:
    try:
        return day + timedelta(days=n)
    except OverflowError:
        return None


def _day_of(ts: float, zone: tzinfo) -> date:
    """The calendar day whose [start, next start) holds `ts`. Its local date, except where
    clocks go back across midnight and the date reads the previous day for a while."""
    day = datetime.fromtimestamp(ts, zone).date()
    while ts < _day_start(day, zone).timestamp():
        day -= ONE_DAY
    while (after := _day_start_or_none(_plus_days(day, 1), zone)) is not None and ts >= after.timestamp():
        day += ONE_DAY
    return day


# --- calendar periods --------------------------------------------------------------------------


def _check_kind(kind: str) -> None:
    if kind not in CALENDAR_KINDS:
        raise ValueError(f"unknown period kind {kind!r}: use one of {', '.join(CALENDAR_KINDS)}")


def _key(kind: str, day: date) -> tuple[int, int]:
    """(year, number) of the period of `kind` holding `day`: the month, quarter or ISO week
    number (in the ISO year for a week), 0 for a year."""
    if kind == "month":
        return day.year, day.month
    if kind == "quarter":
        return day.year, (day.month - 1) // 3 + 1
    if kind == "week":
        iso = day.isocalendar()
        return iso.year, iso.week
    return day.year, 0


def _calendar(kind: str, year: int, number: int, zone: tzinfo) -> Period:
    """The period of `kind` numbered `number` in `year` (see `_key`), from one local day start
    to the next."""
    if kind == "month":
        label, first = f"{year:04d}-{number:02d}", date(year, number, 1)
        after = date(year + number // 12, number % 12 + 1, 1) if (year, number) < (9999, 12) else None
    elif kind == "quarter":
        label, first = f"{year:04d}-Q{number}", date(year, 3 * number - 2, 1)
        after = date(year + number // 4, 3 * (number % 4) + 1, 1) if (year, number) < (9999, 4) else None
    elif kind == "week":
        label, first = f"{year:04d}-W{number:02d}", date.fromisocalendar(year, number, 1)
        after = _plus_days(first, 7)
    else:
        label, first = f"{year:04d}", date(year, 1, 1)
        after = date(year + 1, 1, 1) if year < 9999 else None
    end = _day_start_or_none(after, zone)
    if end is None:
        raise ValueError(f"period {label!r} ends after 9999-12-31, past the last date this tool represents")
    return Period(label, kind, _day_start(first, zone), end, zone)  # type: ignore[arg-type]


def period_of(kind: str, ts: float, zone: tzinfo | str | None = None) -> Period:
    """The period of `kind` (month, quarter, week, year) that holds the instant `ts`."""
    _check_kind(kind)
    zone = _zone(zone)
    return _calendar(kind, *_key(kind, _day_of(ts, zone)), zone)


def previous_period(kind: str, now_ts: float, zone: tzinfo | str | None = None) -> Period:
    """The last complete period of `kind` at `now_ts`: the one before the period holding it.
    At a period's very start (a scheduled report firing at the boundary) that is the one
    that just ended, since ends are exclusive."""
    current = period_of(kind, now_ts, zone)
    # The start's date is the period's first day even when that day starts after midnight.
    return _calendar(kind, *_key(kind, current.start.date() - ONE_DAY), current.zone)


def has_week_53(year: int) -> bool:
    """The ISO year `year` has 53 weeks: December 28 is always in its last week."""
    return date(year, 12, 28).isocalendar().week == 53


def _shown(text: object) -> str:
    """`text` for a one-line message: repr escapes newlines; long input is cut."""
    text = str(text)
    return repr(text if len(text) <= 40 else text[:40] + "...")


def parse_period(text: str, zone: tzinfo | str | None = None) -> Period:
    """The calendar period `text` names in `zone` (UTC by default): "2026-11" (a month),
    "2026-Q4" (a quarter), "2026-W47" (an ISO week), "2026" (a year). ValueError, one line
    naming the text and the accepted forms, for anything else."""
    zone = _zone(zone)

    def invalid(why: str) -> ValueError:
        return ValueError(f"invalid period {_shown(text)}: {why}; use {FORMS}")

    kind, found = "", None
    for kind, form in _PERIOD_FORMS.items() if isinstance(text, str) else ():
        if found := form.fullmatch(text):
            break
    if found is None:
        raise invalid("not a period")
    year = int(found[1])
    number = int(found[2]) if kind != "year" else 0
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise invalid(f"year {year} is not in {FIRST_YEAR}..{LAST_YEAR}")
    if kind == "month" and not 1 <= number <= 12:
        raise invalid(f"month {found[2]} is not 01..12")
    if kind == "quarter" and not 1 <= number <= 4:
        raise invalid(f"quarter Q{number} is not Q1..Q4")
    if kind == "week" and not 1 <= number <= 53:
        raise invalid(f"week W{found[2]} is not W01..W53")
    if kind == "week" and number == 53 and not has_week_53(year):
        raise invalid(f"{year} has no ISO week 53 (its last week is {year}-W52)")
    try:
        return _calendar(kind, year, number, zone)
    except ValueError:  # 9999's last periods end past what datetime represents
        raise invalid("it ends after 9999-12-31, the last date this tool represents") from None


# --- free ranges -------------------------------------------------------------------------------


def _bound(text: str, zone: tzinfo, now: float | None) -> datetime:
    """A range's bound: "now", a date (its first instant in `zone`) or an RFC 3339 time."""

    def invalid(why: str) -> ValueError:
        return ValueError(f"invalid time {_shown(text)}: {why}; use {BOUND_FORMS}")

    if not isinstance(text, str):
        raise invalid("not a string")
    if text == "now":
        # Whole seconds: a report's numbers are no finer, and its label stays short.
        return datetime.fromtimestamp(math.floor(time.time() if now is None else now), zone)
    found = _TIME.fullmatch(text)
    if not _DATE.fullmatch(text) and not found:
        raise invalid("not a time")
    if found and found[3] is None:  # a wall time is ambiguous, or missing, around DST changes
        raise invalid("no UTC offset")
    try:
        if found:
            offset = "+00:00" if found[3] in "Zz" else found[3]
            moment = datetime.fromisoformat(f"{found[1]}T{found[2]}{offset}").astimezone(zone)
        else:
            moment = _day_start(date.fromisoformat(text), zone)
    except (OverflowError, ValueError) as e:  # "day is out of range for month", ...
        raise invalid(str(e)) from None
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise invalid(f"year {moment.year} is not in {FIRST_YEAR}..{LAST_YEAR}")
    return moment


def _stamp(moment: datetime) -> str:
    """RFC 3339 with the zone's offset, as short as exact: minutes when the seconds are 0."""
    if moment.second == 0 and moment.microsecond == 0:
        return moment.isoformat(timespec="minutes")
    return moment.isoformat(timespec="seconds" if moment.microsecond == 0 else "microseconds")


def period_between(start_text: str, end_text: str, zone: tzinfo | str | None = None, *,
                   now: float | None = None) -> Period:
    """The free range [start, end) in `zone` (UTC by default). Each bound is an RFC 3339 time
    with its offset ("2026-11-03T10:00:00Z", "2026-11-03T10:00:00+01:00"), a date
    ("2026-11-03": its midnight in `zone`) or "now" (`now`, default the clock, in whole
    seconds). ValueError in one line when a bound is unreadable or start >= end."""
    zone = _zone(zone)
    start, end = _bound(start_text, zone, now), _bound(end_text, zone, now)
    if start.timestamp() >= end.timestamp():
        raise ValueError(f"empty range {_shown(start_text)}..{_shown(end_text)}: its start must be "
                         f"before its end ({_stamp(start)} is not before {_stamp(end)})")
    return Period(f"{_stamp(start)}..{_stamp(end)}", "range", start, end, zone)

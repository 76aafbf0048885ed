"""The report's calendar periods (slo.report.periods): months, quarters, ISO weeks, years and
free ranges in a time zone, their days and weeks across DST changes, the scheduled report's
previous period, and one-line errors.

The truths are written out (UTC instants, weekdays) or computed here independently of the
module: ISO week 53 from the weekday of January 1, a day's first instant by scanning the
clock minute by minute."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from slo.report.periods import (
    Period,
    has_week_53,
    parse_period,
    period_between,
    period_of,
    previous_period,
    zone_of,
)

PARIS = ZoneInfo("Europe/Paris")
SANTIAGO = ZoneInfo("America/Santiago")
HAVANA = ZoneInfo("America/Havana")
HOUR, DAY = 3600, 86400


def ts(text: str) -> float:
    """Unix seconds of an RFC 3339 time written with its offset."""
    return datetime.fromisoformat(text).timestamp()


def local_date(t: float, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(t, zone).date()


def first_instant(day: date, zone: ZoneInfo) -> float:
    """The first whole minute whose local date is `day`: scan the clock from 15 h before the
    UTC midnight of that date (no zone is more than 14 h ahead of UTC)."""
    t = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() - 15 * HOUR
    while local_date(t, zone) < day:
        t += 60
    return t


def assert_partition(period: Period, pieces) -> None:
    """`pieces` cover the period without gap or overlap, in order."""
    assert pieces[0].start_ts == period.start_ts and pieces[-1].end_ts == period.end_ts
    for a, b in itertools.pairwise(pieces):
        assert a.end_ts == b.start_ts
    assert sum(p.seconds for p in pieces) == period.seconds


# --- months and quarters across DST -------------------------------------------------------------


def test_march_in_paris_is_one_hour_short():
    march = parse_period("2026-03", PARIS)
    assert (march.kind, str(march), march.label) == ("month", "2026-03", "2026-03")
    assert march.start_ts == ts("2026-02-28T23:00:00+00:00")  # CET, UTC+1
    assert march.end_ts == ts("2026-03-31T22:00:00+00:00")  # CEST, UTC+2
    assert march.seconds == 31 * DAY - HOUR
    days = march.days()
    assert [d.date for d in days] == [date(2026, 3, n) for n in range(1, 32)]
    assert {d.date: d.seconds for d in days if d.seconds != DAY} == {date(2026, 3, 29): 23 * HOUR}
    assert not any(d.partial for d in days)
    assert_partition(march, days)


def test_october_in_paris_is_one_hour_long():
    october = parse_period("2026-10", PARIS)
    assert october.seconds == 31 * DAY + HOUR
    days = october.days()
    assert len(days) == 31
    assert {d.date: d.seconds for d in days if d.seconds != DAY} == {date(2026, 10, 25): 25 * HOUR}
    assert_partition(october, days)


def test_month_boundary_and_quarter_in_paris():
    april = parse_period("2026-04", PARIS)
    assert april.start_ts == ts("2026-03-31T22:00:00+00:00") == parse_period("2026-03", PARIS).end_ts
    assert april.start.isoformat() == "2026-04-01T00:00:00+02:00"
    q1 = parse_period("2026-Q1", PARIS)
    assert (q1.kind, q1.label) == ("quarter", "2026-Q1")
    assert q1.start_ts == ts("2025-12-31T23:00:00+00:00")
    assert q1.end_ts == ts("2026-03-31T22:00:00+00:00")
    assert q1.seconds == (31 + 28 + 31) * DAY - HOUR
    assert len(q1.days()) == 90
    q4 = parse_period("2026-Q4", PARIS)
    assert (q4.start_ts, q4.end_ts) == (ts("2026-10-01T00:00:00+02:00"), ts("2027-01-01T00:00:00+01:00"))
    year = parse_period("2028", PARIS)  # a leap year
    assert (year.kind, len(year.days()), year.seconds) == ("year", 366, 366 * DAY)


def test_utc_is_the_default_zone():
    november = parse_period("2026-11")
    assert november.zone.utcoffset(datetime(2026, 7, 1)) == timedelta(0)
    assert (november.start_ts, november.end_ts) == (ts("2026-11-01T00:00:00Z"), ts("2026-12-01T00:00:00Z"))
    assert november.seconds == 30 * DAY
    for name in (None, "UTC"):
        zone = zone_of(name)
        assert zone.utcoffset(datetime(2026, 7, 1)) == timedelta(0) == zone.utcoffset(datetime(2026, 1, 1))
        assert parse_period("2026-11", zone) == november
    assert zone_of("Europe/Paris") == PARIS
    assert parse_period("2026-11", "Europe/Paris") == parse_period("2026-11", PARIS)


@pytest.mark.parametrize("name", ["Mars/Olympus", "Europe", "", "../etc/passwd", "utc"])
def test_unknown_time_zone(name):
    with pytest.raises(ValueError) as e:
        zone_of(name)
    assert str(e.value) == f"unknown time zone {name!r}: use an IANA name like Europe/Paris"


# --- ISO weeks -----------------------------------------------------------------------------------


def iso_year_has_53_weeks(year: int) -> bool:
    """The calendar rule: January 1 is a Thursday, or a Wednesday in a leap year."""
    jan1 = date(year, 1, 1).weekday()  # Monday 0
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return jan1 == 3 or (leap and jan1 == 2)


def test_iso_week_one_and_week_53():
    w01 = parse_period("2026-W01", PARIS)
    assert (w01.kind, w01.label) == ("week", "2026-W01")
    assert w01.start.date() == date(2025, 12, 29) and w01.start.date().weekday() == 0  # a Monday
    assert (w01.start_ts, w01.end_ts) == (ts("2025-12-29T00:00:00+01:00"), ts("2026-01-05T00:00:00+01:00"))
    assert [d.date.weekday() for d in w01.days()] == list(range(7))
    assert iso_year_has_53_weeks(2026) and not iso_year_has_53_weeks(2027)  # 2026 starts on a Thursday
    w53 = parse_period("2026-W53", PARIS)
    assert (w53.start.date(), w53.end.date()) == (date(2026, 12, 28), date(2027, 1, 4))
    with pytest.raises(ValueError, match=r"2027 has no ISO week 53"):
        parse_period("2027-W53", PARIS)
    for year in range(1970, 2101):
        assert has_week_53(year) == iso_year_has_53_weeks(year), year
        if iso_year_has_53_weeks(year):
            assert parse_period(f"{year}-W53").start.date() == date(year, 12, 31) - timedelta(
                days=date(year, 12, 31).weekday())
        else:
            with pytest.raises(ValueError):
                parse_period(f"{year}-W53")


def test_weeks_of_a_month_are_iso_weeks_clipped_to_it():
    november = parse_period("2026-11", PARIS)
    assert date(2026, 11, 1).weekday() == 6 and date(2026, 11, 30).weekday() == 0  # Sunday, Monday
    # The truth: November's dates grouped by ISO week; a week runs from its first date's
    # midnight to the midnight after its last date (Paris has no DST change in November).
    groups: dict[str, list[date]] = {}
    for n in range(1, 31):
        day = date(2026, 11, n)
        iso = day.isocalendar()
        groups.setdefault(f"{iso.year}-W{iso.week:02d}", []).append(day)

    def midnight(day: date) -> float:
        return datetime(day.year, day.month, day.day, tzinfo=PARIS).timestamp()

    truth = [(label, midnight(days[0]), midnight(days[-1] + timedelta(days=1)), len(days) < 7)
             for label, days in groups.items()]
    weeks = november.weeks()
    assert [(w.label, w.start_ts, w.end_ts, w.partial) for w in weeks] == truth
    assert [w.label for w in weeks] == ["2026-W44", "2026-W45", "2026-W46", "2026-W47", "2026-W48", "2026-W49"]
    assert weeks[0].seconds == DAY and weeks[-1].seconds == DAY
    assert_partition(november, weeks)
    # A week across the October DST change, whole.
    w43 = parse_period("2026-W43", PARIS)
    assert w43.seconds == 7 * DAY + HOUR and [w.partial for w in w43.weeks()] == [False]


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "2026-13", "2026-00", "2026-Q5", "2026-Q0", "2026-W00", "2026-W54", "2027-W53", "1969-12",
    "1969", "10000", "2026-1", "2026-11-03", "26-11", "2026/11", "2026-q4", "2026-w47", "",
    " 2026-11", "2026-11\n", "２０２６-11", "9999-12", "november",
])
def test_parse_period_refuses_in_one_line(text):
    with pytest.raises(ValueError) as e:
        parse_period(text, PARIS)
    message = str(e.value)
    assert "\n" not in message
    assert repr(text) in message
    assert "YYYY-MM" in message and "YYYY-Qn" in message and "YYYY-Www" in message


def test_parse_period_says_what_is_wrong():
    for text, why in [("2026-13", "month 13"), ("2026-Q5", "Q5"), ("2026-W54", "W54"),
                      ("1969-12", "year 1969"), ("2027-W53", "no ISO week 53")]:
        with pytest.raises(ValueError, match=why):
            parse_period(text)
    assert parse_period("9999-11").end.date() == date(9999, 12, 1)  # the last year is accepted
    assert parse_period("1970-01", PARIS).start_ts == -HOUR  # Paris midnight: 1969-12-31T23:00Z


def test_period_refuses_an_empty_or_naive_interval():
    start = datetime(2026, 11, 1, tzinfo=PARIS)
    with pytest.raises(ValueError):
        Period("x", "range", start, start, PARIS)
    with pytest.raises(ValueError):
        Period("x", "range", start.replace(tzinfo=None), start.replace(tzinfo=None) + timedelta(1), PARIS)
    with pytest.raises(ValueError):
        Period("x", "fortnight", start, start + timedelta(14), PARIS)


# --- free ranges ---------------------------------------------------------------------------------


def test_range_between_dates_is_local_midnights():
    r = period_between("2026-11-03", "2026-11-17", PARIS)
    assert (r.kind, r.label) == ("range", "2026-11-03T00:00+01:00..2026-11-17T00:00+01:00")
    assert (r.start_ts, r.end_ts) == (ts("2026-11-02T23:00:00Z"), ts("2026-11-16T23:00:00Z"))
    assert len(r.days()) == 14 and not any(d.partial for d in r.days())
    assert str(r) == r.label
    across = period_between("2026-03-28", "2026-03-30", PARIS)  # over the spring change
    assert across.seconds == 2 * DAY - HOUR


def test_range_between_rfc3339_times_clips_first_and_last_days():
    r = period_between("2026-11-03T10:00:00Z", "2026-11-05T10:30:00+01:00", PARIS)
    assert (r.start_ts, r.end_ts) == (ts("2026-11-03T10:00:00Z"), ts("2026-11-05T09:30:00Z"))
    assert r.start.isoformat() == "2026-11-03T11:00:00+01:00"  # shown in the report's zone
    assert r.label == "2026-11-03T11:00+01:00..2026-11-05T10:30+01:00"
    days = r.days()
    assert [(d.date, d.seconds, d.partial) for d in days] == [
        (date(2026, 11, 3), 13 * HOUR, True),
        (date(2026, 11, 4), DAY, False),
        (date(2026, 11, 5), 10.5 * HOUR, True),
    ]
    assert_partition(r, days)
    weeks = r.weeks()  # Tuesday to Thursday: one ISO week, clipped on both sides
    assert [(w.label, w.partial) for w in weeks] == [("2026-W45", True)]
    assert (weeks[0].start_ts, weeks[0].end_ts) == (r.start_ts, r.end_ts)
    assert period_between("2026-11-03t10:00:00.250z", "2026-11-03 11:00+00:00", PARIS).seconds == HOUR - 0.25


def test_range_now():
    r = period_between("2026-11-03", "now", PARIS, now=ts("2026-11-05T12:34:56.7+00:00"))
    assert r.end_ts == ts("2026-11-05T12:34:56+00:00")  # whole seconds
    assert r.label == "2026-11-03T00:00+01:00..2026-11-05T13:34:56+01:00"
    before = time.time()
    live = period_between("2026-11-03", "now")
    assert before - 1 <= live.end_ts <= time.time()


@pytest.mark.parametrize("start, end", [
    ("2026-11-05", "2026-11-03"),  # reversed
    ("2026-11-03", "2026-11-03"),  # empty
    ("2026-11-03T00:00:00+01:00", "2026-11-02T23:00:00Z"),  # the same instant
    ("now", "2026-11-03"),  # the clock is past 2026-11-03 in the `now` given below
    ("2026-11-03T10:00:00", "now"),  # no offset: a wall time is ambiguous around DST
    ("2026-02-30", "now"),
    ("2026-11-03T25:00:00Z", "now"),
    ("yesterday", "now"),
    ("2026-W45", "now"),
    ("1969-12-31", "now"),
    ("2026-11-03", "NOW"),
    ("2026-11-03", "2026-11-04\nx"),
])
def test_range_refuses_in_one_line(start, end):
    with pytest.raises(ValueError) as e:
        period_between(start, end, PARIS, now=ts("2026-12-01T00:00:00Z"))
    message = str(e.value)
    assert "\n" not in message
    assert repr(start) in message or repr(end) in message


# --- the period holding an instant, the previous complete one -----------------------------------


def test_previous_month_at_and_around_the_boundary():
    just_after = ts("2026-12-01T00:30:00+01:00")  # 2026-11-30T23:30Z: still November in UTC
    assert previous_period("month", just_after, PARIS).label == "2026-11"
    assert previous_period("month", just_after, "UTC").label == "2026-10"
    boundary = ts("2026-12-01T00:00:00+01:00")
    november = previous_period("month", boundary, PARIS)
    assert november == parse_period("2026-11", PARIS)
    assert november.is_complete(boundary) and not november.is_complete(boundary - 1)
    assert previous_period("month", boundary - 1, PARIS).label == "2026-10"
    assert period_of("month", boundary, PARIS).label == "2026-12"
    assert period_of("month", boundary - 1, PARIS).label == "2026-11"
    assert november.contains(boundary - 1) and not november.contains(boundary)
    assert previous_period("month", ts("2027-01-01T00:00:00+01:00"), PARIS).label == "2026-12"
    assert previous_period("month", ts("2027-01-15T00:00:00Z"), PARIS).label == "2026-12"


def test_previous_week_quarter_and_year():
    monday = date(2026, 11, 23)
    assert monday.weekday() == 0
    week_before = (monday - timedelta(days=7)).isocalendar()
    at = ts("2026-11-23T00:00:00+01:00")
    assert previous_period("week", at, PARIS).label == f"{week_before.year}-W{week_before.week:02d}" == "2026-W47"
    assert previous_period("week", at - 1, PARIS).label == "2026-W46"
    assert period_of("week", at, PARIS).label == "2026-W48"
    # A week across the ISO year: the one before 2026-W01 is 2025-W52.
    assert previous_period("week", ts("2026-01-01T12:00:00+01:00"), PARIS).label == "2025-W52"
    new_year = ts("2027-01-01T00:00:00+01:00")
    assert previous_period("quarter", new_year, PARIS).label == "2026-Q4"
    assert previous_period("quarter", new_year - 1, PARIS).label == "2026-Q3"
    assert previous_period("year", new_year, PARIS).label == "2026"
    assert previous_period("year", new_year - 1, PARIS).label == "2025"
    assert previous_period("quarter", new_year, PARIS).is_complete(new_year)
    with pytest.raises(ValueError, match="fortnight"):
        previous_period("fortnight", new_year, PARIS)
    with pytest.raises(ValueError, match="range"):
        period_of("range", new_year, PARIS)


# --- zones that change clocks at midnight -------------------------------------------------------


def midnights(zone: ZoneInfo):
    """(day, exists, ambiguous) for every day of 2024-2027 whose local midnight is not a plain
    single instant: in a gap (it does not happen) or in a fold (it happens twice)."""
    day = date(2024, 1, 1)
    while day < date(2028, 1, 1):
        wall = datetime(day.year, day.month, day.day, tzinfo=zone)
        readings = [wall.replace(fold=f) for f in (0, 1)]
        back = [datetime.fromtimestamp(r.timestamp(), zone).replace(tzinfo=None) for r in readings]
        exists = any(b == wall.replace(tzinfo=None) for b in back)
        ambiguous = readings[0].utcoffset() != readings[1].utcoffset() and exists
        if not exists or ambiguous:
            yield day, exists, ambiguous
        day += timedelta(days=1)


def test_day_starts_at_the_first_instant_when_midnight_is_skipped():
    skipped = [day for day, exists, _ in midnights(SANTIAGO) if not exists]
    assert date(2026, 9, 6) in skipped  # Chile: Saturday 24:00 -04 -> Sunday 01:00 -03
    for day in skipped:
        month = parse_period(f"{day.year}-{day.month:02d}", SANTIAGO)
        assert_partition(month, month.days())
        year = parse_period(str(day.year), SANTIAGO)
        days = {d.date: d for d in year.days()}
        that = days[day]
        truth = first_instant(day, SANTIAGO)
        assert that.start_ts == truth and local_date(truth - 1, SANTIAGO) < day
        assert (that.start.hour, that.start.minute) == (1, 0)
        assert that.seconds == 23 * HOUR
        assert days[day - timedelta(days=1)].seconds == DAY
        assert days[day - timedelta(days=1)].end_ts == truth
        assert_partition(year, list(days.values()))
        r = period_between(day.isoformat(), (day + timedelta(days=1)).isoformat(), SANTIAGO)
        assert r.start_ts == truth and r.seconds == 23 * HOUR
        assert period_of("week", truth, SANTIAGO).contains(truth)
        assert period_of("month", truth - 1, SANTIAGO) == month  # the evening before, same month


def test_day_starts_at_the_first_midnight_when_it_happens_twice():
    doubled = [day for day, _, ambiguous in midnights(HAVANA) if ambiguous]
    assert doubled  # Cuba: 01:00 -04 -> 00:00 -05 in November
    for day in doubled:
        days = {d.date: d for d in parse_period(str(day.year), HAVANA).days()}
        truth = first_instant(day, HAVANA)
        assert days[day].start_ts == truth
        assert days[day].start.utcoffset() == timedelta(hours=-4)  # the first midnight, before the change
        assert days[day].seconds == 25 * HOUR
        assert days[day - timedelta(days=1)].seconds == DAY


@pytest.mark.parametrize("name", ["Europe/Paris", "America/Santiago", "Africa/Cairo", "America/Havana",
                                  "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Apia", "America/St_Johns"])
def test_every_day_of_2024_to_2027_starts_at_its_first_instant(name):
    zone = ZoneInfo(name)
    for year in range(2024, 2028):
        period = parse_period(str(year), zone)
        days = period.days()
        assert [d.date for d in days] == [date(year, 1, 1) + timedelta(days=n) for n in range(len(days))]
        assert days[-1].date == date(year, 12, 31)
        assert_partition(period, days)
        for d in days:
            # The first instant that reads the day's date, the one before reads an earlier date.
            assert local_date(d.start_ts, zone) == d.date and local_date(d.start_ts - 1, zone) < d.date
            assert 22 * HOUR <= d.seconds <= 26 * HOUR
        for month in range(1, 13):
            p = parse_period(f"{year}-{month:02d}", zone)
            assert p.start_ts == first_instant(date(year, month, 1), zone)
            assert period_of("month", p.start_ts, zone) == p == period_of("month", p.end_ts - 1, zone)

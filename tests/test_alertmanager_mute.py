"""Planned maintenance windows as Alertmanager time intervals (alerts.mute): the translation
checked against the windows' own occurrences with a model of Alertmanager's matching, what is
left to the engine and why, the muted routes, and `mcp-slo alertmanager`'s stderr line."""

from __future__ import annotations

import calendar
import random
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from alerts import alertmanager, mute
from mcp_slo import cli
from slo import spec
from slo.maintenance import YEAR, Window

NOW = datetime.fromisoformat("2027-01-01T00:00:00+00:00").timestamp()
AM_DAYS = mute.AM_WEEKDAYS


def window(**fields) -> Window:
    return Window(**{"name": "w", "reason": "upgrade", "services": ["fs"], **fields})


# --- a model of Alertmanager 0.25's time interval matching (timeinterval.go) -------------------


def _in(value: int, ranges: list[str], names: tuple[str, ...] = ()) -> bool:
    for r in ranges:
        lo, _, hi = r.partition(":")
        lo_v, hi_v = (names.index(x) if x in names else int(x) for x in (lo, hi or lo))
        if lo_v <= value <= hi_v:
            return True
    return False


def am_muted(intervals: list[dict], t: float) -> bool:
    for spec_ in intervals:
        local = datetime.fromtimestamp(t, ZoneInfo(spec_.get("location", "UTC")))
        minute = local.hour * 60 + local.minute
        if "times" in spec_ and not any(
                int(x["start_time"][:2]) * 60 + int(x["start_time"][3:]) <= minute
                < int(x["end_time"][:2]) * 60 + int(x["end_time"][3:]) for x in spec_["times"]):
            continue
        if "weekdays" in spec_ and not _in((local.weekday() + 1) % 7, spec_["weekdays"], AM_DAYS):
            continue
        if "days_of_month" in spec_:
            last = calendar.monthrange(local.year, local.month)[1]
            days = [":".join(str(int(d) + last + 1 if int(d) < 0 else int(d)) for d in r.split(":"))
                    for r in spec_["days_of_month"]]
            if not _in(local.day, days):
                continue
        if "months" in spec_ and not _in(local.month, spec_["months"]):
            continue
        if "years" in spec_ and not _in(local.year, spec_["years"]):
            continue
        return True
    return False


def assert_same_times(w: Window, samples: int = 3000) -> None:
    """Alertmanager (as modelled) mutes exactly when the window is on: at each occurrence's
    edges (a minute either side) and at random times over the next year."""
    intervals = mute.time_intervals(w, NOW)
    times = [t for s, e in w.occurrences(NOW, NOW + YEAR) for t in (s - 60, s, e - 60, e)]
    rng = random.Random(w.name)
    times += [NOW + rng.uniform(0, YEAR) for _ in range(samples)]
    wrong = [t for t in times if am_muted(intervals, t) != w.active(t)]
    assert not wrong, f"{w.name}: differs at {datetime.fromtimestamp(wrong[0], w.zone).isoformat()}"


# --- the translation --------------------------------------------------------------------------


@pytest.mark.parametrize("fields", [
    {"start": "2027-02-10T22:30:00", "end": "2027-02-14T01:15:00", "timezone": "Europe/Paris"},  # over days
    {"start": "2027-07-01T02:00:00+02:00", "end": "2027-07-01T03:00:00+02:00"},  # an offset, read in UTC
    {"rrule": "FREQ=WEEKLY;BYDAY=SA,SU", "start": "2027-01-02T23:00:00", "duration": "2h",
     "timezone": "Europe/Paris"},  # crosses midnight: Sunday and Monday mornings
    {"rrule": "FREQ=DAILY", "start": "2026-06-01T04:00:00", "duration": "30m", "timezone": "America/New_York"},
    {"rrule": "FREQ=WEEKLY", "start": "2027-03-03T12:00:00", "duration": "90m", "timezone": "Europe/Paris"},
    {"rrule": "FREQ=MONTHLY;BYMONTHDAY=1,15,-1", "start": "2026-01-01T05:00:00", "duration": "1h",
     "timezone": "Australia/Sydney"},
    {"rrule": "FREQ=MONTHLY;BYMONTHDAY=3", "start": "2026-01-03T23:30:00", "duration": "1h"},  # crosses midnight
    {"rrule": "FREQ=YEARLY", "start": "2026-12-24T18:00:00", "duration": "12h", "timezone": "Asia/Kolkata"},
    {"rrule": "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;BYMONTH=1,2,12", "start": "2026-01-01T12:00:00", "duration": "2h"},
    {"rrule": "FREQ=WEEKLY;BYDAY=FR", "start": "2027-05-07T22:00:00", "duration": "56h"},  # Fri 22:00 to Mon 06:00
    {"cron": "30 1 * * *", "duration": "20m", "timezone": "Asia/Kolkata"},
    {"cron": "0 22 1-5 * mon-fri", "duration": "3h", "timezone": "Asia/Tokyo"},  # cron's either, over midnight
    {"cron": "15 6 * jan,jul 0", "duration": "45m", "timezone": "Europe/London"},
    {"cron": "0 12 10,20 * *", "duration": "1h", "timezone": "America/New_York"},
], ids=lambda f: f.get("rrule") or f.get("cron") or f["start"])
def test_alertmanager_mutes_exactly_when_the_window_is_on(fields):
    assert_same_times(window(**fields))


def test_a_window_crossing_midnight_is_two_ranges_on_the_next_weekday():
    w = window(rrule="FREQ=WEEKLY;BYDAY=SA,SU", start="2026-01-03T23:00:00", duration="2h", timezone="Europe/Paris")
    assert mute.time_intervals(w, NOW) == [
        {"times": [{"start_time": "23:00", "end_time": "24:00"}], "weekdays": ["sunday", "saturday"],
         "location": "Europe/Paris"},
        {"times": [{"start_time": "00:00", "end_time": "01:00"}], "weekdays": ["sunday:monday"],
         "location": "Europe/Paris"}]


def test_a_one_off_window_is_its_dates_and_times():
    w = window(start="2027-02-10T22:30:00", end="2027-02-13T01:15:00", timezone="Europe/Paris")
    assert mute.time_intervals(w, NOW) == [
        {"times": [{"start_time": "22:30", "end_time": "24:00"}], "years": ["2027"], "months": ["2"],
         "days_of_month": ["10"], "location": "Europe/Paris"},
        {"times": [{"start_time": "00:00", "end_time": "01:15"}], "years": ["2027"], "months": ["2"],
         "days_of_month": ["13"], "location": "Europe/Paris"},
        {"years": ["2027"], "months": ["2"], "days_of_month": ["11:12"], "location": "Europe/Paris"}]


def test_a_start_to_come_limits_the_dates_to_those_from_it():
    w = window(rrule="FREQ=DAILY", start="2027-03-10T04:00:00", duration="1h")
    assert [i.get("years") for i in mute.time_intervals(w, NOW)] == [["2028:9999"], ["2027"], ["2027"]]
    assert not mute.time_intervals(window(rrule="FREQ=DAILY", start="2026-03-10T04:00:00", duration="1h"),
                                   NOW)[0].get("years")


def test_a_dst_zone_translates_away_from_the_change():
    """Europe/Paris skips and repeats 02:00-03:00 on a Sunday: Sunday 04:00 and 01:30-01:50
    translate; 02:30 (skipped, then repeated) and 01:00 for 3h (across the change) do not."""
    for start, duration in (("2026-01-04T04:00:00", "1h"), ("2026-01-04T01:30:00", "20m")):
        assert_same_times(window(rrule="FREQ=WEEKLY;BYDAY=SU", start=start, duration=duration,
                                 timezone="Europe/Paris"))
    for start, duration in (("2026-01-04T02:30:00", "1h"), ("2026-01-04T01:00:00", "3h")):
        w = window(rrule="FREQ=WEEKLY;BYDAY=SU", start=start, duration=duration, timezone="Europe/Paris")
        with pytest.raises(mute.Unexpressible, match=r"on 2027-03-28 a DST change of Europe/Paris"):
            mute.time_intervals(w, NOW)


def test_an_hour_repeated_by_a_dst_change_is_refused(monkeypatch):
    """New York repeats 01:00-02:00 on 2027-11-07: a daily 01:30 window would be muted twice."""
    w = window(cron="30 1 * * *", duration="20m", timezone="America/New_York")
    with pytest.raises(mute.Unexpressible, match=r"on 2027-11-07 a DST change of America/New_York"):
        mute.time_intervals(w, NOW)
    monkeypatch.setattr(mute, "_check_dst", lambda *args: None)  # what the check prevents:
    second_pass = datetime.fromisoformat("2027-11-07T01:40:00-05:00").timestamp()
    assert am_muted(mute.time_intervals(w, NOW), second_pass) and not w.active(second_pass)


@pytest.mark.parametrize("fields, why", [
    ({"rrule": "FREQ=DAILY;COUNT=3", "start": "2027-01-02T23:00:00", "duration": "1h"}, "uses COUNT"),
    ({"rrule": "FREQ=DAILY;UNTIL=20270301T000000Z", "start": "2027-01-02T23:00:00", "duration": "1h"}, "UNTIL"),
    ({"rrule": "FREQ=WEEKLY;INTERVAL=2", "start": "2027-01-02T23:00:00", "duration": "1h"}, "INTERVAL=2"),
    ({"rrule": "FREQ=MONTHLY;BYDAY=1MO", "start": "2027-01-04T10:00:00", "duration": "1h"}, "BYDAY=1MO"),
    ({"rrule": "FREQ=MONTHLY;BYDAY=MO;BYSETPOS=1", "start": "2027-01-04T10:00:00", "duration": "1h"}, "BYSETPOS"),
    ({"rrule": "FREQ=HOURLY", "start": "2027-01-04T10:00:00", "duration": "10m"}, "FREQ=HOURLY"),
    ({"rrule": "FREQ=MONTHLY;BYMONTHDAY=-1", "start": "2027-01-31T23:00:00", "duration": "2h"}, "crosses midnight"),
    ({"rrule": "FREQ=DAILY;BYMONTH=1", "start": "2027-01-01T23:00:00", "duration": "2h"}, "BYMONTH"),
    ({"rrule": "FREQ=DAILY", "start": "2027-01-01T23:00:30", "duration": "1h"}, "whole minute"),
    ({"cron": "*/15 1 * * *", "duration": "5m"}, "no fixed minute and hour"),
    ({"cron": "0 1 */2 * *", "duration": "5m"}, "only numbers, names, lists and ranges"),
    ({"cron": "0 1 * * *", "duration": "90s"}, "not whole minutes"),
])
def test_what_alertmanager_cannot_express_is_refused_with_its_reason(fields, why):
    with pytest.raises(mute.Unexpressible, match=why.replace("*", r"\*")):
        mute.time_intervals(window(**fields), NOW)


# --- routes and the config ----------------------------------------------------------------------


def spec_with(*windows: dict) -> spec.Spec:
    return spec.parse({"maintenance": [{"reason": "upgrade", "duration": "1h", **w} for w in windows]})


def test_overlapping_scopes_get_their_intersection_first_muted_by_both():
    s = spec_with({"name": "all-fs", "services": ["fs"], "cron": "0 1 * * *"},
                  {"name": "fs-latency", "services": ["fs", "a.b"], "slos": ["latency"], "cron": "0 3 * * *"},
                  {"name": "search-query", "services": ["search"], "tools": ["query"], "cron": "0 5 * * *",
                   "mode": "exclude"})
    config = alertmanager.config(s, now=NOW)
    assert [i["name"] for i in config["time_intervals"]] == ["all-fs", "fs-latency", "search-query"]
    routes = config["route"]["routes"]
    assert [(r["matchers"], r["mute_time_intervals"]) for r in routes[:4]] == [
        (['service="fs"', 'slo="latency"'], ["all-fs", "fs-latency"]),
        (['service="fs"'], ["all-fs"]),
        (['service=~"a\\\\.b|fs"', 'slo="latency"'], ["fs-latency"]),
        (['service="search"', 'tool="query"'], ["search-query"])]
    usual = routes[4:]
    for muted in routes[:4]:  # a copy of the usual routes, each muted too
        assert [{k: v for k, v in r.items() if k != "mute_time_intervals"} for r in muted["routes"]] == usual
        assert all(r["mute_time_intervals"] == muted["mute_time_intervals"] for r in muted["routes"])


def test_a_spec_without_windows_has_no_time_intervals():
    assert "time_intervals" not in alertmanager.config(spec.parse({}), now=NOW)


def test_the_cli_names_each_window_left_to_the_engine_on_stderr(tmp_path, capsys):
    path = tmp_path / "slo.yaml"
    path.write_text("maintenance:\n"
                    "  - {name: fine, reason: r, services: [fs], cron: '0 4 * * *', duration: 1h}\n"
                    "  - {name: counted, reason: r, services: [fs], rrule: 'FREQ=DAILY;COUNT=3',\n"
                    "     start: '2030-01-01T04:00:00', duration: 1h}\n")
    out = tmp_path / "am.yml"
    assert cli.main(["alertmanager", "--config", str(path), "--out", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [("maintenance window 'counted' is not muted in Alertmanager (the engine's mcp_slo_maintenance "
                   "gauge and the rules hold its alerts back): its RRULE uses COUNT: Alertmanager's intervals "
                   "have no end")]
    assert "name: fine" in out.read_text() and "counted" not in out.read_text()

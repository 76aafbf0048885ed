"""Maintenance windows: the model (one-off, RRULE, cron, time zones and DST, occurrences,
overlaps) and the spec's `maintenance:` list through `mcp-slo validate` (one-line errors, exit 2)."""

from __future__ import annotations

import textwrap
from datetime import datetime

import pytest
from pydantic import ValidationError

from mcp_slo import cli
from slo import maintenance, spec
from slo.maintenance import Window


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def window(**fields) -> Window:
    return Window(**{"name": "w", "reason": "upgrade", "services": ["fs"], **fields})


# --- the model --------------------------------------------------------------------------------


def test_one_off_window_with_offset_and_naive_in_its_zone():
    a = window(start="2027-01-15T02:00:00+01:00", end="2027-01-15T04:00:00+01:00")
    assert a.kind == "one-off"
    assert a.bounds == (ts("2027-01-15T01:00:00+00:00"), ts("2027-01-15T03:00:00+00:00"))
    naive = window(start="2027-07-01T02:00:00", end="2027-07-01T03:00:00", timezone="Europe/Paris")
    assert naive.bounds[0] == ts("2027-07-01T00:00:00+00:00")  # CEST, UTC+2
    assert a.occurrences(ts("2027-01-15T00:00:00+00:00"), ts("2027-01-16T00:00:00+00:00")) == [a.bounds]
    assert a.occurrences(ts("2027-01-15T03:00:00+00:00"), ts("2027-01-16T00:00:00+00:00")) == []  # half open
    assert a.active(ts("2027-01-15T01:00:00+00:00")) and not a.active(ts("2027-01-15T03:00:00+00:00"))


def test_rrule_window_keeps_local_time_across_dst():
    w = window(rrule="FREQ=WEEKLY;BYDAY=SU", start="2027-03-21T03:00:00", duration="1h", timezone="Europe/Paris")
    got = w.occurrences(ts("2027-03-20T00:00:00+00:00"), ts("2027-04-05T00:00:00+00:00"))
    # 03:00 in Paris: UTC+1 before the change on March 28, UTC+2 after
    assert [maintenance.rfc3339(a) for a, _ in got] == ["2027-03-21T02:00:00Z", "2027-03-28T01:00:00Z",
                                                        "2027-04-04T01:00:00Z"]
    assert all(b - a == 3600 for a, b in got)


def test_cron_and_rrule_windows_in_the_spring_forward_gap():
    """02:30 does not exist on March 14, 2027 in New York: each library starts that day's
    occurrence after the gap (croniter at 03:00, dateutil at 03:30), then 02:30 again."""
    since, until = ts("2027-03-13T00:00:00+00:00"), ts("2027-03-16T00:00:00+00:00")
    cron = window(cron="30 2 * * *", duration="20m", timezone="America/New_York")
    rule = window(rrule="FREQ=DAILY", start="2027-03-13T02:30:00", duration="20m", timezone="America/New_York")
    for w, gap in ((cron, "03:00"), (rule, "03:30")):
        got = w.occurrences(since, until)
        assert [maintenance.rfc3339(a, w.zone) for a, _ in got] == [
            "2027-03-13T02:30:00-05:00", f"2027-03-14T{gap}:00-04:00", "2027-03-15T02:30:00-04:00"]
        assert all(b - a == 1200 for a, b in got)


def test_cron_and_rrule_windows_run_once_in_the_repeated_hour():
    """01:30 comes twice on November 7, 2027 in New York (EDT, then EST): once is enough."""
    since, until = ts("2027-11-06T00:00:00+00:00"), ts("2027-11-09T00:00:00+00:00")
    cron = window(cron="30 1 * * *", duration="2h", timezone="America/New_York")  # 2h: no overlap refused
    rule = window(rrule="FREQ=DAILY", start="2027-11-06T01:30:00", duration="2h", timezone="America/New_York")
    for w in (cron, rule):
        assert [maintenance.rfc3339(a, w.zone) for a, _ in w.occurrences(since, until)] == [
            "2027-11-06T01:30:00-04:00", "2027-11-07T01:30:00-04:00", "2027-11-08T01:30:00-05:00"]


def test_occurrence_going_on_at_the_start_of_a_range_is_included():
    w = window(cron="0 1 * * *", duration="2h")
    got = w.occurrences(ts("2027-01-01T02:00:00+00:00"), ts("2027-01-01T02:30:00+00:00"))
    assert got == [(ts("2027-01-01T01:00:00+00:00"), ts("2027-01-01T03:00:00+00:00"))]
    assert w.current_or_next(ts("2027-01-01T04:00:00+00:00"))[0] == ts("2027-01-02T01:00:00+00:00")


def test_scope_contract():
    whole = window(start="2027-01-01T00:00:00Z", end="2027-01-02T00:00:00Z")
    assert whole.covers("fs", "availability") and whole.covers("fs", "latency", "read")
    assert not whole.covers("other", "availability")
    tool = window(start="2027-01-01T00:00:00Z", end="2027-01-02T00:00:00Z", tools=["read"], slos=["latency"])
    assert tool.covers("fs", "latency", "read")
    assert not tool.covers("fs", "latency")  # the service-level series keeps its events
    assert not tool.covers("fs", "availability", "read") and not tool.covers("fs", "latency", "write")


def test_active_and_merged_intervals_per_slo():
    a = window(name="a", mode="exclude", start="2027-01-01T00:00:00Z", end="2027-01-01T02:00:00Z")
    b = window(name="b", mode="exclude", start="2027-01-01T01:00:00Z", end="2027-01-01T03:00:00Z", slos=["latency"])
    c = window(name="c", mode="silence", start="2027-01-01T05:00:00Z", end="2027-01-01T06:00:00Z")
    windows = [a, b, c]
    assert maintenance.active(windows, ts("2027-01-01T01:30:00+00:00")) == [a, b]
    since, until = ts("2027-01-01T00:30:00+00:00"), ts("2027-01-01T12:00:00+00:00")
    assert maintenance.intervals_for(windows, "fs", "latency", "", since, until) == [
        (since, ts("2027-01-01T03:00:00+00:00"))]  # merged, clipped to the range
    assert maintenance.intervals_for(windows, "fs", "availability", "", since, until) == [
        (since, ts("2027-01-01T02:00:00+00:00"))]
    assert maintenance.intervals_for(windows, "fs", "availability", "", since, until, mode="silence") == [
        (ts("2027-01-01T05:00:00+00:00"), ts("2027-01-01T06:00:00+00:00"))]


def test_overlaps_only_between_windows_of_the_same_scope_and_mode():
    a = window(name="a", start="2027-01-01T00:00:00Z", end="2027-01-01T02:00:00Z")
    b = window(name="b", start="2027-01-01T01:00:00Z", end="2027-01-01T03:00:00Z")
    other_mode = window(name="c", mode="exclude", start="2027-01-01T01:00:00Z", end="2027-01-01T03:00:00Z")
    after = window(name="d", start="2027-01-01T02:00:00Z", end="2027-01-01T03:00:00Z")  # touching is fine
    far = ts("2026-01-01T00:00:00+00:00")
    assert maintenance.first_overlap([a, b], far, far + maintenance.YEAR)[:2] == (0, 1)
    assert maintenance.first_overlap([a, other_mode, after], far, far + maintenance.YEAR) is None
    nightly = window(name="n", cron="0 1 * * *", duration="1h")
    once = window(name="o", start="2027-01-05T01:30:00Z", end="2027-01-05T01:45:00Z")
    assert maintenance.first_overlap([nightly, once], far, far + 2 * maintenance.YEAR)[2] == \
        ts("2027-01-05T01:30:00+00:00")


@pytest.mark.parametrize(("fields", "message"), [
    ({"start": "2027-01-02T00:00:00Z", "end": "2027-01-01T00:00:00Z"}, "must be after start"),
    ({"start": "2027-01-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"}, "must be after start"),
    ({"rrule": "FREQ=DAILIY", "start": "2027-01-01T00:00:00", "duration": "1h"}, "not an RFC 5545 RRULE"),
    ({"rrule": "FREQ=DAILY", "duration": "1h"}, "needs start"),
    ({"cron": "61 * * * *", "duration": "1h"}, "not a cron expression"),
    ({"cron": "0 1 * * *", "duration": "25h"}, "would overlap"),
    ({"cron": "* * * * *", "duration": "1m"}, "recurs too often"),
    ({"cron": "0 1 * * *", "duration": "0h"}, "not a duration"),
    ({"cron": "0 1 * * *", "duration": "1h", "timezone": "Mars/Olympus"}, "not an IANA time zone"),
    ({"start": "2027-01-01T00:00:00Z", "end": "2027-01-02T00:00:00Z", "mode": "mute"}, "'exclude' or 'silence'"),
])
def test_bad_windows(fields, message):
    with pytest.raises(ValidationError, match=message):
        window(**fields)


# --- the spec, through `mcp-slo validate` ------------------------------------------------------

SPEC = """\
version: 1
{strict}
defaults:
  objectives: [{{name: availability, kind: availability, target: 99.9}}]
services:
  filesystem: {{tools: {{write_file: {{}}}}}}
maintenance:
  - name: db-upgrade
    reason: Postgres 17 upgrade
    mode: exclude
    services: [filesystem]
    start: 2027-01-15T02:00:00+01:00
    end: 2027-01-15T04:00:00+01:00
{more}"""


def validate(tmp_path, capsys, more: str = "", strict: bool = False) -> tuple[int, str, str]:
    path = tmp_path / "slo.yaml"
    path.write_text(SPEC.format(strict="strict: true" if strict else "", more=textwrap.indent(
        textwrap.dedent(more), "  ")))
    code = cli.main(["validate", "--config", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_prints_the_windows_and_their_next_occurrence(tmp_path, capsys):
    code, out, _ = validate(tmp_path, capsys, """\
        - name: nightly
          reason: backup
          services: [filesystem]
          tools: [write_file]
          cron: "30 1 * * *"
          duration: 20m
          timezone: America/New_York
        """, strict=True)
    assert code == 0
    assert "db-upgrade (exclude; filesystem; one-off): next 2027-01-15T01:00:00Z to 2027-01-15T03:00:00Z" in out
    # "now, ..." between 01:30 and 01:50 in New York, when the test runs during the window
    nightly = "nightly (silence; filesystem tools write_file; cron '30 1 * * *' for 20m in America/New_York): "
    assert f"{nightly}next " in out or f"{nightly}now, " in out


@pytest.mark.parametrize(("more", "strict", "error"), [
    ("""\
     - name: again
       reason: overlaps db-upgrade
       mode: exclude
       services: [filesystem]
       start: 2027-01-15T01:30:00Z
       end: 2027-01-15T05:00:00Z
     """, False, ("maintenance.1: window 'again' overlaps window 'db-upgrade' (maintenance.0) of the same scope and "
                 "mode at 2027-01-15T01:30:00Z")),
    ("""\
     - name: backwards
       reason: x
       services: [filesystem]
       start: 2027-02-02T00:00:00Z
       end: 2027-02-01T00:00:00Z
     """, False, "maintenance.1: end 2027-02-01T00:00:00+00:00 must be after start 2027-02-02T00:00:00+00:00"),
    ("""\
     - name: ghost
       reason: x
       services: [nosuch]
       cron: "0 3 * * 0"
       duration: 1h
     """, True, "maintenance.1.services: unknown service 'nosuch' (strict: declare it under services)"),
    ("""\
     - name: ghost-tool
       reason: x
       services: [filesystem]
       tools: [read_file]
       cron: "0 3 * * 0"
       duration: 1h
     """, True, "maintenance.1.tools: unknown tool 'read_file' of service 'filesystem'"),
    ("""\
     - name: ghost-slo
       reason: x
       services: [filesystem]
       slos: [latency]
       cron: "0 3 * * 0"
       duration: 1h
     """, True, "maintenance.1.slos: unknown SLO 'latency' of service 'filesystem' (strict: its SLOs are availability)"),
    ("""\
     - name: bad-rule
       reason: x
       services: [filesystem]
       rrule: FREQ=WEEKLY;BYDAY=XX
       start: 2027-01-03T03:00:00
       duration: 1h
     """, False, "maintenance.1: 'FREQ=WEEKLY;BYDAY=XX' is not an RFC 5545 RRULE"),
    ("""\
     - name: bad-mode
       reason: x
       mode: mute
       services: [filesystem]
       cron: "0 3 * * 0"
       duration: 1h
     """, False, "maintenance.1.mode: Input should be 'exclude' or 'silence'"),
    ("""\
     - name: db-upgrade
       reason: x
       services: [filesystem]
       cron: "0 3 * * 0"
       duration: 1h
     """, False, "maintenance: duplicate names ['db-upgrade']"),
])
def test_bad_maintenance_specs_are_one_line_errors_exit_2(tmp_path, capsys, more, strict, error):
    code, out, err = validate(tmp_path, capsys, more, strict)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert lines[0] == "mcp-slo validate: invalid spec"
    assert len(lines) == 2 and error in lines[1], err


def test_unknown_service_passes_without_strict(tmp_path, capsys):
    code, _, err = validate(tmp_path, capsys, """\
        - name: ghost
          reason: x
          services: [nosuch]
          cron: "0 3 * * 0"
          duration: 1h
        """)
    assert code == 0, err


def test_spec_default_has_no_windows():
    s = spec.parse({})
    assert s.maintenance == () and s.strict is False

"""Maintenance windows: when an SLO's events are left out (`exclude`) or its alerts held
back (`silence`).

    maintenance:
      - name: db-upgrade                    # one-off: start and end
        reason: Postgres 17 upgrade (CHG-1234)
        mode: exclude                       # exclude: the events count neither good nor bad
        services: [filesystem]              # silence (default): they count, no alert fires
        start: 2027-01-15T02:00:00+01:00    # RFC 3339, or naive in `timezone`
        end: 2027-01-15T04:00:00+01:00
      - name: weekly-reindex                # recurring: an RFC 5545 RRULE from `start` ...
        reason: the search index's weekly rebuild
        services: [search]
        tools: [query]                      # only these tools' SLOs (default: the whole service)
        slos: [latency]                     # only these SLOs (default: all)
        rrule: FREQ=WEEKLY;BYDAY=SU
        start: 2027-01-03T03:00:00          # DTSTART: the first occurrence, in `timezone`
        duration: 1h
        timezone: Europe/Paris
      - name: nightly-backup                # ... or a cron expression (croniter)
        reason: nightly backup
        services: [filesystem]
        cron: "30 1 * * *"
        duration: 20m
        timezone: America/New_York

The scope contract, which the engine's gauge, the rules, the engine's numbers and the
dashboard all follow (`Window.covers`): a window covers the SLO series (service, slo, tool)
when `service` is one of `services`, `slo` is one of `slos` (or `slos` is empty), and, when
`tools` is given, `tool` is one of them (tool-level series only: a service-level SLO keeps
its events); without `tools`, it covers the service-level series and every tool's.

Recurrences are computed in the window's time zone (zoneinfo), so "every Sunday at 03:00"
stays at 03:00 local across DST changes (an occurrence in a skipped hour starts when the
libraries put it, after the gap); `duration` is elapsed time. Occurrences are UTC intervals
in unix seconds, half open: [start, end).

Only the SLO library and the standard library plus python-dateutil and croniter: the engine
(slo.engine) reads windows from here, never the other way round.
"""

from __future__ import annotations

import itertools
import re
import time
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import cached_property
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from dateutil.rrule import rrule, rrulestr
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from collector import durations

MODES = ("exclude", "silence")
DEFAULT_MODE = "silence"  # excluding events from an SLI is the stronger claim: say it explicitly
WINDOW_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")
MAX_REASON = 500
# A recurrence is checked over its next year; more occurrences than this in a year are refused
# (hourly is the finest schedule a maintenance window needs; the overlap checks stay bounded).
YEAR = 365 * 86400
MAX_OCCURRENCES = 10_000

Interval = tuple[float, float]


def _moment(value: Any) -> Any:
    """A datetime as YAML gives it, or an RFC 3339 string; a bare date or a number is refused."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value[:60]!r} is not an RFC 3339 time like 2027-01-15T02:00:00Z "
                             "(or without offset, in the window's timezone)") from None
    raise ValueError(f"must be a time like 2027-01-15T02:00:00Z, not {type(value).__name__} {value!r}")


Moment = Annotated[datetime, BeforeValidator(_moment)]


class Window(BaseModel):
    """One maintenance window: one-off (`start`, `end`) or recurring (`rrule` from `start`,
    or `cron`, with a `duration`), in `timezone`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    reason: str
    mode: Literal["exclude", "silence"] = DEFAULT_MODE
    services: tuple[str, ...] = Field(min_length=1)
    tools: tuple[str, ...] = ()
    slos: tuple[str, ...] = ()
    start: Moment | None = None
    end: Moment | None = None
    rrule: str | None = None
    cron: str | None = None
    duration: str | None = None
    timezone: str = "UTC"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not WINDOW_NAME.match(v):
            raise ValueError(f"{v[:100]!r} is not a valid window name: letters, digits, '_', '.' and '-', at most 63")
        return v

    @field_validator("reason")
    @classmethod
    def _reason(cls, v: str) -> str:
        return check_reason(v)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        zone(v)
        return v

    @field_validator("duration")
    @classmethod
    def _duration(cls, v: str | None) -> str | None:
        if v is not None and durations.parse(v) > YEAR:
            raise ValueError(f"duration {v} is too long: at most 365d")
        return v

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None and (len(v.split()) != 5 or not croniter.is_valid(v)):
            raise ValueError(f"{v[:100]!r} is not a cron expression (minute hour day month weekday)")
        return v

    @model_validator(mode="after")
    def _schedule(self) -> Window:
        recurring = [k for k in ("rrule", "cron") if getattr(self, k) is not None]
        if len(recurring) > 1:
            raise ValueError("a window has an rrule or a cron, not both")
        if not recurring:
            if self.start is None or self.end is None or self.duration is not None:
                raise ValueError("a one-off window has start and end (a recurring one: rrule or cron, and duration)")
            if self.bounds[1] <= self.bounds[0]:
                raise ValueError(f"end {self.end.isoformat()} must be after start {self.start.isoformat()}")
            return self
        if self.duration is None or self.end is not None:
            raise ValueError(f"a {recurring[0]} window has a duration (each occurrence's length) and no end")
        if self.cron is not None and self.start is not None:
            raise ValueError("a cron window has no start (an rrule window's start is its DTSTART)")
        if self.rrule is not None:
            if self.start is None:
                raise ValueError("an rrule window needs start: its DTSTART, the first occurrence")
            self._rule  # noqa: B018 - parses it: a malformed RRULE is refused here
        self._check_period()
        return self

    def _check_period(self) -> None:
        """Occurrences must not overlap (a duration longer than the recurrence period) nor
        come more than MAX_OCCURRENCES a year: checked over the next year."""
        since = time.time() if self.start is None else max(time.time(), self.start_time)
        starts = []
        for at in self._starts(since):
            if at >= since + YEAR:
                break
            starts.append(at)
            if len(starts) > MAX_OCCURRENCES:
                raise ValueError(f"{self.rrule or self.cron!r} recurs too often for a maintenance window: "
                                 f"more than {MAX_OCCURRENCES} times a year")
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        if gaps and min(gaps) < self.duration_seconds:
            raise ValueError(f"duration {self.duration} is longer than the recurrence's period "
                             f"({durations.format(min(gaps))} between occurrences): they would overlap")

    # --- what the window is ------------------------------------------------------------

    @property
    def kind(self) -> str:
        return "rrule" if self.rrule is not None else "cron" if self.cron is not None else "one-off"

    @cached_property
    def zone(self) -> ZoneInfo:
        return zone(self.timezone)

    @property
    def start_time(self) -> float:
        """`start` in unix seconds (a naive one read in `timezone`)."""
        return self._local(self.start).timestamp()

    @property
    def bounds(self) -> Interval:
        """A one-off window's (start, end) in unix seconds."""
        return self._local(self.start).timestamp(), self._local(self.end).timestamp()

    @property
    def duration_seconds(self) -> float:
        return self.bounds[1] - self.bounds[0] if self.kind == "one-off" else durations.parse(self.duration)

    def covers(self, service: str, slo: str, tool: str = "") -> bool:
        """Whether the window applies to the SLO series (service, slo, tool); tool "" is the
        service-level series (the scope contract in the module's docstring)."""
        return covers(self, service, slo, tool)

    def same_scope(self, other: Window) -> bool:
        return (set(self.services), set(self.tools), set(self.slos), self.mode) == \
            (set(other.services), set(other.tools), set(other.slos), other.mode)

    # --- when it is ----------------------------------------------------------------------

    def occurrences(self, since: float, until: float, limit: int = MAX_OCCURRENCES) -> list[Interval]:
        """The occurrences overlapping [since, until), as UTC (start, end) unix seconds, in
        order; at most `limit` of them."""
        if self.kind == "one-off":
            start, end = self.bounds
            return [(start, end)] if start < until and end > since else []
        length = self.duration_seconds
        out: list[Interval] = []
        for start in self._starts(since - length):
            if start >= until or len(out) >= limit:
                break
            if start + length > since:
                out.append((start, start + length))
        return out

    def current_or_next(self, at: float) -> Interval | None:
        """The occurrence going on at `at`, else the next one (None: there is no other)."""
        if self.kind == "one-off":
            return self.bounds if self.bounds[1] > at else None
        found = self.occurrences(at, at + 10 * YEAR, limit=1)
        return found[0] if found else None

    def active(self, at: float) -> bool:
        return bool(self.occurrences(at, at + 1e-6, limit=1))

    def _local(self, moment: datetime) -> datetime:
        return moment.replace(tzinfo=self.zone) if moment.tzinfo is None else moment

    @cached_property
    def _rule(self) -> rrule:
        """The RRULE with its DTSTART in the window's zone (so wall-clock times follow DST);
        cached: dateutil then keeps the occurrences it generated."""
        text = self.rrule.strip()
        if re.search(r"DTSTART|\n", text, re.IGNORECASE):
            raise ValueError("rrule: give the rule alone (FREQ=...;...); its DTSTART is the window's start")
        dtstart = self._local(self.start).astimezone(self.zone)
        try:
            rule = rrulestr(text.removeprefix("RRULE:"), dtstart=dtstart, cache=True)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            raise ValueError(f"{text[:100]!r} is not an RFC 5545 RRULE like FREQ=WEEKLY;BYDAY=SU: {exc}") from None
        if not isinstance(rule, rrule):
            raise ValueError(f"{text[:100]!r}: one RRULE only")  # noqa: TRY004 - pydantic reports ValueErrors  # noqa: TRY004 - pydantic reports ValueErrors
        return rule

    def _starts(self, after: float) -> Iterator[float]:
        """Occurrence starts (unix seconds) at or after `after`, in order."""
        begin = datetime.fromtimestamp(after, self.zone)
        if self.rrule is not None:
            for moment in self._rule.xafter(begin, inc=True):
                yield moment.timestamp()
            return
        # croniter's next is strictly after its start: a second earlier includes `after` itself
        schedule = croniter(self.cron, begin - timedelta(seconds=1))
        previous = None
        while True:
            moment = schedule.get_next(datetime)
            wall = moment.replace(tzinfo=None)
            # croniter fires twice in the hour a DST change repeats (01:30 EDT, then 01:30 EST):
            # a wall-clock schedule runs once, as dateutil's RRULEs do
            if wall != previous and moment.timestamp() >= after:
                yield moment.timestamp()
            previous = wall


def check_reason(text: str) -> str:
    """`text` if it is a window's reason: one line, not empty, at most MAX_REASON characters;
    ValueError otherwise (run-time windows are held to the same)."""
    if not text.strip():
        raise ValueError("a window needs a reason (what is done, a change ticket)")
    if len(text) > MAX_REASON:
        raise ValueError(f"the reason is too long: at most {MAX_REASON} characters")
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") for c in text):
        raise ValueError("the reason holds a control character or line break: one line of text")
    return text


def covers(scope: Window | Occurrence, service: str, slo: str, tool: str = "") -> bool:
    """The scope contract (the module's docstring): whether a window's or an occurrence's
    services, slos and tools cover the SLO series (service, slo, tool)."""
    if service not in scope.services or (scope.slos and slo not in scope.slos):
        return False
    return not scope.tools or tool in scope.tools


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; ValueError naming it otherwise."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name[:60]!r} is not an IANA time zone like Europe/Paris or UTC") from None


def active(windows: Iterable[Window], at: float) -> list[Window]:
    """The windows going on at `at` (unix seconds)."""
    return [w for w in windows if w.active(at)]


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Overlapping or touching intervals joined, in order."""
    out: list[list[float]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(a, b) for a, b in out]


def intervals_for(windows: Iterable[Window], service: str, slo: str, tool: str, since: float, until: float,
                  mode: str = "exclude") -> list[Interval]:
    """When the windows of `mode` covering the SLO series (service, slo, tool) were on between
    `since` and `until`: merged UTC intervals, clipped to [since, until) (the engine's
    numbers leave `exclude` ones out)."""
    found = [iv for w in windows if w.mode == mode and w.covers(service, slo, tool)
             for iv in w.occurrences(since, until)]
    return [(max(a, since), min(b, until)) for a, b in merge(found)]


def first_overlap(windows: list[Window], since: float, until: float) -> tuple[int, int, float] | None:
    """(i, j, when) of the first two windows of the same scope and mode whose occurrences
    overlap between `since` and `until` (a one-off window: whenever it is), or None."""
    for i, a in enumerate(windows):
        for j in range(i + 1, len(windows)):
            b = windows[j]
            if not a.same_scope(b):
                continue
            when = _overlap(_span(a, since, until), _span(b, since, until))
            if when is not None:
                return i, j, when
    return None


def _span(w: Window, since: float, until: float) -> list[Interval]:
    return [w.bounds] if w.kind == "one-off" else w.occurrences(since, until)


def _overlap(xs: list[Interval], ys: list[Interval]) -> float | None:
    """The start of the first overlap of two sorted interval lists, or None (a merge walk)."""
    i = j = 0
    while i < len(xs) and j < len(ys):
        (a, b), (c, d) = xs[i], ys[j]
        if a < d and c < b:
            return max(a, c)
        if b <= d:
            i += 1
        else:
            j += 1
    return None


def rfc3339(ts: float, tz: ZoneInfo | timezone = UTC, timespec: str = "seconds") -> str:
    """`ts` as RFC 3339 in `tz` (UTC: with Z), to the second (or `timespec`)."""
    text = datetime.fromtimestamp(ts, tz).isoformat(timespec=timespec)
    return text.replace("+00:00", "Z")


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of a window, [start, end) in unix seconds: a planned window's (its name)
    or a run-time window's (`id` and `opened_by`; named unplanned-ID as the engine names it).
    The engine's API answers these (GET /api/v1/maintenance's `occurrences`), the dashboard
    reads them back with `from_json`."""

    start: float
    end: float
    name: str
    mode: str
    reason: str
    services: tuple[str, ...]
    tools: tuple[str, ...] = ()
    slos: tuple[str, ...] = ()
    id: int | None = None  # a run-time window's; None: a planned one
    opened_by: str | None = None

    @property
    def planned(self) -> bool:
        return self.id is None

    def active(self, at: float) -> bool:
        return self.start <= at < self.end

    def covers(self, service: str, slo: str, tool: str = "") -> bool:
        """As `Window.covers`."""
        return covers(self, service, slo, tool)

    def to_json(self) -> dict:
        return {"start": rfc3339(self.start, timespec="auto"), "end": rfc3339(self.end, timespec="auto"),
                "name": self.name, "id": self.id, "planned": self.planned, "mode": self.mode,
                "services": list(self.services), "tools": list(self.tools), "slos": list(self.slos),
                "reason": self.reason, "opened_by": self.opened_by}

    @classmethod
    def from_json(cls, body: Mapping) -> Occurrence:
        """`to_json`'s form read back; ValueError naming what is wrong."""
        def names(key: str) -> tuple[str, ...]:
            value = body.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{key} is not a list of names")
            return tuple(value)

        start, end = _instant(body.get("start"), "start"), _instant(body.get("end"), "end")
        mode, window_id = body.get("mode"), body.get("id")
        if mode not in MODES:
            raise ValueError(f"mode is not one of {', '.join(MODES)}: {str(mode)[:40]!r}")
        if window_id is not None and (isinstance(window_id, bool) or not isinstance(window_id, int)):
            raise ValueError(f"id is not a number: {str(window_id)[:40]!r}")
        name, reason, opened_by = body.get("name"), body.get("reason"), body.get("opened_by")
        if not isinstance(name, str) or not isinstance(reason, str) or not isinstance(opened_by, str | None):
            raise ValueError("name, reason and opened_by must be text")  # noqa: TRY004 - callers catch ValueError
        if end <= start or not names("services"):
            raise ValueError("an occurrence ends after it starts and names its services")
        return cls(start, end, name, mode, reason, names("services"), names("tools"), names("slos"), window_id,
                   opened_by)


def planned_occurrences(windows: Iterable[Window], since: float, until: float,
                        limit: int = MAX_OCCURRENCES) -> list[Occurrence]:
    """The occurrences of the (planned) `windows` overlapping [since, until), at most `limit`
    per window, by start."""
    found = [Occurrence(a, b, w.name, w.mode, w.reason, w.services, w.tools, w.slos)
             for w in windows for a, b in w.occurrences(since, until, limit=limit)]
    return sorted(found, key=lambda o: (o.start, o.name))


def _instant(text: Any, key: str) -> float:
    if not isinstance(text, str):
        raise ValueError(f"{key} is not an RFC 3339 time: {str(text)[:40]!r}")  # noqa: TRY004 - callers catch ValueError
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{key} is not an RFC 3339 time: {text[:40]!r}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{key} has no offset: {text[:40]!r}")
    return moment.timestamp()

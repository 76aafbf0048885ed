"""Maintenance windows on the dashboard: the engine's answer typed, the windows of a service on
now and next, and the shading of their occurrences on the service page's charts.

    m = from_listing(body)                 # GET /api/v1/maintenance's answer -> Maintenance
    on_now(m, "filesystem", now)          # its occurrences going on at `now`
    next_planned(m, "filesystem", now)    # the next planned one to start, or None
    shapes(m.occurrences, "filesystem")   # plotly rects across a chart, a fill per mode

An occurrence covers a service's charts when it names the service; a window that names tools
or SLOs shades the whole chart all the same (the charts mix the service's SLOs and tools) and
says its scope in its legend entry, except on the burn chart, whose panels are one SLO each:
there it shades the panels of the SLOs it covers. The legend names each window once, with its mode and
reason, and clicking it hides that window's shading. Plain functions, no Dash.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dashboard.formatting import fmt_duration, fmt_time
from dashboard.plot_text import plot_text
from slo.maintenance import Occurrence

# the fill of each mode's occurrences: excluded events (grey, the SLI leaves them out) and
# silenced alerts (violet, the events still count)
MODE_COLORS = {"exclude": "#607d8b", "silence": "#7e57c2"}
MODE_WORDS = {"exclude": "events left out", "silence": "alerts held back"}
OPACITY = 0.15


@dataclass(frozen=True)
class Maintenance:
    """The engine's maintenance windows: the occurrences over the range asked, by start, and
    each planned window's current or next occurrence (however far ahead)."""

    occurrences: tuple[Occurrence, ...]
    upcoming: tuple[Occurrence, ...]

    def between(self, since: float, until: float) -> Maintenance:
        """Only the occurrences overlapping [since, until)."""
        return Maintenance(tuple(o for o in self.occurrences if o.start < until and o.end > since), self.upcoming)


def from_listing(body: Any) -> Maintenance:
    """GET /api/v1/maintenance's answer typed; ValueError saying what is not as expected."""
    if not isinstance(body, dict) or not isinstance(body.get("occurrences"), list) \
            or not isinstance(body.get("planned"), list):
        raise ValueError("is not a JSON object with occurrences and planned lists")  # noqa: TRY004 - a bad answer
    occurrences = tuple(_each(body["occurrences"], "occurrence", lambda item: item))
    upcoming = tuple(_each(body["planned"], "planned window", _upcoming))
    return Maintenance(occurrences, tuple(o for o in upcoming if o is not None))


def _upcoming(item: Mapping) -> Mapping | None:
    """A planned window's item with its current (else next) occurrence's times; None without one."""
    when = item.get("current") or item.get("next")
    if when is None:
        return None
    if not isinstance(when, dict):
        raise ValueError("its current or next occurrence is not an object")  # noqa: TRY004 - a bad answer
    return {**item, **when}


def _each(items: list, what: str, prepare) -> list[Occurrence | None]:
    out = []
    for i, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise ValueError("is not an object")  # noqa: TRY004 - reported as a bad answer
            body = prepare(item)
            out.append(None if body is None else Occurrence.from_json(body))
        except ValueError as exc:
            raise ValueError(f"has an unreadable {what} {i}: {exc}") from None
    return out


def of_service(occurrences: Iterable[Occurrence], service: str) -> list[Occurrence]:
    return [o for o in occurrences if service in o.services]


def on_now(m: Maintenance, service: str, now: float) -> list[Occurrence]:
    """The service's occurrences going on at `now`, planned and run-time."""
    return [o for o in of_service(m.occurrences, service) if o.active(now)]


def next_planned(m: Maintenance, service: str, now: float) -> Occurrence | None:
    """The service's planned occurrence that starts next after `now`."""
    ahead = [o for o in of_service(m.upcoming, service) if o.start > now]
    return min(ahead, key=lambda o: (o.start, o.name), default=None)


def scope_text(o: Occurrence) -> str:
    """"filesystem", "filesystem · tools write_file · SLOs latency"."""
    parts = [", ".join(o.services)]
    if o.tools:
        parts.append(f"tools {', '.join(o.tools)}")
    if o.slos:
        parts.append(f"SLOs {', '.join(o.slos)}")
    return " · ".join(parts)


def describe(o: Occurrence) -> str:
    """One line naming the window, its mode, scope and reason (and who opened a run-time one)."""
    opener = f", opened by {o.opened_by}" if o.opened_by else ""
    return f"maintenance {o.name}: {o.mode} ({MODE_WORDS.get(o.mode, '')}), {scope_text(o)}{opener}: {o.reason}"


def when_text(o: Occurrence) -> str:
    return f"{fmt_time(o.start)} – {fmt_time(o.end)} UTC ({fmt_duration(o.end - o.start)})"


def shapes(occurrences: Iterable[Occurrence], service: str,
           panels: Iterable[tuple[tuple[str, str], str]] | None = None) -> list[dict]:
    """A rect across the chart's height for each occurrence covering `service`, below the
    lines, in its mode's colour; each window once in the legend (its first occurrence), named
    by `describe` (escaped: names and reasons are not markup, see dashboard.plot_text). With
    `panels` ((slo, tool) and its y axis, for a chart with a panel per SLO), a rect across
    each panel of an SLO the occurrence covers (Window.covers' scope), none across the others."""
    out, named = [], set()
    panels = None if panels is None else list(panels)
    for o in of_service(occurrences, service):
        group = f"maintenance {o.name}"
        refs = ["paper"] if panels is None else \
            [f"{axis} domain" for (slo, tool), axis in panels if o.covers(service, slo, tool)]
        for ref in refs:
            out.append({"type": "rect", "xref": "x", "yref": ref, "x0": o.start * 1000, "x1": o.end * 1000,
                        "y0": 0, "y1": 1, "fillcolor": MODE_COLORS.get(o.mode, "#9e9e9e"), "opacity": OPACITY,
                        "line": {"width": 0}, "layer": "below", "name": plot_text(describe(o)),
                        "legendgroup": plot_text(group), "showlegend": group not in named})
            named.add(group)
    return out

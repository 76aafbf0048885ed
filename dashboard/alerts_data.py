"""The alerts' data: Prometheus's active alerts merged with what Alertmanager holds, one row
per alert, worst first; and the alerts that fired over a time range, one row per episode.

    rows = merge(prometheus_alerts, alertmanager_alerts, now)   # GET /api/v1/alerts, /api/v2/alerts
    shown = filter_rows(rows, severities_from_query("page,ticket"))
    counts(rows)                                                 # {"page": {"firing": 2, ...}, ...}
    past = read_episodes(metrics, start, end, service=None)     # the episodes, newest first
    timeline_figure(past, start, end)                            # one bar per episode, a row per alert
    spans(past, end)                                             # [(start, end, severity)] to shade charts

Prometheus knows every alert's state (pending or firing) and since when it is active;
Alertmanager knows only the firing ones it was sent, with their receivers and whether they
are silenced or inhibited. An alert is the same in both when its alertname and labels are;
Alertmanager's may carry more labels (Prometheus's external labels), so an Alertmanager
alert whose labels include all of a Prometheus alert's is that alert too.

The past comes from the ALERTS series Prometheus writes at each rule evaluation while an alert
fires (the demo backfills it over its history): a range query finds when each alert was
seen firing (see `read_episodes`), so a restart of Prometheus or Alertmanager loses none of it.
No Dash here: the alerts and service pages draw these rows and figures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from dashboard.colors import SEVERITY_COLORS
from dashboard.formatting import NONE, fmt_duration, fmt_time
from dashboard.plot_text import plot_text
from dashboard.prometheus import Metrics, step_for
from dashboard.source import SourceError
from slo import promql
from slo.engine import answers
from slo.query import Series

SEVERITIES = ("page", "ticket", "release")  # worst first; others (and none) come after
STATES = ("firing", "pending")
ROUTING_LABELS = ("alertname", "severity", "service", "slo", "tool", "tier", "window", "baseline", "canary")


def _key(labels: Mapping[str, str]) -> tuple:
    return tuple(sorted(labels.items()))


def _time(when: object) -> float | None:
    try:
        return answers.parse_time(str(when)) if when else None
    except ValueError:
        return None


def merge(prometheus: Iterable[dict], alertmanager: Iterable[dict], now: float) -> list[dict]:
    """One row per alert of either source (sorted, see `sort_rows`)."""
    rows: dict[tuple, dict] = {}
    for a in prometheus:
        state = a.get("state")
        if state not in STATES:
            continue  # Prometheus lists only active alerts; anything else is not one
        labels = dict(a.get("labels") or {})
        rows[_key(labels)] = _row(labels, a.get("annotations") or {}, state, _time(a.get("activeAt")), now,
                                  prometheus=True)
    by_labels = list(rows.values())
    for a in alertmanager:
        labels = dict(a.get("labels") or {})
        row = rows.get(_key(labels)) or next(
            (r for r in by_labels if not r["alertmanager"] and r["labels"].items() <= labels.items()), None)
        if row is None:  # firing in Alertmanager only: another Prometheus, or resolved here a moment ago
            row = rows[_key(labels)] = _row(labels, a.get("annotations") or {}, "firing",
                                            _time(a.get("startsAt")), now, prometheus=False)
        status = a.get("status") or {}
        row.update(alertmanager=True, receivers=[r.get("name") for r in a.get("receivers") or () if r.get("name")],
                   silenced=bool(status.get("silencedBy")), inhibited=bool(status.get("inhibitedBy")))
    return sort_rows(list(rows.values()))


def _identity(labels: dict) -> dict:
    """What names an alert on a row: its name, severity, service, SLO (or canary) and tier /
    window as text, and its other labels."""
    tier = " / ".join(v for v in (labels.get("tier"), labels.get("window")) if v)
    slo = labels.get("slo") or ""
    if labels.get("tool"):
        slo += f" › {labels['tool']}"
    if not slo and labels.get("canary"):
        slo = f"canary {labels['canary']} vs {labels.get('baseline', '?')}"
    return {"labels": labels, "alertname": labels.get("alertname", ""), "severity": labels.get("severity", ""),
            "service": labels.get("service", ""), "slo": slo, "tier": tier,
            "other_labels": {k: v for k, v in labels.items() if k not in ROUTING_LABELS}}


def _row(labels: dict, annotations: dict, state: str, since: float | None, now: float, *, prometheus: bool) -> dict:
    return {
        **_identity(labels), "state": state,
        "since": since, "age": NONE if since is None else fmt_duration(max(0.0, now - since)),
        "since_text": answers.rfc3339(math.floor(since)) if since is not None else NONE,  # to the second
        "summary": annotations.get("summary") or annotations.get("description") or "",
        "description": annotations.get("description") or "",
        "runbook_url": safe_link(annotations.get("runbook_url")),
        "prometheus": prometheus, "alertmanager": False, "receivers": [], "silenced": False, "inhibited": False,
    }


def safe_link(url: object) -> str | None:
    """`url` when it is an http(s) link: annotations are free text, and a javascript: link
    on the page would run in the viewer's browser."""
    if not isinstance(url, str) or not url.strip():
        return None
    return url.strip() if urlsplit(url.strip()).scheme in ("http", "https") else None


def _severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def sort_rows(rows: list[dict]) -> list[dict]:
    """Page before ticket before release (then any other severity), firing before pending,
    the oldest first."""
    return sorted(rows, key=lambda r: (_severity_rank(r["severity"]), STATES.index(r["state"]),
                                       r["since"] if r["since"] is not None else math.inf,
                                       r["alertname"], _key(r["labels"])))


def severities_from_query(value: object) -> tuple[str, ...]:
    """`?severity=page,ticket` (or repeated) as the known severities it names, worst first."""
    values = value if isinstance(value, (list, tuple)) else [value or ""]
    wanted = ",".join(str(v) for v in values).split(",")
    return tuple(s for s in SEVERITIES if s in wanted)


def filter_rows(rows: list[dict], severities: Iterable[str] = ()) -> list[dict]:
    wanted = set(severities)
    return [r for r in rows if not wanted or r["severity"] in wanted]


def counts(rows: Iterable[dict]) -> dict[str, dict[str, int]]:
    """Alerts per severity and state."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        per_state = out.setdefault(r["severity"] or "none", dict.fromkeys(STATES, 0))
        per_state[r["state"]] += 1
    return out


# --- the past: episodes of firing over a time range ------------------------------------------------

EPISODE_POINTS = 11_000  # Prometheus's bound on the points of a series in one range query
RULE_INTERVAL = 60.0  # the generated rules' evaluation interval: a finer step would find gaps between samples
JOIN_GAP = 300.0  # seconds: firings closer than this are one episode (a missed evaluation, a flap)
TIMELINE_ROWS = 40  # alerts in the timeline: those that fired last
EPISODE_HEIGHT = 22  # pixels per alert in the timeline


def episode_step(span: float) -> float:
    """The step of the range query for `span` seconds: the finest Prometheus allows in one query
    (1 min up to a week, 5 min over 30 days), never under the rules' interval."""
    return max(step_for(span, EPISODE_POINTS), RULE_INTERVAL)


def read_episodes(metrics: Metrics, start: float, end: float, service: str | None = None) -> list[dict] | SourceError:
    """The episodes of the alerts (of `service`, or all) that fired between `start` and `end`,
    newest first: one range query of promql.fired_alerts at `episode_step`, to the step after
    `end` (range queries end on a whole step: the one before would miss the last minutes)."""
    step = episode_step(end - start)
    answer = metrics.range(promql.fired_alerts(step, service), start, end + step, step=step)
    if isinstance(answer, SourceError):
        return answer
    return episodes(answer, step, start, end)


def episodes(series: Iterable[Series], step: float, start: float, end: float) -> list[dict]:
    """One row per episode in a `fired_alerts` range answer at `step` over [start, end] (its
    points a step apart, the last one at or after `end`): a run of points at which the alert
    was seen firing, none more than JOIN_GAP (or two steps) apart. Times are to the step:
    `start` is the first point of the run, `end` its last, or None when the alert fired at the
    latest evaluation (a point within a step of `end`); `before` says it was firing when the
    range began. Newest first, then worst severity first."""
    gap = max(JOIN_GAP, 2 * step)
    out = []
    for labels, points in series:
        labels = {k: v for k, v in labels.items() if k not in ("__name__", "alertstate")}
        times = sorted(t for t, v in points if math.isfinite(v))
        first = last = times[0] if times else None
        for t in times[1:]:
            if t - last > gap:
                out.append(_episode(labels, first, last, step, start, end))
                first = t
            last = t
        if first is not None:
            out.append(_episode(labels, first, last, step, start, end))
    return sorted(out, key=lambda e: (-e["start"], _severity_rank(e["severity"]), e["alertname"], _key(e["labels"])))


def _episode(labels: dict, first: float, last: float, step: float, start: float, end: float) -> dict:
    firing = last > end - step
    before = first < start + step
    duration = (end if firing else last) - first
    if duration < step:
        duration_text = f"under {fmt_duration(step)}"  # seen at one point: it fired within one step
    else:
        duration_text = ("over " if before else "") + fmt_duration(duration)
    return {**_identity(labels), "start": first, "end": None if firing else last, "before": before,
            "duration": duration, "start_text": ("before " if before else "") + fmt_time(first),
            "end_text": "firing" if firing else fmt_time(last), "duration_text": duration_text}


def spans(rows: Iterable[dict], end: float) -> list[tuple[float, float, str]]:
    """(start, end, severity) of the time during which an alert of each severity fired (a firing
    episode until `end`): the episodes of one severity merged, worst severity last (drawn on top)."""
    by_severity: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        by_severity.setdefault(r["severity"], []).append((r["start"], r["end"] if r["end"] is not None else end))
    out = []
    for severity in sorted(by_severity, key=_severity_rank, reverse=True):
        merged: list[list[float]] = []
        for a, b in sorted(by_severity[severity]):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        out += [(a, b, severity) for a, b in merged]
    return out


def alert_label(row: dict) -> str:
    """An alert's name on the timeline: service · SLO · tier / window (an alert without a tier:
    its name / window)."""
    what = row["tier"] if row["labels"].get("tier") else " / ".join(v for v in (row["alertname"], row["tier"]) if v)
    return " · ".join(v for v in (row["service"], row["slo"], what) if v)


def timeline_figure(rows: list[dict], start: float, end: float, most: int = TIMELINE_ROWS) -> dict:
    """The episodes as bars over [start, end], a row per alert (worst severity on top), a colour
    per severity; the `most` alerts that fired last when there are more."""
    latest: dict[tuple, float] = {}  # alert -> the end of its last episode
    for r in rows:
        key = _key(r["labels"])
        latest[key] = max(latest.get(key, -math.inf), r["end"] if r["end"] is not None else end)
    recent = set(sorted(latest, key=latest.__getitem__)[-most:])
    kept = [r for r in rows if _key(r["labels"]) in recent]
    order = list(dict.fromkeys(plot_text(alert_label(r)) for r in sorted(
        kept, key=lambda r: (_severity_rank(r["severity"]), r["service"], r["slo"], r["tier"], r["alertname"]))))
    data = []
    for severity in sorted({r["severity"] for r in kept}, key=_severity_rank):
        x: list = []
        y: list = []
        hover: list = []
        for r in (r for r in kept if r["severity"] == severity):
            label = plot_text(alert_label(r))
            text = plot_text(f"{r['alertname']} {r['tier']}: {r['start_text']} – {r['end_text']} "
                             f"({r['duration_text']})")
            x += [r["start"] * 1000, (r["end"] if r["end"] is not None else end) * 1000, None]  # None: a break
            y += [label, label, None]
            hover += [text, text, None]
        color = SEVERITY_COLORS.get(severity, "#9e9e9e")
        data.append({"type": "scatter", "mode": "lines+markers", "name": plot_text(severity or "none"),
                     "x": x, "y": y, "text": hover, "hoverinfo": "text", "line": {"color": color, "width": 8},
                     # a tick at each end: an episode too short for the scale still shows
                     "marker": {"size": 10, "symbol": "line-ns", "line": {"width": 2, "color": color}}})
    title = "When each alert fired (UTC)"
    if len(latest) > most:
        title += f": the {most} that fired last, of {len(latest):,}"
    return {"data": data, "layout": {
        "title": {"text": title, "x": 0.01, "font": {"size": 14}}, "height": 110 + EPISODE_HEIGHT * len(order),
        "margin": {"l": 20, "r": 20, "t": 40, "b": 40}, "showlegend": True,
        "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0.5, "xanchor": "center"},
        "xaxis": {"type": "date", "range": [start * 1000, end * 1000]},
        "yaxis": {"type": "category", "categoryorder": "array", "categoryarray": order, "autorange": "reversed",
                  "automargin": True}}}

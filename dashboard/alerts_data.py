"""The alerts page's data: Prometheus's active alerts merged with what Alertmanager holds,
one row per alert, worst first.

    rows = merge(prometheus_alerts, alertmanager_alerts, now)   # GET /api/v1/alerts, /api/v2/alerts
    shown = filter_rows(rows, severities_from_query("page,ticket"))
    counts(rows)                                                 # {"page": {"firing": 2, ...}, ...}

Prometheus knows every alert's state (pending or firing) and since when it is active;
Alertmanager knows only the firing ones it was sent, with their receivers and whether they
are silenced or inhibited. An alert is the same in both when its alertname and labels are;
Alertmanager's may carry more labels (Prometheus's external labels), so an Alertmanager
alert whose labels include all of a Prometheus alert's is that alert too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from dashboard.formatting import NONE, fmt_duration
from slo.engine import answers

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


def _row(labels: dict, annotations: dict, state: str, since: float | None, now: float, *, prometheus: bool) -> dict:
    tier = " / ".join(v for v in (labels.get("tier"), labels.get("window")) if v)
    slo = labels.get("slo") or ""
    if labels.get("tool"):
        slo += f" › {labels['tool']}"
    if not slo and labels.get("canary"):
        slo = f"canary {labels['canary']} vs {labels.get('baseline', '?')}"
    return {
        "labels": labels, "alertname": labels.get("alertname", ""), "severity": labels.get("severity", ""),
        "service": labels.get("service", ""), "slo": slo, "tier": tier, "state": state,
        "since": since, "age": NONE if since is None else fmt_duration(max(0.0, now - since)),
        "since_text": answers.rfc3339(math.floor(since)) if since is not None else NONE,  # to the second
        "summary": annotations.get("summary") or annotations.get("description") or "",
        "description": annotations.get("description") or "",
        "runbook_url": safe_link(annotations.get("runbook_url")),
        "other_labels": {k: v for k, v in labels.items() if k not in ROUTING_LABELS},
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

"""The shapes of the engine API's answers, as functions of a snapshot: the API
(slo.engine.api) serves them, and the dashboard builds the same ones when it reads the
store directly (dashboard.source.StoreSource). JSON never holds NaN: unknown numbers are
null. Nothing here loads the scheduler or the HTTP server."""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone

from slo.engine.store import Snapshot
from slo.results import CanaryDecision, Evaluated

# the gate's answer per verdict: only promote is 2xx (409: roll back; 425 Too Early: not yet
# known), unless the request's ?pass= names the verdicts it passes
GATE_STATUS = {"promote": 200, "rollback": 409, "inconclusive": 425}
VERDICTS = tuple(GATE_STATUS)
# worst first, for a service's summary status
SEVERITY = {s: i for i, s in enumerate(("critical", "exhausted", "warning", "no_data", "ok"))}
# decisions per history answer: 8 hours of one canary at the default 30 s interval; with
# about 10 KB of evidence each, ten megabytes, which ?evidence=false cuts to a few hundred KB
HISTORY_LIMIT = 1000


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def jsonable(value):
    """JSON-safe: non-finite floats become None (the API's answers hold no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def evaluation_state(evaluated_at: float | None, stale: bool, now: float) -> dict:
    """The latest evaluation's state: `evaluated_at`, `stale`, `age_seconds` (None and stale
    when there is none)."""
    if evaluated_at is None:
        return {"evaluated_at": None, "stale": True}
    return {"evaluated_at": rfc3339(evaluated_at), "stale": stale, "age_seconds": now - evaluated_at}


def slo_items(snapshot: Snapshot | None, stale: bool, now: float) -> tuple[list[dict], dict]:
    """Every SLO of `snapshot` with `stale` and `evaluated_at`, and its `evaluation_state`."""
    if snapshot is None:
        return [], evaluation_state(None, stale, now)
    when = rfc3339(snapshot.evaluated_at)
    slos = [{**r.to_json(), "stale": stale, "evaluated_at": when} for r in snapshot.results]
    return slos, evaluation_state(snapshot.evaluated_at, stale, now)


def service_items(slos: list[dict]) -> list[dict]:
    """One entry per service of `slos`: versions, SLO count and worst status, by name."""
    out: dict[str, dict] = {}
    for r in slos:
        s = out.setdefault(r["service"], {"service": r["service"], "versions": r.get("versions", []),
                                          "slos": 0, "status": "ok", "stale": r["stale"],
                                          "evaluated_at": r["evaluated_at"]})
        s["slos"] += 1
        if SEVERITY[r["status"]] < SEVERITY[s["status"]]:
            s["status"] = r["status"]
    return sorted(out.values(), key=lambda s: s["service"])


def canary_items(decisions: list[Evaluated[CanaryDecision]], stale: bool) -> list[dict]:
    """Canary decisions with `evaluated_at` as RFC 3339 and `stale`."""
    return [{**d.result.to_json(), "evaluated_at": rfc3339(d.evaluated_at), "stale": stale} for d in decisions]


def canary_history_items(decisions: list[Evaluated[CanaryDecision]], evidence: bool = True) -> list[dict]:
    """Logged canary decisions with `evaluated_at` as RFC 3339 (no `stale`: each is as old as
    its time says); without the per-test `metrics` unless `evidence`."""
    out = []
    for d in decisions:
        body = d.result.to_json()
        if not evidence:
            del body["metrics"]
        out.append({**body, "evaluated_at": rfc3339(d.evaluated_at)})
    return out


def service_verdict(decisions: list[CanaryDecision]) -> tuple[str, str]:
    """The verdict over a service's canaries, the worst one (rollback, then inconclusive,
    then promote), and the reasons of the canaries that gave it."""
    verdicts = {d.verdict for d in decisions}
    verdict = "rollback" if "rollback" in verdicts else "inconclusive" if "inconclusive" in verdicts else "promote"
    return verdict, "; ".join(d.reason for d in decisions if d.verdict == verdict)


def parse_time(text: str) -> float:
    """Unix seconds from RFC 3339 ("2027-01-15T08:00:00Z", with an offset or fraction) or unix
    seconds ("1800000000.5"); ValueError for anything else."""
    try:
        seconds = float(text)
    except ValueError:
        # an offset's unencoded "+" arrives as a space from a query string: take it back
        iso = re.sub(r" (\d\d:\d\d)$", r"+\1", text.strip())
        try:
            when = datetime.fromisoformat(iso.replace("z", "Z"))
        except ValueError:
            raise ValueError(f"not RFC 3339 or unix seconds: {text!r}") from None
        if when.tzinfo is None:
            raise ValueError(f"an RFC 3339 time needs its offset (Z or +HH:MM): {text!r}")
        seconds = when.timestamp()
    if not math.isfinite(seconds):
        raise ValueError(f"not a finite time: {text!r}")
    return seconds


def readiness(state: dict, last_error: str | None) -> tuple[dict, int]:
    """The /readyz answer and its status code for a snapshot's state (from slo_items)."""
    if state["evaluated_at"] is None:
        return {"ready": False, "reason": "no evaluation yet", "last_error": last_error}, 503
    if state["stale"]:
        return {"ready": False, "reason": "the latest evaluation is stale", **state, "last_error": last_error}, 503
    return {"ready": True, **state}, 200

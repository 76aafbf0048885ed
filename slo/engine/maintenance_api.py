"""The engine's maintenance API: planned windows (the spec's) and run-time ones (the store's).

    GET    /api/v1/maintenance        {"planned": [...], "runtime": [...], "occurrences": [...]}: the
                                      spec's windows with their current or next occurrence, every
                                      run-time window (active and past, newest first) with who
                                      opened it and why, and every occurrence of either between
    GET    ...?since=T&until=T        since and until (RFC 3339 or unix seconds; default the last
                                      30 days to a day ahead; at most 90 days and MAX_OCCURRENCES
                                      occurrences, else 400), by start: what the dashboard shades
    POST   /api/v1/maintenance        start a run-time window now: {"service": "fs", "tools": [...],
                                      "slos": [...], "duration": "2h", "reason": "...", "mode":
                                      "silence" (default) or "exclude"}; 201 with the window
    POST|DELETE /api/v1/maintenance/{id}
                                      end it now; 404 unknown, 409 already over

Who opened or ended a window: the `X-MCP-SLO-User` header, else the request's basic-auth
user, else "unknown". With an Alertmanager configured (`mcp-slo engine --alertmanager URL`)
starting a window creates a matching silence (matchers service, and tool and slo when the
window names them; createdBy the opener, comment the reason, ending with the window) and
ending it expires the silence. An Alertmanager failure is logged and reported in the answer
(`silence.error`); the window is kept all the same. The engine's /metrics shows the windows on
now as mcp_slo_maintenance (slo.engine.metrics), which the alerting rules read.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector import durations
from slo import maintenance
from slo.engine.answers import jsonable, parse_time, rfc3339
from slo.engine.store import MaintenanceRecord
from slo.maintenance import Occurrence, Window
from slo.spec import MAX_DURATION, NAME, SLO_NAME, printable

if TYPE_CHECKING:  # only for annotations: the dashboard imports `listing` without the scheduler
    from slo.engine.scheduler import Engine

log = logging.getLogger(__name__)

USER_HEADER = "X-MCP-SLO-User"
ALERTMANAGER_TIMEOUT = 5.0
MAX_USER = 200
DAY = 86400
LOOKBACK, LOOKAHEAD = 30 * DAY, DAY  # the occurrences' default range around now
MAX_RANGE = 90 * DAY
MAX_OCCURRENCES = 5000  # in one answer: an hourly window over 90 days is 2,160


class BadRequest(ValueError):
    """A request the API refuses with 400 and this one-line message."""


def routes(engine: Engine) -> list[Route]:
    """The maintenance routes for the engine's app (slo.engine.api registers them)."""

    async def list_windows(request: Request) -> Response:
        now = engine.now()
        try:
            since, until = occurrence_range(request.query_params, now)
            return _json(listing(engine.spec.maintenance, engine.store.maintenance_records(), now, since, until))
        except BadRequest as exc:
            return _json({"error": str(exc)}, 400)

    async def start(request: Request) -> Response:
        try:
            fields = start_fields(await _body(request), engine)
        except BadRequest as exc:
            return _json({"error": str(exc)}, 400)
        unknown = unknown_scope(engine, fields)
        if unknown:
            return _json({"error": unknown}, 404)
        now = engine.now()
        record = engine.store.open_maintenance(opened_by=user_of(request), opened_at=now,
                                               ends_at=now + fields.pop("seconds"), **fields)
        if engine.alertmanager:
            silence = create_silence(engine.alertmanager, record)
            engine.store.set_maintenance_silence(record.id, silence)
            record = engine.store.maintenance_record(record.id)
        log.info("maintenance window %d opened by %s for %s: %s", record.id, printable(record.opened_by),
                 ", ".join(record.services), printable(record.reason))
        return _json(record_item(record, now), 201)

    async def end(request: Request) -> Response:
        text = request.path_params["window_id"]
        if not re.fullmatch(r"[0-9]{1,18}", text):
            return _json({"error": f"{printable(text[:40])!r} is not a window id (a number)"}, 400)
        now = engine.now()
        record, ended = engine.store.end_maintenance(int(text), now, user_of(request))
        if record is None:
            return _json({"error": f"no run-time maintenance window {text}"}, 404)
        if not ended:
            return _json({"error": f"maintenance window {text} is already over (since {rfc3339(record.until)})",
                          "window": record_item(record, now)}, 409)
        silence_id = (record.silence or {}).get("id")
        if engine.alertmanager and silence_id:
            error = expire_silence(engine.alertmanager, silence_id)
            engine.store.set_maintenance_silence(record.id, {**record.silence, "expired": error is None,
                                                             "error": error})
            record = engine.store.maintenance_record(record.id)
        log.info("maintenance window %d ended by %s", record.id, printable(record.ended_by or ""))
        return _json(record_item(record, now))

    return [
        Route("/api/v1/maintenance", list_windows, methods=["GET"]),
        Route("/api/v1/maintenance", start, methods=["POST"]),
        Route("/api/v1/maintenance/{window_id}", end, methods=["POST", "DELETE"]),
    ]


# --- requests ---------------------------------------------------------------------------------


MAX_BODY = 64 * 1024  # a start request is a few hundred bytes; never hold more than this


async def _body(request: Request) -> dict:
    raw = bytearray()
    async for chunk in request.stream():  # read while it arrives, refused past the bound
        raw += chunk
        if len(raw) > MAX_BODY:
            raise BadRequest(f"the body is larger than {MAX_BODY // 1024} KiB")
    try:
        body = json.loads(bytes(raw) or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest('the body must be a JSON object like {"service": "fs", "duration": "2h", "reason": "..."}')
    return body


def start_fields(body: dict, engine: Engine) -> dict:
    """The store's fields of a window from a start request's body (and its length in seconds
    under "seconds"); BadRequest naming what is wrong."""
    allowed = {"service", "tools", "slos", "duration", "reason", "mode"}
    if extra := sorted(set(body) - allowed):
        raise BadRequest(f"unknown field {extra[0]!r}; the fields are {', '.join(sorted(allowed))}")
    service = body.get("service")
    if not isinstance(service, str) or not NAME.match(service):
        raise BadRequest("service: a service name is required (letters, digits, '_', '.', ':', '/', '-')")
    tools, slos = _names(body, "tools", NAME), _names(body, "slos", SLO_NAME)
    duration = body.get("duration")
    try:
        seconds = durations.parse(duration)
    except ValueError as exc:
        raise BadRequest(f"duration: {exc}") from None
    if seconds > MAX_DURATION:
        raise BadRequest(f"duration: {duration} is too long: at most {durations.format(MAX_DURATION)}")
    mode = body.get("mode", maintenance.DEFAULT_MODE)
    if mode not in maintenance.MODES:
        raise BadRequest(f"mode: {printable(str(mode)[:40])!r} is not one of {', '.join(maintenance.MODES)}")
    reason = body.get("reason")
    try:
        # the spec's rules for a reason: one line, not empty, not too long
        maintenance.check_reason(reason if isinstance(reason, str) else "")
    except ValueError as exc:
        raise BadRequest(f"reason: {exc}") from None
    return {"services": [service], "tools": tools, "slos": slos, "mode": mode, "reason": reason, "seconds": seconds}


def _names(body: dict, key: str, pattern: re.Pattern) -> list[str]:
    value = body.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and pattern.match(v) for v in value):
        raise BadRequest(f"{key}: a list of names")
    return list(dict.fromkeys(value))


def unknown_scope(engine: Engine, fields: dict) -> str | None:
    """Why the window names a service, tool or SLO the engine does not know (neither the spec
    nor its latest evaluation), or None."""
    service = fields["services"][0]
    snapshot = engine.snapshot()
    seen = [r for r in (snapshot.results if snapshot else ()) if r.service == service]
    declared = engine.spec.services.get(service)
    if declared is None and not seen:
        return f"unknown service {service!r}: neither in the spec nor in the latest evaluation"
    tools = {r.tool for r in seen if r.tool} | set(declared.tools if declared else ())
    if missing := [t for t in fields["tools"] if t not in tools]:
        return f"unknown tool {missing[0]!r} of service {service!r}"
    slos = {r.slo for r in seen} | {o.name for o in engine.plan.objectives_for(service)}
    if missing := [s for s in fields["slos"] if s not in slos]:
        return f"unknown SLO {missing[0]!r} of service {service!r}; its SLOs: {', '.join(sorted(slos)) or 'none'}"
    return None


def user_of(request: Request) -> str:
    """Who is asking: the X-MCP-SLO-User header, else the basic-auth user, else "unknown"."""
    user = request.headers.get(USER_HEADER, "").strip()
    if not user:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                user = base64.b64decode(token, validate=True).decode().partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                user = ""
    return printable(user[:MAX_USER]) or "unknown"


def occurrence_range(params: Mapping[str, str], now: float) -> tuple[float, float]:
    """(since, until) of a listing's ?since=&until= (RFC 3339 or unix seconds), by default the
    last LOOKBACK to LOOKAHEAD ahead of `now`; BadRequest for a time that is not one."""
    bounds = []
    for key, default in (("since", now - LOOKBACK), ("until", now + LOOKAHEAD)):
        text = params.get(key)
        try:
            bounds.append(default if text is None else parse_time(text))
        except ValueError as exc:
            raise BadRequest(f"{key}: {printable(str(exc)[:120])}") from None
    return bounds[0], bounds[1]


def check_range(since: float, until: float) -> None:
    """BadRequest unless since < until within MAX_RANGE."""
    if until <= since:
        raise BadRequest(f"until ({rfc3339(until)}) must be after since ({rfc3339(since)})")
    if until - since > MAX_RANGE:
        raise BadRequest(f"since to until is {durations.format(until - since)}: at most "
                         f"{durations.format(MAX_RANGE)}, ask for a shorter range")


# --- answers ----------------------------------------------------------------------------------


def listing(planned: Sequence[Window], records: Sequence[MaintenanceRecord], now: float, since: float,
            until: float) -> dict:
    """The answer of GET /api/v1/maintenance (StoreSource builds the same from the store);
    BadRequest for a range `check_range` refuses or holding more than MAX_OCCURRENCES occurrences."""
    check_range(since, until)
    return {"planned": [planned_item(w, now) for w in planned], "runtime": [record_item(r, now) for r in records],
            "since": rfc3339(since), "until": rfc3339(until),
            "occurrences": [o.to_json() for o in occurrences(planned, records, since, until)]}


def occurrences(planned: Sequence[Window], records: Sequence[MaintenanceRecord], since: float,
                until: float) -> list[Occurrence]:
    """Every occurrence of the planned windows and every run-time window overlapping
    [since, until), by start; BadRequest past MAX_OCCURRENCES."""
    found = maintenance.planned_occurrences(planned, since, until, limit=MAX_OCCURRENCES + 1)
    found += [record_occurrence(r) for r in records if r.starts_at < until and r.until > max(since, r.starts_at)]
    if len(found) > MAX_OCCURRENCES:
        raise BadRequest(f"more than {MAX_OCCURRENCES} maintenance occurrences between {rfc3339(since)} and "
                         f"{rfc3339(until)}: ask for a shorter range")
    return sorted(found, key=lambda o: (o.start, o.name))


def record_occurrence(r: MaintenanceRecord) -> Occurrence:
    """A run-time window as an occurrence: from its start to its end (or when it was ended)."""
    return Occurrence(r.starts_at, r.until, f"unplanned-{r.id}", r.mode, r.reason, r.services, r.tools, r.slos,
                      r.id, r.opened_by)




def planned_item(w: maintenance.Window, now: float) -> dict:
    """A spec window as the API shows it, with its current or next occurrence."""
    schedule = {"start": w.start.isoformat(), "end": w.end.isoformat()} if w.kind == "one-off" else \
        {"rrule": w.rrule, "start": w.start.isoformat(), "duration": w.duration} if w.kind == "rrule" else \
        {"cron": w.cron, "duration": w.duration}
    found = w.current_or_next(now)
    occurrence = None if found is None else {"start": rfc3339(found[0]), "end": rfc3339(found[1])}
    active = found is not None and found[0] <= now
    return {"name": w.name, "reason": w.reason, "mode": w.mode, "services": list(w.services), "tools": list(w.tools),
            "slos": list(w.slos), "kind": w.kind, **schedule, "timezone": w.timezone, "active": active,
            "current": occurrence if active else None, "next": None if active else occurrence}


def record_item(r: MaintenanceRecord, now: float) -> dict:
    """A run-time window as the API shows it: times in RFC 3339, and whether it is on now."""
    body = r.to_json()
    for key in ("opened_at", "starts_at", "ends_at", "ended_at"):
        if body[key] is not None:
            body[key] = rfc3339(body[key])
    return {**body, "active": r.active(now)}


def _json(body, status: int = 200) -> Response:
    return Response(json.dumps(jsonable(body), allow_nan=False), status_code=status, media_type="application/json")


# --- Alertmanager -----------------------------------------------------------------------------


def silence_matchers(r: MaintenanceRecord) -> list[dict]:
    """Alertmanager matchers for the window's scope: its service, and its tools and SLOs when it
    names some (several: one regex, the names escaped)."""
    out = []
    for label, values in (("service", r.services), ("tool", r.tools), ("slo", r.slos)):
        if values:
            regex = len(values) > 1
            value = "|".join(re.escape(v) for v in values) if regex else values[0]
            out.append({"name": label, "value": value, "isRegex": regex, "isEqual": True})
    return out


def create_silence(url: str, r: MaintenanceRecord) -> dict:
    """POST the window's silence to Alertmanager: {"id": ...} or {"id": None, "error": ...}."""
    body = {"matchers": silence_matchers(r), "startsAt": _iso(r.starts_at), "endsAt": _iso(r.ends_at),
            "createdBy": r.opened_by, "comment": f"mcp-slo maintenance window {r.id}: {r.reason}"}
    try:
        answer = httpx.post(f"{url.rstrip('/')}/api/v2/silences", json=body, timeout=ALERTMANAGER_TIMEOUT)
        answer.raise_for_status()
        return {"id": answer.json()["silenceID"], "error": None}
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        error = f"Alertmanager at {url} did not create the silence: {_why(exc)}"
        log.warning("maintenance window %d: %s", r.id, error)
        return {"id": None, "error": error}


def expire_silence(url: str, silence_id: str) -> str | None:
    """DELETE the silence; None when done, else the error (logged)."""
    try:
        httpx.delete(f"{url.rstrip('/')}/api/v2/silence/{silence_id}", timeout=ALERTMANAGER_TIMEOUT).raise_for_status()
        return None
    except httpx.HTTPError as exc:
        error = f"Alertmanager at {url} did not expire silence {silence_id}: {_why(exc)}"
        log.warning("%s", error)
        return error


def _why(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code} {printable(exc.response.text[:200].strip())}"
    return printable(str(exc)[:200]) or type(exc).__name__


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()

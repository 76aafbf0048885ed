"""The engine's results as types: an SLO's result and the state of its alert tiers, a tool's
traffic, a canary decision and its evidence, and any of them with the time it was evaluated.

Each has one JSON form, `to_json()`, the dict the API answers with (README, "The SLO
engine"): the keys are the fields, in their order. `from_json` reads it back, as the store
keeps it and the API serves it. Unknown numbers are None, never NaN: `to_json` turns a
non-finite float into None, as the API's JSON holds no NaN.

Library layer: evaluate and the canary judge build these, the engine stores and serves them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

OK, WARNING, CRITICAL, EXHAUSTED, NO_DATA = "ok", "warning", "critical", "exhausted", "no_data"
STATUSES = (OK, WARNING, CRITICAL, EXHAUSTED, NO_DATA)


def _number(value: float | None) -> float | None:
    """A JSON number: None for unknown (None, NaN, +/-Infinity)."""
    return value if value is not None and math.isfinite(value) else None


def _read_number(body: Mapping, key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} is not a number: {value!r}")
    return value


def _read_text(body: Mapping, key: str, default: str | None = None) -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{key} is not a string: {value!r}")
    return value


def _read_numbers(body: Mapping, key: str) -> dict[str, float | None]:
    value = body.get(key) or {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{key} is not an object: {value!r}")
    return {str(w): _read_number(value, w) for w in value}


@dataclass(frozen=True, slots=True)
class AlertState:
    """One burn-rate tier of an SLO, as the SLO's alert settings have it (its severity and
    `for` overridden per SLO), and whether it fires now. A tier the SLO turns off has none."""

    tier: str
    severity: str  # "page" or "ticket"
    burn_rate_threshold: float
    long_window: str  # "1h"
    short_window: str  # "5m"
    firing: bool
    low_traffic: bool  # it would fire, but the long window has too few events to trust
    for_: str = ""  # how long the rule's condition must hold before Prometheus fires it, "2m"
    insignificant: bool = False  # it would fire, but the burn is not significant at the spec's confidence
    silenced: bool = False  # it would fire, but a maintenance window (silence or exclude) is on

    def to_json(self) -> dict:
        return {"tier": self.tier, "severity": self.severity, "burn_rate_threshold": _number(self.burn_rate_threshold),
                "long_window": self.long_window, "short_window": self.short_window,
                "firing": self.firing, "low_traffic": self.low_traffic, "for": self.for_,
                "insignificant": self.insignificant, "silenced": self.silenced}

    @classmethod
    def from_json(cls, body: Mapping) -> AlertState:
        if not isinstance(body, Mapping):
            raise ValueError(f"an alert is not an object: {body!r}")
        return cls(tier=_read_text(body, "tier"), severity=_read_text(body, "severity"),
                   burn_rate_threshold=_read_number(body, "burn_rate_threshold"),
                   long_window=_read_text(body, "long_window"), short_window=_read_text(body, "short_window"),
                   firing=bool(body.get("firing")), low_traffic=bool(body.get("low_traffic")),
                   for_=_read_text(body, "for", ""), insignificant=bool(body.get("insignificant")),
                   silenced=bool(body.get("silenced")))


@dataclass(frozen=True, slots=True)
class SLOResult:
    """One SLO of one service (or of one of its tools) at one tick. Numbers over the SLO
    window unless the name says otherwise; None when unknown (no valid events)."""

    service: str
    tool: str | None  # None for the service as a whole
    slo: str
    kind: str  # "availability" or "latency"
    description: str
    objective: float | None
    window: str  # the SLO window, "30d"
    threshold: float | None  # latency objectives' threshold in seconds
    sli: float | None
    error_budget_remaining: float | None  # < 0: overspent
    error_budget_consumed: float | None
    events: float | None
    bad_events: float | None
    error_budget_events: float | None
    error_budget_events_remaining: float | None
    sli_windows: dict[str, float | None]  # window ("5m") -> SLI
    burn_rates: dict[str, float | None]  # window -> burn rate (1 = sustainable)
    alerts: tuple[AlertState, ...]
    status: str  # one of STATUSES
    time_to_exhaustion_seconds: float | None  # None: never, at the last hour's burn rate
    versions: tuple[str, ...] = ()  # the service's versions with MCP series
    # what the exclude maintenance windows took out of the SLO window (slo.exclusion): their
    # time, and the valid and bad events in it, which the numbers above count neither way
    excluded_seconds: float = 0.0
    excluded_events: float | None = 0.0
    excluded_bad_events: float | None = 0.0

    @property
    def key(self) -> tuple[str, str, str]:
        """(service, tool or "", slo): what identifies the SLO across ticks."""
        return (self.service, self.tool or "", self.slo)

    def to_json(self) -> dict:
        """The API's JSON of this result (without the answer's `stale` and `evaluated_at`)."""
        return {
            "service": self.service,
            "tool": self.tool,
            "slo": self.slo,
            "kind": self.kind,
            "description": self.description,
            "objective": _number(self.objective),
            "window": self.window,
            "threshold": _number(self.threshold),
            "sli": _number(self.sli),
            "error_budget_remaining": _number(self.error_budget_remaining),
            "error_budget_consumed": _number(self.error_budget_consumed),
            "events": _number(self.events),
            "bad_events": _number(self.bad_events),
            "error_budget_events": _number(self.error_budget_events),
            "error_budget_events_remaining": _number(self.error_budget_events_remaining),
            "sli_windows": {w: _number(v) for w, v in self.sli_windows.items()},
            "burn_rates": {w: _number(v) for w, v in self.burn_rates.items()},
            "alerts": [a.to_json() for a in self.alerts],
            "status": self.status,
            "time_to_exhaustion_seconds": _number(self.time_to_exhaustion_seconds),
            "versions": list(self.versions),
            "excluded_seconds": _number(self.excluded_seconds),
            "excluded_events": _number(self.excluded_events),
            "excluded_bad_events": _number(self.excluded_bad_events),
        }

    @classmethod
    def from_json(cls, body: Mapping) -> SLOResult:
        """Read `to_json`'s dict back (extra keys, like the API's `stale`, are ignored);
        ValueError naming the key for anything else."""
        if not isinstance(body, Mapping):
            raise ValueError(f"an SLO result is not an object: {body!r}")
        status = _read_text(body, "status")
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        tool = body.get("tool")
        if tool is not None and not isinstance(tool, str):
            raise ValueError(f"tool is not a string: {tool!r}")
        alerts, versions = body.get("alerts") or [], body.get("versions") or []
        if not isinstance(alerts, list) or not isinstance(versions, list):
            raise ValueError("alerts and versions must be lists")
        numbers = {k: _read_number(body, k) for k in _NUMBERS}
        # a row written before the excluded keys: nothing was excluded
        excluded = {k: _read_number(body, k) for k in ("excluded_events", "excluded_bad_events") if k in body}
        return cls(service=_read_text(body, "service"), tool=tool or None, slo=_read_text(body, "slo"),
                   kind=_read_text(body, "kind", ""), description=_read_text(body, "description", ""),
                   window=_read_text(body, "window", ""),
                   sli_windows=_read_numbers(body, "sli_windows"), burn_rates=_read_numbers(body, "burn_rates"),
                   alerts=tuple(AlertState.from_json(a) for a in alerts), status=status,
                   versions=tuple(str(v) for v in versions), **numbers,
                   excluded_seconds=_read_number(body, "excluded_seconds") or 0.0, **excluded)


_NUMBERS = ("objective", "threshold", "sli", "error_budget_remaining", "error_budget_consumed", "events", "bad_events",
            "error_budget_events", "error_budget_events_remaining", "time_to_exhaustion_seconds")


@dataclass(frozen=True, slots=True)
class ToolTraffic:
    """One tool of one service over the last `window`: its requests per second, by status too,
    its error ratio and its latency quantiles ("p50", "p90", "p99"; estimates from the
    histogram's buckets). None when unknown (no requests, no buckets)."""

    service: str
    tool: str
    window: str  # "5m"
    rate: float
    by_status: dict[str, float | None]  # "success", "error", "timeout", "cancelled"
    error_ratio: float | None
    latency_seconds: dict[str, float | None]
    latency_is_estimate: bool = True

    def to_json(self) -> dict:
        return {"service": self.service, "tool": self.tool, "window": self.window, "rate": _number(self.rate),
                "by_status": {s: _number(v) for s, v in self.by_status.items()},
                "error_ratio": _number(self.error_ratio),
                "latency_seconds": {q: _number(v) for q, v in self.latency_seconds.items()},
                "latency_is_estimate": self.latency_is_estimate}

    @classmethod
    def from_json(cls, body: Mapping) -> ToolTraffic:
        if not isinstance(body, Mapping):
            raise ValueError(f"a tool's traffic is not an object: {body!r}")
        return cls(service=_read_text(body, "service"), tool=_read_text(body, "tool"),
                   window=_read_text(body, "window", ""), rate=_read_number(body, "rate") or 0.0,
                   by_status=_read_numbers(body, "by_status"),
                   error_ratio=_read_number(body, "error_ratio"),
                   latency_seconds=_read_numbers(body, "latency_seconds"),
                   latency_is_estimate=bool(body.get("latency_is_estimate", True)))


# --- canary decisions ---------------------------------------------------------------------
# The judge's evidence keeps its floats as they are (an infinite planned information, an
# e-value that overflowed): the store keeps them, and the API's JSON turns them into null.


def _object(body, what: str) -> Mapping:
    if not isinstance(body, Mapping):
        raise ValueError(f"{what} is not an object: {body!r}")
    return body


@dataclass(frozen=True, slots=True)
class Side:
    """One version's side of a canary test: its requests and, for the errors and slow share
    tests, its bad requests and their ratio (None without requests)."""

    requests: float
    bad: float | None = None  # None in the latency test, which compares whole distributions
    ratio: float | None = None

    def to_json(self) -> dict:
        if self.bad is None:
            return {"requests": self.requests}
        return {"requests": self.requests, "bad": self.bad, "ratio": self.ratio}

    @classmethod
    def from_json(cls, body: Mapping) -> Side:
        body = _object(body, "a version's counts")
        requests = _read_number(body, "requests")  # 0 stays 0: its JSON is written back as read
        return cls(requests=0.0 if requests is None else requests, bad=_read_number(body, "bad"),
                   ratio=_read_number(body, "ratio"))


@dataclass(frozen=True, slots=True)
class Effect:
    """How much worse the canary is, with its interval at `level`: a ratio of bad ratios, or
    the CLES (the probability that a canary request is slower) with Mann-Whitney's u and z."""

    measure: str
    value: float | None
    low: float | None
    high: float | None
    level: float
    u: float | None = None  # the latency test only
    z: float | None = None

    def to_json(self) -> dict:
        body = {"measure": self.measure, "value": self.value, "low": self.low, "high": self.high, "level": self.level}
        if self.u is not None or self.z is not None:
            body.update(u=self.u, z=self.z)
        return body

    @classmethod
    def from_json(cls, body: Mapping) -> Effect:
        body = _object(body, "an effect")
        return cls(measure=_read_text(body, "measure"), value=_read_number(body, "value"), low=_read_number(body, "low"),
                   high=_read_number(body, "high"), level=_read_number(body, "level"), u=_read_number(body, "u"),
                   z=_read_number(body, "z"))


@dataclass(frozen=True, slots=True)
class Sequential:
    """A test's group-sequential state: its p-value against the boundary's level now, and the
    information reached (1 = what the planned regression needs)."""

    p_value: float
    reject_at: float
    information: float
    planned_information: float
    boundary: float

    def to_json(self) -> dict:
        return {"p_value": self.p_value, "reject_at": self.reject_at, "information": self.information,
                "planned_information": self.planned_information, "boundary": self.boundary}

    @classmethod
    def from_json(cls, body: Mapping) -> Sequential:
        body = _object(body, "sequential")
        return cls(**{k: _read_number(body, k) for k in ("p_value", "reject_at", "information", "planned_information",
                                                           "boundary")})


@dataclass(frozen=True, slots=True)
class Evidence:
    """One test of a canary (errors, latency or slow_share; overall or for one tool)."""

    name: str
    tool: str | None  # None: the service's requests overall
    baseline: Side | None
    canary: Side | None
    effect: Effect | None
    p_value: float
    p_adjusted: float  # Holm-adjusted over the decision's tests
    sequential: Sequential
    e_value: float
    e_threshold: float
    rejected_by: str | None  # "boundary", "e-value" or None
    power: float
    required_requests: int | None  # canary requests still needed, when insufficient
    status: str  # passed, failed or insufficient
    latency_threshold: float | None = None  # the slow_share test only
    planned_cles: float | None = None  # the latency test only
    note: str | None = None  # why the test could not run, or why it is suspect

    def to_json(self) -> dict:
        body = {"name": self.name, "tool": self.tool,
                "baseline": None if self.baseline is None else self.baseline.to_json(),
                "canary": None if self.canary is None else self.canary.to_json(),
                "effect": None if self.effect is None else self.effect.to_json()}
        if self.latency_threshold is not None:
            body["latency_threshold"] = self.latency_threshold
        body.update({"p_value": self.p_value, "p_adjusted": self.p_adjusted, "sequential": self.sequential.to_json(),
                     "e_value": self.e_value, "e_threshold": self.e_threshold, "rejected_by": self.rejected_by,
                     "power": self.power, "required_requests": self.required_requests, "status": self.status})
        if self.planned_cles is not None:
            body["planned_cles"] = self.planned_cles
        if self.note is not None:
            body["note"] = self.note
        return body

    @classmethod
    def from_json(cls, body: Mapping) -> Evidence:
        body = _object(body, "evidence")
        sides = {k: None if body.get(k) is None else Side.from_json(body[k]) for k in ("baseline", "canary")}
        tool, note, by = body.get("tool"), body.get("note"), body.get("rejected_by")
        if any(v is not None and not isinstance(v, str) for v in (tool, note, by)):
            raise ValueError("tool, note and rejected_by must be strings or null")
        required = body.get("required_requests")
        if required is not None and (isinstance(required, bool) or not isinstance(required, int)):
            raise ValueError(f"required_requests is not an integer: {required!r}")
        return cls(name=_read_text(body, "name"), tool=tool, **sides,
                   effect=None if body.get("effect") is None else Effect.from_json(body["effect"]),
                   sequential=Sequential.from_json(body.get("sequential")), rejected_by=by,
                   required_requests=required, status=_read_text(body, "status"), note=note,
                   **{k: _read_number(body, k) for k in ("p_value", "p_adjusted", "e_value", "e_threshold", "power",
                                                         "latency_threshold", "planned_cles")})


@dataclass(frozen=True, slots=True)
class CanaryDecision:
    """The engine's decision on one canary (a version of a service against its baseline) at
    one tick. The store adds `evaluated_at` (unix seconds) to its JSON, the API as RFC 3339."""

    service: str
    baseline: str
    canary: str
    verdict: str  # promote, rollback or inconclusive
    score: int  # 0 (roll back) to 100
    reason: str  # one sentence for a release manager
    metrics: tuple[Evidence, ...]
    window: str  # the canary's life judged, "2h"
    canary_age_seconds: float

    def to_json(self) -> dict:
        return {"service": self.service, "baseline": self.baseline, "canary": self.canary, "verdict": self.verdict,
                "score": self.score, "reason": self.reason, "metrics": [m.to_json() for m in self.metrics],
                "window": self.window, "canary_age_seconds": self.canary_age_seconds}

    @classmethod
    def from_json(cls, body: Mapping) -> CanaryDecision:
        """Read `to_json`'s dict back (extra keys, like `evaluated_at`, are ignored)."""
        body = _object(body, "a canary decision")
        metrics = body.get("metrics") or []
        if not isinstance(metrics, list):
            raise ValueError("metrics is not a list")
        score = body.get("score")
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise ValueError(f"score is not a number: {score!r}")
        return cls(service=_read_text(body, "service"), baseline=_read_text(body, "baseline"),
                   canary=_read_text(body, "canary"), verdict=_read_text(body, "verdict"), score=score,
                   reason=_read_text(body, "reason", ""), metrics=tuple(Evidence.from_json(m) for m in metrics),
                   window=_read_text(body, "window", ""),
                   canary_age_seconds=_read_number(body, "canary_age_seconds"))


# --- a result and its time ------------------------------------------------------------------

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Evaluated(Generic[T]):
    """A result (an SLOResult, a CanaryDecision) and when the engine evaluated it, in unix
    seconds; `stale` when it is served from an evaluation too old to trust (the engine's rule,
    slo.engine.scheduler.Engine.is_stale). The store logs results with their time only: stale
    is False there, and the API's answers say whether the latest evaluation is stale."""

    result: T
    evaluated_at: float
    stale: bool = False

"""The engine's results as types: an SLO's result and the state of its alert tiers.

Each has one JSON form, `to_json()`, the dict the API answers with (README, "The SLO
engine"): the keys are the fields, in their order. `from_json` reads it back, as the store
keeps it and the API serves it. Unknown numbers are None, never NaN: `to_json` turns a
non-finite float into None, as the API's JSON holds no NaN.

Library layer: evaluate builds these, the engine stores and serves them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

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


def _read_windows(body: Mapping, key: str) -> dict[str, float | None]:
    value = body.get(key) or {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{key} is not an object: {value!r}")
    return {str(w): _read_number(value, w) for w in value}


@dataclass(frozen=True, slots=True)
class AlertState:
    """One burn-rate tier of an SLO: its thresholds and whether it fires now."""

    tier: str
    severity: str  # "page" or "ticket"
    burn_rate_threshold: float
    long_window: str  # "1h"
    short_window: str  # "5m"
    firing: bool
    low_traffic: bool  # it would fire, but the long window has too few events to trust

    def to_json(self) -> dict:
        return {"tier": self.tier, "severity": self.severity, "burn_rate_threshold": _number(self.burn_rate_threshold),
                "long_window": self.long_window, "short_window": self.short_window,
                "firing": self.firing, "low_traffic": self.low_traffic}

    @classmethod
    def from_json(cls, body: Mapping) -> AlertState:
        if not isinstance(body, Mapping):
            raise ValueError(f"an alert is not an object: {body!r}")
        return cls(tier=_read_text(body, "tier"), severity=_read_text(body, "severity"),
                   burn_rate_threshold=_read_number(body, "burn_rate_threshold"),
                   long_window=_read_text(body, "long_window"), short_window=_read_text(body, "short_window"),
                   firing=bool(body.get("firing")), low_traffic=bool(body.get("low_traffic")))


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
        return cls(service=_read_text(body, "service"), tool=tool or None, slo=_read_text(body, "slo"),
                   kind=_read_text(body, "kind", ""), description=_read_text(body, "description", ""),
                   window=_read_text(body, "window", ""),
                   sli_windows=_read_windows(body, "sli_windows"), burn_rates=_read_windows(body, "burn_rates"),
                   alerts=tuple(AlertState.from_json(a) for a in alerts), status=status,
                   versions=tuple(str(v) for v in versions), **numbers)


_NUMBERS = ("objective", "threshold", "sli", "error_budget_remaining", "error_budget_consumed", "events", "bad_events",
            "error_budget_events", "error_budget_events_remaining", "time_to_exhaustion_seconds")

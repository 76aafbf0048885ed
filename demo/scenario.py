"""Demo scenarios: how each service version behaves, read from YAML.

A scenario gives, per service, the tool mix and, per version, an error ratio
and a log-normal latency per tool; the traffic split between versions; the
canary's age; incidents scheduled relative to the demo's start (negative
starts lie in the backfilled history, positive ones happen live); a service's own
`rate` where it is not the demo's (`steady`: without the daily curve); and planned maintenance windows relative to the
start, which the demo adds to its SLO spec. See demo/scenarios/*.yaml.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

SCENARIO_DIR = Path(__file__).parent / "scenarios"
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^(-?\d+(?:\.\d+)?)(ms|s|m|h|d|w)$")
_RATE = re.compile(r"^(\d+(?:\.\d+)?)/(s|m|h)$")  # calls per second, minute or hour


class ScenarioError(ValueError):
    pass


@dataclass(frozen=True)
class ToolBehaviour:
    error_ratio: float = 0.001
    median: float = 0.02  # seconds
    sigma: float = 0.6  # spread of the log-normal: p99 = median * exp(2.33 * sigma)

    def latency(self, rng: random.Random, factor: float = 1.0) -> float:
        return self.median * factor * math.exp(rng.gauss(0.0, self.sigma))


@dataclass(frozen=True)
class Incident:
    name: str
    service: str
    versions: tuple[str, ...]
    start: float  # seconds from the demo's start; negative: in the history
    duration: float
    error_ratio: float | None = None  # replaces the tools' error ratio while it lasts
    latency_factor: float = 1.0  # multiplies the median latency while it lasts

    def active(self, at: float) -> bool:
        return self.start <= at < self.start + self.duration


@dataclass(frozen=True)
class Maintenance:
    """A planned maintenance window of the scenario, relative to the demo's start: the demo
    adds it to the SLO spec it serves (one-off, from start to start + duration)."""

    service: str
    start: float  # seconds from the demo's start
    duration: float
    mode: str  # silence | exclude
    reason: str


@dataclass
class VersionBehaviour:
    default: ToolBehaviour = field(default_factory=ToolBehaviour)
    tools: dict[str, ToolBehaviour] = field(default_factory=dict)

    def for_tool(self, name: str) -> ToolBehaviour:
        return self.tools.get(name, self.default)


@dataclass
class Scenario:
    name: str
    split: dict[str, float]
    canary: str
    canary_age: float
    tools: dict[str, dict[str, float]]  # service -> tool -> share of its traffic
    versions: dict[str, dict[str, VersionBehaviour]]  # service -> version -> behaviour
    incidents: list[Incident]
    rates: dict[str, float] = field(default_factory=dict)  # service -> calls per second, where not the demo's --rate
    steady: set[str] = field(default_factory=set)  # services whose history has no daily or weekly curve
    maintenance: list[Maintenance] = field(default_factory=list)

    def rate(self, service: str, default: float) -> float:
        """The service's calls per second (at the history's end and live)."""
        return self.rates.get(service, default)

    def incidents_for(self, service: str, version: str) -> list[Incident]:
        return [i for i in self.incidents if i.service == service and version in i.versions]


def available() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def load(name_or_path: str) -> Scenario:
    path = Path(name_or_path)
    if not path.suffix:
        path = SCENARIO_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise ScenarioError(f"no scenario {name_or_path!r}: choose one of {', '.join(available())} or give a YAML file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    return parse(raw, path.stem, str(path))


def parse(raw: object, name: str, where: str = "<scenario>") -> Scenario:
    def fail(key: str, problem: str):
        raise ScenarioError(f"{where}: {key}: {problem}")

    def mapping(value, key):
        if not isinstance(value, dict):
            fail(key, f"expected a mapping, got {type(value).__name__}")
        return value

    def number(value, key, low=0.0, high=math.inf):
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            fail(key, f"expected a number in [{low}, {high}], got {value!r}")
        return float(value)

    def duration(value, key, allow_negative=False):
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        else:
            m = _DURATION.match(str(value))
            if not m:
                fail(key, f"expected a duration like 250ms, 30m, 2h or 14d, got {value!r}")
            seconds = float(m.group(1)) * _UNITS[m.group(2)]
        if seconds < 0 and not allow_negative:
            fail(key, "must not be negative")
        return seconds

    def behaviour(value, key, base: ToolBehaviour) -> ToolBehaviour:
        value = mapping(value, key)
        unknown = set(value) - {"error_ratio", "median", "sigma"}
        if unknown:
            fail(key, f"unknown keys {sorted(unknown)}")
        return ToolBehaviour(
            error_ratio=number(value.get("error_ratio", base.error_ratio), f"{key}.error_ratio", 0, 1),
            median=duration(value.get("median", base.median), f"{key}.median"),
            sigma=number(value.get("sigma", base.sigma), f"{key}.sigma", 0, 5),
        )

    raw = mapping(raw, "top level")
    split = {str(v): number(w, f"split.{v}", 0, 1) for v, w in mapping(raw.get("split"), "split").items()}
    if not math.isclose(sum(split.values()), 1.0, abs_tol=1e-6):
        fail("split", f"weights must add up to 1, got {sum(split.values())}")
    canary_raw = mapping(raw.get("canary", {}), "canary")
    canary = str(canary_raw.get("version", ""))
    if canary and canary not in split:
        fail("canary.version", f"{canary!r} is not in split")
    canary_age = duration(canary_raw.get("age", "2h"), "canary.age")

    def per_second(value, key) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return number(value, key, 1e-6)
        m = _RATE.match(str(value))
        if not m or float(m.group(1)) <= 0:
            fail(key, f"expected calls per second, or a rate like 1/m or 30/h, got {value!r}")
        return float(m.group(1)) / _UNITS[m.group(2)]

    tools: dict[str, dict[str, float]] = {}
    versions: dict[str, dict[str, VersionBehaviour]] = {}
    rates: dict[str, float] = {}
    steady: set[str] = set()
    for service, body in mapping(raw.get("services"), "services").items():
        key = f"services.{service}"
        body = mapping(body, key)
        if "rate" in body:
            rates[service] = per_second(body["rate"], f"{key}.rate")
        if body.get("steady", False) is not False:
            if body["steady"] is not True:
                fail(f"{key}.steady", f"expected true or false, got {body['steady']!r}")
            steady.add(service)
        mix = {str(t): number(s, f"{key}.tools.{t}", 0, 1) for t, s in mapping(body.get("tools"), f"{key}.tools").items()}
        if not mix or not math.isclose(sum(mix.values()), 1.0, abs_tol=1e-6):
            fail(f"{key}.tools", "tool shares must add up to 1")
        tools[service] = mix
        versions[service] = {}
        for version, vbody in mapping(body.get("versions"), f"{key}.versions").items():
            vkey = f"{key}.versions.{version}"
            vbody = mapping(vbody, vkey)
            default = behaviour(vbody.get("default", {}), f"{vkey}.default", ToolBehaviour())
            per_tool = {}
            for tool, tbody in mapping(vbody.get("tools", {}), f"{vkey}.tools").items():
                if tool not in mix:
                    fail(f"{vkey}.tools.{tool}", f"not one of the service's tools {sorted(mix)}")
                per_tool[tool] = behaviour(tbody, f"{vkey}.tools.{tool}", default)
            versions[service][str(version)] = VersionBehaviour(default, per_tool)
        missing = set(split) - set(versions[service])
        if missing:
            fail(f"{key}.versions", f"no behaviour for versions {sorted(missing)} of the split")

    incidents = []
    for i, inc in enumerate(raw.get("incidents") or []):
        key = f"incidents[{i}]"
        inc = mapping(inc, key)
        service = inc.get("service")
        if service not in versions:
            fail(f"{key}.service", f"{service!r} is not a service of this scenario")
        incidents.append(Incident(
            name=str(inc.get("name", f"incident {i}")),
            service=service,
            versions=tuple(str(v) for v in inc.get("versions", list(split))),
            start=duration(inc.get("start"), f"{key}.start", allow_negative=True),
            duration=duration(inc.get("duration"), f"{key}.duration"),
            error_ratio=None if inc.get("error_ratio") is None else number(inc["error_ratio"], f"{key}.error_ratio", 0, 1),
            latency_factor=number(inc.get("latency_factor", 1.0), f"{key}.latency_factor", 0),
        ))
    windows = []
    for i, win in enumerate(raw.get("maintenance") or []):
        key = f"maintenance[{i}]"
        win = mapping(win, key)
        if win.get("service") not in versions:
            fail(f"{key}.service", f"{win.get('service')!r} is not a service of this scenario")
        mode = str(win.get("mode", "silence"))
        if mode not in ("silence", "exclude"):
            fail(f"{key}.mode", f"expected silence or exclude, got {mode!r}")
        windows.append(Maintenance(
            service=win["service"], start=duration(win.get("start"), f"{key}.start"),
            duration=duration(win.get("duration"), f"{key}.duration"), mode=mode,
            reason=str(win.get("reason", "planned maintenance"))))
    return Scenario(name, split, canary, canary_age, tools, versions, incidents, rates, steady, windows)

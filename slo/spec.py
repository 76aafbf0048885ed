"""The SLO spec: one YAML file, validated, resolved per service and tool.

    version: 1
    defaults:            # every service discovered in Prometheus gets these
      objectives:
        - {name: availability, kind: availability, target: 99.9, window: 30d}
        - {name: latency, kind: latency, threshold: 0.5, target: 99, window: 30d}
    services:
      filesystem:
        objectives:
          - {name: availability, target: 99.95}     # overrides the default of that name
        tools:
          write_file:
            objectives: [{name: availability, target: 99.5}]
    alerting: {...}      # tiers, guards, labels, links, receivers
    canary: {...}

Errors name the file, the key path and what is wrong (`SpecError`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from collector import names
from slo import durations, promql

# Names that end up in label values, rule names and URLs: no quotes, braces,
# whitespace or control characters, so a spec cannot smuggle PromQL or YAML.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")
SLO_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# An objective's `methods: ["*"]`: every method, none filtered (promql.ALL_METHODS).
ALL_METHODS = promql.ALL_METHODS


class SpecError(ValueError):
    """A spec that cannot be used; the message names the file and the key path."""


def _duration(value: Any) -> str:
    durations.parse(value)  # raises ValueError with the reason
    return value


Duration = Annotated[str, BeforeValidator(_duration)]


def _number(value: Any) -> Any:
    # pydantic would read "99.9" as 99.9 and true as 1.0; a quoted or boolean
    # target is more likely a mistake ("99.9%") than intended.
    if isinstance(value, (str, bool)):
        raise ValueError(f"must be a number, not {type(value).__name__} {value!r}")
    return value


Number = Annotated[float, BeforeValidator(_number)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Objective(_Model):
    """One SLO: availability (good = success; bad = error or timeout) or latency
    (good = finished within `threshold` seconds, a histogram bucket bound)."""

    name: str
    kind: Literal["availability", "latency"]
    target: Number = Field(description="percent of good events, e.g. 99.9")
    window: Duration = "30d"
    threshold: Number | None = Field(default=None, description="latency SLOs: seconds, a bucket bound")
    methods: tuple[str, ...] = ("tools/call",)
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not SLO_NAME.match(v):
            raise ValueError(f"{v!r} is not a valid SLO name: lowercase letters, digits, '_' and '-', at most 63")
        return v

    @field_validator("target")
    @classmethod
    def _target(cls, v: float) -> float:
        if not (0 < v < 100) or math.isnan(v):
            raise ValueError(f"target is a percentage strictly between 0 and 100, got {v}")
        return v

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if v == ALL_METHODS:
            return v
        unknown = [m for m in v if m not in names.CLIENT_METHODS]
        if unknown or not v:
            raise ValueError(f"methods must be MCP client methods ({', '.join(sorted(names.CLIENT_METHODS))}), "
                             f"or [\"*\"] alone for every method; got {unknown or 'none'}")
        return v

    @model_validator(mode="after")
    def _kind(self) -> Objective:
        if self.kind == "latency" and self.threshold is None:
            raise ValueError("a latency objective needs a threshold (seconds, a histogram bucket bound)")
        if self.kind == "availability" and self.threshold is not None:
            raise ValueError("an availability objective takes no threshold")
        return self

    @property
    def objective(self) -> float:
        """The target as a fraction, e.g. 0.999 (not 0.9990000000000001)."""
        return float(f"{self.target / 100:.12g}")

    @property
    def error_budget(self) -> float:
        return 1 - self.objective

    @property
    def window_seconds(self) -> float:
        return durations.parse(self.window)


class ObjectiveOverride(_Model):
    """A service's or tool's change to a default objective of the same name, or a
    new objective (then `kind` and `target` are required). `disabled: true`
    removes a default."""

    name: str
    kind: Literal["availability", "latency"] | None = None
    target: Number | None = None
    window: Duration | None = None
    threshold: Number | None = None
    methods: tuple[str, ...] | None = None
    description: str | None = None
    disabled: bool = False


class Tier(_Model):
    """A multiwindow burn-rate alert: fires when the burn rate over both windows
    exceeds `burn_rate`. Windows are given for a 30d SLO and scaled to others."""

    name: str
    severity: Literal["page", "ticket"]
    burn_rate: float = Field(gt=0)
    long_window: Duration
    short_window: Duration
    for_: Duration = Field(default="2m", alias="for")
    enabled: bool = True

    @model_validator(mode="after")
    def _windows(self) -> Tier:
        if durations.parse(self.short_window) >= durations.parse(self.long_window):
            raise ValueError(f"short_window {self.short_window} must be shorter than long_window {self.long_window}")
        return self


# The SRE Workbook's multiwindow, multi-burn-rate alerts for a 30-day SLO.
WORKBOOK_TIERS = (
    Tier(name="page-fast", severity="page", burn_rate=14.4, long_window="1h", short_window="5m", for_="2m"),
    Tier(name="page-slow", severity="page", burn_rate=6, long_window="6h", short_window="30m", for_="15m"),
    Tier(name="ticket-fast", severity="ticket", burn_rate=3, long_window="1d", short_window="2h", for_="1h"),
    Tier(name="ticket-slow", severity="ticket", burn_rate=1, long_window="3d", short_window="6h", for_="3h"),
)


class Receivers(_Model):
    """Webhook URLs Alertmanager notifies; none configured: the receiver notifies nobody."""

    page: str | None = None
    ticket: str | None = None
    release: str | None = None

    @field_validator("page", "ticket", "release")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^\s\"'{}]+$", v):
            raise ValueError(f"{v!r} is not an http:// or https:// URL")
        return v


class Alerting(_Model):
    tiers: tuple[Tier, ...] = WORKBOOK_TIERS
    # Low-traffic guard: no burn-rate alert unless the long window holds this many events.
    min_events: int = Field(default=50, ge=0)
    absent_for: Duration = "10m"
    budget_exhausted_alert: bool = True
    labels: dict[str, str] = Field(default_factory=dict)
    runbook_url: str = "https://runbooks.example.com/mcp-slo/{slo}"
    dashboard_url: str = "http://127.0.0.1:8050/services/{service}"
    receivers: Receivers = Receivers()

    @field_validator("tiers")
    @classmethod
    def _unique_tiers(cls, v: tuple[Tier, ...]) -> tuple[Tier, ...]:
        seen = [t.name for t in v]
        dupes = sorted({n for n in seen if seen.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate tier names {dupes}")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        reserved = {"severity", "service", "slo", "tier", "window", "tool", "alertname"}
        for key in v:
            if key in reserved:
                raise ValueError(f"label {key!r} is reserved: mcp-slo sets {', '.join(sorted(reserved))} itself")
            if not re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*$", key):
                raise ValueError(f"label {key!r} is not a valid label name (letters, digits and '_')")
        return v


class Canary(_Model):
    baseline: str | None = None  # default: the version with the most traffic
    max_lookback: Duration = "24h"
    min_requests: int = Field(default=200, ge=1)
    alpha: float = Field(default=0.01, gt=0, lt=0.5)  # false rollbacks, over every tick and test
    # The regressions a promotion must have been able to catch (80% power): the canary's
    # error ratio (or slow share) times error_regression, its latencies times latency_regression.
    error_regression: float = Field(default=2.0, gt=1)
    latency_regression: float = Field(default=1.2, gt=1)


class ToolSpec(_Model):
    objectives: tuple[ObjectiveOverride, ...] = ()


class ServiceSpec(_Model):
    objectives: tuple[ObjectiveOverride, ...] = ()
    tools: dict[str, ToolSpec] = Field(default_factory=dict)
    canary: Canary | None = None


class Defaults(_Model):
    objectives: tuple[Objective, ...] = ()


class Spec(_Model):
    version: Literal[1] = 1
    buckets: tuple[float, ...] = names.DEFAULT_BUCKETS
    defaults: Defaults = Defaults()
    services: dict[str, ServiceSpec] = Field(default_factory=dict)
    alerting: Alerting = Alerting()
    canary: Canary = Canary()

    @model_validator(mode="after")
    def _check(self) -> Spec:
        _unique("defaults.objectives", [o.name for o in self.defaults.objectives])
        for i, o in enumerate(self.defaults.objectives):
            self._check_threshold(o.threshold, f"defaults.objectives.{i}.threshold")
        for service, body in self.services.items():
            if not NAME.match(service):
                raise ValueError(f"services: {service!r} is not a valid service name "
                                 "(letters, digits, '_', '.', ':', '/', '-'; no quotes, braces or spaces)")
            for tool in body.tools:
                if not NAME.match(tool):
                    raise ValueError(f"services.{service}.tools: {tool!r} is not a valid tool name "
                                     "(letters, digits, '_', '.', ':', '/', '-'; no quotes, braces or spaces)")
            for i, o in enumerate(body.objectives):
                self._check_threshold(o.threshold, f"services.{service}.objectives.{i}.threshold")
            for tool, tool_spec in body.tools.items():
                for i, o in enumerate(tool_spec.objectives):
                    self._check_threshold(o.threshold, f"services.{service}.tools.{tool}.objectives.{i}.threshold")
            # Resolving runs the override checks (kind and target of new objectives, ...).
            self.objectives_for(service)
            for tool in body.tools:
                self.tool_objectives(service, tool)
        return self

    def _check_threshold(self, threshold: float | None, where: str) -> None:
        if threshold is not None and not any(math.isclose(threshold, b) for b in self.buckets):
            raise ValueError(f"{where}: {threshold:g} is not a histogram bucket bound "
                             f"(buckets: {', '.join(f'{b:g}' for b in self.buckets)})")

    def objectives_for(self, service: str) -> list[Objective]:
        """The service's objectives: the defaults with its overrides applied."""
        body = self.services.get(service)
        return _merge(self.defaults.objectives, body.objectives if body else (), f"services.{service}.objectives")

    def tool_objectives(self, service: str, tool: str) -> list[Objective]:
        """Objectives for one tool: the service's, with the tool's overrides applied."""
        spec = self.services[service].tools[tool]
        return _merge(self.objectives_for(service), spec.objectives, f"services.{service}.tools.{tool}.objectives",
                      only_overridden=True)

    def canary_for(self, service: str) -> Canary:
        body = self.services.get(service)
        return body.canary if body and body.canary else self.canary


def _unique(where: str, items: list[str]) -> None:
    dupes = sorted({n for n in items if items.count(n) > 1})
    if dupes:
        raise ValueError(f"{where}: duplicate names {dupes}")


def _merge(base: tuple[Objective, ...] | list[Objective], overrides: tuple[ObjectiveOverride, ...], where: str,
           only_overridden: bool = False) -> list[Objective]:
    """Apply overrides by name; with `only_overridden`, keep only what the overrides name
    (a tool's objectives are the ones it lists)."""
    _unique(where, [o.name for o in overrides])
    by_name = {o.name: o for o in base}
    out: dict[str, Objective] = {} if only_overridden else dict(by_name)
    for i, o in enumerate(overrides):
        changes = o.model_dump(exclude={"disabled"}, exclude_none=True)
        if o.disabled:
            out.pop(o.name, None)
            continue
        if o.name in by_name:
            merged = by_name[o.name].model_dump() | changes
        elif o.kind is None or o.target is None:
            raise ValueError(f"{where}.{i}: {o.name!r} is not a default objective, so it needs kind and target")
        else:
            merged = changes
        try:
            out[o.name] = Objective.model_validate(merged)
        except ValidationError as exc:
            err = exc.errors()[0]
            path = ".".join([where, str(i), *(str(p) for p in err["loc"])])
            raise ValueError(f"{path}: {_message(err)}") from None
    return list(out.values())


def _message(err: Mapping[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    return err["msg"].removeprefix("Value error, ")


def describe(exc: ValidationError, source: str, prefix: str = "", limit: int = 5) -> str:
    """One line per problem: `source: key.path: what is wrong`; `prefix` goes before the
    key path as is (e.g. "spec." for a model validated below the top level)."""
    lines = []
    for err in exc.errors()[:limit]:
        path = (prefix + ".".join(str(p) for p in err["loc"])).rstrip(".: ")
        # Errors of the whole model (loc empty) already start with their key path.
        lines.append(f"{source}: {path}: {_message(err)}" if path else f"{source}: {_message(err)}")
    return "\n".join(lines)


def parse(raw: object, source: str = "<spec>") -> Spec:
    """Validate a parsed YAML document; SpecError names `source` and the key path."""
    if raw is None:
        raise SpecError(f"{source}: the spec is empty")
    if not isinstance(raw, Mapping):
        raise SpecError(f"{source}: the spec must be a mapping at the top level, got {type(raw).__name__}")
    try:
        return Spec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(describe(exc, source)) from None


def load(path: str | Path) -> Spec:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: {yaml_problem(exc)}") from None
    return parse(raw, str(path))


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: where the YAML breaks and why (PyYAML's message spans several)."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{where}not valid YAML: {problem}"

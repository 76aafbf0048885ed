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
    # defaults.error_budget_policy or services.X.error_budget_policy: none (default) or
    # freeze (the canary gate refuses promotion while a budget is exhausted; slo.engine.freeze)
    metrics: auto        # which metrics to read: mcp-slo, otel (OpenTelemetry's semantic
                         # conventions) or auto, both (slo.schema)
    maintenance: [...]   # planned maintenance windows (slo.maintenance)
    strict: false        # true: every service, tool and SLO named anywhere must be declared

Errors name the file, the key path and what is wrong (`SpecError`), one line each.

Bounds: whatever validates must turn into rules, tests and an Alertmanager configuration
that promtool and amtool accept, so a spec is refused beyond these:
- names: services and tools `[A-Za-z0-9][A-Za-z0-9_.:/-]*` (at most 128), SLOs
  `[a-z0-9][a-z0-9_-]*` (at most 63), tiers `[A-Za-z0-9][A-Za-z0-9_.-]*` (at most 63);
  alert label names `[a-zA-Z_][a-zA-Z0-9_]*` not starting with `__`, label values without
  control characters or line breaks;
- target: a percentage above 0 and at most 99.9999 (an error budget of at least one
  event in a million: 100 - target must stay non-zero at the 12 digits the rules print);
- window (an SLO's): a whole number of hours from 1h to 365d (the rules read hourly
  samples beyond 3d; Prometheus durations and test horizons stay small);
- tiers: burn_rate from 1 (spending the budget exactly over the window) to 1000; long and
  short windows from 1m to 30d (they are given for a 30d SLO and scaled), short shorter
  than long, and at most 1h for a page tier (a page lets go within its short window of
  the burn stopping); `for` at most 1d; min_events at most 1,000,000; absent_for from 1m
  to 1d; every other duration at most 365d;
- receivers: http:// or https:// URLs of printable ASCII with a host (valid percent
  escapes, port at most 65535); runbook_url and dashboard_url: such a URL once their
  only placeholders, {service}, {slo} and {tool}, are filled in;
- alerting.confidence: 0 (no significance guard) or from 0.5 to 0.9999;
- an objective's `alerts`: tiers named in `alerting.tiers`, a tier disabled there not
  enabled per SLO, a page tier's short window at most 1h whatever the severity override;
- buckets: at least one, finite, above 0, strictly increasing; numbers are finite (no
  .inf or .nan). Latency thresholds must be bucket bounds: without `buckets`, mcp-slo's
  (collector.names.DEFAULT_BUCKETS), or for `metrics: otel` the semantic conventions'
  recommended ones (collector.semconv.BUCKETS), which OpenTelemetry's SDKs use;
- the YAML itself: at most 50 levels deep, valid Unicode (no lone surrogates).
"""

from __future__ import annotations

import json
import math
import re
import string
import time
import unicodedata
import urllib.parse
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from collector import durations, names, semconv
from slo import maintenance, promql, schema, significance
from slo.maintenance import Window as MaintenanceWindow

# Names that end up in label values, rule names and URLs: no quotes, braces,
# whitespace or control characters, so a spec cannot smuggle PromQL or YAML.
# \Z, not $: `$` also matches before a trailing newline.
NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}\Z")
SLO_NAME = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,62}\Z")
TIER_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")
LABEL_NAME = re.compile(r"\A(?!__)[a-zA-Z_][a-zA-Z0-9_]*\Z")  # `__` names are Prometheus's own

# An objective's `methods: ["*"]`: every method, none filtered (promql.ALL_METHODS).
ALL_METHODS = promql.ALL_METHODS

MAX_TARGET = 99.9999
MIN_WINDOW, MAX_WINDOW = 3600, 365 * 86400
MIN_TIER_WINDOW, MAX_TIER_WINDOW = 60, 30 * 86400  # given for a 30d SLO, scaled to others
MAX_PAGE_SHORT_WINDOW = 3600
MAX_FOR = 86400
MAX_DURATION = 365 * 86400
MAX_YAML_DEPTH = 50  # the deepest key path of any supported format is under 10
URL_FIELDS = ("service", "slo", "tool")  # the placeholders of runbook_url and dashboard_url
# the alert labels mcp-slo sets (tuned_for: alerts.rules.TUNED_FOR)
RESERVED_LABELS = frozenset({"severity", "service", "slo", "tier", "window", "tool", "alertname", "tuned_for"})
MIN_CONFIDENCE, MAX_CONFIDENCE = 0.5, 0.9999
RECEIVERS = ("page", "ticket", "release")  # Alertmanager's receivers (alerts.alertmanager)


def printable(text: str) -> str:
    """`text` with control characters, line breaks (YAML's too: NEL, LS, PS) and lone
    surrogates escaped as Python writes them: for one-line messages and YAML comments."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _unprintable(text: str) -> str | None:
    """The first control character or line break in `text`, if any."""
    return next((c for c in text if unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs")), None)


class SpecError(ValueError):
    """A spec that cannot be used; the message names the file and the key path, one line
    per problem (other line breaks and control characters, say in a name quoted from the
    spec, are escaped)."""

    def __str__(self) -> str:
        return "\n".join(printable(line) for line in super().__str__().split("\n"))


def _duration(value: Any) -> str:
    if durations.parse(value) > MAX_DURATION:  # raises ValueError with the reason
        raise ValueError(f"{value} is too long: at most {promql.duration(MAX_DURATION)}")
    return value


def _between(name: str, value: str, low: float, high: float) -> float:
    seconds = durations.parse(value)
    if seconds < low:
        raise ValueError(f"{name} {value} is too short: at least {promql.duration(low)}")
    if seconds > high:
        raise ValueError(f"{name} {value} is too long: at most {promql.duration(high)}")
    return seconds


def check_url(value: str) -> str:
    """`value` if Alertmanager (Go's net/url) takes it as a webhook URL: http or https, a
    host, printable ASCII, valid percent escapes; ValueError otherwise."""
    def refuse(why: str) -> ValueError:
        return ValueError(f"{value[:200]!r} is not an http:// or https:// URL: {why}")

    if not re.fullmatch(r"[!-~]+", value):
        raise refuse("printable ASCII only, no spaces or control characters")
    if re.search(r"[\"'{}\\<>^`|]", value) or re.search(r"%(?![0-9A-Fa-f]{2})", value):
        raise refuse("quotes, braces, backslashes and '%' not followed by two hex digits must be escaped")
    try:
        parts = urllib.parse.urlsplit(value)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise refuse(str(exc)) from None
    if parts.scheme not in ("http", "https"):
        raise refuse("the scheme must be http or https")
    if not host or not re.fullmatch(r"[a-z0-9._-]+|[0-9a-f:.]+", host):
        raise refuse("no host" if not host else f"{host!r} is not a host name or address")
    if port == 0:
        raise refuse("port 0")
    return value


def url_template(template: str) -> list[tuple[str, str | None]]:
    """(literal text, placeholder or None) pairs of a link template like
    "https://runbooks/{slo}": the only placeholders are {service}, {slo} and {tool}
    (empty for a service-wide SLO); ValueError otherwise."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{template[:200]!r} is not a valid template: {exc}") from None
    for _, name, spec, conversion in parts:
        if name is not None and (name not in URL_FIELDS or spec or conversion):
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"unknown placeholder {shown} in {template[:200]!r}; use {{service}}, {{slo}} and {{tool}}")
    return [(literal, name) for literal, name, _, _ in parts]


def _check_link(template: str) -> str:
    filled = "".join(literal + ("" if name is None else f"example-{name}") for literal, name in url_template(template))
    check_url(filled)
    return template


Duration = Annotated[str, BeforeValidator(_duration)]


def _check_labels(v: dict[str, str]) -> dict[str, str]:
    """Alert labels: not mcp-slo's own, valid names, values without control characters."""
    for key, value in v.items():
        if key in RESERVED_LABELS:
            raise ValueError(f"label {key!r} is reserved: mcp-slo sets {', '.join(sorted(RESERVED_LABELS))} itself")
        if not LABEL_NAME.match(key):
            raise ValueError(f"label {key[:200]!r} is not a valid label name "
                             "(letters, digits and '_', not starting with '__')")
        if (c := _unprintable(value)) is not None:
            raise ValueError(f"label {key}: the value holds the control character {c!r}")
        if key == "receiver" and value not in RECEIVERS:  # Alertmanager routes on it (alerts.alertmanager)
            raise ValueError(f"label receiver: {value[:200]!r} is not a receiver; one of {', '.join(RECEIVERS)}")
    return v


Labels = Annotated[dict[str, str], AfterValidator(_check_labels)]


def _number(value: Any) -> Any:
    # pydantic would read "99.9" as 99.9 and true as 1.0; a quoted or boolean
    # target is more likely a mistake ("99.9%") than intended.
    if isinstance(value, (str, bool)):
        raise ValueError(f"must be a number, not {type(value).__name__} {value!r}")
    return value


Number = Annotated[float, BeforeValidator(_number)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


def _hash(model: BaseModel) -> int:
    """A frozen model's hash from its contents (pydantic's hashes the fields, and dicts have none)."""
    return hash(json.dumps(model.model_dump(mode="json"), sort_keys=True))


class TierOverride(_Model):
    """One SLO's changes to a tier of `alerting.tiers`."""

    enabled: bool | None = None
    severity: Literal["page", "ticket"] | None = None
    for_: Duration | None = Field(default=None, alias="for")
    labels: Labels = Field(default_factory=dict)  # added to the tier's


class ObjectiveAlerts(_Model):
    """An objective's alerts: all off (`enabled: false`: its recording rules, engine numbers
    and dashboards stay), tiers turned off or changed by name, its own links."""

    enabled: bool = True
    tiers: dict[str, TierOverride] = Field(default_factory=dict)
    runbook_url: str | None = None
    dashboard_url: str | None = None

    def __hash__(self) -> int:  # the objectives are grouped by value (slo.plan)
        return _hash(self)

    @field_validator("runbook_url", "dashboard_url")
    @classmethod
    def _link(cls, v: str | None) -> str | None:
        return v if v is None else _check_link(v)


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
    alerts: ObjectiveAlerts = ObjectiveAlerts()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not SLO_NAME.match(v):
            raise ValueError(f"{v[:200]!r} is not a valid SLO name: lowercase letters, digits, '_' and '-', at most 63")
        return v

    @field_validator("target")
    @classmethod
    def _target(cls, v: float) -> float:
        if not 0 < v <= MAX_TARGET:
            raise ValueError(f"target is a percentage strictly between 0 and 100 and at most {MAX_TARGET} "
                             f"(an error budget of at least one event in a million), got {v!r}")
        return v

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        if _between("window", v, MIN_WINDOW, MAX_WINDOW) % 3600:
            raise ValueError(f"window {v} is not a whole number of hours")
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

    def alert_tier(self, tier: Tier) -> Tier | None:
        """`tier` as this objective's alerts have it (severity, `for`, labels changed), or
        None when it raises no alert for this objective."""
        change = self.alerts.tiers.get(tier.name, TierOverride())
        if not (self.alerts.enabled and tier.enabled and change.enabled is not False):
            return None
        if change == TierOverride():
            return tier
        raw = tier.model_dump() | change.model_dump(exclude={"enabled", "labels"}, exclude_none=True)
        return Tier.model_validate(raw | {"labels": tier.labels | change.labels})


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
    alerts: ObjectiveAlerts | None = None  # merged into the objective's, key by key
    disabled: bool = False


class Tier(_Model):
    """A multiwindow burn-rate alert: fires when the burn rate over both windows
    exceeds `burn_rate`. Windows are given for a 30d SLO and scaled to others."""

    name: str
    severity: Literal["page", "ticket"]
    # 1: the budget spent exactly over the SLO window; below, no alert is worth sending
    burn_rate: float = Field(ge=1, le=1000)
    long_window: Duration
    short_window: Duration
    for_: Duration = Field(default="2m", alias="for")
    enabled: bool = True
    labels: Labels = Field(default_factory=dict)  # added to the alerts' labels

    def __hash__(self) -> int:  # the labels are a dict
        return _hash(self)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not TIER_NAME.match(v):
            raise ValueError(f"{v[:200]!r} is not a valid tier name: letters, digits, '_', '.' and '-', at most 63")
        return v

    @field_validator("long_window", "short_window")
    @classmethod
    def _window(cls, v: str, info) -> str:
        _between(info.field_name, v, MIN_TIER_WINDOW, MAX_TIER_WINDOW)
        return v

    @field_validator("for_")
    @classmethod
    def _for(cls, v: str) -> str:
        _between("for", v, 0, MAX_FOR)
        return v

    @model_validator(mode="after")
    def _windows(self) -> Tier:
        short = durations.parse(self.short_window)
        if short >= durations.parse(self.long_window):
            raise ValueError(f"short_window {self.short_window} must be shorter than long_window {self.long_window}")
        # a page must let go soon after the burn stops: its short window says when
        if self.severity == "page" and short > MAX_PAGE_SHORT_WINDOW:
            raise ValueError(f"short_window {self.short_window} of a page tier is too long: at most "
                             f"{promql.duration(MAX_PAGE_SHORT_WINDOW)} (slower burns are for tickets)")
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
        return v if v is None else check_url(v)


class Alerting(_Model):
    tiers: tuple[Tier, ...] = WORKBOOK_TIERS
    # Low-traffic guard: no burn-rate alert unless the long window holds this many events.
    min_events: int = Field(default=50, ge=0, le=1_000_000)
    absent_for: Duration = "10m"
    budget_exhausted_alert: bool = True
    # Significance guard: a tier fires only when the Wilson lower bound of the long window's
    # error ratio, at this one-sided confidence, is over its threshold (slo.significance); 0: off.
    confidence: float = 0.95
    labels: Labels = Field(default_factory=dict)
    runbook_url: str = "https://runbooks.example.com/mcp-slo/{slo}"
    dashboard_url: str = "http://127.0.0.1:8050/services/{service}"
    receivers: Receivers = Receivers()

    @field_validator("tiers")
    @classmethod
    def _unique_tiers(cls, v: tuple[Tier, ...]) -> tuple[Tier, ...]:
        dupes = _duplicates([t.name for t in v])
        if dupes:
            raise ValueError(f"duplicate tier names {dupes}")
        return v

    @field_validator("absent_for")
    @classmethod
    def _absent_for(cls, v: str) -> str:
        _between("absent_for", v, 60, 86400)
        return v

    @field_validator("runbook_url", "dashboard_url")
    @classmethod
    def _link(cls, v: str) -> str:
        return _check_link(v)

    @field_validator("confidence")
    @classmethod
    def _confidence(cls, v: float) -> float:
        if v != 0 and not MIN_CONFIDENCE <= v <= MAX_CONFIDENCE:
            raise ValueError(f"confidence must be 0 (no significance guard) or from {MIN_CONFIDENCE} to "
                             f"{MAX_CONFIDENCE}, got {v!r}")
        return v

    @property
    def z(self) -> float | None:
        """The significance guard's z score, None when it is off."""
        return significance.z_score(self.confidence) if self.confidence else None


class Canary(_Model):
    baseline: str | None = None  # default: the version with the most traffic
    max_lookback: Duration = "24h"
    min_requests: int = Field(default=200, ge=1)
    alpha: float = Field(default=0.01, gt=0, lt=0.5)  # false rollbacks, over every tick and test
    # The regressions a promotion must have been able to catch (80% power): the canary's
    # error ratio (or slow share) times error_regression, its latencies times latency_regression.
    error_regression: float = Field(default=2.0, gt=1)
    latency_regression: float = Field(default=1.2, gt=1)


# What an exhausted error budget does to releases: "freeze" makes the canary gate refuse
# promotion while any SLO of the service has none left (slo.engine.freeze), "none" nothing.
ErrorBudgetPolicy = Literal["none", "freeze"]


# The data classification of a tool, for the audit trail (collector.audit.redact.CLASSIFICATIONS):
# a restricted tool never has its argument values recorded, a confidential one at most redacted.
# `mcp-slo proxy --audit-spec` reads it (collector.audit.options.classification_from_spec).
Classification = Literal["public", "internal", "confidential", "restricted"]


class ToolSpec(_Model):
    objectives: tuple[ObjectiveOverride, ...] = ()
    classification: Classification | None = None  # default: the service's


class ServiceSpec(_Model):
    objectives: tuple[ObjectiveOverride, ...] = ()
    tools: dict[str, ToolSpec] = Field(default_factory=dict)
    classification: Classification | None = None  # of its tools not classified themselves
    canary: Canary | None = None
    error_budget_policy: ErrorBudgetPolicy | None = None  # default: defaults.error_budget_policy


class Defaults(_Model):
    objectives: tuple[Objective, ...] = ()
    error_budget_policy: ErrorBudgetPolicy = "none"


class Spec(_Model):
    version: Literal[1] = 1
    buckets: tuple[Annotated[float, Field(gt=0)], ...] = Field(default=names.DEFAULT_BUCKETS, min_length=1)
    defaults: Defaults = Defaults()
    services: dict[str, ServiceSpec] = Field(default_factory=dict)
    alerting: Alerting = Alerting()
    canary: Canary = Canary()
    metrics: str = schema.AUTO  # the metric schema the rules, engine and dashboards read (slo.schema)
    # --- maintenance windows (slo.maintenance) and strictness -------------------------------
    maintenance: tuple[MaintenanceWindow, ...] = ()
    strict: bool = False  # every service, tool and SLO named anywhere must be declared

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, v: str) -> str:
        return schema.check(v)

    @model_validator(mode="before")
    @classmethod
    def _otel_buckets(cls, raw: Any) -> Any:
        """No `buckets` with `metrics: otel`: the conventions' recommended bounds, as an
        OpenTelemetry SDK's histogram has them (auto reads mcp-slo's too: their defaults)."""
        if isinstance(raw, Mapping) and raw.get("metrics") == schema.OTEL and "buckets" not in raw:
            return {**raw, "buckets": semconv.BUCKETS}
        return raw

    @field_validator("buckets")
    @classmethod
    def _buckets(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(a >= b for a, b in zip(v, v[1:])):
            raise ValueError(f"the bucket bounds must be strictly increasing, got {', '.join(f'{b:g}' for b in v)}")
        return v

    @model_validator(mode="after")
    def _check(self) -> Spec:
        _unique("defaults.objectives", [o.name for o in self.defaults.objectives])
        for i, o in enumerate(self.defaults.objectives):
            self._check_threshold(o.threshold, f"defaults.objectives.{i}.threshold")
            self._check_alerts(o.alerts, f"defaults.objectives.{i}.alerts")
        for service, body in self.services.items():
            if not NAME.match(service):
                raise ValueError(f"services: {service[:200]!r} is not a valid service name "
                                 "(letters, digits, '_', '.', ':', '/', '-'; no quotes, braces or spaces)")
            for tool in body.tools:
                if not NAME.match(tool):
                    raise ValueError(f"services.{service}.tools: {tool[:200]!r} is not a valid tool name "
                                     "(letters, digits, '_', '.', ':', '/', '-'; no quotes, braces or spaces)")
            for i, o in enumerate(body.objectives):
                self._check_threshold(o.threshold, f"services.{service}.objectives.{i}.threshold")
                self._check_alerts(o.alerts, f"services.{service}.objectives.{i}.alerts")
            for tool, tool_spec in body.tools.items():
                for i, o in enumerate(tool_spec.objectives):
                    self._check_threshold(o.threshold, f"services.{service}.tools.{tool}.objectives.{i}.threshold")
                    self._check_alerts(o.alerts, f"services.{service}.tools.{tool}.objectives.{i}.alerts")
            # Resolving runs the override checks (kind and target of new objectives, ...).
            self.objectives_for(service)
            for tool in body.tools:
                self.tool_objectives(service, tool)
        return self

    @model_validator(mode="after")
    def _maintenance(self) -> Spec:
        """The windows' names (unique), scopes (valid names; declared ones under `strict`) and
        overlaps: two windows of the same scope and mode must not overlap (recurring ones are
        checked over the next year)."""
        _unique("maintenance", [w.name for w in self.maintenance])
        for i, w in enumerate(self.maintenance):
            where = f"maintenance.{i}"
            for key, pattern, what in (("services", NAME, "service"), ("tools", NAME, "tool"), ("slos", SLO_NAME, "SLO")):
                for name in getattr(w, key):
                    if not pattern.match(name):
                        raise ValueError(f"{where}.{key}: {name[:200]!r} is not a valid {what} name")
            if self.strict:
                self._check_declared(w, where)
        now = time.time()
        found = maintenance.first_overlap(list(self.maintenance), now, now + maintenance.YEAR)
        if found is not None:
            i, j, when = found
            raise ValueError(f"maintenance.{j}: window {self.maintenance[j].name!r} overlaps window "
                             f"{self.maintenance[i].name!r} (maintenance.{i}) of the same scope and mode "
                             f"at {maintenance.rfc3339(when)}")
        return self

    def _check_declared(self, w: MaintenanceWindow, where: str) -> None:
        """`strict: true`: the window names only declared services, tools and SLOs."""
        for service in w.services:
            if service not in self.services:
                raise ValueError(f"{where}.services: unknown service {service!r} (strict: declare it under services)")
            body = self.services[service]
            for tool in w.tools:
                if tool not in body.tools:
                    raise ValueError(f"{where}.tools: unknown tool {tool!r} of service {service!r} "
                                     "(strict: declare it under its tools)")
            known = {o.name for o in self.objectives_for(service)}
            known |= {o.name for tool in body.tools for o in self.tool_objectives(service, tool)}
            for slo in w.slos:
                if slo not in known:
                    raise ValueError(f"{where}.slos: unknown SLO {slo!r} of service {service!r} "
                                     f"(strict: its SLOs are {', '.join(sorted(known)) or 'none'})")

    def _check_alerts(self, alerts: ObjectiveAlerts | None, where: str) -> None:
        """An objective's tier changes name tiers of `alerting.tiers`, enable none disabled
        there (its windows are not recorded) and make valid tiers."""
        tiers = {t.name: t for t in self.alerting.tiers}
        for name, change in (alerts.tiers if alerts else {}).items():
            tier = tiers.get(name)
            if tier is None:
                raise ValueError(f"{where}.tiers: unknown tier {name[:200]!r}; the tiers are "
                                 f"{', '.join(tiers) or 'none'} (alerting.tiers)")
            if change.enabled and not tier.enabled:
                raise ValueError(f"{where}.tiers.{name}: the tier is disabled in alerting.tiers; enable it there "
                                 "and disable it for the SLOs that should not have it")
            try:
                Objective(name="x", kind="availability", target=99, alerts=ObjectiveAlerts(tiers={name: change})
                          ).alert_tier(tier)
            except ValidationError as exc:
                raise ValueError(f"{where}.tiers.{name}: {_message(exc.errors()[0])}") from None

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

    def error_budget_policy_for(self, service: str) -> str:
        """The service's error-budget policy for releases: its own, or the defaults'."""
        body = self.services.get(service)
        own = body.error_budget_policy if body else None
        return own or self.defaults.error_budget_policy


def _duplicates(items: list[str]) -> list[str]:
    return sorted(n for n, count in Counter(items).items() if count > 1)


def _unique(where: str, items: list[str]) -> None:
    dupes = _duplicates(items)
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
        changes = o.model_dump(exclude={"disabled", "alerts"}, exclude_none=True)
        if o.alerts is not None:
            base_alerts = by_name[o.name].alerts.model_dump() if o.name in by_name else {}
            changes["alerts"] = _deep_merge(base_alerts, o.alerts.model_dump(exclude_unset=True))
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


def _deep_merge(base: dict, change: dict) -> dict:
    """`base` with `change` applied key by key, into nested mappings."""
    out = dict(base)
    for key, value in change.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _message(err: Mapping[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    return err["msg"].removeprefix("Value error, ")


def describe(exc: ValidationError, source: str, prefix: str = "", limit: int = 5) -> str:
    """One line per problem: `source: key.path: what is wrong`; `prefix` goes before the
    key path as is (e.g. "spec." for a model validated below the top level). A problem of
    a list or mapping whose item already has one is left out (it follows from it)."""
    lines, reported = [], []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if any(seen[:len(loc)] == loc for seen in reported):
            continue
        reported.append(loc)
        path = (prefix + ".".join(str(p) for p in loc)).rstrip(".: ")
        # Errors of the whole model (loc empty) already start with their key path.
        line = f"{source}: {path}: {_message(err)}" if path else f"{source}: {_message(err)}"
        lines.append(printable(line))
    return "\n".join(lines[:limit])


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


def read_documents(path: str | Path) -> tuple[list[Any], str]:
    """The non-empty YAML documents of a spec file, and the file's name for messages (its
    control characters escaped, so every message stays one line). SpecError when the
    file cannot be read, is not YAML, is nested deeper than MAX_YAML_DEPTH or holds text
    that is not valid Unicode."""
    path = Path(path)
    source = printable(str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{source}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{source}: not a text file (UTF-8)") from None
    try:
        docs = [d for d in yaml.load_all(text, Loader=_BoundedLoader) if d is not None]
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: {yaml_problem(exc)}") from None
    where = _surrogate(docs)
    if where is not None:
        raise SpecError(f"{source}: {where}: not valid Unicode (a lone surrogate, e.g. from a \\ud800 escape)")
    return docs, source


class _TooDeep(yaml.MarkedYAMLError):
    pass


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader refusing documents nested deeper than MAX_YAML_DEPTH (its
    composer recurses once per level, and a 1 KB file nested 500 deep would exhaust the
    interpreter's stack: RecursionError) and a key given twice in a mapping (PyYAML keeps
    the last silently; Prometheus's and Alertmanager's loaders refuse it)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self._depth >= MAX_YAML_DEPTH:
            raise _TooDeep(problem=f"nested deeper than {MAX_YAML_DEPTH} levels",
                           problem_mark=self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key, _ in node.value:  # before merge keys (`<<`) are flattened in: those may be overridden
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if (key.tag, key.value) in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key.value[:100]!r}",
                                                            key.start_mark)
                seen.add((key.tag, key.value))
        return super().construct_mapping(node, deep=deep)


def _surrogate(docs: list[Any]) -> str | None:
    """The key path of the first string (key or value) holding a lone surrogate, which
    no file can be written with; each list and mapping is visited once (aliases share them)."""
    stack: list[tuple[str, Any]] = [(f"document {i + 1}", d) for i, d in enumerate(docs)]
    seen: set[int] = set()
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if any("\ud800" <= c <= "\udfff" for c in item):
                return path
        elif isinstance(item, (list, dict)) and id(item) not in seen:
            seen.add(id(item))
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, value in pairs:
                stack += [(path, key), (f"{path}.{printable(str(key))[:100]}", value)]
    return None


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: where the YAML breaks and why (PyYAML's message spans several)."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    what = "" if isinstance(exc, _TooDeep) else "not valid YAML: "
    return printable(f"{where}{what}{problem}")

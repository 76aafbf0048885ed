"""Which SLIs, objectives, windows and alert tiers a spec needs: the plan that the
Prometheus rules (alerts.rules), the Grafana boards and the engine (slo.evaluate, the
canary judge) work from.

`plan(spec)` is the one place the spec's objectives are resolved (the defaults with each
service's and each tool's overrides applied); everything after it reads the plan, so the
engine resolves the spec once at start, not on every tick.

Services sharing an SLI definition share one scope, so the number of rules and queries
grows with windows and distinct SLI definitions, not with services.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from collector import durations
from slo import promql
from slo import schema as schema_
from slo.promql import SLI, Scope
from slo.spec import Objective, Spec, Tier

WORKBOOK_WINDOW = 30 * 86400  # the tiers' windows are given for a 30-day SLO
MIN_WINDOW = 300  # scaled windows are whole minutes and no shorter than 5m


@dataclass(frozen=True)
class PlannedObjective:
    """An objective and the services (or the tool) it applies to."""

    objective: Objective
    scope: Scope
    schema: str = schema_.AUTO  # the metrics its SLI reads (the spec's `metrics`)

    @property
    def sli(self) -> SLI:
        o = self.objective
        return SLI(slo=o.name, kind=o.kind, methods=o.methods, threshold=o.threshold, scope=self.scope,
                   schema=self.schema)


@dataclass(frozen=True)
class ScaledTier:
    """A tier with its windows (seconds) scaled to one SLO window."""

    tier: Tier
    slo_window: int
    long_window: int
    short_window: int

    @property
    def budget_spent(self) -> float:
        """Share of the SLO window's budget spent over the long window at the tier's burn rate."""
        return self.tier.burn_rate * self.long_window / self.slo_window


@dataclass
class Plan:
    spec: Spec  # for the settings read as they are (alerting, canary)
    # The resolved objectives: a service the spec does not name (found in Prometheus) has the
    # defaults; each named service has its own; each of its tools, the ones the tool lists.
    default_objectives: list[Objective] = field(default_factory=list)
    service_objectives: dict[str, list[Objective]] = field(default_factory=dict)  # in the spec's order
    tool_objectives: dict[str, dict[str, list[Objective]]] = field(default_factory=dict)  # service -> tool -> its own
    # What the rules and queries need: objectives and SLIs grouped into scopes.
    objectives: list[PlannedObjective] = field(default_factory=list)  # one per distinct objective and scope
    slis: list[SLI] = field(default_factory=list)  # one per distinct SLI definition and scope
    slo_windows: list[int] = field(default_factory=list)
    tiers: dict[int, list[ScaledTier]] = field(default_factory=dict)  # SLO window -> tiers

    @property
    def services(self) -> list[str]:
        """The services the spec names."""
        return list(self.service_objectives)

    def objectives_for(self, service: str) -> list[Objective]:
        """A service's objectives, named in the spec or not."""
        return self.service_objectives.get(service, self.default_objectives)

    def tool_objectives_for(self, service: str, tool: str) -> list[Objective]:
        """The objectives a tool of a named service has of its own (none for other tools)."""
        return self.tool_objectives.get(service, {}).get(tool, [])

    @property
    def schema(self) -> str:
        """The metric schema every query reads (slo.schema)."""
        return self.spec.metrics

    @property
    def windows(self) -> list[int]:
        """Every window recorded: the standard ones, the SLO windows and the scaled tier windows."""
        out = set(promql.SHORT_WINDOWS) | set(promql.LONG_WINDOWS) | set(self.slo_windows)
        for tiers in self.tiers.values():
            for t in tiers:
                out |= {t.long_window, t.short_window}
        return sorted(out)


def scale_tiers(tiers: Iterable[Tier], slo_window: float) -> list[ScaledTier]:
    """The enabled tiers with windows scaled from a 30-day SLO to `slo_window`: whole
    minutes, at least 5m (shorter rates would rest on one or two scrapes), the long
    window at least twice the short one."""
    factor = slo_window / WORKBOOK_WINDOW

    def scale(seconds: float) -> int:
        return max(MIN_WINDOW, round(seconds * factor / 60) * 60)

    out = []
    for t in tiers:
        if not t.enabled:
            continue
        short = scale(durations.parse(t.short_window))
        long = max(scale(durations.parse(t.long_window)), 2 * short)
        out.append(ScaledTier(t, int(slo_window), long, short))
    return out


def _by_name(objectives: Iterable[Objective]) -> dict[str, Objective]:
    return {o.name: o for o in objectives}


def _sli_key(o: Objective) -> tuple:
    return (o.kind, o.methods, o.threshold)


def _group(slo: str, default: Objective | None, named: dict[str, Objective | None], key) -> list[tuple[Objective, Scope]]:
    """Scopes for one SLO name: the default covers every service except the named ones whose
    objective differs by `key` (or who have none); named services sharing a key share a scope."""
    out: list[tuple[Objective, Scope]] = []
    if default is not None:
        excluded = tuple(s for s, o in named.items() if o is None or key(o) != key(default))
        out.append((default, Scope(exclude=excluded)))
    shared: dict[object, list[str]] = {}
    first: dict[object, Objective] = {}
    for service, o in named.items():
        if o is None or (default is not None and key(o) == key(default)):
            continue
        shared.setdefault(key(o), []).append(service)
        first.setdefault(key(o), o)
    out += [(first[k], Scope(include=tuple(services))) for k, services in shared.items()]
    return out


def plan(spec: Spec) -> Plan:
    """The spec resolved: every service's and tool's objectives, then their scopes, SLIs,
    windows and tiers (the only call of the spec's `objectives_for` and `tool_objectives`
    outside the spec's own validation: everything else reads the plan's)."""
    p = Plan(spec, default_objectives=list(spec.defaults.objectives),
             service_objectives={s: spec.objectives_for(s) for s in spec.services},
             tool_objectives={s: {t: spec.tool_objectives(s, t) for t in body.tools} for s, body in spec.services.items()})
    defaults = _by_name(p.default_objectives)
    per_service = {s: _by_name(objectives) for s, objectives in p.service_objectives.items()}
    slo_names = list(defaults)
    for objectives in per_service.values():
        slo_names += [n for n in objectives if n not in slo_names]

    for slo in slo_names:
        named = {s: objectives.get(slo) for s, objectives in per_service.items()}
        for o, scope in _group(slo, defaults.get(slo), named, key=lambda o: o):
            p.objectives.append(PlannedObjective(o, scope, spec.metrics))
        for o, scope in _group(slo, defaults.get(slo), named, key=_sli_key):
            p.slis.append(PlannedObjective(o, scope, spec.metrics).sli)
    for service, tools in p.tool_objectives.items():
        for tool, objectives in tools.items():
            for o in objectives:
                planned = PlannedObjective(o, Scope(include=(service,), tool=tool), spec.metrics)
                p.objectives.append(planned)
                p.slis.append(planned.sli)

    p.slo_windows = sorted({int(po.objective.window_seconds) for po in p.objectives})
    p.tiers = {w: scale_tiers(spec.alerting.tiers, w) for w in p.slo_windows}
    return p

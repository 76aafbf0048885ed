"""Prometheus recording and alerting rules from the SLO spec.

A small pipeline: `plan(spec)` resolves which SLI and objective rules the spec needs
(grouping services that share a definition, so the number of rules grows with windows
and distinct SLI definitions, not with services); `rule_groups(spec)` builds the rule
groups; `render(...)` writes them as a Prometheus rule file or a prometheus-operator
`PrometheusRule`. Every expression comes from `slo.promql`.

Groups:
- `mcp-slo-objectives`: per objective, `mcp_slo:objective` (the target as a fraction),
  `mcp_slo:info` (kind, window, threshold) and `mcp_slo:error_budget`, for every service
  Prometheus knows: the defaults reach new services with no configuration.
- `mcp-slo`: the SLI rates per window, error ratios, the remaining error budget, then the
  alerts. One group, because Prometheus evaluates a group's rules in order at the same
  timestamp: the alerts always see this evaluation's rates, never the previous one's.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import yaml

from slo import durations, promql
from slo.promql import SLI, Scope
from slo.spec import Objective, Spec, Tier

BURN_ALERT = "MCPSLOErrorBudgetBurn"
EXHAUSTED_ALERT = "MCPSLOErrorBudgetExhausted"
ABSENT_ALERT = "MCPSLOAbsentData"

OBJECTIVES_GROUP = "mcp-slo-objectives"
SLO_GROUP = "mcp-slo"

WORKBOOK_WINDOW = 30 * 86400  # the tiers' windows are given for a 30-day SLO
MIN_WINDOW = 300  # scaled windows are whole minutes and no shorter than 5m
EXHAUSTED_FOR = "30m"  # the remaining budget must stay at or below zero this long


class RulesError(ValueError):
    """The spec cannot be turned into rules (e.g. an unknown placeholder in a URL template)."""


# --- plan: which SLIs, objectives and windows --------------------------------------------


@dataclass(frozen=True)
class PlannedObjective:
    """An objective and the services (or the tool) it applies to."""

    objective: Objective
    scope: Scope

    @property
    def sli(self) -> SLI:
        o = self.objective
        return SLI(slo=o.name, kind=o.kind, methods=o.methods, threshold=o.threshold, scope=self.scope)


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
    objectives: list[PlannedObjective] = field(default_factory=list)  # one per distinct objective and scope
    slis: list[SLI] = field(default_factory=list)  # one per distinct SLI definition and scope
    slo_windows: list[int] = field(default_factory=list)
    tiers: dict[int, list[ScaledTier]] = field(default_factory=dict)  # SLO window -> tiers
    services: list[str] = field(default_factory=list)  # the services the spec names

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
    p = Plan(services=list(spec.services))
    defaults = _by_name(spec.defaults.objectives)
    per_service = {s: _by_name(spec.objectives_for(s)) for s in spec.services}
    slo_names = list(defaults)
    for objectives in per_service.values():
        slo_names += [n for n in objectives if n not in slo_names]

    for slo in slo_names:
        named = {s: objectives.get(slo) for s, objectives in per_service.items()}
        for o, scope in _group(slo, defaults.get(slo), named, key=lambda o: o):
            p.objectives.append(PlannedObjective(o, scope))
        for o, scope in _group(slo, defaults.get(slo), named, key=_sli_key):
            p.slis.append(PlannedObjective(o, scope).sli)
    for service, body in spec.services.items():
        for tool in body.tools:
            for o in spec.tool_objectives(service, tool):
                planned = PlannedObjective(o, Scope(include=(service,), tool=tool))
                p.objectives.append(planned)
                p.slis.append(planned.sli)

    p.slo_windows = sorted({int(po.objective.window_seconds) for po in p.objectives})
    p.tiers = {w: scale_tiers(spec.alerting.tiers, w) for w in p.slo_windows}
    return p


# --- links and templates -----------------------------------------------------------------


def _go_literal(text: str) -> str:
    """`text` as literal text in a Go template (Prometheus expands alert labels and
    annotations): a `{` could open an action, so it is printed by one."""
    return text.replace("{", '{{ "{" }}')


def link(template: str, where: str, **fixed: str) -> str:
    """A spec URL template with {service} and {slo} as a Prometheus annotation template:
    placeholders become the alert's labels unless given in `fixed`."""
    out = []
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise RulesError(f"{where}: {template!r} is not a valid template: {exc}") from None
    for literal, name, spec, conversion in parts:
        out.append(_go_literal(literal))
        if name is None:
            continue
        if name not in ("service", "slo") or spec or conversion:
            raise RulesError(f"{where}: unknown placeholder {{{name}}} in {template!r}; use {{service}} and {{slo}}")
        out.append(_go_literal(fixed[name]) if name in fixed else f"{{{{ $labels.{name} }}}}")
    return "".join(out)


def _who() -> str:
    return "{{ $labels.service }}{{ with $labels.tool }} tool {{ . }}{{ end }}"


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"


# --- rule groups -------------------------------------------------------------------------


def _record(name: str, expr: str, **labels: str) -> dict:
    rule = {"record": name, "expr": expr}
    if labels:
        rule["labels"] = dict(labels)
    return rule


def objective_rules(p: Plan) -> list[dict]:
    rules = []
    for po in p.objectives:
        o = po.objective
        rules.append(_record(promql.OBJECTIVE, promql.objective(po.scope, o.objective), slo=o.name))
        info = {"slo": o.name, "kind": o.kind, "window": promql.duration(o.window_seconds)}
        if o.threshold is not None:
            info["threshold"] = promql.le(o.threshold)
        rules.append(_record(promql.INFO, promql.discovered(po.scope), **info))
    rules.append(_record(promql.ERROR_BUDGET, promql.error_budget()))
    return rules


def sli_rules(p: Plan) -> list[dict]:
    rules = []
    for w in p.windows:
        if w <= promql.LONGEST_RAW_WINDOW:
            rules += [_record(promql.recorded(promql.SLI_TOTAL, w), sli.total_rate(w), slo=sli.slo) for sli in p.slis]
            rules += [_record(promql.recorded(promql.SLI_BAD, w), sli.bad_rate(w), slo=sli.slo) for sli in p.slis]
        else:
            rules += [_record(promql.recorded(name, w), promql.averaged_rate(name, w))
                      for name in (promql.SLI_TOTAL, promql.SLI_BAD)]
    rules += [_record(promql.recorded(promql.ERROR_RATIO, w), promql.error_ratio(w)) for w in p.windows]
    rules += [_record(promql.BUDGET_REMAINING, promql.budget_remaining(w, promql.duration(w))) for w in p.slo_windows]
    return rules


def alert_rules(spec: Spec, p: Plan) -> list[dict]:
    a = spec.alerting
    extra = {k: _go_literal(v) for k, v in a.labels.items()}
    links = {"runbook_url": link(a.runbook_url, "alerting.runbook_url"),
             "dashboard_url": link(a.dashboard_url, "alerting.dashboard_url")}
    rules = []
    for w in p.slo_windows:
        window = promql.duration(w)
        for st in p.tiers[w]:
            t = st.tier
            long_, short = promql.duration(st.long_window), promql.duration(st.short_window)
            rules.append({
                "alert": BURN_ALERT,
                "expr": promql.burn_alert(burn=t.burn_rate, long_window=st.long_window, short_window=st.short_window,
                                          slo_window=window, min_events=a.min_events),
                "for": t.for_,
                "labels": {"severity": t.severity, "tier": t.name, "window": window, **extra},
                "annotations": {
                    "summary": f"{_who()}: {{{{ $labels.slo }}}} error budget burning over "
                               f"{promql.number(t.burn_rate)}x ({t.severity}, {t.name})",
                    "description": (
                        f"The {{{{ $labels.slo }}}} SLO of {_who()} has burned its {window} error budget at "
                        f"{{{{ $value | printf \"%.1f\" }}}}x the sustainable rate over the last {long_}, and at over "
                        f"{promql.number(t.burn_rate)}x over the last {short}. At {promql.number(t.burn_rate)}x, "
                        f"{_percent(st.budget_spent)} of the budget goes in {long_}."),
                    **links,
                },
            })
        if a.budget_exhausted_alert:
            rules.append({
                "alert": EXHAUSTED_ALERT,
                "expr": promql.budget_exhausted(slo_window=w, min_events=a.min_events),
                "for": EXHAUSTED_FOR,
                "labels": {"severity": "ticket", "window": window, **extra},  # never a page: a young service's window holds little
                "annotations": {
                    "summary": f"{_who()}: {{{{ $labels.slo }}}} error budget of the last {window} is spent",
                    "description": (
                        f"The {{{{ $labels.slo }}}} SLO of {_who()} has spent its whole error budget for the last "
                        f"{window} ({{{{ $value | humanizePercentage }}}} remaining). Freeze risky changes until it "
                        "recovers; the window may hold little traffic for a young service."),
                    **links,
                },
            })
    for service in p.services:
        rules.append({
            "alert": ABSENT_ALERT,
            "expr": promql.absent_data(service),
            "for": a.absent_for,
            "labels": {"severity": "ticket", **extra},
            "annotations": {
                "summary": "{{ $labels.service }}: no MCP metrics in Prometheus",
                "description": (f"Prometheus has had no MCP operation series for {{{{ $labels.service }}}} for "
                                f"{a.absent_for}: its SLOs cannot be evaluated. Is the exporter or proxy running, "
                                "and is it scraped?"),
                "runbook_url": link(a.runbook_url, "alerting.runbook_url", slo="absent-data"),
                "dashboard_url": link(a.dashboard_url, "alerting.dashboard_url", slo="absent-data"),
            },
        })
    return rules


def merge(rules: Iterable[dict]) -> list[dict]:
    """One rule per output name and static labels: rules that differ only in the services
    they select are joined with `or` (their series are disjoint), in the place of the first.
    Prometheus warns about two rules writing the same series name and labels, and one rule
    per SLO and window keeps the count independent of how many scopes the spec has."""
    out: list[dict] = []
    exprs: list[list[str]] = []
    index: dict[tuple, int] = {}
    for rule in rules:
        key = (rule.get("record"), rule.get("alert"), tuple(sorted(rule.get("labels", {}).items())))
        if key not in index:
            index[key] = len(out)
            out.append(dict(rule))
            exprs.append([rule["expr"]])
            continue
        first = out[index[key]]
        if {k: v for k, v in first.items() if k != "expr"} != {k: v for k, v in rule.items() if k != "expr"}:
            raise RulesError(f"rules for {key[0] or key[1]} with labels {dict(key[2])} differ beyond their expression")
        exprs[index[key]].append(rule["expr"])
    for rule, parts in zip(out, exprs):
        if len(parts) > 1:
            rule["expr"] = "\nor\n".join(f"(\n  {_indent(e)}\n)" for e in parts)
    return out


def _indent(expr: str) -> str:
    return expr.replace("\n", "\n  ")


def rule_groups(spec: Spec, interval: str = "1m") -> list[dict]:
    p = plan(spec)
    return [
        {"name": OBJECTIVES_GROUP, "interval": interval, "rules": merge(objective_rules(p))},
        {"name": SLO_GROUP, "interval": interval, "rules": merge([*sli_rules(p), *alert_rules(spec, p)])},
    ]


BACKFILL_GROUP = "mcp-slo-backfill"


def backfill_groups(spec: Spec, interval: str = "1m") -> list[dict]:
    """The recording rules the long windows average (the base-window SLI rates) and the
    objective series, for `promtool tsdb create-blocks-from rules`: every expression reads
    only raw metrics, because promtool queries Prometheus for each rule on its own and never
    sees the series it is backfilling (the bad rate's `or 0 * total` inlines the total).
    `interval` should be the live rules' interval: the long windows average samples, and
    backfilled samples denser or sparser than live ones would weigh differently."""
    p = plan(spec)
    w = promql.BASE_WINDOW
    sli = []
    for s in p.slis:
        total_selector = selector_of_total(s, w)
        bad = s.bad_rate(w).replace(total_selector, f"({s.total_rate(w)})")
        sli.append(_record(promql.recorded(promql.SLI_TOTAL, w), s.total_rate(w), slo=s.slo))
        sli.append(_record(promql.recorded(promql.SLI_BAD, w), bad, slo=s.slo))
    objectives = [r for r in objective_rules(p) if r["record"] != promql.ERROR_BUDGET]  # that one reads a record
    return [{"name": BACKFILL_GROUP, "interval": interval, "rules": merge([*objectives, *sli])}]


def selector_of_total(sli: SLI, window: float) -> str:
    """The recorded total an SLI's bad rate refers to."""
    return promql.selector(promql.recorded(promql.SLI_TOTAL, window), sli.scope.recorded_matchers(sli.slo))


# --- writers -------------------------------------------------------------------------------

FORMATS = ("prometheus", "prometheus-operator")
FILENAMES = {"prometheus": "mcp-slo.yml", "prometheus-operator": "mcp-slo-prometheusrule.yaml"}


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(document: object) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100000,
                     allow_unicode=True)


def render(groups: Sequence[dict], fmt: str = "prometheus", *, source: str = "the SLO spec", name: str = "mcp-slo",
           namespace: str | None = None, labels: dict[str, str] | None = None) -> str:
    header = f"# Generated by `mcp-slo rules` from {source}. Do not edit: change the spec and regenerate.\n"
    if fmt == "prometheus":
        return header + dump({"groups": list(groups)})
    if fmt == "prometheus-operator":
        metadata: dict = {"name": name}
        if namespace:
            metadata["namespace"] = namespace
        metadata["labels"] = {"app.kubernetes.io/name": "mcp-slo", **(labels or {})}
        return header + dump({"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                              "metadata": metadata, "spec": {"groups": list(groups)}})
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")

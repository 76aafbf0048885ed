"""Prometheus recording and alerting rules from the SLO spec.

A small pipeline: `slo.plan.plan(spec)` resolves which SLI and objective rules the spec
needs (grouping services that share a definition, so the number of rules grows with
windows and distinct SLI definitions, not with services); `rule_groups(spec)` builds the rule
groups; `render(...)` writes them as a Prometheus rule file or a prometheus-operator
`PrometheusRule`. Every expression comes from `slo.promql`.

Groups:
- `mcp-slo-objectives`: per objective, `mcp_slo:objective` (the target as a fraction),
  `mcp_slo:info` (kind, window, threshold) and `mcp_slo:error_budget`, for every service
  Prometheus knows: the defaults reach new services with no configuration.
- `mcp-slo`: the SLI rates per window, error ratios, the remaining error budget, then the
  alerts. One group, because Prometheus evaluates a group's rules in order at the same
  timestamp: the alerts always see this evaluation's rates, never the previous one's.
- `mcp-slo-hourly` (interval 1h, when a window is longer than 3d): samples the recorded
  1h rates once an hour, for the long windows to average (see `slo.promql`).

Maintenance windows (the engine's `mcp_slo_maintenance` gauge): the burn-rate and
budget-exhausted alerts of an SLO series are held back while a window of either mode covers
it, the absent-data ticket of a service while one covers a service-level series of it; an
`exclude` window's events leave the recorded SLI rates (`SLI.recorded_rate`), and through
them the error ratios and the budget left. docs/alerting.md has the arithmetic and limits.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import yaml

from alerts.output import comment
from slo import promql
from slo.plan import Plan, PlannedObjective, ScaledTier, plan
from slo.promql import SLI
from slo.spec import Alerting, Objective, Spec, url_template

BURN_ALERT = "MCPSLOErrorBudgetBurn"
EXHAUSTED_ALERT = "MCPSLOErrorBudgetExhausted"
ABSENT_ALERT = "MCPSLOAbsentData"
CANARY_ALERT = "MCPCanaryRegression"  # from the engine's mcp_canary_verdict; routed to the release receiver
CANARY_FOR = "2m"  # the rollback verdict must hold this long (a few engine ticks)

OBJECTIVES_GROUP = "mcp-slo-objectives"
SLO_GROUP = "mcp-slo"
HOURLY_GROUP = "mcp-slo-hourly"
HOURLY_INTERVAL = promql.duration(promql.HOURLY_WINDOW)  # one sample per window: they tile time

TUNED_FOR = "tuned_for"  # the label telling apart an SLO's burn alerts with its own `for` or links
EXHAUSTED_FOR = "30m"  # the remaining budget must stay at or below zero this long


class RulesError(ValueError):
    """The spec cannot be turned into rules (e.g. an unknown placeholder in a URL template)."""


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
        parts = url_template(template)  # the spec checked it already: for specs built in code
    except ValueError as exc:
        raise RulesError(f"{where}: {exc}") from None
    for literal, name in parts:
        out.append(_go_literal(literal))
        if name is not None:
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
        rules.append(_record(promql.OBJECTIVE, promql.objective(po.scope, o.objective, p.schema), slo=o.name))
        info = {"slo": o.name, "kind": o.kind, "window": promql.duration(o.window_seconds)}
        if o.threshold is not None:
            info["threshold"] = promql.le(o.threshold)
        rules.append(_record(promql.INFO, promql.discovered(po.scope, p.schema), **info))
    rules.append(_record(promql.ERROR_BUDGET, promql.error_budget()))
    return rules


def sli_rules(p: Plan) -> list[dict]:
    rules = []
    for w in p.windows:
        if w <= promql.LONGEST_RAW_WINDOW:
            # leaving out exclude maintenance windows: the 5m rates first, the longer ones average them then
            for name in (promql.SLI_TOTAL, promql.SLI_BAD):
                rules += [_record(promql.recorded(name, w), sli.recorded_rate(name, w), slo=sli.slo) for sli in p.slis]
        else:
            rules += [_record(promql.recorded(name, w), promql.averaged_rate(name, w))
                      for name in (promql.SLI_TOTAL, promql.SLI_BAD)]
    rules += [_record(promql.recorded(promql.ERROR_RATIO, w), promql.error_ratio(w)) for w in p.windows]
    rules += [_record(promql.BUDGET_REMAINING, promql.budget_remaining(w, promql.duration(w))) for w in p.slo_windows]
    return rules


def needs_hourly(p: Plan) -> bool:
    return max(p.windows) > promql.LONGEST_BASE_WINDOW


def hourly_rules() -> list[dict]:
    """The hourly averages of the 5m rates for the windows longer than 3d, and when."""
    return [*(_record(promql.hourly(name), promql.hourly_average(name)) for name in (promql.SLI_TOTAL, promql.SLI_BAD)),
            _record(promql.HOURLY_TIME, promql.now())]


def _links(a: Alerting, o: Objective) -> dict[str, str]:
    """An objective's runbook and dashboard annotations: its own templates, else the spec's."""
    alerts = o.alerts
    return {"runbook_url": link(alerts.runbook_url or a.runbook_url, f"{o.name}.alerts.runbook_url"),
            "dashboard_url": link(alerts.dashboard_url or a.dashboard_url, f"{o.name}.alerts.dashboard_url")}


def _tuned_for(pos: list[PlannedObjective]) -> str:
    """The SLOs of `pos` as the TUNED_FOR label has them: service[/tool]:slo, or *:slo for the
    services no other scope names."""
    def who(po: PlannedObjective) -> str:
        sc = po.scope
        return ("|".join(sc.include) or "*") + (f"/{sc.tool}" if sc.tool else "") + f":{po.objective.name}"

    return ",".join(who(po) for po in pos)


def _selections(objectives: list[PlannedObjective], window: str, setting) -> list[tuple[object, str, str | None]]:
    """(setting, the SLOs it covers as a `promql.slo_selection`, their TUNED_FOR label or
    None) for every distinct `setting(objective)` of `objectives` (those of one SLO window)
    but None (no alert): one rule per distinct setting, not per SLO. The most common setting
    covers every SLO of the window but the others (no TUNED_FOR), so a spec without per-SLO
    changes has one rule per tier."""
    groups: dict[object, list[PlannedObjective]] = {}
    for po in objectives:
        groups.setdefault(setting(po.objective), []).append(po)
    if not groups:
        return []
    common = max(groups, key=lambda k: len(groups[k]))

    def scopes(pos: list[PlannedObjective]) -> list[list[str]]:
        return [po.scope.recorded_matchers(po.objective.name) for po in pos]

    out = []
    for key, pos in groups.items():
        if key is None:
            continue
        if key == common:
            others = [other for k, group in groups.items() if k != common for other in group]
            out.append((key, promql.slo_selection(window, scopes(others), rest=True), None))
        else:
            out.append((key, promql.slo_selection(window, scopes(pos)), _tuned_for(pos)))
    return out


def _tell_apart(rules: list[tuple[dict, str | None]]) -> list[dict]:
    """The rules, those with the same alert and labels as another (an SLO's own `for` or
    links) labelled TUNED_FOR: promtool flags rules alike but for their expression."""
    count: dict[tuple, int] = {}
    for rule, _ in rules:
        key = (rule["alert"], tuple(sorted(rule["labels"].items())))
        count[key] = count.get(key, 0) + 1
    for rule, tuned in rules:
        if tuned is not None and count[rule["alert"], tuple(sorted(rule["labels"].items()))] > 1:
            rule["labels"][TUNED_FOR] = tuned
    return [rule for rule, _ in rules]


def burn_alert_rules(spec: Spec, p: Plan, w: int) -> list[dict]:
    """The burn-rate alerts of the SLOs with the window `w`: per tier, one rule per distinct
    setting (the tier as each objective's alerts change it, and its links)."""
    a = spec.alerting
    window = promql.duration(w)
    objectives = [po for po in p.objectives if po.objective.window_seconds == w]
    rules = []
    for st in p.tiers[w]:
        long_, short = promql.duration(st.long_window), promql.duration(st.short_window)

        def setting(o: Objective, st: ScaledTier = st) -> tuple | None:
            t = o.alert_tier(st.tier)
            return None if t is None else (t, tuple(_links(a, o).items()))

        alike = []
        for (t, links), slos, tuned in _selections(objectives, window, setting):
            alike.append(({
                "alert": BURN_ALERT,
                "expr": promql.held_back(promql.burn_alert(burn=t.burn_rate, long_window=st.long_window,
                                                           short_window=st.short_window, slos=slos,
                                                           min_events=a.min_events, z=a.z)),
                "for": t.for_,
                "labels": {"severity": t.severity, "tier": t.name, "window": window,
                           **{k: _go_literal(v) for k, v in (a.labels | t.labels).items()}},
                "annotations": {
                    "summary": f"{_who()}: {{{{ $labels.slo }}}} error budget burning over "
                               f"{promql.number(t.burn_rate)}x ({t.severity}, {t.name})",
                    "description": (
                        f"The {{{{ $labels.slo }}}} SLO of {_who()} has burned its {window} error budget at "
                        f"{{{{ $value | printf \"%.1f\" }}}}x the sustainable rate over the last {long_}, and at over "
                        f"{promql.number(t.burn_rate)}x over the last {short}. At {promql.number(t.burn_rate)}x, "
                        f"{_percent(st.budget_spent)} of the budget goes in {long_}."),
                    **dict(links),
                },
            }, tuned))
        rules += _tell_apart(alike)
    return rules


def exhausted_alert_rules(spec: Spec, p: Plan, w: int) -> list[dict]:
    """The budget-exhausted tickets of the SLOs with the window `w` whose alerts are on."""
    a = spec.alerting
    if not a.budget_exhausted_alert:
        return []
    window = promql.duration(w)
    objectives = [po for po in p.objectives if po.objective.window_seconds == w]

    def setting(o: Objective) -> tuple | None:
        return tuple(_links(a, o).items()) if o.alerts.enabled else None

    return _tell_apart([({
        "alert": EXHAUSTED_ALERT,
        "expr": promql.held_back(promql.budget_exhausted(slo_window=w, min_events=a.min_events, slos=slos)),
        "for": EXHAUSTED_FOR,
        "labels": {"severity": "ticket", "window": window, **_extra(a)},  # never a page: a young service's window holds little
        "annotations": {
            "summary": f"{_who()}: {{{{ $labels.slo }}}} error budget of the last {window} is spent",
            "description": (
                f"The {{{{ $labels.slo }}}} SLO of {_who()} has spent its whole error budget for the last "
                f"{window} ({{{{ $value | humanizePercentage }}}} remaining). Freeze risky changes until it "
                "recovers; the window may hold little traffic for a young service."),
            **dict(links),
        },
    }, tuned) for links, slos, tuned in _selections(objectives, window, setting)])


def _extra(a: Alerting) -> dict[str, str]:
    return {k: _go_literal(v) for k, v in a.labels.items()}


def alert_rules(spec: Spec, p: Plan) -> list[dict]:
    a = spec.alerting
    extra = _extra(a)
    rules = []
    for w in p.slo_windows:
        rules += burn_alert_rules(spec, p, w)
        rules += exhausted_alert_rules(spec, p, w)
    rules.append({
        "alert": CANARY_ALERT,
        "expr": promql.canary_rollback(),
        "for": CANARY_FOR,
        "labels": {"severity": "release", **extra},  # routed to the release managers, never paged
        "annotations": {
            "summary": "{{ $labels.service }}: roll back canary {{ $labels.canary }} (baseline {{ $labels.baseline }})",
            "description": ("The canary judge of the mcp-slo engine finds {{ $labels.canary }} of {{ $labels.service }} "
                            f"worse than {{{{ $labels.baseline }}}} for {CANARY_FOR}: see its evidence at "
                            "/api/v1/canaries/{{ $labels.service }} of the engine."),
            "runbook_url": link(a.runbook_url, "alerting.runbook_url", slo="canary"),
            "dashboard_url": link(a.dashboard_url, "alerting.dashboard_url", slo="canary"),
        },
    })
    for service in p.services:
        rules.append({
            "alert": ABSENT_ALERT,
            "expr": promql.service_held_back(promql.absent_data(service, p.schema), service),
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
        if "alert" in rule:  # alerts of the same labels but their own `for` or links stay apart (no series clash)
            key += (json.dumps({k: v for k, v in rule.items() if k != "expr"}, sort_keys=True),)
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
    groups = [
        {"name": OBJECTIVES_GROUP, "interval": interval, "rules": merge(objective_rules(p))},
        {"name": SLO_GROUP, "interval": interval, "rules": merge([*sli_rules(p), *alert_rules(spec, p)])},
    ]
    if needs_hourly(p):
        groups.append({"name": HOURLY_GROUP, "interval": HOURLY_INTERVAL, "rules": hourly_rules()})
    return groups


BACKFILL_GROUP = "mcp-slo-backfill"


def backfill_groups(spec: Spec, interval: str = "1m") -> list[dict]:
    """The recording rules the long windows read (the base-window SLI rates and their
    hourly averages; the 30m and 1h rates their time since the last hour reads, one window
    back too) and the objective series, for `promtool tsdb create-blocks-from
    rules`, which steps each group at its own interval: every expression reads only raw
    metrics, because promtool queries Prometheus for each rule on its own and never sees
    the series it is backfilling (the bad rate's `or 0 * total` inlines the total; the
    hourly average is a subquery). `interval` should be the live rules' interval: the
    long windows average samples, and backfilled samples denser or sparser than live
    ones would weigh differently."""
    p = plan(spec)
    objectives = [r for r in objective_rules(p) if r["record"] != promql.ERROR_BUDGET]  # that one reads a record
    base, hourly = [], []
    for w in promql.SINCE_WINDOWS if needs_hourly(p) else (promql.BASE_WINDOW,):
        for name, slo, expr in _raw_rates(p, w):
            base.append(_record(promql.recorded(name, w), expr, slo=slo))
            if w == promql.BASE_WINDOW:
                average = f"avg_over_time((\n  {_indent(expr)}\n)[{promql.duration(promql.HOURLY_WINDOW)}:{interval}])"
                hourly.append(_record(promql.hourly(name), average, slo=slo))
    groups = [{"name": BACKFILL_GROUP, "interval": interval, "rules": merge([*objectives, *base])}]
    if needs_hourly(p):
        groups.append({"name": f"{BACKFILL_GROUP}-hourly", "interval": HOURLY_INTERVAL,
                       "rules": merge([*hourly, _record(promql.HOURLY_TIME, promql.now())])})
    return groups


def _raw_rates(p: Plan, w: int) -> Iterable[tuple[str, str, str]]:
    """(SLI_TOTAL or SLI_BAD, slo, expression) of the rates over `w` from the raw metrics alone.
    The base window's leave `exclude` maintenance windows out as the live rules do; the
    longer ones cannot (the live rules average the recorded 5m rates for that) and count
    every event: they only fill the time since the last hourly sample."""
    for s in p.slis:
        if w == promql.BASE_WINDOW:
            total, bad = s.recorded_rate(promql.SLI_TOTAL, w), s.recorded_rate(promql.SLI_BAD, w)
        else:
            total, bad = s.total_rate(w), s.bad_rate(w)
        yield promql.SLI_TOTAL, s.slo, total
        yield promql.SLI_BAD, s.slo, bad.replace(selector_of_total(s, w), f"({s.total_rate(w)})")


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
    header = comment(f"Generated by `mcp-slo rules` from {source}. Do not edit: change the spec and regenerate.")
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

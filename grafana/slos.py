"""The SLO overview (every service's SLOs at a glance) and the SLO detail (one service's SLIs,
budget and burn rates against each alert tier) dashboards.

The values over the SLO window (SLI, budget remaining, status) are the engine's, which reads the
raw counters for windows the recording rules have not covered yet; the curves over time are the
recording rules', the series the alerts fire on. The tiers' thresholds come from the spec's plan.
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import dashboard

from alerts import rules
from collector import names
from grafana import frame
from grafana.panels import (WIDTH, Query, bargauge_panel, datasource_variable, label_variable, matchers,
                            query_variable, stat_panel, table_panel, thresholds, timeseries_panel, value_names)
from slo import promql
from slo.canary.judge import ROLLBACK
from slo.evaluate import CRITICAL, EXHAUSTED, NO_DATA, OK, STATUS_CODES, WARNING
from slo.plan import Plan, ScaledTier

SLO_ALERTS = (rules.BURN_ALERT, rules.EXHAUSTED_ALERT, rules.ABSENT_ALERT, rules.CANARY_ALERT)
ACTIVE = ("firing", "pending")
SEVERITY_COLORS = {"page": "red", "ticket": "orange"}
STATUS_COLORS = {OK: "green", WARNING: "orange", CRITICAL: "red", EXHAUSTED: "dark-red", NO_DATA: "gray"}
BUDGET_COLORS = thresholds("red", (0, "orange"), (0.25, "green"))  # overspent, under a quarter left, fine
SLI_WINDOW = 3600  # the SLI curve's window: smooth enough, still shows an incident within minutes
EVENTS_WINDOW = promql.BASE_WINDOW
SLO_LEGEND = "{{service}} {{tool}} {{slo}}"
BURN_UNIT = "suffix:x"  # a burn rate of 14.4 reads "14.4x"


def tier_lines(tiers: Sequence[ScaledTier]) -> dashboard.ThresholdsConfig:
    """Each tier's burn rate as a line, red for a page, orange for a ticket (a page wins a tie)."""
    colors: dict[float, str] = {}
    for st in sorted(tiers, key=lambda st: st.tier.severity != "page"):
        colors.setdefault(st.tier.burn_rate, SEVERITY_COLORS[st.tier.severity])
    return thresholds("green", *colors.items())


def alerts_table(selected: list[str], width: int = WIDTH):
    return table_panel(
        "Alerts", "mcp-slo's alerts that are firing, or pending (their condition holds, not yet for long enough).",
        [Query(promql.grafana_alerts(SLO_ALERTS, ACTIVE, selected), instant=True, table=True)],
        hidden=("Time", "Value", "__name__"), width=width, height=8)


# --- overview ------------------------------------------------------------------------------


def overview(p: Plan, *, source: str, dash_url: str) -> dashboard.Dashboard:
    selected = matchers(("service", "service", True))
    d = frame.new(frame.OVERVIEW, "Every service's SLOs: the engine's view over the SLO window, the rules' burn rates.",
                  source=source, time_from="now-24h")
    d = d.with_variable(datasource_variable()).with_variable(
        label_variable("service", "Service", names.OPERATIONS_TOTAL, "service", multi=True, schema=p.schema))
    d = d.links([*frame.between_dashboards(frame.OVERVIEW), *frame.to_app(dash_url, one_service=False)])

    breaching = promql.grafana_current(promql.ENGINE_STATUS, [*selected, promql.one_of("status", (CRITICAL, EXHAUSTED))])
    warning = promql.grafana_current(promql.ENGINE_STATUS, [*selected, promql.matcher("status", "=", WARNING)])
    rollbacks = promql.grafana_current(promql.CANARY_VERDICT, [*selected, promql.matcher("verdict", "=", ROLLBACK)])
    d = d.with_panel(stat_panel("SLOs critical or exhausted", "Burning budget fast enough to page, or out of budget.",
                                [Query(promql.grafana_count(breaching), "SLOs", instant=True)], unit="none",
                                colors=thresholds("green", (1, "red"))))
    d = d.with_panel(stat_panel("SLOs at warning", "Burning budget fast enough for a ticket.",
                                [Query(promql.grafana_count(warning), "SLOs", instant=True)], unit="none",
                                colors=thresholds("green", (1, "orange"))))
    d = d.with_panel(stat_panel("Firing alerts", "mcp-slo's alerts firing now.",
                                [Query(promql.grafana_count(promql.grafana_alerts(SLO_ALERTS, ("firing",), selected)),
                                       "alerts", instant=True)], unit="none", colors=thresholds("green", (1, "red"))))
    d = d.with_panel(stat_panel("Canaries to roll back", "Canaries the engine's judge says to roll back.",
                                [Query(promql.grafana_count(rollbacks), "canaries", instant=True)], unit="none",
                                colors=thresholds("green", (1, "red"))))

    slos = table_panel(
        "SLOs", "Per SLO over its window, as the engine evaluated it last. A row links to its service's detail.",
        [Query(promql.grafana_engine(promql.ENGINE_OBJECTIVE, selected), instant=True, table=True),
         Query(promql.grafana_engine(promql.ENGINE_SLI, selected), instant=True, table=True),
         Query(promql.grafana_engine(promql.ENGINE_BUDGET_REMAINING, selected), instant=True, table=True)],
        columns={"Value #A": "objective", "Value #B": "SLI", "Value #C": "budget remaining"}, height=9,
        unit="percentunit", decimals=3, links=frame.service_row_links(dash_url))
    d = d.with_panel(slos)

    d = d.with_panel(bargauge_panel(
        "Error budget remaining", "Share of the SLO window's error budget left (below 0: overspent).",
        [Query(promql.grafana_budget_remaining(selected), SLO_LEGEND, instant=True)], unit="percentunit",
        colors=BUDGET_COLORS, min_value=-1, max_value=1))
    tiers = p.tiers[p.slo_windows[0]] if p.slo_windows else []
    if tiers:  # the fastest tier of the first SLO window: what pages first
        window, fastest = promql.duration(tiers[0].slo_window), min(tiers, key=lambda st: st.long_window)
        d = d.with_panel(timeseries_panel(
            f"Burn rate over {promql.duration(fastest.long_window)}",
            f"How many times faster than sustainable the error budget burns, with every alert tier of the "
            f"{window} SLOs as a line (red: page, orange: ticket).",
            [Query(promql.grafana_burn_rate(fastest.long_window, window, selected), SLO_LEGEND)],
            unit=BURN_UNIT, min_value=0, lines=tier_lines(tiers)))
    return d.with_panel(alerts_table(selected))


# --- detail --------------------------------------------------------------------------------


def detail(p: Plan, *, source: str, dash_url: str) -> dashboard.Dashboard:
    service = promql.grafana_variable("service", "service")
    selected = [service, promql.grafana_variable("slo", "slo", multi=True)]
    d = frame.new(frame.DETAIL, "One service's SLOs: SLIs, error budget, and burn rates against each alert tier.",
                  source=source, time_from="now-24h")
    d = (d.with_variable(datasource_variable())
         .with_variable(label_variable("service", "Service", names.OPERATIONS_TOTAL, "service", multi=False,
                                       schema=p.schema))
         .with_variable(query_variable("slo", "SLO", promql.grafana_label_values(promql.OBJECTIVE, "slo", [service]),
                                       multi=True)))
    d = d.links([*frame.between_dashboards(frame.DETAIL), *frame.to_app(dash_url, one_service=True)])

    legend = "{{tool}} {{slo}}"
    d = d.with_row(dashboard.Row("Now, over the SLO window"))
    d = d.with_panel(stat_panel("SLI", "The engine's SLI over each SLO's window.",
                                [Query(promql.grafana_engine(promql.ENGINE_SLI, selected), legend, instant=True)],
                                unit="percentunit", decimals=3, colors=thresholds("blue"), width=8))
    d = d.with_panel(stat_panel("Error budget remaining", "Share of the error budget left (below 0: overspent).",
                                [Query(promql.grafana_budget_remaining(selected), legend, instant=True)],
                                unit="percentunit", decimals=1, colors=BUDGET_COLORS, width=8))
    d = d.with_panel(stat_panel(
        "Status", "The engine's status of each SLO: critical burns fast enough to page, warning for a ticket.",
        [Query(promql.grafana_one_hot(promql.ENGINE_STATUS, "status", STATUS_CODES, selected), legend, instant=True)],
        unit="none", colors=thresholds("blue"), mappings=value_names(STATUS_CODES, STATUS_COLORS), width=8))

    d = d.with_row(dashboard.Row("Over time, as the recording rules see it"))
    d = d.with_panel(timeseries_panel(
        f"SLI over {promql.duration(SLI_WINDOW)} and objective", "1 - the recorded error ratio, beside the objective.",
        [Query(promql.grafana_sli(SLI_WINDOW, selected), legend),
         Query(promql.selector(promql.OBJECTIVE, selected), f"objective {legend}")], unit="percentunit"))
    d = d.with_panel(timeseries_panel(
        "Error budget remaining", "Share of the SLO window's error budget left (below 0: overspent).",
        [Query(promql.grafana_budget_remaining(selected), legend)], unit="percentunit", lines=BUDGET_COLORS))
    d = d.with_panel(timeseries_panel(
        f"Events per second ({promql.duration(EVENTS_WINDOW)})", "The SLIs' valid and bad events, as recorded.",
        [Query(promql.selector(promql.recorded(promql.SLI_TOTAL, EVENTS_WINDOW), selected), f"valid {legend}"),
         Query(promql.selector(promql.recorded(promql.SLI_BAD, EVENTS_WINDOW), selected), f"bad {legend}")],
        unit="reqps", min_value=0))
    d = d.with_panel(alerts_table([service], width=12))

    for window in p.slo_windows:
        name = promql.duration(window)
        d = d.with_row(dashboard.Row(f"Burn rates of the {name} SLOs, against each alert tier"))
        for st in p.tiers[window]:
            long_, short = promql.duration(st.long_window), promql.duration(st.short_window)
            t = st.tier
            d = d.with_panel(timeseries_panel(
                f"{t.name}: {promql.number(t.burn_rate)}x over {long_} and {short} ({t.severity})",
                f"{rules.BURN_ALERT} fires when both windows burn over {promql.number(t.burn_rate)}x for {t.for_}.",
                [Query(promql.grafana_burn_rate(st.long_window, name, selected), f"{long_} {legend}"),
                 Query(promql.grafana_burn_rate(st.short_window, name, selected), f"{short} {legend}")],
                unit=BURN_UNIT, min_value=0, lines=thresholds("green", (t.burn_rate, SEVERITY_COLORS[t.severity]))))
    return d

"""The canary comparison dashboard: one service's baseline against its canary, the engine's
verdict and score beside the errors and latencies they rest on.

Baseline and canary are the versions the engine's judge compares (its mcp_canary_* gauges);
each version is a query of its own with an exact `version="..."` matcher.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from collector import names
from grafana import frame
from grafana.panels import (Query, datasource_variable, label_variable, query_variable, stat_panel, table_panel, thresholds,
                            timeseries_panel, value_names)
from slo import promql
from slo.canary.judge import INCONCLUSIVE, PROMOTE, ROLLBACK

VERDICT_CODES = {ROLLBACK: 0, INCONCLUSIVE: 1, PROMOTE: 2}
VERDICT_COLORS = {ROLLBACK: "red", INCONCLUSIVE: "yellow", PROMOTE: "green"}
SCORE_COLORS = thresholds("red", (50, "yellow"), (80, "green"))  # the judge's score: 0 roll back .. 100
ROLES = ("baseline", "canary")  # the template variables, named after the gauges' labels
QUANTILES = (0.5, 0.99)


def variables(schema: str) -> list:
    service = promql.grafana_variable("service", "service")
    return [datasource_variable(),
            label_variable("service", "Service", names.OPERATIONS_TOTAL, "service", multi=False, schema=schema),
            *(query_variable(role, role.capitalize(), promql.grafana_label_values(promql.CANARY_SCORE, role, [service]),
                             multi=False) for role in ROLES)]


def build(*, source: str, dash_url: str, schema: str) -> dashboard.Dashboard:
    service = promql.grafana_variable("service", "service")
    pair = [service, *(promql.grafana_variable(role, role) for role in ROLES)]
    calls = [service, promql.matcher("method", "=", promql.TOOL_METHOD)]  # what the judge compares
    of = {role: [*calls, promql.grafana_variable("version", role)] for role in ROLES}
    d = frame.new(frame.CANARY, "A service's canary against its baseline: the judge's verdict and the evidence.",
                  source=source, time_from="now-6h")
    for v in variables(schema):
        d = d.with_variable(v)
    d = d.links([*frame.between_dashboards(frame.CANARY), *frame.to_app(dash_url, one_service=True)])

    d = d.with_panel(stat_panel(
        "Verdict", "The engine's judge, last tick: promote, roll back, or wait for more data (inconclusive).",
        [Query(promql.grafana_one_hot(promql.CANARY_VERDICT, "verdict", VERDICT_CODES, pair), "$canary vs $baseline",
               instant=True)],
        unit="none", colors=thresholds("blue"), mappings=value_names(VERDICT_CODES, VERDICT_COLORS), width=8))
    d = d.with_panel(stat_panel(
        "Score", "0 (roll back) to 100.", [Query(promql.selector(promql.CANARY_SCORE, pair), "score", instant=True)],
        unit="none", colors=SCORE_COLORS, width=8))
    d = d.with_panel(timeseries_panel(
        "Score over time", "The judge's score at each tick.",
        [Query(promql.selector(promql.CANARY_SCORE, pair), "score")], unit="none", min_value=0, max_value=100,
        width=8, height=4, lines=SCORE_COLORS))

    d = d.with_panel(timeseries_panel(
        "Error ratio", "tools/call errors and timeouts over valid requests, per version.",
        [Query(promql.grafana_error_ratio(of[role], ("version",), schema=schema), f"{role} {{{{version}}}}") for role in ROLES],
        unit="percentunit", min_value=0))
    d = d.with_panel(timeseries_panel(
        "Latency quantiles", "tools/call duration quantiles per version, estimated from the histogram buckets.",
        [Query(promql.grafana_quantile(q, of[role], ("version",), schema), f"{role} {{{{version}}}} p{q * 100:g}")
         for role in ROLES for q in QUANTILES], unit="s", min_value=0))
    d = d.with_panel(timeseries_panel(
        "Requests per second", "The traffic split between the versions.",
        [Query(promql.grafana_sum("rate", names.OPERATIONS_TOTAL, of[role], ("version",), schema=schema), f"{role} {{{{version}}}}")
         for role in ROLES], unit="reqps", min_value=0))
    d = d.with_panel(table_panel(
        "Error ratio by tool over the time range", "Per tool, baseline beside canary: where the canary does worse.",
        [Query(promql.grafana_error_ratio(of[role], ("tool",), promql.GRAFANA_RANGE, schema), instant=True, table=True)
         for role in ROLES],  # by tool only: the two queries' rows merge into one per tool
        columns={"Value #A": "baseline", "Value #B": "canary"}, unit="percentunit", decimals=2, width=12))
    return d

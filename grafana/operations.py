"""The MCP operations dashboard: traffic, errors, durations and concurrency from the
exporter's metrics, for any services, versions and tools."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from collector import names
from grafana import frame
from grafana.panels import (Query, bargauge_panel, datasource_variable, heatmap_panel, label_variable, matchers,
                            thresholds, timeseries_panel)
from slo import promql

QUANTILES = (0.5, 0.9, 0.99)


def variables(schema: str) -> list:
    service = promql.grafana_variable("service", "service", multi=True)
    return [
        datasource_variable(),
        label_variable("service", "Service", names.OPERATIONS_TOTAL, "service", multi=True, schema=schema),
        label_variable("version", "Version", names.OPERATIONS_TOTAL, "version", [service], multi=True, schema=schema),
        label_variable("tool", "Tool", names.OPERATIONS_TOTAL, "tool",
                       [service, promql.matcher("method", "=", promql.TOOL_METHOD)], multi=True, schema=schema),
    ]


def build(*, source: str, dash_url: str, schema: str) -> dashboard.Dashboard:
    selected = matchers(("service", "service", True), ("version", "version", True), ("tool", "tool", True))
    per_version = matchers(("service", "service", True), ("version", "version", True))  # the gauge has no tool
    by_service = ("service",)
    d = frame.new(frame.OPERATIONS, "Every MCP operation the exporters count, by service, method and status.",
                  source=source, time_from="now-6h")
    for v in variables(schema):
        d = d.with_variable(v)
    d = d.links([*frame.between_dashboards(frame.OPERATIONS), *frame.to_app(dash_url, one_service=False)])

    d = d.with_row(dashboard.Row("Traffic and errors"))
    d = d.with_panel(timeseries_panel(
        "Requests by service, method and status", "Operations per second, all methods (tools/call has a tool).",
        [Query(promql.grafana_sum("rate", names.OPERATIONS_TOTAL, selected, ("service", "method", "status"),
                                 schema=schema),
               "{{service}} {{method}} {{status}}")], unit="reqps", stacked=True))
    d = d.with_panel(timeseries_panel(
        "Error ratio by service",
        "Errors and timeouts over all operations but cancelled ones, as availability SLOs count them.",
        [Query(promql.grafana_error_ratio(selected, by_service, schema=schema), "{{service}}")], unit="percentunit", min_value=0))
    d = d.with_panel(bargauge_panel(
        "tools/call requests by tool over the time range", "Which tools carry the traffic.",
        [Query(promql.grafana_tool_calls(selected, schema), "{{service}} {{tool}}", instant=True)], unit="short",
        colors=thresholds("blue"), min_value=0))
    d = d.with_panel(timeseries_panel(
        "Active operations", "The most operations in flight at once in each interval, by service and version "
        "(mcp-slo's exporters only: OpenTelemetry's conventions have no in-flight metric).",
        [Query(promql.grafana_active(per_version, ("service", "version")), "{{service}} {{version}}")],
        unit="short", min_value=0))

    d = d.with_row(dashboard.Row("Durations"))
    d = d.with_panel(timeseries_panel(
        "Duration quantiles by service", "Estimates from the histogram buckets: as good as the bucket bounds.",
        [Query(promql.grafana_quantile(q, selected, by_service, schema), f"p{q * 100:g} {{{{service}}}}") for q in QUANTILES],
        unit="s", min_value=0))
    d = d.with_panel(heatmap_panel(
        "Duration buckets", "Operations per histogram bucket (upper bound `le`) in each interval.",
        [Query(promql.grafana_buckets(selected, schema), "{{le}}", heatmap=True)], unit="s"))
    return d

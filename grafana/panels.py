"""Building blocks of the generated dashboards: the datasource, queries, panels with every
option Grafana's schema requires set, template variables and links.

Every panel reads the dashboard's `datasource` variable, so a dashboard works with whichever
Prometheus is picked, the provisioned one by default.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import bargauge, common as common_builders, dashboard, heatmap, prometheus
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.models import common, dashboard as models, heatmap as heatmap_models
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from collector import names
from slo import promql
from slo.schema import OTEL_DURATION

DATASOURCE_VARIABLE = "datasource"
DATASOURCE = models.DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VARIABLE}}}")
# The provisioned datasource (grafana/provisioning/datasources/mcp-slo.yaml), the variable's default.
DATASOURCE_UID = "mcp-slo-prometheus"
DATASOURCE_NAME = "mcp-slo Prometheus"

WIDTH = 24  # Grafana's grid is 24 columns wide


@dataclass(frozen=True)
class Query:
    """One panel query: an instant one for stats, tables and bar gauges (the value now or over
    the time range), a range one for time series and heatmaps."""

    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False  # one row per series, for a table to merge
    heatmap: bool = False  # histogram buckets, for a heatmap


def _targets(queries: Sequence[Query]) -> list[prometheus.Dataquery]:
    out = []
    for i, q in enumerate(queries):
        t = prometheus.Dataquery().expr(q.expr).ref_id(chr(ord("A") + i)).legend_format(q.legend or "__auto")
        t = t.instant() if q.instant else t.range()
        if not q.instant and _reads_durations(q.expr):
            t = t.exemplar(True)
        if q.table:
            t = t.format(PromQueryFormat.TABLE)
        elif q.heatmap:
            t = t.format(PromQueryFormat.HEATMAP)
        out.append(t)
    return out


def _reads_durations(expr: str) -> bool:
    """Whether `expr` reads a duration histogram's buckets (a latency quantile, a heatmap), of
    either metric schema: the series exporters attach exemplars (trace ids) to, so Grafana marks
    them on the panel."""
    return any(f"{histogram}_bucket" in expr for histogram in (names.OPERATION_DURATION, OTEL_DURATION))


def _common(panel, title: str, description: str, queries: Sequence[Query], width: int, height: int):
    return (panel.title(title).description(description).datasource(DATASOURCE).targets(_targets(queries))
            .span(width).height(height))


# --- thresholds ----------------------------------------------------------------------------


# Grafana takes the first step as the base and sets its value to -Infinity on load, whatever it
# is. Grafana itself saves null there, which its 11.6 schema rejects; a finite value suits both.
BASE_STEP = -1e9


def thresholds(base: str, *steps: tuple[float, str]) -> dashboard.ThresholdsConfig:
    """Colors from `base` up, changing at each (value, color) of `steps`."""
    ordered = [models.Threshold(value=BASE_STEP, color=base)]
    ordered += [models.Threshold(value=v, color=c) for v, c in sorted(steps)]
    return dashboard.ThresholdsConfig().mode(models.ThresholdsMode.ABSOLUTE).steps(ordered)


# --- panels --------------------------------------------------------------------------------


def timeseries_panel(title: str, description: str, queries: Sequence[Query], *, unit: str, width: int = 12,
                     height: int = 8, min_value: float | None = None, max_value: float | None = None,
                     lines: dashboard.ThresholdsConfig | None = None, stacked: bool = False) -> timeseries.Panel:
    """A time series; `lines`: thresholds drawn as dashed lines (the burn-rate tiers)."""
    legend = (common_builders.VizLegendOptions().display_mode(common.LegendDisplayMode.TABLE)
              .placement(common.LegendPlacement.BOTTOM).show_legend(True).calcs(["lastNotNull", "max"]))
    tooltip = common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING)
    panel = (_common(timeseries.Panel(), title, description, queries, width, height).unit(unit).legend(legend)
             .tooltip(tooltip).line_width(1).fill_opacity(10).show_points(common.VisibilityMode.NEVER)
             .span_nulls(False))
    if min_value is not None:
        panel = panel.min(min_value)
    if max_value is not None:
        panel = panel.max(max_value)
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    if lines is not None:
        panel = panel.thresholds(lines).thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED))
    return panel


def _reduce_last() -> common_builders.ReduceDataOptions:
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def stat_panel(title: str, description: str, queries: Sequence[Query], *, unit: str, colors: dashboard.ThresholdsConfig,
               width: int = 6, height: int = 4, decimals: int | None = None,
               mappings: Sequence[models.ValueMap] = ()) -> stat.Panel:
    """A big number per series, colored by `colors` (or by `mappings` of values to names)."""
    panel = (_common(stat.Panel(), title, description, queries, width, height).unit(unit).thresholds(colors)
             .reduce_options(_reduce_last()).graph_mode(common.BigValueGraphMode.NONE)
             .color_mode(common.BigValueColorMode.BACKGROUND).justify_mode(common.BigValueJustifyMode.AUTO)
             .text_mode(common.BigValueTextMode.VALUE_AND_NAME).wide_layout(True).show_percent_change(False)
             .orientation(common.VizOrientation.AUTO))
    if mappings:
        panel = panel.mappings(list(mappings))
    return panel.decimals(decimals) if decimals is not None else panel


def bargauge_panel(title: str, description: str, queries: Sequence[Query], *, unit: str,
                   colors: dashboard.ThresholdsConfig, width: int = 12, height: int = 8,
                   min_value: float | None = None, max_value: float | None = None) -> bargauge.Panel:
    """One horizontal bar per series."""
    panel = (_common(bargauge.Panel(), title, description, queries, width, height).unit(unit).thresholds(colors)
             .reduce_options(_reduce_last()).display_mode(common.BarGaugeDisplayMode.GRADIENT)
             .value_mode(common.BarGaugeValueMode.COLOR).name_placement(common.BarGaugeNamePlacement.AUTO)
             .show_unfilled(True).sizing(common.BarGaugeSizing.AUTO).min_viz_width(8).min_viz_height(16)
             .max_viz_height(300).orientation(common.VizOrientation.HORIZONTAL))
    if min_value is not None:
        panel = panel.min(min_value)
    if max_value is not None:
        panel = panel.max(max_value)
    return panel


def table_panel(title: str, description: str, queries: Sequence[Query], *, width: int = WIDTH, height: int = 8,
                columns: dict[str, str] | None = None, hidden: Iterable[str] = ("Time",), unit: str | None = None,
                decimals: int | None = None, links: Sequence[dashboard.DashboardLink] = ()) -> table.Panel:
    """One row per series: the queries (instant, table format) merged on their labels; `columns`
    renames fields (e.g. "Value #A" -> "SLI"), in that order, after the labels; `hidden` fields
    are left out. `unit`, `decimals` and `links` apply to every column: Grafana 11.6's schema
    types a field override's value as an object, so a unit ("percentunit") cannot be one."""
    columns = columns or {}
    organize = {"excludeByName": {name: True for name in hidden}, "renameByName": columns,
                "indexByName": {name: i + 100 for i, name in enumerate(columns)}}  # values after the labels
    panel = (_common(table.Panel(), title, description, queries, width, height).show_header(True).frame_index(0)
             .cell_height(common.TableCellHeight.SM).align(common.FieldTextAlignment.AUTO).inspect(False)
             .with_transformation(models.DataTransformerConfig(id_val="merge", options={}))
             .with_transformation(models.DataTransformerConfig(id_val="organize", options=organize)))
    if unit is not None:
        panel = panel.unit(unit)
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel.data_links(list(links)) if links else panel


def heatmap_panel(title: str, description: str, queries: Sequence[Query], *, unit: str, width: int = 12,
                  height: int = 8) -> heatmap.Panel:
    """A heatmap of histogram buckets as Prometheus exposes them (`le`), not recalculated."""
    color = (heatmap.HeatmapColorOptions().mode(heatmap_models.HeatmapColorMode.SCHEME).scheme("Oranges")
             .fill("dark-orange").exponent(0.5).steps(64).reverse(False))
    return (_common(heatmap.Panel(), title, description, queries, width, height).calculate(False).color(color)
            .y_axis(heatmap.YAxisConfig().unit(unit).axis_placement(common.AxisPlacement.LEFT))
            .rows_frame(heatmap.RowsHeatmapOptions().layout(common.HeatmapCellLayout.AUTO))
            .cell_values(heatmap.CellValues().unit("short")).show_value(common.VisibilityMode.NEVER)
            .show_legend().exemplars_color("rgba(255,0,255,0.7)"))


def value_names(codes: dict[str, int], colors: dict[str, str]) -> list[models.ValueMap]:
    """Show each code of a one-hot gauge (see promql.grafana_one_hot) as its name, in its color."""
    return [models.ValueMap(options={
        str(code): models.ValueMappingResult(text=name, color=colors[name], index=i)
        for i, (name, code) in enumerate(codes.items())})]


# --- variables and links -----------------------------------------------------------------


def datasource_variable() -> dashboard.DatasourceVariable:
    current = models.VariableOption(selected=True, text=DATASOURCE_NAME, value=DATASOURCE_UID)
    return dashboard.DatasourceVariable(DATASOURCE_VARIABLE).label("Data source").type("prometheus").current(current)


def query_variable(name: str, label: str, query: str, *, multi: bool, regex: str | None = None
                   ) -> dashboard.QueryVariable:
    """Values from Prometheus, refreshed with the time range. A multi-value variable's "All" is
    `.*`: every value, the empty one too (tool="" for methods other than tools/call)."""
    variable = (dashboard.QueryVariable(name).label(label).datasource(DATASOURCE).query(query)
                .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(models.VariableSort.ALPHABETICAL_ASC)
                .multi(multi).include_all(multi))
    if regex is not None:
        variable = variable.regex(regex)
    if not multi:
        return variable
    return variable.all_value(".*").current(models.VariableOption(selected=True, text="All", value="$__all"))


def label_variable(name: str, title: str, metric: str, label: str, matchers: Sequence[str] = (), *, multi: bool,
                   schema: str) -> dashboard.QueryVariable:
    """A variable listing `label`'s values on `metric`'s series (`schema`'s exporter metrics: the
    services of both schemas under `auto`, see promql.grafana_label_values)."""
    query = promql.grafana_label_values(metric, label, matchers, schema)
    regex = promql.grafana_values_regex(label) if query.startswith("query_result(") else None
    return query_variable(name, title, query, multi=multi, regex=regex)


def external_link(title: str, url: str) -> dashboard.DashboardLink:
    return (dashboard.DashboardLink(title).type(models.DashboardLinkType.LINK).url(url).target_blank(True)
            .icon("external link"))


def matchers(*pairs: tuple[str, str, bool]) -> list[str]:
    """Matchers on template variables: (label, variable, multi-value)."""
    return [promql.grafana_variable(label, variable, multi) for label, variable, multi in pairs]

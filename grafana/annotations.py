"""The maintenance annotations: on every generated dashboard (each shows SLOs or a service),
the time a maintenance window was on, shaded, from the engine's mcp_slo_maintenance gauge
(1 while a planned or run-time window covers an SLO series), for the dashboard's `service`
variable. One annotation per mode, named with it (exclude: the events count neither good nor
bad; silence: the alerts are held back): Grafana's dashboard schema has no room for the
Prometheus datasource's title and text templates (titleFormat, textFormat, tagKeys), so the
name carries the mode and each series' labels (service, slo, tool) are the event's.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from grafana.panels import DATASOURCE
from slo.engine.metrics import MAINTENANCE_METRIC
from slo.maintenance import MODES

COLORS = {"exclude": "rgba(143, 59, 184, 0.25)", "silence": "rgba(87, 148, 242, 0.25)"}  # apart from green/amber/red


def maintenance_expr(mode: str, service: str = "$service") -> str:
    """The series of `service` (a Grafana variable: a regex for a multi-select) a window of
    `mode` covers.

    A PromQL string: it belongs in slo/promql.py with the others (to move there once that
    module's current edit is in)."""
    return f'max by (service, slo, tool) ({MAINTENANCE_METRIC}{{service=~"{service}", mode="{mode}"}}) == 1'


def maintenance() -> list[dashboard.AnnotationQuery]:
    """The annotations, enabled and shown in the dashboard's annotation toggles."""
    return [dashboard.AnnotationQuery().name(f"Maintenance: {mode}").datasource(DATASOURCE).enable(True)
            .hide(False).icon_color(COLORS[mode]).expr(maintenance_expr(mode)) for mode in MODES]

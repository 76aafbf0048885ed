"""The engine's own /metrics: the latest results as gauges, and the engine's health.

Built at scrape time from the latest snapshot (a custom collector), so a scrape always
shows one whole tick. Unknown values (no traffic) have no sample rather than NaN.
Service-level SLOs have tool="".

    mcp_slo_sli{service,tool,slo,window}                   SLI over the SLO window
    mcp_slo_error_budget_remaining{service,tool,slo,window} share of the budget left (< 0: overspent)
    mcp_slo_burn_rate{service,tool,slo,window}              per window
    mcp_slo_objective{service,tool,slo,window}
    mcp_slo_status{service,tool,slo,status}                 1 for the current status, 0 for the others
    mcp_slo_maintenance{service,slo,tool,mode}              1 while a maintenance window (planned
                                                            or run-time) covers the SLO series; no
                                                            sample otherwise (slo.maintenance)
    mcp_canary_verdict{service,baseline,canary,verdict}     1 for the current verdict
    mcp_canary_score{service,baseline,canary}               0 (roll back) to 100
    mcp_slo_release_frozen{service}                         1 while the service's releases are frozen
                                                            (error_budget_policy: freeze, a budget
                                                            exhausted), 0 otherwise; only services
                                                            under that policy (slo.engine.freeze)
    mcp_slo_engine_*                                        ticks, failures, durations, snapshot age
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from slo.engine.freeze import freeze_of
from slo.engine.scheduler import Engine
from slo.evaluate import STATUSES
from slo.maintenance import Window
from slo.results import SLOResult

VERDICTS = ("promote", "rollback", "inconclusive")

SLO_LABELS = ["service", "tool", "slo"]

# The series the alerting rules join on (service, slo, tool) to hold back alerts (mode
# "silence") or leave events out (mode "exclude") during maintenance.
MAINTENANCE_METRIC = "mcp_slo_maintenance"


class EngineCollector(Collector):
    def __init__(self, engine: Engine):
        self.engine = engine

    def collect(self) -> Iterator:
        e = self.engine
        snapshot = e.snapshot()
        sli = GaugeMetricFamily("mcp_slo_sli", "SLI over the SLO window (a fraction)", labels=[*SLO_LABELS, "window"])
        remaining = GaugeMetricFamily("mcp_slo_error_budget_remaining",
                                      "Share of the SLO window's error budget left; negative when overspent",
                                      labels=[*SLO_LABELS, "window"])
        objective = GaugeMetricFamily("mcp_slo_objective", "The SLO's target as a fraction", labels=[*SLO_LABELS, "window"])
        burn = GaugeMetricFamily("mcp_slo_burn_rate", "Error budget burn rate over a window (1 = sustainable)",
                                 labels=[*SLO_LABELS, "window"])
        status = GaugeMetricFamily("mcp_slo_status", "1 for the SLO's current status", labels=[*SLO_LABELS, "status"])
        for r in snapshot.results if snapshot else ():
            ids = list(r.key)
            if r.objective is not None:
                objective.add_metric([*ids, r.window], r.objective)
            if r.sli is not None:
                sli.add_metric([*ids, r.window], r.sli)
            if r.error_budget_remaining is not None:
                remaining.add_metric([*ids, r.window], r.error_budget_remaining)
            for window, value in r.burn_rates.items():
                if value is not None:
                    burn.add_metric([*ids, window], value)
            for s in STATUSES:
                status.add_metric([*ids, s], 1.0 if r.status == s else 0.0)
        yield from (sli, remaining, objective, burn, status)
        yield _maintenance(snapshot.results if snapshot else (), e.maintenance())

        frozen = GaugeMetricFamily("mcp_slo_release_frozen", "1 while the error-budget policy freezes the "
                                   "service's releases (a budget exhausted)", labels=["service"])
        by_service: dict[str, list] = {}
        for r in snapshot.results if snapshot else ():
            by_service.setdefault(r.service, []).append(r)
        for service, results in sorted(by_service.items()):
            if e.spec.error_budget_policy_for(service) == "freeze":
                frozen.add_metric([service], 0.0 if freeze_of(e.spec, service, results) is None else 1.0)
        yield frozen

        pair = ["service", "baseline", "canary"]
        verdict = GaugeMetricFamily("mcp_canary_verdict", "1 for the canary's current verdict", labels=[*pair, "verdict"])
        score = GaugeMetricFamily("mcp_canary_score", "The canary's score, 0 (roll back) to 100", labels=pair)
        for d in (c.result for c in e.canaries(snapshot)):
            ids = [d.service, d.baseline, d.canary]
            for v in VERDICTS:
                verdict.add_metric([*ids, v], 1.0 if d.verdict == v else 0.0)
            score.add_metric(ids, d.score)
        yield from (verdict, score)

        h = e.health
        yield _counter("mcp_slo_engine_ticks", "Ticks attempted", h.ticks)
        yield _counter("mcp_slo_engine_tick_failures", "Ticks that failed (nothing stored)", h.failures)
        yield _counter("mcp_slo_engine_tick_timeouts", "Ticks cut at their deadline", h.timeouts)
        yield _counter("mcp_slo_engine_query_errors", "Ticks failed by a query error (Prometheus down, slow or wrong)",
                       h.query_errors)
        yield _gauge("mcp_slo_engine_last_success_timestamp_seconds", "When the last successful tick evaluated",
                     h.last_success_at)
        yield _gauge("mcp_slo_engine_tick_duration_seconds", "Wall time of the last tick", h.last_duration)
        yield _gauge("mcp_slo_engine_tick_queries", "Queries the last successful tick sent", h.last_queries)
        yield _gauge("mcp_slo_engine_snapshot_age_seconds", "Age of the results served",
                     e.now() - snapshot.evaluated_at if snapshot else None)
        yield _gauge("mcp_slo_engine_stale", "1 when the results served are stale", 1.0 if e.is_stale(snapshot) else 0.0)


def _maintenance(results: Iterable[SLOResult], windows: list[Window]) -> GaugeMetricFamily:
    """1 per SLO series of the latest tick and mode of the windows on now that cover it."""
    family = GaugeMetricFamily(MAINTENANCE_METRIC, "1 while a maintenance window covers the SLO series (mode: "
                               "exclude leaves its events out, silence holds its alerts back)",
                               labels=["service", "slo", "tool", "mode"])
    for r in results:
        service, tool, slo = r.key
        for mode in sorted({w.mode for w in windows if w.covers(service, slo, tool)}):
            family.add_metric([service, slo, tool, mode], 1.0)
    return family


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc)
    if value is not None:
        family.add_metric([], value)
    return family


def registry_for(engine: Engine) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(EngineCollector(engine))
    return registry

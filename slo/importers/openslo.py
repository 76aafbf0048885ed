"""Import OpenSLO v1 documents (https://github.com/OpenSLO/OpenSLO) into the mcp-slo model.

Mapping, one SLO document to one objective of `spec.service`:

    spec.indicator.metadata.name (or the SLI named   -> objective name (else the SLO's metadata.name)
      by spec.indicatorRef)
    ratioMetric good or bad, and total (Prometheus)  -> kind, threshold, methods, tool (sli_query.py)
    objectives[0].target (0.999) or targetPercent    -> target 99.9
    timeWindow[0].duration, isRolling: true          -> window
    budgetingMethod: Occurrences                     -> (the only method mcp-slo has)
    spec.description, else the SLI's                 -> description

A query that selects a tool (tool="write_file") gives a per-tool objective; one with
no method matcher covers every method (`methods: ["*"]`, see sli_query.py). Queries
may read OpenTelemetry's MCP semantic-convention metrics instead of mcp-slo's (the tool
is then gen_ai_tool_name="write_file"): when every one does, the spec reads only
those (`metrics: otel`).
`kind: Service` documents declare services (with no objectives of their own);
`kind: SLI` documents can be referenced by `indicatorRef`. Not supported, each
with an error naming its key path: thresholdMetric and raw ratios, Timeslices and
RatioTimeslices budgeting, calendar windows, several objectives per SLO, and
other document kinds. `alertPolicies` are ignored with a note: mcp-slo alerts on
its own multiwindow burn-rate tiers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from slo import spec
from slo.importers import sli_query
from slo.importers.build import Builder, Imported, document_prefix

API_VERSION = "openslo/v1"
KINDS = ("SLO", "SLI", "Service")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Metadata(_Model):
    name: str
    displayName: str | None = None
    labels: dict[str, Any] | None = None
    annotations: dict[str, Any] | None = None


class Document(_Model):
    apiVersion: str
    kind: str
    metadata: Metadata
    spec: dict[str, Any] = {}


class MetricSource(_Model):
    metricSourceRef: str | None = None
    type: str | None = None
    spec: dict[str, Any]


class Metric(_Model):
    metricSource: MetricSource


class RatioMetric(_Model):
    counter: bool = True
    good: Metric | None = None
    bad: Metric | None = None
    total: Metric | None = None
    raw: Any = None
    rawType: Any = None


class SLISpec(_Model):
    description: str = ""
    ratioMetric: RatioMetric | None = None
    thresholdMetric: Any = None


class Indicator(_Model):
    metadata: Metadata | None = None
    spec: SLISpec


class TimeWindow(_Model):
    duration: str
    isRolling: bool = True
    calendar: Any = None


class Objective(_Model):
    displayName: str | None = None
    target: spec.Number | None = None
    targetPercent: spec.Number | None = None
    # OpenSLO fields for threshold metrics and time slices: rejected with a reason.
    op: Any = None
    value: Any = None
    timeSliceTarget: Any = None
    timeSliceWindow: Any = None
    indicator: Any = None
    indicatorRef: Any = None
    compositeWeight: Any = None


class SLOSpec(_Model):
    description: str = ""
    service: str
    indicator: Indicator | None = None
    indicatorRef: str | None = None
    timeWindow: list[TimeWindow]
    budgetingMethod: str
    objectives: list[Objective]
    alertPolicies: list[Any] = []


def is_openslo(doc: Any) -> bool:
    return isinstance(doc, Mapping) and str(doc.get("apiVersion", "")).lower().startswith("openslo/")


def load(docs: list[Any], source: str) -> tuple[spec.Spec, list[str]]:
    """Every document of the file; SpecError names the file, document and key path."""
    b = Builder(source)
    headers = [_header(b, i, doc, len(docs)) for i, doc in enumerate(docs)]
    slis: dict[str, tuple[SLISpec, str]] = {}
    for (where, head) in headers:
        if head.kind == "Service":
            b.service(head.metadata.name, f"{where}metadata.name")
        elif head.kind == "SLI":
            if head.metadata.name in slis:
                raise b.error(f"{where}metadata.name", f"two SLI documents are named {head.metadata.name!r}")
            slis[head.metadata.name] = (_validate(b, SLISpec, head.spec, f"{where}spec."), f"{where}spec")
    for (where, head) in headers:
        if head.kind == "SLO":
            b.add(_objective(b, where, head, slis))
    return b.build(), b.notes


def _header(b: Builder, i: int, doc: Any, count: int) -> tuple[str, Document]:
    kind = doc.get("kind") if isinstance(doc, Mapping) else None
    name = (doc.get("metadata") or {}).get("name") if isinstance(doc, Mapping) and isinstance(
        doc.get("metadata"), Mapping) else None
    where = document_prefix(i, count, kind, name)
    if not isinstance(doc, Mapping):
        raise b.error(where.rstrip(": ") or "(top level)",
                      f"an OpenSLO document is a mapping, got {type(doc).__name__}")
    if doc.get("apiVersion") != API_VERSION:
        raise b.error(f"{where}apiVersion", f"{doc.get('apiVersion')!r} is not supported: use {API_VERSION}")
    if kind not in KINDS:
        raise b.error(f"{where}kind", f"{kind!r} is not supported: mcp-slo imports OpenSLO "
                                      f"{', '.join(KINDS)} documents (it makes its own alerts)")
    return where, _validate(b, Document, doc, where)


def _validate(b: Builder, model: type[BaseModel], raw: Any, prefix: str) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise spec.SpecError(spec.describe(exc, b.source, prefix)) from None


def _objective(b: Builder, where: str, head: Document, slis: dict[str, tuple[SLISpec, str]]) -> Imported:
    s: SLOSpec = _validate(b, SLOSpec, head.spec, f"{where}spec.")
    at = f"{where}spec"
    if s.budgetingMethod != "Occurrences":
        raise b.error(f"{at}.budgetingMethod", f"{s.budgetingMethod!r} is not supported: mcp-slo budgets by "
                                               "occurrences (bad events over all events); use Occurrences")
    if s.alertPolicies:
        b.note(f"{where}spec.alertPolicies ignored: mcp-slo alerts on its multiwindow burn-rate tiers")

    # The indicator: inline, or an SLI document of the same file.
    if (s.indicator is None) == (s.indicatorRef is None):
        raise b.error(at, "give either indicator or indicatorRef")
    if s.indicator is not None:
        sli, sli_at = s.indicator.spec, f"{at}.indicator.spec"
        name = s.indicator.metadata.name if s.indicator.metadata else head.metadata.name
        name_at = f"{at}.indicator.metadata.name" if s.indicator.metadata else f"{where}metadata.name"
    elif s.indicatorRef in slis:
        (sli, sli_at), name, name_at = slis[s.indicatorRef], s.indicatorRef, f"{at}.indicatorRef"
    else:
        raise b.error(f"{at}.indicatorRef", f"no SLI document named {s.indicatorRef!r} in this file")
    part, query_at = _ratio(b, sli, sli_at)

    if len(s.timeWindow) != 1:
        raise b.error(f"{at}.timeWindow", f"give one time window, got {len(s.timeWindow)}")
    window = s.timeWindow[0]
    if window.calendar is not None or not window.isRolling:
        raise b.error(f"{at}.timeWindow.0", "calendar windows are not supported: mcp-slo windows are rolling "
                                            "(isRolling: true)")

    if len(s.objectives) != 1:
        raise b.error(f"{at}.objectives", f"give one objective, got {len(s.objectives)}: mcp-slo keeps one target "
                                          "per SLO (write one SLO document per target)")
    target, target_at = _target(b, s.objectives[0], f"{at}.objectives.0")
    return Imported(
        service=s.service, part=part, name=name, target=target, window=window.duration,
        description=s.description or sli.description,
        paths={"service": f"{at}.service", "slo": at, "name": name_at, "query": query_at,
               "target": target_at, "window": f"{at}.timeWindow.0.duration", "threshold": query_at,
               "methods": query_at, "description": f"{at}.description"},
    )


def _ratio(b: Builder, sli: SLISpec, at: str) -> tuple[sli_query.Part, str]:
    if sli.thresholdMetric is not None or sli.ratioMetric is None:
        raise b.error(at, "only ratioMetric SLIs are supported (good or bad, and total)")
    ratio, at = sli.ratioMetric, f"{at}.ratioMetric"
    if ratio.raw is not None or ratio.rawType is not None:
        raise b.error(f"{at}.raw", "raw ratios are not supported: give good or bad, and total")
    if (ratio.good is None) == (ratio.bad is None) or ratio.total is None:
        raise b.error(at, "give good or bad (one of them), and total")
    events = "good" if ratio.good is not None else "bad"
    first, first_at = _query(b, getattr(ratio, events), f"{at}.{events}", events)
    total, _ = _query(b, ratio.total, f"{at}.total", "total")
    try:
        return sli_query.ratio(first, total, events), first_at
    except sli_query.QueryError as exc:
        raise b.error(at, str(exc)) from None


def _query(b: Builder, metric: Metric, at: str, events: str) -> tuple[sli_query.Part, str]:
    source = metric.metricSource
    at = f"{at}.metricSource"
    if source.type is not None and source.type.lower() != "prometheus":
        raise b.error(f"{at}.type", f"{source.type!r} is not supported: mcp-slo reads Prometheus queries")
    query = source.spec.get("query")
    if not isinstance(query, str):
        raise b.error(f"{at}.spec.query", "a Prometheus query (a string) is required")
    try:
        return sli_query.read(query, events), f"{at}.spec.query"
    except sli_query.QueryError as exc:
        raise b.error(f"{at}.spec.query", str(exc)) from None


def _target(b: Builder, o: Objective, at: str) -> tuple[float, str]:
    for key in ("op", "value", "timeSliceTarget", "timeSliceWindow", "indicator", "indicatorRef", "compositeWeight"):
        if getattr(o, key) is not None:
            raise b.error(f"{at}.{key}", "not supported: mcp-slo objectives of a ratio SLI take target or "
                                         "targetPercent only")
    if (o.target is None) == (o.targetPercent is None):
        raise b.error(at, "give target (a fraction, e.g. 0.999) or targetPercent (e.g. 99.9)")
    if o.targetPercent is not None:
        return o.targetPercent, f"{at}.targetPercent"
    if not 0 < o.target < 1:
        raise b.error(f"{at}.target", f"target is a fraction strictly between 0 and 1 (0.999), got {o.target:g}; "
                                      "write targetPercent for a percentage")
    # round: 0.9995 * 100 is 99.94999999999999
    return round(o.target * 100, 9), f"{at}.target"

"""Import Sloth `prometheus/v1` specs (https://sloth.dev) into the mcp-slo model.

Mapping, one document per service (a file may hold several, separated by ---):

    service                                   -> service
    slos[].name                               -> objective name
    slos[].objective (percent)                -> target
    slos[].sli.events.error_query/total_query -> kind, threshold, methods, tool (sli_query.py)
    slos[].description                        -> description
    slos[].alerting.page_alert.disable: true  -> the page tiers disabled (ticket_alert: ticket tiers)

Sloth has no per-SLO window: every objective gets Sloth's default, 30d. mcp-slo's
tiers apply to the whole spec, so a `disable` must be the same for every SLO of
the file. A query that selects a tool (tool="write_file") gives a per-tool
objective named after the Sloth SLO; a query with no method matcher covers
every method (`methods: ["*"]`, see sli_query.py). Queries may read OpenTelemetry's
MCP semantic-convention metrics instead of mcp-slo's: when every one does, the spec
reads only those (`metrics: otel`). Not supported, with an
error: `sli.raw` and `sli.plugin`, and the Kubernetes CRD (`sloth.slok.dev/v1`). Labels, alert
names and annotations are ignored with a note: mcp-slo's alerts carry service,
slo and severity.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from slo import spec
from slo.importers import sli_query
from slo.importers.build import Builder, Imported, document_prefix

VERSION = "prometheus/v1"
WINDOW = "30d"  # Sloth's default SLO period


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Events(_Model):
    error_query: str
    total_query: str


class SLI(_Model):
    events: Events | None = None
    raw: Any = None
    plugin: Any = None


class AlertSide(_Model):
    disable: bool = False
    labels: dict[str, Any] = {}
    annotations: dict[str, Any] = {}


class Alerting(_Model):
    name: str | None = None
    labels: dict[str, Any] = {}
    annotations: dict[str, Any] = {}
    page_alert: AlertSide = AlertSide()
    ticket_alert: AlertSide = AlertSide()


class SLO(_Model):
    name: str
    objective: spec.Number
    description: str = ""
    labels: dict[str, Any] = {}
    sli: SLI
    alerting: Alerting = Alerting()


class Document(_Model):
    version: Literal["prometheus/v1"]
    service: str
    labels: dict[str, Any] = {}
    slos: list[SLO] = Field(min_length=1)


def is_sloth(doc: Any) -> bool:
    # `slos` too, so that a wrong version gets Sloth's error, not the mcp-slo spec's
    return isinstance(doc, Mapping) and (doc.get("version") == VERSION or "slos" in doc
                                         or str(doc.get("apiVersion", "")).startswith("sloth.slok.dev/"))


def load(docs: list[Any], source: str) -> tuple[spec.Spec, list[str]]:
    """Every document of the file; SpecError names the file, document and key path."""
    b = Builder(source)
    # severity -> {disable: first key path with that value}, to report disagreement
    disabled: dict[str, dict[bool, str]] = {"page": {}, "ticket": {}}
    for i, raw in enumerate(docs):
        service = raw.get("service") if isinstance(raw, Mapping) else None
        where = document_prefix(i, len(docs), "service", service)
        doc = _document(b, raw, where)
        if doc.labels:
            b.note("Sloth labels ignored: mcp-slo's alerts carry service, slo and severity (and alerting.labels)")
        for j, slo in enumerate(doc.slos):
            at = f"{where}slos.{j}"
            b.add(_objective(b, doc.service, slo, at, f"{where}service"))
            if slo.labels or slo.alerting.name or slo.alerting.labels or slo.alerting.annotations:
                b.note("Sloth SLO labels, alert names and annotations ignored: mcp-slo names its own alerts")
            for severity, side in (("page", slo.alerting.page_alert), ("ticket", slo.alerting.ticket_alert)):
                disabled[severity].setdefault(side.disable, f"{at}.alerting.{severity}_alert.disable")
    for severity, seen in disabled.items():
        if len(seen) > 1:
            raise b.error(seen[True], f"mcp-slo's alert tiers apply to every SLO of the spec: disable {severity} "
                                      f"alerts for all SLOs or for none (enabled at {seen[False]})")
        if True in seen:
            b.disabled_severities.add(severity)
    return b.build(), b.notes


def _document(b: Builder, raw: Any, where: str) -> Document:
    if not isinstance(raw, Mapping):
        raise b.error(where.rstrip(": ") or "(top level)", f"a Sloth spec is a mapping, got {type(raw).__name__}")
    if "apiVersion" in raw:
        raise b.error(f"{where}apiVersion", "the Sloth Kubernetes CRD is not supported: use a "
                                            f"`version: {VERSION}` spec")
    try:
        return Document.model_validate(raw)
    except ValidationError as exc:
        raise spec.SpecError(spec.describe(exc, b.source, where)) from None


def _objective(b: Builder, service: str, slo: SLO, at: str, service_at: str) -> Imported:
    sli = slo.sli
    if sli.raw is not None or sli.plugin is not None:
        key = "raw" if sli.raw is not None else "plugin"
        raise b.error(f"{at}.sli.{key}", "not supported: give sli.events.error_query and total_query")
    if sli.events is None:
        raise b.error(f"{at}.sli", "give events.error_query and events.total_query")
    queries = {}
    for events, key in (("bad", "error_query"), ("total", "total_query")):
        try:
            queries[events] = sli_query.read(getattr(sli.events, key), events)
        except sli_query.QueryError as exc:
            raise b.error(f"{at}.sli.events.{key}", str(exc)) from None
    try:
        part = sli_query.ratio(queries["bad"], queries["total"], "error")
    except sli_query.QueryError as exc:
        raise b.error(f"{at}.sli.events", str(exc)) from None
    query_at = f"{at}.sli.events.error_query"
    return Imported(
        service=service, part=part, name=slo.name, target=slo.objective, window=WINDOW,
        description=slo.description,
        paths={"service": service_at, "slo": at, "name": f"{at}.name", "query": query_at,
               "target": f"{at}.objective", "window": at, "threshold": query_at, "methods": query_at,
               "description": f"{at}.description"},
    )

"""Read the PromQL of an imported SLI and map it onto one of mcp-slo's SLIs.

mcp-slo's SLIs are fixed (docs/DESIGN.md): availability counts operations (good:
success; bad: error or timeout; cancelled neither) and latency counts the duration
histogram's buckets (good: within the threshold, a bucket bound). An OpenSLO or Sloth
query is accepted when it selects exactly that, filtered by service, method and tool,
in either metric schema (slo.schema). mcp-slo then builds its own queries from the
model, so no imported text ever reaches Prometheus.

Accepted selectors (any aggregation, function and range around them), mcp-slo's names:

    availability  good   mcp_operations_total{status="success", method="tools/call"}
                  bad    mcp_operations_total{status=~"error|timeout", method="tools/call"}
                  total  mcp_operations_total{method="tools/call"}   (or status!="cancelled")
    latency       good   mcp_operation_duration_seconds_bucket{le="0.5", method="tools/call"}
                  bad    ..._count{method="tools/call"} - ..._bucket{le="0.5", method="tools/call"}
                  total  mcp_operation_duration_seconds_count{method="tools/call"}  (or _bucket{le="+Inf"})

and OpenTelemetry's semantic conventions (one histogram, D = mcp_server_operation_duration_seconds):

    availability  good   D_count{error_type="", mcp_method_name="tools/call"}
                  bad    D_count{error_type!="", mcp_method_name="tools/call"}
                  total  D_count{mcp_method_name="tools/call"}
    latency       good   D_bucket{le="1", mcp_method_name="tools/call"}  (le "1" or "1.0")
                  bad    D_count{...} - D_bucket{le="1", ...}
                  total  D_count{mcp_method_name="tools/call"}  (the same total as availability's)

where the service is `job="fs"` or `service_name="fs"` (on the series, or on a
`target_info{service_name="fs"}` joined to them) and the tool `gen_ai_tool_name="x"`.
mcp-slo's service of an OpenTelemetry series is its service_name, else its job: a query
on the job selects the same service as long as the resource's service.name, if it
has one, is the job. Under the conventions every error counts (a tool result with
isError, a JSON-RPC error, a timeout) and there is no cancelled class. A query reads
one schema; the importers set the spec's `metrics: otel` when every query reads
OpenTelemetry's.

A query with no method matcher covers every method (the SLO's `methods: ["*"]`):
`mcp_operations_total{service="filesystem",status="success"}` over
`mcp_operations_total{service="filesystem"}` is the availability of every method of
filesystem, the methods outside the MCP specification (`other`) too.

A total with no status matcher also counts cancelled calls; mcp-slo never does,
so the imported SLO measures slightly fewer events than the query said.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Literal

from collector import names
from slo import schema as schemas
from slo.importers.selectors import Matcher, QueryError, Selector, selectors
from slo.promql import ALL_METHODS

__all__ = ["Filter", "Part", "QueryError", "ratio", "read"]

OPERATIONS = names.OPERATIONS_TOTAL

Kind = Literal["availability", "latency"]
Events = Literal["good", "bad", "total"]


@dataclass(frozen=True)
class Histogram:
    """A duration histogram's series, in one schema."""

    bucket: str
    count: str
    schema: str


OWN = Histogram(f"{names.OPERATION_DURATION}_bucket", f"{names.OPERATION_DURATION}_count", schemas.MCP_SLO)
OTEL = Histogram(f"{schemas.OTEL_DURATION}_bucket", f"{schemas.OTEL_DURATION}_count", schemas.OTEL)
BUCKET, COUNT = OWN.bucket, OWN.count
_METRICS = {schemas.MCP_SLO: (OPERATIONS, OWN.bucket, OWN.count),
            schemas.OTEL: (OTEL.bucket, OTEL.count, schemas.TARGET_INFO)}
_SCHEMA_NAMES = {schemas.MCP_SLO: "mcp-slo's metric names", schemas.OTEL: "OpenTelemetry's"}


@dataclass(frozen=True)
class Filter:
    service: str | None
    methods: tuple[str, ...]  # ALL_METHODS: no method matcher
    tool: str | None


@dataclass(frozen=True)
class Part:
    """What one query counts."""

    # None: OpenTelemetry's D_count alone, the total of either SLI (its partner says which)
    kind: Kind | None
    filter: Filter
    threshold: float | None = None
    schema: str = schemas.MCP_SLO  # the metric names the query reads


def read(query: str, events: Events) -> Part:
    """What `query` counts, as the good, bad or total events of an mcp-slo SLI."""
    if not isinstance(query, str) or not query.strip():
        raise QueryError("the query is empty")
    found = selectors(query)
    if not found:
        raise QueryError("no metric selector in the query")
    if _schema(found) == schemas.OTEL:
        return _read_otel(query, found, events)
    filters = {_filter(s) for s in found}
    if len(filters) > 1:
        raise QueryError("its selectors filter service, method or tool differently")
    (flt,) = filters
    if all(s.metric == OPERATIONS for s in found):
        return _availability(found, events, flt)
    if any(s.metric == OPERATIONS for s in found):
        raise QueryError(f"it mixes {OPERATIONS} with the duration histogram")
    return _latency(query, found, events, flt, OWN)


def ratio(good_or_bad: Part, total: Part, events: Events) -> Part:
    """The SLI of a good (or bad) and a total query; QueryError when they disagree."""
    if good_or_bad.schema != total.schema:
        raise QueryError(f"the {events} query reads {_SCHEMA_NAMES[good_or_bad.schema]} but the total query "
                         f"{_SCHEMA_NAMES[total.schema]}: write both against one schema")
    if total.kind not in (None, good_or_bad.kind):
        raise QueryError(f"the {events} query is {good_or_bad.kind} but the total query is {total.kind}")
    if good_or_bad.filter != total.filter:
        raise QueryError(f"the {events} and total queries select different events: "
                         f"{_show(good_or_bad.filter)} vs {_show(total.filter)}")
    return good_or_bad


def _show(f: Filter) -> str:
    def one(value: str | None) -> str:
        return "any" if value is None else repr(value)

    methods = "every method" if f.methods == ALL_METHODS else "|".join(f.methods)
    return f"service {one(f.service)}, method {methods}, tool {one(f.tool)}"


def _schema(found: list[Selector]) -> str:
    """The one schema whose metrics the selectors read; QueryError for others, or both."""
    first: dict[str, str] = {}  # schema -> the first metric of it
    for s in found:
        which = next((k for k, metrics in _METRICS.items() if s.metric in metrics), None)
        if which is None:
            raise QueryError(f"queries {s.metric!r}: mcp-slo SLOs are defined on {OPERATIONS} (availability) and "
                             f"{OWN.bucket} (latency), or OpenTelemetry's {schemas.OTEL_DURATION} histogram")
        first.setdefault(which, s.metric)
    if len(first) > 1:
        raise QueryError(f"it mixes mcp-slo's metrics ({first[schemas.MCP_SLO]}) with OpenTelemetry's "
                         f"({first[schemas.OTEL]}): write each query against one schema")
    return next(iter(first))


# --- labels ---------------------------------------------------------------------------

def _labels(s: Selector) -> dict[str, Matcher]:
    """The selector's matchers by label, its metric name left out."""
    seen: dict[str, Matcher] = {}
    for m in s.matchers:
        if m.label in seen:
            raise QueryError(f"{s.metric} has two matchers on {m.label!r}")
        seen[m.label] = m
    seen.pop("__name__", None)
    return seen


def _no_version(seen: dict[str, Matcher]) -> None:
    if "version" in seen or schemas.SERVICE_VERSION in seen:
        raise QueryError("it selects a version: mcp-slo SLOs cover every version of a service "
                         "(canaries are judged separately)")


def _filter(s: Selector) -> Filter:
    seen = _labels(s)
    service = _equal(seen.pop("service", None))
    tool = _equal(seen.pop("tool", None))
    methods = _methods(seen.pop("method", None))
    allowed = {OPERATIONS: "status", BUCKET: "le"}.get(s.metric)
    seen.pop(allowed, None)
    _no_version(seen)
    if seen:
        label = next(iter(seen))
        raise QueryError(f"label {label!r} on {s.metric} is not supported: "
                         "mcp-slo SLIs select by service, method and tool only")
    return Filter(service, methods, tool)


def _equal(m: Matcher | None) -> str | None:
    if m is None:
        return None
    if m.op != "=":
        raise QueryError(f"{m.label} must be matched with =, not {m.op}")
    return m.value


def _methods(m: Matcher | None) -> tuple[str, ...]:
    if m is None:
        return ALL_METHODS
    if m.op not in ("=", "=~"):
        raise QueryError(f"{m.label} must be matched with = or =~, not {m.op}")
    methods = tuple(sorted(set(m.value.split("|")))) if m.op == "=~" else (m.value,)
    unknown = [x for x in methods if x not in names.CLIENT_METHODS]
    if unknown:
        raise QueryError(f"method {unknown[0]!r} is not an MCP client method "
                         '(=~ takes a list such as "tools/call|resources/read", not a pattern)')
    return methods


# --- mcp-slo's availability -------------------------------------------------------------

def _statuses(s: Selector) -> frozenset[str]:
    everything = frozenset(names.STATUSES)
    m = next((m for m in s.matchers if m.label == "status"), None)
    if m is None:
        return everything
    if m.op in ("=", "!="):
        if m.value not in everything:
            raise QueryError(f"status {m.value!r} is not one of {', '.join(names.STATUSES)}")
        chosen = frozenset({m.value})
    else:
        try:
            chosen = frozenset(x for x in everything if re.fullmatch(m.value, x))
        except re.error as exc:
            raise QueryError(f"status regex {m.value!r} is invalid: {exc}") from None
    return everything - chosen if m.op.startswith("!") else chosen


_EXPECTED = {
    "good": ({frozenset({"success"})}, 'status="success"'),
    "bad": ({frozenset({"error", "timeout"})}, 'status=~"error|timeout" (cancelled calls count neither way)'),
    "total": ({frozenset(names.STATUSES), frozenset({"success", "error", "timeout"})},
              'every status, or status!="cancelled"'),
}


def _availability(found: list[Selector], events: Events, flt: Filter) -> Part:
    if len(found) != 1:
        raise QueryError(f"select {OPERATIONS} once (with a status matcher for good or bad events)")
    allowed, hint = _EXPECTED[events]
    got = _statuses(found[0])
    if got not in allowed:
        shown = "|".join(x for x in names.STATUSES if x in got) or "nothing"
        raise QueryError(f"a {events} query selects {hint}; this one selects status {shown}")
    return Part("availability", flt)


# --- latency, either histogram -----------------------------------------------------------

def _le(s: Selector, h: Histogram) -> float:
    m = next((m for m in s.matchers if m.label == "le"), None)
    if m is None or m.op != "=":
        raise QueryError(f'{h.bucket} needs le="<threshold>" (one bucket bound)')
    try:
        return float(m.value)
    except ValueError:
        raise QueryError(f"le={m.value!r} is not a number") from None


def _is_total(s: Selector, h: Histogram) -> bool:
    return s.metric == h.count or (s.metric == h.bucket and math.isinf(_le(s, h)))


def _latency(query: str, found: list[Selector], events: Events, flt: Filter, h: Histogram) -> Part:
    schema = h.schema
    if events == "total":
        if len(found) == 1 and _is_total(found[0], h):
            return Part("latency", flt, schema=schema)
        raise QueryError(f'a latency total query selects {h.count} (or {h.bucket}{{le="+Inf"}}) once')
    if events == "good":
        if len(found) == 1 and not _is_total(found[0], h):
            return Part("latency", flt, _le(found[0], h), schema)
        raise QueryError(f'a latency good query selects {h.bucket}{{le="<threshold>"}} once')
    # bad = all - within threshold
    if (len(found) == 2 and _is_total(found[0], h) and not _is_total(found[1], h)
            and "-" in query[found[0].end:found[1].start]):
        return Part("latency", flt, _le(found[1], h), schema)
    raise QueryError(f'a latency bad query is {h.count}{{...}} - {h.bucket}{{le="<threshold>", ...}}')


# --- OpenTelemetry's semantic conventions ------------------------------------------------

# mcp-slo's labels -> what selects the same on OpenTelemetry's series
_OWN_LABELS = {"service": f"{schemas.FALLBACK_SERVICE_LABEL} or {schemas.SERVICE_NAME}", "method": schemas.METHOD,
               "tool": schemas.TOOL, "status": f'{schemas.ERROR_TYPE} ("" when no error)'}
_OTEL_MAPPED = (f"{schemas.METHOD}, {schemas.TOOL}, {schemas.ERROR_TYPE}, le, and {schemas.FALLBACK_SERVICE_LABEL} "
                f"or {schemas.SERVICE_NAME} (the service)")
# What error_type holds on a failed operation (the conventions' kinds of value): a matcher
# must treat them all alike, since mcp-slo counts every error as one status.
_ERROR_TYPES = ("tool_error", "-32602", "-32603", "timeout", "TimeoutError", "_OTHER")


def _read_otel(query: str, found: list[Selector], events: Events) -> Part:
    series = [s for s in found if s.metric != schemas.TARGET_INFO]
    if not series:
        raise QueryError(f"no {schemas.OTEL_DURATION} selector in the query ({schemas.TARGET_INFO} only "
                         "joins the service)")
    filters = {_otel_filter(s) for s in series}
    if len(filters) > 1:
        raise QueryError("its selectors filter service, method or tool differently")
    flt = _joined_service(filters.pop(), [s for s in found if s.metric == schemas.TARGET_INFO])
    if any(m.label == schemas.ERROR_TYPE for s in series for m in s.matchers):
        return _otel_availability(series, events, flt)
    if events == "total" and len(series) == 1 and _is_total(series[0], OTEL):
        return Part(None, flt, schema=schemas.OTEL)  # availability's total and latency's alike
    return _latency(query, series, events, flt, OTEL)


def _otel_service(seen: dict[str, Matcher]) -> str | None:
    """The service selected by job or service_name (both: the same one)."""
    chosen = {_equal(seen.pop(label, None)) for label in (schemas.SERVICE_NAME, schemas.FALLBACK_SERVICE_LABEL)}
    chosen.discard(None)
    if len(chosen) > 1:
        raise QueryError(f"{schemas.FALLBACK_SERVICE_LABEL} and {schemas.SERVICE_NAME} select different services: "
                         f"{', '.join(repr(s) for s in sorted(chosen))}")
    return chosen.pop() if chosen else None


def _no_other_labels(seen: dict[str, Matcher], metric: str) -> None:
    _no_version(seen)
    if not seen:
        return
    label = next(iter(seen))
    if label in _OWN_LABELS:
        raise QueryError(f"label {label!r} is mcp-slo's, not OpenTelemetry's: on {metric} select "
                         f"{_OWN_LABELS[label]}")
    raise QueryError(f"label {label!r} on {metric} cannot be mapped onto mcp-slo's SLIs: "
                     f"the importer maps {_OTEL_MAPPED} only")


def _otel_filter(s: Selector) -> Filter:
    seen = _labels(s)
    service = _otel_service(seen)
    tool = _equal(seen.pop(schemas.TOOL, None))
    methods = _methods(seen.pop(schemas.METHOD, None))
    if s.metric == OTEL.bucket:
        seen.pop("le", None)
        if schemas.ERROR_TYPE in seen:
            raise QueryError(f"{schemas.ERROR_TYPE} on {OTEL.bucket}: mcp-slo's latency SLIs count every "
                             "finished operation, failed ones too")
    else:
        seen.pop(schemas.ERROR_TYPE, None)
    _no_other_labels(seen, s.metric)
    return Filter(service, methods, tool)


def _joined_service(flt: Filter, resources: list[Selector]) -> Filter:
    """`flt` with the service a joined target_info{service_name="x"} selects."""
    for s in resources:
        seen = _labels(s)
        service = _otel_service(seen)
        _no_other_labels(seen, s.metric)
        if service is None:
            continue
        if flt.service not in (None, service):
            raise QueryError(f"{schemas.TARGET_INFO} selects service {service!r} but the series select "
                             f"{flt.service!r}")
        flt = dataclasses.replace(flt, service=service)
    return flt


def _error_classes(s: Selector) -> frozenset[str]:
    """What an error_type matcher selects: "ok" (no error, error_type=""), "error" (any error)."""
    m = next((m for m in s.matchers if m.label == schemas.ERROR_TYPE), None)
    if m is None:
        return frozenset({"ok", "error"})

    def selects(value: str) -> bool:
        if m.op in ("=", "!="):
            return (value == m.value) == (m.op == "=")
        try:
            return bool(re.fullmatch(m.value, value)) == (m.op == "=~")
        except re.error as exc:
            raise QueryError(f"{schemas.ERROR_TYPE} regex {m.value!r} is invalid: {exc}") from None

    errors = {selects(value) for value in _ERROR_TYPES}
    if len(errors) > 1:
        raise QueryError(f"{schemas.ERROR_TYPE}{m.op}{m.value!r} selects some errors only: mcp-slo counts every "
                         f'error alike ({schemas.ERROR_TYPE}!="")')
    return frozenset({"ok"} if selects("") else set()) | ({"error"} if errors.pop() else set())


_OTEL_EXPECTED = {
    "good": (frozenset({"ok"}), f'{schemas.ERROR_TYPE}="" (no error)'),
    "bad": (frozenset({"error"}), f'{schemas.ERROR_TYPE}!="" (any error, timeouts too)'),
    "total": (frozenset({"ok", "error"}), f"every operation (no {schemas.ERROR_TYPE} matcher)"),
}


def _otel_availability(series: list[Selector], events: Events, flt: Filter) -> Part:
    if len(series) != 1 or series[0].metric != OTEL.count:
        raise QueryError(f"select {OTEL.count} once, with an {schemas.ERROR_TYPE} matcher for good or bad "
                         "events (a latency query counts every operation, failed ones too)")
    expected, hint = _OTEL_EXPECTED[events]
    got = _error_classes(series[0])
    if got != expected:
        shown = {frozenset({"ok"}): "operations without an error", frozenset({"error"}): "errors",
                 frozenset({"ok", "error"}): "every operation"}.get(got, "nothing")
        raise QueryError(f"a {events} query selects {hint}; this one selects {shown}")
    return Part("availability" if events != "total" else None, flt, schema=schemas.OTEL)

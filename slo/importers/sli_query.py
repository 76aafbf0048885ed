"""Read the PromQL of an imported SLI and map it onto one of mcp-slo's SLIs.

mcp-slo's SLIs are fixed (docs/DESIGN.md): availability counts
mcp_operations_total (good: status success; bad: error or timeout; cancelled
neither) and latency counts mcp_operation_duration_seconds buckets (good: within
the threshold, a bucket bound). An OpenSLO or Sloth query is accepted when it
selects exactly that, filtered by service, method and tool. mcp-slo then builds
its own queries from the model, so no imported text ever reaches Prometheus.

Accepted selectors (any aggregation, function and range around them):

    availability  good   mcp_operations_total{status="success", method="tools/call"}
                  bad    mcp_operations_total{status=~"error|timeout", method="tools/call"}
                  total  mcp_operations_total{method="tools/call"}   (or status!="cancelled")
    latency       good   mcp_operation_duration_seconds_bucket{le="0.5", method="tools/call"}
                  bad    ..._count{method="tools/call"} - ..._bucket{le="0.5", method="tools/call"}
                  total  mcp_operation_duration_seconds_count{method="tools/call"}  (or _bucket{le="+Inf"})

A query with no method matcher covers every method (the SLO's `methods: ["*"]`):
`mcp_operations_total{service="filesystem",status="success"}` over
`mcp_operations_total{service="filesystem"}` is the availability of every method of
filesystem, the methods outside the MCP specification (`other`) too.

A total with no status matcher also counts cancelled calls; mcp-slo never does,
so the imported SLO measures slightly fewer events than the query said.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from collector import names
from slo.promql import ALL_METHODS

OPERATIONS = names.OPERATIONS_TOTAL
BUCKET = f"{names.OPERATION_DURATION}_bucket"
COUNT = f"{names.OPERATION_DURATION}_count"

Kind = Literal["availability", "latency"]
Events = Literal["good", "bad", "total"]


class QueryError(ValueError):
    """A query mcp-slo cannot map onto its SLIs; the importer adds file and key path."""


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str  # = != =~ !~
    value: str


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[Matcher, ...]
    start: int  # offsets in the query, to tell `a - b` from `a + b`
    end: int


@dataclass(frozen=True)
class Filter:
    service: str | None
    methods: tuple[str, ...]  # ALL_METHODS: no method matcher
    tool: str | None


@dataclass(frozen=True)
class Part:
    """What one query counts."""

    kind: Kind
    filter: Filter
    threshold: float | None = None


# --- lexing: just enough PromQL to find the vector selectors -------------------

_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = _LABEL_LISTS | {"bool", "and", "or", "unless", "offset", "inf", "nan"}
_GROUPING = re.compile(r"(by|without)\s*\(", re.IGNORECASE)  # `sum by (x) (...)`
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


def selectors(query: str) -> list[Selector]:
    """The vector selectors in `query`, in order; QueryError if it cannot be read."""
    text = query
    out: list[Selector] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "[":  # range or subquery: durations, or Sloth's {{.window}}
            end = text.find("]", i)
            if end < 0:
                raise QueryError(f"unclosed '[' at character {i + 1}")
            i = end + 1
        elif c in "\"'`":  # a string argument, e.g. of label_replace
            i = _string(text, i)[1]
        elif c == "{":
            matchers, end = _matchers(text, i)
            out.append(Selector(_metric_name(matchers, i), matchers, i, end))
            i = end
        elif c.isdigit() or c == ".":  # numbers and durations (offset 5m)
            while i < n and (text[i].isalnum() or text[i] in "._"):
                i += 1
        elif match := _IDENT.match(text, i):
            word, after = match.group(), _skip_space(text, match.end())
            if word.lower() in _LABEL_LISTS and text.startswith("(", after):
                close = text.find(")", after)
                i = close + 1 if close >= 0 else n
            elif text.startswith("(", after) or word.lower() in _KEYWORDS or _GROUPING.match(text, after):
                i = match.end()  # a function, an aggregation or a keyword
            elif text.startswith("{", after):
                matchers, i = _matchers(text, after)
                out.append(Selector(word, matchers, match.start(), i))
            else:
                out.append(Selector(word, (), match.start(), match.end()))
                i = match.end()
        else:
            i += 1  # operators and parentheses
    return out


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _string(text: str, i: int) -> tuple[str, int]:
    """Decode the string literal starting at text[i]; returns (value, index after it)."""
    quote, i, value = text[i], i + 1, []
    while i < len(text):
        c = text[i]
        if c == quote:
            return "".join(value), i + 1
        if c == "\\" and quote != "`" and i + 1 < len(text):
            i += 1
            value.append(_ESCAPES.get(text[i], text[i]))
        else:
            value.append(c)
        i += 1
    raise QueryError(f"unterminated string starting with {quote}")


def _matchers(text: str, i: int) -> tuple[tuple[Matcher, ...], int]:
    """Parse `{label op "value", ...}` starting at the brace."""
    found: list[Matcher] = []
    i = _skip_space(text, i + 1)
    while not text.startswith("}", i):
        label = _LABEL.match(text, i)
        if not label:
            raise QueryError(f"cannot read the label matcher at character {i + 1}")
        i = _skip_space(text, label.end())
        op = next((o for o in ("=~", "!~", "!=", "=") if text.startswith(o, i)), None)
        if op is None:
            raise QueryError(f"expected =, !=, =~ or !~ after {label.group()!r}")
        i = _skip_space(text, i + len(op))
        if i >= len(text) or text[i] not in "\"'`":
            raise QueryError(f"the value of {label.group()!r} must be a quoted string")
        value, i = _string(text, i)
        found.append(Matcher(label.group(), op, value))
        i = _skip_space(text, i)
        if text.startswith(",", i):
            i = _skip_space(text, i + 1)
        elif not text.startswith("}", i):
            raise QueryError(f"expected ',' or '}}' at character {i + 1}")
    return tuple(found), i + 1


def _metric_name(matchers: tuple[Matcher, ...], where: int) -> str:
    for m in matchers:
        if m.label == "__name__" and m.op == "=":
            return m.value
    raise QueryError(f"the selector at character {where + 1} has no metric name")


# --- mapping onto mcp-slo's SLIs ------------------------------------------------

def read(query: str, events: Events) -> Part:
    """What `query` counts, as the good, bad or total events of an mcp-slo SLI."""
    if not isinstance(query, str) or not query.strip():
        raise QueryError("the query is empty")
    found = selectors(query)
    if not found:
        raise QueryError("no metric selector in the query")
    for s in found:
        if s.metric not in (OPERATIONS, BUCKET, COUNT):
            raise QueryError(f"queries {s.metric!r}: mcp-slo SLOs are defined on {OPERATIONS} (availability) "
                             f"and {BUCKET} (latency)")
    filters = {_filter(s) for s in found}
    if len(filters) > 1:
        raise QueryError("its selectors filter service, method or tool differently")
    (flt,) = filters
    if all(s.metric == OPERATIONS for s in found):
        return _availability(found, events, flt)
    if any(s.metric == OPERATIONS for s in found):
        raise QueryError(f"it mixes {OPERATIONS} with the duration histogram")
    return _latency(query, found, events, flt)


def ratio(good_or_bad: Part, total: Part, events: Events) -> Part:
    """The SLI of a good (or bad) and a total query; QueryError when they disagree."""
    if good_or_bad.kind != total.kind:
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


def _filter(s: Selector) -> Filter:
    seen: dict[str, Matcher] = {}
    for m in s.matchers:
        if m.label in seen:
            raise QueryError(f"{s.metric} has two matchers on {m.label!r}")
        seen[m.label] = m
    service = _equal(seen.pop("service", None))
    tool = _equal(seen.pop("tool", None))
    methods = _methods(seen.pop("method", None))
    seen.pop("__name__", None)
    allowed = {OPERATIONS: "status", BUCKET: "le"}.get(s.metric)
    seen.pop(allowed, None)
    if "version" in seen:
        raise QueryError("it selects a version: mcp-slo SLOs cover every version of a service "
                         "(canaries are judged separately)")
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
        raise QueryError(f"method must be matched with = or =~, not {m.op}")
    methods = tuple(sorted(set(m.value.split("|")))) if m.op == "=~" else (m.value,)
    unknown = [x for x in methods if x not in names.CLIENT_METHODS]
    if unknown:
        raise QueryError(f"method {unknown[0]!r} is not an MCP client method "
                         '(=~ takes a list such as "tools/call|resources/read", not a pattern)')
    return methods


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


def _le(s: Selector) -> float:
    m = next((m for m in s.matchers if m.label == "le"), None)
    if m is None or m.op != "=":
        raise QueryError(f'{BUCKET} needs le="<threshold>" (one bucket bound)')
    try:
        return float(m.value)
    except ValueError:
        raise QueryError(f"le={m.value!r} is not a number") from None


def _is_total(s: Selector) -> bool:
    return s.metric == COUNT or (s.metric == BUCKET and math.isinf(_le(s)))


def _latency(query: str, found: list[Selector], events: Events, flt: Filter) -> Part:
    if events == "total":
        if len(found) == 1 and _is_total(found[0]):
            return Part("latency", flt)
        raise QueryError(f'a latency total query selects {COUNT} (or {BUCKET}{{le="+Inf"}}) once')
    if events == "good":
        if len(found) == 1 and not _is_total(found[0]):
            return Part("latency", flt, _le(found[0]))
        raise QueryError(f'a latency good query selects {BUCKET}{{le="<threshold>"}} once')
    # bad = all - within threshold
    if (len(found) == 2 and _is_total(found[0]) and not _is_total(found[1])
            and "-" in query[found[0].end:found[1].start]):
        return Part("latency", flt, _le(found[1]))
    raise QueryError(f'a latency bad query is {COUNT}{{...}} - {BUCKET}{{le="<threshold>", ...}}')

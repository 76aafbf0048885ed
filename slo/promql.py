"""Every PromQL expression mcp-slo runs or writes: rules, engine queries, dashboards.

Nothing else in the project writes a query string. Label values are escaped
here (`quote`, `matcher`), so a service, tool or method name can never change
the shape of a query, whatever it contains.

The SLI of an objective is a pair of event rates over a window, summed by
service (and tool, for per-tool objectives), across all services at once:

    availability  total = mcp_operations_total{method in methods, status!="cancelled"}
                  bad   = the same with status "error" or "timeout"
    latency       total = mcp_operation_duration_seconds_count{method in methods}
                  bad   = total - the bucket le="<threshold>" (finished in time)

with no method matcher at all for an objective over every method (`ALL_METHODS`).

Recording rules store those rates per window (`sli_total`, `sli_bad`), then the
error ratio bad / total (`error_ratio`). Windows up to `LONGEST_RAW_WINDOW` are
computed from the raw counters; longer ones from recorded rates, traffic-weighted: the
ratio of averaged rates is the ratio of event counts, never an average of ratios.
Up to `LONGEST_BASE_WINDOW` (3d) they average the 5m rates recorded every evaluation.
Longer ones (the SLO windows) add up the hourly averages of those 5m rates, which their
own rule group records once an hour (`hourly`): the samples tile time, so a 30-day window reads 720 samples a
series instead of 43,200 and costs less than the 1h rule on the raw counters. The hours
end at the last hourly evaluation, up to an hour ago: the rule adds the time since then
from the recorded 5m, 30m and 1h rates (interpolated) and takes off the same span one
window back, from the same rates then (`long_window_rate`).

Maintenance windows reach the rules through the engine's gauge MAINTENANCE (1 per SLO series
and mode while a window covers it): the SLO alerts are held back while one covers their
series (`held_back`, `service_held_back`), and an `exclude` window's events leave the
recorded rates (`leaving_out_excluded`: the 5m rates are dropped while it is on and 5m after,
the raw windows then average the 5m rates left). Without the gauge every value is as before.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

from collector import names
from slo import schema as schema_

# An SLI's methods for every method, those outside the MCP specification (`other`) too:
# its selectors have no method matcher. A spec writes it `methods: ["*"]`.
ALL_METHODS = ("*",)

# --- escaping and matchers -------------------------------------------------------------

_STRING_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# RE2 metacharacters; everything else in a label value stands for itself.
_REGEX_META = frozenset("\\.+*?()|[]{}^$")


def escape(value: str) -> str:
    """The body of a double-quoted PromQL string for `value`: backslash, double quote
    and line breaks escaped."""
    return "".join(_STRING_ESCAPES.get(c, c) for c in str(value))


def quote(value: str) -> str:
    """`value` as a PromQL string literal."""
    return f'"{escape(value)}"'


def regex_escape(value: str) -> str:
    """A regular expression (RE2) matching exactly `value`."""
    return "".join(f"\\{c}" if c in _REGEX_META else c for c in str(value))


def matcher(label: str, op: str, value: str) -> str:
    """One label matcher, e.g. `service="a"`; `value` is escaped (for =~ and !~ it is a regex,
    so escape it with `regex_escape` first when it holds names)."""
    if op not in ("=", "!=", "=~", "!~"):
        raise ValueError(f"not a label matcher operator: {op!r}")
    if not label.isidentifier() or not label.isascii():
        raise ValueError(f"not a label name: {label!r}")
    return f"{label}{op}{quote(value)}"


def _any(label: str, values: Iterable[str], equal: str, regex: str) -> str:
    values = sorted(set(values))
    if not values:
        raise ValueError(f"a {label!r} matcher needs at least one value")
    if len(values) == 1:
        return matcher(label, equal, values[0])
    return matcher(label, regex, "|".join(regex_escape(v) for v in values))


def one_of(label: str, values: Iterable[str]) -> str:
    """`label="v"` for one value, `label=~"a|b"` for several (names matched literally)."""
    return _any(label, values, "=", "=~")


def none_of(label: str, values: Iterable[str]) -> str:
    """`label!="v"` for one value, `label!~"a|b"` for several (names matched literally)."""
    return _any(label, values, "!=", "!~")


def selector(metric: str, matchers: Sequence[str] = ()) -> str:
    """`metric{m1,m2}`; `matchers` come from `matcher`, `one_of` or `none_of`."""
    return f"{metric}{{{','.join(matchers)}}}" if matchers else metric


def number(value: float) -> str:
    """A float literal without binary noise: 0.9990000000000001 -> 0.999."""
    if math.isinf(value) or math.isnan(value):
        raise ValueError(f"not a finite number: {value}")
    return f"{value:.12g}"


def le(bound: float) -> str:
    """A histogram bucket bound as prometheus-client writes it in `le`: 0.5 -> "0.5", 1 -> "1.0"."""
    return floatToGoString(bound)


# --- reading the raw metrics under a schema ----------------------------------------------
# Every read of the exporters' metrics goes through `read`, which writes it for the schema
# (slo.schema): mcp-slo's names, OpenTelemetry's, or both (`auto`). A read names mcp-slo's
# metric and matchers on mcp-slo's labels; the OpenTelemetry side reads the histogram, joins
# the resource, computes mcp-slo's labels (`_normalised`) and matches them after. Both sides
# are aggregated to the same labels and joined with `or`, mcp-slo's first: a service that
# exports both is counted once.

_MATCHER = re.compile(r'\A([A-Za-z_]\w*)(=~|!~|!=|=)"((?:[^"\\]|\\.)*)"\Z')
_UNESCAPES = {v: k for k, v in _STRING_ESCAPES.items()}
# a Grafana template variable in a value ($service, ${service:regex}): it stands for itself
_TEMPLATE_VARIABLE = re.compile(r"(\$\w+|\$\{\w+(?::\w+)?\})")
_OTEL_OF = {names.OPERATIONS_TOTAL: f"{schema_.OTEL_DURATION}_count",  # every finished operation
            f"{names.OPERATION_DURATION}_count": f"{schema_.OTEL_DURATION}_count",
            f"{names.OPERATION_DURATION}_bucket": f"{schema_.OTEL_DURATION}_bucket"}
_STATUSES = {names.SUCCESS: f'{schema_.ERROR_TYPE}=""', names.ERROR: f'{schema_.ERROR_TYPE}!=""'}


def _parse(matcher_: str) -> tuple[str, str, str]:
    """(label, op, value) of a matcher written by `matcher`."""
    m = _MATCHER.match(matcher_)
    if not m:
        raise ValueError(f"not a label matcher: {matcher_!r}")
    value = re.sub(r"\\.", lambda e: _UNESCAPES.get(e.group(0), e.group(0)[1]), m.group(3))
    return m.group(1), m.group(2), value


def _as_regex(op: str, value: str) -> str:
    """The regex a matcher's value matches (label_replace anchors it as a matcher does)."""
    if op in ("=~", "!~"):
        return value
    return "".join(part if _TEMPLATE_VARIABLE.fullmatch(part) else regex_escape(part)
                   for part in _TEMPLATE_VARIABLE.split(value))


def _accepts(op: str, value: str, candidate: str) -> bool:
    if op in ("=", "!="):
        return (candidate == value) == (op == "=")
    return bool(re.fullmatch(value, candidate)) == (op == "=~")


def _window(window: float | str) -> str:
    return window if isinstance(window, str) else duration(window)


def le_matcher(bound: float, schema: str = schema_.MCP_SLO) -> str:
    """The bucket of `bound`: le="1.0" as mcp-slo writes it; for OpenTelemetry, whose exporters
    write the bound as given ("1" or "1.0"), either."""
    if schema == schema_.MCP_SLO:
        return matcher("le", "=", le(bound))
    return one_of("le", {le(bound), f"{bound:g}"})


def _otel_side(metric: str, matchers: Sequence[str], labels: set[str]) -> tuple[list[str], list[tuple[str, str, str]]]:
    """The OpenTelemetry selector's matchers and the matchers left for after normalising."""
    raw, after = [], []
    for m in matchers:
        label, op, value = _parse(m)
        if label in schema_.RAW_LABELS:
            raw.append(matcher(schema_.RAW_LABELS[label], op, value))
        elif label == "le":
            raw.append(m)
        elif label == "status" and "$" not in value:
            accepted = {s for s in _STATUSES if _accepts(op, value, s)}
            if accepted != set(_STATUSES):
                raw += [_STATUSES[s] for s in accepted] or [f'{schema_.ERROR_TYPE}="", {schema_.ERROR_TYPE}!=""']
        else:
            after.append((label, op, value))
            labels.add(label)
    return raw, after


def _normalised(expr: str, labels: set[str], bucket: bool) -> str:
    """`expr` (OpenTelemetry series, after rate or increase) with mcp-slo's `labels` computed:
    the resource joined from target_info (series without one keep theirs: promoted resource
    attributes), then service, version, method, tool, status as slo.schema says, and `le`
    in mcp-slo's spelling ("1" -> "1.0") so both schemas' buckets add up."""
    if labels & {"service", "version"}:
        on = ", ".join(schema_.RESOURCE_JOIN)
        resource = f"{schema_.SERVICE_NAME}, {schema_.SERVICE_VERSION}"
        expr = (f"({expr} * on ({on}) group_left ({resource}) {schema_.TARGET_INFO}"
                f" or ({expr} unless on ({on}) {schema_.TARGET_INFO}))")
    steps = {
        "service": [("$1", schema_.FALLBACK_SERVICE_LABEL, "(.*)"), ("$1", schema_.SERVICE_NAME, "(.+)")],
        "version": [(schema_.UNKNOWN_VERSION, "", ""), ("$1", schema_.SERVICE_VERSION, "(.+)")],
        "method": [("$1", schema_.METHOD, "(.*)")],
        "tool": [("$1", schema_.TOOL, "(.*)")],
        "status": [(names.SUCCESS, "", ""), (names.ERROR, schema_.ERROR_TYPE, ".+")],
    }
    for label in (label for label in steps if label in labels):
        for replacement, source, regex in steps[label]:
            expr = f"label_replace({expr}, {quote(label)}, {quote(replacement)}, {quote(source)}, {quote(regex)})"
    if bucket:
        expr = f'label_replace({expr}, "le", "$1.0", "le", "([0-9]+)")'
    return expr


def _where(expr: str, label: str, op: str, value: str) -> str:
    """The series of `expr` whose `label` matches (a matcher on a computed label): label_replace
    marks the matching ones, and `unless` (or `and`, for != and !~) the unmarked vector(1)
    keeps them."""
    mark = f"mcp_slo_match_{label}"
    marked = f"label_replace({expr}, {quote(mark)}, \"1\", {quote(label)}, {quote(_as_regex(op, value))})"
    keep = "unless" if op in ("=", "=~") else "and"
    return f"({marked} {keep} on ({mark}) vector(1))"


def read(metric: str, matchers: Sequence[str] = (), by: Sequence[str] = (), *, function: str | None = None,
         window: float | str | None = None, aggregation: str = "sum", schema: str = schema_.AUTO,
         threshold: float | None = None) -> str:
    """`aggregation by (by) (function(metric{matchers}[window]))` for `schema`: `metric` and the
    matchers are mcp-slo's (the operations counter, the duration histogram's _count or _bucket,
    the active gauge), `threshold` the bucket of a latency bound; without `function`, the
    instant series. Under `auto`, mcp-slo's and OpenTelemetry's, mcp-slo's first."""
    def around(series: str) -> str:
        return f"{function}({series}[{_window(window)}])" if function else series

    group = f"{aggregation} by ({', '.join(by)})"
    parts = []
    if schema_.includes(schema, schema_.MCP_SLO) or metric not in _OTEL_OF:  # no OpenTelemetry gauge
        own = [*matchers, *([le_matcher(threshold)] if threshold is not None else [])]
        parts.append(f"{group} ({around(selector(metric, own))})")
    if schema_.includes(schema, schema_.OTEL) and metric in _OTEL_OF:
        labels = set(by)
        raw, after = _otel_side(metric, matchers, labels)
        if threshold is not None:
            raw.append(le_matcher(threshold, schema_.OTEL))
        expr = _normalised(around(selector(_OTEL_OF[metric], raw)), labels, "le" in labels)
        for label, op, value in after:
            expr = _where(expr, label, op, value)
        parts.append(f"{group} ({expr})")
    return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"


# --- windows and recorded series names ---------------------------------------------------

SHORT_WINDOWS = (300, 1800, 3600, 7200, 21600)  # 5m 30m 1h 2h 6h
LONG_WINDOWS = (86400, 259200)  # 1d 3d
BASE_WINDOW = 300  # the recorded rate windows up to LONGEST_BASE_WINDOW are averaged from
LONGEST_RAW_WINDOW = 21600  # longer windows average recorded rates
LONGEST_BASE_WINDOW = 259200  # longer windows average the HOURLY_WINDOW rates sampled hourly
HOURLY_WINDOW = 3600  # sampled once per window by the hourly group: the samples tile time


def duration(seconds: float) -> str:
    """A window as a Prometheus duration in its largest whole unit of d, h, m, s:
    30d, 6h, 84m, 1344m (never weeks, so "7d" stays "7d")."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    raise ValueError(f"a window is a whole number of seconds, got {seconds}")


PREFIX = "mcp_slo"
SLI_TOTAL = f"{PREFIX}:sli_total"  # valid events per second (good + bad)
SLI_BAD = f"{PREFIX}:sli_bad"  # bad events per second
ERROR_RATIO = f"{PREFIX}:error_ratio"  # bad / total
OBJECTIVE = f"{PREFIX}:objective"  # the target as a fraction, e.g. 0.999
ERROR_BUDGET = f"{PREFIX}:error_budget"  # 1 - objective
INFO = f"{PREFIX}:info"  # 1, with kind, window and threshold labels
HOURLY_TIME = f"{PREFIX}:hourly_timestamp"  # when the hourly group last sampled the 1h rates
# The hourly samples average the 5m rates recorded each evaluation. A 5m rate counts the 5
# minutes before its instant, so an hour of them counts the events from 5m before its first
# instant to its last, the first and last 5m weighted on a ramp: as if the hour ended half
# of 5m earlier (the last instant is on average half an interval before the hourly sample,
# and the ramp is (5m - interval) / 2 long, together 5m / 2 whatever the interval).
HOURS_LAG = BASE_WINDOW // 2
BUDGET_REMAINING = f"{PREFIX}:error_budget_remaining"  # over the SLO window: 1 - error_ratio / error_budget

# The labels that identify one SLO series: (service, slo) or, per tool, (service, tool, slo).
# A service-level series has no tool label, which PromQL matches as tool="".
SLO_LABELS = ("service", "slo", "tool")
ON_SLO = f"on ({', '.join(SLO_LABELS)})"


def recorded(name: str, window: float) -> str:
    """The recorded series for a window: recorded(SLI_TOTAL, 300) -> mcp_slo:sli_total:rate5m."""
    return f"{name}:rate{duration(window)}"


# --- SLIs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Which services (and tool) one SLI rule covers: the services named in `include`, or
    every service except those in `exclude` (all of them when both are empty); `tool` for
    a per-tool objective."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    tool: str | None = None

    def __post_init__(self) -> None:
        if self.include and self.exclude:
            raise ValueError("a scope either includes or excludes services, not both")
        if self.tool is not None and not self.include:
            raise ValueError("a per-tool scope names its service")

    @property
    def by(self) -> tuple[str, ...]:
        return ("service", "tool") if self.tool is not None else ("service",)

    def matchers(self) -> list[str]:
        """Matchers on the raw metrics."""
        out = []
        if self.include:
            out.append(one_of("service", self.include))
        elif self.exclude:
            out.append(none_of("service", self.exclude))
        if self.tool is not None:
            out.append(matcher("tool", "=", self.tool))
        return out

    def recorded_matchers(self, slo: str) -> list[str]:
        """Matchers on recorded SLO series: this scope's services and this SLO only."""
        out = [matcher("slo", "=", slo), *self.matchers()]
        if self.tool is None:
            out.append(matcher("tool", "=", ""))  # not the per-tool series of the same SLO
        return out


@dataclass(frozen=True)
class SLI:
    """What counts as a valid and as a bad event for one SLO, and for whom."""

    slo: str
    kind: str  # availability | latency
    methods: tuple[str, ...]
    threshold: float | None = None
    scope: Scope = Scope()
    schema: str = schema_.AUTO  # which metrics it reads (slo.schema)

    def __post_init__(self) -> None:
        schema_.check(self.schema)
        if self.kind not in ("availability", "latency"):
            raise ValueError(f"unknown SLI kind {self.kind!r}")
        if (self.kind == "latency") != (self.threshold is not None):
            raise ValueError("a latency SLI has a threshold, an availability SLI none")

    def _matchers(self) -> list[str]:
        methods = [] if self.methods == ALL_METHODS else [one_of("method", self.methods)]
        return [*self.scope.matchers(), *methods]

    def _by(self) -> str:
        return f"sum by ({', '.join(self.scope.by)})"

    def _on(self) -> str:
        return f"on ({', '.join(self.scope.by)})"

    def _total_series(self, function: str, window: float) -> str:
        if self.kind == "availability":
            return self._sum(function, names.OPERATIONS_TOTAL, [matcher("status", "!=", names.CANCELLED)], window)
        # cancelled operations are not observed in the histogram
        return self._sum(function, f"{names.OPERATION_DURATION}_count", [], window)

    def _error_series(self, function: str, window: float) -> str:
        """availability: the bad events, errors and timeouts."""
        return self._sum(function, names.OPERATIONS_TOTAL, [one_of("status", (names.ERROR, names.TIMEOUT))], window)

    def _good_series(self, function: str, window: float) -> str:
        """latency: the good events, requests within the threshold (bad = total - good)."""
        return self._sum(function, f"{names.OPERATION_DURATION}_bucket", [], window, self.threshold)

    def _sum(self, function: str, metric: str, matchers: list[str], window: float,
             threshold: float | None = None) -> str:
        return read(metric, [*self._matchers(), *matchers], self.scope.by, function=function, window=window,
                    schema=self.schema, threshold=threshold)

    def total_rate(self, window: float) -> str:
        """Valid events per second over `window`, from the raw metrics."""
        return self._total_series("rate", window)

    def bad_rate(self, window: float) -> str:
        """Bad events per second over `window`, from the raw metrics and the recorded total
        of the same window (which must be recorded first, in the same rule group).

        availability: errors and timeouts, or 0 where the service has had none (a service
        that never failed has no error series, and its error ratio must be 0, not missing).
        latency: total minus the requests that finished within the threshold.
        """
        total = selector(recorded(SLI_TOTAL, window), self.scope.recorded_matchers(self.slo))
        if self.kind == "availability":
            return f"{self._error_series('rate', window)} or {self._on()} 0 * {total}"
        return f"{total} - {self._on()} {self._good_series('rate', window)}"

    def recorded_rate(self, name: str, window: float) -> str:
        """What the rules record for SLI_TOTAL or SLI_BAD over `window` (up to
        LONGEST_RAW_WINDOW): `total_rate` or `bad_rate`, leaving out the events of `exclude`
        maintenance windows (`leaving_out_excluded`)."""
        raw = self.total_rate(window) if name == SLI_TOTAL else self.bad_rate(window)
        averaged = selector(recorded(name, BASE_WINDOW), self.scope.recorded_matchers(self.slo))
        return leaving_out_excluded(raw, averaged, self.slo, window)

    def raw_parts(self, window: float, function: str = "rate") -> dict[str, str]:
        """The SLI's event rates over `window` (or counts, with function="increase") from the
        raw metrics, without reference to recorded series: "total" and "bad" for
        availability (where a service had no errors "bad" is missing: 0), "total" and
        "good" for latency (bad = total - good)."""
        if self.kind == "availability":
            return {"total": self._total_series(function, window), "bad": self._error_series(function, window)}
        return {"total": self._total_series(function, window), "good": self._good_series(function, window)}

    def exact_counts(self, window: float) -> tuple[str, str]:
        """(valid, bad) events over `window` from `increase` of the raw counters. Exact, and
        expensive (it reads every raw sample of the window): for checking the rules, not
        for rules. Where a service had no errors, the bad count is missing, not 0."""
        parts = self.raw_parts(window, "increase")
        if self.kind == "availability":
            return parts["total"], parts["bad"]
        return parts["total"], f"{parts['total']} - {self._on()} {parts['good']}"


def hourly(name: str) -> str:
    """The series the hourly group records a window's rate into: hourly(SLI_TOTAL) ->
    mcp_slo:sli_total:rate1h_hourly. One sample an hour, each `hourly_average` of the hour
    before it; read it only with range functions (an instant query finds it only briefly)."""
    return f"{recorded(name, HOURLY_WINDOW)}_hourly"


def hourly_average(name: str) -> str:
    """The average of the recorded 5m rates over the last hour. The 5m windows, a minute
    apart, weigh every instant alike, across hour boundaries too: the hourly samples add
    up to exactly what averaging the 5m rates over the whole window gives. (rate(...[1h])
    of the raw counters would not: with sparse errors, its extrapolation of each hour's
    first and last sample can be off by several percent, hour after hour.)"""
    return f"avg_over_time({recorded(name, BASE_WINDOW)}[{duration(HOURLY_WINDOW)}])"


def now() -> str:
    """The evaluation time as a series (the hourly group records it as HOURLY_TIME)."""
    return "vector(time())"


def averaged_rate(name: str, window: float) -> str:
    """A long window's rate (SLI_TOTAL or SLI_BAD), for every SLO at once: up to 3d the
    average of the recorded 5m rates; beyond, `long_window_rate`."""
    if window > LONGEST_BASE_WINDOW:
        return long_window_rate(name, window)
    return f"avg_over_time({recorded(name, BASE_WINDOW)}[{duration(window)}])"


def long_window_rate(name: str, window: float) -> str:
    """Events per second over `window` from the hourly averages of the 5m rates.

    The samples in the window cover the hours up to the last hourly evaluation (under an
    hour ago, unless one was missed) less HOURS_LAG, `lag` seconds ago: their sum times
    3600 counts the events of the window shifted back by `lag`. Add the events of the last
    `lag` seconds and take off those of the same span one window back, just before the
    window (both `since_last_hour`; the rules' recorded rates are kept as long as the hourly
    samples). The terms are added with `sum without (part)` so that a missing one counts 0:
    a service younger than the window has no rates one window back, one younger than an hour
    no samples yet, one that stopped no current rate. Dividing by the whole window keeps
    rate x window = events for a young service too (the error ratio is a ratio of counts
    either way)."""
    hourly_ = hourly(name)
    # 2h: a late or missed hourly evaluation (and the join of backfilled and live samples)
    # leaves a longer lag, still best filled from the current rates. The hours' counts end
    # HOURS_LAG before the last sample's time.
    lag = f"(time() - max_over_time({HOURLY_TIME}[2h]) + {HOURS_LAG} or vector(0))"
    terms = {
        "hours": f"sum_over_time({hourly_}[{duration(window)}]) * {HOURLY_WINDOW}",
        **since_last_hour(name, lag),
        **since_last_hour(name, lag, offset=window),
    }
    parts = "\n  or ".join(f'label_replace({expr}, "part", "{part}", "", "")' for part, expr in terms.items())
    return f"sum without (part) (\n  {parts}\n) / {number(window)}"


SINCE_WINDOWS = (BASE_WINDOW, 1800, HOURLY_WINDOW)  # the recorded rates the lag is read from


def since_last_hour(name: str, lag: str, offset: float = 0) -> dict[str, str]:
    """The events of the last `lag` seconds (a one-sample vector) as parts to add up; with
    `offset`, those of the same span `offset` seconds back, negated (parts to take off).

    A window's recorded rate times its length counts the events of the last 5m, 30m and 1h
    exactly; in between, the count is interpolated linearly (the rate taken constant only
    over the 5m, 25m or 30m between two of them), beyond an hour continued at the 1h rate.
    Each rate is weighted by how much of its stretch the lag covers. (The 1h rate alone,
    taken constant over the whole lag, was off by a fifth of the lag's events where the
    traffic doubles within the hour, 0.2% of a 30-day window's count in the demo.)"""
    def covered(lo: float, hi: float | None) -> str:
        # seconds of (lo, hi] the lag covers, as a scalar
        past = f"{lag} - {number(lo)}" if lo else lag
        return f"scalar(clamp_min({past}, 0))" if hi is None else f"scalar(clamp({past}, 0, {number(hi - lo)}))"

    w5, w30, w1h = SINCE_WINDOWS
    weights = {
        # the 5m count over the first 5m, then what it leaves of the 30m count over the next 25m
        w5: f"({covered(0, w5)} - {covered(w5, w30)} * {number(w5 / (w30 - w5))})",
        w30: f"({covered(w5, w30)} * {number(w30 / (w30 - w5))} - {covered(w30, w1h)} * {number(w30 / (w1h - w30))})",
        w1h: f"({covered(w30, w1h)} * {number(w1h / (w1h - w30))} + {covered(w1h, None)})",
    }
    if offset:
        return {f"before{duration(w)}": f"-1 * {recorded(name, w)} offset {duration(offset)} * {weight}"
                for w, weight in weights.items()}
    return {f"since{duration(w)}": f"{recorded(name, w)} * {weight}" for w, weight in weights.items()}


def error_ratio(window: float) -> str:
    """bad / total over `window`, for every SLO at once (NaN where there was no traffic)."""
    return f"{recorded(SLI_BAD, window)} / {recorded(SLI_TOTAL, window)}"


def burn_rate(window: float) -> str:
    """How many times faster than the SLO allows the error budget burned over `window`."""
    return f"{recorded(ERROR_RATIO, window)} / {ON_SLO} {ERROR_BUDGET}"


def events(window: float) -> str:
    """Valid events in `window` (the recorded rate times the window)."""
    return f"{recorded(SLI_TOTAL, window)} * {number(window)}"


def with_window(expr: str, slo_window: str) -> str:
    """Keep the series of `expr` whose SLO has the window `slo_window` (e.g. "30d")."""
    return f"{expr} and {ON_SLO} {selector(INFO, [matcher('window', '=', slo_window)])}"


# --- objective and metadata series -------------------------------------------------------


def discovered(scope: Scope, schema: str = schema_.AUTO) -> str:
    """1 for every service (and tool) of `scope` that Prometheus knows: the defaults reach
    services nobody configured through this."""
    return read(names.OPERATIONS_TOTAL, scope.matchers(), scope.by, aggregation="group", schema=schema)


def objective(scope: Scope, target_fraction: float, schema: str = schema_.AUTO) -> str:
    return f"{discovered(scope, schema)} * {number(target_fraction)}"


def error_budget() -> str:
    return f"1 - {OBJECTIVE}"


def budget_remaining(slo_window: float, slo_window_name: str) -> str:
    """The share of the error budget left over the SLO window (negative when overspent)."""
    return with_window(f"(1 - {recorded(ERROR_RATIO, slo_window)} / {ON_SLO} {ERROR_BUDGET})", slo_window_name)


# --- maintenance windows ------------------------------------------------------------------
# The engine exports MAINTENANCE = 1 per SLO series (service, slo, tool; tool "" for the
# service-level series) and mode while a maintenance window covers it (slo.maintenance has
# the scope contract), no sample otherwise. Prometheus may scrape it from several engines
# (their job and instance apart): every read takes the max by the SLO labels first.
#
# silence: the events count, no alert fires while the window is on (`held_back`).
# exclude: the events count neither good nor bad, and no alert fires while it is on. The
# recorded 5m rates are dropped while the window is on and for 5m after it (their range still
# holds its events); the windows that average them (1d, 3d, the hourly samples) then average
# the rest. The raw windows (30m..6h) would still count the window's events once it ended, so
# while one was on within their range (+5m) they are recorded as the average of the recorded
# 5m rates instead (`leaving_out_excluded`). With no MAINTENANCE series at all, every recorded
# value is exactly what it is without this.

MAINTENANCE = "mcp_slo_maintenance"  # the engine's gauge (slo.engine.metrics.MAINTENANCE_METRIC)
EXCLUDE, SILENCE = "exclude", "silence"  # its modes (slo.maintenance.MODES)
_SERIES = ("service", "tool")  # what tells apart the SLO series of one SLO (tool "": service-level)


def maintenance(*, mode: str | None = None, slo: str | None = None, within: float | None = None,
                by: Sequence[str] = SLO_LABELS, service: str | None = None, tool: str | None = None) -> str:
    """1 per SLO series (`by` its labels) a maintenance window of `mode` (None: either)
    covers now, or with `within`, covered at some time in the last `within` seconds
    (max_over_time: its samples outlive the window by that long); of `slo`, `service` and
    `tool` ("": the service-level series) only when given. Aggregated by `by`, so two
    engines' series count once."""
    wanted = (("mode", mode), ("slo", slo), ("service", service), ("tool", tool))
    matchers = [matcher(label, "=", value) for label, value in wanted if value is not None]
    series = selector(MAINTENANCE, matchers)
    if within is not None:
        series = f"max_over_time({series}[{duration(within)}])"
    return f"max by ({', '.join(by)}) ({series})"


def leaving_out_excluded(raw: str, averaged: str, slo: str, window: float) -> str:
    """A recorded SLI rate of `slo` over `window` (up to LONGEST_RAW_WINDOW) without the events
    of `exclude` windows. `raw` is the rate from the raw counters, without the `slo` label (the
    rule adds it), by service (and tool); `averaged` the selector of the recorded BASE_WINDOW
    rate of the same SLI and name.

    BASE_WINDOW: `raw` unless an exclude window was on within its range (the window and 5m
    after it): no sample, so whatever averages these rates leaves that time out. (The burn
    alerts, which need the 5m rate, can fire again 5m after the window.)
    Longer: `raw` unless an exclude window was on within `window` + BASE_WINDOW; else the
    average of the recorded 5m rates over `window` (recorded before this rule in the same
    evaluation: the group runs in order), i.e. the rest of the window, traffic-weighted as the
    long windows are. rate() of the raw counters would count the window's events for as long
    as they are in its range, and page on them after the window ends. Matched on (service,
    tool) with the gauge of `slo` only: a service-level series has no tool label, which matches
    the gauge's tool="" alone (a window of some tools keeps the service's events)."""
    on = f"on ({', '.join(_SERIES)})"
    if window <= BASE_WINDOW:
        return f"(\n  {raw}\n)\nunless {on} {maintenance(mode=EXCLUDE, slo=slo, within=BASE_WINDOW, by=_SERIES)}"
    recent = maintenance(mode=EXCLUDE, slo=slo, within=window + BASE_WINDOW, by=_SERIES)
    return (f"(\n  (\n    {raw}\n  )\n  unless {on} {recent}\n)\nor\n"
            f"(\n  avg_over_time({averaged}[{duration(window)}])\n  and {on} {recent}\n)")


def held_back(alert: str) -> str:
    """An alert's condition, held back for the SLO series a maintenance window (either mode)
    covers while it is on. When the window ends the condition counts again, from its start:
    an alert still true pends for its `for` again."""
    return f"{alert}\nunless {ON_SLO} {maintenance()}"


def service_held_back(alert: str, service: str) -> str:
    """A per-service alert of `service` (absent data) held back while a maintenance window
    (either mode) covers a service-level series of it: a window on the service, not on some
    of its tools only, is one that may stop it. Its `slos` do not matter: a service that stops
    stops every SLO's data."""
    covered = maintenance(by=("service",), service=service, tool="")
    return f"{alert}\nunless on (service) {covered}"


# --- alerts -------------------------------------------------------------------------------


def significant_burn(window: float, burn: float, z: float) -> str:
    """The error ratio over `window` is over `burn` x the error budget with confidence: the
    lower bound of its Wilson score interval is (slo.significance has the arithmetic and
    the numbers):

        lower = (p + z²/2n - z √(p(1 - p)/n + z²/4n²)) / (1 + z²/n)

    with p the recorded error ratio and n the events over the window (rate x window). At
    one call a minute one failed call in an hour (p = 1/60, n = 60) has lower = 0.37% at
    z = 1.645: under the 1.44% of a 14.4x page of a 99.9% SLO; at 1,000 calls a minute the
    bound is within 0.1 point of p. NaN where n is 0 (no sample: no alert)."""
    # p and n have the same labels (the recorded rates of one window): no matching needed
    p, n = recorded(ERROR_RATIO, window), f"({events(window)})"
    spread = f"sqrt({p} * (1 - {p}) / {n} + {number(z * z / 4)} / {n} ^ 2)"
    lower = f"({p} + {number(z * z / 2)} / {n} - {number(z)} * {spread}) / (1 + {number(z * z)} / {n})"
    return f"{lower}\n  / {ON_SLO} {ERROR_BUDGET} > {number(burn)}"


def slo_selection(slo_window: str, scopes: Sequence[Sequence[str]] = (), *, rest: bool = False) -> str:
    """The SLOs with the window `slo_window` an alert rule covers, as their `INFO` series:
    those of `scopes` (each a list of matchers on recorded series, `Scope.recorded_matchers`),
    or with `rest`, every one but those; no scopes and `rest`: every one."""
    window = matcher("window", "=", slo_window)
    picked = [selector(INFO, [window, *m]) for m in scopes]
    if not rest:
        return picked[0] if len(picked) == 1 else "(" + " or ".join(picked) + ")"
    every = selector(INFO, [window])
    if not picked:
        return every
    return f"({every} unless {ON_SLO} ({' or '.join(picked)}))"


def burn_alert(*, burn: float, long_window: float, short_window: float, min_events: int,
               slo_window: str | None = None, slos: str | None = None, z: float | None = None) -> str:
    """Multiwindow burn-rate condition for the SLOs `slos` (`slo_selection`; default: every
    SLO with the window `slo_window`); with `z`, the long window's burn must be significant
    (`significant_burn`). Its value is the burn rate over the long window."""
    if slos is None:
        if slo_window is None:
            raise ValueError("burn_alert needs slos or slo_window")
        slos = slo_selection(slo_window, rest=True)
    parts = [
        f"(\n  {burn_rate(long_window)} > {number(burn)}\nand {ON_SLO}\n  {burn_rate(short_window)} > {number(burn)}\n)",
    ]
    if z is not None:  # the significance guard
        parts.append(f"(\n  {significant_burn(long_window, burn, z)}\n)")
    if min_events > 0:  # the low-traffic guard
        parts.append(f"{events(long_window)} >= {min_events}")
    parts.append(slos)
    return f"\nand {ON_SLO} ".join(parts)


def budget_exhausted(*, slo_window: float, min_events: int, slos: str | None = None) -> str:
    """The error budget of the SLO window is spent, for the SLOs `slos` (`slo_selection`;
    None: every one); value: the share remaining (<= 0)."""
    expr = f"{BUDGET_REMAINING} <= 0"
    if min_events > 0:
        expr += f"\nand {ON_SLO} {events(slo_window)} >= {min_events}"
    if slos is not None:
        expr += f"\nand {ON_SLO} {slos}"
    return expr


def absent_data(service: str, schema: str = schema_.AUTO) -> str:
    """1 when Prometheus has no MCP operation series for `service` (with a `service` label:
    absent() of a computed series has none)."""
    if schema == schema_.MCP_SLO:
        return f"absent({selector(names.OPERATIONS_TOTAL, [matcher('service', '=', service)])})"
    series = read(names.OPERATIONS_TOTAL, [matcher("service", "=", service)], ("service",), aggregation="group",
                  schema=schema)
    return tagged(f"absent({series})", service=service)


def alerts(alertname: str | None = None, state: str = "firing", **labels: str) -> str:
    """The ALERTS series Prometheus keeps for active alerts, selected by labels."""
    matchers = [matcher("alertname", "=", alertname)] if alertname else []
    matchers.append(matcher("alertstate", "=", state))
    matchers += [matcher(k, "=", v) for k, v in labels.items()]
    return selector("ALERTS", matchers)


def ever(expr: str, window: float) -> str:
    """1 when `expr` (a stored series) had a sample in the last `window`."""
    return f"max(max_over_time({expr}[{duration(window)}]))"


# --- engine queries -------------------------------------------------------------------------
# Each covers every service at once: the number of queries per tick does not grow with services.

TOOL_METHOD = "tools/call"
READY = "vector(1)"  # the cheapest query: asked when a server has no /-/ready endpoint


def discovery(schema: str = schema_.AUTO) -> str:
    """One series per (service, version, tool) that has MCP operation series."""
    return read(names.OPERATIONS_TOTAL, (), ("service", "version", "tool"), aggregation="group", schema=schema)


def recorded_slis(windows: Iterable[float]) -> str:
    """Every recorded SLI rate, total and bad, of `windows`, for every SLO at once."""
    return selector("", [one_of("__name__", {recorded(name, w) for name in (SLI_TOTAL, SLI_BAD) for w in windows})])


def recorded_hours(window: float) -> str:
    """How many hourly samples the rules have recorded over `window`: the recorded long
    windows are only whole once the rules have run (or been backfilled) that long."""
    return f"count_over_time({HOURLY_TIME}[{duration(window)}])"


def tagged(expr: str, **labels: str) -> str:
    """`expr` with constant labels set (label_replace), to tell apart the parts of an `or`."""
    for label, value in labels.items():
        expr = f"label_replace({expr}, {quote(label)}, {quote(value)}, \"\", \"\")"
    return expr


def raw_slis(slis: Iterable[SLI], window: float) -> str:
    """The events of every SLI over `window` from the raw metrics in one query, each series
    tagged with its `slo` and its `part` (see SLI.raw_parts). Counts (`increase`), not
    rates: VictoriaMetrics divides a rate by the time its samples span, not by the
    window, so rates of series of different ages would not add up; counts do everywhere."""
    return "\nor\n".join(tagged(expr, slo=sli.slo, part=part)
                          for sli in slis for part, expr in sli.raw_parts(window, "increase").items())


def tool_calls(metric: str, service: str | None = None) -> str:
    """`metric`'s tools/call series, of every service or of `service` only."""
    service_matcher = [matcher("service", "=", service)] if service is not None else []
    return selector(metric, [*service_matcher, matcher("method", "=", TOOL_METHOD)])


def _tool_calls(metric: str, by: Sequence[str], function: str | None, window: float | None, service: str | None = None,
                schema: str = schema_.AUTO, aggregation: str = "sum", **extra: str | Iterable[str]) -> str:
    """`read` of `metric`'s tools/call series (of every service or of `service`), by `by`;
    `extra` labels matched with `one_of`."""
    matchers = [matcher("service", "=", service)] if service is not None else []
    matchers += [one_of(label, [values] if isinstance(values, str) else values) for label, values in extra.items()]
    return read(metric, [*matchers, matcher("method", "=", TOOL_METHOD)], by, function=function, window=window,
                aggregation=aggregation, schema=schema)


def tool_status_rates(window: float, service: str | None = None, schema: str = schema_.AUTO) -> str:
    """tools/call requests per second by service, tool and status (of every service, or of `service`)."""
    return _tool_calls(names.OPERATIONS_TOTAL, ("service", "tool", "status"), "rate", window, service, schema)


def tool_bucket_rates(window: float, service: str | None = None, schema: str = schema_.AUTO) -> str:
    """tools/call duration histogram buckets per second by service, tool and le."""
    return _tool_calls(f"{names.OPERATION_DURATION}_bucket", ("service", "tool", "le"), "rate", window, service, schema)


# --- canary queries -------------------------------------------------------------------------


def version_first_seen(lookback: float, step: float, schema: str = schema_.AUTO) -> str:
    """Seconds since each (service, version) first had tools/call series, within `lookback`
    (at `step` resolution): how old a canary is."""
    grouped = _tool_calls(names.OPERATIONS_TOTAL, ("service", "version"), None, None, schema=schema,
                          aggregation="count")
    return f"time() - min_over_time(timestamp({grouped})[{duration(lookback)}:{duration(step)}])"


def version_status_counts(window: float, schema: str = schema_.AUTO) -> str:
    """tools/call requests by service, version, tool and status over `window` (counts)."""
    return _tool_calls(names.OPERATIONS_TOTAL, ("service", "version", "tool", "status"), "increase", window,
                       schema=schema)


def version_bucket_counts(window: float, schema: str = schema_.AUTO) -> str:
    """tools/call duration buckets by service, version, tool and le over `window` (counts)."""
    return _tool_calls(f"{names.OPERATION_DURATION}_bucket", ("service", "version", "tool", "le"), "increase", window,
                       schema=schema)


def canary_rollback() -> str:
    """1 for every canary the engine's judge says to roll back (the engine's own metric)."""
    return f"{selector('mcp_canary_verdict', [matcher('verdict', '=', 'rollback')])} == 1"



# --- dashboard charts -----------------------------------------------------------------------
# One service's series for the service page's range charts (its per-tool table reads
# tool_status_rates and tool_bucket_rates with the service). The SLO series read the recording
# rules; the request, latency and active-operation charts the raw metrics of tools/call, the
# requests the SLOs count. `window` is `chart_window` of the chart's step.


def chart_window(step: float) -> int:
    """The rate window of a chart at `step` seconds: the step, so that consecutive points tile
    time and no burst falls between two of them, and never under the base window (5m)."""
    return int(max(math.ceil(step), BASE_WINDOW))


def _of(service: str, metric: str) -> str:
    return selector(metric, [matcher("service", "=", service)])


def service_sli(service: str, window: float) -> str:
    """1 - the error ratio over `window` of every SLO of `service` (per tool too), from the
    recorded base-window rates: as recorded for 5m, else their averages over `window` (bad and
    total apart: traffic-weighted). The base-window rates are also what the demo backfills."""
    bad, total = (_of(service, recorded(name, BASE_WINDOW)) for name in (SLI_BAD, SLI_TOTAL))
    if window > BASE_WINDOW:
        bad, total = (f"avg_over_time({s}[{duration(window)}])" for s in (bad, total))
    return f"1 - ({bad} / {total})"


def service_objectives(service: str) -> str:
    """The objective (0.999) of every SLO of `service`."""
    return _of(service, OBJECTIVE)


ENGINE_BUDGET_REMAINING = "mcp_slo_error_budget_remaining"  # the engine's gauge (slo.engine.metrics)


def service_budget_remaining(service: str) -> str:
    """The share of the error budget left over the SLO window of every SLO of `service`: the
    engine's gauge where Prometheus scrapes the engine, else as the rules record it. The engine
    reads the raw counters for a window the rules have not covered yet (on a new Prometheus the
    rules' 30d budget is NaN for up to an hour, then counts only the hours since they started),
    so its numbers are the API's; NaN from the rules is left out."""
    rules = f"{_of(service, BUDGET_REMAINING)} > -Inf"
    return f"max by ({', '.join(SLO_LABELS)}) ({_of(service, ENGINE_BUDGET_REMAINING)} or {ON_SLO} ({rules}))"


def service_burn_rates(service: str, windows: Iterable[float]) -> str:
    """The burn rate of every SLO of `service` over each of `windows` (recorded error ratio /
    error budget), one query; the window of each series in its `burn_window` label ("1h")."""
    names_ = {recorded(ERROR_RATIO, w) for w in windows}
    ratios = selector("", [one_of("__name__", names_), matcher("service", "=", service)])
    # the division drops __name__: keep the window it names as a label
    by_window = f'label_replace({ratios}, "burn_window", "$1", "__name__", {quote(f"{ERROR_RATIO}:rate(.+)")})'
    return f"{by_window} / {ON_SLO} group_left {_of(service, ERROR_BUDGET)}"


def service_status_rates(service: str, window: float, schema: str = schema_.AUTO) -> str:
    """tools/call requests per second of `service` by status."""
    return _tool_calls(names.OPERATIONS_TOTAL, ("status",), "rate", window, service, schema)


def service_bucket_rates(service: str, window: float, schema: str = schema_.AUTO) -> str:
    """tools/call duration buckets per second of `service` by `le` (cumulative, as exposed)."""
    return _tool_calls(f"{names.OPERATION_DURATION}_bucket", ("le",), "rate", window, service, schema)


def service_latency_quantiles(service: str, window: float, quantiles: Iterable[float],
                              schema: str = schema_.AUTO) -> str:
    """histogram_quantile of `service`'s tools/call buckets for each of `quantiles`, one query,
    each series tagged with its `quantile` ("0.99"). Estimates, as good as the bucket bounds."""
    buckets = service_bucket_rates(service, window, schema)
    return "\nor\n".join(tagged(f"histogram_quantile({number(q)}, {buckets})", quantile=number(q)) for q in quantiles)


def service_active(service: str, window: float) -> str:
    """The most operations in flight at once within `window`, per version of `service`
    (the gauge's peak: a burst between two points still shows). mcp-slo's gauge whatever the
    schema: OpenTelemetry's conventions have no in-flight metric."""
    return f"sum by (version) (max_over_time({_of(service, names.OPERATIONS_ACTIVE)}[{duration(window)}]))"


# The service page's latency chart marks the exemplars of these series (Prometheus's
# /api/v1/query_exemplars takes selectors, not aggregations).


def exemplar_series(service: str) -> str:
    """`service`'s tools/call duration buckets, mcp-slo's names."""
    return tool_calls(f"{names.OPERATION_DURATION}_bucket", service)


def otel_exemplar_series() -> str:
    """OpenTelemetry's tools/call duration buckets of every service: their series name no
    service (it is in target_info), so their exemplars are matched to a service by their scrape
    target (`otel_targets`)."""
    return selector(f"{schema_.OTEL_DURATION}_bucket", [matcher(schema_.METHOD, "=", TOOL_METHOD)])


def otel_targets(service: str) -> str:
    """The scrape targets (job, instance) whose OpenTelemetry tools/call series are `service`'s."""
    return read(f"{names.OPERATION_DURATION}_count", [matcher("service", "=", service), matcher("method", "=", TOOL_METHOD)],
                by=schema_.RESOURCE_JOIN, aggregation="group", schema=schema_.OTEL)


# --- dashboard: alerts ------------------------------------------------------------------------


def fired_alerts(window: float, service: str | None = None) -> str:
    """1 for each alert (of `service`, or of all) that fired within the last `window`: the ALERTS
    series has a sample at each rule evaluation while the alert fires, so at a range query's
    steps with the step as `window` no firing between two steps is missed."""
    labels = {"service": service} if service is not None else {}
    return f"max_over_time({alerts(state='firing', **labels)}[{duration(window)}])"


# --- dashboard: canaries ----------------------------------------------------------------------


def canary_latency_buckets(service: str, versions: Iterable[str], window: float, schema: str = schema_.AUTO) -> str:
    """tools/call duration buckets of `service`'s `versions` over `window` (counts) by version
    and le: the distributions the canary judge compares over its window, all tools together."""
    return _tool_calls(f"{names.OPERATION_DURATION}_bucket", ("version", "le"), "increase", window, service, schema,
                       version=versions)


# =============================================================================================
# --- Grafana dashboards ----------------------------------------------------------------------
# The panel and variable queries of the dashboards `mcp-slo grafana` generates (grafana/). They
# hold Grafana template variables ("$service"), which Grafana substitutes before Prometheus sees
# the query: a multi-value variable as a regex of escaped values (so `=~`), a single value as
# it is (so `=`). Windows are Grafana's `$__rate_interval` (at least four scrapes at any step)
# or `$__range` (the time picker's span). Values from the spec (SLO windows, alert, status and
# method names) go through `matcher` and `one_of`, like everywhere else.

GRAFANA_RATE_WINDOW = "$__rate_interval"
GRAFANA_RANGE = "$__range"
ALERTS_SERIES = "ALERTS"  # Prometheus's series of the active alerts of its rules
# the engine's gauges (slo.engine.metrics), beside ENGINE_BUDGET_REMAINING above
ENGINE_SLI = "mcp_slo_sli"
ENGINE_OBJECTIVE = "mcp_slo_objective"
ENGINE_STATUS = "mcp_slo_status"
CANARY_VERDICT = "mcp_canary_verdict"
CANARY_SCORE = "mcp_canary_score"


def grafana_variable(label: str, variable: str, multi: bool = False) -> str:
    """A matcher on a template variable: `label=~"$variable"` for a multi-value one,
    `label="$variable"` for a single value."""
    return matcher(label, "=~" if multi else "=", f"${variable}")


def grafana_label_values(metric: str, label: str, matchers: Sequence[str] = (), schema: str = schema_.AUTO) -> str:
    """A query variable's values: `label_values(metric{matchers}, label)`; for the exporters'
    metrics read through OpenTelemetry's names too, `query_result` of the values seen over the
    time range, which `grafana_values_regex(label)` picks out of the result."""
    if schema == schema_.MCP_SLO or metric not in _OTEL_OF:
        return f"label_values({selector(metric, matchers)}, {label})"
    seen = read(metric, matchers, (label,), function="last_over_time", window=GRAFANA_RANGE, aggregation="group",
                schema=schema)
    return f"query_result({seen})"


def grafana_values_regex(label: str) -> str:
    """The regex that picks `label`'s values out of a `query_result` variable's series."""
    return f'/{label}="([^"]*)"/'


def grafana_sum(function: str, metric: str, matchers: Sequence[str], by: Sequence[str],
                window: str = GRAFANA_RATE_WINDOW, schema: str = schema_.AUTO) -> str:
    """`sum by (by) (function(metric{matchers}[window]))`, as `read` writes it for `schema`."""
    return read(metric, matchers, by, function=function, window=window, schema=schema)


def grafana_error_ratio(matchers: Sequence[str], by: Sequence[str], window: str = GRAFANA_RATE_WINDOW,
                        schema: str = schema_.AUTO) -> str:
    """Errors and timeouts over valid operations (cancelled ones count neither way) by `by`;
    0 where there were no errors (a missing error series), not no data."""
    valid = grafana_sum("rate", names.OPERATIONS_TOTAL, [*matchers, matcher("status", "!=", names.CANCELLED)], by,
                        window, schema)
    bad = grafana_sum("rate", names.OPERATIONS_TOTAL, [*matchers, one_of("status", (names.ERROR, names.TIMEOUT))], by,
                      window, schema)
    return f"({bad} or on ({', '.join(by)}) 0 * {valid}) / {valid}"


def grafana_quantile(quantile: float, matchers: Sequence[str], by: Sequence[str], schema: str = schema_.AUTO) -> str:
    """histogram_quantile of the duration buckets by `by`: an estimate, as good as the bucket bounds."""
    buckets = grafana_sum("rate", f"{names.OPERATION_DURATION}_bucket", matchers, (*by, "le"), schema=schema)
    return f"histogram_quantile({number(quantile)}, {buckets})"


def grafana_buckets(matchers: Sequence[str], schema: str = schema_.AUTO) -> str:
    """Operations per duration bucket per interval (cumulative, as exposed): a heatmap's rows."""
    return grafana_sum("increase", f"{names.OPERATION_DURATION}_bucket", matchers, ("le",), schema=schema)


def grafana_active(matchers: Sequence[str], by: Sequence[str]) -> str:
    """The most operations in flight at once within each interval (a burst between two points still
    shows). mcp-slo's gauge whatever the schema: OpenTelemetry's conventions have none."""
    gauge = selector(names.OPERATIONS_ACTIVE, matchers)
    return f"sum by ({', '.join(by)}) (max_over_time({gauge}[{GRAFANA_RATE_WINDOW}]))"


def grafana_tool_calls(matchers: Sequence[str], schema: str = schema_.AUTO) -> str:
    """tools/call requests by service and tool over the time range, most first."""
    calls = [*matchers, matcher("method", "=", TOOL_METHOD)]
    counts = grafana_sum("increase", names.OPERATIONS_TOTAL, calls, ("service", "tool"), GRAFANA_RANGE, schema)
    return f"sort_desc({counts})"


def grafana_sli(window: float, matchers: Sequence[str]) -> str:
    """1 - the recorded error ratio over `window`, per SLO."""
    return f"1 - {selector(recorded(ERROR_RATIO, window), matchers)}"


def grafana_burn_rate(window: float, slo_window: str, matchers: Sequence[str]) -> str:
    """The burn rate over `window` (recorded error ratio / error budget) of the SLOs whose
    window is `slo_window` ("30d"): a tier's windows are scaled to its SLO window."""
    ratio = selector(recorded(ERROR_RATIO, window), matchers)
    info = selector(INFO, [*matchers, matcher("window", "=", slo_window)])
    return f"{ratio} / {ON_SLO} {selector(ERROR_BUDGET, matchers)} and {ON_SLO} {info}"


def grafana_budget_remaining(matchers: Sequence[str]) -> str:
    """The share of the SLO window's error budget left: the engine's gauge, else as the rules
    record it (their long windows are NaN until they have run for an hour: left out)."""
    rules = f"{selector(BUDGET_REMAINING, matchers)} > -Inf"
    return f"max by ({', '.join(SLO_LABELS)}) ({selector(ENGINE_BUDGET_REMAINING, matchers)} or {ON_SLO} ({rules}))"


def grafana_engine(metric: str, matchers: Sequence[str]) -> str:
    """One of the engine's SLO gauges, without its `window` label (one SLO window per SLO):
    the series of one SLO line up across gauges, for a table to merge."""
    return f"max by ({', '.join(SLO_LABELS)}) ({selector(metric, matchers)})"


def grafana_current(metric: str, matchers: Sequence[str]) -> str:
    """The series of a one-hot gauge that hold now: SLOs by status, canaries by verdict."""
    return f"{selector(metric, matchers)} == 1"


def grafana_count(expr: str) -> str:
    """How many series `expr` has, 0 for none (a stat panel shows 0, not no data)."""
    return f"count({expr}) or vector(0)"


def grafana_alerts(alertnames: Iterable[str], states: Iterable[str], matchers: Sequence[str] = ()) -> str:
    """The active alerts named `alertnames` in `states` ("firing", "pending")."""
    return selector(ALERTS_SERIES, [one_of("alertname", alertnames), one_of("alertstate", states), *matchers])


def grafana_one_hot(metric: str, label: str, codes: dict[str, float], matchers: Sequence[str]) -> str:
    """A one-hot gauge (1 for the current value of `label`, 0 for the others: the SLO's status,
    the canary's verdict) as one series valued with the code of the current value, which a
    panel maps back to its name."""
    parts = [f"{selector(metric, [*matchers, matcher(label, '=', value)])} * {number(code)}"
             for value, code in codes.items()]
    return f"sum without ({label}) ({' or '.join(parts)})"

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

Recording rules store those rates per window (`sli_total`, `sli_bad`), then the
error ratio bad / total (`error_ratio`). Windows up to `LONGEST_RAW_WINDOW` are
computed from the raw counters; longer ones average the recorded 5m rates
(`avg_over_time`), which is cheap (one sample per evaluation per service) and
traffic-weighted: the ratio of averaged rates is the ratio of event counts,
never an average of ratios.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

from collector import names

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


def one_of(label: str, values: Iterable[str]) -> str:
    """`label="v"` for one value, `label=~"a|b"` for several (names matched literally)."""
    values = sorted(set(values))
    if not values:
        raise ValueError(f"one_of({label!r}) needs at least one value")
    if len(values) == 1:
        return matcher(label, "=", values[0])
    return matcher(label, "=~", "|".join(regex_escape(v) for v in values))


def none_of(label: str, values: Iterable[str]) -> str:
    """`label!="v"` for one value, `label!~"a|b"` for several (names matched literally)."""
    values = sorted(set(values))
    if not values:
        raise ValueError(f"none_of({label!r}) needs at least one value")
    if len(values) == 1:
        return matcher(label, "!=", values[0])
    return matcher(label, "!~", "|".join(regex_escape(v) for v in values))


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


# --- windows and recorded series names ---------------------------------------------------

SHORT_WINDOWS = (300, 1800, 3600, 7200, 21600)  # 5m 30m 1h 2h 6h
LONG_WINDOWS = (86400, 259200)  # 1d 3d
BASE_WINDOW = 300  # the recorded rate long windows are averaged from
LONGEST_RAW_WINDOW = 21600  # longer windows average the recorded BASE_WINDOW rates


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

    def __post_init__(self) -> None:
        if self.kind not in ("availability", "latency"):
            raise ValueError(f"unknown SLI kind {self.kind!r}")
        if (self.kind == "latency") != (self.threshold is not None):
            raise ValueError("a latency SLI has a threshold, an availability SLI none")

    def _matchers(self) -> list[str]:
        return [*self.scope.matchers(), one_of("method", self.methods)]

    def _by(self) -> str:
        return f"sum by ({', '.join(self.scope.by)})"

    def _on(self) -> str:
        return f"on ({', '.join(self.scope.by)})"

    def total_rate(self, window: float) -> str:
        """Valid events per second over `window`, from the raw metrics."""
        if self.kind == "availability":
            metric = selector(names.OPERATIONS_TOTAL,
                              [*self._matchers(), matcher("status", "!=", names.CANCELLED)])
        else:  # cancelled operations are not observed in the histogram
            metric = selector(f"{names.OPERATION_DURATION}_count", self._matchers())
        return f"{self._by()} (rate({metric}[{duration(window)}]))"

    def bad_rate(self, window: float) -> str:
        """Bad events per second over `window`, from the raw metrics and the recorded total
        of the same window (which must be recorded first, in the same rule group).

        availability: errors and timeouts, or 0 where the service has had none (a service
        that never failed has no error series, and its error ratio must be 0, not missing).
        latency: total minus the requests that finished within the threshold.
        """
        total = selector(recorded(SLI_TOTAL, window), self.scope.recorded_matchers(self.slo))
        if self.kind == "availability":
            bad = selector(names.OPERATIONS_TOTAL,
                           [*self._matchers(), one_of("status", (names.ERROR, names.TIMEOUT))])
            return f"{self._by()} (rate({bad}[{duration(window)}])) or {self._on()} 0 * {total}"
        good = selector(f"{names.OPERATION_DURATION}_bucket",
                        [*self._matchers(), matcher("le", "=", le(self.threshold))])
        return f"{total} - {self._on()} {self._by()} (rate({good}[{duration(window)}]))"


def averaged_rate(name: str, window: float) -> str:
    """A long window's rate (SLI_TOTAL or SLI_BAD) as the average of the recorded base-window
    rates over `window`, for every SLO at once."""
    return f"avg_over_time({recorded(name, BASE_WINDOW)}[{duration(window)}])"


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


def discovered(scope: Scope) -> str:
    """1 for every service (and tool) of `scope` that Prometheus knows: the defaults reach
    services nobody configured through this."""
    by = ", ".join(scope.by)
    return f"group by ({by}) ({selector(names.OPERATIONS_TOTAL, scope.matchers())})"


def objective(scope: Scope, target_fraction: float) -> str:
    return f"{discovered(scope)} * {number(target_fraction)}"


def error_budget() -> str:
    return f"1 - {OBJECTIVE}"


def budget_remaining(slo_window: float, slo_window_name: str) -> str:
    """The share of the error budget left over the SLO window (negative when overspent)."""
    return with_window(f"(1 - {recorded(ERROR_RATIO, slo_window)} / {ON_SLO} {ERROR_BUDGET})", slo_window_name)


# --- alerts -------------------------------------------------------------------------------


def burn_alert(*, burn: float, long_window: float, short_window: float, slo_window: str, min_events: int) -> str:
    """Multiwindow burn-rate condition; its value is the burn rate over the long window."""
    parts = [
        f"(\n  {burn_rate(long_window)} > {number(burn)}\nand {ON_SLO}\n  {burn_rate(short_window)} > {number(burn)}\n)",
    ]
    if min_events > 0:  # the low-traffic guard
        parts.append(f"{events(long_window)} >= {min_events}")
    parts.append(selector(INFO, [matcher("window", "=", slo_window)]))
    return f"\nand {ON_SLO} ".join(parts)


def budget_exhausted(*, slo_window: float, min_events: int) -> str:
    """The error budget of the SLO window is spent; value: the share remaining (<= 0)."""
    expr = f"{BUDGET_REMAINING} <= 0"
    if min_events > 0:
        expr += f"\nand {ON_SLO} {events(slo_window)} >= {min_events}"
    return expr


def absent_data(service: str) -> str:
    """1 when Prometheus has no MCP operation series for `service`."""
    return f"absent({selector(names.OPERATIONS_TOTAL, [matcher('service', '=', service)])})"


def alerts(alertname: str | None = None, state: str = "firing", **labels: str) -> str:
    """The ALERTS series Prometheus keeps for active alerts, selected by labels."""
    matchers = [matcher("alertname", "=", alertname)] if alertname else []
    matchers.append(matcher("alertstate", "=", state))
    matchers += [matcher(k, "=", v) for k, v in labels.items()]
    return selector("ALERTS", matchers)


def ever(expr: str, window: float) -> str:
    """1 when `expr` (a stored series) had a sample in the last `window`."""
    return f"max(max_over_time({expr}[{duration(window)}]))"

"""Numbers as text, the same on every page: objectives, SLIs, error budgets, burn rates,
latency thresholds and durations.

    fmt_sli(0.99804)      # "99.804%" (rounded down: short of 100% never reads 100%)
    fmt_burn(14.4)        # "14.4x"
    fmt_duration(5400)    # "1h 30m"
    fmt_time(1.8e9)       # "2027-01-15 08:00" (UTC)

A number nobody knows (no traffic) is NONE, never 0 or 100%. No Dash here.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

NONE = "—"  # a number nobody knows (no traffic): never shown as 0 or 100%


def _trim(number: str) -> str:
    return number.rstrip("0").rstrip(".") if "." in number else number


def fmt_objective(x: float | None) -> str:
    """0.999 -> "99.9%"."""
    return NONE if x is None else f"{_trim(f'{x * 100:.4f}')}%"


def fmt_sli(x: float | None) -> str:
    """0.99804 -> "99.804%", rounded down so that short of 100% never reads 100%."""
    if x is None:
        return NONE
    return f"{_trim(f'{math.floor(x * 100_000 + 1e-6) / 1000:.3f}')}%"


def fmt_budget(x: float | None) -> str:
    """The share of the error budget left: 0.37 -> "37.0%", overspent -0.952 -> "-95.2%"."""
    return NONE if x is None else f"{x * 100:.1f}%"


def fmt_burn(b: float | None) -> str:
    """How many times faster than sustainable: "0.52x", "14.4x", "1,250x"."""
    if b is None:
        return NONE
    if b < 10:
        return f"{b:.2f}x"
    return f"{b:.1f}x" if b < 100 else f"{b:,.0f}x"


def fmt_threshold(seconds: float | None) -> str | None:
    """A latency threshold: 0.5 -> "500 ms", 2 -> "2 s"."""
    if seconds is None:
        return None
    return f"{_trim(f'{seconds * 1000:.1f}')} ms" if seconds < 1 else f"{_trim(f'{seconds:.2f}')} s"


def fmt_duration(seconds: float) -> str:
    """The two largest units: "45s", "1m 30s", "3h 12m", "2d 4h" (a zero second unit is left out)."""
    s = max(0, round(seconds))
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    for (unit, size), (smaller, smaller_size) in zip(units, units[1:]):
        if s >= size:
            rest = s % size // smaller_size
            return f"{s // size}{unit}" + (f" {rest}{smaller}" if rest else "")
    return f"{s}s"


def fmt_time(seconds: float) -> str:
    """A moment to the minute, in UTC: "2027-01-15 08:00" (the columns that show it say UTC)."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def fmt_exhaustion(seconds: float | None, status: str) -> str:
    """Time until the budget is spent at the last hour's burn rate: "3h 12m", "never", "exhausted"."""
    if status == "no_data":
        return NONE
    if seconds is None:
        return "never"  # the engine's None: not burning at all this hour
    return "exhausted" if seconds <= 0 else fmt_duration(seconds)

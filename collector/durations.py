"""Durations as Prometheus writes them ("5m", "30d") to seconds and back: the one grammar of
every duration mcp-slo reads (SLO windows, maintenance windows, audit retention and rotation).
In the collector, the lowest layer, so the exporter reads them without the SLO library."""

from __future__ import annotations

import re

UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
# Whole string (fullmatch: `$` would let a trailing newline through); 15 digits keep the
# number exact as a float and int() fast.
_DURATION = re.compile(r"([0-9]{1,15})(ms|s|m|h|d|w|y)")


def parse(text: str) -> float:
    """Seconds in a Prometheus duration with one unit, e.g. "30d"; ValueError otherwise."""
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if not match or int(match.group(1)) == 0:
        shown = text[:40] if isinstance(text, str) else text
        raise ValueError(f"{shown!r} is not a duration like 5m, 6h or 30d (a positive whole number and one unit)")
    return int(match.group(1)) * UNITS[match.group(2)]


def format(seconds: float) -> str:  # noqa: A001 - mirrors parse
    """The largest whole unit: 2592000 -> "30d", 5400 -> "90m"."""
    for unit in ("y", "w", "d", "h", "m", "s"):
        size = UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(round(seconds * 1000))}ms"

"""The state every view keeps in the URL's query string, so that each view is a permalink:
reading and writing a query string, and the shell's own keys with their choices and
defaults (the time range and the auto-refresh period). Each page keeps its own keys beside
them (the overview's q, status, sort and page; the canaries' service; the alerts' severity).

    merge_search("?range=7d&q=fs", {"q": None, "page": "2"})   # -> "?range=7d&page=2"
    shell_settings("?range=7d")                                # -> ("7d", "30s")

No Dash here: the shell (dashboard.app) writes these keys, the pages and the data modules
(dashboard.service_data's time range) read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode

from collector import durations

RANGES = ("1h", "6h", "24h", "7d", "30d")
DEFAULT_RANGE = "24h"
REFRESHES = {"off": None, "10s": 10, "30s": 30, "1m": 60, "5m": 300}  # label -> seconds
DEFAULT_REFRESH = "30s"  # the engine's default interval: a faster refresh shows the same data


def parse_search(search: str | None) -> dict[str, str]:
    """A query string ("?a=1&b=2") as a dict; the last of repeated keys wins."""
    return dict(parse_qsl((search or "").lstrip("?")))


def merge_search(search: str | None, updates: Mapping[str, str | None]) -> str:
    """`search` with `updates` applied (None or "" removes a key); "" when nothing is left."""
    params = parse_search(search)
    for key, value in updates.items():
        if value in (None, ""):
            params.pop(key, None)
        else:
            params[key] = str(value)
    return f"?{urlencode(params)}" if params else ""


def shell_settings(search: str | None) -> tuple[str, str]:
    """(range, refresh) of a query string; each one's default when missing or unknown."""
    params = parse_search(search)
    range_ = params.get("range") if params.get("range") in RANGES else DEFAULT_RANGE
    refresh = params.get("refresh") if params.get("refresh") in REFRESHES else DEFAULT_REFRESH
    return range_, refresh


def range_seconds(range_: str | None) -> float:
    """The range control's value ("24h") in seconds; the default range's when missing or not a duration."""
    try:
        return durations.parse(range_ or DEFAULT_RANGE)
    except ValueError:
        return durations.parse(DEFAULT_RANGE)


def shell_query(range_: str | None, refresh: str | None) -> dict[str, str | None]:
    """The shell's URL parameters; None for defaults, so links stay short."""
    return {"range": None if range_ in (None, DEFAULT_RANGE) else range_,
            "refresh": None if refresh in (None, DEFAULT_REFRESH) else refresh}


def shell_search(search: str | None) -> str:
    """Only the shell's parameters of `search` (range, refresh): what links off a page keep."""
    params = parse_search(search)
    return merge_search("", {"range": params.get("range"), "refresh": params.get("refresh")})

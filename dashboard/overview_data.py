"""The overview's data: one row per SLO of the engine's latest evaluation, with the canaries
of its service; filtered, sorted, paged and formatted for the page.

    state = ViewState.from_query({"q": "fs", "status": "critical,warning", "sort": "-budget"})
    v = view(slos, canaries, state)       # slos and canaries as the source reads them (dashboard.source)
    v.rows                                # the page's rows, every number formatted
    merge_search("?range=24h", state.query())   # (dashboard.url_state) -> "?range=24h&q=fs&status=..."

Plain functions on the engine's typed results (slo.results), no Dash and no pandas: the
page's callbacks stay thin, tests call these directly, and a view of 1,000 services x 2 SLOs
takes milliseconds (only the visible page is formatted). The page state lives in the URL's
query string (dashboard.url_state), so every view is a permalink; the shell's own keys
(range, refresh) share it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dashboard.formatting import (fmt_budget, fmt_burn, fmt_exhaustion, fmt_objective, fmt_sli,
                                  fmt_threshold)
from collector import durations
from slo.engine.answers import SEVERITY
from slo.results import CanaryDecision, Evaluated, SLOResult

PAGE_SIZE = 50
STATUSES = tuple(SEVERITY)  # worst first: critical, exhausted, warning, no_data, ok
STATUS_LABELS = {"critical": "critical", "exhausted": "budget exhausted", "warning": "warning",
                 "no_data": "no data", "ok": "ok"}


@dataclass(frozen=True)
class Sort:
    label: str
    value: Callable[[dict], Any]  # of a row, ascending worst first (names A-Z); None sorts last


def _burn_1h(row: dict) -> float | None:
    b = row["item"].burn_rates.get("1h")
    return -b if b is not None else None  # the fastest burn first


SORTS: dict[str, Sort] = {
    "budget": Sort("Error budget left", lambda r: r["item"].error_budget_remaining),
    "status": Sort("Status", lambda r: (SEVERITY.get(r["item"].status, len(SEVERITY)),
                                        _or_inf(r["item"].error_budget_remaining))),
    "sli": Sort("SLI", lambda r: r["item"].sli),
    "burn": Sort("Burn rate (1h)", _burn_1h),
    "exhaustion": Sort("Time to exhaustion", lambda r: r["item"].time_to_exhaustion_seconds),
    "name": Sort("Name", lambda r: r["name"]),
}
DEFAULT_SORT = "budget"


@dataclass(frozen=True)
class ViewState:
    """What the overview shows: the text filter, statuses, sort and page."""

    KEYS: ClassVar[tuple[str, ...]] = ("q", "status", "sort", "page")  # its URL parameters

    q: str = ""
    statuses: tuple[str, ...] = ()  # empty: every status
    sort: str = DEFAULT_SORT
    reverse: bool = False  # best first instead of worst first
    page: int = 1

    @classmethod
    def from_query(cls, params: Mapping[str, Any]) -> ViewState:
        """From URL parameters (q, status=a,b, sort=[-]key, page); anything unknown is ignored.
        A repeated parameter (Dash passes a list) counts once, the last; status=a&status=b is a,b."""
        sort = str(_one(params.get("sort")) or DEFAULT_SORT)
        reverse = sort.startswith("-")
        sort = sort.lstrip("-")
        if sort not in SORTS:
            sort, reverse = DEFAULT_SORT, False
        status = params.get("status") or ""
        wanted = ",".join(status if isinstance(status, (list, tuple)) else [str(status)]).split(",")
        try:
            page = max(1, int(_one(params.get("page")) or 1))
        except (TypeError, ValueError):
            page = 1
        return cls(q=str(_one(params.get("q")) or "").strip(), statuses=tuple(s for s in STATUSES if s in wanted),
                   sort=sort, reverse=reverse, page=page)

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | None) -> ViewState:
        """From what `data()` returned (a dcc.Store's content)."""
        data = data or {}
        return cls.from_query({"q": data.get("q"), "status": ",".join(data.get("statuses") or ()),
                               "sort": ("-" if data.get("reverse") else "") + str(data.get("sort") or DEFAULT_SORT),
                               "page": data.get("page")})

    def data(self) -> dict:
        return {"q": self.q, "statuses": list(self.statuses), "sort": self.sort, "reverse": self.reverse,
                "page": self.page}

    def query(self) -> dict[str, str | None]:
        """URL parameters; None for defaults, so merge_search drops them and links stay short."""
        sort = ("-" if self.reverse else "") + self.sort
        return {"q": self.q or None, "status": ",".join(self.statuses) or None,
                "sort": None if sort == DEFAULT_SORT else sort, "page": str(self.page) if self.page > 1 else None}


# --- rows ----------------------------------------------------------------------------------


def build_rows(slos: Iterable[Evaluated[SLOResult]], canaries: Iterable[Evaluated[CanaryDecision]] = ()) -> list[dict]:
    """One row per SLO: its SLOResult as `item` and whether it is `stale`, its service's canary
    decisions, the tiers that fire, and what the text filter searches (lower case)."""
    by_service: dict[str, list[CanaryDecision]] = {}
    for d in canaries:
        by_service.setdefault(d.result.service, []).append(d.result)
    rows = []
    for s in slos:
        item = s.result
        decisions = by_service.get(item.service, [])
        firing = [a.tier for a in item.alerts if a.firing]
        words = [*item.key, item.kind, item.status, *firing, *item.versions, *(d.verdict for d in decisions)]
        rows.append({"item": item, "stale": s.stale, "name": item.key, "canaries": decisions, "firing": firing,
                     "text": " ".join(words).lower()})
    return rows


def filter_rows(rows: list[dict], text: str = "", statuses: Iterable[str] = ()) -> list[dict]:
    """Rows whose text holds every word of `text` (any case), with one of `statuses` (any if empty)."""
    terms = text.lower().split()
    wanted = set(statuses)
    return [r for r in rows if (not wanted or r["item"].status in wanted) and all(t in r["text"] for t in terms)]


def sort_rows(rows: list[dict], key: str = DEFAULT_SORT, reverse: bool = False) -> list[dict]:
    """Worst first (or best first with `reverse`); ties by name; unknown values (no data) last."""
    value = SORTS[key].value
    by_name = sorted(rows, key=lambda r: r["name"])
    known = [r for r in by_name if value(r) is not None]
    unknown = [r for r in by_name if value(r) is None]
    known.sort(key=value, reverse=reverse)  # stable, also reversed: ties keep the name order
    return known + unknown


def page_of(rows: list[dict], page: int, size: int = PAGE_SIZE) -> tuple[list[dict], int, int]:
    """(the rows of `page`, that page clamped to what exists, the number of pages)."""
    pages = max(1, math.ceil(len(rows) / size))
    page = min(max(1, page), pages)
    return rows[(page - 1) * size: page * size], page, pages


def burn_windows(rows: Iterable[dict]) -> list[str]:
    """The windows the alert tiers use (long and short), shortest first: the burn-rate columns."""
    seen: set[str] = set()
    for r in rows:
        for a in r["item"].alerts:
            seen.add(a.long_window)
            seen.add(a.short_window)
    return sorted(seen, key=_seconds)


def burn_cells(item: SLOResult, windows: list[str]) -> list[dict]:
    """The burn rate of each window, and the tiers whose threshold it exceeds there: `level`
    is the worst severity exceeded (page, ticket or None); `firing` when one of them fires."""
    cells = []
    for w in windows:
        b = item.burn_rates.get(w)
        uses = [a for a in item.alerts if w in (a.long_window, a.short_window)]
        over = [a for a in uses if b is not None and b > a.burn_rate_threshold]
        level = "page" if any(a.severity == "page" for a in over) else "ticket" if over else None
        notes = [f"{a.tier}: {'over' if a in over else 'under'} {fmt_burn(a.burn_rate_threshold)}"
                 f" ({a.long_window} and {a.short_window}){', firing' if a.firing else ''}" for a in uses]
        cells.append({"window": w, "value": b, "text": fmt_burn(b), "level": level,
                      "firing": any(a.firing for a in over), "over": [a.tier for a in over],
                      "title": f"burn rate over {w}: {fmt_burn(b)}" + "".join(f"\n{n}" for n in notes)})
    return cells


def format_row(row: dict, windows: list[str]) -> dict:
    """Everything the page shows of one row, as text (and a few levels for colours)."""
    item: SLOResult = row["item"]
    budget = item.error_budget_remaining
    return {
        "service": item.service, "tool": item.tool, "slo": item.slo, "kind": item.kind,
        "description": item.description, "threshold": fmt_threshold(item.threshold),
        "status": item.status, "status_label": STATUS_LABELS.get(item.status, item.status),
        "objective": fmt_objective(item.objective), "window": item.window, "sli": fmt_sli(item.sli),
        "budget": {"text": fmt_budget(budget), "value": budget,
                   "fill": min(max(budget, 0.0), 1.0) if budget is not None else 0.0},
        "burn": burn_cells(item, windows),
        "exhaustion": fmt_exhaustion(item.time_to_exhaustion_seconds, item.status),
        "canaries": [canary_cell(d) for d in row["canaries"]],
        "firing": row["firing"], "low_traffic": [a.tier for a in item.alerts if a.low_traffic],
        "versions": list(item.versions), "stale": row["stale"],
    }


def canary_cell(decision: CanaryDecision) -> dict:
    return {"text": f"{decision.canary}: {decision.verdict} ({decision.score})", "verdict": decision.verdict,
            "title": f"{decision.canary} against {decision.baseline}: {decision.reason}"}


@dataclass
class View:
    """One page of the overview."""

    rows: list[dict]  # formatted (format_row)
    windows: list[str]  # the burn-rate columns
    total: int  # SLOs in the evaluation
    matched: int  # of them, those the filter keeps
    page: int
    pages: int
    counts: dict[str, int] = field(default_factory=dict)  # SLOs per status, of all
    all_no_data: bool = False  # SLOs exist, none with valid events in its window


@dataclass(frozen=True)
class Prepared:
    """What every view of one evaluation shares: its rows (by name), burn columns and counts."""

    rows: list[dict]
    windows: list[str]
    counts: dict[str, int]


# The last lists prepared, and what was made of them: the source's cache hands the same list
# objects to every callback until it reads again, so most views skip the work (and its garbage).
_last: tuple[list, list, Prepared] | None = None


def prepare(slos: list[Evaluated[SLOResult]], canaries: list[Evaluated[CanaryDecision]]) -> Prepared:
    """The rows, burn columns and counts of `slos` with `canaries` (kept for the same lists)."""
    global _last
    last = _last
    if last is not None and last[0] is slos and last[1] is canaries:
        return last[2]
    rows = sorted(build_rows(slos, canaries), key=lambda r: r["name"])
    counts = dict.fromkeys(STATUSES, 0)
    for r in rows:
        status = r["item"].status
        counts[status] = counts.get(status, 0) + 1
    prepared = Prepared(rows, burn_windows(rows), counts)
    _last = (slos, canaries, prepared)  # one assignment: threads see the old or the new entry
    return prepared


def view(slos: list[Evaluated[SLOResult]], canaries: list[Evaluated[CanaryDecision]], state: ViewState,
         page_size: int = PAGE_SIZE) -> View:
    p = prepare(slos, canaries)
    matched = sort_rows(filter_rows(p.rows, state.q, state.statuses), state.sort, state.reverse)
    visible, page, pages = page_of(matched, state.page, page_size)
    return View(rows=[format_row(r, p.windows) for r in visible], windows=p.windows, total=len(p.rows),
                matched=len(matched), page=page, pages=pages, counts=p.counts,
                all_no_data=bool(p.rows) and p.counts.get("no_data", 0) == len(p.rows))


def _seconds(window: str) -> float:
    try:
        return durations.parse(window)
    except ValueError:
        return math.inf  # not a duration: last, never an error on the page


def _one(value: Any) -> Any:
    return value[-1] if isinstance(value, (list, tuple)) and value else value


def _or_inf(x: float | None) -> float:
    return math.inf if x is None else x

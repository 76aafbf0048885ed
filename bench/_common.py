"""What every benchmark returns, and the few statistics they share."""

from __future__ import annotations

import gc
import os
import platform
import resource
import statistics
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def quartiles(xs: Sequence[float]) -> tuple[float, float]:
    """First and third quartile (inclusive method; with one value, that value twice)."""
    if len(xs) < 2:
        return xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


@contextmanager
def gc_paused() -> Iterator[None]:
    """No garbage collection inside the block, as `timeit` does."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def rss_mib() -> float:
    """This process's resident memory now, in MiB (the peak where /proc is missing)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


@dataclass
class Result:
    """One benchmark's figures: ours against its comparator, measured in one run.

    `ratio` is the median of the per-round ratios ours/base (each round times
    both, back to back), which is what the goal `ratio <= limit` is judged on;
    `ratio_iqr` is their interquartile range, the spread to read it with.
    """

    name: str
    title: str
    unit: str  # of `ours`, `base`, `diff` (per operation)
    ours_label: str
    base_label: str
    ours: float  # median per-operation cost of ours, over all rounds
    base: float
    ours_iqr: tuple[float, float]
    base_iqr: tuple[float, float]
    diff: float  # median of per-round (ours - base), same unit
    diff_iqr: tuple[float, float]
    ratio: float
    ratio_iqr: tuple[float, float]
    limit: float | None  # goal: ratio <= limit; None for a control, which has no goal
    rounds: int
    per_round: int  # operations of each side timed in one round
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # a goal on something other than the ratio (e.g. an accuracy), judged by the benchmark
    goal: str | None = None
    goal_met: bool | None = None

    @property
    def met(self) -> bool:
        if self.goal_met is not None and not self.goal_met:
            return False
        return self.limit is None or self.ratio <= self.limit

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["met"] = self.met
        return d

    def report(self) -> str:
        u = self.unit
        d = 1 if u.startswith("ns") else 2  # decimals
        w = max(len(self.ours_label), len(self.base_label), len("difference"))

        def iqr(q: tuple[float, float], sign: str = "") -> str:
            return f"{q[0]:{sign}.{d}f} .. {q[1]:{sign}.{d}f}"

        lines = [
            f"{self.name}: {self.title}",
            f"  {self.ours_label:<{w}}  {self.ours:10.{d}f} {u}   (IQR over rounds {iqr(self.ours_iqr)})",
            f"  {self.base_label:<{w}}  {self.base:10.{d}f} {u}   (IQR over rounds {iqr(self.base_iqr)})",
            f"  {'difference':<{w}}  {self.diff:+10.{d}f} {u}   (median of per-round differences, IQR {iqr(self.diff_iqr, '+')})",
            f"  {'ratio':<{w}}  {self.ratio:10.4f}   (median of {self.rounds} paired rounds of {self.per_round} ops a side, "
            f"IQR {self.ratio_iqr[0]:.4f} .. {self.ratio_iqr[1]:.4f})",
        ]
        if self.goal is not None:
            lines.append(f"  goal: {self.goal}: {'met' if self.goal_met else 'NOT met'}")
        elif self.limit is not None:
            lines.append(f"  goal: ratio <= {self.limit:g}: {'met' if self.met else 'NOT met'}")
        else:
            lines.append("  goal: none on the ratio (a control, or see the notes)")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def paired_result(
    *,
    name: str,
    title: str,
    unit: str,
    ours_label: str,
    base_label: str,
    ours_rounds: Sequence[float],
    base_rounds: Sequence[float],
    limit: float | None,
    per_round: int,
    params: dict[str, Any],
    notes: list[str] | None = None,
) -> Result:
    """A Result from per-round per-operation costs, ours_rounds[i] paired with base_rounds[i]."""
    if len(ours_rounds) != len(base_rounds) or not ours_rounds:
        raise ValueError("need the same, non-zero number of rounds on both sides")
    ratios = [o / b for o, b in zip(ours_rounds, base_rounds)]
    diffs = [o - b for o, b in zip(ours_rounds, base_rounds)]
    return Result(
        name=name,
        title=title,
        unit=unit,
        ours_label=ours_label,
        base_label=base_label,
        ours=median(ours_rounds),
        base=median(base_rounds),
        ours_iqr=quartiles(ours_rounds),
        base_iqr=quartiles(base_rounds),
        diff=median(diffs),
        diff_iqr=quartiles(diffs),
        ratio=median(ratios),
        ratio_iqr=quartiles(ratios),
        limit=limit,
        rounds=len(ratios),
        per_round=per_round,
        params=params,
        notes=list(notes or ()),
    )


def recorded(recorder: Any, method: str, tool: str, status: str) -> float:
    """mcp_operations_total of one (method, tool, status) as `recorder` counted it.

    Read from the recorder's own metric families rather than a registry, so it
    is right whichever registry those families were registered in.
    """
    recorder.flush()  # fold in what is still queued, as a scrape would
    total = 0.0
    for family in recorder.families.operations.collect():
        for s in family.samples:
            labels = s.labels
            if (s.name.endswith("_total") and labels.get("service") == recorder.service
                    and labels.get("version") == recorder.version and labels.get("method") == method
                    and labels.get("tool") == tool and labels.get("status") == status):
                total += s.value
    return total

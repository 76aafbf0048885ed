"""What the SLO library needs of a Prometheus reader: query results as `Sample`s and
`Series`, and a `Querier` that answers instant queries. The engine's backend
(slo.engine.backend) is one; tests may pass any object of this shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector (or a scalar, with empty labels)."""

    labels: dict[str, str]  # as in the result: __name__ only when Prometheus kept it
    value: float  # NaN, +Inf and -Inf included


Series = tuple[dict[str, str], list[tuple[float, float]]]


class Querier(Protocol):
    """Answers instant PromQL queries; `queries` counts those sent (for a tick's cost)."""

    @property
    def queries(self) -> int: ...

    def query(self, expr: str, at: float | None = None) -> list[Sample]: ...

"""The canary judge: is a new version (the canary) worse than the one it replaces?

A pure library: counts in (`Comparison`), a verdict with its evidence out (`Decision`).
`stats` holds the tests, `judge` the rules that turn them into a verdict.
"""

from slo.canary.judge import (
    FAILED,
    INCONCLUSIVE,
    INSUFFICIENT,
    PASSED,
    PROMOTE,
    ROLLBACK,
    Comparison,
    Counts,
    Decision,
    judge,
)

__all__ = ["Comparison", "Counts", "Decision", "judge", "PROMOTE", "ROLLBACK", "INCONCLUSIVE",
           "PASSED", "FAILED", "INSUFFICIENT"]

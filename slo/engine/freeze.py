"""The error-budget policy for releases: the release freeze.

A service whose spec says `error_budget_policy: freeze` (its own, or `defaults`') takes no
new release while its error budget is exhausted: any of its SLOs (the service's or one of
its tools') with `error_budget_remaining <= 0` over its SLO window, as the latest evaluation
computed it. The canary gate then refuses promotion with FROZEN_STATUS (423 Locked) and
verdict "frozen", unless the request marks the release as a fix (`?fix=true`, or the header
`X-MCP-SLO-Release: fix`): a fix still needs the canary's own verdict to promote. A rollback
verdict is never frozen: rolling back is always allowed. `error_budget_policy: none` (the
default) changes nothing. Both the engine's API and `mcp-slo canary` decide here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from slo.results import SLOResult
from slo.spec import Spec

FROZEN_STATUS = 423  # Locked: distinct from 409 (roll back) and 425 (wait), so deploy tools can tell
FIX_PARAM = "fix"  # ?fix=true
FIX_HEADER = "X-MCP-SLO-Release"  # X-MCP-SLO-Release: fix
FIX_HOW = f"?{FIX_PARAM}=true or the header '{FIX_HEADER}: fix'"


@dataclass(frozen=True)
class Freeze:
    """A service's release freeze: the SLOs whose budget is exhausted."""

    service: str
    exhausted: tuple[SLOResult, ...]

    @property
    def reason(self) -> str:
        return self.explain(FIX_HOW)

    def explain(self, override: str) -> str:
        """The freeze in one sentence, with `override`: how a fix release is marked."""
        slos = "; ".join(f"{_name(r)} {r.error_budget_remaining:.1%} left over {r.window}" for r in self.exhausted)
        return (f"release freeze: the error budget of {self.service!r} is exhausted ({slos}); "
                f"only a fix may be promoted, marked with {override}")

    def to_json(self) -> dict:
        return {"policy": "freeze", "reason": self.reason, "override": FIX_HOW,
                "exhausted": [{"slo": r.slo, "tool": r.tool, "window": r.window,
                               "error_budget_remaining": r.error_budget_remaining} for r in self.exhausted]}


def _name(r: SLOResult) -> str:
    return f"{r.tool} {r.slo}" if r.tool else r.slo


def freeze_of(spec: Spec, service: str, results: Iterable[SLOResult]) -> Freeze | None:
    """The service's release freeze under its policy and these results (an evaluation's), or
    None: policy none, or no budget exhausted (an unknown budget, no traffic, is not)."""
    if spec.error_budget_policy_for(service) != "freeze":
        return None
    exhausted = tuple(r for r in results if r.service == service
                      and r.error_budget_remaining is not None and r.error_budget_remaining <= 0)
    return Freeze(service, exhausted) if exhausted else None


def fix_requested(params: Mapping[str, str], headers: Mapping[str, str]) -> bool:
    """Whether a gate request marks its release as a fix (`?fix=true` or `X-MCP-SLO-Release:
    fix`; header names are case-insensitive in `headers`); ValueError for any other value."""
    param, header = params.get(FIX_PARAM, "false"), headers.get(FIX_HEADER)
    if param not in ("true", "false"):
        raise ValueError(f"{FIX_PARAM} is true or false, not {param[:100]!r}")
    if header is not None and header.strip().lower() != "fix":
        raise ValueError(f"the header {FIX_HEADER} takes 'fix' (a fix release), not {header[:100]!r}")
    return param == "true" or header is not None


def apply(body: dict, freeze: Freeze | None, fix: bool) -> dict:
    """A gate or verdict answer's `body` (with the canary's `verdict`) under `freeze`: marked
    `frozen` (and `fix`), and, unless the canary is to roll back or the release is a fix, its
    verdict "frozen" with the freeze's reason (the canary's own kept as `canary_verdict`)."""
    body = {**body, "frozen": freeze is not None, "fix": fix}
    if freeze is None:
        return body
    body["freeze"] = freeze.to_json()
    if fix or body["verdict"] == "rollback":
        return body
    return {**body, "verdict": "frozen", "canary_verdict": body["verdict"], "reason": freeze.reason}

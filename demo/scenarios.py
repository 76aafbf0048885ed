"""Behaviour of each demo service version. `healthy`: v2 as good as v1;
`regression`: v2 fails more often and is slower."""

from __future__ import annotations

from demo.services import TOOLS, ToolBehaviour, VersionBehaviour

BASELINE = {
    "filesystem": ToolBehaviour(error_ratio=0.001, median_seconds=0.015),
    "analytics": ToolBehaviour(error_ratio=0.002, median_seconds=0.06),
}
WORSE = {
    "filesystem": ToolBehaviour(error_ratio=0.03, median_seconds=0.05),
    "analytics": ToolBehaviour(error_ratio=0.05, median_seconds=0.2),
}
SPLIT = {"v1": 0.9, "v2": 0.1}


def _same_for_all_tools(service: str, behaviour: ToolBehaviour) -> VersionBehaviour:
    return VersionBehaviour({tool: behaviour for tool in TOOLS[service]})


def scenario(name: str) -> dict[str, dict[str, VersionBehaviour]]:
    """{service: {version: behaviour}}"""
    if name not in ("healthy", "regression"):
        raise ValueError(f"unknown scenario {name!r}: choose healthy or regression")
    out = {}
    for service in TOOLS:
        v2 = WORSE[service] if name == "regression" else BASELINE[service]
        out[service] = {
            "v1": _same_for_all_tools(service, BASELINE[service]),
            "v2": _same_for_all_tools(service, v2),
        }
    return out

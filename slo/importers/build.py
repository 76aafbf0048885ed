"""Collect imported objectives into an mcp-slo `Spec`.

Each objective is validated on its own so that an error names the key path in
the file that was imported (an OpenSLO or Sloth path), not the path in the
mcp-slo spec the importer builds. The spec reads OpenTelemetry's metrics only
(`metrics: otel`) when every query of the file does; otherwise the default, `auto`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from slo import schema, spec
from slo.importers.sli_query import Part


@dataclass
class Imported:
    """One objective read from a foreign document."""

    service: str
    part: Part  # kind, threshold, service/method/tool filter
    name: str
    target: float  # percent
    window: str
    description: str
    # Objective field (or "service", "tool", "slo") -> key path in the source.
    paths: dict[str, str] = field(default_factory=dict)


class Builder:
    def __init__(self, source: str):
        self.source = source
        self.services: dict[str, dict[str, Any]] = {}
        self.seen: dict[tuple[str, str | None, str], str] = {}
        self.disabled_severities: set[str] = set()
        self.notes: list[str] = []
        self.schemas: dict[str, str] = {}  # metric schema the queries read -> the first query's key path

    def error(self, path: str, message: str) -> spec.SpecError:
        return spec.SpecError(f"{self.source}: {path}: {message}")

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)

    def service(self, name: Any, path: str) -> dict[str, Any]:
        if not isinstance(name, str) or not spec.NAME.match(name):
            raise self.error(path, f"{name!r} is not a valid service name "
                                   "(letters, digits, '_', '.', ':', '/', '-'; no quotes, braces or spaces)")
        return self.services.setdefault(name, {"objectives": [], "tools": {}})

    def add(self, imp: Imported) -> None:
        body = self.service(imp.service, imp.paths["service"])
        flt = imp.part.filter
        if flt.service is not None and flt.service != imp.service:
            raise self.error(imp.paths["query"], f"selects service {flt.service!r} but the SLO is for "
                                                 f"service {imp.service!r}")
        if flt.tool is not None and not spec.NAME.match(flt.tool):
            raise self.error(imp.paths["query"], f"{flt.tool!r} is not a valid tool name")
        fields = {"name": imp.name, "kind": imp.part.kind, "target": imp.target, "window": imp.window,
                  "threshold": imp.part.threshold, "methods": list(flt.methods), "description": imp.description}
        try:
            spec.Objective.model_validate(fields)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = imp.paths.get(str(err["loc"][0]) if err["loc"] else "", imp.paths["slo"])
            raise self.error(where, err["msg"].removeprefix("Value error, ")) from None
        threshold = imp.part.threshold
        # the default bounds of the metrics the query reads (the spec built gets the same)
        bounds = spec.Spec.model_validate({"metrics": imp.part.schema}).buckets
        if threshold is not None and not any(math.isclose(threshold, b) for b in bounds):
            raise self.error(imp.paths["query"], f"le={threshold:g} is not a histogram bucket bound (buckets: "
                                                 f"{', '.join(f'{b:g}' for b in bounds)})")
        key = (imp.service, flt.tool, imp.name)
        if key in self.seen:
            scope = f"service {imp.service!r}" + (f", tool {flt.tool!r}" if flt.tool else "")
            raise self.error(imp.paths["name"], f"duplicate objective name {imp.name!r} for {scope} "
                                                f"(also at {self.seen[key]})")
        self.seen[key] = imp.paths["name"]
        self.schemas.setdefault(imp.part.schema, imp.paths["query"])
        target = body if flt.tool is None else body["tools"].setdefault(flt.tool, {"objectives": []})
        target["objectives"].append(fields)

    def build(self) -> spec.Spec:
        raw: dict[str, Any] = {"services": self.services}
        if set(self.schemas) == {schema.OTEL}:
            raw["metrics"] = schema.OTEL  # the rules then read OpenTelemetry's names only
        elif len(self.schemas) > 1:
            self.note(f"some SLOs query OpenTelemetry's metrics ({self.schemas[schema.OTEL]}) and others "
                      f"mcp-slo's ({self.schemas[schema.MCP_SLO]}): the spec reads both (metrics: auto)")
        if self.disabled_severities:
            raw["alerting"] = {"tiers": [
                t.model_dump(by_alias=True) | {"enabled": t.severity not in self.disabled_severities}
                for t in spec.WORKBOOK_TIERS]}
        return spec.parse(raw, self.source)


def document_prefix(index: int, count: int, kind: Any = None, name: Any = None) -> str:
    """'document 2 (SLO x): ' in a file of several documents, '' in a file of one."""
    if count < 2:
        return ""
    label = " ".join(str(x) for x in (kind, name) if isinstance(x, str))
    return f"document {index + 1}" + (f" ({label})" if label else "") + ": "

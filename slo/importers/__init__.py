"""Load an SLO spec in any supported format: mcp-slo's own, OpenSLO v1, Sloth prometheus/v1.

    loaded = importers.load("slos.yaml")
    loaded.spec      # slo.spec.Spec, whatever the format
    loaded.format    # "mcp-slo", "openslo" or "sloth"
    loaded.notes     # what an importer ignored, for the user to see

The format is told from the documents: `apiVersion: openslo/...` is OpenSLO,
`version: prometheus/v1` (or a `slos` list) is Sloth, anything else an mcp-slo
spec. Errors are `slo.spec.SpecError`, naming the file and the key path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slo import spec
from slo.importers import openslo, sloth

FORMATS = ("mcp-slo", "openslo", "sloth")


@dataclass(frozen=True)
class Loaded:
    spec: spec.Spec
    format: str
    notes: tuple[str, ...] = ()


def load(path: str | Path) -> Loaded:
    docs, source = spec.read_documents(path)  # bounded depth; `source` escaped for one-line messages
    return parse_documents(docs, source)


def detect(docs: list[Any]) -> str:
    if any(openslo.is_openslo(d) for d in docs):
        return "openslo"
    if any(sloth.is_sloth(d) for d in docs):
        return "sloth"
    return "mcp-slo"


def parse_documents(docs: list[Any], source: str) -> Loaded:
    """The documents of one YAML file, in any supported format."""
    if not docs:
        raise spec.SpecError(f"{source}: the spec is empty")
    fmt = detect(docs)
    if fmt == "openslo":
        parsed, notes = openslo.load(docs, source)
    elif fmt == "sloth":
        parsed, notes = sloth.load(docs, source)
    elif len(docs) > 1:
        raise spec.SpecError(f"{source}: an mcp-slo spec is one YAML document, found {len(docs)} "
                             "(OpenSLO and Sloth files may hold several)")
    else:
        parsed, notes = spec.parse(docs[0], source), []
    return Loaded(parsed, fmt, tuple(notes))

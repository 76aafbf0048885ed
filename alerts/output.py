"""Writing generated files: a comment header that input cannot break out of, and files
readers see whole (the old one or the new one, never half of it)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from slo.spec import printable


def comment(*lines: str) -> str:
    """YAML comment lines. Control characters and line breaks are escaped (YAML ends a
    comment at NEL, LS and PS too), so text in them (a file name) cannot start YAML."""
    return "".join(f"# {printable(line)}\n" for line in lines)


def write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

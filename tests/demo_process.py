"""`mcp-slo demo` as a user runs it, in a subprocess on free ports, for the tests that need
the demo itself rather than a stack started in the test's process."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support import wait_until


@contextmanager
def demo(workdir: Path, *extra: str) -> Iterator[list[str]]:
    """`mcp-slo demo` on free ports, its output lines as they come; yields once it has said
    what to open first, and stops it with Ctrl-C on leaving (the lines are then complete)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcp_slo", "demo", "--prometheus-port", "0", "--alertmanager-port", "0",
         "--engine-port", "0", "--dashboard-port", "0", "--workdir", str(workdir), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any(line.startswith("Open ") for line in lines) or proc.poll() is not None,
                   timeout=120, what="the demo's start")
        assert proc.poll() is None, "".join(lines)
        yield lines
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)


def endpoint(lines: list[str], name: str) -> str:
    """The URL of the demo's `NAME: URL` line (not a progress line such as "engine: first
    evaluation"); the engine's without the path it is printed with."""
    url = next(line.split(": ", 1)[1].strip() for line in lines if line.startswith(f"{name}: http"))
    return url.removesuffix("/api/v1/slos")

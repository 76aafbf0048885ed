"""What `mcp-slo demo` shows while it starts: one line per start-up step, and which log
records reach the console.

On a terminal each step is a rich progress line (spinner and bar while it runs, a tick and
its time when done); elsewhere (tests, CI, pipes) the same steps are plain lines, with no
control characters, so whatever reads the output line by line keeps working.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol, runtime_checkable

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, ProgressColumn, SpinnerColumn, Task, TextColumn
from rich.progress import Progress as RichBars
from rich.text import Text


@runtime_checkable
class Progress(Protocol):
    """The start-up steps, as demo.stack reports them: one step at a time."""

    def step(self, title: str) -> None:
        """A new step begins; the current one, if any, is done."""

    def note(self, text: str) -> None:
        """News of the current step (how far it got)."""

    def done(self) -> None:
        """The current step is done."""


def as_progress(say: Progress | Callable[[str], None]) -> Progress:
    """A Progress as is; a plain callable (`print`, a test's list.append) gets one line per event."""
    return say if isinstance(say, Progress) else PlainProgress(say)


class PlainProgress:
    """Each step as lines of text: its title when it begins, its time when it is done."""

    def __init__(self, write: Callable[[str], None], clock: Callable[[], float] = time.monotonic):
        self._write = write
        self._clock = clock
        self._title: str | None = None
        self._began = 0.0

    def step(self, title: str) -> None:
        self.done()
        self._title, self._began = title, self._clock()
        self._write(title)

    def note(self, text: str) -> None:
        self._write(f"{self._title}: {text}" if self._title else text)

    def done(self) -> None:
        if self._title is not None:
            self._write(f"{self._title}: done in {self._clock() - self._began:.1f} s")
            self._title = None


class _Seconds(ProgressColumn):
    """A step's time as "3.2 s" (frozen when it is done)."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.elapsed or 0:.1f} s", style="progress.elapsed")


class LiveProgress:
    """Each step as a line of a rich progress display, kept on screen when done."""

    def __init__(self, console: Console):
        self.bars = RichBars(
            SpinnerColumn(finished_text="[green]✓"), TextColumn("{task.description}", markup=False),
            BarColumn(bar_width=20, finished_style="green"), _Seconds(),
            TextColumn("{task.fields[note]}", style="dim", markup=False), console=console,
        )
        self._task = None

    def step(self, title: str) -> None:
        self.done()
        self._task = self.bars.add_task(title, total=None, note="")  # no total: the bar pulses

    def note(self, text: str) -> None:
        if self._task is not None:
            self.bars.update(self._task, note=text)

    def done(self) -> None:
        if self._task is not None:
            self.bars.update(self._task, total=1, completed=1)
            self.bars.stop_task(self._task)
            self._task = None


@contextmanager
def start_up(console: Console) -> Iterator[Progress]:
    """The progress of the start-up on `console`: live on a terminal, plain lines otherwise."""
    if not console.is_terminal:
        yield PlainProgress(lambda line: print(line, flush=True))
        return
    live = LiveProgress(console)
    with live.bars:
        yield live


# Loggers that write a line per HTTP request: the dashboard's server (Werkzeug), the HTTP
# clients (httpx, httpcore), uvicorn's access log (the engine's API turns it off itself).
ACCESS_LOGGERS = ("werkzeug", "uvicorn.access", "httpx", "httpcore")
# Kept at WARNING even with --verbose: a line per demo tool call (the failures are expected
# and counted) or per engine tick.
CHATTY_LOGGERS = ("mcp", "apscheduler")


def configure_logging(console: Console, verbose: bool) -> None:
    """Warnings and errors always reach the console; --verbose adds the INFO records, the
    HTTP access log among them. Call it before the demo's MCP servers are built: their
    library configures logging only when nothing has (logging.basicConfig)."""
    if console.is_terminal:  # drawn above the progress display, not through it
        handler: logging.Handler = RichHandler(console=console, show_path=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    level = logging.INFO if verbose else logging.WARNING
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    # Werkzeug sets its own logger to INFO on its first request when it has no level.
    for noisy in ACCESS_LOGGERS:
        logging.getLogger(noisy).setLevel(level)
    for noisy in CHATTY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)

"""`mcp-slo demo`'s console: a line per start-up step, no HTTP access log unless --verbose,
the URL to open first, and a second start on a kept --workdir that skips the backfill."""

from __future__ import annotations

import io
import logging
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from demo.console import (ACCESS_LOGGERS, CHATTY_LOGGERS, LiveProgress, PlainProgress, as_progress,
                          configure_logging)
from demo.demo_cli import open_first
from demo.stack import Stack, StackConfig
from tests import binaries
from tests.support import wait_until

ACCESS_LINE = re.compile(r'"GET /\S* HTTP/1\.1" \d{3}')


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
    return next(line.split(": ", 1)[1].strip() for line in lines if line.startswith(f"{name}: "))


# --- the console's parts ----------------------------------------------------------------------

def test_plain_progress_says_when_each_step_begins_and_how_long_it_took():
    lines, now = [], iter([10.0, 12.5, 13.0, 13.25])
    progress = PlainProgress(lines.append, clock=lambda: next(now))
    progress.step("history: writing the samples")
    progress.note("wrote 1,000 samples")
    progress.step("starting Prometheus")  # ends the step before
    progress.done()
    progress.done()  # nothing left to end
    assert lines == [
        "history: writing the samples",
        "history: writing the samples: wrote 1,000 samples",
        "history: writing the samples: done in 2.5 s",
        "starting Prometheus",
        "starting Prometheus: done in 0.2 s",
    ]


def test_a_plain_callable_gets_lines_and_a_progress_is_used_as_it_is():
    lines: list[str] = []
    as_progress(lines.append).step("starting Alertmanager")
    assert lines == ["starting Alertmanager"]
    live = LiveProgress(Console(file=io.StringIO()))
    assert as_progress(live) is live


def test_on_a_terminal_each_step_ends_with_a_tick_and_its_time():
    out = io.StringIO()
    live = LiveProgress(Console(file=out, force_terminal=True, width=120))
    with live.bars:
        live.step("history: writing the samples")
        live.note("wrote 1,000 samples")
        live.step("starting Prometheus")
        live.done()
    final = out.getvalue().rsplit("\x1b[2K", 1)[-1]  # the display's last drawing
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", final)
    assert re.search(r"✓ history: writing the samples .*\d+\.\d s wrote 1,000 samples", plain), plain
    assert re.search(r"✓ starting Prometheus .*\d+\.\d s", plain), plain


@pytest.fixture
def root_logging():
    """Undo what configure_logging changes: the root's handlers, the loggers' levels."""
    names = ("", *ACCESS_LOGGERS, *CHATTY_LOGGERS)
    handlers, levels = logging.getLogger().handlers[:], {n: logging.getLogger(n).level for n in names}
    yield
    for handler in logging.getLogger().handlers[:]:
        if handler not in handlers:
            logging.getLogger().removeHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize("verbose", [False, True])
def test_warnings_always_reach_the_console_the_access_log_only_when_verbose(root_logging, capsys, verbose):
    configure_logging(Console(file=io.StringIO()), verbose)  # not a terminal: plain lines on stderr
    logging.getLogger("werkzeug").info('127.0.0.1 - - "GET / HTTP/1.1" 200 -')  # as Werkzeug does it
    logging.getLogger("httpx").info('HTTP Request: GET http://127.0.0.1:9090/api/v1/query "HTTP/1.1 200 OK"')
    logging.getLogger("slo.engine").warning("tick failed (1 in a row): timeout")
    err = capsys.readouterr().err
    assert "WARNING slo.engine: tick failed (1 in a row): timeout" in err
    assert ("GET /" in err) is verbose and ("HTTP Request" in err) is verbose, err


def test_the_url_to_open_first_is_the_overview_else_prometheus_alerts(tmp_path):
    stack = Stack(StackConfig(workdir=tmp_path), prometheus_url="http://127.0.0.1:9090",
                  dashboard_url="http://127.0.0.1:8050")
    assert open_first(stack, None) == "Open http://127.0.0.1:8050/ first (the SLO overview); Ctrl-C stops it."
    stack.dashboard_url = ""
    assert open_first(stack, 60) == ("Open http://127.0.0.1:9090/alerts first (the SLO alerts in Prometheus); "
                                     "it stops after 60 s, or on Ctrl-C.")


# --- the demo itself --------------------------------------------------------------------------

@pytest.mark.integration
@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_the_demo_logs_dashboard_requests_only_with_verbose(tmp_path, verbose):
    binaries.require("prometheus")
    with demo(tmp_path / "demo", "--history-days", "0", *(["--verbose"] if verbose else [])) as lines:
        dashboard = endpoint(lines, "dashboard")
        for path in ("/", "/_dash-layout", "/_dash-dependencies"):
            assert httpx.get(f"{dashboard}{path}", timeout=30).status_code == 200
        # Werkzeug logs a request before it sends the response: any access line is in the pipe now.
    output = "".join(lines)
    assert bool(ACCESS_LINE.search(output)) is verbose, output
    assert "\x1b" not in output  # not a terminal: plain lines, no control characters
    # a line when each step begins and one with its time when it ends
    for step in ("starting Alertmanager", "starting Prometheus", "starting the dashboard", "engine: first evaluation"):
        assert f"{step}\n" in lines and any(re.fullmatch(rf"{step}: done in \d+\.\d s\n", x) for x in lines), step
    # the NAME: URL lines, then what to open first
    names = [line.split(": ", 1)[0] for line in lines if re.match(r"[a-z0-9 ]+: http://", line)]
    assert names[:4] == ["prometheus", "alertmanager", "dashboard", "engine"], names
    after_urls = lines[max(i for i, line in enumerate(lines) if line.startswith("exporter ")) + 1]
    assert after_urls == f"Open {dashboard}/ first (the SLO overview); Ctrl-C stops it.\n"


@pytest.mark.integration
def test_a_second_start_on_a_kept_workdir_serves_the_same_history_without_a_backfill(tmp_path):
    binaries.require("prometheus")
    workdir = tmp_path / "kept"
    args = ("--history-days", "30", "--no-rule-backfill", "--seed", "3", "--rate", "5")
    day = 86400
    instant = time.time() - 29 * day  # in the history of both runs
    query = {"query": "sum by (service, version, status) (mcp_operations_total)", "time": instant}

    def history_at(prometheus: str) -> dict[tuple[str, ...], str]:
        answer = httpx.get(f"{prometheus}/api/v1/query", params=query, timeout=30).json()["data"]["result"]
        return {(r["metric"]["service"], r["metric"]["version"], r["metric"]["status"]): r["value"][1]
                for r in answer}

    with demo(workdir, *args) as first:
        before = history_at(endpoint(first, "prometheus"))
    assert "history: drawing 30 days of filesystem\n" in first
    assert {k[:2] for k in before} == {("analytics", "v1"), ("filesystem", "v1")}, before  # v2: a recent canary

    with demo(workdir, *args) as second:
        after = history_at(endpoint(second, "prometheus"))
    assert not [line for line in second if line.startswith("history: drawing")], "".join(second)
    assert f"history: kept from the last run in {workdir / 'prometheus'}, no backfill\n" in second
    assert after == before

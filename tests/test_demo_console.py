"""`mcp-slo demo`'s console: a line per start-up step, no HTTP access log unless --verbose,
the URL to open first, and a second start on a kept --workdir that skips the backfill."""

from __future__ import annotations

import io
import logging
import re
import time

import httpx
import pytest
from rich.console import Console

from demo.console import (
    ACCESS_LOGGERS,
    CHATTY_LOGGERS,
    LiveProgress,
    PlainProgress,
    as_progress,
    configure_logging,
)
from demo.demo_cli import open_first
from demo.stack import Stack, StackConfig
from slo import promql
from tests import binaries
from tests.demo_process import demo, endpoint

ACCESS_LINE = re.compile(r'"GET /\S* HTTP/1\.1" \d{3}')


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
    """With the default backfill: the raw history and the series the rules recorded over it
    are both kept (how fast the second start is: bench/bench_demo_start.py, `demo-restart`)."""
    binaries.require("prometheus")
    workdir = tmp_path / "kept"
    args = ("--seed", "3", "--rate", "5")
    instant = time.time() - 29 * 86400  # in the history of both runs
    recorded = sorted(promql.recorded(name, w) for name in (promql.SLI_TOTAL, promql.SLI_BAD) for w in (300, 3600))
    queries = {"raw": "sum by (service, version, status) (mcp_operations_total)",
               "recorded": f"sum by (service, slo, __name__) ({{__name__=~'{'|'.join(recorded)}'}})"}

    def history_at(prometheus: str) -> dict[str, dict[tuple[str, ...], str]]:
        found = {}
        for what, query in queries.items():
            answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": query, "time": instant},
                               timeout=30).json()["data"]["result"]
            found[what] = {tuple(sorted(r["metric"].items())): r["value"][1] for r in answer}
        return found

    with demo(workdir, *args) as first:
        before = history_at(endpoint(first, "prometheus"))
    assert "history: drawing 30 days of filesystem\n" in first
    services = {dict(k)["service"] + " " + dict(k)["version"] for k in before["raw"]}
    assert services == {"analytics v1", "filesystem v1"}, before  # v2: a recent canary
    assert sorted({dict(k)["__name__"] for k in before["recorded"]}) == recorded, before

    with demo(workdir, *args) as second:
        after = history_at(endpoint(second, "prometheus"))
    assert not [line for line in second if line.startswith("history: drawing")], "".join(second)
    assert f"history: kept from the last run in {workdir / 'prometheus'}, no backfill\n" in second
    assert after == before

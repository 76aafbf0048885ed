"""Demo start-up: from `mcp-slo demo` to its last URL line, and to the first fully drawn
overview page in headless Chromium, with 30 days of history.

Ours: `python -m mcp_slo demo`, as a user starts it, which backfills the rules' recorded
series computed in Python (demo.recorded) with the raw counters. The comparator, in the same
run: the previous design, `python -m bench.promtool_demo`, the same demo recording the rules
over the history with `promtool tsdb create-blocks-from rules` before Prometheus starts.
Both on free ports, in a fresh temporary --workdir, same seed; the two alternate which goes
first from round to round. Chromium starts before the demo, so its own start-up is not timed.

Timed from just before the demo process starts:
- urls: the last `NAME: URL` line the demo printed (by the time the page was drawn; the demo
  prints them all at once, when the stack is up).
- page: the overview (the `dashboard:` URL), opened as soon as that line appears, is fully
  drawn. Fully drawn, from the page's DOM (DRAWN_JS): the banner says the engine's latest
  evaluation is fresh (`#banner.ok`); the table holds a row for every SLO of the summary's
  count (up to a page); no row is stale, says "no data" or shows the "—" of an unknown number
  (SLI, budget left, each burn-rate window, time to exhaustion); no Dash callback is pending
  (no `data-dash-is-loading`); and every plotly chart on the page has a trace with points.
  A page that has settled without being fully drawn (nothing pending, or no Dash app yet:
  the server is not listening) is reloaded, so the time is when opening the overview first
  shows it all.

Then ours starts once more on the --workdir its first start kept (the history is in
Prometheus's data: no backfill), timed the same, against that first start.

Goal (30 days of history, 2 cores): URLs within 30 s, page within 40 s; a second start on the
kept --workdir: URLs within 10 s.

    python -m bench.bench_demo_start [--quick] [--rounds N] [--history-days D]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench._common import Result, paired_result
from dashboard.overview_data import PAGE_SIZE

ROOT = Path(__file__).resolve().parent.parent
GOAL_URLS, GOAL_PAGE = 30.0, 40.0  # seconds, with 30 days of history
GOAL_RESTART = 10.0  # seconds to the URLs, a second start on the kept --workdir
GOAL_DAYS = 30.0
SEED = 1
POLL = 0.2  # seconds between two looks at the page
RELOAD_AFTER = 1.0  # seconds a page stays settled without being drawn before a reload
STOP_TIMEOUT = 30.0  # for the demo to stop cleanly on SIGTERM

# Why the overview is not fully drawn yet (an empty list once it is), and whether it has
# settled: `{why: [...], settled: bool}`. See the module's docstring.
DRAWN_JS = """
const why = [];
const pending = document.querySelectorAll('[data-dash-is-loading="true"], ._dash-loading').length;
if (pending) why.push(`${pending} pending`);
const banner = document.getElementById('banner');
if (!banner || !banner.classList.contains('ok')) why.push(`banner: ${banner ? banner.innerText : 'none'}`);
const summary = document.querySelector('#overview-summary strong');
const total = summary ? parseInt(summary.innerText.replace(/,/g, ''), 10) : NaN;
const rows = [...document.querySelectorAll('table.overview tbody tr')];
if (!(total > 0)) why.push('no SLO count');
else if (rows.length !== Math.min(total, arguments[0])) why.push(`${rows.length} rows of ${total} SLOs`);
const empty = rows.find(r => r.classList.contains('stale') || r.innerText.includes('\u2014')
                             || r.cells[0].innerText.trim() === 'no data');
if (empty) why.push(`a row without its data: ${empty.innerText.replace(/\\s+/g, ' ')}`);
for (const graph of document.querySelectorAll('.js-plotly-plot')) {
  const points = (graph.data || []).some(t => ['x', 'y', 'z', 'values'].some(k => t[k] && t[k].length));
  if (!points) why.push(`an empty chart: ${graph.id || graph.parentElement.id}`);
}
const body = document.getElementById('overview-body');
const app = document.getElementById('react-entry-point');
const settled = document.readyState === 'complete' && !pending
                && (!app || (body !== null && body.childElementCount > 0));
return {why: why, settled: settled};
"""

_URL_LINE = re.compile(r"^\s*(?P<name>[^:]+?):\s+(?P<url>https?://\S+)\s*$")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass(frozen=True)
class Design:
    name: str
    command: tuple[str, ...]  # after `python`; then the demo's options


OURS = Design("recorded in Python (mcp-slo demo)", ("-m", "mcp_slo", "demo"))
PROMTOOL = Design("promtool recording the rules", ("-m", "bench.promtool_demo"))


@dataclass(frozen=True)
class Timing:
    urls: float  # seconds from the start to the last URL line
    page: float  # to the first fully drawn overview
    lines: tuple[tuple[float, str], ...]  # what the demo printed, with when
    waited: tuple[str, ...]  # what the page lacked before, in the order first seen
    loads: int  # times the overview was opened (the first, then reloads)


class Demo:
    """The demo as a subprocess, its output lines read in a thread with the time each came."""

    def __init__(self, design: Design, workdir: Path, history_days: float, exit_after: float):
        argv = [sys.executable, *design.command, "--workdir", str(workdir),
                "--history-days", f"{history_days:g}", "--seed", str(SEED), "--exit-after", f"{exit_after:g}",
                *(f"--{p}-port=0" for p in ("prometheus", "alertmanager", "engine", "dashboard"))]
        self.lines: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self._process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._reader = threading.Thread(target=self._read, name="demo-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in self._process.stdout:
            at = time.monotonic() - self.started
            for part in raw.decode(errors="replace").split("\r"):  # a progress bar redraws with \r
                text = _ANSI.sub("", part).rstrip()
                if text:
                    with self._lock:
                        self.lines.append((at, text))

    def urls(self) -> list[tuple[float, str, str]]:
        """(seconds since the start, name, URL) of each `NAME: URL` line so far."""
        with self._lock:
            lines = list(self.lines)
        return [(at, m["name"].strip(), m["url"]) for at, text in lines if (m := _URL_LINE.match(text))]

    def failed(self) -> str | None:
        """The demo's last words when it has exited; None while it runs."""
        if self._process.poll() is None:
            return None
        self._reader.join(5)
        with self._lock:
            tail = "\n".join(text for _, text in self.lines[-20:])
        return f"the demo exited ({self._process.returncode}) before the page was drawn:\n{tail}"

    def stop(self) -> None:
        """SIGTERM (the demo stops its stack cleanly), SIGKILL if it does not end in time."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._reader.join(5)


class Browser:
    """Headless Chromium driven by selenium, with the flags the dashboard's browser tests use."""

    def __init__(self):
        try:
            from selenium import webdriver
            from selenium.webdriver.chrome.options import Options
            from selenium.webdriver.chrome.service import Service
        except ImportError as exc:
            raise RuntimeError("selenium is missing: pip install 'mcp-slo[test]' (dash[testing] brings it)") from exc
        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        driver = shutil.which("chromedriver")
        if not binary or not driver:
            raise RuntimeError("Chromium not found: apt-get install --no-install-recommends chromium chromium-driver")
        options = Options()
        options.binary_location = binary
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-quic", "--window-size=1600,1000"):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(service=Service(driver), options=options)
        self.driver.set_page_load_timeout(60)

    def open(self, url: str) -> None:
        self.driver.get(url)

    def state(self) -> dict:
        return self.driver.execute_script(DRAWN_JS, PAGE_SIZE)

    def close(self) -> None:
        self.driver.quit()


def time_start(design: Design, browser: Browser, history_days: float, timeout: float,
               restart: bool = False) -> list[Timing]:
    """Start the demo in a fresh --workdir: seconds to its last URL line and to the first fully
    drawn overview; with `restart`, once more on the kept workdir (no backfill), timed the same."""
    with tempfile.TemporaryDirectory(prefix="mcp-slo-bench-demo-") as workdir:
        return [_time_one(design, browser, Path(workdir), history_days, timeout) for _ in range(1 + restart)]


def _time_one(design: Design, browser: Browser, workdir: Path, history_days: float, timeout: float) -> Timing:
    browser.open("about:blank")
    demo = Demo(design, workdir, history_days, exit_after=timeout + 60)  # ends even if we die
    deadline = demo.started + timeout
    try:
        dashboard = _wait_for_dashboard(demo, deadline)
        page, waited, loads = _wait_for_drawn(browser, demo, dashboard, deadline)
        urls = demo.urls()[-1][0]
    finally:
        browser.open("about:blank")
        demo.stop()
    return Timing(urls=urls, page=page, lines=tuple(demo.lines), waited=tuple(waited), loads=loads)


def _wait_for_dashboard(demo: Demo, deadline: float) -> str:
    while True:
        found = [url for _, name, url in demo.urls() if name.startswith("dashboard")]
        if found:
            return found[0]
        if (why := demo.failed()) is not None:
            raise RuntimeError(why)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no dashboard URL within {deadline - demo.started:.0f}s; printed:\n"
                               + "\n".join(text for _, text in demo.lines[-20:]))
        time.sleep(POLL)  # polling the demo's output, bounded by the deadline


def _wait_for_drawn(browser: Browser, demo: Demo, url: str, deadline: float) -> tuple[float, list[str], int]:
    """(seconds from the demo's start until the overview at `url` is fully drawn, what it
    lacked before, how many times it was opened)."""
    browser.open(url)
    loads, waited, settled_since = 1, [], None
    while True:
        state = browser.state()
        now = time.monotonic()
        waited += [w for w in state["why"] if w not in waited]
        if not state["why"]:
            return now - demo.started, waited, loads
        if (why := demo.failed()) is not None:
            raise RuntimeError(why)
        if now > deadline:
            raise TimeoutError(f"the overview was not fully drawn within {deadline - demo.started:.0f}s: "
                               + "; ".join(state["why"]))
        if not state["settled"]:
            settled_since = None
        elif settled_since is None:
            settled_since = now
        elif now - settled_since >= RELOAD_AFTER:  # it will not draw more by itself before the next tick
            browser.open(url)
            loads, settled_since = loads + 1, None
        time.sleep(POLL)  # polling the page, bounded by the deadline


def _describe(timing: Timing) -> str:
    """When the history step ended and the promtool recording did (as the demo printed
    them), and what the page waited for."""
    ended = [(at, text) for at, text in timing.lines if text.startswith("history") and "done" in text]
    marks = [f"'{text}' at {at:.1f}s" for at, text in ended[-1:]]
    marks += [f"'{text}' at {at:.1f}s" for at, text in timing.lines if "recorded rates loaded" in text]
    waited = "; ".join(w[:80] for w in timing.waited[:4]) or "nothing"
    return f"{', '.join(marks) or 'no history step printed'}; page opened {timing.loads}x, waited for: {waited}"


def run(*, quick: bool = False, rounds: int | None = None, history_days: float | None = None,
        timeout: float | None = None) -> list[Result]:
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731 - progress beside the report
    rounds = rounds or (1 if quick else 2)
    days = history_days if history_days is not None else (1.0 if quick else GOAL_DAYS)
    timeout = timeout or (120.0 if quick else 900.0)
    timings: dict[Design, list[Timing]] = {OURS: [], PROMTOOL: []}
    restarts: list[Timing] = []  # ours again on the workdir its first start kept
    notes = []
    browser = Browser()
    try:
        for r in range(rounds):
            for design in (OURS, PROMTOOL) if r % 2 == 0 else (PROMTOOL, OURS):
                load = os.getloadavg()[0]  # the machine may be shared: read the figures with it
                first, *again = time_start(design, browser, days, timeout, restart=design is OURS)
                timings[design].append(first)
                restarts += again
                for t, how in ((first, ""), *((t, ", second start on the kept workdir") for t in again)):
                    line = (f"round {r + 1}, {design.name}{how}: URLs {t.urls:.1f}s, page {t.page:.1f}s "
                            f"(load average {load:.1f} at the start; {_describe(t)})")
                    say(f"  demo-start: {line}")
                    notes.append(line)
    finally:
        browser.close()
    notes.append(f"load averages over 1 min, on {os.cpu_count()} CPUs")
    params = {"history_days": days, "rounds": rounds, "seed": SEED}
    results = []
    for name, what, goal, pick in (("demo-start-urls", "the last URL line", GOAL_URLS, lambda t: t.urls),
                                   ("demo-start-page", "the first fully drawn overview page", GOAL_PAGE,
                                    lambda t: t.page)):
        result = paired_result(
            name=name, title=f"from `mcp-slo demo` to {what}, {days:g} days of history",
            unit="s", ours_label=OURS.name, base_label=PROMTOOL.name,
            ours_rounds=[pick(t) for t in timings[OURS]], base_rounds=[pick(t) for t in timings[PROMTOOL]],
            limit=None, per_round=1, params=params, notes=notes)
        if days >= GOAL_DAYS:
            result.goal = f"ours <= {goal:g} s with {GOAL_DAYS:g} days of history"
            result.goal_met = result.ours <= goal
        results.append(result)
    # the second start on a kept --workdir, against the first start (a fresh one) it follows
    restart = paired_result(
        name="demo-restart-urls", title=f"a second `mcp-slo demo` on the kept --workdir to the last URL line, "
                                        f"{days:g} days of history",
        unit="s", ours_label="second start, kept --workdir", base_label="first start, fresh --workdir",
        ours_rounds=[t.urls for t in restarts], base_rounds=[t.urls for t in timings[OURS]],
        limit=None, per_round=1, params=params, notes=notes)
    if days >= GOAL_DAYS:
        restart.goal = f"ours <= {GOAL_RESTART:g} s with {GOAL_DAYS:g} days of history"
        restart.goal_met = restart.ours <= GOAL_RESTART
    results.append(restart)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 day of history, 1 round")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--history-days", type=float)
    args = parser.parse_args(argv)
    for result in run(quick=args.quick, rounds=args.rounds, history_days=args.history_days):
        print(result.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())

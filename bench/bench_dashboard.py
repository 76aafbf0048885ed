"""The dashboard's overview at 10, 100 and 1,000 services x 2 SLOs: how long a view takes,
and how many Prometheus queries it makes.

Per size: N synthetic services (the engine's own arithmetic, slo.evaluate.assess, on seeded
error ratios; a canary for one service in ten) in a Store, served by the engine's real API
(slo.engine.api under uvicorn, as `mcp-slo engine` serves it), and the dashboard over it
(EngineSource) with, as its Prometheus, a local HTTP server that counts every request. A view
is the overview's callback run through Dash's HTTP protocol (Flask's test client, JSON in and
out as from the browser), cycling through the default view, a text filter, a status filter,
another sort and page 3. Three kinds of view:
- warm: the engine's answers are in the source's cache (filtering, sorting and paging within
  a few seconds of each other);
- revalidated: the cache's TTL ran out, the engine's status says its evaluation is the same,
  so the answers already read are kept (one small request);
- new evaluation: the engine evaluated again, so the view reads the SLOs and canaries over
  HTTP (once per tick and gunicorn worker: mostly the auto-refresh after a tick).
Comparator, timed in the same rounds as the warm views: the data step (rows, filter, sort,
page and formatting) in plain Python, as the overview does it, against the same with a pandas
DataFrame built per call for the filter, sort and page. Goals at 1,000 services: p95 <= 200 ms
for views of an evaluation already read (warm and revalidated), and no Prometheus request; the
new-evaluation figures are printed beside them.

    python -m bench.bench_dashboard [--quick] [--services 10 100 1000] [--views N]
"""

from __future__ import annotations

import argparse
import http.server
import json
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from bench._common import Result, gc_paused, paired_result
from dashboard import overview_data as overview
from dashboard.app import create_app
from dashboard.overview_data import ViewState
from dashboard.source import CachedSource, EngineSource
from collector import durations
from slo import spec as slo_spec
from slo.engine.api import create_app as engine_api
from slo.engine.backend import Backend, BackendOptions
from slo.canary.judge import Comparison, Counts, judge
from slo.engine.scheduler import Engine
from slo.evaluate import Instance, assess
from slo.plan import plan
from slo.engine.store import Store

GOAL_P95_MS, GOAL_QUERIES = 200.0, 0
SPEC = slo_spec.parse({"version": 1, "defaults": {"objectives": [
    {"name": "availability", "kind": "availability", "target": 99.9, "window": "30d"},
    {"name": "latency", "kind": "latency", "threshold": 0.5, "target": 99.0, "window": "30d"},
]}})
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")
VIEWS = (ViewState(), ViewState(q="svc-01"), ViewState(statuses=("critical", "warning")),
         ViewState(sort="sli", reverse=True), ViewState(page=3))
# warm: within the cache's TTL; revalidated: the TTL ran out, the engine's status says the
# evaluation is the same (one small request); new evaluation: everything read again
KINDS = ("warm", "revalidated", "new evaluation")
RENDER = ("..overview-body.children...overview-summary.children...overview-page-label.children"
          "...overview-prev.disabled...overview-next.disabled...overview-pages.data..")


# --- synthetic engine results -------------------------------------------------------------------


def synthetic_slos(services: int, seed: int = 7) -> list:
    """Two SLO results per service, as the engine computes them: most services healthy, a few
    burning (one in twenty at a page-tier rate), one in fifty without traffic."""
    rng = random.Random(seed)
    planned = plan(SPEC)
    tiers = planned.tiers[30 * 86400]
    out = []
    for i in range(services):
        name = f"svc-{i:04d}"
        for objective in planned.objectives_for(name):
            budget = objective.error_budget
            if i % 50 == 49:
                rates = {}
            else:
                burn = rng.choice((0.1, 0.3, 0.5, 0.8, 1.2, 2.0)) if i % 20 else rng.uniform(8, 30)
                rates = {int(durations.parse(w)): (20.0, 20.0 * min(1.0, budget * burn * rng.uniform(0.7, 1.3)))
                         for w in WINDOWS}
            out.append(assess(Instance(name, "", objective), rates, tiers, SPEC.alerting.min_events,
                              versions=["v1", "v2"] if i % 10 == 0 else ["v1"]))
    return out


def synthetic_canaries(services: int) -> list[dict]:
    """A canary decision (with the judge's evidence) for one service in ten."""
    shapes = [judge(Comparison(service="x", baseline="v1", canary="v2", overall=(Counts(20_000, bad), Counts(2_000, c))))
              for bad, c in ((20, 60), (20, 2), (20, 1))]  # roll back, promote, wait for more
    return [{"service": f"svc-{i:04d}", "baseline": "v1", "canary": "v2", "verdict": d.verdict, "score": d.score,
             "reason": d.reason, "metrics": [m.to_json() for m in d.metrics], "window": "2h", "canary_age_seconds": 7200.0}
            for i, d in ((i, shapes[i // 10 % 3]) for i in range(0, services, 10))]


# --- a Prometheus that counts -----------------------------------------------------------------


class CountingServer:
    """An HTTP server on 127.0.0.1 that answers 200 to anything and counts the requests."""

    def __init__(self):
        counter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                counter.requests += 1
                body = b'{"status":"success","data":{"resultType":"vector","result":[]}}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self.requests = 0
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    # not demo.stack's: importing the demo loads mcp, numpy and more, whose many objects would
    # slow this process's garbage collections, which a dashboard worker does not pay
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EngineAPI:
    """The engine's API served as `mcp-slo engine` serves it: uvicorn binding its own socket."""

    def __init__(self, engine: Engine):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(engine_api(engine), host="127.0.0.1", port=self.port,
                                                    log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, name="engine-api", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the engine's API did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class CountingTransport(httpx.HTTPTransport):
    """The engine source's transport, counting the requests it sends to the engine."""

    requests = 0

    def handle_request(self, request):
        self.requests += 1
        return super().handle_request(request)


# --- the comparator's data step ---------------------------------------------------------------


def pandas_view(records: list[dict], canary_records: list[dict], slos: list, canaries: list, state: ViewState,
                windows: list[str], page_size: int = overview.PAGE_SIZE):
    """The overview's data step with a DataFrame built per call for filter, sort and page (the
    same work, give or take: statuses sort by name here); the page's rows formatted as ours.
    `records` and `canary_records` are the JSON forms of the typed `slos` and `canaries`."""
    import pandas as pd

    frame = pd.DataFrame(records)
    verdicts = pd.DataFrame(canary_records or [{"service": None, "verdict": None}]).groupby("service")["verdict"]
    text = (frame["service"] + " " + frame["tool"].fillna("") + " " + frame["slo"] + " " + frame["kind"] + " "
            + frame["status"] + " " + frame["service"].map(verdicts.agg(" ".join)).fillna("")).str.lower()
    mask = pd.Series(True, index=frame.index)
    for term in state.q.lower().split():
        mask &= text.str.contains(term, regex=False)
    if state.statuses:
        mask &= frame["status"].isin(state.statuses)
    column = {"budget": "error_budget_remaining", "sli": "sli", "status": "status", "name": "service",
              "exhaustion": "time_to_exhaustion_seconds"}.get(state.sort, "error_budget_remaining")
    matched = frame[mask].sort_values([column, "service", "slo"], ascending=[not state.reverse, True, True],
                                      na_position="last", kind="stable")
    start = (max(1, state.page) - 1) * page_size
    page = [slos[i] for i in matched.index[start:start + page_size]]
    rows = overview.build_rows(page, canaries)
    return [overview.format_row(r, windows) for r in rows]


# --- the measurement --------------------------------------------------------------------------


def percentile(xs: Sequence[float], q: float) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[round(q * 100) - 1] if len(xs) > 1 else xs[0]


@contextmanager
def served_engine(services: int):
    """(engine API, counting Prometheus, SLOs, canaries): N synthetic services in a store,
    served by the engine's real API."""
    with tempfile.TemporaryDirectory(prefix="mcp-slo-bench-dashboard-") as work:
        slos, canaries = synthetic_slos(services), synthetic_canaries(services)
        store = Store(Path(work) / "engine.db")
        now = time.time()
        store.write_tick(now, slos, [], {})
        for d in canaries:
            store.write_canary(now, d)
        prometheus = CountingServer()
        engine = Engine(SPEC, Backend(BackendOptions(url=prometheus.url)), store, interval=30)
        api = EngineAPI(engine)
        try:
            yield api, prometheus, slos, canaries
        finally:
            api.stop()
            prometheus.close()
            store.close()


def run_one(services: int, views: int, say) -> Result:
    began = time.monotonic()
    with served_engine(services) as (api, prometheus, slos, canaries):
        # the counter counts: a control request before the views
        httpx.get(f"{prometheus.url}/api/v1/query?query=up")
        if prometheus.requests != 1:
            raise RuntimeError("the counting Prometheus did not count a request")
        prometheus.requests = 0
        transport = CountingTransport()
        data = CachedSource(EngineSource(api.url, transport=transport), ttl=3600)
        app = create_app(data, prometheus_url=prometheus.url)
        client = app.server.test_client()
        client.get("/")  # Dash registers its router at the first request
        say(f"  dashboard-{services}: {len(slos):,} SLOs, {len(canaries)} canaries ready in "
            f"{time.monotonic() - began:.1f}s")

        def view(state: ViewState) -> tuple[float, int]:
            body = {"output": RENDER, "outputs": [{"id": o.rsplit(".", 1)[0], "property": o.rsplit(".", 1)[1]}
                                                  for o in RENDER.strip(".").split("...")],
                    "inputs": [{"id": "overview-state", "property": "data", "value": state.data()},
                               {"id": "tick", "property": "n_intervals", "value": 1}],
                    "state": [{"id": "url", "property": "search", "value": "?range=7d"}],
                    "changedPropIds": ["overview-state.data"]}
            t0 = time.perf_counter()
            response = client.post("/_dash-update-component", json=body)
            elapsed = (time.perf_counter() - t0) * 1000
            if response.status_code != 200 or b"overview-body" not in response.data:
                raise RuntimeError(f"the overview callback failed: {response.status_code} {response.data[:300]!r}")
            return elapsed, len(response.data)

        view(VIEWS[0])  # warm-up: imports, first fetch
        windows = overview.burn_windows(overview.build_rows(data.slos()))
        times: dict[str, list[float]] = {kind: [] for kind in KINDS}
        fetches: dict[str, float] = {}
        ours, base, sizes = [], [], []
        for kind in KINDS:
            before = transport.requests
            for k in range(views):
                state = VIEWS[k % len(VIEWS)]
                if kind == "revalidated":
                    data.cache.clear()  # the TTL ran out; the evaluation is still the same
                elif kind == "new evaluation":
                    data.clear()
                ms, size = view(state)
                times[kind].append(ms)
                sizes.append(size)
                if kind == "warm":  # the comparator, on the same data, in the same rounds
                    api_slos, api_canaries = data.slos(), data.canaries()
                    records = [s.result.to_json() for s in api_slos]  # as the API sent them
                    canary_records = [c.result.to_json() for c in api_canaries]
                    with gc_paused():
                        t0 = time.perf_counter()
                        overview.view(api_slos, api_canaries, state)
                        ours.append((time.perf_counter() - t0) * 1000)
                        t0 = time.perf_counter()
                        pandas_view(records, canary_records, api_slos, api_canaries, state, windows)
                        base.append((time.perf_counter() - t0) * 1000)
            fetches[kind] = (transport.requests - before) / views
        queries = prometheus.requests

    figures = {kind: (statistics.median(xs), percentile(xs, 0.95)) for kind, xs in times.items()}
    interactive_p95 = max(figures["warm"][1], figures["revalidated"][1])
    result = paired_result(
        name=f"dashboard-{services}",
        title=f"overview view at {services:,} services x 2 SLOs: data step in plain Python vs a DataFrame per call",
        unit="ms/view", ours_label="overview data step", base_label="pandas per call",
        ours_rounds=ours, base_rounds=base, limit=None, per_round=1,
        params={"services": services, "slos": len(slos), "views": views, "prometheus_queries": queries,
                "response_kb": statistics.median(sizes) / 1024,
                **{f"{kind.replace(' ', '_')}_{stat}_ms": value for kind, (p50, p95) in figures.items()
                   for stat, value in (("p50", p50), ("p95", p95))},
                **{f"{kind.replace(' ', '_')}_engine_requests": n for kind, n in fetches.items()}},
        notes=[f"full overview callback through Dash, {kind} ({fetches[kind]:g} engine requests a view): "
               f"p50 {p50:.1f} ms, p95 {p95:.1f} ms" for kind, (p50, p95) in figures.items()]
        + [f"{statistics.median(sizes) / 1024:.0f} KB a response; Prometheus requests during {len(KINDS) * views} "
           f"views: {queries} (the counter counted its control request)"])
    if services >= 1000:
        result.goal = (f"p95 <= {GOAL_P95_MS:g} ms for views of an evaluation in the cache (warm, revalidated), "
                       f"{GOAL_QUERIES} Prometheus queries")
        result.goal_met = interactive_p95 <= GOAL_P95_MS and queries == GOAL_QUERIES
    return result


def chromium():
    """Headless Chromium through selenium (Debian's chromium and chromium-driver)."""
    import shutil

    from selenium import webdriver

    options = webdriver.ChromeOptions()
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary:
        options.binary_location = binary
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1600,1000"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options)


def page_ready_ms(services: int, loads: int, say) -> tuple[float, float, float]:
    """(first load, p50, p95) in ms: from asking headless Chromium for the overview to its
    first table row on screen, the dashboard served by Werkzeug's threaded server as
    `mcp-slo dashboard` serves it. The first load reads the engine; the others are warm."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait
    from werkzeug.serving import make_server

    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    with served_engine(services) as (api, _prometheus, _slos, _canaries):
        app = create_app(EngineSource(api.url), prometheus_url=None)
        server = make_server("127.0.0.1", 0, app.server, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}/"
        driver = chromium()
        try:
            def load() -> float:
                driver.get("about:blank")
                t0 = time.perf_counter()
                driver.get(url)
                WebDriverWait(driver, 30, poll_frequency=0.01).until(
                    expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "table.overview tbody tr")))
                return (time.perf_counter() - t0) * 1000

            first = load()
            times = [load() for _ in range(loads)]
        finally:
            driver.quit()
            server.shutdown()
    say(f"  page ready at {services:,} services: first {first:.0f} ms, then p50 {statistics.median(times):.0f} ms")
    return first, statistics.median(times), percentile(times, 0.95)


def page_ready_result(loads: int, say, sizes: Sequence[int] = (10, 1000)) -> Result:
    figures = {n: page_ready_ms(n, loads, say) for n in sizes}
    small, large = figures[sizes[0]], figures[sizes[-1]]
    result = Result(
        name="dashboard-page-ready",
        title=f"overview page ready in headless Chromium, {sizes[-1]:,} vs {sizes[0]:,} services (p95 of {loads} loads)",
        unit="ms", ours_label=f"{sizes[-1]:,} services", base_label=f"{sizes[0]:,} services",
        ours=large[2], base=small[2], ours_iqr=(large[1], large[2]), base_iqr=(small[1], small[2]),
        diff=large[2] - small[2], diff_iqr=(large[1] - small[1], large[2] - small[2]), ratio=large[2] / small[2],
        ratio_iqr=(large[1] / small[1], large[2] / small[2]), limit=None, rounds=loads, per_round=1,
        params={"loads": loads, **{f"first_load_{n}_ms": f[0] for n, f in figures.items()},
                **{f"p50_{n}_ms": f[1] for n, f in figures.items()}, **{f"p95_{n}_ms": f[2] for n, f in figures.items()}},
        notes=[f"{n:,} services: first load {f[0]:.0f} ms (reads the engine), then p50 {f[1]:.0f} ms, "
               f"p95 {f[2]:.0f} ms" for n, f in figures.items()]
        + ["from driver.get() to the first table row in the DOM: the page, Dash's scripts (cached after the "
           "first load), the layout, the router and the overview's callback"])
    result.goal = "page ready in <= 2 s at 1,000 services (first load included)"
    result.goal_met = max(large[0], large[2]) <= 2000
    return result


def run(*, quick: bool = False, services: Sequence[int] | None = None, views: int | None = None,
        browser: bool = True) -> list[Result]:
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731 - progress beside the report
    results = [run_one(n, views or (5 if quick else 60), say)
               for n in services or ((10,) if quick else (10, 100, 1000))]
    if browser:
        results.append(page_ready_result(3 if quick else 20, say, (10, 100) if quick else (10, 1000)))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--services", type=int, nargs="+")
    parser.add_argument("--views", type=int, help="views timed per kind (default 60, --quick 5)")
    parser.add_argument("--no-browser", dest="browser", action="store_false",
                        help="skip the page-ready time in headless Chromium")
    args = parser.parse_args(argv)
    for result in run(quick=args.quick, services=args.services, views=args.views, browser=args.browser):
        print(result.report())
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in result.params.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

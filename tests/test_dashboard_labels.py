"""Labels are data, never markup: plotly draws a subset of HTML in trace names, titles,
annotations, hover text and tick labels, so a version label `<a href=...>v2</a>` would be a
link in a chart's legend. Every figure of the dashboard is built here with hostile labels (and
errors quoting them), and must carry them escaped; in headless Chromium the canaries page with
a hostile version label has no link to where that label points."""

from __future__ import annotations

import html
import json
import time
from dataclasses import replace

import pytest

from dashboard import canary_data
from dashboard import service_data as sd
from dashboard.app import create_app
from dashboard.source import SLOs, SourceError
from slo.results import CanaryDecision, Evaluated
from tests.test_dashboard_canaries import AT, FAST, SLOW, FakeMetrics, FakeSource, answer, logged, regressed
from tests.test_dashboard_service import ROWS, points, tr_of

EVIL = "https://evil.example/phish"
HOSTILE = f'<a href="{EVIL}">v2</a><b>bold</b><br><i>i</i><sup>s</sup><span style="color:red">x</span>&lt;a href=x&gt;'
MARKUP = ("<a", "</a", "<br", "<b>bold", "<i>", "<sup>", "<span", "&lt;a href=x")  # what the label carries raw


def hostile(n: int) -> str:
    """A hostile label, a different one per n (two versions of a pair must differ)."""
    return HOSTILE.replace("v2", f"v{n}")


def assert_escaped(figure: dict) -> None:
    text = json.dumps(figure, ensure_ascii=False)
    for raw in MARKUP:
        assert raw not in text, (raw, text[:2000])
    assert html.escape("<a href=", quote=False) in text  # the label is there, as text


def hostile_rows() -> SLOs:
    """The engine's rows of a service with a hostile SLO name, window and alert tiers."""
    alerts = {"tier": hostile(3), "long_window": hostile(4), "short_window": hostile(5)}
    return [replace(r, result=replace(r.result, slo=hostile(1), window=hostile(2),
                                      alerts=tuple(replace(a, **alerts) for a in r.result.alerts)))
            for r in ROWS]


def hostile_answers(tr: sd.TimeRange) -> dict:
    """Every chart's range answer, with a hostile value in every label the charts show."""
    labels = {"service": hostile(0), "slo": hostile(1), "tool": ""}
    series = [(labels, points(tr, 0.99, 0.98))]
    return {"sli": series, "objective": series, "budget": series,
            "burn": [({**labels, "burn_window": hostile(6)}, points(tr, 20.0, 21.0))],
            "requests": [({"status": hostile(7)}, points(tr, 1.0, 2.0))],
            "latency": [({"quantile": hostile(8)}, points(tr, 0.1, 0.2))],
            "heatmap": [({"le": hostile(9)}, points(tr, 1.0, 2.0)), ({"le": "+Inf"}, points(tr, 2.0, 3.0))],
            "active": [({"version": hostile(10)}, points(tr, 1.0, 2.0))]}


def test_every_service_chart_escapes_its_labels():
    tr = tr_of("6h")
    figures = sd.figures(hostile_answers(tr), hostile_rows(), tr)
    assert set(figures) == set(sd.GRAPHS)
    for name, figure in figures.items():
        if name != "heatmap":  # its labels are bucket bounds, numbers: a hostile `le` is dropped
            assert_escaped(figure)
    # the legend shows the label as it is: plotly turns the entities back into characters
    assert figures["active"]["data"][0]["name"] == html.escape(hostile(10), quote=False)
    # the tool tier lines and the panels' titles too
    burn = json.dumps(figures["burn"])
    assert in_json(hostile(3)) in burn and "<b>" + in_json(hostile(1)) in burn


def in_json(label: str) -> str:
    """`label` escaped, as it appears inside a JSON string."""
    return json.dumps(html.escape(label, quote=False))[1:-1]


def test_every_service_chart_escapes_an_error_quoting_a_label():
    tr = tr_of("1h")
    failed = SourceError("prometheus", f"range query failed: {hostile(0)}")
    for figure in sd.figures(dict.fromkeys((*sd.GRAPHS, "objective"), failed), hostile_rows(), tr).values():
        assert_escaped(figure)


def hostile_decision() -> Evaluated[CanaryDecision]:
    d = regressed()
    return replace(d, result=replace(d.result, baseline=hostile(1), canary=hostile(2), window=hostile(3)))


def test_the_canary_charts_escape_the_versions():
    d = hostile_decision()
    shares = canary_data.bucket_shares(answer({hostile(1): FAST, hostile(2): SLOW}), hostile(1), hostile(2))
    assert_escaped(canary_data.latency_figure(shares, d.result))
    log = [logged(d, AT - 600 * i) for i in range(5)][::-1]
    assert_escaped(canary_data.score_figure(log, AT - 3600, AT))


# --- in the browser ---------------------------------------------------------------------------


@pytest.mark.integration
def test_the_canaries_page_has_no_link_from_a_version_label(dash_duo):
    pytest.importorskip("dash.testing")
    from tests.support import free_port, wait_until

    d = replace(regressed(), result=replace(regressed().result, baseline="v1", canary=HOSTILE))
    log = [logged(d, time.time() - 600 * i) for i in range(5)][::-1]
    metrics = FakeMetrics(answer({"v1": FAST, HOSTILE: SLOW}))
    app = create_app(FakeSource([d], log), metrics=metrics)
    port = free_port()
    dash_duo.start_server(app, port=port, navigate=False)
    dash_duo.driver.get(f"http://127.0.0.1:{port}/canaries?service=filesystem")
    # the latency distributions' legend: the baseline and the canary
    wait_until(lambda: len(dash_duo.find_elements("#canaries-body .legend .traces")) == 2, timeout=30,
               what="the latency chart's legend")
    links = dash_duo.driver.execute_script(
        "return [...document.querySelectorAll('a')].map(a => a.outerHTML).filter(h => h.includes('evil.example'))")
    assert links == []
    legend = " ".join(e.text for e in dash_duo.find_elements("#canaries-body .legend .traces"))
    assert '<a href="https://evil.example/phish">' in legend  # shown as the text it is

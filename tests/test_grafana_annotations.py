"""The maintenance annotation on every generated dashboard: the engine's mcp_slo_maintenance
gauge for the dashboard's service variable, from its datasource, enabled, titled with the
mode; and the query itself against a real Prometheus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grafana import annotations, frame, generate
from slo import importers
from tests import binaries

EXAMPLE = "examples/slo.yaml"


@pytest.fixture(scope="module")
def boards() -> dict[str, dict]:
    return generate.dashboards(importers.load(EXAMPLE).spec, source="slo.yaml")


@pytest.mark.parametrize("uid", [frame.OPERATIONS, frame.OVERVIEW, frame.DETAIL, frame.CANARY])
def test_every_dashboard_shades_maintenance(boards, uid):
    board = boards[uid]
    notes = {a["name"]: a for a in board["annotations"]["list"]}
    assert set(notes) == {"Maintenance: exclude", "Maintenance: silence"}
    for mode in ("exclude", "silence"):
        note = notes[f"Maintenance: {mode}"]
        assert note["expr"] == ('max by (service, slo, tool) '
                                f'(mcp_slo_maintenance{{service=~"$service", mode="{mode}"}}) == 1')
        assert note["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert note["enable"] is True and note["hide"] is False
    assert "service" in {v["name"] for v in board["templating"]["list"]}  # the variable it reads


def test_the_committed_dashboards_carry_it(boards):
    for uid in boards:
        committed = json.loads((Path("grafana") / generate.DASHBOARDS_DIR / f"{uid}.json").read_text())
        assert committed["annotations"] == boards[uid]["annotations"], f"regenerate: make grafana ({uid})"


@pytest.mark.integration
def test_the_query_finds_the_gauge_of_the_selected_service_only(tmp_path):
    """A real Prometheus scraping an exposition of the gauge (as the engine writes it)."""
    import http.server
    import threading

    body = (b"# TYPE mcp_slo_maintenance gauge\n"
            b'mcp_slo_maintenance{service="fs",slo="availability",tool="",mode="silence"} 1\n'
            b'mcp_slo_maintenance{service="search",slo="latency",tool="query",mode="exclude"} 1\n')

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with binaries.prometheus([f"127.0.0.1:{server.server_port}"]) as url:
            found = binaries.wait_for_promql(url, annotations.maintenance_expr("exclude", "search|fs"))
            assert [(r["metric"]["service"], r["metric"]["tool"]) for r in found] == [("search", "query")]
            assert binaries.query(url, annotations.maintenance_expr("silence", "search")) == []
    finally:
        server.shutdown()
        server.server_close()

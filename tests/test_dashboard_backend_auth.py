"""The dashboard reads Prometheus and Alertmanager with the engine's backend options (headers,
basic auth, bearer token, TLS): against a real Prometheus and a real Alertmanager, each behind
a small reverse proxy that refuses requests without the credentials, `mcp-slo dashboard`'s
chart and alert reads succeed with them and say clearly why they fail without; `mcp-slo
serve` passes its options to its dashboard."""

from __future__ import annotations

import argparse
import base64
import http.server
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

import httpx
import pytest

from dashboard import dashboard_cli
from dashboard.app import metrics_from_args
from dashboard.source import SourceError
from tests import binaries
from tests.support import free_port, wait_until
from tests.test_backend import certificates  # noqa: F401 (a fixture: a CA and a certificate for 127.0.0.1)

pytestmark = pytest.mark.integration

TOKEN_ENV = "MCP_SLO_TEST_BACKEND_TOKEN"
PASSWORD_ENV = "MCP_SLO_TEST_BACKEND_PASSWORD"
TOKEN = "s3cret-token"
ALERT = "BackendAuthTestAlert"


class AuthProxy:
    """A reverse proxy on a free port: forwards to `upstream` the requests `allowed` accepts
    (by their headers), answers the others 401 as an authenticating gateway does."""

    def __init__(self, upstream: str, allowed: Callable[[http.server.BaseHTTPRequestHandler], bool],
                 tls: ssl.SSLContext | None = None):
        proxy = self
        self.refused = 0
        self.forwarded = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.forward()

            def do_POST(self):
                self.forward()

            def forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not allowed(self):
                    proxy.refused += 1
                    self.answer(401, b"unauthorized\n", "text/plain")
                    return
                proxy.forwarded += 1
                response = httpx.request(self.command, upstream + self.path, content=body, timeout=10,
                                         headers={"Content-Type": self.headers.get("Content-Type", "")})
                self.answer(response.status_code, response.content, response.headers.get("Content-Type", ""))

            def answer(self, status: int, body: bytes, content_type: str):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def bearer(handler) -> bool:
    return handler.headers.get("Authorization") == f"Bearer {TOKEN}"


def basic_and_tenant(handler) -> bool:
    expected = "Basic " + base64.b64encode(f"sre:{TOKEN}".encode()).decode()
    return handler.headers.get("Authorization") == expected and handler.headers.get("X-Scope-OrgID") == "team-a"


@pytest.fixture(scope="module")
def backends(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """(Prometheus's URL, Alertmanager's URL): real ones, Alertmanager holding the alert ALERT."""
    from demo.alertmanager import start_alertmanager

    binaries.require("prometheus-alertmanager")
    port = free_port()
    alertmanager = start_alertmanager(tmp_path_factory.mktemp("alertmanager"), port)
    am_url = f"http://127.0.0.1:{port}"
    try:
        now = datetime.now(timezone.utc).isoformat()
        httpx.post(f"{am_url}/api/v2/alerts", timeout=5, json=[{
            "labels": {"alertname": ALERT, "service": "filesystem", "severity": "page"},
            "annotations": {"summary": "an alert only Alertmanager holds"}, "startsAt": now}]).raise_for_status()
        wait_until(lambda: httpx.get(f"{am_url}/api/v2/alerts", timeout=5).json(), timeout=20,
                   what="Alertmanager to hold the alert")
        with binaries.prometheus([]) as prometheus_url:
            yield prometheus_url, am_url
    finally:
        alertmanager.stop()


@pytest.fixture
def proxies(backends) -> Iterator[Callable]:
    """proxies(allowed) -> (Prometheus proxy, Alertmanager proxy), closed after the test."""
    made: list[AuthProxy] = []

    def make(allowed, tls=None):
        pair = AuthProxy(backends[0], allowed, tls), AuthProxy(backends[1], allowed, tls)
        made.extend(pair)
        return pair

    yield make
    for proxy in made:
        proxy.close()


def dashboard_metrics(args: list[str]):
    """The Metrics of the app `mcp-slo dashboard ARGS` builds (its build_app makes them with
    dashboard.app.metrics_from_args), once the command has accepted the arguments."""
    parser = argparse.ArgumentParser()
    dashboard_cli.add_arguments(parser)
    parsed = parser.parse_args(args)
    dashboard_cli.build(parsed)
    return metrics_from_args(parsed)


def reads(metrics) -> dict[str, object]:
    """Every kind of read the pages make: a chart's range query, an instant query, Prometheus's
    alerts and Alertmanager's."""
    now = time.time()
    return {"range": metrics.range("vector(1)", now - 600, now), "instant": metrics.instant("vector(1)"),
            "alerts": metrics.alerts(), "alertmanager": metrics.alertmanager_alerts()}


def test_the_dashboard_reads_with_a_bearer_token_and_says_why_it_fails_without(tmp_path, proxies, monkeypatch):
    prometheus, alertmanager = proxies(bearer)
    args = ["--store", str(tmp_path / "engine.db"), "--prometheus", prometheus.url,
            "--alertmanager", alertmanager.url, "--bearer-token-env", TOKEN_ENV]

    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    answers = reads(dashboard_metrics(args))
    for name, answer in answers.items():
        assert not isinstance(answer, SourceError), (name, answer)
    (labels, points), = answers["range"]
    assert len(points) >= 2 and {v for _, v in points} == {1.0}  # the chart's data, from the real Prometheus
    assert answers["instant"][0].value == 1.0 and answers["alerts"] == []
    assert [a["labels"]["alertname"] for a in answers["alertmanager"]] == [ALERT]
    assert prometheus.refused == alertmanager.refused == 0

    monkeypatch.delenv(TOKEN_ENV)
    for name, answer in reads(dashboard_metrics(args)).items():
        assert isinstance(answer, SourceError), (name, answer)
        # one line: what answered what, and which variable should hold the token
        assert "401" in answer.message and TOKEN_ENV in answer.message and "\n" not in answer.message, answer
    assert prometheus.refused >= 3 and alertmanager.refused == 1


def test_the_dashboard_reads_with_basic_auth_and_headers(tmp_path, proxies, monkeypatch):
    prometheus, alertmanager = proxies(basic_and_tenant)
    monkeypatch.setenv(PASSWORD_ENV, TOKEN)
    args = ["--store", str(tmp_path / "engine.db"), "--prometheus", prometheus.url, "--alertmanager",
            alertmanager.url, "--basic-auth-user", "sre", "--basic-auth-password-env", PASSWORD_ENV,
            "--header", "X-Scope-OrgID:team-a"]
    for name, answer in reads(dashboard_metrics(args)).items():
        assert not isinstance(answer, SourceError), (name, answer)
    without_tenant = args[:-2]
    for name, answer in reads(dashboard_metrics(without_tenant)).items():
        assert isinstance(answer, SourceError) and "401" in answer.message, (name, answer)
        assert TOKEN not in answer.message


def test_the_dashboard_verifies_tls_with_the_ca_file(tmp_path, proxies, certificates, monkeypatch):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates["cert"], certificates["key"])
    prometheus, alertmanager = proxies(bearer, tls=context)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    args = ["--store", str(tmp_path / "engine.db"), "--prometheus", prometheus.url,
            "--alertmanager", alertmanager.url, "--bearer-token-env", TOKEN_ENV]
    for name, answer in reads(dashboard_metrics([*args, "--ca-file", certificates["ca"]])).items():
        assert not isinstance(answer, SourceError), (name, answer)
    for name, answer in reads(dashboard_metrics(args)).items():  # a CA the system does not know
        assert isinstance(answer, SourceError) and answer.kind == "unreachable", (name, answer)


def test_the_dashboard_under_gunicorn_takes_the_credentials_from_its_environment(tmp_path, proxies, monkeypatch):
    from dashboard.app import app_from_env, metrics_from_env

    prometheus, alertmanager = proxies(basic_and_tenant)
    monkeypatch.setenv(PASSWORD_ENV, TOKEN)
    env = {"MCP_SLO_STORE": str(tmp_path / "engine.db"), "MCP_SLO_PROMETHEUS_URL": prometheus.url,
           "MCP_SLO_ALERTMANAGER_URL": alertmanager.url, "MCP_SLO_BASIC_AUTH_USER": "sre",
           "MCP_SLO_BASIC_AUTH_PASSWORD_ENV": PASSWORD_ENV, "MCP_SLO_HEADERS": "X-Scope-OrgID: team-a\n"}
    app_from_env(env)  # the app builds with them
    for name, answer in reads(metrics_from_env(env)).items():
        assert not isinstance(answer, SourceError), (name, answer)
    with pytest.raises(ValueError, match="MCP_SLO_PROMETHEUS_URL.*--header"):
        app_from_env({**env, "MCP_SLO_HEADERS": "no-colon"})


def test_bad_backend_options_are_a_clear_usage_error(tmp_path, capsys):
    from mcp_slo import cli

    store = ["--store", str(tmp_path / "engine.db")]
    assert cli.main(["dashboard", *store, "--header", "no-colon"]) == 2
    assert "--header" in capsys.readouterr().err
    assert cli.main(["dashboard", *store, "--basic-auth-user", "sre", "--basic-auth-password-env", "UNSET_VAR_X"]) == 2
    assert "--basic-auth-password-env" in capsys.readouterr().err
    assert cli.main(["dashboard", *store, "--ca-file", str(tmp_path / "missing.pem")]) == 2
    assert "missing.pem" in capsys.readouterr().err


# --- mcp-slo serve ---------------------------------------------------------------------------


def post_callback(url: str, output: str, inputs: list[dict], state: list[dict] = ()) -> str:
    body = {"output": output, "outputs": [{"id": o.rsplit(".", 1)[0], "property": o.rsplit(".", 1)[1]}
                                          for o in output.strip(".").split("...")],
            "inputs": inputs, "state": list(state), "changedPropIds": []}
    response = httpx.post(f"{url}/_dash-update-component", json=body, timeout=30)
    assert response.status_code == 200, response.text[:500]
    return response.text


def test_serve_gives_its_dashboard_the_engines_credentials(tmp_path, proxies):
    prometheus, alertmanager = proxies(bearer)
    api, dashboard = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mcp_slo", "serve", "--config", "examples/slo.yaml", "--prometheus", prometheus.url,
         "--alertmanager", alertmanager.url, "--bearer-token-env", TOKEN_ENV, "--store", str(tmp_path / "serve.db"),
         "--interval", "5s", "--listen", f"127.0.0.1:{api}", "--dashboard-listen", f"127.0.0.1:{dashboard}"],
        env={**os.environ, TOKEN_ENV: TOKEN}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{dashboard}"
    try:
        def ready():
            assert process.poll() is None, "serve exited"
            return httpx.get(f"http://127.0.0.1:{api}/readyz", timeout=2).status_code == 200

        wait_until(ready, timeout=60, interval=0.3, what="the engine's first evaluation, through the proxy")
        wait_until(lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200, timeout=30, what="the dashboard")
        alerts = post_callback(url, "..alerts-body.children...alerts-summary.children..",
                               [{"id": "alerts-severity", "property": "value", "value": []},
                                {"id": "tick", "property": "n_intervals", "value": 0},
                                {"id": "range", "property": "value", "value": "24h"}],
                               [{"id": "url", "property": "search", "value": ""}])
        assert ALERT in alerts and "401" not in alerts and "cannot be read" not in alerts
        service = post_callback(url, "..service-header.children...service-notices.children...service-body.style"
                                     "...service-charts.style...service-sli.figure...service-budget.figure"
                                     "...service-burn.figure...service-requests.figure...service-latency.figure"
                                     "...service-heatmap.figure...service-active.figure...service-tools.children"
                                     "...service-alerts.children...service-fired.children...service-maintenance.children..",
                                [{"id": "url", "property": "pathname", "value": "/services/filesystem"},
                                 {"id": "url", "property": "search", "value": ""},
                                 {"id": "tick", "property": "n_intervals", "value": 0}])
        assert "filesystem" in service and "Cannot read" not in service and "401" not in service, service[:2000]
        assert "cannot be read" not in service, service  # the alerts that fired, read with the credentials too
        assert alertmanager.refused == prometheus.refused == 0 and alertmanager.forwarded >= 1
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output

"""The dashboard's authentication: off by default, basic auth from a users file, OpenID
Connect through an identity provider; /healthz public; no secret in what is served."""

from __future__ import annotations

import base64
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from dashboard.app import create_app
from dashboard.auth import AuthConfig, AuthError, check_password, hash_password, read_users
from tests.support import free_port, wait_until
from tests.test_dashboard_overview import FakeSource

BANNER = {"output": "..banner.children...banner.className..",
          "outputs": [{"id": "banner", "property": "children"}, {"id": "banner", "property": "className"}],
          "inputs": [{"id": "tick", "property": "n_intervals", "value": 0},
                     {"id": "url", "property": "pathname", "value": "/"}], "changedPropIds": []}

PAGES = ("/", "/canaries", "/alerts", "/services/checkout")


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def users_file(tmp_path):
    path = tmp_path / "users.txt"
    path.write_text(f"# on-call\nalice:{hash_password('correct horse')}\nbob:plain-secret\n")
    return path


def test_without_auth_every_page_is_open():
    client = create_app(FakeSource()).server.test_client()
    for path in PAGES:
        assert client.get(path).status_code == 200, path


def test_basic_auth_refuses_pages_without_credentials_and_keeps_healthz_public(users_file):
    client = create_app(FakeSource(), auth=AuthConfig(users_file=str(users_file))).server.test_client()
    for path in PAGES:
        refused = client.get(path)
        assert refused.status_code == 401, path
        assert "correct horse" not in refused.get_data(as_text=True)
        assert client.get(path, headers=basic("alice", "wrong")).status_code == 401
        assert client.get(path, headers=basic("mallory", "correct horse")).status_code == 401
        assert client.get(path, headers=basic("alice", "correct horse")).status_code == 200, path
        assert client.get(path, headers=basic("bob", "plain-secret")).status_code == 200, path
    assert client.get("/healthz").status_code == 200
    # callbacks too: the data never leaves without credentials
    assert client.post("/_dash-update-component", json=BANNER).status_code == 401
    allowed = client.post("/_dash-update-component", json=BANNER, headers=basic("bob", "plain-secret"))
    assert allowed.status_code == 200 and "Latest evaluation" in allowed.get_data(as_text=True)


@pytest.mark.parametrize("header", ["Bearer abc", "Basic", "Basic !!!", "Basic " + base64.b64encode(b"bob").decode(),
                                    "Basic " + base64.b64encode(b"\xff\xfe:x").decode(), "Digest username=bob"])
def test_a_malformed_authorization_header_is_refused_not_an_error(users_file, header):
    client = create_app(FakeSource(), auth=AuthConfig(users_file=str(users_file))).server.test_client()
    assert client.get("/", headers={"Authorization": header}).status_code == 401
    assert client.post("/_dash-update-component", json=BANNER, headers={"Authorization": header}).status_code == 401
    # the scheme's name is case-insensitive (RFC 9110)
    lower = {"Authorization": basic("bob", "plain-secret")["Authorization"].replace("Basic", "basic")}
    assert client.get("/", headers=lower).status_code == 200


def test_passwords_hash_and_check_in_constant_time_helpers():
    stored = hash_password("s3cret", salt="abcd", iterations=1000)
    assert stored.startswith("pbkdf2_sha256$1000$abcd$") and "s3cret" not in stored
    assert check_password(stored, "s3cret") and not check_password(stored, "s3cret ")
    assert check_password("plain", "plain") and not check_password("plain", "plai")
    assert not check_password("pbkdf2_sha256$garbage", "x")


@pytest.mark.parametrize("text, error", [("", "no users"), ("alice\n", "line 1: expected user:password"),
                                         ("a:1\n# x\na:2\n", "line 3: user 'a' appears twice")])
def test_bad_users_files_name_the_file_and_line(tmp_path, text, error):
    path = tmp_path / "users.txt"
    path.write_text(text)
    with pytest.raises(AuthError, match=error) as info:
        read_users(path)
    assert str(path) in str(info.value)
    with pytest.raises(AuthError, match="cannot read"):
        read_users(tmp_path / "missing.txt")


@pytest.fixture
def identity_provider():
    """A stand-in identity provider that only publishes its OpenID configuration."""
    class Discovery(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            base = f"http://127.0.0.1:{self.server.server_port}"
            body = json.dumps({"issuer": base, "authorization_endpoint": f"{base}/authorize",
                               "token_endpoint": f"{base}/token", "jwks_uri": f"{base}/jwks"}).encode()
            self.send_response(200 if self.path == "/.well-known/openid-configuration" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Discovery)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_oidc_sends_the_browser_to_the_identity_provider(monkeypatch, identity_provider):
    monkeypatch.setenv("MCP_SLO_OIDC_CLIENT_SECRET", "client-secret-value")
    monkeypatch.setenv("MCP_SLO_SESSION_KEY", "session-key-value")
    app = create_app(FakeSource(), auth=AuthConfig(oidc_issuer=identity_provider, oidc_client_id="mcp-slo"))
    client = app.server.test_client()
    for path in PAGES:
        response = client.get(path, follow_redirects=False)
        hops = 0
        while response.status_code in (301, 302, 303, 307) and response.location.startswith("/") and hops < 5:
            response, hops = client.get(response.location, follow_redirects=False), hops + 1
        assert response.status_code == 302, (path, response.status_code)
        target = urlsplit(response.location)
        assert f"{target.scheme}://{target.netloc}{target.path}" == f"{identity_provider}/authorize"
        assert parse_qs(target.query)["client_id"] == ["mcp-slo"]
        assert "client-secret-value" not in response.location + response.get_data(as_text=True)
    assert client.post("/_dash-update-component", json=BANNER).status_code in (302, 401, 403)
    assert client.get("/healthz").status_code == 200


def test_oidc_without_its_secrets_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("MCP_SLO_OIDC_CLIENT_SECRET", raising=False)
    with pytest.raises(AuthError, match="MCP_SLO_OIDC_CLIENT_SECRET"):
        create_app(FakeSource(), auth=AuthConfig(oidc_issuer="https://idp.example", oidc_client_id="x"))
    with pytest.raises(AuthError, match="not both"):
        create_app(FakeSource(), auth=AuthConfig(users_file="u.txt", oidc_issuer="https://idp.example"))


# --- every callback, without credentials, against the real server ------------------------------
#
# dash-auth lets a callback through when an input claims a `pathname` on one of its public
# routes, and the client writes those inputs: a callback answered without credentials would
# send every service, SLO and budget to anyone. So every callback of the app is posted with a
# pathname claim for every route the server knows, to the real `mcp-slo dashboard` process.


def write_store(path) -> None:
    """An engine store with one fresh evaluation of the service `checkout`."""
    from slo.engine.store import Store
    from tests.test_dashboard_overview import engine_row

    store = Store(path)
    store.write_tick(time.time(), [engine_row("checkout", "availability", 0.02)], [], {})
    store.close()


@contextmanager
def dashboard_process(args: list[str], env: dict[str, str] | None = None) -> Iterator[str]:
    """`mcp-slo dashboard ARGS` on a free port until the block ends; yields its URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "mcp_slo", "dashboard", *args, "--listen", f"127.0.0.1:{port}"],
                               env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def up():
            assert process.poll() is None, "the dashboard exited"
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200

        wait_until(up, timeout=60, interval=0.2, what="the dashboard's /healthz")
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output


def in_process_app(args: list[str]):
    """The app `mcp-slo dashboard ARGS` serves, built here to read its callback map."""
    import argparse

    from dashboard import dashboard_cli

    parser = argparse.ArgumentParser()
    dashboard_cli.add_arguments(parser)
    app = dashboard_cli.build(parser.parse_args(args))[0]
    app.server.test_client().get("/healthz")  # the first request registers the pages' router callback
    return app


def claimed_routes(app) -> list[str]:
    """A path for every route the server has, every page of the app and every route dash-auth
    would make public (its rule syntax made concrete)."""
    import dash
    from dash_auth.public_routes import BASE_PUBLIC_ROUTES

    rules = [rule.rule for rule in app.server.url_map.iter_rules()]
    pages = [page.get("path_template") or page["path"] for page in dash.page_registry.values()]
    routes = {re.sub(r"<[^>]*>", "x", r) for r in (*rules, *pages, *BASE_PUBLIC_ROUTES, "/healthz", "/")}
    return sorted(routes)


def callback_bodies(app, pathname: str) -> Iterator[tuple[str, dict]]:
    """(output, the request a browser would post) for every callback, every `pathname` input
    set to `pathname`; a callback without one gets its first input's property rewritten to
    `pathname`, as an attacker would."""
    for output, cb in app.callback_map.items():
        outputs = []
        for spec in output.strip(".").split("..."):
            ident, prop = spec.rsplit(".", 1)
            outputs.append([] if ident.startswith("{") else {"id": ident, "property": prop})  # pattern: none here
        inputs = [{**i, "value": pathname if i["property"] == "pathname" else None} for i in cb["inputs"]]
        if not any(i["property"] == "pathname" for i in inputs):
            inputs[0] = {**inputs[0], "property": "pathname", "value": pathname}
        yield output, {"output": output, "outputs": outputs if output.startswith("..") else outputs[0],
                       "inputs": inputs, "state": [{**s, "value": None} for s in cb["state"]],
                       "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"]}


def refuses_every_callback(url: str, app, refused: Callable[[httpx.Response], bool],
                           headers: dict[str, str] | None = None) -> int:
    """Post every callback with every pathname claim; fails on the first answered one. Returns
    how many requests were posted."""
    posted = 0
    with httpx.Client(base_url=url, timeout=10, headers=headers or {}) as client:
        for route in claimed_routes(app):
            for output, body in callback_bodies(app, route):
                response = client.post("/_dash-update-component", json=body)
                posted += 1
                assert refused(response), (route, output, response.status_code, response.text[:300])
                assert "checkout" not in response.text, (route, output)
    return posted


@pytest.mark.integration
def test_basic_auth_refuses_every_callback_whatever_pathname_it_claims(tmp_path, users_file):
    write_store(tmp_path / "engine.db")
    args = ["--store", str(tmp_path / "engine.db"), "--auth-users", str(users_file)]
    app = in_process_app(args)
    assert len(app.callback_map) >= 10  # the shell's, every page's and the router's
    with dashboard_process(args) as url:
        posted = refuses_every_callback(url, app, lambda r: r.status_code == 401)
        assert posted >= 10 * len(claimed_routes(app))
        assert httpx.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}
        # the same requests with credentials get through (to Dash, which may not like the
        # values made up here): the refusals above are the auth's
        with httpx.Client(base_url=url, timeout=10, headers=basic("bob", "plain-secret")) as client:
            served = {output: client.post("/_dash-update-component", json=body).status_code
                      for output, body in callback_bodies(app, "/")}
            assert all(status != 401 for status in served.values()), served
            banner = client.post("/_dash-update-component", json=BANNER)
            assert banner.status_code == 200 and "Latest evaluation" in banner.text


@pytest.mark.integration
def test_oidc_sends_every_callback_to_the_identity_provider_whatever_pathname_it_claims(tmp_path,
                                                                                       identity_provider):
    write_store(tmp_path / "engine.db")
    env = {"MCP_SLO_OIDC_CLIENT_SECRET": "client-secret-value", "MCP_SLO_SESSION_KEY": "session-key-value"}
    args = ["--store", str(tmp_path / "engine.db"), "--oidc-issuer", identity_provider, "--oidc-client-id", "mcp-slo"]
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        app = in_process_app(args)

    def to_the_idp(response: httpx.Response) -> bool:
        return response.status_code == 302 and response.headers["location"].startswith(f"{identity_provider}/")

    with dashboard_process(args, env) as url:
        assert refuses_every_callback(url, app, to_the_idp) >= 10 * len(claimed_routes(app))
        assert httpx.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}
        assert to_the_idp(httpx.get(f"{url}/services/checkout", timeout=5))


def test_a_body_over_the_limit_is_refused_before_authentication_reads_it(users_file):
    app = create_app(FakeSource(), auth=AuthConfig(users_file=str(users_file)), max_request_bytes=4096)
    client = app.server.test_client()
    big = b'{"output": "' + b"x" * 5000 + b'"}'
    refused = client.post("/_dash-update-component", data=big, content_type="application/json")
    assert refused.status_code == 413 and "over the dashboard's limit of 4096" in refused.get_json()["error"]
    refused = client.post("/_dash-update-component", data=big, content_type="application/json",
                          headers=basic("bob", "plain-secret"))
    assert refused.status_code == 413  # credentials or not
    assert client.post("/_dash-update-component", json=BANNER).status_code == 401  # a small one reaches auth
    assert client.post("/_dash-update-component", json=BANNER, headers=basic("bob", "plain-secret")).status_code == 200
    # no Content-Length (chunked, from a server that passes such bodies on): cut at the limit
    import io

    streamed = client.post("/_dash-update-component", input_stream=io.BytesIO(big), content_type="application/json",
                           environ_overrides={"wsgi.input_terminated": True})
    assert streamed.status_code == 413
    # the default fits every callback the pages send
    assert create_app(FakeSource()).server.config["MAX_CONTENT_LENGTH"] == 1 << 20


@pytest.mark.integration
def test_the_dashboard_process_refuses_large_bodies_declared_or_streamed(tmp_path, users_file):
    write_store(tmp_path / "engine.db")
    args = ["--store", str(tmp_path / "engine.db"), "--auth-users", str(users_file), "--max-request-size", "64KiB"]
    with dashboard_process(args) as url:
        body = b"[" + b"0," * 4_000_000 + b"0]"  # 8 MB
        with httpx.Client(base_url=url, timeout=30) as client:
            declared = client.post("/_dash-update-component", content=body,
                                   headers={"Content-Type": "application/json"})
            assert declared.status_code == 413

            def chunks():
                for i in range(0, len(body), 65536):
                    yield body[i:i + 65536]

            # without a Content-Length: Flask cuts the body at the limit (413) where the server
            # passes it on; Werkzeug's own server passes none on (400, nothing read)
            streamed = client.post("/_dash-update-component", content=chunks(),
                                   headers={"Content-Type": "application/json"})
            assert streamed.status_code in (400, 413), streamed.status_code
            assert client.get("/healthz").json() == {"status": "ok"}
            banner = client.post("/_dash-update-component", json=BANNER, headers=basic("bob", "plain-secret"))
            assert banner.status_code == 200 and "Latest evaluation" in banner.text

"""The dashboard's authentication: off by default, basic auth from a users file, OpenID
Connect through an identity provider; /healthz public; no secret in what is served."""

from __future__ import annotations

import base64
import http.server
import json
import threading
from urllib.parse import parse_qs, urlsplit

import pytest

from dashboard.app import create_app
from dashboard.auth import AuthConfig, AuthError, check_password, hash_password, read_users
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

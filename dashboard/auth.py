"""Who may see the dashboard: nobody is asked by default (`make demo`), or HTTP basic auth
from a users file, or OpenID Connect through an identity provider (dash-auth for both).

    mcp-slo dashboard --auth-users users.txt            # basic auth
    mcp-slo dashboard --oidc-issuer https://idp.example/realms/sre --oidc-client-id mcp-slo
        # the client secret and the session key come from the environment, never the command line

The users file has one `user:password` per line, the password either as is or as
`pbkdf2_sha256$ITERATIONS$SALT$HASH` (`hash_password` makes one; `#` starts a comment). It
is read once at start. Passwords, client secrets and session keys stay on the server:
nothing of them is put in a page, a log line or an error message.

Every path is protected, Dash's callbacks included: no route is given to dash-auth as
public, because dash-auth lets a callback through when one of its inputs claims a public
`pathname`, and the browser writes those inputs (so anyone could). `/healthz` stays open
for load balancers by being answered before authentication runs (dashboard.app).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import dash
import dash_auth
import flask

PBKDF2 = "pbkdf2_sha256"
ITERATIONS = 200_000
SECRET_ENV = "MCP_SLO_OIDC_CLIENT_SECRET"  # the OIDC client secret
SESSION_KEY_ENV = "MCP_SLO_SESSION_KEY"  # signs the session cookie; the same for every worker


class AuthError(ValueError):
    """A users file or OIDC setting that cannot be used; the message names the file or flag."""


@dataclass(frozen=True)
class AuthConfig:
    users_file: str | None = None  # basic auth
    oidc_issuer: str | None = None  # OpenID Connect: the issuer URL (its /.well-known/openid-configuration)
    oidc_client_id: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.users_file or self.oidc_issuer)


def hash_password(password: str, salt: str | None = None, iterations: int = ITERATIONS) -> str:
    """A users-file entry for `password`: pbkdf2_sha256$ITERATIONS$SALT$HASH."""
    salt = salt or secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"{PBKDF2}${iterations}${salt}${base64.b64encode(digest).decode()}"


def check_password(stored: str, given: str) -> bool:
    """Whether `given` matches a users-file password (hashed or not), in constant time."""
    if stored.startswith(PBKDF2 + "$"):
        try:
            _, iterations, salt, _digest = stored.split("$", 3)
            expected = hash_password(given, salt, int(iterations))
        except ValueError:
            return False
        return hmac.compare_digest(expected.encode(), stored.encode())
    return hmac.compare_digest(given.encode(), stored.encode())


def read_users(path: str | os.PathLike) -> dict[str, str]:
    """user -> stored password from a users file; AuthError naming the file and line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise AuthError(f"users file {path}: cannot read it ({exc.strerror or exc})") from None
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            raise AuthError(f"users file {path}, line {number}: expected user:password")
        if user in users:
            raise AuthError(f"users file {path}, line {number}: user {user!r} appears twice")
        users[user] = password
    if not users:
        raise AuthError(f"users file {path}: no users")
    return users


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) of an `Authorization: Basic ...` header; None for a missing or
    malformed one, or another scheme."""
    scheme, _, encoded = (header or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except ValueError:  # not base64 (binascii.Error), not UTF-8 (UnicodeDecodeError)
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class UsersFileAuth(dash_auth.BasicAuth):
    """dash-auth's basic auth over a users file. It reads the header itself: dash-auth's own
    parsing raises on a malformed one, which would answer 500 instead of asking for a login."""

    def __init__(self, app: dash.Dash, users: dict[str, str]):
        self.users = users
        super().__init__(app, auth_func=self.check)  # no public_routes: see the module's docstring

    def check(self, user: str, password: str) -> bool:
        stored = self.users.get(user)
        return stored is not None and check_password(stored, password)

    def is_authorized(self) -> bool:
        credentials = basic_credentials(flask.request.headers.get("Authorization"))
        return credentials is not None and self.check(*credentials)


def protect(app: dash.Dash, config: AuthConfig, environ=os.environ) -> str | None:
    """Put `app` behind the configured authentication; returns what protects it ("basic",
    "oidc") or None when nothing is configured."""
    if config.users_file and config.oidc_issuer:
        raise AuthError("choose basic auth (--auth-users) or OpenID Connect (--oidc-issuer), not both")
    if config.users_file:
        UsersFileAuth(app, read_users(config.users_file))
        return "basic"
    if config.oidc_issuer:
        if not config.oidc_client_id:
            raise AuthError("--oidc-issuer needs --oidc-client-id")
        secret = environ.get(SECRET_ENV)
        if not secret:
            raise AuthError(f"OpenID Connect needs the client secret in the environment variable {SECRET_ENV}")
        # Every worker must sign cookies with the same key, or a session ends at the next worker.
        key = environ.get(SESSION_KEY_ENV)
        if not key:
            raise AuthError(f"OpenID Connect needs a session key in the environment variable {SESSION_KEY_ENV} "
                            "(the same for every worker)")
        auth = dash_auth.OIDCAuth(app, secret_key=key, secure_session=True)  # no public_routes: see the docstring
        auth.register_provider("idp", client_id=config.oidc_client_id, client_secret=secret,
                               server_metadata_url=config.oidc_issuer.rstrip("/")
                               + "/.well-known/openid-configuration")
        return "oidc"
    return None

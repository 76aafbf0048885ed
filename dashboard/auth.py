"""Who may see the dashboard: nobody is asked by default (`make demo`), or HTTP basic auth
from a users file, or OpenID Connect through an identity provider (dash-auth for both).

    mcp-slo dashboard --auth-users users.txt            # basic auth
    mcp-slo dashboard --oidc-issuer https://idp.example/realms/sre --oidc-client-id mcp-slo
        # the client secret and the session key come from the environment, never the command line

The users file has one `user:password` per line, the password either as is or as
`pbkdf2_sha256$ITERATIONS$SALT$HASH` (`hash_password` makes one; `#` starts a comment). It
is read once at start. Passwords, client secrets and session keys stay on the server:
nothing of them is put in a page, a log line or an error message.

Roles: the Audit page is for users with the `auditor` role (ROLES lists the roles there are).
In the users file they follow a hashed password after one more colon:

    alice:pbkdf2_sha256$200000$5f1c...$Qm9i...=:auditor
    # no role for bob: a plain password is all that follows the first colon
    bob:plain-secret

A hash has no colon, so the roles field is unambiguous, and a plain password (which may hold
colons) keeps its meaning; `bob:secret:auditor` is refused rather than read as the password
"secret:auditor". With OpenID Connect, the roles come from claims of the ID token: `roles`
and `groups` (or the one `--oidc-roles-claim` names; `realm_access.roles` reaches into an
object), and the value `--oidc-auditor-value` names (default `auditor`) makes an auditor.
Authentication puts the roles of whoever it let in on `flask.g` for that request only, and
`current_roles()` reads them there: without authentication nobody has a role, unless the
dashboard was started with `--audit-open` (a demo's opt-in: everyone is an auditor).

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import dash
import dash_auth
import flask

PBKDF2 = "pbkdf2_sha256"
ITERATIONS = 200_000
SECRET_ENV = "MCP_SLO_OIDC_CLIENT_SECRET"  # the OIDC client secret
SESSION_KEY_ENV = "MCP_SLO_SESSION_KEY"  # signs the session cookie; the same for every worker
AUDITOR = "auditor"  # may see the Audit page
ROLES = (AUDITOR,)
DEFAULT_ROLES_CLAIMS = ("roles", "groups")  # the ID token's claims read for roles, unless one is named
_G_ROLES = "mcp_slo_roles"  # the flask.g attribute holding the request's roles


class AuthError(ValueError):
    """A users file or OIDC setting that cannot be used; the message names the file or flag."""


@dataclass(frozen=True)
class AuthConfig:
    users_file: str | None = None  # basic auth
    oidc_issuer: str | None = None  # OpenID Connect: the issuer URL (its /.well-known/openid-configuration)
    oidc_client_id: str | None = None
    oidc_roles_claim: str | None = None  # the ID token's claim holding roles; None: DEFAULT_ROLES_CLAIMS
    oidc_auditor_value: str | None = None  # the claim's value meaning auditor; None: "auditor"
    audit_open: bool = False  # no authentication, and everyone is an auditor (a demo's opt-in)

    @property
    def enabled(self) -> bool:
        return bool(self.users_file or self.oidc_issuer)


@dataclass(frozen=True)
class Account:
    password: str  # as stored: plain or pbkdf2_sha256$...
    roles: frozenset[str] = frozenset()


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
    return {user: account.password for user, account in read_accounts(path).items()}


def read_accounts(path: str | os.PathLike) -> dict[str, Account]:
    """user -> password and roles from a users file; AuthError naming the file and line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise AuthError(f"users file {path}: cannot read it ({exc.strerror or exc})") from None
    accounts: dict[str, Account] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"users file {path}, line {number}"
        user, sep, rest = line.partition(":")
        if not sep or not user or not rest:
            raise AuthError(f"{where}: expected user:password")
        if user in accounts:
            raise AuthError(f"{where}: user {user!r} appears twice")
        accounts[user] = _account(rest, where)
    if not accounts:
        raise AuthError(f"users file {path}: no users")
    return accounts


def _account(rest: str, where: str) -> Account:
    """The password and roles after `user:` (see the module's docstring for the syntax)."""
    if rest.startswith(PBKDF2 + "$"):
        password, sep, roles = rest.partition(":")
        return Account(password, _roles(roles, where) if sep else frozenset())
    _, sep, last = rest.rpartition(":")
    if sep and all(part.strip() in ROLES for part in last.split(",")):
        # most likely `user:secret:auditor`: refused rather than read as a password with a colon
        raise AuthError(f"{where}: roles (:{last}) may only follow a hashed password (dashboard.auth."
                        "hash_password makes one); a plain password is all that follows the first colon")
    return Account(rest)


def _roles(text: str, where: str) -> frozenset[str]:
    names = [part.strip() for part in text.split(",")]
    for name in names:
        if name not in ROLES:
            what = f"unknown role {name!r}" if name else "an empty role"
            raise AuthError(f"{where}: {what} (roles: {', '.join(ROLES)}, separated by commas)")
    return frozenset(names)


def current_roles() -> frozenset[str]:
    """The roles of whoever makes the current request, as authentication found them; none
    outside a request, for a request authentication did not let in, and without
    authentication (unless --audit-open)."""
    if not flask.has_request_context():
        return frozenset()
    return flask.g.get(_G_ROLES, frozenset())


def _grant(roles: frozenset[str]) -> None:
    """The roles of the current request; only authentication calls this, once it let it in."""
    setattr(flask.g, _G_ROLES, frozenset(roles))


def claim_values(claims: Mapping, name: str) -> list[str]:
    """The strings of claim `name`: a list, or one string of comma-separated values; a dotted
    name reaches into objects (Keycloak's `realm_access.roles`) unless it is a claim itself
    (namespaced claims are URLs with dots)."""
    value = claims.get(name)
    if value is None and "." in name:
        value = claims
        for part in name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return []


def claim_roles(claims: Mapping, claim: str | None = None, auditor_value: str | None = None) -> frozenset[str]:
    """The roles an ID token's claims give: AUDITOR when the roles claim (`claim`, else
    DEFAULT_ROLES_CLAIMS) holds `auditor_value` (default "auditor")."""
    values = {v for name in ((claim,) if claim else DEFAULT_ROLES_CLAIMS) for v in claim_values(claims, name)}
    return frozenset({AUDITOR}) if (auditor_value or AUDITOR) in values else frozenset()


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

    def __init__(self, app: dash.Dash, accounts: dict[str, Account]):
        self.accounts = accounts
        super().__init__(app, auth_func=self.check)  # no public_routes: see the module's docstring

    def check(self, user: str, password: str) -> bool:
        account = self.accounts.get(user)
        return account is not None and check_password(account.password, password)

    def is_authorized(self) -> bool:
        credentials = basic_credentials(flask.request.headers.get("Authorization"))
        if credentials is None or not self.check(*credentials):
            return False
        _grant(self.accounts[credentials[0]].roles)
        return True


class RolesOIDCAuth(dash_auth.OIDCAuth):
    """dash-auth's OpenID Connect, which also grants the roles of the signed-in user's claims
    (dash-auth keeps the ID token's claims in the signed session cookie as `user`)."""

    def __init__(self, app: dash.Dash, roles_of: Callable[[Mapping], frozenset[str]], **kwargs):
        self.roles_of = roles_of
        super().__init__(app, **kwargs)

    def is_authorized(self) -> bool:
        authorized = bool(super().is_authorized())
        user = flask.session.get("user")
        if authorized and isinstance(user, Mapping):  # not on the login and callback routes
            _grant(self.roles_of(user))
        return authorized


def protect(app: dash.Dash, config: AuthConfig, environ=os.environ) -> str | None:
    """Put `app` behind the configured authentication; returns what protects it ("basic",
    "oidc", "open" for --audit-open) or None when nothing is configured."""
    if config.users_file and config.oidc_issuer:
        raise AuthError("choose basic auth (--auth-users) or OpenID Connect (--oidc-issuer), not both")
    if config.audit_open and config.enabled:
        raise AuthError("--audit-open is for a dashboard without authentication: give the auditors "
                        f"the {AUDITOR} role instead (see dashboard/auth.py)")
    for flag, value in (("--oidc-roles-claim", config.oidc_roles_claim),
                        ("--oidc-auditor-value", config.oidc_auditor_value)):
        if value and not config.oidc_issuer:
            raise AuthError(f"{flag} needs --oidc-issuer")
    if config.users_file:
        UsersFileAuth(app, read_accounts(config.users_file))
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
        def roles_of(claims: Mapping) -> frozenset[str]:
            return claim_roles(claims, config.oidc_roles_claim, config.oidc_auditor_value)

        # no public_routes: see the docstring
        auth = RolesOIDCAuth(app, roles_of, secret_key=key, secure_session=True)
        auth.register_provider("idp", client_id=config.oidc_client_id, client_secret=secret,
                               server_metadata_url=config.oidc_issuer.rstrip("/")
                               + "/.well-known/openid-configuration")
        return "oidc"
    if config.audit_open:
        app.server.before_request(lambda: _grant(frozenset({AUDITOR})))  # returns None: the request goes on
        return "open"
    return None

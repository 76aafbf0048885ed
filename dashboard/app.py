"""The Dash app: the shell (dashboard.shell) around the pages of dashboard/pages/, fed by one
data source, and its configuration from the environment (gunicorn) or the commands' options.

    app = create_app(EngineSource("http://127.0.0.1:8080"), prometheus_url="http://127.0.0.1:9090")
    app.run(port=8050)                      # or: mcp-slo dashboard --engine URL
    gunicorn -w 4 'dashboard.app:server'     # configured by the environment, see ENVIRONMENT

Pages are registered explicitly with `dash.register_page` rather than by Dash's scan of a
folder: the scan re-executes page files for every app and collects `dash.callback`s globally,
while each page here registers its callbacks on the app it is given, with the app's data
source and Prometheus reads in the callbacks' closures (nothing is kept on the app object).

The source's reads are shared by every callback through a cache of a few seconds (and the
big answers are read once per engine evaluation, see CachedSource). The overview reads only
the engine's results, never Prometheus; the service, canary and alert pages add Prometheus
and Alertmanager through dashboard.prometheus.Metrics. Nothing secret reaches the browser: the
engine's URL is shown without credentials, the spec and Prometheus's URL stay on the server.
`/healthz` answers 200 while the process serves, without credentials: it is answered before
authentication runs, not as one of dash-auth's public routes (see dashboard.auth). The CSS is
in dashboard/assets/, which Dash serves and links from every page.

The Audit page exists only with the audit trail's files (`audit`, `--audit-file`) and
authentication (or `--audit-open`); the layout is then a function, so that only auditors'
navigation links to it (the page and its callbacks check the role themselves).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dash
import flask

from dashboard import shell
from dashboard.audit_data import Trail, trail_from
from dashboard.auth import AuthConfig, AuthError, protect
from dashboard.pages import alerts, audit as audit_page, canaries, overview, service
from dashboard.prometheus import TIMEOUT as PROMETHEUS_TIMEOUT, Metrics
from dashboard.source import DEFAULT_TTL, CachedSource, EngineSource, Source, StoreSource
from collector import durations
from slo import importers
from slo.engine import engine_cli

PAGES = (overview, canaries, alerts, service)
DEFAULT_ENGINE_URL = "http://127.0.0.1:8080"  # mcp-slo engine's default --listen
HEALTHZ = "/healthz"
MAX_REQUEST_BYTES = 1 << 20  # a callback's request is a few KB: anything larger is refused (413) unread
ASSETS = Path(__file__).with_name("assets")  # the CSS, served by Dash under /assets/

# gunicorn's `dashboard.app:server` reads these
ENVIRONMENT = {
    "MCP_SLO_ENGINE_URL": f"the engine's API (default {DEFAULT_ENGINE_URL})",
    "MCP_SLO_STORE": "or the engine's SQLite store, read directly (not with MCP_SLO_ENGINE_URL)",
    "MCP_SLO_ENGINE_INTERVAL": "with MCP_SLO_STORE: the engine's --interval, to tell stale data (default 30s)",
    "MCP_SLO_PROMETHEUS_URL": "Prometheus, for the charts and alerts",
    "MCP_SLO_ALERTMANAGER_URL": "Alertmanager, for the alerts page (optional)",
    # how to reach both, as the engine's options of the same names (slo.engine.engine_cli.add_backend_arguments)
    "MCP_SLO_BEARER_TOKEN_ENV": "the name of the environment variable holding a bearer token (--bearer-token-env)",
    "MCP_SLO_BASIC_AUTH_USER": "or basic auth: the user (--basic-auth-user), with MCP_SLO_BASIC_AUTH_PASSWORD_ENV",
    "MCP_SLO_BASIC_AUTH_PASSWORD_ENV": "the name of the environment variable holding its password",
    "MCP_SLO_HEADERS": "extra HTTP headers, NAME:VALUE, one per line (--header)",
    "MCP_SLO_CA_FILE": "a CA bundle to verify their certificates (--ca-file)",
    "MCP_SLO_INSECURE_SKIP_VERIFY": "true: do not verify TLS certificates (--insecure-skip-verify)",
    "MCP_SLO_CONFIG": "the SLO spec (optional; with MCP_SLO_STORE, where the planned maintenance windows come from)",
    "MCP_SLO_AUTH_USERS": "a users file: basic auth on every page but /healthz (see dashboard.auth)",
    "MCP_SLO_OIDC_ISSUER": "or OpenID Connect: the issuer URL (with MCP_SLO_OIDC_CLIENT_ID, and the client "
                           "secret and session key in MCP_SLO_OIDC_CLIENT_SECRET and MCP_SLO_SESSION_KEY)",
    "MCP_SLO_OIDC_CLIENT_ID": "the OpenID Connect client id",
    "MCP_SLO_OIDC_ROLES_CLAIM": "the ID token's claim holding the user's roles (default: both roles and groups)",
    "MCP_SLO_OIDC_AUDITOR_VALUE": "the value of that claim that makes an auditor (default auditor)",
    "MCP_SLO_AUDIT_FILES": f"the audit trail's files for the Audit page, paths or globs separated by {os.pathsep!r} "
                           "(--audit-file; the HMAC key, if any, in MCP_SLO_AUDIT_KEY)",
    "MCP_SLO_AUDIT_OPEN": "true: without authentication, show the Audit page to everyone (--audit-open, a demo)",
    "MCP_SLO_MAX_REQUEST_SIZE": "the largest request body served, e.g. 1MiB (the default; --max-request-size)",
}


def create_app(source: Source, prometheus_url: str | None = None, config: Any = None, *,
               ttl: float = DEFAULT_TTL, alertmanager_url: str | None = None,
               metrics: Metrics | None = None, auth: AuthConfig | None = None,
               max_request_bytes: int = MAX_REQUEST_BYTES, audit: Trail | None = None) -> dash.Dash:
    """The app over `source` (EngineSource or StoreSource; wrapped in a CachedSource of `ttl`
    seconds unless it is one). Charts and alerts read Prometheus and Alertmanager through
    `metrics` (built from the URLs unless given). `config`, the SLO spec, is taken from the
    commands that have one: the charts read the metrics its `metrics:` names (else both schemas). `auth` puts every page behind basic auth or
    OpenID Connect (dashboard.auth). A request body over `max_request_bytes` is refused with
    413 before anything reads it, authentication included. `audit` (the trail's files) adds
    the Audit page for auditors; it needs `auth` to name them (or to be `audit_open`)."""
    check_audit(audit, auth)
    data = source if isinstance(source, CachedSource) else CachedSource(source, ttl)
    metrics = metrics or Metrics(prometheus_url, alertmanager_url, ttl=ttl)
    if config is not None:
        metrics.schema = config.metrics
    app = dash.Dash(__name__, use_pages=True, pages_folder="", assets_folder=str(ASSETS), title="mcp-slo",
                    update_title=None)
    pages = PAGES + ((audit_page,) if audit is not None else ())
    dash.page_registry.pop(audit_page.__name__, None)  # Dash's registry is global: an earlier app's audit page
    for page in pages:
        dash.register_page(page.__name__, path=page.PATH, path_template=getattr(page, "PATH_TEMPLATE", None),
                           name=page.NAME, order=page.ORDER, title=f"{page.NAME} · mcp-slo", layout=page.layout)
    if audit is None:
        app.layout = shell.layout()
    else:  # built for each request: only an auditor's nav links to the audit page
        app.layout = lambda: shell.layout(shell.NAV + ((audit_page,) if audit_page.visible() else ()))
    shell.register_callbacks(app, data)
    for page in PAGES:
        page.register_callbacks(app, data, metrics)
    if audit is not None:
        audit_page.register_callbacks(app, audit)
    app.server.before_request(healthz)  # before protect(): load balancers have no credentials
    # before protect() too: dash-auth parses a callback's JSON body before it refuses it
    app.server.config["MAX_CONTENT_LENGTH"] = max_request_bytes  # bodies without a Content-Length
    app.server.before_request(lambda: too_large(max_request_bytes))
    if auth is not None:
        protect(app, auth)
    logging.getLogger(__name__).info("dashboard reading %s", data.description)  # never a credential
    return app


def check_audit(audit: Trail | None, auth: AuthConfig | None) -> None:
    """AuthError unless the audit page is given files and a way to tell auditors, or neither."""
    open_ = auth is not None and auth.audit_open
    if audit is not None and not (open_ or (auth is not None and auth.enabled)):
        raise AuthError("--audit-file needs authentication to tell auditors (--auth-users or --oidc-issuer, "
                        "see dashboard/auth.py), or --audit-open to show the trail to everyone")
    if audit is None and open_:
        raise AuthError("--audit-open needs --audit-file")


def healthz() -> flask.Response | None:
    """Answers /healthz (200 while the process serves) ahead of every other request hook,
    authentication included; None lets any other request go on."""
    if flask.request.path == HEALTHZ:
        return flask.jsonify(status="ok")
    return None


def too_large(limit: int) -> flask.Response | None:
    """413 for a request that declares a body over `limit` bytes (none of it read); None lets
    it go on (a body without a Content-Length is cut at the same size by Flask)."""
    length = flask.request.content_length
    if length is not None and length > limit:
        response = flask.jsonify(error=f"request body of {length} bytes is over the dashboard's limit of {limit}")
        response.status_code = 413
        response.headers["Connection"] = "close"  # the unread body is not worth draining
        return response
    return None


def make_source(engine_url: str | None = None, store: str | None = None, interval: float = 30.0,
                spec: Any = None) -> Source:
    """An EngineSource, or a StoreSource when `store` is given (with the planned maintenance
    windows of `spec`, the SLO spec, if any: the store has only the run-time ones); ValueError
    for bad values."""
    if engine_url and store:
        raise ValueError("read from the engine's API or from its store, not both")
    if store:
        return StoreSource(store, interval=interval, planned=spec.maintenance if spec is not None else ())
    return EngineSource(engine_url or DEFAULT_ENGINE_URL)


def server_from_env(environ: Mapping[str, str] = os.environ) -> flask.Flask:
    """The Flask server of an app configured by ENVIRONMENT; ValueError (or slo.spec.SpecError)
    naming the variable when a value is unusable."""
    return app_from_env(environ).server


def metrics_from_args(args: argparse.Namespace) -> Metrics:
    """The pages' reads of Prometheus (args.prometheus; none without it) and Alertmanager
    (args.alertmanager), reached with the engine's backend options in `args` (headers,
    credentials, TLS: slo.engine.engine_cli.add_backend_arguments), as `mcp-slo dashboard` and
    `mcp-slo serve` take them. ValueError for options that cannot be used."""
    # no retries: a chart waits for its query, and the next refresh asks again
    options = (engine_cli.backend_options(args, timeout=PROMETHEUS_TIMEOUT, retries=0)
               if args.prometheus else None)
    return Metrics(None, args.alertmanager, options=options)


def metrics_from_env(environ: Mapping[str, str]) -> Metrics:
    """`metrics_from_args` of ENVIRONMENT's variables; ValueError naming them."""
    args = argparse.Namespace(
        prometheus=environ.get("MCP_SLO_PROMETHEUS_URL") or None, alertmanager=environ.get("MCP_SLO_ALERTMANAGER_URL"),
        header=[h for h in environ.get("MCP_SLO_HEADERS", "").splitlines() if h.strip()],
        basic_auth_user=environ.get("MCP_SLO_BASIC_AUTH_USER"),
        basic_auth_password_env=environ.get("MCP_SLO_BASIC_AUTH_PASSWORD_ENV"),
        bearer_token_env=environ.get("MCP_SLO_BEARER_TOKEN_ENV"), ca_file=environ.get("MCP_SLO_CA_FILE"),
        insecure_skip_verify=environ.get("MCP_SLO_INSECURE_SKIP_VERIFY", "").lower() in ("1", "true", "yes"))
    try:
        return metrics_from_args(args)
    except ValueError as exc:
        raise ValueError(f"MCP_SLO_PROMETHEUS_URL and its credentials (named as the engine's options): {exc}") from exc


def app_from_env(environ: Mapping[str, str] = os.environ) -> dash.Dash:
    """The app of `server_from_env`."""
    interval = environ.get("MCP_SLO_ENGINE_INTERVAL") or "30s"
    spec_path = environ.get("MCP_SLO_CONFIG")
    spec = importers.load(spec_path).spec if spec_path else None
    try:
        seconds = durations.parse(interval)
        source = make_source(environ.get("MCP_SLO_ENGINE_URL"), environ.get("MCP_SLO_STORE"), seconds, spec)
    except ValueError as exc:
        raise ValueError(f"MCP_SLO_ENGINE_URL / MCP_SLO_STORE / MCP_SLO_ENGINE_INTERVAL: {exc}") from exc
    auth = AuthConfig(users_file=environ.get("MCP_SLO_AUTH_USERS"), oidc_issuer=environ.get("MCP_SLO_OIDC_ISSUER"),
                      oidc_client_id=environ.get("MCP_SLO_OIDC_CLIENT_ID"),
                      oidc_roles_claim=environ.get("MCP_SLO_OIDC_ROLES_CLAIM") or None,
                      oidc_auditor_value=environ.get("MCP_SLO_OIDC_AUDITOR_VALUE") or None,
                      audit_open=environ.get("MCP_SLO_AUDIT_OPEN", "").lower() in ("1", "true", "yes"))
    audit = trail_from([p for p in environ.get("MCP_SLO_AUDIT_FILES", "").split(os.pathsep) if p.strip()])
    limit = environ.get("MCP_SLO_MAX_REQUEST_SIZE")
    return create_app(source, environ.get("MCP_SLO_PROMETHEUS_URL"), spec,
                      alertmanager_url=environ.get("MCP_SLO_ALERTMANAGER_URL"), metrics=metrics_from_env(environ),
                      auth=auth, max_request_bytes=engine_cli.parse_size(limit, "MCP_SLO_MAX_REQUEST_SIZE") if limit
                      else MAX_REQUEST_BYTES, audit=audit)


_server: flask.Flask | None = None


def __getattr__(name: str) -> Any:
    """`server`, built from the environment on first use (gunicorn 'dashboard.app:server'), so
    importing this module builds no app."""
    global _server
    if name == "server":
        if _server is None:
            _server = server_from_env()
        return _server
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

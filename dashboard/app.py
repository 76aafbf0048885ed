"""The Dash app: a multipage shell around the pages of dashboard/pages/, fed by one data source.

    app = create_app(EngineSource("http://127.0.0.1:8080"), prometheus_url="http://127.0.0.1:9090")
    app.run(port=8050)                      # or: mcp-slo dashboard --engine URL
    gunicorn -w 4 'dashboard.app:server'     # configured by the environment, see ENVIRONMENT

The shell, on every page: navigation, a time range and an auto-refresh period (both kept in
the URL's query string, beside each page's own state, so every view is a permalink), and a
banner saying how old the engine's latest evaluation is. Pages are registered explicitly
with `dash.register_page` rather than by Dash's scan of a folder: the scan re-executes page
files for every app and collects `dash.callback`s globally, while each page here registers
its callbacks on the app it is given, with the app's data source.

The source's reads are shared by every callback through a cache of a few seconds (and the
big answers are read once per engine evaluation, see CachedSource). The overview reads only
the engine's results, never Prometheus; the service, canary and alert pages add Prometheus
and Alertmanager through dashboard.prometheus.Metrics. Nothing secret reaches the browser: the
engine's URL is shown without credentials, the spec and Prometheus's URL stay on the server.
`/healthz` answers 200 while the process serves, without credentials: it is answered before
authentication runs, not as one of dash-auth's public routes (see dashboard.auth).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dash
import flask
from dash import ALL, Input, Output, ctx, dcc, html, no_update

from dashboard.auth import AuthConfig, protect
from dashboard.formatting import fmt_duration
from dashboard.prometheus import TIMEOUT as PROMETHEUS_TIMEOUT, Metrics
from dashboard.pages import alerts, canaries, service
from dashboard.pages import overview as overview_page
from dashboard.source import DEFAULT_TTL, CachedSource, EngineSource, Source, SourceError, Status, StoreSource
from dashboard.url_state import (DEFAULT_RANGE, DEFAULT_REFRESH, RANGES, REFRESHES, merge_search, shell_query,
                                 shell_settings)
from slo.engine.backend import BackendOptions

PAGES = (overview_page, canaries, alerts, service)
NAV = (overview_page, canaries, alerts)  # a service's page is reached from its row
DEFAULT_ENGINE_URL = "http://127.0.0.1:8080"  # mcp-slo engine's default --listen
HEALTHZ = "/healthz"
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
    "MCP_SLO_CONFIG": "the SLO spec (optional)",
    "MCP_SLO_AUTH_USERS": "a users file: basic auth on every page but /healthz (see dashboard.auth)",
    "MCP_SLO_OIDC_ISSUER": "or OpenID Connect: the issuer URL (with MCP_SLO_OIDC_CLIENT_ID, and the client "
                           "secret and session key in MCP_SLO_OIDC_CLIENT_SECRET and MCP_SLO_SESSION_KEY)",
    "MCP_SLO_OIDC_CLIENT_ID": "the OpenID Connect client id",
}


@dataclass(frozen=True)
class Settings:
    """What the server side knows besides the data; never sent to the browser."""

    description: str  # where the data comes from, without credentials ("the engine at URL")
    prometheus_url: str | None
    spec: Any  # slo.spec.Spec or None


def create_app(source: Source, prometheus_url: str | None = None, config: Any = None, *,
               ttl: float = DEFAULT_TTL, alertmanager_url: str | None = None,
               metrics: Metrics | None = None, auth: AuthConfig | None = None) -> dash.Dash:
    """The app over `source` (EngineSource or StoreSource; wrapped in a CachedSource of `ttl`
    seconds unless it is one). Charts and alerts read Prometheus and Alertmanager through
    `metrics` (built from the URLs unless given). `config` is the SLO spec, if any; `auth`
    puts every page behind basic auth or OpenID Connect (dashboard.auth)."""
    data = source if isinstance(source, CachedSource) else CachedSource(source, ttl)
    metrics = metrics or Metrics(prometheus_url, alertmanager_url, ttl=ttl)
    app = dash.Dash(__name__, use_pages=True, pages_folder="", assets_folder=str(ASSETS), title="mcp-slo",
                    update_title=None)
    for page in PAGES:
        dash.register_page(page.__name__, path=page.PATH, path_template=getattr(page, "PATH_TEMPLATE", None),
                           name=page.NAME, order=page.ORDER, title=f"{page.NAME} · mcp-slo", layout=page.layout)
    app.layout = shell()
    register_callbacks(app, data)
    for page in PAGES:
        if hasattr(page, "register_callbacks"):
            page.register_callbacks(app, data, metrics)
    app.server.before_request(healthz)  # before protect(): load balancers have no credentials
    if auth is not None:
        protect(app, auth)
    app.mcp_slo = Settings(description=data.description, prometheus_url=prometheus_url, spec=config)
    app.mcp_slo_metrics = metrics
    return app


def healthz() -> flask.Response | None:
    """Answers /healthz (200 while the process serves) ahead of every other request hook,
    authentication included; None lets any other request go on."""
    if flask.request.path == HEALTHZ:
        return flask.jsonify(status="ok")
    return None


def make_source(engine_url: str | None = None, store: str | None = None, interval: float = 30.0) -> Source:
    """An EngineSource, or a StoreSource when `store` is given; ValueError for bad values."""
    if engine_url and store:
        raise ValueError("read from the engine's API or from its store, not both")
    if store:
        return StoreSource(store, interval=interval)
    return EngineSource(engine_url or DEFAULT_ENGINE_URL)


def server_from_env(environ: Mapping[str, str] = os.environ) -> flask.Flask:
    """The Flask server of an app configured by ENVIRONMENT; ValueError (or slo.spec.SpecError)
    naming the variable when a value is unusable."""
    return app_from_env(environ).server


def backend_from_env(environ: Mapping[str, str]) -> BackendOptions | None:
    """How to reach Prometheus and Alertmanager, from ENVIRONMENT through the engine's own
    parsing of its options; None without MCP_SLO_PROMETHEUS_URL."""
    from slo.engine import engine_cli

    url = environ.get("MCP_SLO_PROMETHEUS_URL")
    if not url:
        return None
    args = argparse.Namespace(
        prometheus=url, header=[h for h in environ.get("MCP_SLO_HEADERS", "").splitlines() if h.strip()],
        basic_auth_user=environ.get("MCP_SLO_BASIC_AUTH_USER"),
        basic_auth_password_env=environ.get("MCP_SLO_BASIC_AUTH_PASSWORD_ENV"),
        bearer_token_env=environ.get("MCP_SLO_BEARER_TOKEN_ENV"), ca_file=environ.get("MCP_SLO_CA_FILE"),
        insecure_skip_verify=environ.get("MCP_SLO_INSECURE_SKIP_VERIFY", "").lower() in ("1", "true", "yes"))
    try:
        return engine_cli.backend_options(args, timeout=PROMETHEUS_TIMEOUT, retries=0)
    except ValueError as exc:
        raise ValueError(f"MCP_SLO_PROMETHEUS_URL and its credentials (named as the engine's options): {exc}") from exc


def app_from_env(environ: Mapping[str, str] = os.environ) -> dash.Dash:
    """The app of `server_from_env`."""
    from slo import durations, importers

    interval = environ.get("MCP_SLO_ENGINE_INTERVAL") or "30s"
    try:
        seconds = durations.parse(interval)
        source = make_source(environ.get("MCP_SLO_ENGINE_URL"), environ.get("MCP_SLO_STORE"), seconds)
    except ValueError as exc:
        raise ValueError(f"MCP_SLO_ENGINE_URL / MCP_SLO_STORE / MCP_SLO_ENGINE_INTERVAL: {exc}") from exc
    spec_path = environ.get("MCP_SLO_CONFIG")
    spec = importers.load(spec_path).spec if spec_path else None
    auth = AuthConfig(users_file=environ.get("MCP_SLO_AUTH_USERS"), oidc_issuer=environ.get("MCP_SLO_OIDC_ISSUER"),
                      oidc_client_id=environ.get("MCP_SLO_OIDC_CLIENT_ID"))
    alertmanager = environ.get("MCP_SLO_ALERTMANAGER_URL")
    metrics = Metrics(None, alertmanager, options=backend_from_env(environ))
    return create_app(source, environ.get("MCP_SLO_PROMETHEUS_URL"), spec, alertmanager_url=alertmanager,
                      metrics=metrics, auth=auth)


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


# --- the shell -----------------------------------------------------------------------------


def shell() -> html.Div:
    return html.Div([
        # refresh=False: a callback writing the query string updates the address bar without
        # making Dash's router render the page again (which would take the focus from the filter)
        dcc.Location(id="url", refresh=False),
        dcc.Interval(id="tick", interval=REFRESHES[DEFAULT_REFRESH] * 1000),
        html.Header(className="top", children=[
            html.Strong("mcp-slo", className="brand"),
            html.Nav([dcc.Link(page.NAME, id={"role": "nav", "path": page.PATH}, href=page.PATH) for page in NAV]),
            html.Div(className="shell-controls", children=[
                html.Label("Range", htmlFor="range"),
                dcc.Dropdown(id="range", options=list(RANGES), value=DEFAULT_RANGE, clearable=False,
                             searchable=False, className="shell-dropdown"),
                html.Label("Refresh", htmlFor="refresh"),
                dcc.Dropdown(id="refresh", options=list(REFRESHES), value=DEFAULT_REFRESH, clearable=False,
                             searchable=False, className="shell-dropdown"),
            ]),
        ]),
        html.Div(id="banner", className="banner"),
        html.Main(dash.page_container),
    ])


def sync_shell(trigger: str | None, search: str | None, range_: str | None, refresh: str | None) -> tuple:
    """Keep the URL and the shell's controls in step: a control changed -> the URL; the URL
    changed (first load, back and forward, a page writing its own state) -> the controls.
    Returns (search, range, refresh, nav hrefs), no_update where nothing changes."""
    if trigger in ("range", "refresh"):
        new = merge_search(search, shell_query(range_, refresh))
        return (new if new != (search or "") else no_update), no_update, no_update, nav_hrefs(range_, refresh)
    want_range, want_refresh = shell_settings(search)
    return (no_update, want_range if want_range != range_ else no_update,
            want_refresh if want_refresh != refresh else no_update, nav_hrefs(want_range, want_refresh))


def nav_hrefs(range_: str | None, refresh: str | None) -> list[str]:
    return [page.PATH + merge_search("", shell_query(range_, refresh)) for page in NAV]


def banner(status: Status | SourceError) -> tuple[Any, str]:
    """(what the banner says, its class): how old the engine's latest evaluation is, and
    loudly when it is stale, missing or cannot be read."""
    if isinstance(status, SourceError):
        return f"Cannot read the data: {status.message}", "banner error"
    failing = f" The engine's last tick failed: {status.last_error}" if status.last_error else ""
    if status.evaluated_at is None:
        return f"No evaluation yet: the engine has not finished its first one.{failing}", "banner warn"
    age = fmt_duration(status.age() or 0.0)
    if status.stale:
        return (f"Stale data: the engine's latest evaluation is {age} old ({status.evaluated_at}).{failing}",
                "banner warn")
    return f"Latest evaluation {age} ago ({status.evaluated_at}).", "banner ok"


def register_callbacks(app: dash.Dash, data: Source) -> None:
    @app.callback(Output("url", "search"), Output("range", "value"), Output("refresh", "value"),
                  Output({"role": "nav", "path": ALL}, "href"),
                  Input("url", "search"), Input("range", "value"), Input("refresh", "value"))
    def on_shell(search, range_, refresh):
        return sync_shell(ctx.triggered_id, search, range_, refresh)

    @app.callback(Output("tick", "interval"), Output("tick", "disabled"), Input("refresh", "value"))
    def on_refresh(refresh):
        seconds = REFRESHES.get(refresh)
        return (seconds or 3600) * 1000, seconds is None

    @app.callback(Output("banner", "children"), Output("banner", "className"),
                  Input("tick", "n_intervals"), Input("url", "pathname"))
    def on_banner(_tick, _pathname):
        return banner(data.status())

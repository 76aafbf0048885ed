"""`mcp-slo dashboard`: the Dash app over the engine's results.

    mcp-slo dashboard --engine http://127.0.0.1:8080 --prometheus http://127.0.0.1:9090
    mcp-slo dashboard --store mcp-slo.db --listen 0.0.0.0:8050 --config examples/slo.yaml

Reads the engine's API (--engine, the default) or its SQLite store (--store, on the same
host); the overview never queries Prometheus (--prometheus is for the service and canary
charts, --alertmanager for the alerts page). Both are reached with the engine's backend
options (--header, --basic-auth-user/--basic-auth-password-env, --bearer-token-env,
--ca-file, --insecure-skip-verify; secrets from the environment variables they name), which
`mcp-slo serve` passes on. With --audit-file (and authentication naming auditors, see
dashboard/auth.py) it adds the Audit page over the audit trail's files. This serves with
Werkzeug's threaded server, for one machine; behind a real server, run several workers with
gunicorn 'dashboard.app:server', configured by the environment (dashboard.app.ENVIRONMENT).
Exit 2 for bad usage.
"""

from __future__ import annotations

import argparse
import logging
from urllib.parse import urlsplit

from collector.command import OK, CommandError, host_port, parse_host_port
from slo.engine import engine_cli

logger = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:8050"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dashboard.app import DEFAULT_ENGINE_URL

    where = parser.add_mutually_exclusive_group()
    where.add_argument("--engine", metavar="URL",
                       help=f"the engine's API, its --listen address (default {DEFAULT_ENGINE_URL})")
    where.add_argument("--store", metavar="PATH", help="read the engine's SQLite store directly instead")
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090", metavar="URL",
                        help="Prometheus (or a compatible API), for range charts; the overview never queries it")
    add_page_arguments(parser)
    engine_cli.add_backend_arguments(parser)  # the engine's: `mcp-slo serve` has them from the engine
    parser.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                        help=f"serve the dashboard here (default {DEFAULT_LISTEN})")
    parser.add_argument("--config", metavar="SPEC", help="the SLO spec (any format `validate` accepts); with "
                        "--store, where the planned maintenance windows come from")
    parser.add_argument("--interval", default="30s",
                        help="with --store: the engine's --interval, to tell stale results (default 30s)")


def add_page_arguments(parser: argparse.ArgumentParser) -> None:
    """What the dashboard needs besides its data source (shared with `mcp-slo serve`)."""
    parser.add_argument("--alertmanager", metavar="URL", help="Alertmanager, for the alerts page (optional)")
    parser.add_argument("--auth-users", metavar="FILE",
                        help="basic auth: a file of user:password lines, roles after a hashed password "
                        "(user:HASH:auditor; see dashboard/auth.py); default: no auth")
    parser.add_argument("--oidc-issuer", metavar="URL", help="or OpenID Connect: the identity provider's issuer URL "
                        "(client secret and session key from MCP_SLO_OIDC_CLIENT_SECRET, MCP_SLO_SESSION_KEY)")
    parser.add_argument("--oidc-client-id", metavar="ID", help="the OpenID Connect client id")
    parser.add_argument("--oidc-roles-claim", metavar="CLAIM", help="the ID token's claim holding the user's roles "
                        "(default: both roles and groups; a.b reaches into an object, e.g. realm_access.roles)")
    parser.add_argument("--oidc-auditor-value", metavar="VALUE",
                        help="the value of the roles claim that makes a user an auditor (default auditor)")
    parser.add_argument("--audit-file", action="append", metavar="PATH", help="an audit trail file for the Audit "
                        "page, auditors only; repeatable, globs for a rotated set (audit/mcp*.jsonl); the chain's "
                        "HMAC key, if any, from MCP_SLO_AUDIT_KEY")
    parser.add_argument("--audit-open", action="store_true", help="without authentication, show the Audit page "
                        "to everyone (a demo); default: no authentication, no Audit page")
    parser.add_argument("--max-request-size", default="1MiB", metavar="SIZE",
                        help="refuse request bodies over SIZE with 413, unread (default 1MiB; callbacks send a few KB)")


def check_url(flag: str, url: str | None) -> None:
    parts = urlsplit(url) if url else None
    if parts is not None and (parts.scheme not in ("http", "https") or not parts.hostname):
        raise ValueError(f"{flag} must be http(s)://host[:port][/path]")


def build_app(source, args: argparse.Namespace, spec):
    """The app over `source` with the page arguments (`add_page_arguments`) and the backend
    arguments (slo.engine.engine_cli.add_backend_arguments) of `args`."""
    from dashboard.app import create_app, metrics_from_args
    from dashboard.audit_data import trail_from
    from dashboard.auth import AuthConfig

    for flag, url in (("--prometheus", args.prometheus), ("--alertmanager", args.alertmanager)):
        check_url(flag, url)
    metrics = metrics_from_args(args)
    auth = AuthConfig(users_file=args.auth_users, oidc_issuer=args.oidc_issuer, oidc_client_id=args.oidc_client_id,
                      oidc_roles_claim=args.oidc_roles_claim, oidc_auditor_value=args.oidc_auditor_value,
                      audit_open=args.audit_open)
    return create_app(source, prometheus_url=args.prometheus, config=spec, alertmanager_url=args.alertmanager,
                      metrics=metrics, auth=auth,
                      max_request_bytes=engine_cli.parse_size(args.max_request_size, "--max-request-size"),
                      audit=trail_from(args.audit_file))


def build(args: argparse.Namespace):
    """(app, host, port) from the arguments; ValueError (SpecError for the spec) with a clear message."""
    from collector import durations
    from dashboard.app import make_source
    from slo import importers

    host, port = parse_host_port(args.listen, "--listen")
    spec = importers.load(args.config).spec if args.config else None
    source = make_source(args.engine, args.store, durations.parse(args.interval), spec)
    return build_app(source, args, spec), host, port


def run(args: argparse.Namespace) -> int:
    from slo.spec import SpecError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app, host, port = build(args)
    except SpecError as exc:
        raise CommandError(f"invalid spec\n{exc}") from None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    return serve(app, host, port)


def serve(app, host: str, port: int) -> int:
    """Serve until Ctrl-C or SIGTERM; CommandError when it cannot listen."""
    import signal
    import threading

    from werkzeug.serving import make_server

    try:
        server = make_server(host, port, app.server, threaded=True)
    except OSError as exc:
        raise CommandError(f"cannot listen on {host_port(host, port)}: {exc.strerror or exc}") from None
    # A signal only asks for shutdown (a KeyboardInterrupt raised inside a weakref callback is
    # ignored, and the Ctrl-C lost); shutdown() waits for serve_forever(): call it from a thread.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: threading.Thread(target=server.shutdown).start())
    logger.info("dashboard on http://%s", host_port(host, server.server_port))  # create_app logs what it reads
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return OK

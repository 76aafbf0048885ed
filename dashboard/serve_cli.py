"""`mcp-slo serve`: the engine and the dashboard in one process, for the demo and small setups.

    mcp-slo serve --config examples/slo.yaml --prometheus http://127.0.0.1:9090 \\
        --listen 127.0.0.1:8080 --dashboard-listen 127.0.0.1:8050

The engine ticks and serves its API and /metrics on --listen exactly as `mcp-slo engine`
does (every engine option applies); the dashboard, on --dashboard-listen, reads that API, and
Prometheus and Alertmanager with the engine's backend options (headers, credentials, TLS).
In production run them apart: one engine (its scheduler must not run in several workers),
and the dashboard under gunicorn with as many workers as needed. Exit 2 for bad usage.
"""

from __future__ import annotations

import argparse
import logging

from collector.command import CommandError, host_port, parse_host_port
from dashboard import dashboard_cli
from slo.engine import engine_cli

logger = logging.getLogger(__name__)

DEFAULT_DASHBOARD_LISTEN = dashboard_cli.DEFAULT_LISTEN


def add_arguments(parser: argparse.ArgumentParser) -> None:
    engine_cli.add_arguments(parser)
    dashboard = parser.add_argument_group("dashboard")
    dashboard.add_argument("--dashboard-listen", default=DEFAULT_DASHBOARD_LISTEN, metavar="HOST:PORT",
                           help=f"serve the dashboard here (default {DEFAULT_DASHBOARD_LISTEN})")
    dashboard_cli.add_page_arguments(dashboard)


def run(args: argparse.Namespace) -> int:
    from dashboard.source import EngineSource
    from slo.engine.api import BackgroundServer, create_app
    from slo.spec import SpecError
    from slo.engine.store import StoreError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    if args.once:
        return engine_cli.run(args)
    try:
        dash_host, dash_port = parse_host_port(args.dashboard_listen, "--dashboard-listen")
        engine, host, port = engine_cli.build(args)
    except SpecError as exc:
        raise CommandError(f"invalid spec\n{exc}") from None
    except (ValueError, StoreError) as exc:
        raise CommandError(str(exc)) from None
    try:
        api = BackgroundServer(create_app(engine), host, port)
    except OSError as exc:
        engine.store.close()
        raise CommandError(f"cannot listen on {host_port(host, port)}: {exc.strerror or exc}") from None
    try:
        try:
            app = dashboard_cli.build_app(EngineSource(api.url), args, engine.spec)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        engine.start()
        logger.info("engine: API on %s, ticking every %gs against %s", api.url, engine.interval,
                    engine.backend.options.url)
        return dashboard_cli.serve(app, dash_host, dash_port)
    finally:
        engine.stop()
        api.stop()
        engine.store.close()

"""`mcp-slo engine`: evaluate every SLO on a schedule and serve the results.

    mcp-slo engine --config examples/slo.yaml --prometheus http://127.0.0.1:9090 \\
        --interval 30s --store mcp-slo.db --listen 127.0.0.1:8080

With --judge-history 24h the engine also judges the canaries over the last day at start, in
the background, as its ticks would have (Engine.judge_history): the canary decision log then
covers canaries older than the engine.

The API, /metrics, /healthz and /readyz are served on --listen (see slo.engine.api). Secrets
never go on the command line: basic-auth passwords and bearer tokens are read from the
environment variables named by --basic-auth-password-env and --bearer-token-env.
Exit 2 for bad usage (a broken spec, an unusable store or option).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import threading

from collector import durations
from collector.command import FAILED, OK, CommandError, host_port, parse_host_port
from slo import importers
from slo.spec import SpecError, check_url

logger = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:8080"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="SPEC", help="the SLO spec (any format `validate` accepts)")
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090", metavar="URL",
                        help="Prometheus or any server with its query API (Thanos, Mimir, VictoriaMetrics)")
    parser.add_argument("--interval", default="30s", help="time between ticks (default 30s)")
    parser.add_argument("--timeout", help="a tick's deadline (default: 80%% of the interval)")
    parser.add_argument("--store", default="mcp-slo.db", metavar="PATH", help="the SQLite file (default mcp-slo.db)")
    parser.add_argument("--retention", default="30d", help="history kept in the store (default 30d)")
    parser.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                        help=f"serve the API and /metrics here (default {DEFAULT_LISTEN})")
    parser.add_argument("--once", action="store_true", help="run one tick, print its summary as JSON and exit")
    parser.add_argument("--judge-history", metavar="DURATION",
                        help="at start, judge the canaries over the past DURATION (e.g. 24h) as the ticks would "
                             "have, every 5 min (less often for a long canary), in the background: the decision "
                             "log then covers canaries that started before the engine; times already judged are "
                             "skipped (with --once: before the tick)")
    parser.add_argument("--alertmanager", metavar="URL",
                        help="Alertmanager's URL: a maintenance window started through the API (`mcp-slo "
                             "maintenance start`) gets a matching silence there, expired when it ends")
    # `mcp-slo serve` adds the dashboard's --alertmanager (its alerts page) after these options:
    # the later one replaces this one, same name and destination, so one URL serves both
    parser.conflict_handler = "resolve"
    backend = add_backend_arguments(parser)
    backend.add_argument("--retries", type=int, default=1, help="retries per query (default 1)")
    backend.add_argument("--max-response-size", default="64MiB", metavar="SIZE",
                         help="fail a query whose reply is larger (bytes, or with KiB, MiB, GiB; default 64MiB)")


def add_backend_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """How to reach --prometheus: headers, credentials, TLS (see `backend_options`). The
    dashboard takes the same options for its reads of Prometheus and Alertmanager."""
    backend = parser.add_argument_group("remote backend")
    backend.add_argument("--header", action="append", default=[], metavar="NAME:VALUE",
                         help="an extra HTTP header, e.g. X-Scope-OrgID:team-a (repeatable)")
    backend.add_argument("--basic-auth-user", metavar="USER")
    backend.add_argument("--basic-auth-password-env", metavar="VAR", help="environment variable with the password")
    backend.add_argument("--bearer-token-env", metavar="VAR", help="environment variable with a bearer token")
    backend.add_argument("--ca-file", metavar="FILE", help="CA bundle to verify the server's certificate")
    backend.add_argument("--insecure-skip-verify", action="store_true", help="do not verify TLS certificates")
    return backend


def backend_options(args: argparse.Namespace, *, timeout: float, retries: int, **extra):
    """slo.engine.backend.BackendOptions for args.prometheus from the options of `add_backend_arguments`
    (`extra`: more BackendOptions fields); ValueError with a clear message."""
    from slo.engine.backend import BackendOptions

    headers = {}
    for h in args.header:
        name, sep, value = h.partition(":")
        if not sep:
            raise ValueError(f"--header {name!r}: use NAME:VALUE")
        headers[name.strip()] = value.strip()
    basic = None
    if args.basic_auth_user is not None:
        if not args.basic_auth_password_env or args.basic_auth_password_env not in os.environ:
            raise ValueError("--basic-auth-user needs --basic-auth-password-env naming a set environment variable")
        basic = (args.basic_auth_user, os.environ[args.basic_auth_password_env])
    return BackendOptions(url=args.prometheus, timeout=timeout, retries=retries, headers=headers, basic_auth=basic,
                          bearer_token_env=args.bearer_token_env, verify=not args.insecure_skip_verify,
                          ca_file=args.ca_file, **extra)


def parse_size(text: str, option: str) -> int:
    """Bytes from "67108864", "512KiB", "64MiB" or "1GiB"; ValueError naming `option` otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*(KiB|MiB|GiB)?\s*", text)
    size = int(match[1]) << {None: 0, "KiB": 10, "MiB": 20, "GiB": 30}[match[2]] if match else 0
    if size <= 0:
        raise ValueError(f"{option} {text!r}: use a positive whole number of bytes, KiB, MiB or GiB, e.g. 64MiB")
    return size


def build(args: argparse.Namespace):
    """(engine, listen host, port) from the arguments; raises ValueError with a clear message."""
    from slo.engine.backend import Backend
    from slo.engine.scheduler import Engine
    from slo.engine.store import Store

    host, port = parse_host_port(args.listen, "--listen")  # before the store file is created
    spec = importers.load(args.config).spec
    interval = durations.parse(args.interval)
    timeout = durations.parse(args.timeout) if args.timeout else 0.8 * interval
    if timeout >= interval:
        raise ValueError(f"--timeout {args.timeout} must be shorter than --interval {args.interval}")
    # each query gets a share of the tick's deadline, retries included
    per_query = max(0.5, min(10.0, timeout / (args.retries + 1)))
    options = backend_options(args, timeout=per_query, retries=args.retries,
                              max_response_bytes=parse_size(args.max_response_size, "--max-response-size"))
    history = _duration(args.judge_history, "--judge-history") if args.judge_history else 0.0
    alertmanager = _url(args.alertmanager, "--alertmanager") if args.alertmanager else None
    store = Store(args.store, retention_seconds=durations.parse(args.retention))
    return Engine(spec, Backend(options), store, interval=interval, timeout=timeout, judge_history=history,
                  alertmanager=alertmanager), host, port


def _url(text: str, option: str) -> str:
    try:
        return check_url(text).rstrip("/")
    except ValueError as exc:
        raise ValueError(f"{option}: {exc}") from None


def _duration(text: str, option: str) -> float:
    try:
        return durations.parse(text)
    except ValueError as exc:
        raise ValueError(f"{option}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    from slo.engine.store import StoreError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # not a line per tick
    try:
        engine, host, port = build(args)
    except SpecError as exc:
        raise CommandError(f"invalid spec\n{exc}") from None
    except (ValueError, StoreError) as exc:
        raise CommandError(str(exc)) from None

    if args.once:
        judged = engine.judge_history(engine.now() - engine.history_seconds) if engine.history_seconds else None
        result = engine.tick()
        summary = {"ok": result is not None, "error": engine.health.last_error}
        if judged is not None:
            summary["history_decisions"] = judged
        if result is not None:
            summary.update(result.meta, statuses={s.status: 0 for s in result.slos})
            for s in result.slos:
                summary["statuses"][s.status] += 1
        print(json.dumps(summary, indent=2, default=str))
        engine.store.close()
        return OK if result is not None else FAILED
    return serve(engine, host, port)


def serve(engine, host: str, port: int) -> int:
    """Start the engine's schedule and serve its API until SIGINT or SIGTERM."""
    import uvicorn

    from slo.engine.api import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(engine), host=host, port=port, log_level="warning",
                                           access_log=False))
    engine.start()
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    logger.info("engine: API on http://%s, ticking every %gs against %s", host_port(host, port), engine.interval,
                engine.backend.options.url)
    try:
        server.run()
    finally:
        engine.stop()
        engine.store.close()
    return OK

"""`mcp-slo proxy`: instrument any MCP server from outside.

    mcp-slo proxy --service NAME --metrics-port 9464 -- COMMAND ARGS...
        runs COMMAND as a stdio MCP server and is itself one, on its stdin/stdout;
        exits with the server's exit code (127 when it cannot be started).

    mcp-slo proxy --service NAME --metrics-port 9464 --upstream http://HOST:PORT/mcp --listen 127.0.0.1:8080
        serves streamable HTTP on --listen (same MCP path as the upstream) and
        relays to the upstream server.

    --audit-file PATH (and the other --audit-* options) also writes an audit trail: one JSON
    line per client request, with the status the metrics counted (collector.audit).
"""

from __future__ import annotations

import argparse
import logging
import sys
from functools import partial
from typing import TYPE_CHECKING

import anyio

from collector import names, semconv
from collector.audit import options as audit_options
from collector.command import OK, CommandError, host_port, parse_host_port
from collector.exposition import start_metrics_server
from collector.metrics import Recorder, resolve_identity
from collector.proxy.framing import DEFAULT_MAX_MESSAGE_BYTES
from collector.proxy.http import DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONNECTIONS
from collector.proxy.stdio import DEFAULT_EXIT_GRACE
from collector.proxy.tracker import DEFAULT_REQUEST_TIMEOUT, Tracker

if TYPE_CHECKING:
    from collector.audit.relayed import RelayAudit

LOG_LEVELS = ("debug", "info", "warning", "error")
CANNOT_RUN = 127  # stdio: the server could not be started (as a shell says); else the proxy exits with its code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = (
        "%(prog)s [options] --metrics-port PORT -- COMMAND [ARGS...]\n"
        "       %(prog)s [options] --metrics-port PORT --upstream URL --listen HOST:PORT"
    )
    parser.add_argument("--service", help=f"service label (default: ${names.SERVICE_ENV})")
    parser.add_argument("--version", help=f"version label (default: ${names.VERSION_ENV}, else 'unknown')")
    parser.add_argument("--metrics-port", type=int, required=True, help="port to serve /metrics on (0: any)")
    parser.add_argument("--metrics-addr", default="127.0.0.1", help="address to serve /metrics on (default: %(default)s)")
    parser.add_argument(
        "--request-timeout", type=float, default=DEFAULT_REQUEST_TIMEOUT, metavar="SECONDS",
        help="answer a request the server has not answered in this time with a timeout error "
             "(default: %(default)g)",
    )
    parser.add_argument("--max-tools", type=int, default=names.DEFAULT_MAX_TOOLS,
                        help="at most this many distinct tool labels (default: %(default)s)")
    parser.add_argument(
        "--max-message-bytes", type=int, default=DEFAULT_MAX_MESSAGE_BYTES, metavar="BYTES",
        help="stdio: the longest line (one message) relayed either way; a longer one is dropped as it arrives "
             "and answered with a JSON-RPC error when its id is known (default: %(default)s, 4 MiB)",
    )
    parser.add_argument(
        "--exit-grace", type=float, default=DEFAULT_EXIT_GRACE, metavar="SECONDS",
        help="stdio: when the server exits by itself, keep /metrics up this long so the last counts can be "
             "scraped; SIGTERM or SIGINT ends it early (default: %(default)g)",
    )
    parser.add_argument(
        "--metrics", default=semconv.MCP_SLO, choices=semconv.METRICS_CHOICES,
        help="which metrics /metrics serves: mcp-slo's, OpenTelemetry's semantic conventions "
             f"({semconv.PROMETHEUS_DURATION}), or both (default: %(default)s)",
    )
    parser.add_argument(
        "--otlp", action="store_true",
        help="also push the semantic-convention histogram over OTLP/HTTP, configured by OTEL_EXPORTER_OTLP_ENDPOINT, "
             "OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES (needs pip install 'mcp-slo[otel]')",
    )
    parser.add_argument("--upstream", metavar="URL", help="streamable HTTP: the upstream MCP endpoint")
    parser.add_argument("--listen", metavar="HOST:PORT", help="streamable HTTP: where the proxy listens, e.g. 127.0.0.1:8080 or [::1]:8080")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, metavar="BYTES",
                        help="streamable HTTP: refuse larger request bodies with 413 (default: %(default)s)")
    parser.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS, metavar="N",
                        help="streamable HTTP: refuse connections past this many with 503 (default: %(default)s)")
    parser.add_argument("--header-timeout", type=float, default=DEFAULT_HEADER_TIMEOUT, metavar="SECONDS",
                        help="streamable HTTP: close with 408 a request whose headers take longer, or whose "
                             "body pauses longer (default: %(default)g)")
    parser.add_argument("--log-level", default="warning", choices=LOG_LEVELS, help="(default: %(default)s)")
    audit_options.add_arguments(parser)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="stdio: the server command, after --")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="mcp-slo proxy: %(levelname)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per relayed request otherwise
    command = list(args.command or [])
    if command and command[0] == "--":
        command = command[1:]
    if bool(command) == bool(args.upstream):
        raise CommandError("give either a server command after -- (stdio) or --upstream URL --listen HOST:PORT (HTTP)")
    if args.upstream and not args.listen:
        raise CommandError("--upstream needs --listen HOST:PORT")
    _check_bounds(args)
    try:
        listen = parse_host_port(args.listen) if args.upstream else None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    try:
        service, version = resolve_identity(args.service, args.version)
    except ValueError as exc:
        raise CommandError(f"{exc} (or pass --service)") from None

    recorder = Recorder(service, version, max_tools=args.max_tools, metrics=args.metrics,
                        transport=semconv.PIPE if command else semconv.TCP)
    if args.otlp:
        from collector.otlp import OtlpPush  # raises CommandError naming the extra when it is missing

        OtlpPush(recorder)
    audit = _audit(args, service, version, stdio=bool(command))
    tracker = Tracker(recorder, request_timeout=args.request_timeout, audit=audit)
    try:
        return _serve(args, command, listen, tracker)
    finally:
        if audit is not None:
            audit.close()  # writes what is queued


def _serve(args: argparse.Namespace, command: list[str], listen: tuple[str, int] | None, tracker: Tracker) -> int:
    try:
        server, _ = start_metrics_server(args.metrics_port, args.metrics_addr)
    except OSError as exc:
        raise CommandError(f"cannot serve /metrics on {host_port(args.metrics_addr, args.metrics_port)}: {exc}") from None
    # At any log level, and never on stdout (the MCP stream in stdio mode): with
    # --metrics-port 0 this is the only way to learn the port.
    print(f"mcp-slo proxy: metrics on http://{host_port(args.metrics_addr, server.server_port)}/metrics",
          file=sys.stderr, flush=True)

    if command:
        from collector.proxy.stdio import run_stdio_proxy

        try:
            return anyio.run(partial(run_stdio_proxy, command, tracker, handle_signals=True,
                                     max_message_bytes=args.max_message_bytes, exit_grace=args.exit_grace))
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:  # could not start it
            raise CommandError(f"cannot run {command[0]!r}: {exc}", CANNOT_RUN) from None

    from collector.proxy.http import serve_http_proxy

    assert listen is not None
    host, port = listen
    try:
        anyio.run(partial(serve_http_proxy, args.upstream, tracker, host=host, port=port, log_level=args.log_level,
                          max_body_bytes=args.max_body_bytes, max_connections=args.max_connections,
                          header_timeout=args.header_timeout))
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    return OK


def _audit(args: argparse.Namespace, service: str, version: str, *, stdio: bool) -> RelayAudit | None:
    """The audit trail the options ask for (None: none), its file opened; CommandError in one line."""
    try:
        config = audit_options.config_from_args(args, stdio=stdio, service=service)
        if config is None:
            return None
        from collector.audit.relayed import RelayAudit

        return RelayAudit.from_config(config, service, version)
    except (ValueError, ImportError) as exc:
        raise CommandError(f"audit: {exc}") from None
    except OSError as exc:
        raise CommandError(f"audit: {exc.filename or ''}: {exc.strerror or exc}") from None


def _check_bounds(args: argparse.Namespace) -> None:
    if args.request_timeout <= 0:
        raise CommandError("--request-timeout must be positive")
    if args.max_message_bytes < 1:
        raise CommandError("--max-message-bytes must be at least 1")
    if args.exit_grace < 0:
        raise CommandError("--exit-grace cannot be negative")
    for option, value in (("--max-body-bytes", args.max_body_bytes), ("--max-connections", args.max_connections),
                          ("--header-timeout", args.header_timeout)):
        if value <= 0:
            raise CommandError(f"{option} must be positive")

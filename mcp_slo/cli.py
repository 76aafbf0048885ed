"""The `mcp-slo` command: one table of subcommands.

Each command is a module named `<command>_cli.py`, beside the code it drives, in the lowest
package that has everything it needs; it has `add_arguments(parser)` and `run(args) -> int`,
and ends with collector.command.CommandError when it cannot do its job.

This package sits above every other one, so the table names their modules as strings and only
the chosen one is imported: the exporter-only install (`pip install mcp-slo`, for `mcp-slo
proxy`) never imports the service's modules, and a command whose extra is missing says what
to install instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from collector.command import OK, USAGE, CommandError


@dataclass(frozen=True)
class Command:
    name: str
    module: str  # has add_arguments(parser) and run(args) -> int
    help: str
    extra: str | None  # the pip extra it needs beyond the exporter


COMMANDS: tuple[Command, ...] = (
    Command("proxy", "collector.proxy_cli", "instrument any MCP server (stdio or streamable HTTP) from outside", None),
    Command("audit", "collector.audit.audit_cli", "verify and query audit trail files", None),
    Command("validate", "slo.validate_cli", "check an SLO spec (mcp-slo, OpenSLO v1 or Sloth) and summarize it",
            "service"),
    Command("rules", "alerts.rules_cli", "write Prometheus recording and alerting rules for an SLO spec", "service"),
    Command("alertmanager", "alerts.alertmanager_cli", "write the Alertmanager configuration for an SLO spec",
            "service"),
    Command("grafana", "grafana.grafana_cli", "write Grafana dashboards and provisioning files for an SLO spec",
            "grafana"),
    Command("engine", "slo.engine.engine_cli",
            "evaluate every SLO on a schedule; serve the results as an API and /metrics", "service"),
    Command("canary", "slo.engine.canary_cli",
            "judge a service's canary once against its baseline (exit 0 promote, 1 roll back, 3 wait)", "service"),
    Command("maintenance", "slo.engine.maintenance_cli",
            "start, list and end unplanned maintenance windows through the engine's API", "service"),
    Command("dashboard", "dashboard.dashboard_cli", "serve the Dash app over the engine's results (its API or its store)",
            "service"),
    Command("serve", "dashboard.serve_cli", "run the engine and the dashboard in one process (the demo, small setups)",
            "service"),
    Command("demo", "demo.demo_cli", "run the demo services under load with a real Prometheus", "service"),
)

# A module missing from these is a bug, not an extra to install.
OUR_PACKAGES = frozenset({"mcp_slo", "collector", "slo", "alerts", "grafana", "dashboard", "demo", "bench"})


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="mcp-slo", description="Observability and SLOs for MCP servers.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    parsers = {c.name: subparsers.add_parser(c.name, help=c.help, description=c.help) for c in COMMANDS}
    chosen = next((c for c in COMMANDS if argv and argv[0] == c.name), None)
    if chosen is None:
        parser.parse_args(argv)  # --help exits 0; an unknown command exits 2
        parser.print_help(sys.stderr)
        return USAGE
    try:
        return _run(chosen, parser, parsers[chosen.name], argv)
    except CommandError as exc:
        print(f"mcp-slo {chosen.name}: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        if chosen.extra is None or exc.name is None or exc.name.partition(".")[0] in OUR_PACKAGES:
            raise
        print(f'mcp-slo {chosen.name}: needs pip install "mcp-slo[{chosen.extra}]" (no module {exc.name!r})',
              file=sys.stderr)
        return USAGE


def _run(command: Command, parser: argparse.ArgumentParser, subparser: argparse.ArgumentParser,
         argv: list[str]) -> int:
    module = importlib.import_module(command.module)
    module.add_arguments(subparser)
    args = parser.parse_args(argv)
    return int(module.run(args) or OK)


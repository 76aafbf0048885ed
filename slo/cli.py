"""The `mcp-slo` command. Subcommands import their modules lazily so that the
exporter-only install (`mcp-slo proxy`) needs nothing beyond the exporter's
dependencies."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

# subcommand -> (module, help). Each module has `add_arguments(parser)` and `run(args) -> int`.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "proxy": ("collector.proxy.cli", "instrument any MCP server (stdio or streamable HTTP) from outside"),
    "demo": ("demo.cli", "run the demo services under load with a real Prometheus"),
    "rules": ("alerts.rules_cli", "write Prometheus recording and alerting rules for an SLO spec"),
    "validate": ("slo.validate_cli", "check an SLO spec (mcp-slo, OpenSLO v1 or Sloth) and summarize it"),
    "alertmanager": ("alerts.alertmanager_cli", "write the Alertmanager configuration for an SLO spec"),
    "grafana": ("grafana.cli", "write Grafana dashboards and provisioning files for an SLO spec"),
    "canary": ("slo.canary.cli", "judge a service's canary once against its baseline (exit 0 promote, 1 roll back, 3 wait)"),
    "engine": ("slo.engine.cli", "evaluate every SLO on a schedule; serve the results as an API and /metrics"),
    "dashboard": ("dashboard.cli", "serve the Dash app over the engine's results (its API or its store)"),
    "serve": ("dashboard.serve_cli", "run the engine and the dashboard in one process (the demo, small setups)"),
}


def _load(module: str) -> tuple[Callable, Callable]:
    import importlib

    mod = importlib.import_module(module)
    return mod.add_arguments, mod.run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mcp-slo", description="Observability and SLOs for MCP servers.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            add_arguments, run = _load(module)
            add_arguments(p)
            p.set_defaults(run=run)
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 2
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

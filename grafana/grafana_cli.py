"""`mcp-slo grafana`: write Grafana dashboards and provisioning files from an SLO spec.

    mcp-slo grafana --config examples/slo.yaml --out grafana/
    mcp-slo grafana --config slo.yaml --out /etc/grafana/mcp-slo --dash-url https://slo.example.com \\
        --datasource-url http://prometheus:9090 --dashboards-path /etc/grafana/mcp-slo/dashboards

Writes DIR/dashboards/*.json, DIR/provisioning/datasources/mcp-slo.yaml and
DIR/provisioning/dashboards/mcp-slo.yaml. Everything is generated before anything is
written, and each file is replaced in one step, so a bad spec leaves DIR as it was.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import urlsplit

from alerts.rules_cli import write_or_fail
from collector.command import OK, CommandError
from grafana import frame, provision
from grafana.generate import Options, generate
from slo import importers, spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="SPEC",
                        help="the SLO spec: mcp-slo's own, OpenSLO v1 or Sloth prometheus/v1 (YAML)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="directory to write the dashboards and provisioning files to")
    parser.add_argument("--dash-url", default=frame.DEFAULT_DASH_URL, metavar="URL",
                        help=f"the mcp-slo Dash app, for links (default {frame.DEFAULT_DASH_URL})")
    parser.add_argument("--datasource-url", default=provision.DEFAULT_DATASOURCE_URL, metavar="URL",
                        help="the Prometheus of the provisioned datasource "
                             f"(default {provision.DEFAULT_DATASOURCE_URL})")
    parser.add_argument("--dashboards-path", default=provision.DEFAULT_DASHBOARDS_PATH, metavar="PATH",
                        help="where Grafana reads the dashboard JSON from (default: the dashboards folder beside "
                             "the provisioning folder Grafana is given in GF_PATHS_PROVISIONING)")


def _url(value: str, option: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c in value for c in " \"'{}$"):
        raise CommandError(f"{option} {value!r} is not an http:// or https:// URL")
    return value


def run(args: argparse.Namespace) -> int:
    options = Options(dash_url=_url(args.dash_url, "--dash-url"),
                      datasource_url=_url(args.datasource_url, "--datasource-url"),
                      dashboards_path=args.dashboards_path)
    try:
        loaded = importers.load(args.config).spec
    except spec.SpecError as exc:
        raise CommandError(str(exc)) from None
    files = generate(loaded, source=Path(args.config).name, options=options)
    for path in write_or_fail(Path(args.out), files):
        print(path)
    return OK

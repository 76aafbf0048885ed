"""`mcp-slo alertmanager --config SPEC --out FILE`: write the Alertmanager
configuration for an SLO spec (any format `mcp-slo validate` accepts).

On a bad spec: the errors on stderr, exit 2, and FILE is left as it was (the
file is written whole to a temporary name, then renamed over FILE). A maintenance window
Alertmanager cannot mute (alerts.mute) gets one line on stderr; the file is written anyway."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from alerts import alertmanager, mute
from alerts.output import write_atomically
from collector.command import OK, CommandError
from slo import importers
from slo.spec import SpecError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="SPEC", help="the SLO spec")
    parser.add_argument("--out", metavar="FILE", help="where to write the configuration (default: stdout)")


def run(args: argparse.Namespace) -> int:
    try:
        spec = importers.load(args.config).spec
    except SpecError as exc:
        raise CommandError(f"invalid spec, nothing written\n{exc}") from None
    now = time.time()
    for line in mute.refusals(spec.maintenance, now):
        print(line, file=sys.stderr)
    text = alertmanager.render(spec, source=args.config, now=now)
    if args.out is None:
        sys.stdout.write(text)
        return OK
    try:
        write_atomically(Path(args.out), text)
    except OSError as exc:
        raise CommandError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    return OK

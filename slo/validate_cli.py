"""`mcp-slo validate --config FILE`: check an SLO spec (mcp-slo, OpenSLO v1 or
Sloth prometheus/v1) and print what it defines. Exit 0 when valid; otherwise
the errors, naming the file and the key path, on stderr and exit 2. Writes nothing."""

from __future__ import annotations

import argparse
import time

from collector.command import OK, CommandError
from slo import importers, maintenance
from slo.plan import plan
from slo.spec import ALL_METHODS, Objective, Spec, SpecError, printable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE",
                        help="the SLO spec: mcp-slo YAML, OpenSLO v1 or Sloth prometheus/v1")


def run(args: argparse.Namespace) -> int:
    try:
        loaded = importers.load(args.config)
    except SpecError as exc:
        raise CommandError(f"invalid spec\n{exc}") from None
    print(summary(loaded, args.config))
    return OK


def summary(loaded: importers.Loaded, source: str) -> str:
    s = loaded.spec
    p = plan(s)
    lines = [f"{printable(source)}: valid {loaded.format} spec"]
    if s.defaults.objectives:
        lines.append("defaults (every service Prometheus knows):")
        lines += [f"  {_objective(o)}" for o in s.defaults.objectives]
    for service, body in s.services.items():
        lines.append(f"service {service}:")
        lines += [f"  {_objective(o)}" for o in p.objectives_for(service)] or ["  (no objectives)"]
        for tool in body.tools:
            lines += [f"  tool {tool}: {_objective(o)}" for o in p.tool_objectives_for(service, tool)]
    lines.append("alert tiers: " + _tiers(s))
    if s.maintenance:
        lines.append("maintenance windows:")
        lines += [f"  {_window(w, time.time())}" for w in s.maintenance]
    lines += [f"note: {n}" for n in loaded.notes]
    return "\n".join(lines)


def _objective(o: Objective) -> str:
    what = "availability" if o.kind == "availability" else f"latency <= {o.threshold:g}s"
    methods = "" if o.methods == ("tools/call",) else \
        " of every method" if o.methods == ALL_METHODS else f" of {', '.join(o.methods)}"
    return f"{o.name}: {what}{methods}, {o.target:g}% over {o.window}"


def _tiers(s: Spec) -> str:
    enabled = [f"{t.name} ({t.severity}, {t.burn_rate:g}x over {t.long_window}/{t.short_window})"
               for t in s.alerting.tiers if t.enabled]
    return ", ".join(enabled) or "none enabled"


def _window(w: maintenance.Window, now: float) -> str:
    """`name (mode, scope, schedule): next or current occurrence`."""
    scope = ", ".join(w.services) + (f" tools {', '.join(w.tools)}" if w.tools else "") + \
        (f" SLOs {', '.join(w.slos)}" if w.slos else "")
    schedule = {"one-off": "one-off", "rrule": f"rrule {w.rrule} for {w.duration} in {w.timezone}",
                "cron": f"cron {w.cron!r} for {w.duration} in {w.timezone}"}[w.kind]
    found = w.current_or_next(now)
    if found is None:
        when = "over" if w.kind == "one-off" else "no more occurrences"
    else:
        span = f"{maintenance.rfc3339(found[0], w.zone)} to {maintenance.rfc3339(found[1], w.zone)}"
        when = f"now, {span}" if found[0] <= now else f"next {span}"
    return f"{w.name} ({w.mode}; {scope}; {schedule}): {when} - {w.reason}"

"""`mcp-slo maintenance`: open, list and end unplanned maintenance windows through the engine's
API (slo.engine.maintenance_api).

    mcp-slo maintenance start --engine http://127.0.0.1:8080 --service filesystem --for 2h \\
        --reason "disk replacement (CHG-1234)" [--tool write_file] [--slo latency] [--mode exclude]
    mcp-slo maintenance list [--json]
    mcp-slo maintenance end 7

The window is kept by the engine with who opened it (--user, default the login name) and why;
the engine exports it to the alerting rules (mcp_slo_maintenance) and, with an Alertmanager
configured, silences the matching alerts until it ends. Exit 0 done, 1 refused by the engine
(an unknown service, a window already over) or the engine unreachable, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import getpass
import json

import httpx

from collector.command import FAILED, OK, CommandError
from slo import maintenance
from slo.spec import printable

DEFAULT_ENGINE = "http://127.0.0.1:8080"
TIMEOUT = 15.0  # the engine waits up to 5 s for Alertmanager


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--engine", default=DEFAULT_ENGINE, metavar="URL", help=f"the engine (default {DEFAULT_ENGINE})")
    common.add_argument("--user", default=None, help="who is asking, kept with the window (default: the login name)")
    start = actions.add_parser("start", parents=[common], help="open a window now")
    start.add_argument("--service", required=True)
    start.add_argument("--tool", action="append", default=[], help="only this tool's SLOs (repeatable)")
    start.add_argument("--slo", action="append", default=[], help="only this SLO (repeatable)")
    start.add_argument("--for", dest="duration", required=True, metavar="DURATION", help="how long, e.g. 2h")
    start.add_argument("--reason", required=True, help="why: what is done, a change ticket")
    start.add_argument("--mode", choices=maintenance.MODES, default=maintenance.DEFAULT_MODE,
                       help="silence (default): events count, no alert fires; exclude: events count neither "
                            "good nor bad")
    listing = actions.add_parser("list", parents=[common], help="planned and run-time windows")
    listing.add_argument("--json", action="store_true", help="the API's answer as is")
    end = actions.add_parser("end", parents=[common], help="end a run-time window now")
    end.add_argument("id", help="the window's id (from start or list)")


def run(args: argparse.Namespace) -> int:
    if args.action == "start":
        body = {"service": args.service, "tools": args.tool, "slos": args.slo, "duration": args.duration,
                "reason": args.reason, "mode": args.mode}
        print(_window(_ask(args, "POST", "/api/v1/maintenance", body)))
    elif args.action == "end":
        print(_window(_ask(args, "POST", f"/api/v1/maintenance/{args.id}")))
    else:
        answer = _ask(args, "GET", "/api/v1/maintenance")
        print(json.dumps(answer, indent=2) if args.json else _listing(answer))
    return OK


def _ask(args: argparse.Namespace, method: str, path: str, body: dict | None = None) -> dict:
    """The engine's JSON answer; CommandError: exit 2 for a request it calls bad (400), 1 for
    one it refuses (404, 409) or when it cannot be reached."""
    user = args.user or _login()
    try:
        answer = httpx.request(method, f"{args.engine.rstrip('/')}{path}", json=body, timeout=TIMEOUT,
                               headers={"X-MCP-SLO-User": user})
    except httpx.InvalidURL as exc:
        raise CommandError(f"--engine {args.engine!r}: {exc}") from None
    except httpx.HTTPError as exc:
        raise CommandError(f"cannot reach the engine at {args.engine}: {exc}", FAILED) from None
    try:
        data = answer.json()
    except ValueError:
        data = {"error": answer.text[:200]}
    if answer.status_code >= 400:
        error = printable(str(data.get("error", data)) if isinstance(data, dict) else str(data))
        raise CommandError(error, 2 if answer.status_code == 400 else FAILED)
    return data


def _login() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _window(w: dict) -> str:
    """One run-time window in a line or two."""
    scope = ", ".join(w["services"]) + (f" tools {', '.join(w['tools'])}" if w["tools"] else "") + \
        (f" SLOs {', '.join(w['slos'])}" if w["slos"] else "")
    state = "active" if w["active"] else f"ended {w['ended_at']} by {w['ended_by']}" if w["ended_at"] else "over"
    lines = [(f"{w['id']}: {w['mode']} {scope} from {w['starts_at']} to {w['ends_at']} ({state}), "
              f"opened by {w['opened_by']}: {w['reason']}")]
    silence = w.get("silence") or {}
    if silence.get("id"):
        lines.append(f"  Alertmanager silence {silence['id']}" + (" expired" if silence.get("expired") else ""))
    if silence.get("error"):
        lines.append(f"  warning: {silence['error']}")
    return "\n".join(printable(line) for line in lines)


def _listing(answer: dict) -> str:
    lines = ["planned (the spec's):"]
    for w in answer["planned"]:
        occurrence = w["current"] or w["next"]
        when = "no more occurrences" if occurrence is None else \
            f"{'now' if w['active'] else 'next'} {occurrence['start']} to {occurrence['end']}"
        lines.append(printable(f"  {w['name']}: {w['mode']} {', '.join(w['services'])} ({w['kind']}), {when}: "
                               f"{w['reason']}"))
    if not answer["planned"]:
        lines.append("  none")
    lines.append("run-time (newest first):")
    lines += ["  " + _window(w).replace("\n", "\n  ") for w in answer["runtime"]] or ["  none"]
    return "\n".join(lines)

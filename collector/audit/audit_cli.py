"""`mcp-slo audit`: verify and query audit trail files.

    mcp-slo audit verify FILE... [--key-env NAME]
        exit 0 with a one-line summary when the chain holds across the files (given in any
        order: a rotated set), 1 naming the first record removed, changed or reordered.

    mcp-slo audit query FILE... [--user U] [--service S] [--tool T] [--status S]
                                [--since TIME] [--until TIME] [--format jsonl|table]
        the matching records, in chain order; TIME is RFC 3339 or an age like 1h or 7d. Lines
        that are not records, or over 1 MiB, are skipped and counted on stderr
        (collector.audit.reading, which the dashboard's Audit page reads with too).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from collector.audit.chain import DEFAULT_KEY_ENV, key_from_env, verify
from collector.audit.config import parse_duration, parse_time
from collector.audit.reading import (
    MAX_LINE_BYTES,
    Filters,
    Skipped,
    matches,
    records,
    user_of,
)
from collector.command import FAILED, OK, USAGE, CommandError

TABLE_COLUMNS = (("time", 24), ("user", 24), ("service", 14), ("version", 8), ("tool", 20), ("status", 9),
                 ("seconds", 8), ("request_id", 0))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    check = actions.add_parser("verify", help="check that the records' chain is intact",
                               description="Check that the records' chain is intact across FILEs "
                                           "(a rotated set, in any order).")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    check.add_argument("--key-env", metavar="NAME",
                       help=f"environment variable holding the HMAC key (default: {DEFAULT_KEY_ENV}, when set)")
    query = actions.add_parser("query", help="print the records that match",
                               description="Print the records of FILEs that match every filter given.")
    query.add_argument("files", nargs="+", type=Path, metavar="FILE")
    query.add_argument("--user", help="the identity's user, e-mail or subject")
    query.add_argument("--service")
    query.add_argument("--tool")
    query.add_argument("--status", help="success, error, timeout or cancelled")
    query.add_argument("--since", metavar="TIME", help="RFC 3339, or an age like 1h or 7d")
    query.add_argument("--until", metavar="TIME", help="RFC 3339, or an age like 1h or 7d")
    query.add_argument("--format", choices=("jsonl", "table"), default="jsonl")


def run(args: argparse.Namespace, now: float | None = None) -> int:
    if args.action is None:
        raise CommandError("say what to do: verify or query (see mcp-slo audit --help)")
    missing = [str(p) for p in args.files if not p.is_file()]
    if missing:
        raise CommandError(f"no such file: {missing[0]}")
    if args.action == "verify":
        return _verify(args)
    return _query(args, time.time() if now is None else now)


def _verify(args: argparse.Namespace) -> int:
    if args.key_env is not None:
        key = key_from_env(args.key_env)
        if key is None:
            raise CommandError(f"--key-env: ${args.key_env} is not set")
    else:
        key = key_from_env(DEFAULT_KEY_ENV)
    verdict = verify(args.files, key)
    if not verdict.ok:
        raise CommandError(verdict.message, FAILED)
    print(verdict.summary())
    return OK


def _query(args: argparse.Namespace, now: float) -> int:
    filters = Filters(user=args.user, service=args.service, tool=args.tool, status=args.status,
                      since=_moment(args.since, "--since", now), until=_moment(args.until, "--until", now))
    skipped = Skipped()
    table = args.format == "table"
    if table:
        print(_row({name: name for name, _ in TABLE_COLUMNS}))
    for record in records(args.files, skipped):
        if matches(record, filters):
            print(_row(_columns(record)) if table else json.dumps(record, ensure_ascii=False))
    if skipped.damaged:
        print(f"mcp-slo audit: skipped {skipped.damaged} line(s) that are not JSON records", file=sys.stderr)
    if skipped.oversized:
        print(f"mcp-slo audit: skipped {skipped.oversized} line(s) over {MAX_LINE_BYTES // 1024} KiB",
              file=sys.stderr)
    return OK


def _moment(text: str | None, option: str, now: float) -> float | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError:
        pass
    try:
        return now - parse_duration(text, option)
    except ValueError:
        raise CommandError(f"{option} {text!r}: use an RFC 3339 time (2025-01-31T12:00:00Z) "
                           "or an age like 1h or 7d", USAGE) from None


def _columns(record: Mapping[str, Any]) -> dict[str, str]:
    user = user_of(record) or "-"
    seconds = record.get("duration_seconds")
    return {
        "time": str(record.get("time", "-")),
        "user": str(user),
        "service": str(record.get("service") or "-"),
        "version": str(record.get("version") or "-"),
        "tool": str(record.get("tool") or record.get("method") or "-"),
        "status": str(record.get("status") or "-"),
        "seconds": f"{seconds:.3f}" if isinstance(seconds, (int, float)) else "-",
        "request_id": str(record.get("request_id") or "-"),
    }


def _row(values: Mapping[str, str]) -> str:
    cells = []
    for name, width in TABLE_COLUMNS:
        text = values[name].replace("\n", " ")
        if width and len(text) > width:
            text = text[: width - 1] + "…"
        cells.append(text.ljust(width) if width else text)
    return "  ".join(cells).rstrip()

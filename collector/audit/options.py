"""The audit trail's command-line options (`mcp-slo proxy --audit-file ...`), turned into an
`AuditConfig`: `--audit-config FILE` holds any of its options (JSON, or YAML when PyYAML is
installed, keys as `AuditConfig`'s fields), and each `--audit-*` flag given overrides it.

`--audit-spec SPEC` reads the tools' data classification from the SLO spec, where it lives
beside their objectives (`services.NAME.classification` and `services.NAME.tools.TOOL.
classification`; `mcp-slo validate` checks the values): only those keys are read here, so the
exporter needs no SLO library; a classification in `--audit-config` wins over the spec's."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from collector.audit.config import WHEN_FULL, AuditConfig
from collector.audit.redact import MODES

# flag -> AuditConfig field
_FLAGS = {
    "audit_file": "path", "audit_params": "params", "audit_max_bytes": "max_bytes",
    "audit_rotate_every": "rotate_every", "audit_retention": "retention", "audit_when_full": "when_full",
    "audit_jwks": "jwks", "audit_issuer": "issuer", "audit_audience": "audience",
    "audit_user_claim": "user_claim", "audit_header": "header_allow", "audit_otlp": "otlp",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "audit trail", "one JSON line per client request: who called what, when, and how it ended "
                       "(see mcp-slo audit verify / query)")
    group.add_argument("--audit-file", metavar="PATH", help="write the audit trail to this JSON Lines file")
    group.add_argument("--audit-config", metavar="FILE",
                       help="the audit options in a JSON or YAML file (keys as in collector.audit.config); "
                            "the --audit-* flags override it")
    group.add_argument("--audit-spec", metavar="SPEC",
                       help="read the tools' classification (public, internal, confidential, restricted) for "
                            "--service from this SLO spec")
    group.add_argument("--audit-params", choices=MODES,
                       help="what is kept of tool arguments: names (and types and sizes, the default), "
                            "redacted values, or full values")
    group.add_argument("--audit-max-bytes", metavar="SIZE", help="rotate the file at this size (default: 100MiB)")
    group.add_argument("--audit-rotate-every", metavar="DURATION", help="rotate the file this often (default: 1d)")
    group.add_argument("--audit-retention", metavar="DURATION", help="delete rotated files older than this (e.g. 90d)")
    group.add_argument("--audit-when-full", choices=WHEN_FULL,
                       help="when the writer falls behind: drop records (counted; never slows a request, the "
                            "default) or block requests until there is room")
    group.add_argument("--audit-otlp", action="store_true", default=None,
                       help="also export the records as OpenTelemetry logs over OTLP/HTTP, configured by "
                            "OTEL_EXPORTER_OTLP_ENDPOINT (needs pip install 'mcp-slo[otel]')")
    group.add_argument("--audit-jwks", metavar="FILE|URL",
                       help="verify bearer tokens with these keys (needs pip install 'mcp-slo[audit]'); "
                            "without it their claims are recorded as unverified")
    group.add_argument("--audit-issuer", help="the issuer a verified token must have")
    group.add_argument("--audit-audience", help="the audience a verified token must have")
    group.add_argument("--audit-user-claim", metavar="CLAIM", help="the token claim recorded as the user (default: sub)")
    group.add_argument("--audit-header", metavar="NAME", action="append",
                       help="record this request header (values masked; never Authorization or Cookie); repeatable")


def config_from_args(args: argparse.Namespace, *, stdio: bool, service: str = "") -> AuditConfig | None:
    """The audit options given, or None when no audit trail was asked for; ValueError in one
    line for a bad option (naming it)."""
    options: dict[str, Any] = _read_file(args.audit_config, "--audit-config") if args.audit_config else {}
    if getattr(args, "audit_spec", None):
        classified = classification_from_spec(_read_file(args.audit_spec, "--audit-spec"), service)
        options = {**classified, **options,
                   "tool_classification": {**classified.get("tool_classification", {}),
                                           **options.get("tool_classification", {})}}
    for flag, name in _FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            options[name] = value
    if not options:
        return None
    if not options.get("path") and not options.get("stdout") and not options.get("otlp"):
        raise ValueError("the audit options need a file: --audit-file PATH (or path: in --audit-config), "
                         "or --audit-otlp")
    if stdio and options.get("stdout"):
        raise ValueError("stdout: the stdio proxy's standard output is the MCP stream; write the audit trail to "
                         "a file (--audit-file)")
    return AuditConfig.from_mapping(options)


def classification_from_spec(spec: Mapping[str, Any], service: str) -> dict[str, Any]:
    """The audit options a spec's `services.SERVICE` gives: `tool_classification` of its tools,
    and its own classification as `default_classification`."""
    services = spec.get("services")
    body = services.get(service) if isinstance(services, Mapping) else None
    if not isinstance(body, Mapping):
        return {}
    options: dict[str, Any] = {}
    if body.get("classification") is not None:
        options["default_classification"] = body["classification"]
    tools = body.get("tools")
    classified = {tool: spec_tool["classification"] for tool, spec_tool in tools.items()
                  if isinstance(spec_tool, Mapping) and spec_tool.get("classification") is not None} \
        if isinstance(tools, Mapping) else {}
    if classified:
        options["tool_classification"] = classified
    return options


def _read_file(path: str, option: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{option} {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        data = json.loads(text) if path.endswith(".json") else _yaml(text, path)
    except ValueError as exc:
        raise ValueError(f"{option} {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{option} {path}: expected a mapping")  # noqa: TRY004
    return data


def _yaml(text: str, path: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise ValueError("YAML needs PyYAML (pip install pyyaml); or give a .json file") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"not valid YAML{where}") from None

"""`mcp-slo rules`: write Prometheus recording and alerting rules from an SLO spec.

    mcp-slo rules --config examples/slo.yaml --out alerts/rules
    mcp-slo rules --config slo.yaml --out k8s/ --format prometheus-operator --namespace monitoring
    mcp-slo rules --config slo.yaml --out rules/ --tests      # and promtool test suites in rules/tests/

The spec may be mcp-slo's own, OpenSLO v1 or Sloth prometheus/v1 (see `slo.importers`).

Everything is generated before anything is written, and each file is replaced in one
step, so a bad spec leaves the output directory as it was.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from alerts import rules, rules_tests
from alerts.output import write_atomically
from collector import durations
from collector.command import OK, CommandError
from slo import importers, spec

TESTS_DIR = "tests"
# Kubernetes object names (RFC 1123 subdomain) and namespaces (RFC 1123 label)
K8S_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
K8S_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="SPEC",
                        help="the SLO spec: mcp-slo's own, OpenSLO v1 or Sloth prometheus/v1 (YAML)")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory to write the rules to")
    parser.add_argument("--format", choices=rules.FORMATS, default="prometheus",
                        help="a Prometheus rule file (default) or a prometheus-operator PrometheusRule manifest")
    parser.add_argument("--interval", default="1m", help="rule group evaluation interval (default 1m)")
    parser.add_argument("--name", default="mcp-slo", help="PrometheusRule metadata.name (default mcp-slo)")
    parser.add_argument("--namespace", help="PrometheusRule metadata.namespace")
    parser.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                        help="PrometheusRule metadata label, e.g. the one your Prometheus selects rules by (repeatable)")
    parser.add_argument("--tests", action="store_true",
                        help=f"also write promtool test suites to DIR/{TESTS_DIR}/ (prometheus format only)")


def generate(config: str | Path, fmt: str = "prometheus", *, interval: str = "1m", name: str = "mcp-slo",
             namespace: str | None = None, labels: dict[str, str] | None = None,
             tests: bool = False) -> dict[str, str]:
    """Relative path -> file content. Raises spec.SpecError or rules.RulesError."""
    s = importers.load(config).spec
    try:
        durations.parse(interval)
    except ValueError as exc:
        raise rules.RulesError(f"--interval: {exc}") from None
    if fmt == "prometheus-operator":
        if not K8S_NAME.match(name):
            raise rules.RulesError(f"--name {name!r} is not a Kubernetes object name (lowercase letters, digits, '-', '.')")
        if namespace is not None and not K8S_NAMESPACE.match(namespace):
            raise rules.RulesError(f"--namespace {namespace!r} is not a Kubernetes namespace name")
    rule_file = rules.FILENAMES[fmt]
    out = {rule_file: rules.render(rules.rule_groups(s, interval), fmt, source=Path(config).name, name=name,
                                   namespace=namespace, labels=labels)}
    if tests:
        if fmt != "prometheus":
            raise rules.RulesError("--tests needs --format prometheus (promtool reads rule files, not manifests)")
        for filename, text in rules_tests.suites(s, f"../{rule_file}").items():
            out[f"{TESTS_DIR}/{filename}"] = text
    return out


def write(out_dir: Path, files: dict[str, str]) -> list[Path]:
    written = []
    for relative, text in files.items():
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, text)
        written.append(path)
    return written


def _labels(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise rules.RulesError(f"--label {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def run(args: argparse.Namespace) -> int:
    try:
        files = generate(args.config, args.format, interval=args.interval, name=args.name,
                         namespace=args.namespace, labels=_labels(args.label), tests=args.tests)
    except (spec.SpecError, rules.RulesError) as exc:
        raise CommandError(str(exc)) from None
    for path in write_or_fail(Path(args.out), files):
        print(path)
    return OK


def write_or_fail(out_dir: Path, files: dict[str, str]) -> list[Path]:
    """`write`, or CommandError: an output directory that cannot be written is bad input."""
    try:
        return write(out_dir, files)
    except OSError as exc:
        raise CommandError(f"cannot write {out_dir}: {exc.strerror or exc}") from None

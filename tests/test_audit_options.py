"""The proxy's --audit-* options: flags over --audit-config over the SLO spec's classification,
and the spec's classification checked where the spec is validated."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from collector.audit import options
from collector.audit.redact import CLASSIFICATIONS
from slo import spec as slo_spec

ROOT = Path(__file__).resolve().parent.parent
SPEC = {"services": {"files": {"classification": "confidential", "tools": {
    "read_secret": {"classification": "restricted"}, "list": {"classification": "public"},
    "write_file": {}}}}}


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    options.add_arguments(parser)
    return parser.parse_args(argv)


def test_the_spec_classifies_the_services_tools(tmp_path):
    path = tmp_path / "slo.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    config = options.config_from_args(parse("--audit-file", "a.jsonl", "--audit-spec", str(path),
                                            "--audit-params", "full"), stdio=True, service="files")
    assert config.params_mode("read_secret") == "names"  # restricted: never values
    assert config.params_mode("list") == "full"
    assert config.params_mode("write_file") == "redacted"  # the service's: confidential
    other = options.config_from_args(parse("--audit-file", "a.jsonl", "--audit-spec", str(path)), stdio=True,
                                     service="search")
    assert other.tool_classification == {} and other.default_classification == "internal"


def test_the_audit_config_wins_over_the_spec_and_flags_over_both(tmp_path):
    spec = tmp_path / "slo.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    config_file = tmp_path / "audit.json"
    config_file.write_text(json.dumps({"path": "from-config.jsonl", "params": "redacted",
                                       "tool_classification": {"list": "restricted"}}))
    config = options.config_from_args(parse("--audit-config", str(config_file), "--audit-spec", str(spec),
                                            "--audit-file", "flag.jsonl"), stdio=False, service="files")
    assert str(config.path) == "flag.jsonl" and config.params == "redacted"
    assert config.tool_classification == {"read_secret": "restricted", "list": "restricted"}


def test_no_audit_options_no_audit_trail_and_bad_ones_in_one_line(tmp_path):
    assert options.config_from_args(parse(), stdio=True) is None
    bad = tmp_path / "slo.yaml"
    bad.write_text(yaml.safe_dump({"services": {"files": {"tools": {"x": {"classification": "secret"}}}}}))
    with pytest.raises(ValueError, match="tool 'x': unknown classification 'secret'"):
        options.config_from_args(parse("--audit-file", "a", "--audit-spec", str(bad)), stdio=True, service="files")
    with pytest.raises(ValueError, match="--audit-spec /nope.yaml: cannot read it"):
        options.config_from_args(parse("--audit-file", "a", "--audit-spec", "/nope.yaml"), stdio=True)
    broken = tmp_path / "broken.yaml"
    broken.write_text("services: [\n")
    with pytest.raises(ValueError, match="not valid YAML at line"):
        options.config_from_args(parse("--audit-config", str(broken)), stdio=True)


def test_the_spec_validates_classifications_as_the_audit_trail_knows_them():
    assert slo_spec.Classification.__args__ == CLASSIFICATIONS
    parsed = slo_spec.parse(SPEC)
    assert parsed.services["files"].tools["read_secret"].classification == "restricted"
    with pytest.raises(ValueError, match="classification"):
        slo_spec.parse({"services": {"files": {"tools": {"x": {"classification": "secret"}}}}})
    example = slo_spec.parse(yaml.safe_load((ROOT / "examples" / "slo.yaml").read_text()))
    assert example.services["filesystem"].tools["write_file"].classification == "confidential"

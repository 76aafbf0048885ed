"""What `mcp-slo validate` accepts, `rules` and `alertmanager` turn into files promtool and
amtool accept; what it refuses gets exit 2 and one line per problem (naming the file and the
key path) from every command, never a traceback. The inputs are the hardening issue's."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
import yaml

from alerts import rules_tests
from mcp_slo import cli
from slo import spec
from tests import binaries

COMMANDS = ("validate", "rules", "alertmanager")
HEADERS = ("mcp-slo validate: invalid spec", "mcp-slo alertmanager: invalid spec, nothing written")

BASE = {
    "defaults": {"objectives": [
        {"name": "availability", "kind": "availability", "target": 99.9, "window": "30d"},
        {"name": "latency", "kind": "latency", "threshold": 0.5, "target": 99, "window": "30d"},
    ]},
    "services": {"fs": {"objectives": [{"name": "availability", "target": 99.5}],
                        "tools": {"write": {"objectives": [{"name": "availability", "target": 99}]}}}},
    "alerting": {"labels": {"team": "mcp"}, "receivers": {"page": "http://127.0.0.1:9095/page"}},
}


def with_(path: str, value: object, base: dict = BASE) -> dict:
    """`base` with the value at a dotted key path (list indexes as numbers) replaced."""
    out = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


def tier(**changes: object) -> dict:
    return {"name": "t", "severity": "page", "burn_rate": 14.4, "long_window": "1h", "short_window": "5m",
            **changes}


def run(command: str, config: Path, out: Path, capsys) -> tuple[int, str, str]:
    args = [command, "--config", str(config)]
    if command == "rules":
        args += ["--out", str(out), "--tests"]
    elif command == "alertmanager":
        args += ["--out", str(out)]
    code = cli.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(tmp_path: Path, document: object, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return path


# (id, the spec: YAML text or a document, key path or None, phrase of the reason)
REFUSED = [
    # nesting deeper than any spec needs: a RecursionError traceback before
    ("deep-list", "x: " + "[" * 500 + "]" * 500 + "\n", None, "nested deeper than"),
    ("deep-mapping", "services: " + "{a: " * 500 + "1" + "}" * 500 + "\n", None, "nested deeper than"),
    ("deep-block", "".join(" " * i + "a:\n" for i in range(400)) + " " * 400 + "a: 1\n", None, "nested deeper than"),
    # a key twice: PyYAML kept the last silently (the first services: block was lost)
    ("duplicate-key", "services: {fs: {}}\nalerting: {}\nservices: {db: {}}\n", None,
     "line 3, column 1: not valid YAML: duplicate key 'services'"),
    # names and label keys with a trailing newline (`$` lets it through)
    ("service-newline", {"services": {"fs\n": {}}}, "services", "is not a valid service name"),
    ("tool-newline", with_("services.fs.tools", {"write\n": {}}), "services.fs.tools", "is not a valid tool name"),
    ("slo-name-newline", with_("defaults.objectives.0.name", "availability\n"), "defaults.objectives.0.name",
     "not a valid SLO name"),
    ("label-key-newline", with_("alerting.labels", {"team\n": "mcp"}), "alerting.labels", "not a valid label name"),
    ("label-key-reserved-prefix", with_("alerting.labels", {"__team": "mcp"}), "alerting.labels",
     "not a valid label name"),
    ("label-value-control", with_("alerting.labels", {"team": "a\x00b"}), "alerting.labels",
     "control character"),
    ("tier-name-template", with_("alerting.tiers", [tier(name="{{ .Evil }}")]), "alerting.tiers.0.name",
     "not a valid tier name"),
    ("window-newline", with_("defaults.objectives.0.window", "30d\n"), "defaults.objectives.0.window",
     "not a duration"),
    # receiver URLs amtool cannot use
    ("receiver-newline", with_("alerting.receivers.page", "http://x/p\n"), "alerting.receivers.page",
     "not an http:// or https:// URL"),
    ("receiver-no-host", with_("alerting.receivers.page", "http:///page"), "alerting.receivers.page", "no host"),
    ("receiver-bad-escape", with_("alerting.receivers.page", "http://x/%zz"), "alerting.receivers.page",
     "not an http:// or https:// URL"),
    ("receiver-non-ascii", with_("alerting.receivers.page", "http://exämple.com/p"), "alerting.receivers.page",
     "not an http:// or https:// URL"),
    ("receiver-bad-port", with_("alerting.receivers.page", "http://x:99999/p"), "alerting.receivers.page",
     "Port out of range"),
    ("receiver-ftp", with_("alerting.receivers.page", "ftp://x/p"), "alerting.receivers.page",
     "not an http:// or https:// URL"),
    # link templates: validate said valid, rules exited 2
    ("runbook-unclosed-brace", with_("alerting.runbook_url", "https://r/{service"), "alerting.runbook_url",
     "not a valid template"),
    ("runbook-unknown-placeholder", with_("alerting.runbook_url", "https://r/{team}"), "alerting.runbook_url",
     "unknown placeholder {team}"),
    ("runbook-format-spec", with_("alerting.runbook_url", "https://r/{slo!r}"), "alerting.runbook_url",
     "unknown placeholder"),
    ("dashboard-newline", with_("alerting.dashboard_url", "https://d/{service}\n"), "alerting.dashboard_url",
     "not an http:// or https:// URL"),
    # targets whose error budget the rules cannot express
    ("target-rounds-to-100", with_("defaults.objectives.0.target", 99.99999999999999),
     "defaults.objectives.0.target", "at most 99.9999"),
    ("target-seven-nines", with_("defaults.objectives.0.target", 99.99999), "defaults.objectives.0.target",
     "at most 99.9999"),
    ("target-nan", with_("defaults.objectives.0.target", float("nan")), "defaults.objectives.0.target",
     "finite number"),
    ("target-inf", with_("defaults.objectives.0.target", float("inf")), "defaults.objectives.0.target",
     "finite number"),
    ("service-target-rounds-to-100", with_("services.fs.objectives.0.target", 99.99999999999999),
     "services.fs.objectives.0.target", "at most 99.9999"),
    # SLO windows out of what Prometheus and the rules can express
    ("window-huge", with_("defaults.objectives.0.window", "99999999999d"), "defaults.objectives.0.window",
     "at most 365d"),
    ("window-1ms", with_("defaults.objectives.0.window", "1ms"), "defaults.objectives.0.window", "at least 1h"),
    ("window-1s", with_("defaults.objectives.0.window", "1s"), "defaults.objectives.0.window", "at least 1h"),
    ("window-not-whole-hours", with_("defaults.objectives.0.window", "90m"), "defaults.objectives.0.window",
     "whole number of hours"),
    ("service-window-1s", with_("services.fs.objectives.0", {"name": "availability", "window": "1s"}),
     "services.fs.objectives.0.window", "at least 1h"),
    # alert tiers
    ("burn-rate-inf", with_("alerting.tiers", [tier(burn_rate=float("inf"))]), "alerting.tiers.0.burn_rate",
     "finite number"),
    ("burn-rate-nan", with_("alerting.tiers", [tier(burn_rate=float("nan"))]), "alerting.tiers.0.burn_rate",
     "finite number"),
    ("burn-rate-below-1", with_("alerting.tiers", [tier(burn_rate=0.5)]), "alerting.tiers.0.burn_rate",
     "greater than or equal to 1"),
    ("burn-rate-huge", with_("alerting.tiers", [tier(burn_rate=1e308)]), "alerting.tiers.0.burn_rate",
     "less than or equal to 1000"),
    ("tier-window-huge", with_("alerting.tiers", [tier(long_window="99999999999d")]),
     "alerting.tiers.0.long_window", "at most 365d"),
    ("tier-window-31d", with_("alerting.tiers", [tier(long_window="31d")]), "alerting.tiers.0.long_window",
     "at most 30d"),
    ("tier-window-ms", with_("alerting.tiers", [tier(short_window="500ms")]), "alerting.tiers.0.short_window",
     "at least 1m"),
    ("tier-for-2d", with_("alerting.tiers", [tier(**{"for": "2d"})]), "alerting.tiers.0.for", "at most 1d"),
    ("page-short-window-2h", with_("alerting.tiers", [tier(long_window="1d", short_window="2h")]), "alerting.tiers.0",
     "of a page tier is too long: at most 1h"),
    ("absent-for-huge", with_("alerting.absent_for", "99999999999d"), "alerting.absent_for", "at most 365d"),
    ("absent-for-2d", with_("alerting.absent_for", "2d"), "alerting.absent_for", "at most 1d"),
    ("min-events-1e308", with_("alerting.min_events", 1e308), "alerting.min_events", "integer"),
    ("min-events-huge", with_("alerting.min_events", 2_000_000), "alerting.min_events", "less than or equal to"),
    # histogram buckets
    ("buckets-empty", with_("buckets", []), "buckets", "at least 1 item"),
    ("buckets-unsorted", with_("buckets", [1.0, 0.5]), "buckets", "strictly increasing"),
    ("buckets-inf", with_("buckets", [0.5, float("inf")]), "buckets.1", "finite number"),
    ("buckets-negative", with_("buckets", [-1.0, 0.5]), "buckets.0", "greater than 0"),
]


@pytest.mark.parametrize("name, document, key_path, reason", REFUSED, ids=[c[0] for c in REFUSED])
def test_every_command_refuses_it_with_one_line(tmp_path, capsys, name, document, key_path, reason):
    config = write(tmp_path, document)
    for command in COMMANDS:
        out_path = tmp_path / f"{command}-out"
        code, out, err = run(command, config, out_path, capsys)
        assert code == 2, f"{command}: exit {code}\n{out}{err}"
        assert "Traceback" not in err and not out_path.exists(), err
        problems = [line for line in err.splitlines() if line not in HEADERS]
        assert len(problems) == 1, f"{command}: {err}"
        assert str(config) in problems[0] and reason in problems[0], f"{command}: {err}"
        if key_path is not None:
            assert f": {key_path}: " in problems[0], f"{command}: {err}"


def test_a_problem_in_a_key_with_a_line_break_is_still_one_line(tmp_path, capsys):
    config = write(tmp_path, {"services": {"fs\nx": {"objectives": 5}}})
    code, _, err = run("validate", config, tmp_path / "out", capsys)
    assert code == 2
    assert err.splitlines() == [HEADERS[0], f"{config}: services.fs\\nx.objectives: Input should be a valid tuple"]


def test_the_file_name_is_escaped_and_one_line_in_errors(tmp_path, capsys):
    folder = tmp_path / "fn"
    folder.mkdir()
    config = write(folder, "version: 2\n", name="z\ntemplates: [evil.tmpl]\n#.yaml")
    code, _, err = run("validate", config, tmp_path / "out", capsys)
    assert code == 2
    assert err.splitlines() == [HEADERS[0], f"{folder}/z\\ntemplates: [evil.tmpl]\\n#.yaml: version: Input should be 1"]


# --- accepted at the bounds --------------------------------------------------------------------

# One named service and the defaults: small promtool suites.
SMALL = {**BASE, "services": {"fs": {}}}

# (id, document): specs at the edges of what validate accepts; their files must pass promtool and amtool
ACCEPTED = [
    ("page-burn-2", with_("alerting.tiers", [tier(burn_rate=2), tier(name="tk", severity="ticket", burn_rate=1,
                                                                      long_window="1d", short_window="2h")], SMALL)),
    ("page-burn-1", with_("alerting.tiers", [tier(burn_rate=1)], SMALL)),
    ("window-1h", with_("defaults.objectives.0.window", "1h", SMALL)),
    ("window-365d", with_("defaults.objectives.1.window", "365d", SMALL)),
    ("target-six-nines", with_("defaults.objectives.0.target", 99.9999, SMALL)),
    ("target-low", with_("defaults.objectives.0.target", 1, SMALL)),
    ("burn-rate-1000", with_("alerting.tiers", [tier(burn_rate=1000)], SMALL)),
    ("link-templates", with_("alerting.runbook_url", "https://r.example.com:8443/a%20b/{slo}?s={service}#x")),
]


@pytest.mark.parametrize("name, document", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_at_the_bounds_every_command_writes_its_files(tmp_path, capsys, name, document):
    config = write(tmp_path, document)
    for command in COMMANDS:
        code, out, err = run(command, config, tmp_path / f"{command}-out", capsys)
        assert code == 0, f"{command}: {err}"
    assert (tmp_path / "rules-out" / "mcp-slo.yml").exists() and (tmp_path / "alertmanager-out").exists()


@pytest.mark.integration
@pytest.mark.parametrize("name, document", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_at_the_bounds_promtool_and_amtool_accept_the_files(tmp_path, capsys, name, document):
    """The generated promtool suites pass too: before, a page tier with burn_rate 2 failed
    its own burn-2x test (a 2x burn is not clearly below a 2x tier)."""
    config = write(tmp_path, document)
    assert run("rules", config, tmp_path / "rules", capsys)[0] == 0
    assert run("alertmanager", config, tmp_path / "am.yml", capsys)[0] == 0
    promtool, amtool = binaries.require("promtool"), binaries.require("amtool")
    checked = subprocess.run([promtool, "check", "rules", "mcp-slo.yml"], cwd=tmp_path / "rules",
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    suites = sorted(p.name for p in (tmp_path / "rules" / "tests").iterdir())
    assert suites == sorted(f"{n}.test.yml" for n in rules_tests.SCENARIOS if
                            (tmp_path / "rules" / "tests" / f"{n}.test.yml").exists())
    tested = subprocess.run([promtool, "test", "rules", *suites], cwd=tmp_path / "rules" / "tests",
                            capture_output=True, text=True, timeout=600)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]
    am = subprocess.run([amtool, "check-config", str(tmp_path / "am.yml")], capture_output=True, text=True)
    assert am.returncode == 0, am.stdout + am.stderr


# --- the config file's name in the generated files -------------------------------------------------

EVIL_NAME = "z\ntemplates: [evil.tmpl]\n#.yaml"


def _evil_config(tmp_path: Path) -> Path:
    folder = tmp_path / "fn"
    folder.mkdir()
    return write(folder, BASE, name=EVIL_NAME)


def _comment_lines(text: str) -> list[str]:
    lines = text.splitlines()
    return lines[:next(i for i, line in enumerate(lines) if not line.startswith("#"))]


def test_the_file_name_cannot_add_keys_to_the_generated_files(tmp_path, capsys):
    config = _evil_config(tmp_path)
    assert run("alertmanager", config, tmp_path / "am.yml", capsys)[0] == 0
    am = (tmp_path / "am.yml").read_text()
    assert set(yaml.safe_load(am)) == {"route", "inhibit_rules", "receivers"}
    assert "\\ntemplates: [evil.tmpl]\\n#.yaml" in _comment_lines(am)[0]
    assert run("rules", config, tmp_path / "rules", capsys)[0] == 0
    rule_file = (tmp_path / "rules" / "mcp-slo.yml").read_text()
    assert set(yaml.safe_load(rule_file)) == {"groups"}
    assert len(_comment_lines(rule_file)) == 1


def test_every_line_break_yaml_knows_is_escaped_in_headers(tmp_path, capsys):
    """YAML ends a comment at \\r, NEL, LS and PS as well as \\n."""
    folder = tmp_path / "fn"
    folder.mkdir()
    for i, brk in enumerate(("\r", "\x85", "\u2028", "\u2029")):
        config = write(folder, BASE, name=f"z{i}{brk}receivers: []{brk}#.yaml")
        out = tmp_path / f"am{i}.yml"
        assert run("alertmanager", config, out, capsys)[0] == 0
        text = out.read_text()
        assert brk not in text and len(yaml.safe_load(text)["receivers"]) == 4


@pytest.mark.integration
def test_amtool_and_promtool_accept_files_from_a_hostile_file_name(tmp_path, capsys):
    config = _evil_config(tmp_path)
    assert run("alertmanager", config, tmp_path / "am.yml", capsys)[0] == 0
    am = subprocess.run([binaries.require("amtool"), "check-config", str(tmp_path / "am.yml")],
                        capture_output=True, text=True)
    assert am.returncode == 0 and " - 0 templates" in am.stdout, am.stdout + am.stderr
    assert run("rules", config, tmp_path / "rules", capsys)[0] == 0
    checked = subprocess.run([binaries.require("promtool"), "check", "rules", str(tmp_path / "rules" / "mcp-slo.yml")],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# --- the model ------------------------------------------------------------------------------------


def test_the_bounds_are_documented_where_they_are_checked():
    doc = spec.__doc__
    for phrase in ("99.9999", "365d", "burn_rate", "http"):
        assert phrase in doc, phrase


def test_an_imported_name_with_a_yaml_line_break_is_one_line(tmp_path, capsys):
    """The Sloth importer quotes the service in its messages: NEL (\\x85) is a line break to
    str.splitlines and to YAML."""
    sloth = (Path(__file__).resolve().parent.parent / "examples" / "sloth.yaml").read_text()
    config = write(tmp_path, sloth.replace("service: analytics", 'service: "x\\Ny"'))
    code, _, err = run("validate", config, tmp_path / "out", capsys)
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 2 and "is not a valid service name" in lines[1] and "\\x85" in lines[1], lines


def test_the_grafana_provisioning_header_escapes_the_file_name():
    from grafana import provision

    text = provision.render({"apiVersion": 1, "datasources": []}, source="z\ndatasources: [{name: evil}]\n#.yaml")
    assert yaml.safe_load(text) == {"apiVersion": 1, "datasources": []}
    assert text.splitlines()[0].startswith("# Generated by `mcp-slo grafana` from z\\ndatasources")

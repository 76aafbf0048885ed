"""A seeded fuzz of the spec loader: random mutations of the example specs (mcp-slo, OpenSLO,
Sloth) and the hardening issue's inputs. Every outcome is exit 0 from validate, rules
(with --tests) and alertmanager, with files that `promtool check rules` and `amtool
check-config` accept, or exit 2 from all three with one line per problem; never a
traceback. The commands run in-process (`mcp_slo.cli.main`) to save process starts; promtool
and amtool check every generated file (in batches), and `promtool test rules` runs the
suites of the smallest few accepted specs.

MCP_SLO_FUZZ_SEED and MCP_SLO_FUZZ_COUNT change the seed and the number of specs (a failure
prints the seed and the mutations that made the spec)."""

from __future__ import annotations

import math
import os
import random
import subprocess
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from mcp_slo import cli
from tests import binaries

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = [ROOT / "examples" / name for name in ("slo.yaml", "openslo.yaml", "sloth.yaml")]
SEED = int(os.environ.get("MCP_SLO_FUZZ_SEED", "20240607"))
COUNT = int(os.environ.get("MCP_SLO_FUZZ_COUNT", "200"))
SUITES_RUN = int(os.environ.get("MCP_SLO_FUZZ_SUITES", "2"))  # accepted specs whose suites run (the smallest)
HEADERS = ("mcp-slo validate: invalid spec", "mcp-slo alertmanager: invalid spec, nothing written")

# --- values a mutation puts in --------------------------------------------------------------

NUMBERS = [math.inf, -math.inf, math.nan, 1e308, -1e308, 0, -1, 100, 99.99999999999999, 1e-308, 2 ** 63, 0.5,
           1, 2, 50, 99.9999, 1000, 1000.5, 1_000_000, 1_000_001]
STRINGS = ["x\n", 'a"b', "{x}", "{service", "{{ .Evil }}", "é", "\u2028", "x\x85y", "\x00", "\ud800", "x" * 5000,
           "", " ", "30d\n", "1ms", "1s", "99999999999d", "1h", "365d", "7d", "25h", "1w", "90m", "2d", "0d",
           "http://x/p\n", "http://[::1]:9095/p", "https://h.example.com:8443/a%20b?c=d#e", "http://x:0/",
           "ftp://x/", "http:///p", "http://x/%zz", "http://exämple.com/", "https://r/{slo}/{service}",
           "https://r/{team}", "tools/call", "ping", "availability", "latency", "page", "ticket"]
# Valid but extreme values per key: most mutations should still be accepted.
BY_KEY: dict[str, list[Any]] = {
    "target": [0.001, 1, 50, 90, 99, 99.9, 99.99, 99.9999, 99.99999, 100, 0],
    "objective": [0.001, 1, 50, 99.9999, 99.99999999999999, 100],
    "window": ["1h", "2h", "25h", "1d", "3d", "4d", "7d", "1w", "28d", "90d", "365d", "366d", "1s", "1ms", "90m"],
    "long_window": ["1m", "10m", "1h", "6h", "1d", "3d", "30d", "31d"],
    "short_window": ["1m", "5m", "30m", "1h", "2h", "6h"],
    "for": ["1s", "1m", "2m", "1h", "1d", "2d"],
    "absent_for": ["1m", "10m", "1d", "2d", "30s"],
    "burn_rate": [1, 1.05, 2, 6, 14.4, 100, 1000, 0.99, 1001],
    "min_events": [0, 1, 50, 1000, 1_000_000, 1_000_001, -1],
    "threshold": [0.01, 0.05, 0.1, 0.5, 1.0, 2, 5, 10, 0.3],
    "severity": ["page", "ticket", "info"],
    "enabled": [True, False],
    "budget_exhausted_alert": [True, False],
    "buckets": [[0.5], [0.1, 0.5, 1.0], [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30], [1, 0.5], []],
    "duration": ["1h", "7d", "28d", "365d", "1ms", "99999999999d"],
}


@dataclass
class Mutant:
    """One fuzzed spec: its text and how it came about (for the failure message)."""

    name: str
    text: str
    how: list[str] = field(default_factory=list)


def _slots(node: Any, path: str = "") -> list[tuple[Any, Any, str]]:
    """(container, key, path) of every value in the documents."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        where = f"{path}.{key}" if path else str(key)
        out.append((node, key, where))
        out += _slots(value, where)
    return out


DEEP = "deep-nesting-marker-"  # replaced in the text: PyYAML cannot dump 600 levels either


def _nested(text: str) -> str:
    """`text` with each deep-nesting marker replaced by lists and mappings nested that deep."""
    while DEEP in text:
        start = text.index(DEEP)
        end = start + len(DEEP)
        while text[end].isdigit():
            end += 1
        depth = int(text[start + len(DEEP):end])
        text = text[:start] + "[{a: " * (depth // 2) + "1" + "}]" * (depth // 2) + text[end:]
    return text


def _mutate(rng: random.Random, docs: list[Any], how: list[str], at_bounds: bool = False) -> None:
    """One change somewhere in `docs`; `at_bounds`: a value near the bounds of a known key."""
    slots = _slots(docs)
    if at_bounds:
        slots = [slot for slot in slots if str(slot[1]) in BY_KEY] or slots
    container, key, where = rng.choice(slots)
    roll = 0.0 if at_bounds else rng.random()
    if roll < 0.35 and str(key) in BY_KEY:
        value = rng.choice(BY_KEY[str(key)])
    elif roll < 0.5:
        value = rng.choice(NUMBERS)
    elif roll < 0.65:
        value = rng.choice(STRINGS)
    elif roll < 0.72:
        value = rng.choice([None, True, [], {}, [container[key]], {"k": container[key]}])
    elif roll < 0.8 and isinstance(container, (dict, list)) and len(container) > 1:
        del container[key]
        how.append(f"drop {where}")
        return
    elif roll < 0.85 and isinstance(container, list):
        container.append(container[key])
        how.append(f"duplicate {where}")
        return
    elif roll < 0.9 and isinstance(container, dict):
        container[rng.choice(["extra", "x\n", "__name__", "é"])] = rng.choice(NUMBERS + STRINGS)
        how.append(f"add a key next to {where}")
        return
    elif roll < 0.93:
        value = f"{DEEP}{rng.choice([6, 44, 60, 600])}"
    else:
        value = rng.choice(STRINGS[:12]) * rng.choice([1, 3])
    container[key] = value
    how.append(f"{where} = {value!r:.60}")


def _text_mutation(rng: random.Random, text: str, how: list[str]) -> str:
    lines = text.splitlines(keepends=True)
    roll = rng.random()
    i = rng.randrange(len(lines))
    if roll < 0.4:
        how.append(f"duplicate line {i + 1}")
        return "".join(lines[:i + 1] + lines[i:])
    if roll < 0.7:
        how.append(f"delete line {i + 1}")
        return "".join(lines[:i] + lines[i + 1:])
    if roll < 0.85:
        cut = rng.randrange(len(text))
        how.append(f"truncate at {cut}")
        return text[:cut]
    at = rng.randrange(len(text))
    char = rng.choice(["[", "{", "&a ", "*a ", "!!python/object:os.system ", "\t", "'", '"', "%", "---\n"])
    how.append(f"insert {char!r} at {at}")
    return text[:at] + char + text[at:]


def issue_inputs() -> list[Mutant]:
    """The hardening issue's inputs, on the example spec."""
    example = (ROOT / "examples" / "slo.yaml").read_text()
    deep = "x: " + "[" * 500 + "]" * 500 + "\n"
    tier = "{name: t, severity: page, burn_rate: %s, long_window: 1h, short_window: 5m}"
    changes = {
        "deep-nesting": deep,
        "service-newline": example + 'services: {"fs\\n": {}}\n',
        "label-key-newline": example.replace("labels: {team: mcp-platform}", 'labels: {"team\\n": x}'),
        "receiver-newline": example.replace("page: http://127.0.0.1:9095/page", 'page: "http://x/p\\n"'),
        "target-rounds-to-100": example.replace("target: 99.9}", "target: 99.99999999999999}"),
        "window-huge": example.replace("window: 30d\n      description: tools/call requests that succeed",
                                       "window: 99999999999d\n      description: x"),
        "window-1ms": example.replace("window: 30d\n      description: tools/call requests that succeed",
                                      "window: 1ms\n      description: x"),
        "window-1s": example.replace("window: 30d\n      description: tools/call requests that succeed",
                                     "window: 1s\n      description: x"),
        "burn-rate-inf": example.replace("min_events: 50", "min_events: 50\n  tiers: [" + tier % ".inf" + "]"),
        "page-burn-rate-2": example.replace("min_events: 50", "min_events: 50\n  tiers: [" + tier % "2" + "]"),
        "runbook-unclosed": example.replace('"https://runbooks.example.com/mcp-slo/{slo}#{service}"',
                                            '"https://r/{service"'),
    }
    for name, text in changes.items():
        assert name == "deep-nesting" or text != example, name
    return [Mutant(f"issue-{name}", text, [name]) for name, text in changes.items()]


def _one_service(docs: list[Any]) -> list[Any]:
    """The mcp-slo example with one service and no tool: promtool runs its suites fast."""
    spec = dict(docs[0])
    spec["services"] = {"analytics": spec["services"]["analytics"]}
    return [spec]


def mutants(seed: int, count: int) -> list[Mutant]:
    rng = random.Random(seed)
    sources = [(p.name, list(yaml.safe_load_all(p.read_text()))) for p in EXAMPLES]
    sources.append(("slo.yaml, one service", _one_service(sources[0][1])))
    out = issue_inputs()
    while len(out) < count:
        name, docs = rng.choice(sources)
        docs = yaml.safe_load(yaml.safe_dump(docs))  # a deep copy
        at_bounds = rng.random() < 0.5  # half the specs change only values near the bounds: most stay valid
        how: list[str] = [name + (" at the bounds" if at_bounds else "")]
        for _ in range(rng.choice([1, 1, 2, 3])):
            _mutate(rng, docs, how, at_bounds)
        text = _nested(yaml.safe_dump_all(docs, sort_keys=False, width=1000))
        if not at_bounds and rng.random() < 0.15:
            text = _text_mutation(rng, text, how)
        out.append(Mutant(f"mutant-{len(out)}", text, how))
    return out


# --- running the commands -------------------------------------------------------------------


@dataclass
class Outcome:
    mutant: Mutant
    config: Path
    codes: dict[str, object]
    errors: dict[str, str]

    @property
    def accepted(self) -> bool:
        return all(code == 0 for code in self.codes.values())


def _run(capsys, argv: list[str]) -> tuple[object, str]:
    try:
        code = cli.main(argv)
    except BaseException:  # noqa: BLE001 - a traceback is the failure this test looks for
        code = "traceback:\n" + traceback.format_exc(limit=-4)
    return code, capsys.readouterr().err


def _outcome(capsys, work: Path, m: Mutant) -> Outcome:
    folder = work / m.name
    folder.mkdir()
    config = folder / "spec.yaml"
    config.write_text(m.text, encoding="utf-8", errors="surrogatepass")
    codes, errors = {}, {}
    for command, extra in (("validate", []), ("rules", ["--out", str(folder / "rules"), "--tests"]),
                           ("alertmanager", ["--out", str(folder / "alertmanager.yml")])):
        codes[command], errors[command] = _run(capsys, [command, "--config", str(config), *extra])
    return Outcome(m, config, codes, errors)


def _problems(o: Outcome) -> list[str]:
    """What is wrong with an outcome (before promtool and amtool)."""
    out = []
    if set(o.codes.values()) not in ({0}, {2}):
        out.append(f"exit codes {o.codes}")
    for command, err in o.errors.items():
        if o.codes[command] != 2:
            continue
        for line in err.splitlines():
            if line not in HEADERS and not line.startswith((f"{o.config}: ", f"mcp-slo rules: {o.config}: ")):
                out.append(f"{command}: a line that is not one problem of {o.config}: {line[:300]!r}")
    return out


def _describe(o: Outcome, problem: str) -> str:
    errors = "".join(f"\n  {c}: {e[:600]}" for c, e in o.errors.items() if e)
    return (f"{o.mutant.name} (seed {SEED}; {'; '.join(o.mutant.how)}): {problem}{errors}\n"
            f"  spec: {o.mutant.text[:400]!r}")


def _batch_failures(tool: list[str], files: list[Path]) -> list[tuple[Path, str]]:
    """Run `tool` on `files` at once; on failure, find the files that fail alone."""
    if not files:
        return []
    result = subprocess.run([*tool, *map(str, files)], capture_output=True, text=True, timeout=600)
    if result.returncode == 0:
        return []
    failed = []
    for f in files:
        one = subprocess.run([*tool, str(f)], capture_output=True, text=True, timeout=120)
        if one.returncode != 0:
            failed.append((f, (one.stdout + one.stderr)[-800:]))
    return failed or [(files[0], (result.stdout + result.stderr)[-800:])]


def _suite_size(o: Outcome) -> int:
    return sum(p.stat().st_size for p in (o.config.parent / "rules" / "tests").glob("*.yml"))


def _test_rules(o: Outcome, promtool: str) -> str | None:
    tests = o.config.parent / "rules" / "tests"
    files = sorted(p.name for p in tests.glob("*.yml"))
    result = subprocess.run([promtool, "test", "rules", *files], cwd=tests, capture_output=True, text=True,
                            timeout=600)
    return None if result.returncode == 0 else (result.stdout + result.stderr)[-1500:]


@pytest.mark.integration
def test_fuzzed_specs_give_checked_files_or_one_line_errors(tmp_path, capsys):
    promtool, amtool = binaries.require("promtool"), binaries.require("amtool")
    outcomes = [_outcome(capsys, tmp_path, m) for m in mutants(SEED, COUNT)]
    failures = [_describe(o, p) for o in outcomes for p in _problems(o)]

    accepted = [o for o in outcomes if o.accepted]
    by_file = {}
    for o in accepted:
        by_file[o.config.parent / "rules" / "mcp-slo.yml"] = o
        by_file[o.config.parent / "alertmanager.yml"] = o
    rule_files = [o.config.parent / "rules" / "mcp-slo.yml" for o in accepted]
    am_files = [o.config.parent / "alertmanager.yml" for o in accepted]
    for f, out in _batch_failures([promtool, "check", "rules"], rule_files):
        failures.append(_describe(by_file[f], f"promtool check rules: {out}"))
    for f, out in _batch_failures([amtool, "check-config"], am_files):
        failures.append(_describe(by_file[f], f"amtool check-config: {out}"))

    # the suites of the smallest accepted specs (the issue's inputs first), two at a time
    with_suites = [o for o in accepted if _suite_size(o)]  # a spec without objectives has none
    issue = [o for o in with_suites if o.mutant.name.startswith("issue-")]
    fuzzed = sorted((o for o in with_suites if o not in issue), key=_suite_size)
    chosen = issue + fuzzed[:SUITES_RUN]
    with ThreadPoolExecutor(2) as pool:
        for o, out in zip(chosen, pool.map(lambda o: _test_rules(o, promtool), chosen)):
            if out is not None:
                failures.append(_describe(o, f"promtool test rules: {out}"))

    refused = len(outcomes) - len(accepted)
    print(f"{len(outcomes)} specs (seed {SEED}): {len(accepted)} accepted, {refused} refused; "
          f"suites run for {len(chosen)}")
    assert not failures, f"{len(failures)} problems:\n" + "\n".join(failures[:10])
    assert len(accepted) >= len(outcomes) // 10, "the mutations should leave some specs valid"

"""The demo as it started before demo.recorded: the comparator of bench.bench_demo_start.

Then, the demo backfilled only the raw counters, and recorded the base-window SLI rates (and
their hourly averages, and the objectives) over the history with `promtool tsdb
create-blocks-from rules` against a temporary Prometheus on the history's blocks, before the
real Prometheus started; the live rules computed every other window from those. This module
keeps that code as it was in demo/stack.py, and runs `mcp-slo demo --no-rule-backfill` with
that recording done right after the raw history is loaded, as the old demo did:

    python -m bench.promtool_demo --history-days 30 --workdir DIR ...   # mcp-slo demo's options
"""

from __future__ import annotations

import argparse
import functools
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from alerts import rules
from collector.command import OK, CommandError
from demo import history
from demo import stack as demo_stack
from demo.processes import find_binary
from demo.prometheus import start_prometheus
from slo import importers

INTERVAL = "1m"  # the live rules' interval: the long windows average the recorded samples


def record_rules(config: demo_stack.StackConfig, past: history.History, prom_dir: Path,
                 say: Callable[[str], None]) -> None:
    """Record the base-window SLI rates over the history with `promtool tsdb
    create-blocks-from rules`, querying a temporary Prometheus on the history's blocks
    (no scraping, no rules); its blocks go into the data directory before the real
    Prometheus starts, which loads every block there at startup."""
    spec = importers.load(config.slo_spec or demo_stack.default_slo_spec()).spec
    work = config.workdir / "rule-backfill"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rule_file = work / "backfill.yml"
    rule_file.write_text(rules.render(rules.backfill_groups(spec, INTERVAL)))
    say("history: recording the SLI rates over it (promtool tsdb create-blocks-from rules)")
    began = time.monotonic()
    port = demo_stack.free_port()
    temporary = start_prometheus(work / "prometheus", port, [], config.scrape_interval, data_dir=prom_dir / "data")
    try:
        # Every rate lies within the history: the first hourly one needs an hour of samples
        # before it, the last ends where the live data begins. promtool works in 2h blocks and
        # gives up on a rule when its first block holds no evaluation of the rule's group:
        # start at a block's beginning.
        end = int(past.timestamps[-1])
        start = -(-(int(past.timestamps[0]) + 3600) // 7200) * 7200
        done = subprocess.run(
            [find_binary("promtool"), "tsdb", "create-blocks-from", "rules", f"--start={start}", f"--end={end}",
             f"--url=http://127.0.0.1:{port}", f"--output-dir={work / 'blocks'}", "--quiet", str(rule_file)],
            capture_output=True, text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"promtool could not backfill the rules:\n{done.stderr[-2000:]}")
    finally:
        temporary.stop()
    # promtool writes a 2h block per rule and 2h of time (thousands for 30 days, which
    # Prometheus would load and warn about as overlapping): join them into week-long blocks.
    rewrite_blocks(work / "blocks", work / "rules.om", prom_dir / "data")
    shutil.rmtree(work, ignore_errors=True)
    say(f"history: recorded rates loaded in {time.monotonic() - began:.0f}s")


_DUMPED = re.compile(r'^\{__name__="([^"]+)"(?:, )?(.*)\} (\S+) (-?\d+)$')


def rewrite_blocks(blocks: Path, openmetrics: Path, data_dir: Path) -> None:
    """`promtool tsdb dump` the blocks (series in label order, samples in time order) as
    OpenMetrics, then load that with history.backfill's week-long blocks."""
    (blocks / "wal").mkdir(exist_ok=True)  # dump opens the directory as a TSDB, which has a WAL
    with subprocess.Popen([find_binary("promtool"), "tsdb", "dump", str(blocks)], stdout=subprocess.PIPE,
                          text=True) as dump, open(openmetrics, "w") as out:
        for line in dump.stdout:
            m = _DUMPED.match(line.rstrip("\n"))
            if m is None:
                continue
            name, labels, value, ms = m.groups()
            labels = labels.replace('", ', '",')  # OpenMetrics: no space between labels
            out.write(f"{name}{{{labels}}} {value} {int(ms) / 1000:.3f}\n")
        out.write("# EOF\n")
    if dump.wait() != 0:
        raise RuntimeError(f"promtool tsdb dump {blocks} failed")
    history.backfill(openmetrics, data_dir)


def install() -> None:
    """Make the stack record the rules with promtool once the raw history is loaded, before
    Prometheus starts: wraps demo.stack's history step (`_backfill(config, ...) -> History`),
    which `_start` calls before starting Prometheus."""
    if not callable(getattr(demo_stack, "_backfill", None)):
        raise RuntimeError("demo.stack has no _backfill step any more: bench.promtool_demo needs updating")
    draw_history = demo_stack._backfill

    def history_then_rules(config: demo_stack.StackConfig, *args, **kwargs) -> history.History:
        past = draw_history(config, *args, **kwargs)
        record_rules(config, past, config.workdir / "prometheus", functools.partial(print, flush=True))
        return past

    demo_stack._backfill = history_then_rules


def main(argv: Sequence[str] | None = None) -> int:
    """`mcp-slo demo ARGS` started the old way, as `mcp-slo` runs its demo command (this layer
    may not import mcp_slo itself)."""
    from demo import demo_cli

    parser = argparse.ArgumentParser(prog="python -m bench.promtool_demo",
                                     description="mcp-slo demo, recording the rules with promtool")
    demo_cli.add_arguments(parser)
    args = parser.parse_args(["--no-rule-backfill", *(sys.argv[1:] if argv is None else argv)])
    install()
    try:
        return int(demo_cli.run(args) or OK)
    except CommandError as exc:
        print(f"mcp-slo demo: {exc.message}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())

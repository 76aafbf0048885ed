"""The demo stack backfills the recorded series over its history (demo.recorded): the live
rules' 30-day window covers the 30 days of history from the start, not only the time since
Prometheus started, and joins the backfilled hourly samples without a seam. The recorded 30-day error ratio (from the hourly averages of the 5m rates, and
the time since the last of them at the current rate) matches the exact ratio of the raw
counters' increases within 0.1%, the goal of the rules' design."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from demo.stack import Stack, StackConfig, start_stack
from tests import binaries

pytestmark = pytest.mark.integration

FILESYSTEM = 'service="filesystem",method="tools/call"'
EXACT_30D = (f'sum(increase(mcp_operations_total{{{FILESYSTEM},status=~"error|timeout"}}[30d])) / '
             f'sum(increase(mcp_operations_total{{{FILESYSTEM},status!="cancelled"}}[30d]))')
RECORDED_30D = 'mcp_slo:error_ratio:rate30d{service="filesystem",slo="availability",tool=""}'


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    for binary in ("prometheus", "promtool", "prometheus-alertmanager"):
        binaries.require(binary)
    for noisy in ("httpx", "mcp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    config = StackConfig(workdir=tmp_path_factory.mktemp("backfill"), scenario="regression", rate=20.0,
                         # 31 days: the 30d window wholly inside the history
                         history_days=31, scrape_interval="1s", seed=3, backfill_rules=True)
    began = time.monotonic()
    s = start_stack(config, say=print)
    print(f"stack with rule backfill started in {time.monotonic() - began:.0f}s")
    try:
        s.start_load()
        yield s
    finally:
        s.close()


def value(result: list[dict]) -> float:
    (sample,) = result
    return float(sample["value"][1])


def test_the_30d_error_ratio_covers_the_backfilled_history(stack):
    url = stack.prometheus_url
    # The backfilled base-window rates reach back 30 days before any live evaluation.
    oldest = binaries.query(url, 'min_over_time(timestamp(mcp_slo:sli_total:rate5m{service="filesystem",'
                                 'slo="availability",tool=""})[30d:1h])')
    assert time.time() - value(oldest) > 29 * 86400
    recorded = value(binaries.wait_for_promql(url, RECORDED_30D, timeout=120))
    exact = value(binaries.query(url, EXACT_30D))
    assert exact > 0
    print(f"30d error ratio: recorded {recorded:.6g}, exact {exact:.6g}, relative error {abs(recorded - exact) / exact:.3%}")
    assert abs(recorded - exact) / exact < 0.001, (recorded, exact)

"""The `tool` label is bounded in length as well as in number: a peer choosing
tool names must not be able to make /metrics huge."""

from __future__ import annotations

import json

import pytest
from prometheus_client import CollectorRegistry

from collector import names
from collector.metrics import Recorder, ToolNames
from tests.proxy_support import PYTHON, SERVERS, RawStdio, metrics_text, proxy_command
from tests.support import free_port, operations, registry_text, wait_until

LONG = "t" * (names.MAX_TOOL_NAME_LENGTH + 1)
LONGEST = "t" * names.MAX_TOOL_NAME_LENGTH


def test_a_tool_name_over_the_cap_is_other_whatever_proves_it():
    tools = ToolNames(limit=10, known=[LONG, LONGEST], lookup=lambda name: True)
    assert tools.label(LONGEST) == LONGEST  # at the cap: kept
    assert tools.label(LONG) == names.OTHER_TOOL  # registered, but too long
    assert tools.label(LONG, confirmed=True) == names.OTHER_TOOL  # a successful call does not admit it either
    tools.learn_from_list_result({"tools": [{"name": "x" * 100_000}]})
    assert tools.label("x" * 100_000, confirmed=True) == names.OTHER_TOOL
    assert LONG not in tools and "x" * 100_000 not in tools


def test_the_cap_counts_characters_not_bytes():
    accented = "é" * names.MAX_TOOL_NAME_LENGTH  # 2 bytes each in UTF-8, still within the cap
    assert ToolNames().label(accented, confirmed=True) == accented


def test_long_names_do_not_take_a_slot_of_the_tool_limit():
    tools = ToolNames(limit=2)
    for i in range(50):
        assert tools.label(f"{i}" + LONG, confirmed=True) == names.OTHER_TOOL
    assert tools.label("real", confirmed=True) == "real"


def test_the_recorder_never_exposes_a_long_tool_label():
    registry = CollectorRegistry()
    rec = Recorder("svc", "v1", registry=registry, tool_lookup=lambda name: True)
    for i in range(150):
        name = f"{i:03d}" + "n" * 100_000
        rec.end("tools/call", rec.tool_label("tools/call", name, succeeded=True), names.SUCCESS, rec.begin())
    text = registry_text(registry)
    assert operations(text, service="svc") == {("tools/call", names.OTHER_TOOL, names.SUCCESS): 150}
    assert len(text) < 20_000


@pytest.mark.integration
def test_proxy_metrics_stay_small_with_a_server_that_accepts_any_tool_name(tmp_path):
    """The scripted server answers every call with a result, so every name 'succeeds'."""
    port = free_port()
    server = [PYTHON, str(SERVERS / "scripted_stdio.py"), str(tmp_path / "server.log")]
    with RawStdio([*proxy_command("anyname", port), "--", *server]) as proxy:
        for i in range(150):
            name = f"{i:03d}" + "n" * 100_000
            proxy.send_line(json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                                        "params": {"name": name, "arguments": {}}}).encode() + b"\n")
            assert proxy.recv(timeout=30)["id"] == i
        short = "short_tool"
        proxy.request(999, "tools/call", {"name": short, "arguments": {}})
        assert proxy.recv()["id"] == 999

        def counted() -> dict:
            return operations(metrics_text(port), service="anyname")

        want = {("tools/call", names.OTHER_TOOL, "success"): 150.0, ("tools/call", short, "success"): 1.0}
        wait_until(lambda: counted() == want, what="151 calls counted")
        text = metrics_text(port)
        assert len(text.encode()) < 50_000, f"/metrics is {len(text.encode())} bytes"

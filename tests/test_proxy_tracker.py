"""The proxy's JSON-RPC accounting, message by message, with a fake clock."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from collector.metrics import Recorder
from collector.proxy.tracker import MAX_ABANDONED, Tracker
from tests.support import operations, registry_text, samples


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup():
    registry = CollectorRegistry()
    clock = Clock()
    tracker = Tracker(Recorder("svc", "v1", registry=registry), request_timeout=10, clock=clock)

    def counts() -> dict:
        return operations(registry_text(registry), service="svc")

    def active() -> float:
        return samples(registry_text(registry), "mcp_operations_active")[(("service", "svc"), ("version", "v1"))]

    return tracker, clock, counts, active


def request(request_id, method, params=None) -> dict:
    msg = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def result(request_id, value=None) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "result": {} if value is None else value}


def error(request_id, code) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": "no"}}


def cancelled(request_id, reason=None) -> dict:
    params = {"requestId": request_id}
    if reason is not None:
        params["reason"] = reason
    return {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": params}


def call(request_id, tool, **extra) -> dict:
    return request(request_id, "tools/call", {"name": tool, "arguments": {}, **extra})


def test_results_and_errors_are_counted_once(setup):
    tracker, clock, counts, active = setup
    assert tracker.from_client(request(1, "ping")) == [(None, 1)]
    assert active() == 1
    assert tracker.from_server(result(1))
    assert tracker.from_client(request(2, "resources/read", {"uri": "x"})) == [(None, 2)]
    assert tracker.from_server(error(2, -32602))
    tracker.from_client(request(3, "prompts/get"))
    tracker.from_server(error(3, -32001))  # the server's own "Request timed out"
    tracker.from_client(request(4, "vendor/custom"))
    tracker.from_server(result(4))
    assert tracker.from_server(result(1))  # a duplicate answer: forwarded, not counted
    assert counts() == {("ping", "", "success"): 1, ("resources/read", "", "error"): 1,
                        ("prompts/get", "", "timeout"): 1, ("other", "", "success"): 1}
    assert active() == 0


def test_tool_labels_are_bounded_like_in_process(setup):
    tracker, clock, counts, active = setup
    tracker.from_client(call(1, "listed"))
    tracker.from_server(result(1, {"content": [], "isError": True}))  # not listed yet, failed: _other
    tracker.from_client(request(2, "tools/list"))
    tracker.from_server(result(2, {"tools": [{"name": "listed", "inputSchema": {}}]}))
    tracker.from_client(call(3, "listed"))
    tracker.from_server(result(3, {"content": [], "isError": True}))
    tracker.from_client(call(4, "unlisted"))
    tracker.from_server(result(4, {"content": []}))  # success confirms the tool
    tracker.from_client(call(5, "made-up"))
    tracker.from_server(error(5, -32602))
    tracker.from_client(call(6, {"not": "a name"}))
    tracker.from_server(result(6, {"content": []}))
    assert counts() == {
        ("tools/call", "_other", "error"): 2,
        ("tools/list", "", "success"): 1,
        ("tools/call", "listed", "error"): 1,
        ("tools/call", "unlisted", "success"): 1,
        ("tools/call", "_other", "success"): 1,
    }


def test_ids_are_scoped_and_typed(setup):
    tracker, clock, counts, active = setup
    tracker.from_client(request(1, "ping"), scope="a")
    tracker.from_client(request(1, "tools/list"), scope="b")
    tracker.from_client(request("1", "prompts/list"), scope="a")
    tracker.from_server(result(1), scope="b")
    assert counts() == {("tools/list", "", "success"): 1}
    tracker.from_server(result("1"), scope="a")
    tracker.from_server(result(1), scope="a")
    assert counts() == {("tools/list", "", "success"): 1, ("prompts/list", "", "success"): 1,
                        ("ping", "", "success"): 1}


def test_notifications_and_server_requests_are_never_counted(setup):
    tracker, clock, counts, active = setup
    assert tracker.from_client({"jsonrpc": "2.0", "method": "notifications/initialized"}) == []
    # a request from the server, and the client's answer to it
    assert tracker.from_server(request("s1", "sampling/createMessage"))
    assert tracker.from_client(result("s1")) == []
    assert tracker.from_server({"jsonrpc": "2.0", "method": "notifications/message", "params": {}})
    # not JSON-RPC at all, or a request with an id MCP forbids
    assert tracker.from_client(42) == [] and tracker.from_client("x") == []
    assert tracker.from_client({"jsonrpc": "2.0", "id": None, "method": "ping"}) == []
    assert tracker.from_client({"jsonrpc": "2.0", "id": True, "method": "ping"}) == []
    assert tracker.from_server({"jsonrpc": "2.0", "id": None, "error": {"code": -32700}})
    assert counts() == {} and active() == 0


def test_batches_count_every_request(setup):
    tracker, clock, counts, active = setup
    opened = tracker.from_client([request(1, "ping"), {"jsonrpc": "2.0", "method": "notifications/x"},
                                  request(2, "tools/list"), "junk"])
    assert opened == [(None, 1), (None, 2)]
    assert tracker.from_server([result(2, {"tools": []}), error(1, -32603)])
    assert counts() == {("ping", "", "error"): 1, ("tools/list", "", "success"): 1}


def test_cancellation_counts_at_once_and_the_late_answer_passes_uncounted(setup):
    tracker, clock, counts, active = setup
    tracker.from_client(call(1, "slow"))
    tracker.from_client(cancelled(1, "user pressed stop"))
    assert counts() == {("tools/call", "_other", "cancelled"): 1} and active() == 0
    assert tracker.from_server(result(1, {"content": []}))  # still forwarded
    tracker.from_client(call(2, "slow"))
    tracker.from_client(cancelled(2, "timed out after 0.2s"))  # the client's own deadline
    tracker.from_client(call(3, "slow"))
    tracker.from_client(cancelled(3))
    tracker.from_client(cancelled(99, "unknown id"))
    tracker.from_client(call(4, "slow"), scope="other")
    tracker.from_client(cancelled(4), scope="elsewhere")  # not the same connection
    assert counts() == {("tools/call", "_other", "cancelled"): 2, ("tools/call", "_other", "timeout"): 1}
    assert tracker.pending_count() == 1


def test_requests_time_out_at_their_deadline_and_late_answers_are_dropped(setup):
    tracker, clock, counts, active = setup
    tracker.from_client(request(1, "ping"))
    clock.now += 4
    tracker.from_client(request(2, "ping"))
    assert tracker.next_deadline() == 1010
    clock.now = 1009.9
    assert tracker.expire() == []
    clock.now = 1010
    assert tracker.expire() == [(None, 1)]
    assert tracker.next_deadline() == 1014
    assert counts() == {("ping", "", "timeout"): 1} and active() == 1
    assert tracker.from_server(result(1)) is False  # the proxy already answered it
    assert tracker.from_server(result(1)) is True  # dropped once only
    assert tracker.from_server([result(2)]) is True
    assert counts() == {("ping", "", "timeout"): 1, ("ping", "", "success"): 1}
    assert tracker.next_deadline() is None


def test_progress_restarts_the_clock_and_long_lived_requests_never_expire(setup):
    tracker, clock, counts, active = setup
    tracker.from_client(call(1, "build", _meta={"progressToken": "tok"}))
    tracker.from_client(request(2, "subscriptions/listen", {"filter": {}}))
    tracker.from_client(request(3, "ping"))
    clock.now += 8
    tracker.from_server({"jsonrpc": "2.0", "method": "notifications/progress",
                         "params": {"progressToken": "tok", "progress": 1}})
    assert tracker.next_deadline() == 1010  # ping's, now first
    clock.now += 5
    assert tracker.expire() == [(None, 3)]
    assert tracker.deadline_of([(None, 1), (None, 2)]) == 1018
    assert tracker.deadline_of([(None, 2)]) == float("inf")
    clock.now += 1000
    assert tracker.expire() == [(None, 1)]
    assert tracker.is_pending((None, 2)) and tracker.next_deadline() is None


def test_expire_leaves_alone_what_it_is_told_to(setup):
    tracker, clock, counts, active = setup
    tracker.from_client(request(1, "ping"))
    tracker.from_client(request(2, "ping"))
    clock.now += 20
    assert tracker.expire(skip={(None, 1)}) == [(None, 2)]
    assert tracker.time_out([(None, 1), (None, 2)]) == [(None, 1)]


def test_failing_closes_everything_pending_once(setup):
    tracker, clock, counts, active = setup
    tracker.from_client(request(1, "ping"))
    tracker.from_client(request(2, "tools/list"), scope="s")
    tracker.from_client(request(3, "ping"))
    tracker.from_server(result(3))
    assert set(tracker.fail()) == {(None, 1), ("s", 2)}
    assert tracker.fail() == []
    tracker.from_client(request(4, "ping"))
    assert tracker.fail([(None, 4)], code=-32001) == [(None, 4)]  # an error that named no id
    assert counts() == {("ping", "", "error"): 1, ("tools/list", "", "error"): 1,
                        ("ping", "", "success"): 1, ("ping", "", "timeout"): 1}
    assert active() == 0


def test_a_reused_id_supersedes_the_pending_request(setup):
    tracker, clock, counts, active = setup
    tracker.from_client(request(1, "ping"))
    tracker.from_client(request(1, "tools/list"))
    tracker.from_server(result(1, {"tools": []}))
    assert counts() == {("ping", "", "cancelled"): 1, ("tools/list", "", "success"): 1}
    assert active() == 0


def test_cancel_for_disconnects(setup):
    tracker, clock, counts, active = setup
    tracker.from_client(request(1, "ping"), scope="post-1")
    tracker.from_server(result(1), scope="post-1")
    tracker.from_client(request(2, "ping"), scope="post-2")
    assert tracker.cancel([("post-1", 1), ("post-2", 2)]) == [("post-2", 2)]
    assert counts() == {("ping", "", "success"): 1, ("ping", "", "cancelled"): 1}


def test_the_memory_of_abandoned_requests_is_bounded(setup):
    tracker, clock, counts, active = setup
    for i in range(MAX_ABANDONED + 5):
        tracker.from_client(request(i, "ping"))
    clock.now += 11
    assert len(tracker.expire()) == MAX_ABANDONED + 5
    assert tracker.from_server(result(0)) is True  # forgotten: forwarded
    assert tracker.from_server(result(MAX_ABANDONED + 4)) is False


def test_the_timeout_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        Tracker(Recorder("x", "v", registry=CollectorRegistry()), request_timeout=0)


def test_ten_thousand_hostile_tool_names_keep_series_bounded(setup):
    """Unknown names (failing) stay _other; a server that 'succeeds' for any
    name fills at most the cap; quotes, newlines and braces are just values."""
    tracker, clock, counts, active = setup
    hostile = ['x"} or vector(1) #', "a\nb", "{{braces}}", "\\", ""]
    for i in range(10_000):
        name = f"{hostile[i % len(hostile)]}-{i}"
        tracker.from_client(call(i, name))
        tracker.from_server(result(i, {"content": [], "isError": i % 2 == 0}))
    got = counts()
    tools = {tool for (_method, tool, _status) in got}
    assert len(tools) <= tracker.recorder.tools.limit + 1 and "_other" in tools
    assert sum(got.values()) == 10_000 and active() == 0
    # the exposition escapes them: parsed back, each is exactly the name sent
    assert 'x"} or vector(1) #-5' in tools and "a\nb-1" in tools

"""How one MCP request's outcome maps to the `status` label (collector/classify.py), for
every kind of outcome the proxy's tracker and the in-process middleware report."""

from __future__ import annotations

import asyncio
import socket

import mcp_types
import pytest
from mcp.shared.exceptions import MCPError

from collector import classify, names
from collector.names import CANCELLED, ERROR, SUCCESS, TIMEOUT


def test_request_timeout_is_the_sdks_code():
    assert classify.REQUEST_TIMEOUT == mcp_types.REQUEST_TIMEOUT == -32001


# --- a result ------------------------------------------------------------------------------


@pytest.mark.parametrize("result", [
    {"content": [{"type": "text", "text": "ok"}]},
    {"content": [], "isError": False},
    {},
    {"isError": "true"},  # only the JSON boolean true marks a failed tool call
    {"isError": 1},
    None,  # not an object: nothing says it failed
    [],
    "text",
])
def test_a_tool_result_succeeds_unless_is_error_is_true(result):
    assert classify.result_status("tools/call", result) == SUCCESS


def test_a_tool_result_with_is_error_true_is_an_error():
    failed = {"content": [{"type": "text", "text": "no such file"}], "isError": True}
    assert classify.result_status("tools/call", failed) == ERROR


@pytest.mark.parametrize("method", ["tools/list", "resources/read", "prompts/get", "initialize", "ping"])
def test_is_error_counts_only_for_tool_calls(method):
    assert classify.result_status(method, {"isError": True}) == SUCCESS


# --- a JSON-RPC error response -------------------------------------------------------------


def test_the_request_timeout_error_is_a_timeout():
    assert classify.error_status(-32001) == TIMEOUT
    assert classify.error_status(-32001.0) == TIMEOUT  # the same number, as a JSON parser may give it


@pytest.mark.parametrize("code", [-32700, -32600, -32601, -32602, -32603, -32002, 0, 1, 404])
def test_every_other_error_code_is_an_error(code):
    assert classify.error_status(code) == ERROR


@pytest.mark.parametrize("code", [None, "-32001", "timeout", [], {"code": -32001}, True])
def test_a_missing_or_malformed_code_is_an_error(code):
    assert classify.error_status(code) == ERROR


# --- a cancellation by the client ----------------------------------------------------------


@pytest.mark.parametrize("reason", [
    "timed out after 0.2s",  # the Python SDK's courtesy cancel
    "Request timed out",  # the TypeScript SDK's
    "timeout",
    "Timeout exceeded",
    "request time-out",
    "time out",
    "TIMED OUT",
    "it times out",
    "deadline exceeded",
    "DEADLINE_EXCEEDED",  # gRPC's wording
])
def test_a_cancellation_the_client_made_because_it_ran_out_of_time_is_a_timeout(reason):
    assert classify.cancel_status(reason) == TIMEOUT


@pytest.mark.parametrize("reason", [
    "user cancelled",
    "Cancelled by user",
    "aborted",
    "",
    "the user ran out of patience",
    "timer reset",
])
def test_any_other_cancellation_is_cancelled(reason):
    assert classify.cancel_status(reason) == CANCELLED


@pytest.mark.parametrize("reason", [None, 42, ["timed out"], {"reason": "timeout"}, b"timed out"])
def test_a_cancellation_without_a_text_reason_is_cancelled(reason):
    assert classify.cancel_status(reason) == CANCELLED


# --- an exception in the handler -----------------------------------------------------------


@pytest.mark.parametrize("exc", [TimeoutError(), asyncio.TimeoutError(), socket.timeout("read")])
def test_a_timeout_exception_is_a_timeout(exc):
    assert classify.exception_status(exc) == TIMEOUT


def test_an_mcp_error_is_classified_by_its_code():
    assert classify.exception_status(MCPError(mcp_types.REQUEST_TIMEOUT, "Request 'tools/call' timed out")) == TIMEOUT
    assert classify.exception_status(MCPError(mcp_types.INTERNAL_ERROR, "boom")) == ERROR
    assert classify.exception_status(MCPError(mcp_types.INVALID_PARAMS, "bad")) == ERROR


class _Carrier(Exception):
    """Any exception carrying a JSON-RPC error as `.error`, as the SDKs' errors do."""

    def __init__(self, error: object):
        super().__init__("failed")
        self.error = error


class _Error:
    def __init__(self, code: object):
        self.code = code


def test_any_exception_carrying_an_error_code_is_classified_by_it():
    assert classify.exception_status(_Carrier(_Error(-32001))) == TIMEOUT
    assert classify.exception_status(_Carrier(_Error(-32603))) == ERROR


@pytest.mark.parametrize("exc", [
    ValueError("bad input"),
    RuntimeError(),
    KeyError("x"),
    _Carrier(None),  # .error without a code
    _Carrier("timed out"),  # a message is not a code
    _Carrier(_Error(None)),
    KeyboardInterrupt(),
])
def test_any_other_exception_is_an_error(exc):
    assert classify.exception_status(exc) == ERROR


def test_every_outcome_is_one_of_the_four_statuses():
    outcomes = {
        classify.result_status("tools/call", {}), classify.result_status("tools/call", {"isError": True}),
        classify.error_status(-32001), classify.error_status(-32603),
        classify.cancel_status("timed out"), classify.cancel_status("user"),
        classify.exception_status(TimeoutError()), classify.exception_status(ValueError()),
    }
    assert outcomes == set(names.STATUSES)

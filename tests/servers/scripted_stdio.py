"""A raw line-delimited JSON-RPC server for the proxy's edge cases (no MCP SDK).

    python scripted_stdio.py LOG_FILE

Every request gets a result `{"echo": <the exact line received>}` written with
unusual but valid JSON formatting (spaces, non-ASCII kept), so tests can check
that bytes pass through the proxy unchanged in both directions. Methods that
behave differently:

- "crash": exit at once with code params.code (default 3), answering nothing;
- "hang": never answered;
- "slow": answered after params.seconds;
- "progress": params.count progress notifications, params.every seconds apart,
  then the answer;
- "ask": first sends the client a request (id "srv-1", sampling/createMessage),
  then answers with the client's answer to it;
- "batch-me": answered in a batch array together with a result for id "extra".

A line that is not JSON gets the spec's parse error (-32700, id null).
Notifications are not answered. Each line sent is recorded in LOG_FILE as
"sent <id>", so tests can wait for a late answer without sleeping.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

log_path = sys.argv[1]
out_lock = threading.Lock()
pending_ask: dict[str, object] = {}


def record(text: str) -> None:
    with open(log_path, "a") as f:
        f.write(text + "\n")


def send(message: object, request_id: object = None) -> None:
    line = json.dumps(message, ensure_ascii=False, separators=(", ", ":  ")) + "\n"
    with out_lock:
        sys.stdout.buffer.write(line.encode())
        sys.stdout.buffer.flush()
    record(f"sent {json.dumps(request_id)}")


def answer(request_id: object, line: bytes) -> None:
    send({"jsonrpc": "2.0", "id": request_id, "result": {"echo": line.decode(), "note": "héllo ✓"}}, request_id)


def report_progress(request_id: object, line: bytes, params: dict) -> None:
    for i in range(params["count"]):
        time.sleep(params["every"])
        send({"jsonrpc": "2.0", "method": "notifications/progress",
              "params": {"progressToken": params["_meta"]["progressToken"], "progress": i + 1}})
    answer(request_id, line)


def handle(msg: object, line: bytes) -> None:
    if isinstance(msg, list):  # a batch (2025-03-26)
        for item in msg:
            handle(item, line)
        return
    if not isinstance(msg, dict):
        return
    method, request_id, params = msg.get("method"), msg.get("id"), msg.get("params") or {}
    if method is None:  # the client's answer to our request
        if request_id in pending_ask:
            original = pending_ask.pop(request_id)
            send({"jsonrpc": "2.0", "id": original, "result": {"client said": msg.get("result")}}, original)
        return
    if request_id is None:
        return  # a notification
    if method == "crash":
        os._exit(params.get("code", 3))
    elif method == "hang":
        return
    elif method == "slow":
        threading.Timer(params["seconds"], answer, (request_id, line)).start()
    elif method == "progress":
        threading.Thread(target=report_progress, args=(request_id, line, params)).start()
    elif method == "ask":
        pending_ask["srv-1"] = request_id
        send({"jsonrpc": "2.0", "id": "srv-1", "method": "sampling/createMessage", "params": {"maxTokens": 5}})
    elif method == "batch-me":
        send([{"jsonrpc": "2.0", "id": request_id, "result": {}},
              {"jsonrpc": "2.0", "id": "extra", "result": {}}], request_id)
    else:
        answer(request_id, line)


def main() -> None:
    print("scripted server ready", file=sys.stderr, flush=True)
    for line in sys.stdin.buffer:
        try:
            msg = json.loads(line)
        except ValueError:
            send({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}})
            continue
        handle(msg, line)


if __name__ == "__main__":
    main()

"""A client session that exercises every outcome, and the counts it must produce.

Used against in-process servers and stdio subprocesses, for the official SDK and
FastMCP alike: the servers expose echo, refuse (a tool error), crash (an
exception), slow, the resource note://readme and the prompt greet.
"""

from __future__ import annotations

from collections import Counter

import anyio
from mcp import Client


async def cancel_call(client: Client, name: str, after: float = 0.2) -> None:
    """Start a call and cancel it explicitly (a user cancel, not a deadline)."""
    async with anyio.create_task_group() as tg:

        async def call() -> None:
            await client.call_tool(name, {})

        tg.start_soon(call)
        await anyio.sleep(after)
        tg.cancel_scope.cancel()


async def exercise(client: Client) -> Counter:
    """Run the session; returns the expected {(method, tool, status): count}
    beyond the opening handshake."""
    expected: Counter = Counter()

    await client.list_tools()
    expected["tools/list", "", "success"] += 1

    for text in ("a", "b", "c"):
        result = await client.call_tool("echo", {"text": text})
        assert not result.is_error and result.content[0].text == text
    expected["tools/call", "echo", "success"] += 3

    assert (await client.call_tool("refuse", {})).is_error
    expected["tools/call", "refuse", "error"] += 1
    assert (await client.call_tool("crash", {})).is_error
    expected["tools/call", "crash", "error"] += 1
    assert (await client.call_tool("no_such_tool", {})).is_error
    expected["tools/call", "_other", "error"] += 1

    try:
        await client.call_tool("slow", {}, read_timeout_seconds=0.2)
    except Exception as exc:  # the client's own timeout
        assert "time" in str(exc).lower(), exc
    else:
        raise AssertionError("slow did not time out")
    expected["tools/call", "slow", "timeout"] += 1

    await cancel_call(client, "slow")
    expected["tools/call", "slow", "cancelled"] += 1

    await client.list_resources()
    expected["resources/list", "", "success"] += 1
    assert (await client.read_resource("note://readme")).contents[0].text == "hello"
    expected["resources/read", "", "success"] += 1
    try:
        await client.read_resource("note://missing")
    except Exception:
        pass
    expected["resources/read", "", "error"] += 1

    await client.list_prompts()
    expected["prompts/list", "", "success"] += 1
    await client.get_prompt("greet", {"name": "Ada"})
    expected["prompts/get", "", "success"] += 1
    return expected


def handshake(client: Client) -> tuple[str, str, str]:
    method = "initialize" if client.protocol_version < "2026" else "server/discover"
    return (method, "", "success")

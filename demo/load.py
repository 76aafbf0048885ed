"""Load generator: drives the demo services with the official MCP client at a
steady rate, a mix of tools, and a traffic split between versions by weight. Each call
carries a W3C trace context in params._meta, as a traced client sends it, so the exporter
can attach its trace id to the duration bucket (an exemplar) and the latency charts mark it."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack

import anyio
from mcp import Client
from mcp.server.mcpserver import MCPServer


def traceparent(rng: random.Random) -> str:
    """A W3C `traceparent` of a new sampled trace: version 00, random trace and span ids
    (never all zeros, which the spec makes invalid), flags 01."""
    trace_id = rng.getrandbits(128) or 1
    span_id = rng.getrandbits(64) or 1
    return f"00-{trace_id:032x}-{span_id:016x}-01"


async def drive(
    versions: Mapping[str, tuple[MCPServer, float]],
    tool_mix: Mapping[str, float],
    rate: float,
    stop: anyio.Event,
    rng: random.Random | None = None,
    max_in_flight: int = 64,
) -> int:
    """Call tools on `versions` ({version: (server, weight)}) at `rate` calls per
    second until `stop` is set; returns the number of calls started.

    Calls are paced on a fixed schedule (not one after another) so slow calls do
    not lower the rate; at most `max_in_flight` run at once, so memory stays bounded.
    """
    rng = rng or random.Random()
    names = list(versions)
    weights = [versions[v][1] for v in names]
    tools = list(tool_mix)
    tool_weights = [tool_mix[t] for t in tools]
    limiter = anyio.Semaphore(max_in_flight)
    started = 0
    ids = random.Random()  # its own: drawing ids from `rng` would change a seeded run's calls

    async def call(client: Client, tool: str) -> None:
        try:
            await client.call_tool(tool, {"query": "demo"}, meta={"traceparent": traceparent(ids)})
        except Exception:
            pass  # the server has counted it; the load goes on
        finally:
            limiter.release()

    async with AsyncExitStack() as stack:
        clients = {name: await stack.enter_async_context(Client(versions[name][0])) for name in names}
        async with anyio.create_task_group() as tg:
            next_at = time.monotonic()
            while not stop.is_set():
                next_at += 1.0 / rate
                with anyio.move_on_after(max(0.0, next_at - time.monotonic())):
                    await stop.wait()
                if stop.is_set():
                    break
                await limiter.acquire()
                version = rng.choices(names, weights)[0]
                tg.start_soon(call, clients[version], rng.choices(tools, tool_weights)[0])
                started += 1
            tg.cancel_scope.cancel()
    return started

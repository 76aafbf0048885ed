"""instrument(server, audit=...) on an MCPServer served over streamable HTTP behind the SDK's
own bearer-token authentication: each record names the principal the SDK authenticated (client
id, subject, scopes, claims), the Mcp-Session-Id of the client's session, and its IP."""

from __future__ import annotations

from collections import Counter

import anyio
import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.types import Implementation
from prometheus_client import CollectorRegistry

from collector import instrument
from tests.servers import mcpserver_app
from tests.support import free_port, operations, registry_text
from tests.test_audit_inprocess import records

pytestmark = pytest.mark.integration

CLIENTS, CALLS = 12, 5


class Tokens:
    """The SDK's TokenVerifier: "tok-N" is user-N's token, issued to app-N; anything else is refused."""

    async def verify_token(self, token: str) -> AccessToken | None:
        if not token.startswith("tok-"):
            return None
        n = token.removeprefix("tok-")
        return AccessToken(token=token, client_id=f"app-{n}", scopes=["files:read"], subject=f"user-{n}",
                           claims={"iss": "https://idp.example", "email": f"user{n}@example.com"})


def test_records_name_the_authenticated_principal_the_session_and_the_client_ip(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    path = tmp_path / "audit.jsonl"
    registry = CollectorRegistry()
    auth = AuthSettings(issuer_url="https://idp.example", resource_server_url=url, validate_token_resource=False)
    server = instrument(mcpserver_app.build(auth=auth, token_verifier=Tokens()), service="files", version="v3",
                        registry=registry, audit={"path": str(path)})
    audit = server.middleware[0].audit
    web = uvicorn.Server(uvicorn.Config(server.streamable_http_app(), host="127.0.0.1", port=port,
                                        log_level="warning"))
    sessions: dict[int, set] = {}

    async def one(n: int) -> None:
        seen: set = set()

        async def keep_session(response: httpx2.Response) -> None:
            seen.add(response.headers.get("mcp-session-id"))

        http = httpx2.AsyncClient(headers={"authorization": f"Bearer tok-{n}"}, timeout=30,
                                  event_hooks={"response": [keep_session]})
        async with http, Client(streamable_http_client(url, http_client=http), mode="legacy" if n % 2 == 0
                                else "auto", client_info=Implementation(name=f"ide-{n}", version="1")) as client:
            for i in range(CALLS):
                await client.call_tool("echo", {"text": f"{n}-{i}"})
            await client.call_tool("refuse", {})
        sessions[n] = seen - {None}

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(web.serve)
            while not web.started:
                await anyio.sleep(0.01)
            async with anyio.create_task_group() as clients:
                for n in range(CLIENTS):
                    clients.start_soon(one, n)
            web.should_exit = True

    anyio.run(main)
    assert audit.writer.flush(timeout=30)
    found = records(path)
    assert Counter((r["method"], r["tool"] or "", r["status"]) for r in found) == \
        operations(registry_text(registry), service="files")
    for n in range(CLIENTS):
        mine = [r for r in found if r["tool"] and r["client"] and r["client"]["name"] == f"ide-{n}"]
        assert len(mine) == CALLS + 1
        assert {(r["identity"]["verified"], r["identity"]["client_id"], r["identity"]["subject"],
                 r["identity"]["user"], r["identity"]["email"], tuple(r["identity"]["scopes"]))
                for r in mine} == {(True, f"app-{n}", f"user-{n}", f"user-{n}", f"user{n}@example.com",
                                    ("files:read",))}
        assert {r["client_ip"] for r in mine} == {"127.0.0.1"}
        if n % 2 == 0:  # a handshake-era session: the Mcp-Session-Id the server gave it
            assert len(sessions[n]) == 1 and {r["session_id"] for r in mine} == sessions[n]
        else:  # 2026-07-28 over HTTP: stateless, no session to name
            assert {r["session_id"] for r in mine} == {None}
    assert all("tok-" not in line for line in path.read_text().splitlines())  # never the token
    audit.writer.close()

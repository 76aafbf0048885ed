"""The dashboard's Audit page: reading a real, rotated trail (written by AuditWriter to the
JSON Lines sink) with damaged and oversized lines, the filters and their URL keys, the chain's
verdict at the top (intact or broken), the roles (users file, OpenID Connect claims), and the
access control, checked on the server: a non-auditor who posts the page's callback by hand
gets nothing."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import dash
import flask
import pytest
from prometheus_client import CollectorRegistry

from collector.audit.chain import Chain, verify
from collector.audit.config import format_time
from collector.audit.reading import (
    Filters,
    Skipped,
    last_record,
    matches,
    read_file,
    records,
)
from collector.audit.sinks import JsonlFileSink
from collector.audit.writer import AuditWriter
from dashboard import audit_data
from dashboard.app import app_from_env, create_app
from dashboard.audit_data import (
    Trail,
    Verifier,
    check_trail,
    filters_from_query,
    query_updates,
    search,
)
from dashboard.auth import (
    AUDITOR,
    AuthConfig,
    AuthError,
    claim_roles,
    current_roles,
    hash_password,
    read_accounts,
    read_users,
)
from dashboard.pages import audit as page
from dashboard.url_state import merge_search
from tests.test_dashboard_auth import identity_provider  # noqa: F401 - a fixture
from tests.test_dashboard_overview import FakeSource, texts

NOW = time.time()
USERS = {"ana": {"user": "ana", "email": "ana@example.com", "subject": "u-1", "verified": True},
         "bob": {"user": "bob", "email": "bob@example.com", "verified": False},
         "cy": {"user": None, "email": "cy@example.com", "subject": "u-9", "verified": True}}


def record(n: int, age: float, user: str = "ana", **fields) -> dict:
    """A record as the instrumentation submits it, `age` seconds old."""
    return {"time": format_time(NOW - age), "request_id": f"req-{n:04d}", "jsonrpc_id": n, "session_id": f"sess-{n % 3}",
            "service": "files", "version": "v1", "method": "tools/call", "tool": "read_file", "status": "success",
            "duration_seconds": 0.0123, "identity": USERS[user], "client": {"name": "claude-code", "version": "1.0"},
            "client_ip": "10.0.0.7", "params": {"path": {"type": "string", "size": 9}}, "error": None,
            "request_bytes": 120, "response_bytes": 900, "trace_id": f"{n:032x}", **fields}


# 40 records over the last 10 hours, oldest first: ana's reads, bob's errors, cy's timeouts
RECORDS = [record(n, 36000 - n * 900,
                  **({"user": "bob", "status": "error", "tool": "write_file",
                      "error": {"code": -32603, "message": "disk full"}} if n % 5 == 0 else
                     {"user": "cy", "status": "timeout", "service": "analytics", "tool": "query"} if n % 7 == 0 else {}))
           for n in range(40)]


def write_trail(directory: Path, items: list[dict] = RECORDS, key: bytes | None = None,
                name: str = "mcp.jsonl") -> list[Path]:
    """`items` written by the audit writer to a JSON Lines sink rotating every ~4 records."""
    sink = JsonlFileSink(directory / name, max_bytes=2500, rotate_every=None)
    writer = AuditWriter([sink], chain=Chain(key), registry=CollectorRegistry())
    for item in items:
        assert writer.submit(item)
    assert writer.close(timeout=20)
    return [sink.path, *sink.rotated()]


@pytest.fixture
def trail(tmp_path) -> Trail:
    write_trail(tmp_path / "audit")
    return Trail((str(tmp_path / "audit" / "mcp*.jsonl"),))


# --- reading (collector.audit.reading, shared with `mcp-slo audit query`) ---------------------


def test_a_rotated_set_is_read_in_chain_order_whatever_order_it_is_given_in(tmp_path):
    paths = write_trail(tmp_path)
    assert len(paths) > 5  # rotated
    skipped = Skipped()
    got = [r["request_id"] for r in records(paths[::-1], skipped)]
    assert got == [r["request_id"] for r in RECORDS] and skipped.total == 0
    assert [r["seq"] for r in records(paths)] == list(range(1, 41))


def test_damaged_and_oversized_lines_are_counted_and_skipped(tmp_path):
    current = write_trail(tmp_path)[0]
    with open(current, "ab") as file:
        file.write(b"{torn\n")
        file.write(b"[1, 2]\n")  # JSON, not a record
        file.write(b'{"pad": "' + b"x" * (3 << 20) + b'"}\n')  # 3 MiB on one line
        file.write(b"\n")
        file.write(json.dumps(record(99, 10)).encode() + b"\n")
    skipped = Skipped()
    got = list(read_file(current, skipped))
    assert got[-1]["request_id"] == "req-0099"
    assert (skipped.damaged, skipped.oversized) == (2, 1)
    # the limit is an option: a line just over it is skipped, its neighbours are read
    skipped = Skipped()
    assert [r["request_id"] for r in read_file(current, skipped, max_line_bytes=2 << 20)][-1] == "req-0099"
    assert skipped.oversized == 1
    # from an offset, the line it falls in is left out
    size = current.stat().st_size
    tail = list(read_file(current, Skipped(), start=size - 10))
    assert tail == []
    assert [r["request_id"] for r in read_file(current, Skipped(), start=size - len(json.dumps(record(99, 10))) - 1)] \
        == ["req-0099"]


def test_the_last_record_is_read_from_the_end_of_the_file(tmp_path):
    current = write_trail(tmp_path)[0]
    assert last_record(current)["request_id"] == "req-0039"
    with open(current, "ab") as file:  # a damaged tail: an oversized line, then one without a seq
        file.write(b'{"pad": "' + b"x" * 5000 + b'"}\n{"no": "seq"}\n')
    # the last sealed record, the oversized line skipped without being held whole
    assert last_record(current, max_line_bytes=1000)["request_id"] == "req-0039"
    assert last_record(current)["request_id"] == "req-0039"
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert last_record(empty) is None


@pytest.mark.parametrize(("filters", "expected"), [
    (Filters(), 40),
    (Filters(user="bob"), 8),
    (Filters(user="cy@example.com"), 4),  # the e-mail, when there is no user name
    (Filters(user="u-9"), 4),  # or the subject
    (Filters(service="analytics"), 4),
    (Filters(tool="write_file", status="error"), 8),
    (Filters(status="cancelled"), 0),
    (Filters(text="REQ-001"), 10),  # a part of the request id, any case
    (Filters(text="sess-2"), 13),  # or of the session id
    (Filters(since=NOW - 3650), 4),
    (Filters(since=NOW - 7000, until=NOW - 3700), 3),
])
def test_filters(filters, expected):
    assert sum(matches(r, filters) for r in RECORDS) == expected


def test_a_record_without_a_readable_time_is_outside_every_range():
    assert matches({"time": "yesterday"}, Filters())
    assert not matches({"time": "yesterday"}, Filters(since=0))
    assert not matches({}, Filters(until=NOW))


# --- the page's data ----------------------------------------------------------------------------


def test_search_lists_the_newest_matches_first_and_counts_them_all(trail):
    found = search(trail.paths(), Filters(since=NOW - 86400), limit=5)
    assert [r["request_id"] for r in found.rows] == ["req-0039", "req-0038", "req-0037", "req-0036", "req-0035"]
    assert found.matched == 40 and found.statuses == {"success": 28, "error": 8, "timeout": 4}
    assert found.users["bob"] == {"error": 8} and found.users["cy@example.com"] == {"timeout": 4}
    assert found.options == {"user": {"ana", "bob", "cy@example.com"}, "service": {"files", "analytics"},
                             "tool": {"read_file", "write_file", "query"}}
    assert audit_data.top_users(found, 1) == [("ana", {"success": 28})]
    first = found.rows[-1]
    assert first["request_id"] == "req-0035" and first["user"] == "bob" and first["verified"] is False
    assert (first["service"], first["operation"], first["status"], first["duration"], first["client_ip"],
            first["error"]) == ("files", "tools/call write_file", "error", "12 ms", "10.0.0.7", "disk full")


def test_search_does_not_open_the_files_written_before_the_range(trail):
    everything = search(trail.paths(), Filters(since=NOW - 86400))
    recent = search(trail.paths(), Filters(since=NOW - 3650))
    assert recent.matched == 4 and [r["request_id"] for r in recent.rows] == [f"req-{n:04d}" for n in (39, 38, 37, 36)]
    # the records are 15 minutes apart: with an hour's slack, the files before ~2h ago are not read
    assert everything.files == len(trail.paths()) and recent.files < everything.files / 2


def test_search_reads_at_most_its_budget_newest_first_and_says_so(trail):
    found = search(trail.paths(), Filters(), max_scan_bytes=3000)
    assert found.cut and 0 < found.matched < 10
    assert found.rows[0]["request_id"] == "req-0039"
    assert not search(trail.paths(), Filters()).cut


def test_an_intact_chain_has_its_count_and_time_span(trail):
    check = check_trail(trail.paths(), None)
    assert check.verdict.ok and check.verdict.records == 40
    assert check.first_time == pytest.approx(NOW - 36000, abs=0.01)
    assert check.last_time == pytest.approx(NOW - 36000 + 39 * 900, abs=0.01)
    shown = texts(page.verdict(check, NOW))
    assert "Chain intact" in shown and "40 records (seq 1..40)" in shown
    assert audit_data.fmt_moment(NOW - 36000) in shown


def test_a_broken_chain_names_the_first_broken_record(trail, tmp_path):
    paths = sorted(trail.paths())
    victim = paths[1]  # a rotated file
    lines = victim.read_text().splitlines(keepends=True)
    changed = json.loads(lines[0])
    changed["tool"] = "delete_everything"
    lines[0] = json.dumps(changed) + "\n"
    victim.write_text("".join(lines))
    check = check_trail(trail.paths(), None)
    assert not check.verdict.ok and check.verdict.kind == "changed"
    assert check.verdict.message == verify(trail.paths(), None).message  # what `mcp-slo audit verify` says
    shown = texts(page.verdict(check, NOW))
    assert "The audit chain is broken" in shown and f"{victim}:1 (seq {changed['seq']}) was changed" in shown


def test_a_line_being_written_is_not_a_broken_chain_but_a_torn_one_is(trail, monkeypatch):
    current = next(p for p in trail.paths() if p.name == "mcp.jsonl")
    line = json.dumps(Chain.resume(last_record(current)).seal(record(40, 1)), separators=(",", ":")) + "\n"
    with open(current, "a") as file:
        file.write(line[:100])  # the writer's batch, half-way to disk
    waits = []

    def writer_finishes(seconds):
        waits.append(seconds)
        with open(current, "a") as file:
            file.write(line[100:])

    monkeypatch.setattr(audit_data.time, "sleep", writer_finishes)
    check = check_trail(trail.paths(), None)
    assert check.verdict.ok and check.verdict.records == 41 and waits == [audit_data.TORN_RETRY]
    with open(current, "a") as file:
        file.write('{"seq": 42, "tor')  # and then the process died
    monkeypatch.setattr(audit_data.time, "sleep", lambda seconds: None)
    check = check_trail(trail.paths(), None)
    assert not check.verdict.ok and "is not JSON (a truncated last line)" in check.verdict.message


def test_the_verdict_is_kept_until_the_files_change_and_a_minute_passed(trail):
    clock = [0.0]
    verifier = Verifier(trail, clock=lambda: clock[0])
    (name, first), = verifier.check().items()
    assert name.endswith("/audit/mcp.jsonl") and first.verdict.records == 40
    assert verifier.check()[name] is first  # nothing changed
    with open(name, "a") as file:
        file.write("{torn\n")
    assert verifier.check()[name] is first  # changed, but checked less than a minute ago
    clock[0] = 61.0
    again = verifier.check()[name]
    assert again is not first and not again.verdict.ok and "is not JSON" in again.verdict.message


def test_each_writers_chain_is_verified_on_its_own_and_their_records_listed_together(tmp_path):
    # two proxies, each with its own file and chain, in one directory: one glob takes both
    write_trail(tmp_path, RECORDS[0::2], name="filesystem.jsonl")
    write_trail(tmp_path, RECORDS[1::2], name="search.jsonl")
    trail = Trail((str(tmp_path / "*.jsonl"),))
    by_chain = trail.chains()
    assert list(by_chain) == [str(tmp_path / "filesystem.jsonl"), str(tmp_path / "search.jsonl")]
    assert all(len(paths) > 2 for paths in by_chain.values())  # each rotated
    found = audit_data.search_all(by_chain, Filters(), limit=6)
    assert [r["request_id"] for r in found.rows] == [f"req-{n:04d}" for n in range(39, 33, -1)]  # interleaved
    assert found.matched == 40 and found.statuses["error"] == 8
    checks = Verifier(trail).check()
    assert [c.verdict.records for c in checks.values()] == [20, 20]
    # one chain broken: named first, the other still intact
    current = tmp_path / "search.jsonl"
    lines = current.read_text().splitlines(keepends=True)
    current.write_text("".join(lines[1:]))
    shown = texts(page.verdicts(Verifier(trail).check(), NOW))
    assert shown.index(f"The audit chain is broken ({current})") < shown.index(
        f"Chain intact ({tmp_path / 'filesystem.jsonl'})")


def test_render_the_whole_page(trail):
    checks = Verifier(trail).check()
    rendered = page.render(trail, checks, {"user": "bob"}, "24h", now=NOW)
    verdict, summary, body, users, services, tools = rendered
    assert "Chain intact" in texts(verdict)
    assert "8 matching records in the last 24h" in texts(summary) and "8 error" in texts(summary)
    assert texts(body).count("req-00") == 8 and "unverified" in texts(body) and "disk full" in texts(body)
    assert users == ["ana", "bob", "cy@example.com"] and services == ["analytics", "files"]
    assert "write_file" in tools
    nothing = page.render(trail, checks, {"q": "no-such-request"}, "1h", now=NOW)
    assert "No matching records" in texts(nothing[2])
    missing = Trail(("/nowhere/mcp*.jsonl",))
    assert "No file matches /nowhere/mcp*.jsonl" in texts(page.render(missing, {}, {})[0])


def test_the_filters_are_kept_in_the_url():
    search_ = merge_search("?range=7d", query_updates("bob", None, "write_file", "error", " req-1 "))
    assert search_ == "?range=7d&user=bob&tool=write_file&status=error&q=req-1"
    assert merge_search(search_, query_updates(None, None, None, "bogus", "")) == "?range=7d"
    filters = filters_from_query({"user": "bob", "tool": "write_file", "status": "error", "q": "req-1"}, 3600, NOW)
    assert filters == Filters(user="bob", tool="write_file", status="error", text="req-1", since=NOW - 3600)
    assert filters_from_query({"status": "bogus", "user": " "}, None, NOW) == Filters()


# --- roles ------------------------------------------------------------------------------------


def test_roles_follow_a_hashed_password_in_the_users_file(tmp_path):
    path = tmp_path / "users.txt"
    hashed = hash_password("s3cret", salt="abcd", iterations=1000)
    path.write_text(f"alice:{hashed}:auditor\ncarol:{hashed}: auditor \ndave:{hashed}\n"
                    "bob:plain:with:colons\nerin:plain-secret\n")
    accounts = read_accounts(path)
    assert accounts["alice"].roles == {AUDITOR} and accounts["carol"].roles == {AUDITOR}
    assert accounts["alice"].password == hashed
    assert accounts["dave"].roles == frozenset() and accounts["erin"].roles == frozenset()
    # an existing file keeps its meaning: a plain password is all that follows the first colon
    assert accounts["bob"].password == "plain:with:colons" and accounts["bob"].roles == frozenset()
    assert read_users(path)["bob"] == "plain:with:colons"


@pytest.mark.parametrize(("line", "error"), [
    ("bob:secret:auditor", "line 2: roles (:auditor) may only follow a hashed password"),
    ("alice:{hashed}:admin", "line 2: unknown role 'admin' (roles: auditor, separated by commas)"),
    ("alice:{hashed}:auditor,,auditor", "line 2: an empty role"),
    ("alice:{hashed}:", "line 2: an empty role"),
])
def test_bad_roles_name_the_file_and_line(tmp_path, line, error):
    path = tmp_path / "users.txt"
    path.write_text("# auditors\n" + line.format(hashed=hash_password("x", salt="ab", iterations=1000)) + "\n")
    with pytest.raises(AuthError) as info:
        read_accounts(path)
    assert str(info.value).startswith(f"users file {path}, {error}") and "\n" not in str(info.value)


@pytest.mark.parametrize(("claims", "claim", "value", "auditor"), [
    ({"roles": ["auditor", "sre"]}, None, None, True),
    ({"groups": ["sre", "auditor"]}, None, None, True),  # groups when there is no roles claim
    ({"roles": ["sre"], "groups": ["auditor"]}, None, None, True),
    ({"groups": "sre, mcp-slo-auditors"}, None, "mcp-slo-auditors", True),  # a comma-separated string
    ({"groups": ["mcp-slo-auditors"]}, None, None, False),  # the value must be the one mapped
    ({"realm_access": {"roles": ["auditor"]}}, "realm_access.roles", None, True),  # Keycloak
    ({"https://mcp-slo.example/roles": ["auditor"]}, "https://mcp-slo.example/roles", None, True),  # namespaced
    ({"roles": ["auditor"]}, "groups", None, False),  # only the claim named
    ({"roles": "auditors"}, None, None, False),
    ({"roles": [{"name": "auditor"}]}, None, None, False),
    ({"email": "ana@example.com"}, None, None, False),
])
def test_oidc_roles_come_from_a_claim(claims, claim, value, auditor):
    assert claim_roles(claims, claim, value) == (frozenset({AUDITOR}) if auditor else frozenset())


def test_nobody_has_a_role_outside_a_request_or_without_authentication(trail):
    assert current_roles() == frozenset()
    app = create_app(FakeSource())
    with app.server.test_request_context("/"):
        app.server.preprocess_request()
        assert current_roles() == frozenset()


# --- access control, on the server ------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


AUDITOR_LOGIN = basic("alice", "audit-pass")
SRE_LOGIN = basic("bob", "plain-secret")


@pytest.fixture
def users_file(tmp_path) -> Path:
    path = tmp_path / "users.txt"
    path.write_text(f"alice:{hash_password('audit-pass', iterations=1000)}:auditor\nbob:plain-secret\n")
    return path


def callback(app: dash.Dash, output: str, values: dict[str, object], input_id: str | None = None) -> dict:
    """The request a browser posts for the callback whose outputs include `output` (and whose
    inputs include `input_id`), each input's value taken from `values` by id (else None)."""
    key = next(k for k, spec in app.callback_map.items() if output in k
               and (input_id is None or any(i["id"] == input_id for i in spec["inputs"])))
    spec = app.callback_map[key]
    outputs = [{"id": o.rsplit(".", 1)[0], "property": o.rsplit(".", 1)[1]} for o in key.strip(".").split("...")]
    inputs = [{**i, "value": values.get(i["id"])} for i in spec["inputs"]]
    return {"output": key, "outputs": outputs if key.startswith("..") else outputs[0], "inputs": inputs,
            "state": [{**s, "value": values.get(s["id"])} for s in spec["state"]],
            "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"]}


def audit_app(trail: Trail, **auth) -> dash.Dash:
    app = create_app(FakeSource(), auth=AuthConfig(**auth), audit=trail)
    app.server.test_client().get("/healthz")  # the first request registers the pages' router callback
    return app


def nav_paths(layout: dict) -> list[str]:
    found = []

    def walk(node):
        if isinstance(node, dict):
            ident = node.get("props", {}).get("id") if "props" in node else None
            if isinstance(ident, dict) and ident.get("role") == "nav":
                found.append(ident["path"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(layout)
    return found


def test_basic_auth_an_auditor_gets_the_trail_and_nobody_else_does(trail, users_file):
    app = audit_app(trail, users_file=str(users_file))
    client = app.server.test_client()
    view = callback(app, "audit-verdict.children", {"range": "24h", "audit-user": "bob"})
    # without credentials: asked for them
    assert client.post("/_dash-update-component", json=view).status_code == 401
    # a signed-in user without the role: nothing, whatever the request claims
    refused = client.post("/_dash-update-component", json=view, headers=SRE_LOGIN)
    assert refused.status_code == 204 and refused.get_data() == b""
    url = callback(app, "url.search", {"audit-user": "bob", "url": "?range=7d"}, input_id="audit-user")
    assert client.post("/_dash-update-component", json=url, headers=SRE_LOGIN).status_code == 204
    # an auditor: the data
    served = client.post("/_dash-update-component", json=view, headers=AUDITOR_LOGIN)
    assert served.status_code == 200
    body = served.get_data(as_text=True)
    assert "Chain intact" in body and "req-0035" in body and "req-0039" not in body  # bob's only
    moved = client.post("/_dash-update-component", json=url, headers=AUDITOR_LOGIN)
    assert moved.status_code == 200 and "user=bob" in moved.get_data(as_text=True)


def test_basic_auth_only_an_auditors_nav_links_to_the_page_and_only_an_auditor_sees_it(trail, users_file):
    app = audit_app(trail, users_file=str(users_file))
    client = app.server.test_client()
    assert nav_paths(client.get("/_dash-layout", headers=SRE_LOGIN).get_json()) == ["/", "/canaries", "/alerts"]
    assert nav_paths(client.get("/_dash-layout", headers=AUDITOR_LOGIN).get_json()) == ["/", "/canaries", "/alerts",
                                                                                      "/audit"]
    router = callback(app, "_pages_content.children", {"_pages_location": "/audit"})
    router["inputs"] = [{**i, "value": "/audit" if i["property"] == "pathname" else "?user=bob"}
                        for i in router["inputs"]]
    refused = client.post("/_dash-update-component", json=router, headers=SRE_LOGIN).get_data(as_text=True)
    assert "Not authorised" in refused and '"hidden":true' in refused and "bob" not in refused
    shown = client.post("/_dash-update-component", json=router, headers=AUDITOR_LOGIN).get_data(as_text=True)
    assert "Not authorised" not in shown and '"hidden":false' in shown and '"value":"bob"' in shown
    # the shell's links keep the range for whichever nav the user has
    shell = callback(app, "url.search...range.value", {"range": "7d", "refresh": "30s", "url": ""})
    shell["outputs"][3] = [{"id": {"role": "nav", "path": p}, "property": "href"}
                           for p in ("/", "/canaries", "/alerts", "/audit")]
    shell["changedPropIds"] = ["range.value"]
    answer = client.post("/_dash-update-component", json=shell, headers=AUDITOR_LOGIN).get_json()
    assert "/audit?range=7d" in json.dumps(answer)


def test_oidc_the_auditor_value_of_the_roles_claim_makes_an_auditor(trail, monkeypatch, identity_provider):  # noqa: F811
    monkeypatch.setenv("MCP_SLO_OIDC_CLIENT_SECRET", "client-secret-value")
    monkeypatch.setenv("MCP_SLO_SESSION_KEY", "session-key-value")
    app = audit_app(trail, oidc_issuer=identity_provider, oidc_client_id="mcp-slo",
                    oidc_roles_claim="groups", oidc_auditor_value="mcp-slo-auditors")
    # dash-auth keeps the ID token's claims in the signed session as "user" (OIDCAuth.callback)
    auditor = {"email": "ana@example.com", "groups": ["sre", "mcp-slo-auditors"]}
    with app.server.test_request_context("/_dash-layout"):
        flask.session["user"] = auditor
        assert app.server.preprocess_request() is None  # let in
        assert current_roles() == {AUDITOR}
    with app.server.test_request_context("/_dash-layout"):
        flask.session["user"] = {"email": "bob@example.com", "groups": ["sre"], "roles": ["auditor"]}
        assert app.server.preprocess_request() is None
        assert current_roles() == frozenset()  # only the claim named, only the value mapped
    with app.server.test_request_context("/_dash-layout"):
        assert app.server.preprocess_request().status_code == 302  # not signed in: to the identity provider
        assert current_roles() == frozenset()
    # and through the callback, with the session cookie
    view = callback(app, "audit-verdict.children", {"range": "24h"})
    client = app.server.test_client()
    https = "https://dashboard.test"  # the session cookie is Secure
    with client.session_transaction(base_url=https) as session:
        session["user"] = {"email": "bob@example.com", "groups": ["sre"]}
    assert client.post("/_dash-update-component", json=view, base_url=https).status_code == 204
    with client.session_transaction(base_url=https) as session:
        session["user"] = auditor
    served = client.post("/_dash-update-component", json=view, base_url=https)
    assert served.status_code == 200 and "req-0039" in served.get_data(as_text=True)


def test_audit_open_makes_everyone_an_auditor_without_authentication(trail):
    app = audit_app(trail, audit_open=True)
    client = app.server.test_client()
    assert "/audit" in nav_paths(client.get("/_dash-layout").get_json())
    view = callback(app, "audit-verdict.children", {"range": "24h"})
    assert "req-0039" in client.post("/_dash-update-component", json=view).get_data(as_text=True)


def test_without_audit_files_there_is_no_audit_page(trail, users_file):
    audit_app(trail, users_file=str(users_file))  # an earlier app of this process had one
    app = create_app(FakeSource(), auth=AuthConfig(users_file=str(users_file)))
    client = app.server.test_client()
    client.get("/healthz")
    assert not any("audit" in key for key in app.callback_map)
    assert page.__name__ not in dash.page_registry
    assert "/audit" not in nav_paths(client.get("/_dash-layout", headers=AUDITOR_LOGIN).get_json())


@pytest.mark.parametrize(("auth", "audit", "error"), [
    ({}, True, "--audit-file needs authentication"),
    ({"audit_open": True}, False, "--audit-open needs --audit-file"),
    ({"audit_open": True, "users_file": "users.txt"}, True, "--audit-open is for a dashboard without authentication"),
    ({"oidc_roles_claim": "groups"}, False, "--oidc-roles-claim needs --oidc-issuer"),
    ({"users_file": "users.txt", "oidc_auditor_value": "x"}, False, "--oidc-auditor-value needs --oidc-issuer"),
])
def test_options_that_do_not_go_together_are_one_clear_error(trail, auth, audit, error):
    with pytest.raises(AuthError, match=error) as info:
        create_app(FakeSource(), auth=AuthConfig(**auth), audit=trail if audit else None)
    assert "\n" not in str(info.value)


def test_the_environment_configures_the_audit_page(trail, users_file, tmp_path):
    env = {"MCP_SLO_STORE": str(tmp_path / "engine.db"), "MCP_SLO_AUTH_USERS": str(users_file),
           "MCP_SLO_AUDIT_FILES": f"{trail.patterns[0]}:/elsewhere/*.jsonl"}
    app = app_from_env(env)
    client = app.server.test_client()
    client.get("/healthz")
    view = callback(app, "audit-verdict.children", {"range": "24h"})
    assert "req-0039" in client.post("/_dash-update-component", json=view, headers=AUDITOR_LOGIN).get_data(as_text=True)
    with pytest.raises(AuthError, match="--audit-file needs authentication"):
        app_from_env({"MCP_SLO_STORE": str(tmp_path / "engine.db"), "MCP_SLO_AUDIT_FILES": trail.patterns[0]})

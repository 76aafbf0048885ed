"""What an audit record keeps of a request: nothing sensitive in any parameter mode, in error
text or in headers, and ordinary data left alone."""

from __future__ import annotations

import base64
import json

import pytest

from collector.audit.redact import (
    CLASSIFICATIONS,
    MODES,
    describe,
    filter_headers,
    is_sensitive_key,
    record_params,
    redact,
    redact_text,
)


def _b64url(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


# Realistic values of every format, built in pieces so that the file itself holds no whole
# credential-looking literal.
JWT = ".".join((_b64url({"alg": "RS256", "typ": "JWT"}),
                _b64url({"sub": "user-42", "email": "carol@corp.example", "exp": 1900000000}),
                "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"))
SECRETS = {  # kind -> a value of that kind
    "jwt": JWT,
    "aws_access_key": "AKIA" + "IOSFODNN7EXAMPLE",
    "github_token": "ghp" + "_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
    "github_pat": "github_pat" + "_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEF",
    "slack_token": "xox" + "b-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "stripe_key": "sk" + "_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "stripe_test": "sk" + "_test_" + "26PHem9AhJZvU623DfE1x4sd",
    "stripe_restricted": "rk" + "_live_" + "51H8a7b6c5d4e3f2g1h0i9j8",
    "google_api_key": "AIza" + "SyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW",
    "api_key": "sk-" + "proj-" + "T3BlbkFJ8xYz1234567890abcdefghijklmnop",
    "private_key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAx1y2z3SECRETBODY\nAbCdEf0123==\n"
                   "-----END RSA PRIVATE KEY-----",
    "email": "jane.doe+billing@example.co.uk",
    "card": "4111 1111 1111 1111",
    "card_dashes": "5555-5555-5555-4444",
    "card_amex": "378282246310005",
    "card_13": "4222222222222",
    "iban": "DE89 3704 0044 0532 0130 00",
    "iban_compact": "GB82WEST12345698765432",
    "iban_letters": "FR14 2004 1010 0505 0001 3M02 606",
}
KIND = {name: name.split("_")[0] if name.startswith(("card", "iban")) else name for name in SECRETS}
KIND.update({"github_pat": "github_token", "stripe_test": "stripe_key", "stripe_restricted": "stripe_key"})
BEARER = "Bearer abc123def456ghi789jkl"
BASIC = "Basic " + base64.b64encode(b"alice:s3cret-Passw0rd").decode()
BY_KEY = {"password": "hunter2-correct-horse", "client_secret": "cs-value-9911", "X-Api-Key": "plainkeyvalue77",
          "sessionId": "sess-value-5150", "pin": "4321", "ssn": "078-05-1120", "cvv": "737"}

# what must not survive: every secret, the token part of the auth values, the sensitive keys' values
CORPUS = [*SECRETS.values(), "abc123def456ghi789jkl", BASIC.split()[1], *BY_KEY.values(),
          "MIIEpAIBAAKCAQEAx1y2z3SECRETBODY", "carol@corp.example"]
# each secret inside free text, in several places of a tool call's arguments
ARGUMENTS = {
    "query": "please use " + " and ".join(SECRETS.values()) + " thanks",
    "headers": {"Authorization": BEARER, "X-Forwarded-Auth": BASIC},
    "notes": [f"auth was {BEARER}", {"deep": [f"creds {BASIC}", SECRETS["email"]]}],
    "config": dict(BY_KEY),
    **{f"field_{name}": value for name, value in SECRETS.items()},
}
ERROR_TEXT = (f"upstream 401 for {SECRETS['email']}: token {SECRETS['jwt']} rejected; header was {BEARER}; "
              f"card {SECRETS['card']} iban {SECRETS['iban']} key {SECRETS['aws_access_key']}")


def _dumped(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def _leaks(value) -> list[str]:
    text = _dumped(value)
    return [secret for secret in CORPUS if secret in text]


# --- the modes --------------------------------------------------------------------------------


def test_names_mode_keeps_no_value_at_all():
    recorded = record_params(ARGUMENTS, "names")
    assert set(recorded) == set(ARGUMENTS)
    assert all(set(entry) == {"type", "size"} for entry in recorded.values())
    assert recorded["query"] == {"type": "string", "size": len(ARGUMENTS["query"])}
    assert recorded["headers"] == {"type": "object", "size": 2}
    assert recorded["notes"] == {"type": "array", "size": 2}
    assert _leaks(recorded) == [] and "please use" not in _dumped(recorded)


@pytest.mark.parametrize("mode", MODES)
def test_a_restricted_tool_never_has_values_recorded(mode):
    recorded = record_params(ARGUMENTS, mode, "restricted")
    assert recorded == record_params(ARGUMENTS, "names")
    assert _leaks(recorded) == [] and "thanks" not in _dumped(recorded)


@pytest.mark.parametrize("classification", ["public", "internal", "confidential"])
def test_redacted_mode_keeps_values_without_any_secret(classification):
    recorded = record_params(ARGUMENTS, "redacted", classification)
    assert _leaks(recorded) == []
    assert recorded["query"].startswith("please use [REDACTED:jwt] and ") and recorded["query"].endswith(" thanks")
    assert recorded["headers"] == {"Authorization": "[REDACTED:secret]", "X-Forwarded-Auth": "[REDACTED:secret]"}
    assert recorded["notes"] == ["auth was Bearer [REDACTED:bearer]",
                                 {"deep": ["creds Basic [REDACTED:basic]", "[REDACTED:email]"]}]
    assert recorded["config"] == {key: "[REDACTED:secret]" for key in BY_KEY}


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_each_format_is_masked_and_says_what_it_was(name):
    recorded = record_params({"text": f"see {SECRETS[name]} here"}, "redacted")
    assert recorded == {"text": f"see [REDACTED:{KIND[name]}] here"}


@pytest.mark.parametrize("classification", ["public", "internal", "confidential"])
def test_full_mode_keeps_the_values_as_given(classification):
    assert record_params(ARGUMENTS, "full", classification) == ARGUMENTS


def test_no_arguments_and_bad_options():
    assert record_params(None, "full") == {} and record_params({}, "names") == {}
    with pytest.raises(ValueError, match="unknown parameter mode 'all'"):
        record_params({"a": 1}, "all")
    with pytest.raises(ValueError, match="unknown classification 'secret'"):
        record_params({"a": 1}, "names", "secret")
    assert set(CLASSIFICATIONS) == {"public", "internal", "confidential", "restricted"}


def test_the_described_types_and_sizes():
    assert describe("héllo") == {"type": "string", "size": 5}  # characters, not bytes
    assert describe([1, 2, 3]) == {"type": "array", "size": 3}
    assert describe({"a": 1}) == {"type": "object", "size": 1}
    assert describe(12345) == {"type": "number", "size": 5}
    assert describe(1.5) == {"type": "number", "size": 3}
    assert describe(True) == {"type": "boolean", "size": 4}
    assert describe(None) == {"type": "null", "size": 4}


# --- free text and headers --------------------------------------------------------------------


def test_error_text_is_masked():
    masked = redact_text(ERROR_TEXT)
    assert _leaks(masked) == []
    assert masked == ("upstream 401 for [REDACTED:email]: token [REDACTED:jwt] rejected; header was Bearer "
                      "[REDACTED:bearer]; card [REDACTED:card] iban [REDACTED:iban] key [REDACTED:aws_access_key]")


def test_an_unterminated_private_key_is_masked_to_the_end():
    assert redact_text("key: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhki") == "key: [REDACTED:private_key]"


def test_an_iban_followed_by_a_word_in_capitals_is_still_found():
    assert redact_text(f"pay {SECRETS['iban']} EUR 12") == "pay [REDACTED:iban] EUR 12"


def test_headers_keep_only_the_allowed_ones_never_credentials():
    headers = {"Authorization": BEARER, "Proxy-Authorization": BASIC, "Cookie": "sid=abc123def456ghi789jkl",
               "Set-Cookie": "sid=abc123def456ghi789jkl", "X-Api-Key": SECRETS["stripe_key"],
               "X-Request-Id": "req-7", "X-User": SECRETS["email"], "User-Agent": "claude-code/1.0"}
    allow = ["authorization", "COOKIE", "set-cookie", "proxy-authorization", "x-api-key", "x-request-id", "x-user"]
    kept = filter_headers(headers, allow=allow, deny=["X-API-KEY"])
    assert kept == {"x-request-id": "req-7", "x-user": "[REDACTED:email]"}
    assert _leaks(kept) == []
    assert filter_headers(headers) == {}


# --- what is not masked -----------------------------------------------------------------------

ORDINARY = [
    "List the files in /srv/reports and sum the totals for March.",
    "order 4111111111111112 shipped",  # 16 digits failing Luhn
    "account DE89 3704 0044 0532 0130 01",  # an IBAN failing mod-97
    "request 123e4567-e89b-12d3-a456-426614174000",  # a UUID
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",  # a git sha
    "commit 4111111111111111aa09d2b4c0e1f2a3b4c5d6e7",  # a sha with a Luhn-valid digit run inside
    "Bearer of bad news; Basic information about the plan",
    "phone +1 415 555 2671, room 4012, year 2025",
    "the sk- prefix and the AKIA prefix alone",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_is_not_masked(text):
    assert redact_text(text) == text
    assert record_params({"text": text}, "redacted") == {"text": text}


def test_keys_that_only_look_alike_are_kept():
    arguments = {"max_tokens": 512, "author": "Ada", "spinner": "dots", "path": "docs/x.md", "keyboard": "qwerty",
                 "session_count": 3}
    kept = redact(arguments)
    assert {k: v for k, v in kept.items() if k != "session_count"} == {k: v for k, v in arguments.items()
                                                                      if k != "session_count"}
    assert kept["session_count"] == "[REDACTED:secret]"  # "session" as a word of the key: replaced whole


@pytest.mark.parametrize("key", ["password", "PASSWORD", "user_password", "api-key", "apiKey", "API_KEY",
                                 "access_token", "refreshToken", "Authorization", "auth", "auth_header", "cookie",
                                 "private_key", "client-secret", "credentials", "ssn", "card_number", "cvv", "pin",
                                 "pwd", "passwd", "token", "secret"])
def test_sensitive_keys(key):
    assert is_sensitive_key(key)


@pytest.mark.parametrize("key", ["author", "path", "max_tokens", "spinner", "keyboard", "opinion", "name", 7])
def test_ordinary_keys(key):
    assert not is_sensitive_key(key)


def test_values_that_are_not_json_are_recorded_as_masked_text():
    class Token:
        def __str__(self):
            return f"token {SECRETS['github_token']}"

    assert redact({"value": Token()}) == {"value": "token [REDACTED:github_token]"}
    assert record_params({"value": Token()}, "full") == {"value": f"token {SECRETS['github_token']}"}
    assert redact({"n": 3, "ok": True, "none": None}) == {"n": 3, "ok": True, "none": None}


@pytest.mark.parametrize("text, secret", [
    ('{"password": "hunter2-Correct-Horse", "note": "ok"}', "hunter2-Correct-Horse"),  # a serialized object
    ("login failed: password=hunter2 user=bob", "hunter2"),  # a log line: the name after another
    ("GET https://x.example/a?api_key=abc123xyz&q=1", "abc123xyz"),  # a query string inside a URL
    ("client_secret: 's3cr3t value'", "s3cr3t value"),  # quoted, with a space
    ('{"secret":"a\\"quoted\\"b"}', 'quoted'),  # escaped quotes inside the value
])
def test_the_value_of_a_sensitive_name_in_text_is_masked(text, secret):
    masked = redact_text(text)
    assert secret not in masked and "[REDACTED:secret]" in masked, masked


def test_names_that_only_contain_a_sensitive_word_keep_their_values():
    text = "max_tokens=100 author: Bob note=fine"
    assert redact_text(text) == text


@pytest.mark.parametrize("mode", ["names", "redacted", "full"])
def test_what_a_record_keeps_of_huge_arguments_is_bounded(mode):
    """A stdio message has no size limit: the record keeps a bounded copy whatever was sent."""
    from collector.audit import redact as r

    deep: dict = {}
    node = deep
    for _ in range(50):
        node["down"] = {}
        node = node["down"]
    arguments = {**{f"k{i}": i for i in range(5000)}, "text": "x" * 100_000, "items": list(range(5000)),
                 "deep": deep, "jwt": "a" * 2000 + " eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXZhbHVlLXh4eA"}
    kept = r.record_params(arguments, mode)
    assert len(json.dumps(kept)) < 60_000  # from megabytes of input
    assert kept[r.MORE] == f"{len(arguments) - r.MAX_ITEMS} more"
    assert len(kept) == r.MAX_ITEMS + 1
    if mode == "names":
        return
    big = r.record_params({"text": "x" * 100_000, "items": list(range(5000)), "deep": deep}, mode)
    assert big["text"].startswith("x" * r.MAX_VALUE_CHARS) and big["text"].endswith("[cut 98976 chars]")
    assert len(big["items"]) == r.MAX_ITEMS + 1 and big["items"][-1] == {r.MORE: "4900 more items"}
    depth, node = 0, big["deep"]
    while isinstance(node, dict) and "down" in node:
        depth, node = depth + 1, node["down"]
    assert depth == r.MAX_DEPTH - 1 and node == {"type": "object", "size": 1}
    if mode == "redacted":  # masked before cutting: a secret past the cut is not left half-visible
        masked = r.record_params({"v": "a" * 1020 + " eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"}, mode)
        assert "eyJ" not in masked["v"]


def test_an_address_past_the_length_rfc_5321_allows_still_loses_its_domain():
    masked = redact_text("from " + "x" * 70 + "@mail.example.com today")
    assert "mail.example.com" not in masked and masked.endswith("[REDACTED:email] today")

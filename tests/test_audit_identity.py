"""Who made a request: bearer tokens verified against a JWKS, or decoded and marked unverified;
never the token itself."""

from __future__ import annotations

import json
import time

import pytest

from collector.audit.identity import JwtVerifier, VerificationError, from_bearer
from tests.audit_support import AUDIENCE, ISSUER, signing_keys, token, write_jwks


@pytest.fixture(scope="module")
def keys():
    return signing_keys()


@pytest.fixture
def verifier(tmp_path, keys) -> JwtVerifier:
    return JwtVerifier(write_jwks(tmp_path / "jwks.json", keys), issuer=ISSUER, audience=AUDIENCE)


def test_a_valid_token_is_verified(keys, verifier):
    identity = from_bearer(f"Bearer {token(keys)}", verifier)
    assert identity == {"verified": True, "subject": "user-123", "user": "user-123", "email": "ana@example.com",
                        "client_id": "claude-desktop", "scopes": ["files:read", "files:write"], "issuer": ISSUER}


def test_an_ec_key_and_other_claims(keys, verifier):
    identity = from_bearer("bearer " + token(keys, kid="ec", azp=None, client_id="cli-7", scope=None,
                                             scp=["a", "b"]), verifier, user_claim="preferred_username",
                           email_claim="upn")
    assert identity["verified"] is True
    assert (identity["user"], identity["email"], identity["client_id"], identity["scopes"]) == ("ana", None, "cli-7",
                                                                                                 ["a", "b"])


@pytest.mark.parametrize(("overrides", "error"), [
    ({"iss": "https://evil.example.com/"}, "wrong issuer"),
    ({"aud": "mcp://other"}, "wrong audience"),
    ({"exp": int(time.time()) - 3600}, "expired"),
    ({"exp": None}, "no exp claim"),
    ({"nbf": int(time.time()) + 3600}, "not yet valid"),
])
def test_a_token_that_does_not_verify_keeps_its_claims_unverified(keys, verifier, overrides, error):
    identity = from_bearer(f"Bearer {token(keys, **overrides)}", verifier)
    assert identity["verified"] is False and identity["error"] == error
    assert (identity["subject"], identity["email"], identity["client_id"]) == ("user-123", "ana@example.com",
                                                                               "claude-desktop")


def test_a_token_signed_by_another_key(keys, verifier):
    forged = from_bearer(f"Bearer {token(keys, kid='k1', signer='other')}", verifier)
    assert forged["verified"] is False and forged["error"] == "bad signature" and forged["subject"] == "user-123"
    unknown = from_bearer(f"Bearer {token(keys, kid='other')}", verifier)
    assert unknown["verified"] is False and unknown["error"] == "unknown key"


def test_without_a_verifier_the_claims_are_unverified(keys):
    identity = from_bearer(f"Bearer {token(keys)}", None)
    assert identity["verified"] is False and "error" not in identity
    assert identity["user"] == "user-123" and identity["scopes"] == ["files:read", "files:write"]


def test_the_token_itself_is_never_recorded(keys, verifier):
    raw = token(keys, exp=1)
    for found in (from_bearer(f"Bearer {raw}", verifier), from_bearer(f"Bearer {raw}", None)):
        text = json.dumps(found)
        assert all(part not in text for part in raw.split("."))


@pytest.mark.parametrize("header", ["Bearer opaque-token-abc123", "Bearer ", "Bearer eyJhbGciOi.not.json",
                                    "Bearer a.b.c"])
def test_a_bearer_header_without_a_jwt(header, verifier):
    assert from_bearer(header, verifier) == {"verified": False, "scheme": "Bearer"}


def test_no_header_and_other_schemes():
    assert from_bearer(None, None) is None and from_bearer("  ", None) is None
    assert from_bearer("Basic YWxpY2U6c2VjcmV0", None) == {"verified": False, "scheme": "Basic"}


def test_long_claims_are_cut(keys):
    identity = from_bearer(f"Bearer {token(keys, sub='x' * 5000)}", None)
    assert len(identity["subject"]) == 256 and identity["subject"].endswith("…")


def test_the_verifier_raises_short_reasons(keys, verifier):
    with pytest.raises(VerificationError, match="^malformed$"):
        verifier.verify("not-a-token")
    with pytest.raises(VerificationError, match="^wrong audience$"):
        verifier.verify(token(keys, aud="elsewhere"))


def test_a_verifier_without_audience_skips_that_check(tmp_path, keys, verifier):
    path = tmp_path / "jwks.json"
    relaxed = JwtVerifier(path, issuer=ISSUER, audience=None)
    assert relaxed.verify(token(keys, aud="anything"))["sub"] == "user-123"


def test_a_missing_pyjwt_says_which_extra_to_install(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_jwt(name, *args, **kwargs):
        if name == "jwt":
            raise ModuleNotFoundError("No module named 'jwt'", name="jwt")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_jwt)
    with pytest.raises(ImportError, match=r'pip install "mcp-slo\[audit\]"'):
        JwtVerifier(tmp_path / "jwks.json", issuer=None, audience=None)

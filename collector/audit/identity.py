"""Who made a request, from its `Authorization: Bearer <JWT>` header.

`from_bearer` records the token's claims (never the token): verified with a `JwtVerifier` when
one is configured, else decoded without verification and marked `"verified": False`. PyJWT
(the "audit" extra) is imported only when a verifier is built, so the exporter stays light.

A verifier with a JWKS URL fetches the keys on first use and when a token names an unknown key:
that is network I/O, so call `from_bearer` off an event loop's thread.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

MAX_CLAIM_CHARS = 256  # a claim is recorded, not stored whole: a token can carry anything


class VerificationError(Exception):
    """A token that does not verify; the message is short ("expired", "wrong issuer", ...)."""


class JwtVerifier:
    """Verifies JWTs against a JWKS (a file path or an http(s) URL), an issuer and an audience."""

    def __init__(self, jwks: str | os.PathLike[str], issuer: str | None, audience: str | Sequence[str] | None,
                 algorithms: Sequence[str] = ("RS256", "ES256"), leeway: float = 60):
        try:
            import jwt  # the audit extra, only when tokens are verified
        except ImportError as exc:
            raise ImportError('verifying bearer tokens needs PyJWT: pip install "mcp-slo[audit]"') from exc
        self._jwt = jwt
        self.issuer = issuer
        self.audience = audience
        self.algorithms = list(algorithms)
        self.leeway = leeway
        source = os.fspath(jwks)
        self._client = None
        self._keys: Any = None
        if source.startswith(("https://", "http://")):
            self._client = jwt.PyJWKClient(source, cache_keys=True, lifespan=3600, timeout=10)
        else:
            with open(source, encoding="utf-8") as file:
                self._keys = jwt.PyJWKSet.from_dict(json.load(file))

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims when it verifies; VerificationError with a short reason otherwise."""
        jwt = self._jwt
        try:
            key = self._signing_key(token)
            options = {"require": ["exp"], "verify_aud": self.audience is not None}
            return jwt.decode(token, key, algorithms=self.algorithms, audience=self.audience, issuer=self.issuer,
                              leeway=self.leeway, options=options)
        except jwt.ExpiredSignatureError as exc:
            raise VerificationError("expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise VerificationError("not yet valid") from exc
        except jwt.InvalidIssuerError as exc:
            raise VerificationError("wrong issuer") from exc
        except jwt.InvalidAudienceError as exc:
            raise VerificationError("wrong audience") from exc
        except jwt.InvalidSignatureError as exc:
            raise VerificationError("bad signature") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise VerificationError(f"no {exc.claim} claim") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise VerificationError("algorithm not allowed") from exc
        except jwt.PyJWKClientConnectionError as exc:
            raise VerificationError("keys unreachable") from exc
        except (jwt.PyJWKClientError, jwt.PyJWKSetError, KeyError) as exc:
            raise VerificationError("unknown key") from exc
        except jwt.DecodeError as exc:
            raise VerificationError("malformed") from exc
        except jwt.InvalidTokenError as exc:
            raise VerificationError(f"invalid ({type(exc).__name__})") from exc

    def _signing_key(self, token: str) -> Any:
        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token).key
        kid = self._jwt.get_unverified_header(token).get("kid")
        if kid is None:
            keys = [k for k in self._keys.keys if k.public_key_use in (None, "sig")]
            if len(keys) != 1:
                raise KeyError("no kid, and not exactly one key")
            return keys[0].key
        return self._keys[kid].key


def from_bearer(authorization_header: str | None, verifier: JwtVerifier | None, user_claim: str = "sub",
                email_claim: str = "email") -> dict[str, Any] | None:
    """The identity in an Authorization header: None without one; {"verified": False, "scheme"}
    when it holds no JWT; else the claims (verified or not), never the token."""
    if not authorization_header or not authorization_header.strip():
        return None
    scheme, _, token = authorization_header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer":
        return {"verified": False, "scheme": _short(scheme, 20)}
    claims = _unverified_claims(token)
    if claims is None:
        return {"verified": False, "scheme": "Bearer"}
    verified, error = False, None
    if verifier is not None:
        try:
            claims = verifier.verify(token)
            verified = True
        except VerificationError as exc:
            error = str(exc)
    identity = {
        "verified": verified,
        "subject": _claim(claims, "sub"),
        "user": _claim(claims, user_claim),
        "email": _claim(claims, email_claim),
        "client_id": _claim(claims, "azp") or _claim(claims, "client_id"),
        "scopes": _scopes(claims),
        "issuer": _claim(claims, "iss"),
    }
    if error is not None:
        identity["error"] = error
    return identity


def _unverified_claims(token: str) -> dict[str, Any] | None:
    """The payload of a compact JWS, or None when `token` is not one."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].startswith("eyJ"):
        return None
    try:
        header = json.loads(_b64url(parts[0]))
        payload = json.loads(_b64url(parts[1]))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return payload if isinstance(header, dict) and isinstance(payload, dict) else None


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _claim(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None or isinstance(value, (dict, list)):
        return None
    return _short(str(value), MAX_CLAIM_CHARS)


def _scopes(claims: Mapping[str, Any]) -> list[str]:
    scope = claims.get("scope")
    if isinstance(scope, str):
        found = scope.split()
    elif isinstance(claims.get("scp"), list):
        found = [str(s) for s in claims["scp"]]
    elif isinstance(claims.get("scp"), str):
        found = claims["scp"].split()
    else:
        found = []
    return [_short(s, 100) for s in found[:50]]


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def expiry(authorization_header: str) -> float | None:
    """The `exp` claim (seconds since the epoch) of the bearer JWT in an Authorization header,
    read without verification; None when there is none."""
    _, _, token = authorization_header.strip().partition(" ")
    claims = _unverified_claims(token.strip())
    exp = claims.get("exp") if claims else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None

"""Helpers for the audit trail's tests: signing keys, their JWKS file, and bearer tokens."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://login.example.com/"
AUDIENCE = "mcp://files"


def signing_keys() -> dict:
    """kid -> private key: two RSA keys ("k1" is in the JWKS, "other" is not) and an EC key ("ec")."""
    return {"k1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "other": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ec": ec.generate_private_key(ec.SECP256R1())}


def write_jwks(path: Path, keys: dict) -> Path:
    """The public keys "k1" and "ec" as a JWKS file."""
    jwks = {"keys": [
        {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(keys["k1"].public_key())), "kid": "k1", "use": "sig",
         "alg": "RS256"},
        {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(keys["ec"].public_key())), "kid": "ec", "use": "sig",
         "alg": "ES256"},
    ]}
    path.write_text(json.dumps(jwks))
    return path


def token(keys: dict, kid: str = "k1", signer: str | None = None, **overrides) -> str:
    """A JWT signed by `signer` (default: the key `kid` names); a claim set to None is left out."""
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-123", "email": "ana@example.com", "azp": "claude-desktop",
              "scope": "files:read files:write", "iat": now, "exp": now + 600, "preferred_username": "ana",
              **overrides}
    claims = {k: v for k, v in claims.items() if v is not None}
    algorithm = "ES256" if kid == "ec" else "RS256"
    return jwt.encode(claims, keys[signer or kid], algorithm=algorithm, headers={"kid": kid})

"""Secrets we hand out (device secrets, enrollment keys, API keys, invitation tokens): made
here, stored only as digests, and checked in constant time. One copy of the rule, so that no
caller can store a secret in the clear or compare it with `==`.

A secret carries a short prefix (`ctd_`, `cte_`, ...) so that secret scanners can recognise a
leaked one; the body is 32 random bytes in lower-case base32, without padding."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_BYTES = 32


def generate_secret(prefix: str = "") -> str:
    """A new random secret (256 bits) with the given recognisable prefix."""
    body = base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=").lower()
    return f"{prefix}{body}"


def hash_secret(secret: str) -> str:
    """The SHA-256 hex digest we store in place of the secret. A fast hash is right here: the
    secrets are 256 random bits, so there is nothing to brute-force."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def secret_matches(secret: str, digest: str) -> bool:
    """Whether `secret` is the one whose digest is stored, in constant time."""
    return hmac.compare_digest(hash_secret(secret), digest)

"""The one place secrets are made, hashed and compared."""

from __future__ import annotations

import hashlib
from unittest import mock

from clawtrace_site.tokens import generate_secret, hash_secret, secret_matches


def test_a_generated_secret_carries_its_prefix_and_256_random_bits():
    secrets = {generate_secret("ctx_") for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert secret.startswith("ctx_")
        body = secret.removeprefix("ctx_")
        # 32 bytes in unpadded base32 are 52 characters, lower case, URL-safe as they are.
        assert len(body) == 52
        assert body == body.lower() and body.isalnum()


def test_the_stored_digest_is_the_sha256_of_the_secret():
    assert hash_secret("cti_abc") == hashlib.sha256(b"cti_abc").hexdigest()


def test_a_secret_matches_only_its_own_digest():
    secret = generate_secret("cti_")
    assert secret_matches(secret, hash_secret(secret))
    assert not secret_matches(secret + "x", hash_secret(secret))
    assert not secret_matches(secret, "")


def test_digests_are_compared_in_constant_time():
    secret = generate_secret()
    with mock.patch("clawtrace_site.tokens.hmac.compare_digest", return_value=False) as compare:
        assert not secret_matches(secret, hash_secret(secret))
    compare.assert_called_once_with(hash_secret(secret), hash_secret(secret))

"""API keys: the token format, salted hashes, and verification."""

from __future__ import annotations

from shared.security.api_keys import hash_secret, mint_key, parse_key, verify_secret


def test_minted_key_round_trips_through_the_token() -> None:
    key = mint_key()
    assert parse_key(key.token) == (key.key_id, key.secret)
    assert key.secret not in repr(key)


def test_two_keys_differ() -> None:
    assert mint_key().token != mint_key().token


def test_hash_is_salted_and_verifies_only_the_right_secret() -> None:
    key = mint_key()
    first, second = hash_secret(key.secret), hash_secret(key.secret)
    assert first.salt != second.salt and first.digest != second.digest
    assert verify_secret(key.secret, first) and verify_secret(key.secret, second)
    assert not verify_secret(mint_key().secret, first)
    assert key.secret not in first.digest


def test_foreign_tokens_are_not_parsed() -> None:
    for token in (
        "",
        "fik_",
        "Bearer x",
        "fik_zzzzzzzzzzzzzzzz_" + "a" * 43,
        mint_key().token + "x",
    ):
        assert parse_key(token) is None

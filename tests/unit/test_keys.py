"""The key format: prefix, base58 secret, checksum; only the hash is stored."""

from __future__ import annotations

import hashlib

import pytest

from tenantry import keys


@pytest.mark.parametrize("role", ["tenant", "admin"])
def test_generated_keys_are_well_formed_and_claim_their_role(role: keys.Role) -> None:
    # When a key is generated
    key = keys.generate(role)
    # Then it carries the role's prefix, fits API Gateway's length rules and passes its checksum
    assert key.startswith(keys.PREFIX_BY_ROLE[role])
    assert keys.MIN_LENGTH <= len(key) <= keys.MAX_LENGTH
    assert keys.role_of(key) == role


def test_keys_are_unique() -> None:
    assert len({keys.generate() for _ in range(200)}) == 200


def test_a_single_changed_character_fails_the_checksum() -> None:
    # Given a valid key
    key = keys.generate()
    # When any one character of the secret or checksum changes
    for position in range(len(keys.TENANT_PREFIX), len(key)):
        replacement = "2" if key[position] != "2" else "3"
        tampered = key[:position] + replacement + key[position + 1 :]
        # Then the key is rejected without any lookup
        assert keys.role_of(tampered) is None, position


@pytest.mark.parametrize(
    "candidate",
    [
        "",
        "short",
        "tnt_live_",
        "tnt_test_" + "A" * 50,
        "tnt_live_" + "0OIl" * 12 + "111111",  # characters outside base58
        "tnt_live_" + "x" * 200,
    ],
)
def test_malformed_keys_are_rejected(candidate: str) -> None:
    assert keys.role_of(candidate) is None


def test_a_tenant_secret_with_an_admin_prefix_is_rejected() -> None:
    key = keys.generate("tenant")
    assert keys.role_of(keys.ADMIN_PREFIX + key[len(keys.TENANT_PREFIX) :]) is None


def test_hash_is_hex_sha256_and_the_hint_shows_only_the_ends() -> None:
    key = keys.generate()
    assert keys.hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    hint = keys.display_hint(key)
    assert hint.startswith(key[:4]) and hint.endswith(key[-4:])
    assert len(hint) < 12


def test_base58_round_trips_leading_zero_bytes() -> None:
    for data in (b"", b"\0", b"\0\0\1", bytes(range(32))):
        assert keys.b58decode(keys.b58encode(data)) == data

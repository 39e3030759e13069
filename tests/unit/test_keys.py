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


# ------------------------------------------------------------------ ready for cells (issue 25)
# A key issued before cells existed (the sample key of events/authorizer-request.json).
KEY_OF_NO_CELL = "tnt_live_3KDrJTuedvq6zUekoYv3WPXzmcc2uKVBqo8P7MqNRqvb2YxJdr"


def test_a_key_issued_before_cells_still_reads_as_a_key_of_no_cell() -> None:
    assert keys.role_of(KEY_OF_NO_CELL) == "tenant"
    assert keys.cell_of(KEY_OF_NO_CELL) == ""
    assert keys.cell_of(keys.generate("admin")) == ""


@pytest.mark.parametrize("role", ["tenant", "admin"])
def test_a_key_of_a_cell_names_it_and_its_checksum_covers_it(role: keys.Role) -> None:
    # Given a key issued in cell euw1a
    key = keys.generate(role, cell="euw1a")
    # Then it reads as that role and that cell, within API Gateway's length rules
    assert key.startswith(f"{keys.PREFIX_BY_ROLE[role]}euw1a_")
    assert keys.MIN_LENGTH <= len(key) <= keys.MAX_LENGTH
    assert (keys.role_of(key), keys.cell_of(key)) == (role, "euw1a")
    # And moving it to another cell (or dropping its cell) fails the checksum
    prefix = keys.PREFIX_BY_ROLE[role]
    for moved in (key.replace("euw1a_", "euw1b_", 1), prefix + key[len(prefix) + len("euw1a_") :]):
        assert keys.role_of(moved) is None and keys.cell_of(moved) is None


@pytest.mark.parametrize("cell", ["", "1abc", "Upper", "toolongcell", "c-1", "c_1"])
def test_a_malformed_cell_is_refused(cell: str) -> None:
    if cell:
        with pytest.raises(ValueError, match="cell"):
            keys.generate(cell=cell)
    # and a key claiming one fails before any lookup, whatever its checksum
    body = keys.generate()[len(keys.TENANT_PREFIX) :]
    assert keys.role_of(f"{keys.TENANT_PREFIX}{cell}_{body}") is None

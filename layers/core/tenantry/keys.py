"""The API-key format: the one module that knows how a key looks, is checked and is hashed.

A key is ``<prefix>[<cell>_]<base58 of 32 random bytes><6-char checksum>``. The checksum lets
the authorizer reject typos and random probes before any database call. Only ``sha256(key)`` is
ever stored. Standard library only: the authorizer imports it on every cold start.

The optional cell segment (docs/architecture.md, "Past 10,000 tenants") names the stack a key
belongs to, so a front door can route a request by its key alone. ``_`` is not a base58
character, so a key without a cell (every key issued before cells, and every key of a one-stack
deployment) reads exactly as before; the checksum covers the cell, so a key moved to another cell
by hand fails it.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final, Literal

Role = Literal["tenant", "admin"]

TENANT_PREFIX: Final = "tnt_live_"
ADMIN_PREFIX: Final = "tnt_admin_"
PREFIX_BY_ROLE: Final[dict[str, str]] = {"tenant": TENANT_PREFIX, "admin": ADMIN_PREFIX}

MIN_LENGTH: Final = 20  # API Gateway refuses shorter API-key values.
MAX_LENGTH: Final = 128
SECRET_BYTES: Final = 32
CHECKSUM_LENGTH: Final = 6

# A cell id: 1-8 lower-case letters and digits, starting with a letter (e.g. ``c1``, ``euw1a``).
CELL_MAX_LENGTH: Final = 8
CELL_SEPARATOR: Final = "_"

_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_ALPHABET_INDEX: Final = {char: index for index, char in enumerate(_ALPHABET)}


def b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    encoded = ""
    while number:
        number, remainder = divmod(number, 58)
        encoded = _ALPHABET[remainder] + encoded
    leading_zero_bytes = len(data) - len(data.lstrip(b"\0"))
    return _ALPHABET[0] * leading_zero_bytes + encoded


def b58decode(text: str) -> bytes:
    """Decode base58; ``ValueError`` on a character outside the alphabet."""
    number = 0
    for char in text:
        index = _ALPHABET_INDEX.get(char)
        if index is None:
            raise ValueError("not base58")
        number = number * 58 + index
    leading_zeros = len(text) - len(text.lstrip(_ALPHABET[0]))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * leading_zeros + body


def _checksum(prefix: str, body: str) -> str:
    digest = hashlib.sha256(f"{prefix}{body}".encode()).digest()
    # 4 bytes fit in 6 base58 characters (58**6 > 2**32); pad so the length is fixed.
    return b58encode(digest[:4]).rjust(CHECKSUM_LENGTH, _ALPHABET[0])


def is_cell_id(cell: str) -> bool:
    return (
        0 < len(cell) <= CELL_MAX_LENGTH
        and cell[0].isascii()
        and cell[0].islower()
        and all(char.isascii() and (char.islower() or char.isdigit()) for char in cell)
    )


def generate(role: Role = "tenant", cell: str = "") -> str:
    """A new random key for ``role`` (in ``cell``, when given). Shown to its owner once, never
    stored."""
    if cell and not is_cell_id(cell):
        raise ValueError(f"not a cell id: {cell!r}")
    prefix = PREFIX_BY_ROLE[role]
    body = (f"{cell}{CELL_SEPARATOR}" if cell else "") + b58encode(secrets.token_bytes(SECRET_BYTES))
    return f"{prefix}{body}{_checksum(prefix, body)}"


def _parse(key: str) -> tuple[Role, str] | None:
    """(role, cell) of a well-formed key (cell "" when it names none); None when the key is
    malformed or its checksum is bad."""
    if not MIN_LENGTH <= len(key) <= MAX_LENGTH:
        return None
    role: Role
    if key.startswith(TENANT_PREFIX):
        prefix, role = TENANT_PREFIX, "tenant"
    elif key.startswith(ADMIN_PREFIX):
        prefix, role = ADMIN_PREFIX, "admin"
    else:
        return None
    body, checksum = key[len(prefix) : -CHECKSUM_LENGTH], key[-CHECKSUM_LENGTH:]
    cell, separator, secret = body.rpartition(CELL_SEPARATOR)
    if separator and not is_cell_id(cell):
        return None
    try:
        if len(b58decode(secret)) != SECRET_BYTES:
            return None
    except ValueError:
        return None
    if not secrets.compare_digest(checksum, _checksum(prefix, body)):
        return None
    return role, cell


def role_of(key: str) -> Role | None:
    """The role a well-formed key claims, or None when the key is malformed or its checksum is bad."""
    parsed = _parse(key)
    return None if parsed is None else parsed[0]


def cell_of(key: str) -> str | None:
    """The cell a well-formed key names ("" for a key of no cell), or None when it is malformed."""
    parsed = _parse(key)
    return None if parsed is None else parsed[1]


def hash_key(key: str) -> str:
    """The only form of a key that is stored: hex SHA-256."""
    return hashlib.sha256(key.encode()).hexdigest()


def display_hint(key: str) -> str:
    """First and last four characters, enough for a human to tell keys apart."""
    return f"{key[:4]}…{key[-4:]}"


def new_key_id() -> str:
    return f"key_{secrets.token_hex(8)}"

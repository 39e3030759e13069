"""The tenancy logic over in-memory stores (tests/fakes): what it decides, where DynamoDB is not the
point (the stores' own behaviour is tested against moto, and the fakes against the stores)."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from tenantry import keys, tenancy
from tenantry.stores import keys as key_store
from tests.fakes.keys import InMemoryKeys


def test_an_admin_key_is_stored_as_its_hash_only_with_its_expiry() -> None:
    # Given an empty key store
    store = InMemoryKeys()
    # When an admin key that lives 7 days is made
    before = int(time.time())
    raw_key, info = tenancy.create_admin_key(7 * 86_400, tenancy.Stores(keys=store))
    # Then the store holds one active admin key under the key's hash, never the key itself
    (stored,) = store.keys.values()
    assert stored.key_hash == keys.hash_key(raw_key) and keys.role_of(raw_key) == "admin"
    assert (stored.role, stored.status, stored.tenant_id) == (
        "admin",
        key_store.ACTIVE,
        tenancy.ADMIN_TENANT_ID,
    )
    assert raw_key not in repr(stored)
    assert (
        stored.expires_at is not None and before + 7 * 86_400 <= stored.expires_at <= time.time() + 7 * 86_400
    )
    # And the answer describes that key, with the same expiry
    assert info.key_id == stored.key_id and info.status == "active"
    assert info.expires_at == tenancy._iso(stored.expires_at)


def test_a_key_view_says_expired_once_its_end_has_passed_and_never_shows_a_pending_key() -> None:
    # Given an active key whose end is now, and a pending key
    now = time.time()
    ended = key_store.KeyRecord(
        key_hash="h", key_id="key_1", tenant_id="acme", role="tenant", tier="basic",
        status=key_store.ACTIVE, hint="tnt_…abcd", created_at="2026-01-01T00:00:00Z", expires_at=int(now),
    )  # fmt: skip
    # Then the view says expired (the item still says active: nothing rewrote it)
    assert tenancy.key_view(ended, now).status == "expired"
    assert tenancy.key_view(ended, now - 1).status == "active"
    # And a pending key is not a key yet: it is never viewed
    with pytest.raises(ValueError, match="pending"):
        tenancy.key_view(replace(ended, status=key_store.PENDING), now)

"""The tenancy logic over in-memory stores (tests/fakes): what it decides, where DynamoDB is not the
point (the stores' own behaviour is tested against moto, and the fakes against the stores)."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from tenantry import keys, tenancy
from tenantry.errors import NotFound
from tenantry.models.tenants import UpdateTenantRequest
from tenantry.stores import keys as key_store
from tenantry.stores import tenants as tenant_store
from tenantry.stores.tenants import TenantRecord
from tests.fakes.keys import InMemoryKeys
from tests.fakes.tenants import InMemoryTenants


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


def _stores_with_acme(tier: str = "enterprise") -> tuple[InMemoryTenants, InMemoryKeys, tenancy.Stores]:
    """Tenant acme (``tier``, a model chosen) with three keys of no API Gateway twin: an active
    one, a revoked one and one left pending; and tenant globex with one active key."""
    tenants, store = InMemoryTenants(), InMemoryKeys()
    acme = TenantRecord(
        "acme", "Acme", tier, tenant_store.ACTIVE, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z",
        config={"model": "claude-sonnet", "max_messages": 5},
    )  # fmt: skip
    tenants.create(acme)
    tenants.create(replace(acme, tenant_id="globex", name="Globex", config={}))
    for key_hash, tenant_id, status in (
        ("h-active", "acme", key_store.ACTIVE),
        ("h-revoked", "acme", key_store.REVOKED),
        ("h-pending", "acme", key_store.PENDING),
        ("h-globex", "globex", key_store.ACTIVE),
    ):
        store.put(_key(key_hash, tenant_id, status, tier))
        tenants.register_key(tenant_id, key_hash)
    return tenants, store, tenancy.Stores(tenants=tenants, keys=store)


def _key(key_hash: str, tenant_id: str, status: key_store.KeyStatus, tier: str) -> key_store.KeyRecord:
    return key_store.KeyRecord(
        key_hash=key_hash, key_id=f"key_{key_hash}", tenant_id=tenant_id, role="tenant", tier=tier,
        status=status, hint="tnt_…abcd", created_at="2026-01-01T00:00:00Z",
    )  # fmt: skip


def test_listing_shows_a_tenants_own_keys_but_never_a_pending_one() -> None:
    # Given acme with an active, a revoked and a pending key, and globex with its own key
    _, _, stores = _stores_with_acme()
    # When acme's keys are listed
    listed = tenancy.list_keys("acme", stores)
    # Then the active and the revoked key show; the pending one (never answered) and globex's do not
    assert sorted((key.key_id, key.status) for key in listed) == [
        ("key_h-active", "active"),
        ("key_h-revoked", "revoked"),
    ]
    # And a pending key cannot be revoked (it is not a key yet), nor globex's key through acme
    for key_id in ("key_h-pending", "key_h-globex"):
        with pytest.raises(NotFound):
            tenancy.revoke_key("acme", key_id, None, stores)


def test_a_downgrade_drops_the_model_choice_and_moves_every_live_key_to_the_new_tier() -> None:
    # Given acme on enterprise with a model chosen, and its keys
    tenants, store, stores = _stores_with_acme()
    # When acme is moved to pro (no model choice) without a config
    answer = tenancy.update_tenant("acme", UpdateTenantRequest(tier="pro"), None, stores)
    # Then its model choice is dropped, the rest of its config kept
    assert answer.tier == "pro" and answer.config == {"max_messages": 5}
    stored = tenants.get("acme")
    assert stored is not None and stored.config == {"max_messages": 5}
    # And its live key follows; the revoked and the pending keys are left alone, globex's too
    tiers = {key_hash: key.tier for key_hash, key in store.keys.items()}
    left = "enterprise"
    assert tiers == {"h-active": "pro", "h-revoked": left, "h-pending": left, "h-globex": left}


def test_a_suspension_suspends_the_live_keys_and_me_says_so() -> None:
    # Given acme and its keys
    _, store, stores = _stores_with_acme()
    # When acme is suspended
    tenancy.update_tenant("acme", UpdateTenantRequest(status="suspended"), None, stores)
    # Then its live key is suspended (the authorizer denies it), the others untouched
    statuses = {key_hash: key.status for key_hash, key in store.keys.items()}
    assert statuses == {
        "h-active": "suspended",
        "h-revoked": "revoked",
        "h-pending": "pending",
        "h-globex": "active",
    }
    assert tenancy.describe_me("acme", "key_h-active", stores).status == "suspended"


def test_an_offboarding_tenant_is_gone_for_every_admin_read_and_change() -> None:
    # Given acme marked offboarding (its final purge not yet run)
    tenants, _, stores = _stores_with_acme()
    tenants.mark_offboarding("acme", 2_000_000_000)
    # Then reading, listing, changing it, or its keys, is a 404, and the listing omits it
    for call in (
        lambda: tenancy.get_tenant("acme", stores),
        lambda: tenancy.describe_me("acme", "key_h-active", stores),
        lambda: tenancy.update_tenant("acme", UpdateTenantRequest(name="Back"), None, stores),
        lambda: tenancy.list_keys("acme", stores),
    ):
        with pytest.raises(NotFound) as caught:
            call()
        assert caught.value.code == "tenant_not_found"
    listed = tenancy.list_tenants(tier=None, status=None, limit=10, next_token=None, stores=stores)
    assert [tenant.tenant_id for tenant in listed.tenants] == ["globex"]
    # And its final purge is not due yet
    assert tenancy.finish_offboarding("acme", stores) is None

"""The in-memory stores (tests/fakes) answer as the DynamoDB ones: the same calls, in the same
order, against each, give the same answers, the same records and the same errors. A logic test
that uses a fake then proves what it would prove against DynamoDB."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tenantry.errors import ApiError
from tenantry.stores import keys as key_store
from tenantry.stores import tenants as tenant_store
from tests.fakes.keys import InMemoryKeys
from tests.fakes.tenants import InMemoryTenants


def _answer(call: Callable[[], Any]) -> Any:
    """What a call answers: its value, or its error's type (and code, for an API error)."""
    try:
        return call()
    except ApiError as exc:
        return (type(exc).__name__, exc.code)
    except Exception as exc:  # noqa: BLE001 - the error itself is the answer compared
        return type(exc).__name__


def _key(key_hash: str, tenant_id: str, created_at: str, **fields: Any) -> key_store.KeyRecord:
    return key_store.KeyRecord(
        key_hash=key_hash,
        key_id=f"key_{key_hash}",
        tenant_id=tenant_id,
        role="tenant",
        tier="basic",
        status=key_store.PENDING,
        hint="tnt_…abcd",
        created_at=created_at,
        **fields,
    )


def _key_calls(store: key_store.KeyStore) -> list[Any]:
    """Every KeyStore operation, its ordinary case and its edge cases, in one transcript."""
    first = _key("h1", "acme", "2026-01-01T00:00:02Z", incarnation="inc-1")
    second = _key("h2", "acme", "2026-01-01T00:00:01Z", expires_at=1_900_000_000)
    other = _key("h3", "globex", "2026-01-01T00:00:00Z")
    admin = replace(_key("h4", "_admin", "2026-01-01T00:00:00Z"), role="admin", status=key_store.ACTIVE)
    for key in (first, second, other, admin):
        store.put(key)
    calls: list[Callable[[], Any]] = [
        lambda: store.put(first),  # the same key again (a send botocore repeated): success
        lambda: store.put(replace(first, key_id="key_another")),  # another key, the same hash
        lambda: store.get("h1"),
        lambda: store.get("nothing"),
        lambda: store.list_for_tenant("acme", {"h1"}),  # oldest first
        lambda: store.list_for_tenant("globex"),
        lambda: store.list_for_tenant("acme", {"h3"}),  # another tenant's hash is never listed
        lambda: store.activate("h1", edge_key_id="edge-1", status=key_store.ACTIVE),
        lambda: store.activate("h1", edge_key_id="edge-1", status=key_store.ACTIVE),  # again: success
        lambda: store.activate("h1", edge_key_id="edge-9", status=key_store.ACTIVE),  # not pending
        lambda: store.activate("h2", edge_key_id=None, status=key_store.SUSPENDED),
        lambda: store.activate("nothing", edge_key_id="edge-1", status=key_store.ACTIVE),
        lambda: store.get("h1"),
        lambda: store.get("h2"),
        lambda: store.set_tier_and_status("h1", tier="pro"),
        lambda: store.set_tier_and_status("h1", status=key_store.SUSPENDED),
        lambda: store.set_tier_and_status("h2", tier="enterprise", status=key_store.ACTIVE),
        lambda: store.set_tier_and_status("h2"),  # nothing to set
        lambda: store.set_tier_and_status("nothing", tier="pro"),
        lambda: store.set_expiry("h1", 1_800_000_000),
        lambda: store.set_expiry("nothing", 1_800_000_000),
        lambda: store.revoke("h2", "2026-01-02T00:00:00Z"),
        lambda: store.revoke("nothing", "2026-01-02T00:00:00Z"),
        lambda: store.list_for_tenant("acme", {"h1", "h2"}),
        lambda: store.activate("h2", edge_key_id=None, status=key_store.ACTIVE),  # revoked: refused
        lambda: store.delete("h2"),
        lambda: store.delete("h2"),  # nothing there: fine
        lambda: store.list_for_tenant("acme", {"h1", "h2"}),
        lambda: store.get("h4"),
    ]
    return [_answer(call) for call in calls]


def test_the_in_memory_key_store_answers_as_the_dynamodb_one(aws: dict[str, str]) -> None:
    # Given the ApiKeys table (moto) and the fake, both empty
    # When the same calls are made on each
    dynamodb = _key_calls(key_store.DYNAMODB)
    fake = _key_calls(InMemoryKeys())
    # Then every answer is the same: records (numbers as plain ints), None, and errors alike
    assert dynamodb == fake
    # And the calls did meet each case (not a transcript of errors alike)
    assert dynamodb[0] is None
    assert dynamodb[1] == "KeyExistsError"
    assert [key.key_hash for key in dynamodb[4]] == ["h2", "h1"]
    assert [key.key_hash for key in dynamodb[6]] == ["h2", "h1"]
    assert dynamodb[9] == ("Conflict", "key_operation_conflict")
    assert dynamodb[12].edge_key_id == "edge-1" and dynamodb[12].status == "active"
    assert dynamodb[18] == "KeyMissingError" and dynamodb[17] == "ValueError"
    assert [(key.key_hash, key.tier, key.status, key.expires_at) for key in dynamodb[23]] == [
        ("h2", "enterprise", "revoked", 1_900_000_000),
        ("h1", "pro", "suspended", 1_800_000_000),
    ]
    assert type(dynamodb[23][1].expires_at) is int
    assert [key.key_hash for key in dynamodb[27]] == ["h1"]
    assert dynamodb[28].role == "admin"


def _tenant(tenant_id: str, **fields: Any) -> tenant_store.TenantRecord:
    return tenant_store.TenantRecord(
        tenant_id=tenant_id,
        name=tenant_id.title(),
        tier=fields.pop("tier", "basic"),
        status=fields.pop("status", tenant_store.ACTIVE),
        created_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-01T00:00:00Z",
        **fields,
    )


def _all_pages(store: tenant_store.TenantStore, **filters: Any) -> tuple[int, list[str]]:
    """Every page of a listing, 2 at a time: how many pages, and the ids, sorted (a scan's order
    is the table's hash order)."""
    pages, ids, token = 0, [], None
    while True:
        found, token = store.list_page(limit=2, next_token=token, **filters)
        assert len(found) <= 2
        pages += 1
        ids += [tenant.tenant_id for tenant in found]
        if token is None:
            return pages, sorted(ids)


def _tenant_calls(store: tenant_store.TenantStore) -> list[Any]:
    """Every TenantStore operation, its ordinary case and its edge cases, in one transcript."""
    acme = _tenant("acme", config={"max_messages": 5, "model": "m"}, incarnation="i-1", onboarding="x")
    for tenant in (
        acme,
        _tenant("globex", tier="pro", key_hashes=frozenset({"h9"})),
        _tenant("initech", status=tenant_store.SUSPENDED),
        _tenant("hooli", tier="pro"),
        _tenant("umbrella"),
        _tenant("wayne", tier="pro"),
    ):
        store.create(tenant)
    changes = tenant_store.TenantChanges(
        updated_at="2026-01-02T00:00:00Z", tier="pro", config={"max_messages": 7}
    )
    calls: list[Callable[[], Any]] = [
        lambda: store.create(replace(acme, name="Other")),  # the id is taken
        lambda: store.get("acme"),
        lambda: store.get("nobody"),
        lambda: store.get("acme").is_onboarding,  # type: ignore[union-attr]
        lambda: store.register_key("acme", "h1"),
        lambda: store.register_key("acme", "h1"),  # again: the same set
        lambda: store.register_key("acme", "h2"),
        lambda: store.register_key("nobody", "h1"),
        lambda: store.unregister_key("acme", "h2"),
        lambda: store.unregister_key("acme", "h2"),  # again: nothing to drop
        lambda: store.unregister_key("nobody", "h2"),
        lambda: store.get("acme").key_hashes,  # type: ignore[union-attr]
        lambda: store.update("acme", changes),
        lambda: store.update(
            "acme", tenant_store.TenantChanges(updated_at="x", status=tenant_store.SUSPENDED)
        ),
        lambda: store.update("nobody", changes),
        lambda: store.finish_onboarding("acme"),
        lambda: store.finish_onboarding("acme"),  # again: still finished
        lambda: store.finish_onboarding("nobody"),
        lambda: store.get("acme").is_onboarding,  # type: ignore[union-attr]
        lambda: store.delete_unfinished("acme"),  # finished: stays
        lambda: store.get("acme") is not None,
        lambda: _all_pages(store, tier=None, status=None),
        lambda: _all_pages(store, tier="pro", status=None),
        lambda: _all_pages(store, tier=None, status="suspended"),
        lambda: _strip_updated_at(store.mark_offboarding("globex", 1_900_000_000)),
        lambda: _strip_updated_at(store.mark_offboarding("globex", 1_900_000_000)),  # again
        lambda: store.mark_offboarding("nobody", 1_900_000_000),
        lambda: store.update("globex", changes),  # offboarding: gone for the admin API
        lambda: store.register_key("globex", "h3"),  # no new key for it
        lambda: store.unregister_key("globex", "h9"),  # but an abandoned one may leave
        lambda: _all_pages(store, tier=None, status=None),
        lambda: _all_pages(store, tier=None, status="offboarding"),
        lambda: store.delete_offboarded("globex", "another incarnation"),
        lambda: store.delete_offboarded("acme", "i-1"),  # not offboarding
        lambda: store.delete_offboarded("globex", ""),  # created without an incarnation
        lambda: store.get("globex"),
        lambda: store.delete_offboarded("globex", ""),  # gone already
        lambda: store.create(_tenant("fresh", onboarding="2026-01-01T00:00:00Z")),
        lambda: store.delete_unfinished("fresh"),
        lambda: store.get("fresh"),
    ]
    return [_answer(call) for call in calls]


def _strip_updated_at(tenant: tenant_store.TenantRecord | None) -> tenant_store.TenantRecord | None:
    """The offboarding mark stamps the time it ran: equal when both ran in the same second only."""
    return None if tenant is None else replace(tenant, updated_at="")


def test_the_in_memory_tenant_store_answers_as_the_dynamodb_one(aws: dict[str, str]) -> None:
    # Given the Tenants table (moto) and the fake, both empty
    # When the same calls are made on each
    dynamodb = _tenant_calls(tenant_store.DYNAMODB)
    fake = _tenant_calls(InMemoryTenants())
    # Then every answer is the same: records (config numbers as plain ints), errors alike
    assert dynamodb == fake
    # And the calls did meet each case
    assert dynamodb[0] == ("Conflict", "tenant_exists")
    assert dynamodb[1].config == {"max_messages": 5, "model": "m"} and dynamodb[3] is True
    assert dynamodb[7] == ("NotFound", "tenant_not_found")
    assert dynamodb[11] == frozenset({"h1"})
    assert (dynamodb[12].tier, dynamodb[12].config, dynamodb[12].name) == ("pro", {"max_messages": 7}, "Acme")
    assert dynamodb[17] == "TenantMissingError" and dynamodb[18] is False
    assert dynamodb[21] == (3, ["acme", "globex", "hooli", "initech", "umbrella", "wayne"])
    assert dynamodb[22] == (2, ["acme", "globex", "hooli", "wayne"])
    assert dynamodb[24].status == "offboarding" and dynamodb[24].purge_after == 1_900_000_000
    assert dynamodb[27] == dynamodb[28] == ("NotFound", "tenant_not_found")
    assert dynamodb[30] == (3, ["acme", "hooli", "initech", "umbrella", "wayne"])
    assert (dynamodb[32], dynamodb[33], dynamodb[34], dynamodb[35], dynamodb[36]) == (
        False,
        False,
        True,
        None,
        False,
    )
    assert dynamodb[39] is None

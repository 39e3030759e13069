"""The in-memory stores (tests/fakes) answer as the DynamoDB ones: the same calls, in the same
order, against each, give the same answers, the same records and the same errors. A logic test
that uses a fake then proves what it would prove against DynamoDB."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tenantry.errors import ApiError
from tenantry.stores import keys as key_store
from tests.fakes.keys import InMemoryKeys


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

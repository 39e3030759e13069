"""Tenant self-service keys: POST/GET /me/keys and DELETE /me/keys/{key_id}, through the tenants
function's handler, each call made with a real key's authorizer context."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from tenantry import authorizer, keys, tenancy
from tenantry.models.tenants import IssueKeyRequest
from tenantry.stores import keys as key_store
from tenantry.stores import tenants as tenant_store
from tests.conftest import HandlerClient, admin_context, key_context, load_function
from tests.fakes import tenants as fake_tenants
from tests.fakes.tenants import InMemoryTenants

STAGE_ARN = "arn:aws:execute-api:us-east-1:123456789012:testapi/v1"


class Api(HandlerClient):
    def call(self, method: str, path: str, *, key: str | None = None, **kwargs: Any) -> tuple[int, Any, Any]:
        auth = admin_context() if key is None else key_context(key)
        return self.invoke(method, path, authorizer=auth, **kwargs)


@pytest.fixture
def api(aws: dict[str, str], lambda_context: Any, flushes: Any) -> Api:
    return Api(load_function("tenants").lambda_handler, lambda_context)


def _onboard(api: Api, tenant_id: str, tier: str = "enterprise") -> str:
    status, body, _ = api.call(
        "POST", "/tenants", body={"name": tenant_id, "tier": tier, "tenant_id": tenant_id}
    )
    assert status == 201
    return str(body["api_key"])


def _scoped(tenant_id: str, *scopes: str) -> str:
    """A key of ``tenant_id`` with ``scopes``, as the operator issues it."""
    request = IssueKeyRequest(rotate=False, scopes=list(scopes) or None)  # type: ignore[arg-type]
    return tenancy.issue_key(tenant_id, request, None).api_key


def _allows(key: str, method: str, path: str) -> bool:
    event = {"type": "REQUEST", "methodArn": f"{STAGE_ARN}/GET/me", "headers": {"X-API-Key": key}}
    policy = authorizer.authorize(event)["policyDocument"]
    from local.gateway.auth import AuthorizerResult

    return AuthorizerResult("p", policy, {}, None).decide(f"{STAGE_ARN}/{method}/{path}") == "allow"


# ------------------------------------------------------------------ minting


def test_a_key_mints_a_key_with_a_subset_of_its_scopes_shown_once(api: Api) -> None:
    # Given acme's key for a CI job's owner: events and keys
    _onboard(api, "acme")
    owner = _scoped("acme", "events:read", "events:write", "keys:write")
    # When it mints a read-only key for a dashboard
    status, issued, _ = api.call(
        "POST", "/me/keys", key=owner, body={"name": "dashboard", "scopes": ["events:read"]}
    )
    # Then 201 shows the new key once, with its name and scopes; the item holds only the hash
    assert status == 201
    assert issued["key"]["name"] == "dashboard" and issued["key"]["scopes"] == ["events:read"]
    stored = key_store.DYNAMODB.get(keys.hash_key(issued["api_key"]))
    assert stored is not None and stored.tenant_id == "acme" and stored.scopes == frozenset({"events:read"})
    assert issued["older_keys_expire_at"] is None  # it rotates nothing
    # And at the edge it reads events and nothing else
    assert _allows(issued["api_key"], "GET", "events")
    assert not _allows(issued["api_key"], "POST", "events")
    assert not _allows(issued["api_key"], "POST", "me/keys")
    # And the listing shows it, never its secret
    status, listed, _ = api.call("GET", "/me/keys", key=owner)
    assert status == 200 and issued["api_key"] not in str(listed)
    assert "dashboard" in [key["name"] for key in listed["keys"]]


def test_a_key_cannot_grant_a_scope_it_lacks_and_inherits_its_own_by_default(api: Api) -> None:
    _onboard(api, "acme")
    owner = _scoped("acme", "events:read", "keys:write")
    before = len(tenancy.list_keys("acme"))
    # When it asks for chat, which it does not hold
    status, body, _ = api.call("POST", "/me/keys", key=owner, body={"scopes": ["events:read", "chat"]})
    # Then 403 names the field, and no key was made
    assert status == 403 and body["error"] == "scope_not_held" and body["field"] == "scopes"
    assert "chat" in body["message"]
    assert len(tenancy.list_keys("acme")) == before
    # And a key asked for without scopes gets the calling key's own, never more
    status, issued, _ = api.call("POST", "/me/keys", key=owner, body={"name": "same as mine"})
    assert status == 201 and issued["key"]["scopes"] == ["events:read", "keys:write"]


def test_a_key_with_every_scope_mints_any_and_a_key_without_keys_write_mints_none(api: Api) -> None:
    full = _onboard(api, "acme")
    status, issued, _ = api.call("POST", "/me/keys", key=full, body={"scopes": ["chat", "usage:read"]})
    assert status == 201 and issued["key"]["scopes"] == ["chat", "usage:read"]
    reader = _scoped("acme", "events:read")
    assert api.call("POST", "/me/keys", key=reader, body={})[1]["error"] == "scope_missing"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scopes": []}, "scopes"),
        ({"scopes": ["events:delete"]}, "scopes.0"),
        ({"scopes": ["chat", "chat"]}, "scopes"),
        ({"name": ""}, "name"),
        ({"expires_in_seconds": 10}, "expires_in_seconds"),
        ({"rotate": False}, "rotate"),
    ],
)
def test_a_malformed_request_is_422_naming_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    key = _onboard(api, "acme")
    status, answer, _ = api.call("POST", "/me/keys", key=key, body=body)
    assert status == 422 and field in [error["field"] for error in answer["errors"]], answer


# ------------------------------------------------------------------ the cap of live keys


def test_a_tenant_has_at_most_fifty_live_keys_and_a_revoked_one_frees_a_place(api: Api) -> None:
    # Given acme with its first key and 49 more it minted itself
    first = _onboard(api, "acme")
    minted = []
    for number in range(tenancy.MAX_LIVE_KEYS - 1):
        status, issued, _ = api.call("POST", "/me/keys", key=first, body={"name": f"ci-{number}"})
        assert status == 201, issued
        minted.append(issued["key"]["key_id"])
    # When it mints one more, then 409, and no key is added
    status, body, _ = api.call("POST", "/me/keys", key=first, body={"name": "one too many"})
    assert status == 409 and body["error"] == "key_limit_reached"
    assert len(tenancy.list_keys("acme")) == tenancy.MAX_LIVE_KEYS
    # And an operator's non-rotating issue is refused the same way, while a rotation is not
    with pytest.raises(tenant_store.KeyLimitReached):
        tenancy.issue_key("acme", IssueKeyRequest(rotate=False), None)
    # When one key is revoked, then a place is free again
    assert api.call("DELETE", f"/me/keys/{minted[0]}", key=first)[0] == 200
    assert api.call("POST", "/me/keys", key=first, body={"name": "replacement"})[0] == 201
    stored = tenant_store.DYNAMODB.get("acme")
    assert stored is not None and stored.live_key_count(time.time()) == tenancy.MAX_LIVE_KEYS


@pytest.mark.parametrize("store_name", ["dynamodb", "in-memory"])
def test_an_ended_key_drops_out_of_the_count_and_a_registration_again_is_the_same_one(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch, store_name: str
) -> None:
    # Given a tenant whose count holds two keys (cap 2): one ends in a minute, one never
    store: tenant_store.TenantStore = tenant_store.DYNAMODB if store_name == "dynamodb" else InMemoryTenants()
    store.create(tenant_store.TenantRecord("acme", "Acme", "basic", "active", "t", "t"))
    now = time.time()
    store.register_key("acme", "h-ending", ends_at=int(now) + 60, cap=2)
    store.register_key("acme", "h-forever", cap=2)
    # Then a third is refused, and the same key registered again is no new one
    with pytest.raises(tenant_store.KeyLimitReached):
        store.register_key("acme", "h-third", cap=2)
    store.register_key("acme", "h-forever", cap=2)
    # When the first one has ended, then the third fits, and the ended one left the count
    later = SimpleNamespace(time=lambda: now + 120)
    monkeypatch.setattr(tenant_store, "time", later)
    monkeypatch.setattr(fake_tenants, "time", later)
    store.register_key("acme", "h-third", cap=2)
    stored = store.get("acme")
    assert stored is not None and set(stored.live_keys or {}) == {"h-forever", "h-third"}


def test_concurrent_mints_never_take_the_count_past_the_cap(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given acme one key short of the cap
    first = _onboard(api, "acme")
    for _ in range(tenancy.MAX_LIVE_KEYS - 2):
        tenancy.issue_key("acme", IssueKeyRequest(rotate=False), None)
    # And two mints racing: the second one runs completely between the first one's read of the
    # count and its write (what two Lambda invocations at once can do)
    store = tenant_store.DYNAMODB
    read = store.get
    raced: list[Any] = []

    def get_then_race(tenant_id: str) -> Any:
        current = read(tenant_id)
        if not raced:
            raced.append("running")
            raced[0] = api.call("POST", "/me/keys", key=first, body={"name": "second"})
        return current

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "get", get_then_race)
        status, body, _ = api.call("POST", "/me/keys", key=first, body={"name": "first"})
    # Then exactly one of them got the last place: the other's conditional write failed, and its
    # second read counted the winner
    assert raced[0][0] == 201
    assert status == 409 and body["error"] == "key_limit_reached"
    live = [key for key in tenancy.list_keys("acme") if key.status == "active"]
    assert len(live) == tenancy.MAX_LIVE_KEYS


# ------------------------------------------------------------------ revocation


def test_a_key_revokes_another_key_of_its_tenant_at_once_but_never_itself(
    api: Api, flushes: list[Any]
) -> None:
    # Given acme's key and a second key it minted
    first = _onboard(api, "acme")
    second = api.call("POST", "/me/keys", key=first, body={"name": "ci"})[1]
    own_id = key_context(first)["key_id"]
    # When it revokes itself, then 409, and it still works
    status, body, _ = api.call("DELETE", f"/me/keys/{own_id}", key=first)
    assert status == 409 and body["error"] == "key_in_use" and body["field"] == "key_id"
    assert api.call("GET", "/me", key=first)[0] == 200
    # When it revokes the second key, then the key is refused from that moment: the item is
    # revoked and API Gateway's cached answers were flushed
    flushes.clear()
    status, revoked, _ = api.call("DELETE", f"/me/keys/{second['key']['key_id']}", key=first)
    assert status == 200 and revoked["status"] == "revoked"
    assert len(flushes) == 1
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        key_context(second["api_key"])


def test_another_tenants_key_is_neither_listed_nor_revocable(api: Api) -> None:
    # Given tenants A and B, each with two keys
    a_key = _onboard(api, "tenant-a")
    b_key = _onboard(api, "tenant-b")
    a_second = api.call("POST", "/me/keys", key=a_key, body={"name": "a's"})[1]
    api.call("POST", "/me/keys", key=b_key, body={"name": "b's"})
    # When B lists its keys, then only B's show
    status, listed, _ = api.call("GET", "/me/keys", key=b_key)
    assert status == 200 and {key["tenant_id"] for key in listed["keys"]} == {"tenant-b"}
    assert a_second["key"]["key_id"] not in str(listed)
    # When B revokes A's key by its id, then 404 (it does not exist for B), and A's key still works
    status, body, _ = api.call("DELETE", f"/me/keys/{a_second['key']['key_id']}", key=b_key)
    assert status == 404 and body["error"] == "key_not_found"
    assert key_context(a_second["api_key"])["tenant_id"] == "tenant-a"
    # And an unknown id is the same 404
    assert api.call("DELETE", "/me/keys/key_0000000000000000", key=b_key)[0] == 404

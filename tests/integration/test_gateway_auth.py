"""The local gateway's authentication: the whole matrix, the authorizer cache's TTL and its flush."""

from __future__ import annotations

import time

from tests.integration.conftest import TEST_AUTHORIZER_TTL, LocalStack, gateway_error

UNKNOWN_BUT_WELL_FORMED = "tnt_live_" + "1" * 44


def test_no_key_is_401_without_calling_the_authorizer(gateway: LocalStack) -> None:
    # Given no X-API-Key header / When a tenant route is called
    answer = gateway.request("GET", "/me")
    # Then API Gateway's own 401
    assert answer.status == 401
    assert answer.json == gateway_error(answer, "Unauthorized", "unauthorized")


def test_malformed_and_unknown_keys_are_401(gateway: LocalStack) -> None:
    for key in ("not-a-key", UNKNOWN_BUT_WELL_FORMED, "tnt_live_" + "x" * 200):
        # When the key is malformed, fails its checksum, or is unknown
        answer = gateway.request("GET", "/me", key=key)
        # Then 401, and no detail about why
        assert answer.status == 401, key
        assert answer.json == gateway_error(answer, "Unauthorized", "unauthorized")


def test_tenant_key_reaches_tenant_routes_and_is_denied_admin_routes(gateway: LocalStack) -> None:
    # Given a tenant
    tenant_id, key = gateway.create_tenant("pro")
    # When it calls /me, then /tenants and /stats
    me = gateway.request("GET", "/me", key=key)
    tenants = gateway.request("GET", "/tenants", key=key)
    one_tenant = gateway.request("GET", f"/tenants/{tenant_id}", key=key)
    # Then /me answers from the handler, and the cached policy denies the admin routes explicitly
    assert me.status == 200
    assert me.json["tenant_id"] == tenant_id
    assert tenants.status == one_tenant.status == 403
    assert tenants.json == gateway_error(
        tenants, "User is not authorized to access this resource with an explicit deny", "access_denied"
    )


def test_admin_key_reaches_admin_routes_only(gateway: LocalStack) -> None:
    # When the admin key calls an admin route and a tenant route
    listing = gateway.request("GET", "/tenants", key=gateway.admin_key)
    me = gateway.request("GET", "/me", key=gateway.admin_key)
    # Then the admin route answers and the tenant route is outside the admin policy
    assert listing.status == 200
    assert me.status == 403
    assert me.json == gateway_error(me, "User is not authorized to access this resource", "access_denied")


def test_suspended_tenant_is_403_at_once(gateway: LocalStack) -> None:
    # Given a tenant whose policy is already cached
    tenant_id, key = gateway.create_tenant("basic")
    assert gateway.request("GET", "/me", key=key).status == 200
    # When the admin suspends it
    patched = gateway.request(
        "PATCH", f"/tenants/{tenant_id}", key=gateway.admin_key, body={"status": "suspended"}
    )
    # Then the next request is refused, although the cache TTL has not passed, saying why
    assert patched.status == 200
    answer = gateway.request("GET", "/me", key=key)
    assert answer.status == 403
    assert answer.json == gateway_error(
        answer, "User is not authorized to access this resource with an explicit deny", "tenant_suspended"
    )
    # And resuming lets it back in
    gateway.request("PATCH", f"/tenants/{tenant_id}", key=gateway.admin_key, body={"status": "active"})
    assert gateway.request("GET", "/me", key=key).status == 200


def test_revocation_flushes_the_authorizer_cache(gateway: LocalStack) -> None:
    # Given a key whose policy is cached
    tenant_id, key = gateway.create_tenant("basic")
    assert gateway.request("GET", "/me", key=key).status == 200
    key_id = gateway.request("GET", "/me", key=key).json["key_id"]
    # When the admin revokes it
    revoked = gateway.request("DELETE", f"/tenants/{tenant_id}/keys/{key_id}", key=gateway.admin_key)
    # Then it stops working at once: the tenants function flushed the stage's authorizer cache
    assert revoked.status == 200
    assert gateway.request("GET", "/me", key=key).status == 401


def test_a_cached_policy_outlives_a_change_until_its_ttl(gateway: LocalStack) -> None:
    # Given a key whose policy is cached
    _, key = gateway.create_tenant("enterprise")
    assert gateway.request("GET", "/me", key=key).status == 200
    # When its record is revoked behind API Gateway's back (no flush)
    dynamodb = gateway.aws_client("dynamodb")
    from tenantry.keys import hash_key

    dynamodb.update_item(
        TableName="tenantry-local-ApiKeysTable",
        Key={"key_hash": {"S": hash_key(key)}},
        UpdateExpression="SET #s = :revoked",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":revoked": {"S": "revoked"}},
    )
    # Then the cached policy still admits it (that is what the flush is for)…
    assert gateway.request("GET", "/me", key=key).status == 200
    # …until ReauthorizeEvery has passed
    time.sleep(TEST_AUTHORIZER_TTL + 0.5)
    assert gateway.request("GET", "/me", key=key).status == 401


def test_rotation_keeps_the_old_key_for_the_grace_period(gateway: LocalStack) -> None:
    # Given a tenant and its first key
    tenant_id, old_key = gateway.create_tenant("pro")
    # When the key is rotated with a grace period
    rotated = gateway.request(
        "POST", f"/tenants/{tenant_id}/keys", key=gateway.admin_key, body={"grace_seconds": 3600}
    )
    # Then both keys work
    assert rotated.status == 201
    new_key = rotated.json["api_key"]
    assert gateway.request("GET", "/me", key=new_key).status == 200
    assert gateway.request("GET", "/me", key=old_key).status == 200


def test_the_authorizer_sees_every_route_of_one_cached_policy(gateway: LocalStack) -> None:
    # Given a tenant whose policy was cached by /me
    _, key = gateway.create_tenant("pro")
    assert gateway.request("GET", "/me", key=key).status == 200
    # When it calls another route under the same cached policy
    answer = gateway.request("GET", "/_test/echo/anything", key=key)
    # Then the cached policy admits it, and the handler sees the authorizer context
    assert answer.status == 200
    assert answer.json["event"]["requestContext"]["authorizer"]["role"] == "tenant"

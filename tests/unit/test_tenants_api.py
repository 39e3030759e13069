"""The admin API under /tenants and GET /me, through the tenants function's handler."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import pytest

from tenantry import edge, keys, tenancy
from tenantry.models.tenants import CreateTenantRequest
from tenantry.stores import keys as key_store
from tests.conftest import (
    REPO_ROOT,
    admin_context,
    api_event,
    load_function,
    response_json,
    tenant_context,
)


class Api:
    """Calls the tenants function the way API Gateway does after the authorizer."""

    def __init__(self, handler: Any, context: Any) -> None:
        self.handler = handler
        self.context = context

    def call(self, method: str, path: str, *, as_tenant: str | None = None, **kwargs: Any) -> tuple[int, Any]:
        auth = tenant_context(as_tenant) if as_tenant else admin_context()
        response = self.handler(api_event(method, path, authorizer=auth, **kwargs), self.context)
        return response["statusCode"], response_json(response)


@pytest.fixture
def api(aws: dict[str, str], lambda_context: Any) -> Api:
    return Api(load_function("tenants").lambda_handler, lambda_context)


def _stored_status(raw_key: str) -> str | None:
    stored = key_store.DYNAMODB.get(keys.hash_key(raw_key))
    return None if stored is None else stored.status


def edge_keys() -> list[dict[str, Any]]:
    from tenantry import aws as clients

    items: list[dict[str, Any]] = clients.apigateway().get_api_keys(includeValues=True)["items"]  # type: ignore[assignment]
    return items


def plan_of(edge_key_id: str) -> str | None:
    from tenantry import aws as clients

    for plan in clients.apigateway().get_usage_plans()["items"]:
        plan_keys = clients.apigateway().get_usage_plan_keys(usagePlanId=plan["id"])["items"]
        if any(item["id"] == edge_key_id for item in plan_keys):
            return str(plan["name"])
    return None


# ------------------------------------------------------------------ create


def test_create_returns_the_key_once_and_stores_only_its_hash(api: Api) -> None:
    # When an admin onboards a tenant
    status, body = api.call("POST", "/tenants", body={"name": "Acme", "tier": "basic", "tenant_id": "acme"})
    # Then the answer has the tenant and a working key
    assert status == 201
    assert body["tenant"] == {
        "tenant_id": "acme",
        "name": "Acme",
        "tier": "basic",
        "status": "active",
        "config": {},
        "created_at": body["tenant"]["created_at"],
        "updated_at": body["tenant"]["updated_at"],
        "limits": {
            "requests_per_minute": 10,
            "burst": 10,
            "requests_per_month": 10_000,
            "tokens_per_month": 100_000,
            "llm_tokens_per_month": 100_000,
        },
        "limit_sources": dict.fromkeys(
            ("requests_per_minute", "burst", "requests_per_month", "tokens_per_month"), "tier"
        ),
    }
    key = body["api_key"]
    assert keys.role_of(key) == "tenant"
    # And only the hash is stored
    stored = key_store.DYNAMODB.get(keys.hash_key(key))
    assert stored is not None and key not in json.dumps(asdict(stored))
    # And the tenant has one API Gateway key, in the basic usage plan: its usage identity, whose
    # value is no key of the tenant's and is shown nowhere
    (edge_key,) = edge_keys()
    assert edge_key["value"] != key and edge_key["value"] == stored.usage_key
    assert edge_key["enabled"] is True
    assert plan_of(edge_key["id"]) == "test-basic"
    assert edge_key["value"] not in json.dumps(body)
    # And the key never appears again: listing shows hints only
    status, listed = api.call("GET", "/tenants/acme/keys")
    assert status == 200 and key not in json.dumps(listed)


def test_create_without_an_id_generates_one(api: Api) -> None:
    status, body = api.call("POST", "/tenants", body={"name": "Globex Corporation", "tier": "pro"})
    assert status == 201
    assert body["tenant"]["tenant_id"].startswith("globex-corporation-")


def test_duplicate_tenant_id_is_409_and_changes_nothing(api: Api) -> None:
    api.call("POST", "/tenants", body={"name": "Acme", "tier": "basic", "tenant_id": "acme"})
    status, body = api.call("POST", "/tenants", body={"name": "Impostor", "tier": "pro", "tenant_id": "acme"})
    assert status == 409
    assert body["error"] == "tenant_exists" and body["message"] and body["request_id"]
    assert api.call("GET", "/tenants/acme")[1]["name"] == "Acme"
    assert len(edge_keys()) == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "Acme", "tier": "gold"}, "tier"),
        ({"name": "Acme"}, "tier"),
        ({"tier": "basic"}, "name"),
        ({"name": "", "tier": "basic"}, "name"),
        ({"name": "x" * 201, "tier": "basic"}, "name"),
        ({"name": 42, "tier": "basic"}, "name"),
        ({"name": "Acme", "tier": "basic", "tenant_id": "Has Spaces"}, "tenant_id"),
        ({"name": "Acme", "tier": "basic", "tenant_id": "_admin"}, "tenant_id"),
        ({"name": "Acme", "tier": "basic", "colour": "red"}, "colour"),
        ({"name": "Acme", "tier": "basic", "config": {"max_messages": 0}}, "config.max_messages"),
        ({"name": "Acme", "tier": "basic", "config": {"temperature": 2}}, "config.temperature"),
    ],
)
def test_invalid_create_is_422_naming_the_field_and_stores_nothing(
    api: Api, payload: dict[str, Any], field: str
) -> None:
    status, body = api.call("POST", "/tenants", body=payload)
    assert status == 422
    assert body["error"] == "validation_error"
    assert field in [error["field"] for error in body["errors"]]
    assert field in body["message"]
    assert api.call("GET", "/tenants")[1]["tenants"] == []
    assert edge_keys() == []


@pytest.mark.parametrize("raw", ["{not json", '{"name": "Acme", "tier": ', "\x00\x01"])
def test_malformed_json_is_400(api: Api, raw: str) -> None:
    status, body = api.call("POST", "/tenants", raw_body=raw)
    assert status == 400
    assert body["error"] == "malformed_json" and body["field"] == "body"


def test_a_json_array_body_is_422(api: Api) -> None:
    status, body = api.call("POST", "/tenants", raw_body="[1, 2]")
    assert status == 422 and body["errors"][0]["field"] == "body"


def test_body_over_256_kb_is_413(api: Api) -> None:
    status, body = api.call("POST", "/tenants", body={"name": "Acme", "tier": "basic", "pad": "x" * 262_144})
    assert status == 413
    assert body["error"] == "payload_too_large" and body["field"] == "body"
    assert api.call("GET", "/tenants")[1]["tenants"] == []


def test_model_choice_is_refused_below_enterprise(api: Api) -> None:
    payload = {"name": "Acme", "tier": "basic", "config": {"model": "claude-sonnet-4-5"}}
    status, body = api.call("POST", "/tenants", body=payload)
    assert status == 403
    assert body["error"] == "model_choice_not_in_tier" and body["field"] == "config.model"
    payload["tier"] = "enterprise"
    assert api.call("POST", "/tenants", body=payload)[0] == 201


# ------------------------------------------------------------------ read and list


def test_unknown_tenant_is_404_on_every_tenant_route(api: Api) -> None:
    for method, path, body in (
        ("GET", "/tenants/ghost", None),
        ("PATCH", "/tenants/ghost", {"name": "x"}),
        ("GET", "/tenants/ghost/keys", None),
        ("POST", "/tenants/ghost/keys", {}),
        ("DELETE", "/tenants/ghost/keys/key_0123456789abcdef", None),
    ):
        status, answer = api.call(method, path, body=body)
        assert status == 404, (method, path)
        assert answer["error"] == "tenant_not_found"


def test_list_paginates_with_next_token_and_filters(api: Api) -> None:
    # Given five tenants over two tiers, one suspended
    for index in range(5):
        tier = "pro" if index % 2 else "basic"
        api.call("POST", "/tenants", body={"name": f"T{index}", "tier": tier, "tenant_id": f"tenant-{index}"})
    api.call("PATCH", "/tenants/tenant-3", body={"status": "suspended"})
    # When listing two at a time
    seen: list[str] = []
    token = None
    while True:
        query = {"limit": "2", **({"next_token": token} if token else {})}
        status, page = api.call("GET", "/tenants", query=query)
        assert status == 200 and len(page["tenants"]) <= 2
        seen.extend(tenant["tenant_id"] for tenant in page["tenants"])
        token = page["next_token"]
        if token is None:
            break
    # Then every tenant appears exactly once
    assert sorted(seen) == [f"tenant-{index}" for index in range(5)]
    # And the filters narrow the list
    pro = api.call("GET", "/tenants", query={"tier": "pro"})[1]["tenants"]
    assert sorted(tenant["tenant_id"] for tenant in pro) == ["tenant-1", "tenant-3"]
    suspended = api.call("GET", "/tenants", query={"status": "suspended"})[1]["tenants"]
    assert [tenant["tenant_id"] for tenant in suspended] == ["tenant-3"]
    both = api.call("GET", "/tenants", query={"tier": "pro", "status": "active"})[1]["tenants"]
    assert [tenant["tenant_id"] for tenant in both] == ["tenant-1"]


@pytest.mark.parametrize(
    ("query", "field"),
    [({"limit": "0"}, "limit"), ({"limit": "many"}, "limit"), ({"status": "gone"}, "status")],
)
def test_bad_list_parameters_are_422(api: Api, query: dict[str, str], field: str) -> None:
    status, body = api.call("GET", "/tenants", query=query)
    assert status == 422 and body["errors"][0]["field"] == field


def test_a_garbled_next_token_is_400(api: Api) -> None:
    status, body = api.call("GET", "/tenants", query={"next_token": "%%%not-a-token"})
    assert status == 400 and body["field"] == "next_token"


# ------------------------------------------------------------------ update


def test_tier_change_moves_every_live_key_to_the_new_plan(api: Api, flushes: list[Any]) -> None:
    created = api.call("POST", "/tenants", body={"name": "Acme", "tier": "basic", "tenant_id": "acme"})[1]
    api.call("POST", "/tenants/acme/keys", body={"grace_seconds": 600})
    # When the admin upgrades the tenant
    status, tenant = api.call("PATCH", "/tenants/acme", body={"tier": "enterprise"})
    # Then the tenant, both keys' records and the tenant's usage identity move to enterprise
    assert status == 200 and tenant["tier"] == "enterprise"
    for item in edge_keys():
        assert plan_of(item["id"]) == "test-enterprise"
    stored = key_store.DYNAMODB.get(keys.hash_key(created["api_key"]))
    assert stored is not None and stored.tier == "enterprise"
    # And API Gateway's cached answers (which carry the tier) are flushed
    assert flushes and flushes[-1] == edge.Stage(api_id="testapi", stage="v1")


def test_suspension_disables_keys_at_both_places_and_resume_restores_them(
    api: Api, flushes: list[Any]
) -> None:
    created = api.call("POST", "/tenants", body={"name": "Acme", "tier": "basic", "tenant_id": "acme"})[1]
    status, tenant = api.call("PATCH", "/tenants/acme", body={"status": "suspended"})
    assert status == 200 and tenant["status"] == "suspended"
    assert [item["enabled"] for item in edge_keys()] == [False]
    assert _stored_status(created["api_key"]) == "suspended"
    assert len(flushes) == 1
    api.call("PATCH", "/tenants/acme", body={"status": "active"})
    assert [item["enabled"] for item in edge_keys()] == [True]
    assert _stored_status(created["api_key"]) == "active"


def test_config_patch_merges_and_null_removes(api: Api) -> None:
    api.call(
        "POST",
        "/tenants",
        body={"name": "Acme", "tier": "pro", "tenant_id": "acme", "config": {"system_prompt": "Be brief."}},
    )
    status, tenant = api.call("PATCH", "/tenants/acme", body={"config": {"max_messages": 8}})
    assert status == 200
    assert tenant["config"] == {"system_prompt": "Be brief.", "max_messages": 8}
    tenant = api.call("PATCH", "/tenants/acme", body={"config": {"system_prompt": None}, "name": "Acme Inc"})[
        1
    ]
    assert tenant["config"] == {"max_messages": 8} and tenant["name"] == "Acme Inc"


def test_downgrade_drops_a_model_choice_the_new_tier_lacks(api: Api) -> None:
    body = {"name": "Big", "tier": "enterprise", "tenant_id": "big", "config": {"model": "claude-opus-4-1"}}
    api.call("POST", "/tenants", body=body)
    tenant = api.call("PATCH", "/tenants/big", body={"tier": "pro"})[1]
    assert tenant["tier"] == "pro" and "model" not in tenant["config"]
    status, answer = api.call("PATCH", "/tenants/big", body={"config": {"model": "claude-opus-4-1"}})
    assert status == 403 and answer["error"] == "model_choice_not_in_tier"


@pytest.mark.parametrize(
    ("payload", "status_code", "field"),
    [
        ({}, 422, "body"),
        ({"tier": "platinum"}, 422, "tier"),
        ({"status": "deleted"}, 422, "status"),
        ({"tenant_id": "other"}, 422, "tenant_id"),
    ],
)
def test_invalid_patch_is_rejected_and_changes_nothing(
    api: Api, payload: dict[str, Any], status_code: int, field: str
) -> None:
    api.call("POST", "/tenants", body={"name": "Acme", "tier": "basic", "tenant_id": "acme"})
    status, body = api.call("PATCH", "/tenants/acme", body=payload)
    assert status == status_code
    assert field in [error["field"] for error in body["errors"]]
    tenant = api.call("GET", "/tenants/acme")[1]
    assert (tenant["tier"], tenant["status"]) == ("basic", "active")


# ------------------------------------------------------------------ keys


def test_rotation_returns_a_new_key_once_and_sets_the_grace_end(api: Api) -> None:
    first = api.call("POST", "/tenants", body={"name": "Acme", "tier": "pro", "tenant_id": "acme"})[1]
    status, issued = api.call("POST", "/tenants/acme/keys", body={"grace_seconds": 120})
    assert status == 201
    assert issued["api_key"] != first["api_key"] and keys.role_of(issued["api_key"]) == "tenant"
    assert issued["older_keys_expire_at"]
    listed = api.call("GET", "/tenants/acme/keys")[1]["keys"]
    assert [item["status"] for item in listed] == ["active", "active"]
    old = next(item for item in listed if item["key_id"] != issued["key"]["key_id"])
    assert old["expires_at"] == issued["older_keys_expire_at"]
    # And no API Gateway key was made: both keys draw from the tenant's one usage identity
    (edge_key,) = edge_keys()
    for raw in (first["api_key"], issued["api_key"]):
        stored = key_store.DYNAMODB.get(keys.hash_key(raw))
        assert stored is not None and stored.usage_key == edge_key["value"]


def test_rotation_without_a_body_uses_a_day_of_grace(api: Api) -> None:
    api.call("POST", "/tenants", body={"name": "Acme", "tier": "pro", "tenant_id": "acme"})
    status, issued = api.call("POST", "/tenants/acme/keys")
    assert status == 201 and issued["older_keys_expire_at"]


@pytest.mark.parametrize("payload", [{"grace_seconds": -1}, {"grace_seconds": "soon"}, {"grace": 5}])
def test_bad_rotation_input_is_422(api: Api, payload: dict[str, Any]) -> None:
    api.call("POST", "/tenants", body={"name": "Acme", "tier": "pro", "tenant_id": "acme"})
    status, _ = api.call("POST", "/tenants/acme/keys", body=payload)
    assert status == 422
    assert len(api.call("GET", "/tenants/acme/keys")[1]["keys"]) == 1


def test_revocation_is_immediate_leaves_the_usage_identity_and_flushes(api: Api, flushes: list[Any]) -> None:
    api.call("POST", "/tenants", body={"name": "Acme", "tier": "pro", "tenant_id": "acme"})
    before = edge_keys()
    key_id = api.call("GET", "/tenants/acme/keys")[1]["keys"][0]["key_id"]
    status, revoked = api.call("DELETE", f"/tenants/acme/keys/{key_id}")
    assert status == 200 and revoked["status"] == "revoked"
    # The tenant's usage identity is untouched (revoking a key touches no API Gateway key)
    assert edge_keys() == before
    assert len(flushes) == 1
    # Revoking again is harmless
    assert api.call("DELETE", f"/tenants/acme/keys/{key_id}")[0] == 200


def test_a_key_of_another_tenant_cannot_be_revoked_through_this_tenant(api: Api) -> None:
    api.call("POST", "/tenants", body={"name": "A", "tier": "pro", "tenant_id": "tenant-a"})
    api.call("POST", "/tenants", body={"name": "B", "tier": "pro", "tenant_id": "tenant-b"})
    a_key = api.call("GET", "/tenants/tenant-a/keys")[1]["keys"][0]["key_id"]
    status, body = api.call("DELETE", f"/tenants/tenant-b/keys/{a_key}")
    assert status == 404 and body["error"] == "key_not_found"
    assert api.call("GET", "/tenants/tenant-a/keys")[1]["keys"][0]["status"] == "active"


def test_malformed_key_id_is_422(api: Api) -> None:
    api.call("POST", "/tenants", body={"name": "A", "tier": "pro", "tenant_id": "tenant-a"})
    status, body = api.call("DELETE", "/tenants/tenant-a/keys/not-a-key-id")
    assert status == 422 and body["errors"][0]["field"] == "key_id"


# ------------------------------------------------------------------ roles and /me


def test_a_tenant_key_on_an_admin_route_is_403_even_past_the_gateway(api: Api) -> None:
    api.call("POST", "/tenants", body={"name": "A", "tier": "pro", "tenant_id": "tenant-a"})
    for method, path in (("GET", "/tenants"), ("GET", "/tenants/tenant-a"), ("DELETE", "/tenants/tenant-a")):
        status, body = api.call(method, path, as_tenant="tenant-a")
        assert status == 403 and body["error"] == "admin_only"
    assert api.call("GET", "/tenants/tenant-a")[0] == 200


def test_me_describes_the_calling_tenant_only(api: Api) -> None:
    api.call("POST", "/tenants", body={"name": "A", "tier": "pro", "tenant_id": "tenant-a"})
    api.call("POST", "/tenants", body={"name": "B", "tier": "enterprise", "tenant_id": "tenant-b"})
    status, me = api.call("GET", "/me", as_tenant="tenant-b", headers={"X-Tenant-ID": "tenant-a"})
    assert status == 200
    assert me["tenant_id"] == "tenant-b" and me["tier"] == "enterprise"
    assert me["limits"]["requests_per_minute"] == 1000
    assert "model_choice" in me["features"]
    assert api.call("GET", "/me")[0] == 403  # an admin key is not a tenant


def test_requests_without_an_authorizer_context_are_401(api: Api) -> None:
    response = api.handler(api_event("GET", "/me"), api.context)
    assert response["statusCode"] == 401


def test_unknown_route_is_a_json_404(api: Api) -> None:
    status, body = api.call("GET", "/nowhere")
    assert status == 404 and body["error"] == "route_not_found"


# ------------------------------------------------------------------ sample events


@pytest.mark.parametrize(
    "name", ["tenant-create", "tenant-list", "key-rotate", "tenant-limits", "my-key-create"]
)
def test_sample_events_run_through_the_handler(api: Api, name: str) -> None:
    # Given the sample events from events/ (tenant-create makes the tenant the others use)
    event = json.loads((REPO_ROOT / "events" / f"{name}.json").read_text())
    if name != "tenant-create":
        create = json.loads((REPO_ROOT / "events" / "tenant-create.json").read_text())
        assert api.handler(create, api.context)["statusCode"] == 201
    # When the handler runs them
    response = api.handler(event, api.context)
    # Then each succeeds with the documented status
    expected = {"tenant-create": 201, "tenant-list": 200, "key-rotate": 201, "tenant-limits": 200}
    assert response["statusCode"] == expected.get(name, 201), response["body"]
    if name == "tenant-list":
        assert [tenant["tenant_id"] for tenant in response_json(response)["tenants"]] == ["sample"]
    if name == "tenant-limits":
        sources = response_json(response)["limit_sources"]
        assert sources["requests_per_minute"] == sources["burst"] == "override"
        assert sources["tokens_per_month"] == "tier"
    if name == "my-key-create":
        assert response_json(response)["key"]["scopes"] == ["events:write"]


def test_tenancy_functions_are_callable_without_a_stage(aws: dict[str, str]) -> None:
    created = tenancy.create_tenant(CreateTenantRequest(name="Direct", tier="basic", tenant_id="direct"))
    assert tenancy.get_tenant("direct") == created.tenant

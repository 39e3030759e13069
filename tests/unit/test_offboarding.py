"""Offboarding: every key revoked and deleted at both places, every tenant item purged; repeatable."""

from __future__ import annotations

from typing import Any

import pytest

from tenantry import aws as clients
from tenantry import edge, keys, registry, settings, tenancy
from tenantry.models.tenants import CreateTenantRequest, IssueKeyRequest
from tenantry.stores import keys as key_store
from tests.conftest import admin_context, api_event, load_function, response_json


def items_of(tenant_id: str) -> dict[str, int]:
    """Items under the tenant's partition in every registered table, plus its key records."""
    counts: dict[str, int] = {}
    for entry in registry.registered_tables():
        table = clients.table(settings.table_name(entry.env_var))
        response = table.query(
            KeyConditionExpression="tenant_id = :t", ExpressionAttributeValues={":t": tenant_id}
        )
        counts[entry.logical_id] = len(response["Items"])
    counts["ApiKeys"] = len(key_store.list_for_tenant(tenant_id))
    return counts


def seed_partition_items(tenant_id: str) -> None:
    """Extra items in every partition-keyed table, as later features would write them."""
    for entry in registry.registered_tables():
        if entry.sort_key is None:
            continue
        table = clients.table(settings.table_name(entry.env_var))
        for index in range(3):
            sort_value: Any = index + 1 if entry.logical_id == "EventsTable" else f"seed#{index}"
            table.put_item(Item={"tenant_id": tenant_id, entry.sort_key: sort_value, "seeded": True})


@pytest.fixture
def handler(aws: dict[str, str], lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(edge, "flush_authorizer_cache", lambda stage: True)
    tenants = load_function("tenants")
    return lambda event: tenants.lambda_handler(event, lambda_context)


def test_offboarding_removes_every_item_and_key_and_keeps_other_tenants(handler: Any) -> None:
    # Given two tenants with rotated keys and data in every tenant table
    for tenant_id in ("leaving", "staying"):
        tenancy.create_tenant(CreateTenantRequest(name=tenant_id, tier="pro", tenant_id=tenant_id))
        tenancy.issue_key(tenant_id, IssueKeyRequest(grace_seconds=60), None)
        seed_partition_items(tenant_id)
    leaving_keys = [item["key_hash"] for item in key_store.list_for_tenant("leaving")]
    assert all(
        count > 0 for name, count in items_of("leaving").items() if name in ("TenantsTable", "ApiKeys")
    )

    # When the admin offboards one of them
    response = handler(api_event("DELETE", "/tenants/leaving", authorizer=admin_context()))

    # Then the answer counts what went
    assert response["statusCode"] == 200
    result = response_json(response)
    assert result["tenant_id"] == "leaving"
    assert result["keys_revoked"] == 2 and result["edge_keys_deleted"] == 2
    assert result["items_deleted"]["TenantsTable"] == 1
    # And nothing of that tenant is left anywhere
    assert set(items_of("leaving").values()) == {0}
    assert all(key_store.get(key_hash) is None for key_hash in leaving_keys)
    remaining_edge = clients.apigateway().get_api_keys(includeValues=True)["items"]
    assert {item["tags"]["tenant_id"] for item in remaining_edge} == {"staying"}
    # And the other tenant is untouched
    assert items_of("staying")["TenantsTable"] == 1 and items_of("staying")["ApiKeys"] == 2


def test_offboarding_twice_is_harmless_and_reports_zeros(handler: Any) -> None:
    tenancy.create_tenant(CreateTenantRequest(name="Gone", tier="basic", tenant_id="gone"))
    first = handler(api_event("DELETE", "/tenants/gone", authorizer=admin_context()))
    second = handler(api_event("DELETE", "/tenants/gone", authorizer=admin_context()))
    assert first["statusCode"] == second["statusCode"] == 200
    again = response_json(second)
    assert again["keys_revoked"] == 0 and again["edge_keys_deleted"] == 0
    assert set(again["items_deleted"].values()) == {0}
    assert handler(api_event("GET", "/tenants/gone", authorizer=admin_context()))["statusCode"] == 404


def test_an_offboarded_tenant_id_can_be_onboarded_again_with_a_fresh_key(handler: Any) -> None:
    old = tenancy.create_tenant(CreateTenantRequest(name="Phoenix", tier="basic", tenant_id="phoenix"))
    handler(api_event("DELETE", "/tenants/phoenix", authorizer=admin_context()))
    new = tenancy.create_tenant(CreateTenantRequest(name="Phoenix", tier="pro", tenant_id="phoenix"))
    assert key_store.get(keys.hash_key(old.api_key)) is None
    assert key_store.get(keys.hash_key(new.api_key)) is not None
    assert new.tenant.tier == "pro"


def test_a_failed_edge_key_leaves_no_half_onboarded_tenant(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given API Gateway refuses the new key

    def refuse(**_: Any) -> str:
        raise edge.EdgeError("API Gateway said no")

    monkeypatch.setattr(edge, "create_key", refuse)
    # When onboarding runs, it fails
    with pytest.raises(edge.EdgeError):
        tenancy.create_tenant(CreateTenantRequest(name="Half", tier="basic", tenant_id="half"))
    # Then no tenant record is left behind
    assert items_of("half")["TenantsTable"] == 0

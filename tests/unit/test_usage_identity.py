"""One usage identity per tenant (design §2): every key of a tenant draws from one API Gateway key,
whose value nobody is shown; and the upgrade of a stack deployed with one API key per tenant key."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tenantry import authorizer, edge, tenancy, upgrade
from tenantry import aws as clients
from tenantry.models.tenants import CreateTenantRequest, IssueKeyRequest, UpdateTenantRequest
from tenantry.stores import keys as key_store
from tenantry.stores import tenants as tenant_store
from tenantry_cli.main import main
from tests import first_scheme

STAGE_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/v1"


def _authorize(key: str) -> dict[str, Any]:
    return authorizer.authorize(
        {"type": "REQUEST", "methodArn": f"{STAGE_ARN}/GET/me", "headers": {"X-API-Key": key}}
    )


def _api_keys() -> list[dict[str, Any]]:
    return [dict(key) for key in clients.apigateway().get_api_keys(includeValues=True, limit=500)["items"]]


def _plan_names_of(edge_key_id: str) -> list[str]:
    api = clients.apigateway()
    return sorted(
        plan["name"]
        for plan in api.get_usage_plans(limit=500)["items"]
        if any(item["id"] == edge_key_id for item in api.get_usage_plan_keys(usagePlanId=plan["id"])["items"])
    )


def test_both_keys_of_a_rotated_tenant_answer_the_same_usage_identity(aws: dict[str, str]) -> None:
    # Given a basic tenant, rotated with a grace period (two keys work)
    first = tenancy.create_tenant(CreateTenantRequest(name="Acme", tier="basic", tenant_id="acme")).api_key
    second = tenancy.issue_key("acme", IssueKeyRequest(grace_seconds=3600), None).api_key
    # When the authorizer answers each key
    answers = [_authorize(key) for key in (first, second)]
    # Then both name one usage identity: the tenant's only API key, in the basic plan, whose value
    # is neither tenant key
    identities = {answer["usageIdentifierKey"] for answer in answers}
    (edge_key,) = _api_keys()
    assert identities == {edge_key["value"]}
    assert edge_key["value"] not in (first, second)
    assert _plan_names_of(edge_key["id"]) == ["test-basic"]
    # And another tenant has an identity of its own
    other = tenancy.create_tenant(
        CreateTenantRequest(name="Globex", tier="basic", tenant_id="globex")
    ).api_key
    assert _authorize(other)["usageIdentifierKey"] not in identities


def test_suspension_disables_the_identity_and_a_tier_change_moves_it(aws: dict[str, str]) -> None:
    tenancy.create_tenant(CreateTenantRequest(name="Acme", tier="basic", tenant_id="acme"))
    (edge_key,) = _api_keys()
    tenancy.update_tenant("acme", UpdateTenantRequest(status="suspended", tier="pro"), None)
    (after,) = _api_keys()
    assert (after["id"], after["enabled"]) == (edge_key["id"], False)
    assert _plan_names_of(after["id"]) == ["test-pro"]
    tenancy.update_tenant("acme", UpdateTenantRequest(status="active"), None)
    assert _api_keys()[0]["enabled"] is True


def test_issuing_rotating_and_revoking_keys_touch_no_api_gateway_key(
    aws: dict[str, str], faults: Any
) -> None:
    # Given a tenant with its identity
    tenancy.create_tenant(CreateTenantRequest(name="Acme", tier="basic", tenant_id="acme"))
    injector = faults("seed=1")
    injector.trace.clear()
    injector.tracing = True
    # When keys are issued, rotated, added and revoked
    tenancy.issue_key("acme", IssueKeyRequest(grace_seconds=60), None)
    added = tenancy.issue_key("acme", IssueKeyRequest(rotate=False, scopes=["chat"]), None)
    tenancy.revoke_key("acme", added.key.key_id, None)
    injector.tracing = False
    # Then API Gateway saw no call at all (the cache flush aside, which moto does not implement)
    called = {operation for service, operation in injector.trace if service == "apigateway"}
    assert called <= {"FlushStageAuthorizersCache"}
    assert {"PutItem", "UpdateItem"} <= {
        operation for service, operation in injector.trace if service == "dynamodb"
    }


def test_offboarding_deletes_the_identity_and_the_tenants_own_plan(aws: dict[str, str], flushes: Any) -> None:
    tenancy.create_tenant(CreateTenantRequest(name="Acme", tier="basic", tenant_id="acme"))
    tenancy.update_tenant("acme", UpdateTenantRequest.model_validate({"limits": {"burst": 4}}), None)
    assert edge.tenant_plan_id("acme") is not None
    result = tenancy.offboard_tenant("acme", None)
    assert result.edge_keys_deleted == 1
    assert _api_keys() == [] and edge.tenant_plan_id("acme") is None


# ------------------------------------------------------------------------------ the upgrade


def _first_scheme_tenant(aws: dict[str, str], tenant_id: str = "legacy") -> first_scheme.FirstSchemeTenant:
    return first_scheme.onboard(
        clients.dynamodb_client(),
        clients.apigateway(),
        tenants_table=aws["TenantsTable"],
        keys_table=aws["ApiKeysTable"],
        stack="test",
        tenant_id=tenant_id,
    )


def test_a_tenant_of_the_first_scheme_keeps_working_until_migrated(aws: dict[str, str]) -> None:
    # Given a tenant onboarded and rotated by the first scheme (an API key per tenant key)
    legacy = _first_scheme_tenant(aws)
    # Then each key still authorizes, with itself as its usage identity (its own API key)
    for raw in legacy.raw_keys:
        assert _authorize(raw)["usageIdentifierKey"] == raw
    # And the admin API still reads and lists it
    assert [key.status for key in tenancy.list_keys("legacy")] == ["active", "active"]
    assert tenancy.get_tenant("legacy").tier == "basic"


def test_issuing_a_key_to_a_tenant_of_the_first_scheme_gives_it_its_identity_first(
    aws: dict[str, str],
) -> None:
    legacy = _first_scheme_tenant(aws)
    issued = tenancy.issue_key("legacy", IssueKeyRequest(rotate=False), None)
    stored = tenant_store.DYNAMODB.get("legacy")
    assert stored is not None and stored.usage_key
    # every key, old and new, now answers the tenant's identity; no API key was made for the new one
    for raw in [*legacy.raw_keys, issued.api_key]:
        assert _authorize(raw)["usageIdentifierKey"] == stored.usage_key
    assert len(_api_keys()) == len(legacy.raw_keys) + 1  # the old ones stay until the migration


@pytest.mark.parametrize("flushed", [True, False])
def test_the_migration_stamps_every_key_then_retires_the_old_api_keys_once_the_cache_is_flushed(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch, flushed: bool
) -> None:
    # Given two tenants of the first scheme (one suspended) and one onboarded today
    legacy = _first_scheme_tenant(aws)
    suspended = _first_scheme_tenant(aws, "paused")
    tenancy.update_tenant("paused", UpdateTenantRequest(status="suspended"), None)
    tenancy.create_tenant(CreateTenantRequest(name="Today", tier="pro", tenant_id="today"))
    flushes: list[edge.Stage | None] = []

    def flush(stage: edge.Stage | None) -> bool:
        flushes.append(stage)
        return flushed

    monkeypatch.setattr(edge, "flush_authorizer_cache", flush)
    # When the migration runs (twice: it is safe to run again)
    stage = edge.Stage(api_id="abc123", stage="v1")
    report = upgrade.migrate(stage)
    again = upgrade.migrate(stage)
    # Then every tenant has one identity, every key draws from it
    assert (report.tenants, report.identities_created, report.keys_stamped) == (3, 2, 4)
    assert (again.identities_created, again.keys_stamped) == (0, 0)
    for tenant in (legacy, suspended):
        stored = tenant_store.DYNAMODB.get(tenant.tenant_id)
        assert stored is not None
        for raw in tenant.raw_keys:
            assert _authorize(raw)["usageIdentifierKey"] == stored.usage_key
    paused = tenant_store.DYNAMODB.get("paused")
    assert paused is not None
    (paused_identity,) = [key for key in _api_keys() if key["id"] == paused.usage_key_id]
    assert paused_identity["enabled"] is False
    assert flushes and flushes[0] == stage
    old_ids = set(legacy.edge_key_ids) | set(suspended.edge_key_ids)
    left = {str(key["id"]) for key in _api_keys()} & old_ids
    if flushed:
        # And, the cache flushed, the old API keys are gone and no item names them any more
        assert left == set() and report.old_keys_deleted == 4
        items = key_store.DYNAMODB.list_for_tenant("legacy") + key_store.DYNAMODB.list_for_tenant("paused")
        assert all(item.edge_key_id is None for item in items)
        assert len(_api_keys()) == 3
    else:
        # Or, without a flush, they are kept (a cached answer may still name them) for a later run
        assert left == old_ids and report.old_keys_left == 4 and report.old_keys_deleted == 0


def test_the_migrate_command_runs_with_the_operators_credentials(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    legacy = _first_scheme_tenant(aws)
    monkeypatch.setattr(edge, "flush_authorizer_cache", lambda stage: stage is not None)
    clients.apigateway().create_rest_api(name="test-api")
    arguments = ["keys", "migrate", "--table", aws["ApiKeysTable"], "--tenants-table", aws["TenantsTable"]]
    assert main([*arguments, "--stack", "test", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["identities_created"] == 1 and report["old_keys_deleted"] == 2
    # (the API was found by its name, <stack>-api: without a stage to flush nothing is deleted)
    stored = tenant_store.DYNAMODB.get("legacy")
    assert stored is not None
    assert [key["value"] for key in _api_keys()] == [stored.usage_key]
    assert all(_plan_names_of(key["id"]) == ["test-basic"] for key in _api_keys())
    assert {_authorize(raw)["usageIdentifierKey"] for raw in legacy.raw_keys} == {stored.usage_key}

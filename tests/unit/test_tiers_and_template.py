"""The tier table and template.yaml never disagree, and the template keeps its promises."""

from __future__ import annotations

from typing import Any

from local import template
from tenantry import registry
from tenantry.tiers import TIERS, as_template_mapping


def test_template_tier_mapping_equals_the_library_tier_table() -> None:
    # Given the template's Mappings and the library's tier table
    mapping = template.template()["Mappings"]["Tiers"]
    # Then they are the same table
    assert mapping == as_template_mapping()


def test_each_tier_has_a_usage_plan_built_from_the_mapping() -> None:
    # Given the usage plans the template declares, resolved as the local stack resolves them
    plans = {plan["name"]: plan for plan in template.usage_plan_definitions("stack").values()}
    # Then each tier has one, with rate = requests/min / 60, its burst and its monthly quota
    for tier in TIERS.values():
        plan = plans[f"stack-{tier.name}"]
        assert plan["throttle"]["rateLimit"] == tier.requests_per_minute / 60
        assert plan["throttle"]["burstLimit"] == tier.burst
        assert plan["quota"] == {"limit": tier.requests_per_month, "period": "MONTH"}


def test_api_resolves_keys_through_the_authorizer_with_a_300_second_cache() -> None:
    api = template.resources_of_type("AWS::Serverless::Api")["TenantryApi"]["Properties"]
    assert api["StageName"] == "v1"
    assert api["ApiKeySourceType"] == "AUTHORIZER"
    authorizer = api["Auth"]["Authorizers"][api["Auth"]["DefaultAuthorizer"]]
    assert authorizer["FunctionPayloadType"] == "REQUEST"
    assert authorizer["Identity"] == {"Headers": ["X-API-Key"], "ReauthorizeEvery": 300}
    assert api["Auth"]["ApiKeyRequired"] is True


def _routes() -> dict[tuple[str, str], dict[str, Any]]:
    return {(route.method, route.path): route.auth for route in template.api_routes()}


def test_health_is_open_admin_routes_skip_usage_plans_and_tenant_routes_need_a_key() -> None:
    routes = _routes()
    # Health and readiness: no authorizer at all
    for route in (("GET", "/health"), ("GET", "/ready")):
        assert routes[route].get("Authorizer") == "NONE"
    # Admin routes: the authorizer runs, but no tier's usage plan throttles an operator
    for (method, path), auth in routes.items():
        if path.startswith("/tenants") or path == "/stats":
            assert auth.get("ApiKeyRequired") is False, (method, path)
            assert auth.get("Authorizer") != "NONE", (method, path)
    # GET /me: authorizer and the tenant's usage plan (the API default)
    assert routes[("GET", "/me")] == {}


def test_tables_are_on_demand_recoverable_encrypted_and_retained() -> None:
    for logical_id, resource in template.resources_of_type("AWS::DynamoDB::Table").items():
        props = resource["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST", logical_id
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, logical_id
        assert props["SSESpecification"] == {"SSEEnabled": True}, logical_id
        assert resource["DeletionPolicy"] == "Retain", logical_id
        assert resource["UpdateReplacePolicy"] == "Retain", logical_id


def test_key_table_is_keyed_by_hash_with_a_by_tenant_index() -> None:
    props = template.resources_of_type("AWS::DynamoDB::Table")["ApiKeysTable"]["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "key_hash", "KeyType": "HASH"}]
    index = props["GlobalSecondaryIndexes"][0]
    assert index["IndexName"] == "by-tenant"
    assert index["KeySchema"] == [{"AttributeName": "tenant_id", "KeyType": "HASH"}]


def test_every_table_keyed_by_tenant_id_is_in_the_offboarding_registry() -> None:
    # Given every table whose partition key is tenant_id
    tenant_tables = {
        logical_id
        for logical_id, resource in template.resources_of_type("AWS::DynamoDB::Table").items()
        if resource["Properties"]["KeySchema"][0]["AttributeName"] == "tenant_id"
    }
    registered = {entry.logical_id for entry in registry.registered_tables()}
    # Then offboarding knows all of them
    assert tenant_tables <= registered


def test_the_tenants_function_can_reach_every_registered_table() -> None:
    # Offboarding runs in the tenants function: it needs each registered table's env var.
    variables = template.resources_of_type("AWS::Serverless::Function")["TenantsFunction"]["Properties"][
        "Environment"
    ]["Variables"]
    for entry in registry.registered_tables():
        assert variables.get(entry.env_var) == {"Ref": entry.logical_id}, entry


def test_functions_are_arm64_python313_with_the_core_layer() -> None:
    globals_ = template.template()["Globals"]["Function"]
    assert globals_["Runtime"] == "python3.13"
    assert globals_["Architectures"] == ["arm64"]
    layer = template.resources_of_type("AWS::Serverless::LayerVersion")["CoreLayer"]
    assert layer["Metadata"]["BuildArchitecture"] == "arm64"
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]

"""Per-tenant limit overrides (design §3): PATCH /tenants/{id} with ``limits``, through the tenants
function's handler; the edge limits by a usage plan of the tenant's own, the token budget by chat."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.retries.standard import ExponentialBackoff

from tenantry import aws as clients
from tenantry import clientconfig, edge, retry, tenancy
from tenantry.stores import tenants as tenant_store
from tests.conftest import (
    HandlerClient,
    add_tokens,
    admin_context,
    api_event,
    key_context,
    load_function,
    response_json,
)

BOTOCORE_ATTEMPTS = clientconfig.API["retries"]["total_max_attempts"]
BASIC = {"requests_per_minute": 10, "burst": 10, "requests_per_month": 10_000, "tokens_per_month": 100_000}
TIER = dict.fromkeys(BASIC, "tier")


class Api(HandlerClient):
    def call(self, method: str, path: str, *, key: str | None = None, **kwargs: Any) -> tuple[int, Any, Any]:
        """As the admin, or as the tenant key ``key`` (its real authorizer context)."""
        return self.invoke(
            method, path, authorizer=admin_context() if key is None else key_context(key), **kwargs
        )


@pytest.fixture
def api(aws: dict[str, str], lambda_context: Any, flushes: Any, monkeypatch: pytest.MonkeyPatch) -> Api:
    # botocore's backoff before a call sent again is a real wait; what is tested is the outcome
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    return Api(load_function("tenants").lambda_handler, lambda_context)


@pytest.fixture
def acme(api: Api) -> str:
    status, body, _ = api.call(
        "POST", "/tenants", body={"name": "Acme", "tier": "basic", "tenant_id": "acme"}
    )
    assert status == 201
    return str(body["api_key"])


def _plan_of_identity(tenant_id: str) -> dict[str, Any]:
    """The one usage plan the tenant's usage identity is in."""
    stored = tenant_store.DYNAMODB.get(tenant_id)
    assert stored is not None
    api = clients.apigateway()
    (plan,) = [
        plan
        for plan in api.get_usage_plans(limit=500)["items"]
        if any(
            item["id"] == stored.usage_key_id
            for item in api.get_usage_plan_keys(usagePlanId=plan["id"])["items"]
        )
    ]
    return dict(plan)


def _limits(answer: dict[str, Any]) -> dict[str, int]:
    return {name: answer["limits"][name] for name in BASIC}


def test_an_edge_override_gives_the_tenant_a_plan_of_its_own_and_every_view_shows_it(
    api: Api, acme: str
) -> None:
    # When the operator raises acme's rate and lowers its burst
    status, tenant, _ = api.call(
        "PATCH", "/tenants/acme", body={"limits": {"requests_per_minute": 120, "burst": 5}}
    )
    # Then the answer shows the effective limits and where each comes from
    assert status == 200
    assert _limits(tenant) == {**BASIC, "requests_per_minute": 120, "burst": 5}
    assert tenant["limit_sources"] == {**TIER, "requests_per_minute": "override", "burst": "override"}
    # And API Gateway enforces them: the tenant's identity sits in its own plan, the rest from its tier
    plan = _plan_of_identity("acme")
    assert plan["name"] == "test-tenant-acme"
    assert plan["throttle"] == {"rateLimit": 2.0, "burstLimit": 5}
    assert plan["quota"]["limit"] == 10_000
    # And GET /tenants/{id}, GET /me (as the tenant) and the usage report show the same
    assert api.call("GET", "/tenants/acme")[1]["limit_sources"]["burst"] == "override"
    status, me, _ = api.call("GET", "/me", key=acme)
    assert status == 200 and _limits(me) == _limits(tenant) and me["limit_sources"] == tenant["limit_sources"]
    assert api.call("GET", "/tenants/acme/usage")[1]["limits"]["burst"] == 5


def test_clearing_every_edge_override_returns_the_identity_to_its_tier_plan_and_deletes_its_own(
    api: Api, acme: str
) -> None:
    api.call("PATCH", "/tenants/acme", body={"limits": {"burst": 5, "tokens_per_month": 7}})
    # When the edge override is cleared (null), the token one kept
    status, tenant, _ = api.call("PATCH", "/tenants/acme", body={"limits": {"burst": None}})
    # Then the tier's value applies again, the tenant's plan is gone and its identity is in the tier's
    assert status == 200
    assert _limits(tenant) == {**BASIC, "tokens_per_month": 7}
    assert tenant["limit_sources"] == {**TIER, "tokens_per_month": "override"}
    assert _plan_of_identity("acme")["name"] == "test-basic"
    assert edge.tenant_plan_id("acme") is None


def test_a_token_override_alone_needs_no_plan_of_its_own(api: Api, acme: str) -> None:
    api.call("PATCH", "/tenants/acme", body={"limits": {"tokens_per_month": 0}})
    assert _plan_of_identity("acme")["name"] == "test-basic"
    assert edge.tenant_plan_id("acme") is None


def test_a_tier_change_keeps_the_overrides_and_brings_the_rest_to_the_new_tier(api: Api, acme: str) -> None:
    api.call("PATCH", "/tenants/acme", body={"limits": {"burst": 5}})
    status, tenant, _ = api.call("PATCH", "/tenants/acme", body={"tier": "pro"})
    assert status == 200 and tenant["limits"]["burst"] == 5 and tenant["limits"]["requests_per_minute"] == 100
    plan = _plan_of_identity("acme")
    assert plan["name"] == "test-tenant-acme"
    assert plan["throttle"] == {"rateLimit": 100 / 60, "burstLimit": 5} and plan["quota"]["limit"] == 100_000


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        ({"burst": 0}, "limits.burst"),
        ({"burst": "5"}, "limits.burst"),
        ({"burst": 5.5}, "limits.burst"),
        ({"burst": True}, "limits.burst"),
        ({"requests_per_minute": 600_001}, "limits.requests_per_minute"),
        ({"requests_per_month": -1}, "limits.requests_per_month"),
        ({"tokens_per_month": -5}, "limits.tokens_per_month"),
        ({"rpm": 5}, "limits.rpm"),
        ([5], "limits"),
    ],
)
def test_a_malformed_override_is_422_naming_the_field_and_changes_nothing(
    api: Api, acme: str, limits: Any, field: str
) -> None:
    status, body, _ = api.call("PATCH", "/tenants/acme", body={"limits": limits})
    assert status == 422, body
    assert field in [error["field"] for error in body["errors"]]
    stored = tenant_store.DYNAMODB.get("acme")
    assert stored is not None and dict(stored.limits) == {}
    assert edge.tenant_plan_id("acme") is None


def test_at_api_gateways_quota_of_usage_plans_the_operator_gets_a_409_and_nothing_changes(
    api: Api, acme: str, faults: Any
) -> None:
    # Given an account whose usage plans are used up (CreateUsagePlan answers LimitExceededException
    # to every one of botocore's attempts)
    injector = faults("seed=1")
    for _ in range(BOTOCORE_ATTEMPTS):
        injector.fail_once("apigateway", "CreateUsagePlan", "LimitExceededException")
    # When an edge limit is overridden
    status, body, _ = api.call("PATCH", "/tenants/acme", body={"limits": {"burst": 5}, "name": "Acme 2"})
    # Then 409 names the quota, never a 5xx, and nothing of the request was recorded
    assert status == 409 and body["error"] == "usage_plan_quota_reached" and body["field"] == "limits"
    assert "300" in body["message"]
    stored = tenant_store.DYNAMODB.get("acme")
    assert stored is not None and dict(stored.limits) == {} and stored.name == "Acme"
    assert _plan_of_identity("acme")["name"] == "test-basic"


def test_a_throttled_plan_update_is_a_503_with_retry_after_and_the_same_request_finishes_it(
    api: Api, acme: str, faults: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given acme's own plan, and API Gateway throttling the next UpdateUsagePlan past every retry
    # (botocore's attempts; our own retries have no time left)
    api.call("PATCH", "/tenants/acme", body={"limits": {"burst": 5}})
    monkeypatch.setattr(retry, "pause", lambda *args, **kwargs: False)
    injector = faults("seed=1")
    for _ in range(BOTOCORE_ATTEMPTS):
        injector.fail_once("apigateway", "UpdateUsagePlan", "TooManyRequestsException")
    # When the burst is changed again
    status, body, headers = api.call("PATCH", "/tenants/acme", body={"limits": {"burst": 6}})
    # Then 503 says when to come back (one plan update per 20 s per account)
    assert status == 503 and body["error"] == "usage_plan_update_throttled"
    assert headers["Retry-After"] == "20"
    # And the same request, sent again, finishes it
    status, tenant, _ = api.call("PATCH", "/tenants/acme", body={"limits": {"burst": 6}})
    assert status == 200 and tenant["limits"]["burst"] == 6
    assert _plan_of_identity("acme")["throttle"]["burstLimit"] == 6


# ------------------------------------------------------------------ the token budget (chat)


@pytest.mark.parametrize("case", [(None, 429), (200_000, 200), (0, 429)], ids=["tier", "raised", "zero"])
def test_chat_enforces_the_overridden_token_budget(
    api: Api, acme: str, fixed_clock: Any, lambda_context: Any, case: tuple[int | None, int]
) -> None:
    override, status = case
    # Given acme (basic: 100,000 tokens a month) that used 150,000 this month
    add_tokens("acme", "month#2026-01", 100_000, 50_000)
    if override is not None:
        api.call("PATCH", "/tenants/acme", body={"limits": {"tokens_per_month": override}})
    # When one of its users chats
    chat = load_function("chat").lambda_handler
    event = api_event(
        "POST", "/chat", authorizer=key_context(acme), body={"message": "hi"}, headers={"X-User-ID": "u1"}
    )
    response = chat(event, lambda_context)
    # Then the budget in force decides: the tier's, or the override
    assert response["statusCode"] == status, response_json(response)
    if status == 429:
        assert response_json(response)["error"] == "token_budget_exceeded"


def test_the_tenancy_view_of_a_tenant_without_overrides_says_tier_everywhere(aws: dict[str, str]) -> None:
    stored = tenant_store.TenantRecord("acme", "Acme", "pro", "active", "t", "t")
    view = tenancy.tenant_view(stored)
    assert view.limits.requests_per_minute == 100 and view.limits.llm_tokens_per_month == 1_000_000
    assert set(view.limit_sources.model_dump().values()) == {"tier"}

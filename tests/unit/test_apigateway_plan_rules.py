"""API Gateway's usage-plan rules that moto 5.2 lacks (local/apigateway_rules.py), for the plans of
a tenant's own (issue 25): each test fails when its rule stops taking effect."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tenantry import aws as clients


@pytest.fixture
def plan(aws: dict[str, str]) -> str:
    created = clients.apigateway().create_usage_plan(
        name="test-tenant-acme",
        throttle={"rateLimit": 10 / 60, "burstLimit": 10},
        quota={"limit": 10_000, "period": "MONTH"},
    )
    return str(created["id"])


def test_a_fractional_rate_is_updated_as_api_gateway_stores_it(plan: str) -> None:
    # When a plan's limits are replaced with 25 requests a minute, burst 7, 500 a month
    api = clients.apigateway()
    api.update_usage_plan(
        usagePlanId=plan,
        patchOperations=[
            {"op": "replace", "path": "/throttle/rateLimit", "value": repr(25 / 60)},
            {"op": "replace", "path": "/throttle/burstLimit", "value": "7"},
            {"op": "replace", "path": "/quota/limit", "value": "500"},
        ],
    )
    # Then the plan holds them as numbers (moto alone fails on the fraction, and keeps text)
    stored = api.get_usage_plan(usagePlanId=plan)
    assert stored["throttle"] == {"rateLimit": 25 / 60, "burstLimit": 7}
    assert stored["quota"]["limit"] == 500


def test_deleting_a_plan_that_is_gone_is_not_found(plan: str) -> None:
    api = clients.apigateway()
    api.delete_usage_plan(usagePlanId=plan)
    with pytest.raises(ClientError) as caught:
        api.delete_usage_plan(usagePlanId=plan)
    assert caught.value.response["Error"]["Code"] == "NotFoundException"


def test_a_plan_that_covers_a_stage_is_not_deleted_until_the_stage_is_removed(aws: dict[str, str]) -> None:
    # Given a plan covering a stage of an API, with a key in it
    api = clients.apigateway()
    rest_api = api.create_rest_api(name="api")["id"]
    root = api.get_resources(restApiId=rest_api)["items"][0]["id"]
    api.put_method(restApiId=rest_api, resourceId=root, httpMethod="GET", authorizationType="NONE")
    api.put_integration(restApiId=rest_api, resourceId=root, httpMethod="GET", type="MOCK")
    api.create_deployment(restApiId=rest_api, stageName="v1")
    plan = api.create_usage_plan(name="p", apiStages=[{"apiId": rest_api, "stage": "v1"}])["id"]
    key = api.create_api_key(name="k", value="k" * 30, enabled=True)["id"]
    api.create_usage_plan_key(usagePlanId=plan, keyId=key, keyType="API_KEY")
    # When it is deleted, then API Gateway refuses: its stage goes first
    with pytest.raises(ClientError) as caught:
        api.delete_usage_plan(usagePlanId=plan)
    assert caught.value.response["Error"]["Code"] == "BadRequestException"
    api.update_usage_plan(
        usagePlanId=plan, patchOperations=[{"op": "remove", "path": "/apiStages", "value": f"{rest_api}:v1"}]
    )
    api.delete_usage_plan(usagePlanId=plan)
    # And its keys went with it: the key may join another plan of the same stage
    other = api.create_usage_plan(name="q", apiStages=[{"apiId": rest_api, "stage": "v1"}])["id"]
    api.create_usage_plan_key(usagePlanId=other, keyId=key, keyType="API_KEY")
    assert [item["id"] for item in api.get_usage_plan_keys(usagePlanId=other)["items"]] == [key]

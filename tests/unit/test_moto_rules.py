"""What the local stack adds in front of moto holds on both of its paths: the embedded server's WSGI
middleware (local/dynamodb_rules.py, local/apigateway_rules.py, local/transactions.py) and moto in
process behind botocore's before-send (local/inprocess.py). Each test fails when its rule stops
taking effect: moto alone accepts what these refuse."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local import faults
from local.embedded import EmbeddedAws
from local.template import local_table_name

USAGE = {"tenant_id": {"S": "acme"}, "period": {"S": "month#2026-03"}}


@pytest.fixture
def embedded() -> Iterator[EmbeddedAws]:
    # Per test: moto's state is one per process, and a moto-in-process test's end resets it.
    with EmbeddedAws() as server:
        yield server


def _error(call: Any, **kwargs: Any) -> ClientError:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    return raised.value


# ------------------------------------------------------------------------------ API Gateway


def _plans_and_key(apigateway: Any, name: str) -> tuple[str, str, str]:
    first = apigateway.create_usage_plan(name=f"{name}-a")["id"]
    second = apigateway.create_usage_plan(name=f"{name}-b")["id"]
    key = apigateway.create_api_key(
        name=name, value=f"{name}-value-long-enough-for-api-gateway", enabled=True
    )
    return first, second, str(key["id"])


def _check_usage_plan_rules(apigateway: Any, name: str) -> None:
    first, second, key = _plans_and_key(apigateway, name)
    apigateway.create_usage_plan_key(usagePlanId=first, keyId=key, keyType="API_KEY")
    # The same key again in its plan, or in another plan of the same (here: no) stage: AWS refuses
    again = _error(apigateway.create_usage_plan_key, usagePlanId=first, keyId=key, keyType="API_KEY")
    other = _error(apigateway.create_usage_plan_key, usagePlanId=second, keyId=key, keyType="API_KEY")
    assert again.response["Error"]["Code"] == other.response["Error"]["Code"] == "ConflictException"
    assert [item["id"] for item in apigateway.get_usage_plan_keys(usagePlanId=second)["items"]] == []
    # A key that is not in a plan cannot be removed from it
    missing = _error(apigateway.delete_usage_plan_key, usagePlanId=second, keyId=key)
    assert missing.response["Error"]["Code"] == "NotFoundException"
    assert missing.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_a_key_meets_one_usage_plan_per_stage_on_the_embedded_server(embedded: EmbeddedAws) -> None:
    _check_usage_plan_rules(embedded.client("apigateway"), "embedded")


@pytest.mark.usefixtures("aws")
def test_a_key_meets_one_usage_plan_per_stage_with_moto_in_process() -> None:
    from tenantry import aws as clients

    _check_usage_plan_rules(clients.apigateway(), "inprocess")


def _tenant_plan(apigateway: Any, name: str) -> str:
    created = apigateway.create_usage_plan(
        name=name,
        throttle={"rateLimit": 10 / 60, "burstLimit": 10},
        quota={"limit": 10_000, "period": "MONTH"},
    )
    return str(created["id"])


def _check_plan_limits_are_numbers(apigateway: Any, name: str) -> None:
    # Given a tenant's own plan (issue 25) whose limits are replaced with 25 requests a minute,
    # burst 7, 500 a month, beside a change moto applies itself
    plan = _tenant_plan(apigateway, name)
    answered = apigateway.update_usage_plan(
        usagePlanId=plan,
        patchOperations=[
            {"op": "replace", "path": "/throttle/rateLimit", "value": repr(25 / 60)},
            {"op": "replace", "path": "/throttle/burstLimit", "value": "7"},
            {"op": "replace", "path": "/quota/limit", "value": "500"},
            {"op": "replace", "path": "/description", "value": "override"},
        ],
    )
    # Then the answer and the stored plan hold them as AWS does: a fractional rate, integers (moto
    # alone fails on the fraction, and keeps the quota as text)
    stored = apigateway.get_usage_plan(usagePlanId=plan)
    for shown in (answered, stored):
        assert shown["throttle"] == {"rateLimit": 25 / 60, "burstLimit": 7}
        assert shown["quota"] == {"limit": 500, "period": "MONTH"}
        assert shown["description"] == "override"
    # And a limit that is not a number is AWS's 400, the plan unchanged
    bad = _error(
        apigateway.update_usage_plan,
        usagePlanId=plan,
        patchOperations=[{"op": "replace", "path": "/throttle/rateLimit", "value": "fast"}],
    )
    assert bad.response["Error"]["Code"] == "BadRequestException"
    assert apigateway.get_usage_plan(usagePlanId=plan)["throttle"]["rateLimit"] == 25 / 60


def _check_plan_deletion_rules(apigateway: Any, name: str) -> None:
    # Given a plan covering a stage of an API, with a key in it
    rest_api = apigateway.create_rest_api(name=name)["id"]
    root = apigateway.get_resources(restApiId=rest_api)["items"][0]["id"]
    apigateway.put_method(restApiId=rest_api, resourceId=root, httpMethod="GET", authorizationType="NONE")
    apigateway.put_integration(restApiId=rest_api, resourceId=root, httpMethod="GET", type="MOCK")
    apigateway.create_deployment(restApiId=rest_api, stageName="v1")
    stage = {"apiId": rest_api, "stage": "v1"}
    plan = apigateway.create_usage_plan(name=f"{name}-p", apiStages=[stage])["id"]
    key = apigateway.create_api_key(
        name=name, value=f"{name}-value-long-enough-for-api-gateway", enabled=True
    )
    apigateway.create_usage_plan_key(usagePlanId=plan, keyId=key["id"], keyType="API_KEY")
    # When it is deleted, then AWS refuses while it covers the stage (moto deletes it)
    covering = _error(apigateway.delete_usage_plan, usagePlanId=plan)
    assert covering.response["Error"]["Code"] == "BadRequestException"
    apigateway.update_usage_plan(
        usagePlanId=plan, patchOperations=[{"op": "remove", "path": "/apiStages", "value": f"{rest_api}:v1"}]
    )
    apigateway.delete_usage_plan(usagePlanId=plan)
    # And a plan that is gone is not found, nor are its keys (moto: an internal error, and the keys)
    for call, arguments in (
        (apigateway.delete_usage_plan, {"usagePlanId": plan}),
        (apigateway.get_usage_plan_keys, {"usagePlanId": plan}),
        (apigateway.create_usage_plan_key, {"usagePlanId": plan, "keyId": key["id"], "keyType": "API_KEY"}),
        (apigateway.update_usage_plan, {"usagePlanId": plan, "patchOperations": []}),
    ):
        gone = _error(call, **arguments)
        assert gone.response["Error"]["Code"] == "NotFoundException", call
    # And its key may join another plan of the same stage
    other = apigateway.create_usage_plan(name=f"{name}-q", apiStages=[stage])["id"]
    apigateway.create_usage_plan_key(usagePlanId=other, keyId=key["id"], keyType="API_KEY")
    assert [item["id"] for item in apigateway.get_usage_plan_keys(usagePlanId=other)["items"]] == [key["id"]]


def test_a_tenant_plans_limits_are_numbers_on_the_embedded_server(embedded: EmbeddedAws) -> None:
    _check_plan_limits_are_numbers(embedded.client("apigateway"), "embedded-tenant")


@pytest.mark.usefixtures("aws")
def test_a_tenant_plans_limits_are_numbers_with_moto_in_process() -> None:
    from tenantry import aws as clients

    _check_plan_limits_are_numbers(clients.apigateway(), "inprocess-tenant")


def test_a_usage_plan_is_deleted_as_on_aws_on_the_embedded_server(embedded: EmbeddedAws) -> None:
    _check_plan_deletion_rules(embedded.client("apigateway"), "embedded-deleted")


@pytest.mark.usefixtures("aws")
def test_a_usage_plan_is_deleted_as_on_aws_with_moto_in_process() -> None:
    from tenantry import aws as clients

    _check_plan_deletion_rules(clients.apigateway(), "inprocess-deleted")


# ------------------------------------------------------------------------------ DynamoDB tokens


def test_a_transactions_token_makes_a_resend_a_no_op_on_the_embedded_server(embedded: EmbeddedAws) -> None:
    dynamodb = embedded.client("dynamodb")
    table = local_table_name("UsageTable")
    add = {
        "Update": {
            "TableName": table,
            "Key": USAGE,
            "UpdateExpression": "ADD #requests :one",
            "ExpressionAttributeNames": {"#requests": "requests"},
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }
    # Given a transaction that committed with its token, sent again (a lost answer's resend)
    for _ in range(2):
        dynamodb.transact_write_items(TransactItems=[add], ClientRequestToken="embedded-t1")
    # Then it was applied once; and the token with other items is refused
    item = dynamodb.get_item(TableName=table, Key=USAGE, ConsistentRead=True)["Item"]
    assert item["requests"] == {"N": "1"}
    other = {**add, "Update": {**add["Update"], "ExpressionAttributeValues": {":one": {"N": "5"}}}}
    refused = _error(dynamodb.transact_write_items, TransactItems=[other], ClientRequestToken="embedded-t1")
    assert refused.response["Error"]["Code"] == "IdempotentParameterMismatchException"


# ------------------------------------------------------------------------------ faults in process


def test_a_fault_answered_in_process_never_reaches_moto(aws: dict[str, str]) -> None:
    from tenantry import aws as clients

    client = clients.dynamodb_client()
    table = aws["TenantsTable"]
    item = {"tenant_id": {"S": "faulted"}}
    # Given every transaction answered with a conflict
    with faults.activate("conflict=100%") as injector:
        refused = _error(
            client.transact_write_items, TransactItems=[{"Put": {"TableName": table, "Item": item}}]
        )
    # Then the caller saw DynamoDB's cancellation, and moto never wrote the item
    assert refused.response["Error"]["Code"] == "TransactionCanceledException"
    assert injector.injected
    assert "Item" not in client.get_item(TableName=table, Key=item, ConsistentRead=True)

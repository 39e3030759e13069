"""Fault injection (local/faults.py): the spec's grammar, AWS's wire shapes, seeded decisions,
lagging indexes; in process through botocore's events, as the unit tests use it."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local import faults as fault_injection
from tenantry import aws as clients
from tenantry import retry


def test_the_spec_parses_rates_operations_codes_and_seed() -> None:
    spec = fault_injection.FaultSpec.parse(
        "conflict=20%, throttle@Query=0.5,gsi-lag=3s,ssm=AccessDeniedException:50%,seed=7"
    )
    assert spec.seed == 7
    kinds = {rule.kind: rule for rule in spec.rules}
    assert kinds["conflict"].rate == pytest.approx(0.2)
    assert kinds["conflict"].operations == ("TransactWriteItems",)
    assert kinds["throttle"].operations == ("Query",)
    assert kinds["gsi-lag"].seconds == 3
    assert (kinds["ssm"].code, kinds["ssm"].rate) == ("AccessDeniedException", 0.5)
    assert fault_injection.FaultSpec.parse("model-hang").rules[0].seconds == fault_injection.HANG_SECONDS


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("conflicts=20%", "conflicts"),
        ("conflict=120%", "conflict=120%"),
        ("throttle", "throttle"),
        ("seed=x", "seed"),
    ],
)
def test_a_bad_spec_names_the_item(text: str, named: str) -> None:
    with pytest.raises(fault_injection.FaultSpecError, match=named):
        fault_injection.FaultSpec.parse(text)


def test_without_a_spec_nothing_is_wrapped() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        return [b""]

    assert not fault_injection.FaultSpec.parse("")
    assert fault_injection.wrap(app, fault_injection.FaultSpec.parse(" ")) is app


def _transaction(table: str, *keys: str) -> list[dict[str, Any]]:
    return [
        {"Put": {"TableName": table, "Item": {"tenant_id": {"S": "t"}, "position": {"N": key}}}}
        for key in keys
    ]


def test_a_conflict_is_the_cancellation_dynamodb_sends(aws: dict[str, str], faults: Any) -> None:
    # Given conflicts on every transaction
    injector = faults("conflict=100%")
    table = aws["EventsTable"]
    # When a transaction of three items is sent
    with pytest.raises(ClientError) as caught:
        clients.dynamodb_client().transact_write_items(TransactItems=_transaction(table, "1", "2", "3"))  # type: ignore[arg-type]
    # Then botocore raises TransactionCanceledException with one reason per item, one a conflict,
    # without retrying it, and nothing was written
    response = caught.value.response
    assert response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [reason["Code"] for reason in response["CancellationReasons"]]
    assert sorted(reasons) == ["None", "None", "TransactionConflict"]
    listed = ", ".join(reasons)
    assert response["Error"]["Message"] == (
        f"Transaction cancelled, please refer cancellation reasons for specific reasons [{listed}]"
    )
    assert response["ResponseMetadata"]["RetryAttempts"] == 0
    assert retry.is_lost_race(caught.value)
    assert injector.injected == {"dynamodb:TransactWriteItems:TransactionConflict": 1}
    assert clients.dynamodb_client().scan(TableName=table)["Count"] == 0


def test_botocore_retries_throttling_and_gives_up_after_its_attempts(
    aws: dict[str, str], faults: Any
) -> None:
    # Given every DynamoDB call throttled
    injector = faults("throttle=100%")
    # When the project's client reads an item
    with pytest.raises(ClientError) as caught:
        clients.dynamodb_client().get_item(
            TableName=aws["EventsTable"], Key={"tenant_id": {"S": "t"}, "position": {"N": "0"}}
        )
    # Then it was one of DynamoDB's throttling errors, tried 4 times (the standard retry mode)
    assert caught.value.response["Error"]["Code"] in (
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
    )
    assert caught.value.response["ResponseMetadata"]["RetryAttempts"] == 3
    assert sum(injector.injected.values()) == 4


def test_the_same_seed_gives_the_same_faults(aws: dict[str, str]) -> None:
    def run(seed: int) -> list[str]:
        outcomes = []
        with fault_injection.activate(f"throttle=50%,seed={seed}") as injector:
            client = boto3.client(
                "dynamodb", config=Config(retries={"total_max_attempts": 1, "mode": "standard"})
            )
            for _ in range(20):
                try:
                    client.describe_table(TableName=aws["EventsTable"])
                    outcomes.append("ok")
                except ClientError as exc:
                    outcomes.append(clients.error_code(exc))
            assert sum(injector.injected.values()) == 20 - outcomes.count("ok")
        return outcomes

    first = run(3)
    assert first == run(3)
    assert first != run(4)
    assert 0 < first.count("ok") < 20


def test_a_lagging_index_misses_recent_writes_until_the_lag_passes(aws: dict[str, str], faults: Any) -> None:
    # Given a GSI that lags 60 s (the clock is the test's)
    injector = faults("gsi-lag=60")
    now = [1000.0]
    injector.clock = lambda: now[0]
    keys = clients.dynamodb_client()
    table = aws["ApiKeysTable"]
    keys.put_item(
        TableName=table, Item={"key_hash": {"S": "h1"}, "tenant_id": {"S": "acme"}, "status": {"S": "active"}}
    )

    def by_tenant() -> list[str]:
        answer = keys.query(
            TableName=table,
            IndexName="by-tenant",
            KeyConditionExpression="tenant_id = :t",
            ExpressionAttributeValues={":t": {"S": "acme"}},
        )
        assert answer["Count"] == len(answer["Items"])
        return [item["key_hash"]["S"] for item in answer["Items"]]

    # When the index is read at once, then after the lag
    fresh = by_tenant()
    consistent = keys.get_item(TableName=table, Key={"key_hash": {"S": "h1"}}, ConsistentRead=True)
    now[0] += 61
    later = by_tenant()
    # Then the index missed the key at first, the table did not, and the index caught up
    assert fresh == []
    assert "Item" in consistent
    assert later == ["h1"]


def test_ssm_and_api_gateway_faults(aws: dict[str, str], faults: Any) -> None:
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/p", Value="v", Type="SecureString")
    faults("ssm=AccessDeniedException,apigw=100%")
    with pytest.raises(ClientError) as denied:
        ssm.get_parameter(Name="/p", WithDecryption=True)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    with pytest.raises(ClientError) as throttled:
        clients.apigateway().create_api_key(name="k", value="x" * 30, enabled=True)
    assert throttled.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    # Reads that are not key management pass
    assert clients.apigateway().get_usage_plans()["items"]


def test_fail_once_breaks_exactly_one_call(aws: dict[str, str], faults: Any) -> None:
    injector = faults("seed=1")
    injector.fail_once("apigateway", "CreateApiKey", "BadRequestException")
    with pytest.raises(ClientError):
        clients.apigateway().create_api_key(name="k", value="y" * 30, enabled=True)
    assert clients.apigateway().create_api_key(name="k", value="y" * 30, enabled=True)["id"]


# ---------------------------------------------------------------------------------- stale key index


def test_security_relevant_key_listings_do_not_trust_a_lagging_index(
    aws: dict[str, str], faults: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tenantry import edge, tenancy
    from tenantry.models.tenants import CreateTenantRequest, IssueKeyRequest, UpdateTenantRequest
    from tenantry.stores import keys as key_store

    monkeypatch.setattr(edge, "flush_authorizer_cache", lambda stage: True)
    # Given the by-tenant index lags a minute behind the table
    injector = faults("gsi-lag=60")
    created = tenancy.create_tenant(CreateTenantRequest(name="Acme", tier="basic", tenant_id="acme"))
    first_key = created.api_key
    # When the tenant's key is rotated at once with a grace, and the tenant is then suspended
    rotated = tenancy.issue_key("acme", IssueKeyRequest(grace_seconds=60), None)
    tenancy.update_tenant("acme", UpdateTenantRequest(status="suspended"), None)
    # Then both keys were found although the index missed them: the first got the grace expiry,
    # both are suspended, and listing shows both
    from tenantry import keys

    first = key_store.DYNAMODB.get(keys.hash_key(first_key))
    second = key_store.DYNAMODB.get(keys.hash_key(rotated.api_key))
    assert first is not None and second is not None
    assert first.expires_at is not None
    assert (first.status, second.status) == ("suspended", "suspended")
    assert len(tenancy.list_keys("acme")) == 2
    assert injector.injected["dynamodb:Query:stale"] > 0  # the index did miss keys

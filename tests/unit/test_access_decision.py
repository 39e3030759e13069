"""local/access.py's decision: what IAM's dynamodb:LeadingKeys allows a session tagged TenantId."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from local import access

SCHEMAS = access.KeySchemas("t")
GRANTS = access.Grants("t")
EVENTS = "t-EventsTable"
CONVERSATIONS = "t-ConversationsTable"
API_KEYS = "t-ApiKeysTable"


def key(tenant: str, **extra: Any) -> dict[str, Any]:
    return {"tenant_id": {"S": tenant}, **{name: {"S": value} for name, value in extra.items()}}


def decide(operation: str, body: dict[str, Any], tenant: str = "acme") -> access.Denied | None:
    return access.denial(operation, body, tenant, SCHEMAS, GRANTS)


@pytest.mark.parametrize(
    ("operation", "table"),
    [("GetItem", EVENTS), ("UpdateItem", EVENTS), ("GetItem", "t-IdempotencyTable")],
)
def test_single_item_operations_follow_the_key(operation: str, table: str) -> None:
    assert decide(operation, {"TableName": table, "Key": key("acme")}) is None
    assert decide(operation, {"TableName": table, "Key": key("globex")}) == access.Denied(
        f"dynamodb:{operation}", table
    )


def test_only_the_actions_the_role_grants_on_each_table() -> None:
    # Events are never deleted by a tenant request, and no item is condition-checked alone
    assert decide("DeleteItem", {"TableName": EVENTS, "Key": key("acme")}) is not None
    check = {"ConditionCheck": {"TableName": EVENTS, "Key": key("acme")}}
    assert decide("TransactWriteItems", {"TransactItems": [check]}) is not None


def test_put_item_follows_the_item() -> None:
    assert decide("PutItem", {"TableName": EVENTS, "Item": key("acme")}) is None
    assert decide("PutItem", {"TableName": EVENTS, "Item": key("globex")}) is not None
    # A key that is not text (a number where the tenant should be) is never the tenant
    assert decide("PutItem", {"TableName": EVENTS, "Item": {"tenant_id": {"N": "1"}}}) is not None


@pytest.mark.parametrize(
    ("expression", "names", "tenant", "allowed"),
    [
        ("tenant_id = :t AND #p >= :start", {"#p": "position"}, "acme", True),
        ("#n0 = :t AND begins_with(#n1, :s)", {"#n0": "tenant_id", "#n1": "sk"}, "acme", True),
        (":t = tenant_id", {}, "acme", True),
        ("(tenant_id = :t) and #p > :start", {"#p": "position"}, "acme", True),
        ("tenant_id = :t AND #p >= :start", {"#p": "position"}, "globex", False),
        ("#p = :t", {"#p": "position"}, "acme", False),  # not the partition key
    ],
)
def test_query_follows_the_key_condition(
    expression: str, names: dict[str, str], tenant: str, allowed: bool
) -> None:
    body = {
        "TableName": EVENTS,
        "KeyConditionExpression": expression,
        "ExpressionAttributeValues": {":t": {"S": tenant}, ":start": {"N": "1"}, ":s": {"S": "u#"}},
    }
    if names:
        body["ExpressionAttributeNames"] = names
    assert (decide("Query", body) is None) is allowed


def test_query_on_an_index_uses_the_index_partition_key() -> None:
    body = {
        "TableName": CONVERSATIONS,
        "IndexName": "by-activity",
        "KeyConditionExpression": "tenant_id = :t",
        "ExpressionAttributeValues": {":t": {"S": "acme"}},
    }
    assert decide("Query", body) is None
    assert decide("Query", {**body, "IndexName": "no-such-index"}) is not None
    # The key table's by-tenant index is keyed by tenant_id too, but the role has no grant there
    by_tenant = {**body, "TableName": API_KEYS, "IndexName": "by-tenant"}
    assert access.denial("Query", by_tenant, "acme", SCHEMAS) is None  # the leading key alone allows it
    assert decide("Query", by_tenant) is not None
    assert decide("GetItem", {"TableName": API_KEYS, "Key": {"key_hash": {"S": "acme"}}}) is not None


def test_the_role_never_writes_the_tenants_table() -> None:
    tenants = "t-TenantsTable"
    assert decide("GetItem", {"TableName": tenants, "Key": key("acme")}) is None
    assert decide("PutItem", {"TableName": tenants, "Item": key("acme")}) == access.Denied(
        "dynamodb:PutItem", tenants
    )
    assert decide("UpdateItem", {"TableName": tenants, "Key": key("acme")}) is not None


def test_legacy_key_conditions() -> None:
    condition = {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "acme"}]}
    assert decide("Query", {"TableName": EVENTS, "KeyConditions": {"tenant_id": condition}}) is None
    other = {**condition, "AttributeValueList": [{"S": "globex"}]}
    assert decide("Query", {"TableName": EVENTS, "KeyConditions": {"tenant_id": other}}) is not None


def test_batches_and_transactions_need_every_key_to_be_the_tenants() -> None:
    batch_get = {"RequestItems": {EVENTS: {"Keys": [key("acme"), key("globex")]}}}
    assert decide("BatchGetItem", batch_get) == access.Denied("dynamodb:BatchGetItem", EVENTS)
    deletes = {"RequestItems": {CONVERSATIONS: [{"DeleteRequest": {"Key": key("acme")}}]}}
    assert decide("BatchWriteItem", deletes) is None
    puts = {"RequestItems": {CONVERSATIONS: [{"PutRequest": {"Item": key("globex")}}]}}
    assert decide("BatchWriteItem", puts) is not None
    check = {"ConditionCheck": {"TableName": EVENTS, "Key": key("globex")}}
    put = {"Put": {"TableName": EVENTS, "Item": key("acme")}}
    assert decide("TransactWriteItems", {"TransactItems": [put, check]}) == access.Denied(
        "dynamodb:ConditionCheckItem", EVENTS
    )
    assert decide("TransactWriteItems", {"TransactItems": [put]}) is None
    gets = {"TransactItems": [{"Get": {"TableName": EVENTS, "Key": key("globex")}}]}
    assert decide("TransactGetItems", gets) == access.Denied("dynamodb:GetItem", EVENTS)


@pytest.mark.parametrize("operation", ["Scan", "DescribeTable", "ExecuteStatement", "DeleteTable"])
def test_scan_and_everything_but_item_access_are_refused(operation: str) -> None:
    assert decide(operation, {"TableName": EVENTS}) == access.Denied(f"dynamodb:{operation}", EVENTS)


def test_unknown_tables_are_refused() -> None:
    assert decide("GetItem", {"TableName": "elsewhere", "Key": key("acme")}) is not None


def test_only_sessions_tagged_with_a_tenant_are_checked() -> None:
    enforcer = access.Enforcer(SCHEMAS, GRANTS)
    # An AssumeRole without the tag is not a tenant session
    enforcer.sessions.record({"Action": "AssumeRole"}, "ASIAUNTAGGED", "arn")
    enforcer.sessions.record(
        {"Action": "AssumeRole", "Tags.member.1.Key": "TenantId", "Tags.member.1.Value": "acme"},
        "ASIAACME",
        "arn:aws:sts::123456789012:assumed-role/r/acme",
    )
    body = json.dumps({"TableName": EVENTS, "Key": key("globex")}).encode()
    target = "DynamoDB_20120810.GetItem"
    assert enforcer.check_dynamodb("ASIAUNTAGGED", target, body) is None
    assert enforcer.check_dynamodb("testing", target, body) is None
    refusal = enforcer.check_dynamodb("ASIAACME", target, body)
    assert refusal is not None
    answer = json.loads(refusal)
    assert answer["__type"] == "com.amazon.coral.service#AccessDeniedException"
    assert "assumed-role/r/acme is not authorized to perform: dynamodb:GetItem" in answer["Message"]


def test_the_wsgi_wrapper_answers_like_dynamodb_and_never_calls_moto() -> None:
    enforcer = access.Enforcer(SCHEMAS, GRANTS)
    enforcer.sessions.record(
        {"Action": "AssumeRole", "Tags.member.1.Key": "TenantId", "Tags.member.1.Value": "acme"},
        "ASIAACME",
        "a",
    )
    reached: list[str] = []

    def moto(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        reached.append(environ["HTTP_X_AMZ_TARGET"])
        start_response("200 OK", [])
        return [b"{}"]

    app = access.EnforcingApp(moto, enforcer)
    statuses: list[str] = []

    def call(tenant: str) -> bytes:
        body = json.dumps({"TableName": EVENTS, "Key": key(tenant)}).encode()
        environ = {
            "REQUEST_METHOD": "POST",
            "HTTP_AUTHORIZATION": (
                "AWS4-HMAC-SHA256 Credential=ASIAACME/20261124/us-east-1/dynamodb/aws4_request, x"
            ),
            "HTTP_X_AMZ_TARGET": "DynamoDB_20120810.GetItem",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
        }
        return b"".join(app(environ, lambda status, headers: statuses.append(status)))

    assert call("acme") == b"{}"
    denied = call("globex")
    assert statuses == ["200 OK", "400 Bad Request"]
    assert json.loads(denied)["__type"].endswith("#AccessDeniedException")
    assert reached == ["DynamoDB_20120810.GetItem"]  # the denied request never reached moto

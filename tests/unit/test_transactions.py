"""Transactions on the embedded server (local/transactions.py) answer as moto's own TransactWriteItems
does: the same outcomes, cancellation reasons and rollbacks, without moto's copy of the table."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from local.embedded import EmbeddedAws
from local.template import local_table_name


def _key(position: int) -> dict[str, Any]:
    return {"tenant_id": {"S": "acme"}, "position": {"N": str(position)}}


def _scenario(client: Any, table: str) -> list[Any]:
    """A publish-shaped history: what each step answered, and the items it left."""
    seen: list[Any] = []

    def attempt(items: list[dict[str, Any]]) -> None:
        try:
            client.transact_write_items(TransactItems=items)
            seen.append("ok")
        except ClientError as exc:
            error = exc.response["Error"]["Code"]
            reasons = exc.response.get("CancellationReasons")
            seen.append((error, reasons))

    head_update = {
        "Update": {
            "TableName": table,
            "Key": _key(0),
            "UpdateExpression": "SET #last = :new",
            "ConditionExpression": "#last = :expected",
            "ExpressionAttributeNames": {"#last": "last"},
            "ExpressionAttributeValues": {":new": {"N": "1"}, ":expected": {"N": "0"}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }
    event = {
        "Put": {
            "TableName": table,
            "Item": {**_key(1), "type": {"S": "first"}},
            "ConditionExpression": "attribute_not_exists(#position)",
            "ExpressionAttributeNames": {"#position": "position"},
        }
    }
    client.put_item(TableName=table, Item={**_key(0), "last": {"N": "0"}})
    attempt([head_update, event])  # commits both
    attempt([head_update, {"Put": {**event["Put"], "Item": {**_key(2), "type": {"S": "x"}}}}])  # stale head
    attempt([{"Put": {**event["Put"], "Item": {**_key(3), "type": {"S": "y"}}}}, event])  # taken position
    attempt([event, {"Delete": {"TableName": table, "Key": _key(1)}}])  # two operations on one item
    items = client.query(
        TableName=table,
        KeyConditionExpression="tenant_id = :tenant",
        ExpressionAttributeValues={":tenant": {"S": "acme"}},
        ConsistentRead=True,
    )["Items"]
    seen.append(sorted((item["position"]["N"], item.get("last"), item.get("type")) for item in items))
    return seen


def test_the_embedded_servers_transactions_answer_as_moto_does(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.dynamodb.models import DynamoDBBackend

    from tenantry import aws as clients

    # Given moto's own transactions (in process) and the embedded server's
    expected = _scenario(clients.dynamodb_client(), aws["EventsTable"])
    moto_own = DynamoDBBackend.transact_write_items
    used: list[int] = []

    def counted(self: Any, transact_items: list[dict[str, Any]]) -> None:
        used.append(len(transact_items))
        moto_own(self, transact_items)

    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", counted)
    with EmbeddedAws() as server:
        got = _scenario(server.client("dynamodb"), local_table_name("EventsTable"))
    # Then every step answered the same (reasons and the failed condition's item included), the
    # same items are left, and moto's own transaction (its table copy) ran only for the two
    # operations on one item, which moto itself refuses
    assert got == expected
    assert expected[1][0] == "TransactionCanceledException" and expected[1][1][0]["Item"]["last"] == {
        "N": "1"
    }
    assert expected[2][1] == [
        {"Code": "None"},
        {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"},
    ]
    assert expected[3][0] == "ValidationException"
    assert used == [2]

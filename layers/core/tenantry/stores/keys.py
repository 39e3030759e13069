"""The ApiKeys table: one item per key, partition key ``sha256(key)``; GSI ``by-tenant``.

The raw key is never stored or logged. Items carry the tenant's tier and the key's status so the
authorizer answers from one consistent read.
"""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import Key

from tenantry import aws, settings

BY_TENANT_INDEX = "by-tenant"


def _table() -> Any:
    return aws.table(settings.table_name(settings.API_KEYS_TABLE))


def put(item: dict[str, Any]) -> None:
    _table().put_item(Item=item, ConditionExpression="attribute_not_exists(key_hash)")


def get(key_hash: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = (
        _table().get_item(Key={"key_hash": key_hash}, ConsistentRead=True).get("Item")
    )
    return item


def list_for_tenant(tenant_id: str, registered: set[str] | None = None) -> list[dict[str, Any]]:
    """Every key of a tenant, oldest first, each read consistently.

    The ``by-tenant`` index is eventually consistent: a key created a moment ago can be missing
    from it. ``registered`` (the tenant item's own list of key hashes, read consistently) closes
    that gap for security-relevant listings; the index still finds keys made before that list
    existed."""
    hashes: set[str] = set(registered or ())
    kwargs: dict[str, Any] = {
        "IndexName": BY_TENANT_INDEX,
        "KeyConditionExpression": Key("tenant_id").eq(tenant_id),
        "ProjectionExpression": "key_hash",
    }
    while True:
        response = _table().query(**kwargs)
        hashes.update(str(item["key_hash"]) for item in response.get("Items", []))
        if "LastEvaluatedKey" not in response:
            break
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    fresh = [get(key_hash) for key_hash in sorted(hashes)]
    return sorted(
        (item for item in fresh if item is not None and item.get("tenant_id") == tenant_id),
        key=lambda item: str(item["created_at"]),
    )


def set_fields(key_hash: str, changes: dict[str, Any]) -> None:
    names = {f"#f{index}": name for index, name in enumerate(changes)}
    values = {f":v{index}": value for index, value in enumerate(changes.values())}
    assignments = ", ".join(f"#f{index} = :v{index}" for index in range(len(changes)))
    _table().update_item(
        Key={"key_hash": key_hash},
        UpdateExpression=f"SET {assignments}",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
        ConditionExpression="attribute_exists(key_hash)",
    )


def delete(key_hash: str) -> None:
    _table().delete_item(Key={"key_hash": key_hash})

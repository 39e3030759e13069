"""The ApiKeys table: one item per key, partition key ``sha256(key)``; GSI ``by-tenant``.

The raw key is never stored or logged. Items carry the tenant's tier and the key's status so the
authorizer answers from one consistent read.
"""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from tenantry import aws, retry, settings
from tenantry.errors import Conflict

BY_TENANT_INDEX = "by-tenant"


def _table() -> Any:
    return aws.table(settings.table_name(settings.API_KEYS_TABLE))


# A key item is written "pending" before its API Gateway twin exists and becomes active last, so
# a key whose issuing failed half-way is never usable and is known to be abandoned.
PENDING = "pending"


def put(item: dict[str, Any]) -> None:
    """Insert a new key item. A send whose answer was lost and that botocore sent again finds its
    own item there: that is success, not a conflict."""
    try:
        retry.call(lambda: _table().put_item(Item=item, ConditionExpression="attribute_not_exists(key_hash)"))
    except ClientError as exc:
        existing = get(item["key_hash"]) if aws.error_code(exc) == "ConditionalCheckFailedException" else None
        if existing is None or existing.get("key_id") != item["key_id"]:
            raise


def activate(key_hash: str, *, edge_key_id: str | None, status: str) -> None:
    """Turn a pending key into a usable one (``status``: active or suspended), recording its API
    Gateway twin. ``Conflict`` when the key is no longer pending and not already so: another
    request abandoned it meanwhile (its secret is then never shown)."""
    changes: dict[str, Any] = {"status": status}
    if edge_key_id is not None:
        changes["edge_key_id"] = edge_key_id
    try:
        set_fields(key_hash, changes, expected_status=PENDING)
    except ClientError as exc:
        if aws.error_code(exc) != "ConditionalCheckFailedException":
            raise
        current = get(key_hash)
        if current is not None and all(current.get(name) == value for name, value in changes.items()):
            return  # a send whose answer was lost, sent again: the key is already what we wanted
        raise Conflict(
            "The new key was abandoned by a concurrent key operation on this tenant; retry",
            code="key_operation_conflict",
        ) from exc


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


def set_fields(key_hash: str, changes: dict[str, Any], *, expected_status: str | None = None) -> None:
    """Set ``changes`` on an existing key item (whose status is ``expected_status``, if given).
    Safe to send again: the same values land the same way."""
    names = {f"#f{index}": name for index, name in enumerate(changes)}
    values = {f":v{index}": value for index, value in enumerate(changes.values())}
    assignments = ", ".join(f"#f{index} = :v{index}" for index in range(len(changes)))
    condition = "attribute_exists(key_hash)"
    if expected_status is not None:
        names["#status_now"] = "status"
        values[":status_now"] = expected_status
        condition += " AND #status_now = :status_now"
    retry.call(
        lambda: _table().update_item(
            Key={"key_hash": key_hash},
            UpdateExpression=f"SET {assignments}",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ConditionExpression=condition,
        )
    )


def delete(key_hash: str) -> None:
    retry.call(lambda: _table().delete_item(Key={"key_hash": key_hash}))

"""The Tenants table: one item per tenant, partition key tenant_id."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.conditions import Attr
from botocore.exceptions import ClientError

from tenantry import aws, retry, settings
from tenantry.errors import Conflict, NotFound
from tenantry.stores.pagination import decode_token, encode_token


def _table() -> Any:
    return aws.data_table(settings.table_name(settings.TENANTS_TABLE))


# A tenant being offboarded keeps its item, in this state, until the final purge deletes it: the
# id is refused meanwhile, and the admin API treats the tenant as gone.
OFFBOARDING = "offboarding"


def create(item: dict[str, Any]) -> None:
    """Insert a new tenant; ``Conflict`` when the id is taken."""
    try:
        retry.call(
            lambda: _table().put_item(Item=item, ConditionExpression="attribute_not_exists(tenant_id)")
        )
    except ClientError as exc:
        if aws.error_code(exc) == "ConditionalCheckFailedException":
            raise Conflict(f"Tenant {item['tenant_id']!r} already exists", code="tenant_exists") from exc
        raise


def get(tenant_id: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = (
        _table().get_item(Key={"tenant_id": tenant_id}, ConsistentRead=True).get("Item")
    )
    return item


def require(tenant_id: str) -> dict[str, Any]:
    """The tenant's item; ``NotFound`` when it does not exist or is being offboarded."""
    item = get(tenant_id)
    if item is None or item.get("status") == OFFBOARDING:
        raise NotFound(f"No tenant {tenant_id!r}", code="tenant_not_found")
    return item


def update(tenant_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Set ``changes`` on an existing tenant and return the new item; ``NotFound`` otherwise."""
    names = {f"#f{index}": name for index, name in enumerate(changes)} | {"#status": "status"}
    values = {f":v{index}": value for index, value in enumerate(changes.values())}
    values[":offboarding"] = OFFBOARDING
    assignments = ", ".join(f"#f{index} = :v{index}" for index in range(len(changes)))
    try:
        response = retry.call(
            lambda: _table().update_item(
                Key={"tenant_id": tenant_id},
                UpdateExpression=f"SET {assignments}",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                # An offboarding tenant is gone for every change but its own offboarding.
                ConditionExpression="attribute_exists(tenant_id) AND #status <> :offboarding",
                ReturnValues="ALL_NEW",
            )
        )
    except ClientError as exc:
        if aws.error_code(exc) == "ConditionalCheckFailedException":
            raise NotFound(f"No tenant {tenant_id!r}", code="tenant_not_found") from exc
        raise
    attributes: dict[str, Any] = response["Attributes"]
    return attributes


KEY_REGISTRY = "key_hashes"
# A tenant item's incarnation: a random token set when the tenant is created. Its keys carry it, so
# a request authorized for an offboarded tenant can never write into a new tenant with the same id.
INCARNATION = "incarnation"


def _change_key_list(tenant_id: str, action: str, key_hash: str) -> None:
    names = {"#keys": KEY_REGISTRY}
    values: dict[str, Any] = {":hash": {key_hash}}
    condition = "attribute_exists(tenant_id)"  # never create a stub tenant
    if action == "ADD":
        # No new key for a tenant being offboarded (a rotation racing the offboarding fails here).
        names["#status"] = "status"
        values[":offboarding"] = OFFBOARDING
        condition += " AND #status <> :offboarding"
    retry.call(
        lambda: _table().update_item(
            Key={"tenant_id": tenant_id},
            UpdateExpression=f"{action} #keys :hash",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ConditionExpression=condition,
        )
    )


def register_key(tenant_id: str, key_hash: str) -> None:
    """Add a key to the tenant's own list of its keys, before the key exists: security-relevant
    listings read this list consistently instead of trusting the eventually consistent GSI.
    ``NotFound`` when the tenant is gone or being offboarded."""
    try:
        _change_key_list(tenant_id, "ADD", key_hash)
    except ClientError as exc:
        if aws.error_code(exc) == "ConditionalCheckFailedException":
            raise NotFound(f"No tenant {tenant_id!r}", code="tenant_not_found") from exc
        raise


def unregister_key(tenant_id: str, key_hash: str) -> None:
    """Drop an abandoned key (never shown, now deleted) from the tenant's list; a tenant that is
    gone has nothing to drop."""
    try:
        _change_key_list(tenant_id, "DELETE", key_hash)
    except ClientError as exc:
        if aws.error_code(exc) != "ConditionalCheckFailedException":
            raise


# A tenant item carries this attribute from its creation until its onboarding answered: a retry
# of the onboarding then resumes it instead of answering 409 tenant_exists.
ONBOARDING = "onboarding"


def is_onboarding(item: dict[str, Any] | None) -> bool:
    return bool((item or {}).get(ONBOARDING))


def finish_onboarding(tenant_id: str) -> None:
    retry.call(
        lambda: _table().update_item(
            Key={"tenant_id": tenant_id},
            UpdateExpression="REMOVE #onboarding",
            ExpressionAttributeNames={"#onboarding": ONBOARDING},
            ConditionExpression="attribute_exists(tenant_id)",
        )
    )


def delete_unfinished(tenant_id: str) -> None:
    """Delete a tenant whose onboarding never answered (nothing else of it exists yet)."""
    try:
        retry.call(
            lambda: _table().delete_item(
                Key={"tenant_id": tenant_id},
                ConditionExpression="attribute_exists(#onboarding)",
                ExpressionAttributeNames={"#onboarding": ONBOARDING},
            )
        )
    except ClientError as exc:
        if aws.error_code(exc) != "ConditionalCheckFailedException":
            raise


def registered_keys(item: dict[str, Any] | None) -> set[str]:
    """The key hashes a tenant item lists (read consistently by :func:`get`)."""
    return {str(value) for value in (item or {}).get(KEY_REGISTRY, set())}


def list_page(
    *, tier: str | None, status: str | None, limit: int, next_token: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of tenants, filtered; the token resumes where the page stopped."""
    condition: Any = None
    if tier is not None:
        condition = Attr("tier").eq(tier)
    # Offboarding tenants are gone for the admin API (their id is refused until the final purge).
    by_status = Attr("status").eq(status) if status is not None else Attr("status").ne(OFFBOARDING)
    condition = by_status if condition is None else condition & by_status
    start = decode_token(next_token)
    items: list[dict[str, Any]] = []
    while True:
        kwargs: dict[str, Any] = {"Limit": limit - len(items)}
        if condition is not None:
            kwargs["FilterExpression"] = condition
        if start:
            kwargs["ExclusiveStartKey"] = start
        response = _table().scan(**kwargs)
        items.extend(response.get("Items", []))
        start = response.get("LastEvaluatedKey")
        if not start or len(items) >= limit:
            break
    if start is not None and len(items) >= limit:
        start = {"tenant_id": items[-1]["tenant_id"]}
    return items, encode_token(start)


def mark_offboarding(tenant_id: str, purge_after: int) -> dict[str, Any] | None:
    """Put the tenant in the offboarding state (again, on a retry) with the time of its final
    purge; its item as it is now, or None when there is no such tenant."""
    try:
        response = retry.call(
            lambda: _table().update_item(
                Key={"tenant_id": tenant_id},
                UpdateExpression="SET #status = :offboarding, purge_after = :after, updated_at = :now",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":offboarding": OFFBOARDING,
                    ":after": purge_after,
                    ":now": _iso_now(),
                },
                ConditionExpression="attribute_exists(tenant_id)",
                ReturnValues="ALL_NEW",
            )
        )
    except ClientError as exc:
        if aws.error_code(exc) == "ConditionalCheckFailedException":
            return None
        raise
    attributes: dict[str, Any] = response["Attributes"]
    return attributes


def delete_offboarded(tenant_id: str, incarnation: str) -> bool:
    """Delete the tenant's item if it is still that incarnation's offboarding marker."""
    values = {":offboarding": OFFBOARDING}
    if incarnation:
        same = "#incarnation = :incarnation"
        values[":incarnation"] = incarnation
    else:  # a tenant created before incarnations existed
        same = "attribute_not_exists(#incarnation)"
    try:
        retry.call(
            lambda: _table().delete_item(
                Key={"tenant_id": tenant_id},
                ConditionExpression=f"#status = :offboarding AND {same}",
                ExpressionAttributeNames={"#status": "status", "#incarnation": INCARNATION},
                ExpressionAttributeValues=values,
            )
        )
    except ClientError as exc:
        if aws.error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

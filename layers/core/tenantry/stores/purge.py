"""Deletes every item a tenant owns in every registered tenant table (offboarding)."""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.conditions import Key

from tenantry import aws, settings
from tenantry.registry import TenantTable, registered_tables


def _delete_all(table: Any, key_names: list[str], pages: Any) -> int:
    deleted = 0
    with table.batch_writer() as batch:
        for page in pages:
            for item in page.get("Items", []):
                batch.delete_item(Key={name: item[name] for name in key_names})
                deleted += 1
    return deleted


def _pages(operation: Any, **kwargs: Any) -> Any:
    while True:
        response = operation(**kwargs)
        yield response
        if "LastEvaluatedKey" not in response:
            return
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def purge_table(entry: TenantTable, tenant_id: str) -> int:
    name = settings.optional_table_name(entry.env_var)
    if name is None:
        return 0
    table = aws.data_table(name)
    key_names = ["tenant_id"] + ([entry.sort_key] if entry.sort_key else [])
    projection = {f"#k{index}": name for index, name in enumerate(key_names)}
    pages = _pages(
        table.query,
        KeyConditionExpression=Key("tenant_id").eq(tenant_id),
        # A write committed just before the purge started must be seen, or it would survive it.
        ConsistentRead=True,
        ProjectionExpression=", ".join(projection),
        ExpressionAttributeNames=projection,
    )
    return _delete_all(table, key_names, pages)


def purge_tenant(tenant_id: str) -> dict[str, int]:
    """Item counts deleted per table logical id. Safe to repeat: a second run deletes nothing.

    The tenant's own item (Tenants table) is not purged here: offboarding keeps it as its marker
    until the final purge, and the tenant store deletes it."""
    return {
        entry.logical_id: purge_table(entry, tenant_id)
        for entry in registered_tables()
        if entry.env_var != settings.TENANTS_TABLE
    }
